# Shared by the HTTP benchmarks (sourced, not run): a scratch folder on tmpfs removed on exit,
# gunicorn servers of this checkout that stop with the script, and a readiness wait.
# After sourcing: $root (the checkout, also the working directory), $work, start_api, wait_ready.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }
# On tmpfs, as deploy/gunicorn.conf.py puts the metrics files.
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
_bench_pids=()
_bench_cleanup() {
    for pid in "${_bench_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap _bench_cleanup EXIT

# start_api <port> [VAR=value ...]: this API under deploy/gunicorn.conf.py, log in $work/<port>.log,
# pidfile $work/<port>.pid. Never recycles workers (a restart mid-round costs a second of CPU)
# and every request may be its own client (TRUSTED_PROXY_COUNT=1, distinct_clients.lua).
start_api() {
    local port=$1
    shift
    env BIND="127.0.0.1:$port" TRUSTED_PROXY_COUNT=1 GUNICORN_ACCESSLOG=/dev/null GUNICORN_MAX_REQUESTS=0 \
        GUNICORN_PIDFILE="$work/$port.pid" PROMETHEUS_MULTIPROC_DIR="$work/metrics-$port" "$@" \
        .venv/bin/gunicorn -c deploy/gunicorn.conf.py bountyexpo.wsgi >"$work/$port.log" 2>&1 &
    _bench_pids+=($!)
}

# load_local_env: export the local services' settings (make services writes .local/env) that the
# environment does not already set. A server built from another commit runs in a worktree that
# has no .local/env of its own, so scripts export them here first.
load_local_env() {
    [ -f "$root/.local/env" ] || return 0
    local name value
    while IFS='=' read -r name value; do
        if [[ $name =~ ^[A-Z_]+$ ]] && [ -z "${!name:-}" ]; then export "$name=$value"; fi
    done <"$root/.local/env"
}

# start_process <log name> <command ...>: any other server, stopped with the script.
start_process() {
    local name=$1
    shift
    "$@" >"$work/$name.log" 2>&1 &
    _bench_pids+=($!)
}

# wait_ready <url>: up to 30 s for a 2xx, else the logs and exit 1.
wait_ready() {
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.3
    done
    echo "not ready: $1" >&2
    cat "$work"/*.log >&2
    exit 1
}
