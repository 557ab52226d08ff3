#!/usr/bin/env bash
# Runs CMD... with a real S3-compatible server (moto) on loopback, and stops it afterwards.
#
#   scripts/with-s3.sh cargo test -p weir-store
#
# Starts moto's server from <repo>/.venv (create it with scripts/python-env.sh) on a free port of
# 127.0.0.1, waits until it answers, then runs CMD with:
#   WEIR_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY = test credentials, AWS_REGION=us-east-1,
#   AWS_ALLOW_HTTP=true, and no AWS_ENDPOINT_URL / profile / session token from the caller.
# The server is stopped when CMD ends, fails, or the script is interrupted (trap). The exit code
# is CMD's. The server's log is kept in $WEIR_S3_LOG (default: a temp file, printed on failure).
#
# moto runs through scripts/moto_server.py, which makes its create-only PUTs atomic (moto's own
# If-None-Match check races under concurrent requests; S3's does not). WEIR_MOTO_SERVER=PATH
# runs another moto_server-compatible executable instead (taking -H HOST -p PORT).
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
moto="${WEIR_MOTO_SERVER:-$repo/.venv/bin/moto_server}"
if [[ ! -x "$moto" ]]; then
    echo "with-s3: $moto not found; run scripts/python-env.sh first" >&2
    exit 2
fi
python="$(dirname "$moto")/python"
[[ -x "$python" ]] || python=python3
if [[ -n "${WEIR_MOTO_SERVER:-}" ]]; then
    server=("$moto")
else
    server=("$python" "$repo/scripts/moto_server.py")
fi

log="${WEIR_S3_LOG:-$(mktemp -t weir-moto.XXXXXX.log)}"
server_pid=""

stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
cmd_pid=""
# On ctrl-C or a kill, stop CMD too (it runs in the background so that `wait` returns at once
# on a signal; background jobs ignore SIGINT, so it gets SIGTERM), then the server.
on_signal() {
    if [[ -n "$cmd_pid" ]]; then
        kill -TERM "$cmd_pid" 2>/dev/null || true
        wait "$cmd_pid" 2>/dev/null || true
    fi
    stop_server
    exit "$1"
}
trap stop_server EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# A port found free can be taken before moto binds it; retry a few times.
started=""
for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    "${server[@]}" -H 127.0.0.1 -p "$port" >>"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            break
        fi
        if "$python" - "$port" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1).read()
PY
            started=yes
            break
        fi
        sleep 0.1
    done
    [[ -n "$started" ]] && break
    echo "with-s3: moto did not start on port $port (attempt $attempt); see $log" >&2
    stop_server
done
if [[ -z "$started" ]]; then
    echo "with-s3: could not start moto_server; its log:" >&2
    cat "$log" >&2
    exit 1
fi

export WEIR_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=weir-test
export AWS_SECRET_ACCESS_KEY=weir-test-secret
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ALLOW_HTTP=true
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT
unset WEIR_SKIP_S3
echo "with-s3: moto on $WEIR_TEST_S3_ENDPOINT (pid $server_pid, log $log)" >&2

status=0
"$@" <&0 &
cmd_pid=$!
wait "$cmd_pid" || status=$?
cmd_pid=""
stop_server
if [[ $status -ne 0 ]]; then
    echo "with-s3: command failed ($status); last lines of the moto log ($log):" >&2
    tail -n 20 "$log" >&2 || true
fi
exit "$status"
