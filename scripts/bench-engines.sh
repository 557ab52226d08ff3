#!/usr/bin/env bash
# The engine benchmark (issue 4): the same "clean" job (drop bots → mask user_id with sha256 and
# redact ip → derive event_date → Parquet partitioned by event date) on Weir, a native-Rust
# baseline without the sandbox, DuckDB, Polars, DataFusion and Spark local[2], one after another
# on the same generated input, in one run. Prints wall time and peak RSS (whole process tree) of
# each, Weir's ratios, whether every engine wrote the same rows, and the issue's targets; then
# re-runs Weir on 4x the input to check that its peak RSS stays flat.
#
#   scripts/bench-engines.sh                       # default: 24M rows, about 1 GB of Parquet
#   scripts/bench-engines.sh --rows 200000         # a quick run
#   scripts/bench-engines.sh --engines weir,native,duckdb --no-flatness
#
# Options (passed to bench/engines/driver.py): --rows N, --days D, --seed S, --engines LIST,
# --no-flatness, --keep-output, --work DIR (default bench/work: input, outputs, logs and
# results.json). The input is regenerated only when --rows/--days/--seed change.
#
# Builds what it runs: the Wasm plugins (scripts/build-plugins.sh), `weir` and
# `weir-bench-native` in release mode (in $CARGO_TARGET_DIR, default target/), and the Python
# engines into bench/.venv (bench/python-env.sh, pinned versions). Java 17 must be installed for
# Spark. WEIR_BIN / WEIR_BENCH_NATIVE_BIN use already built binaries instead.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

work="$repo/bench/work"
args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --work) work="$2"; shift 2 ;;
        --work=*) work="${1#--work=}"; shift ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    step "Adding the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2
fi
step "Building the plugins (Wasm components)"
scripts/build-plugins.sh >&2
plugins="${WEIR_GUEST_TARGET_DIR:-$repo/target/guests}/wasm32-wasip2/guest"

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
if [[ -z "${WEIR_BIN:-}" || -z "${WEIR_BENCH_NATIVE_BIN:-}" ]]; then
    step "Building weir and the native baseline (release)"
    # Two builds, not one: each package alone keeps its usual feature set (and cached artifacts).
    cargo build --release -p weir-cli >&2
    cargo build --release -p weir-bench-native >&2
fi
weir="${WEIR_BIN:-$target_dir/release/weir}"
native="${WEIR_BENCH_NATIVE_BIN:-$target_dir/release/weir-bench-native}"

step "Setting up the Python engines (bench/.venv)"
python="$(bench/python-env.sh | tail -n 1)"
if ! java -version >/dev/null 2>&1; then
    echo "bench-engines: java is not installed (Spark needs Java 17); use --engines to skip spark" >&2
fi

step "Running the benchmark"
exec "$python" bench/engines/driver.py --work "$work" --weir "$weir" --native "$native" \
    --plugins "$plugins" --template bench/clean.toml "${args[@]}"
