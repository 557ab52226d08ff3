#!/usr/bin/env bash
# Weir in one command: builds everything, generates a sample ad-tech clickstream (1M events over
# 7 days by default), runs the two example pipelines on the local file-backed store, and shows the
# resulting tables, read back by Weir and independently by the Python `deltalake` package.
#
#   scripts/quickstart.sh                    # 1M rows, 7 days
#   ROWS=200000 DAYS=3 scripts/quickstart.sh # smaller
#   WEIR_BIN=path/to/weir scripts/quickstart.sh  # use an already built binary
#
# Safe to re-run: the data is regenerated identically (fixed seed) and both pipelines overwrite
# the partitions they write.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
rows="${ROWS:-1000000}"
days="${DAYS:-7}"
data="examples/data/clickstream"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Setting up (Rust wasm32-wasip2 target, Python env for the independent reader)"
scripts/setup.sh

if [[ -n "${WEIR_BIN:-}" ]]; then
    weir="$WEIR_BIN" # a weir binary built elsewhere
else
    step "Building the weir CLI (release)"
    cargo build --release -p weir-cli
    weir="${CARGO_TARGET_DIR:-$repo/target}/release/weir"
fi

step "Building the example plugins (Wasm components)"
scripts/build-plugins.sh

step "Generating $rows clickstream events over $days days into $data/raw"
"$weir" gen clickstream --rows "$rows" --days "$days" --force "$data/raw"

step "Validating the pipelines"
"$weir" pipeline validate examples/clickstream/clean.toml

step "Running the clean pipeline: drop bots → mask PII → derive date → dedupe"
"$weir" run examples/clickstream/clean.toml

step "Running the rollup pipeline: daily totals per advertiser"
"$weir" run examples/clickstream/rollup.toml

step "The clean table"
"$weir" table show "$data/clean"
"$weir" table log "$data/clean" --limit 3

step "The daily rollup table"
"$weir" table show "$data/daily_advertiser"

step "Reading the tables independently with Python deltalake"
"$repo/.venv/bin/python" examples/clickstream/show_tables.py "$data"

printf '\nDone. Try: %s table files %s/clean\n' "$weir" "$data"
