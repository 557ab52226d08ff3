#!/usr/bin/env bash
# Installs everything Weir's build, examples and tests need, on a fresh machine. Idempotent.
#   - the wasm32-wasip2 Rust target (plugins are Wasm components built with plain cargo)
#   - <repo>/.venv with the pinned Python packages: moto (local S3 server), deltalake, pyarrow,
#     duckdb, polars (independent readers)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi
"$repo/scripts/python-env.sh"
