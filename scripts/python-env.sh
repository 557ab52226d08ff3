#!/usr/bin/env bash
# Creates (or brings up to date) the Python env for Weir's tests: <repo>/.venv with the pinned
# packages in scripts/python-requirements.txt. Idempotent and cheap when nothing changed: it
# records a hash of the requirements and reinstalls only when they change. Safe to run from
# several processes at once (an flock serialises them).
#
# Tests find the interpreter via $WEIR_PYTHON or <repo>/.venv/bin/python.
# Env: PYTHON (default python3) picks the base interpreter.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
requirements="$repo/scripts/python-requirements.txt"
python="${PYTHON:-python3}"

mkdir -p "$venv"
exec 9>"$venv/.weir-env.lock"
flock 9

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
stamp="$venv/.weir-requirements.sha256"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "python-env: $venv is up to date"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "python-env: creating $venv"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
# Fail now, not in a test, if a package is broken.
"$venv/bin/python" - <<'PY'
import deltalake, pyarrow, duckdb, polars, moto
print("python-env: ok:", "moto", moto.__version__, "deltalake", deltalake.__version__,
      "pyarrow", pyarrow.__version__, "duckdb", duckdb.__version__, "polars", polars.__version__)
PY
test -x "$venv/bin/moto_server"
echo "$want" >"$stamp"
