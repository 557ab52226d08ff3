#!/usr/bin/env bash
# Sets up and runs Weir's whole test suite: every crate's tests, the hostile-plugin suite, the
# end-to-end tests, with a real S3-compatible server (moto) on loopback for the s3:// variants.
#
#   scripts/test.sh               # everything
#   scripts/test.sh -p weir-lake  # extra arguments go to `cargo test`
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

scripts/setup.sh
scripts/with-s3.sh cargo test --workspace --locked "$@"
