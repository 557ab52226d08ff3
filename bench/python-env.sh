#!/usr/bin/env bash
# Creates (or brings up to date) the benchmark's Python env: <repo>/bench/.venv with the pinned
# engines in bench/requirements.txt (DuckDB, Polars + polars-hash, DataFusion, PySpark, pyarrow,
# psutil). Separate from the test env (.venv): pyspark is about 0.5 GB and CI does not need it.
# Idempotent and cheap when nothing changed (a hash of the requirements is recorded); an flock
# serialises concurrent runs. Prints the interpreter's path as its last line.
# Env: PYTHON (default python3) picks the base interpreter; WEIR_BENCH_VENV moves the venv.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${WEIR_BENCH_VENV:-$repo/bench/.venv}"
requirements="$repo/bench/requirements.txt"
python="${PYTHON:-python3}"

mkdir -p "$venv"
exec 9>"$venv/.weir-env.lock"
flock 9

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
stamp="$venv/.weir-requirements.sha256"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "bench python-env: $venv is up to date" >&2
    echo "$venv/bin/python"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "bench python-env: creating $venv" >&2
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
# Fail now, not halfway through a benchmark, if a package is broken.
"$venv/bin/python" - >&2 <<'PY'
import duckdb, polars, polars_hash, datafusion, pyspark, pyarrow, psutil
print("bench python-env: ok:", "duckdb", duckdb.__version__, "polars", polars.__version__,
      "datafusion", datafusion.__version__, "pyspark", pyspark.__version__,
      "pyarrow", pyarrow.__version__)
PY
echo "$want" >"$stamp"
echo "$venv/bin/python"
