#!/usr/bin/env bash
# The cached bounty list against the minimal Django app (bench/minimal/app.py: one view, no
# middleware, the same bytes' worth of fixed JSON) and against this API's /healthz, all under
# wrk in the same run: two gunicorn servers of this checkout with the same workers and threads,
# taking turns for ROUNDS rounds. Prints each round, the medians and the ratios to the minimal app.
# The API runs with its rate limits on and TRUSTED_PROXY_COUNT=1 (every request its own client,
# distinct_clients.lua), on DATABASE_URL / REDIS_URL or .local/env; warm_cache first.
#   bench/wrk/vs_minimal.sh     (ROUNDS=5 DURATION=5s CONNECTIONS=50 GUNICORN_WORKERS=5 GUNICORN_THREADS=4)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/bench/wrk"
rounds=${ROUNDS:-5}
workers=${GUNICORN_WORKERS:-5} threads=${GUNICORN_THREADS:-4}
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }
cd "$root"
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

minimal_port=${MINIMAL_PORT:-8111} api_port=${API_PORT:-8112}
.venv/bin/gunicorn --bind "127.0.0.1:$minimal_port" --workers "$workers" --worker-class gthread \
    --threads "$threads" --keep-alive 5 --chdir bench/minimal app >"$work/minimal.log" 2>&1 &
pids+=($!)
BIND=127.0.0.1:$api_port GUNICORN_WORKERS=$workers GUNICORN_THREADS=$threads TRUSTED_PROXY_COUNT=1 \
GUNICORN_ACCESSLOG=/dev/null GUNICORN_MAX_REQUESTS=0 GUNICORN_PIDFILE="$work/api.pid" \
PROMETHEUS_MULTIPROC_DIR="$work/metrics" \
    .venv/bin/gunicorn -c deploy/gunicorn.conf.py bountyexpo.wsgi >"$work/api.log" 2>&1 &
pids+=($!)
for url in "http://127.0.0.1:$minimal_port/api/bounties" "http://127.0.0.1:$api_port/readyz"; do
    for _ in $(seq 100); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.3; done
    curl -fsS "$url" >/dev/null || { echo "not ready: $url" >&2; cat "$work"/*.log >&2; exit 1; }
done

rps() {
    wrk -t2 -c"${CONNECTIONS:-50}" -d"${DURATION:-5s}" -s "$here/distinct_clients.lua" "$1" \
        | awk '/non-2xx\/3xx responses:/ && $3 > 0 {print "refused or failed: " $3 > "/dev/stderr"} /Requests\/sec/ {print $2}'
}
list="http://127.0.0.1:$api_port/api/bounties?limit=20"
curl -fsS -o /dev/null "$list"  # fill the cache entry
minimal=() healthz=() cached=()
for round in $(seq "$rounds"); do
    minimal+=("$(rps "http://127.0.0.1:$minimal_port/api/bounties")")
    healthz+=("$(rps "http://127.0.0.1:$api_port/healthz")")
    cached+=("$(rps "$list")")
    echo "round $round: minimal Django ${minimal[-1]} RPS, /healthz ${healthz[-1]} RPS, cached list ${cached[-1]} RPS"
done
python3 - "${minimal[*]}" "${healthz[*]}" "${cached[*]}" <<'PY'
import statistics, sys
minimal, healthz, cached = (statistics.median(map(float, arg.split())) for arg in sys.argv[1:4])
print(f"medians: minimal Django {minimal:.0f} RPS, /healthz {healthz:.0f} RPS ({healthz / minimal:.2f}),"
      f" cached bounty list {cached:.0f} RPS ({cached / minimal:.2f} of the minimal app)")
PY
