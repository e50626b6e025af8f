#!/usr/bin/env bash
# Where a cached bounty-list hit spends its time: one gunicorn worker (4 threads) of this
# checkout under wrk (every request its own client, rate limits on), sampled by py-spy for
# DURATION seconds; prints the top frames inside requests and keeps the raw profile.
#   bench/profile_hit_path.sh [OUT.txt]     (DURATION=20 RATE=200 PATH_=/api/bounties?limit=20)
# DATABASE_URL / REDIS_URL or .local/env; py-spy is in requirements.txt (as root, or with
# ptrace permission).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.local/hit-path-profile.txt}
duration=${DURATION:-20} path=${PATH_:-/api/bounties?limit=20} port=${PORT:-8113}
cd "$root"
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
cleanup() { [ -f "$work/g.pid" ] && kill -TERM "$(cat "$work/g.pid")" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
BIND=127.0.0.1:$port GUNICORN_WORKERS=1 GUNICORN_THREADS=4 TRUSTED_PROXY_COUNT=1 \
GUNICORN_ACCESSLOG=/dev/null GUNICORN_MAX_REQUESTS=0 GUNICORN_PIDFILE="$work/g.pid" \
PROMETHEUS_MULTIPROC_DIR="$work/metrics" \
    .venv/bin/gunicorn -c deploy/gunicorn.conf.py bountyexpo.wsgi >"$work/server.log" 2>&1 &
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port$path" 2>/dev/null && break; sleep 0.3; done
worker=$(pgrep -P "$(cat "$work/g.pid")")
wrk -t2 -c20 -d"$((duration + 4))s" -s bench/wrk/distinct_clients.lua "http://127.0.0.1:$port$path" >"$work/wrk.log" &
load=$!
sleep 2
.venv/bin/py-spy record -p "$worker" -d "$duration" -r "${RATE:-200}" -f raw -o "$out" --nonblocking >/dev/null
wait "$load"
grep -E "Requests/sec" "$work/wrk.log" || true
.venv/bin/python bench/pyspy_top.py "$out" 40
echo "raw profile: $out"
