#!/usr/bin/env bash
# Where a cached bounty-list hit spends its time: one gunicorn worker (4 threads) of this
# checkout under wrk (every request its own client, rate limits on), sampled by py-spy for
# DURATION seconds; prints the top frames inside requests and keeps the raw profile.
#   bench/profile_hit_path.sh [OUT.txt]     (DURATION=20 RATE=200 PATH_=/api/bounties?limit=20)
# PYSPY_ARGS=--gil samples only the thread holding the GIL: where the CPU goes, not the waits.
# DATABASE_URL / REDIS_URL or .local/env; py-spy is in requirements.txt (as root, or with
# ptrace permission).
set -euo pipefail
. "$(dirname "$0")/wrk/lib.sh"
out=${1:-$root/.local/hit-path-profile.txt}
duration=${DURATION:-20} path=${PATH_:-/api/bounties?limit=20} port=${PORT:-8113}
start_api "$port" GUNICORN_WORKERS=1 GUNICORN_THREADS=4
wait_ready "http://127.0.0.1:$port/readyz"
curl -fsS -o /dev/null -H "X-Forwarded-For: 10.255.0.1" "http://127.0.0.1:$port$path"  # fill the cache entry
worker=$(pgrep -P "$(cat "$work/$port.pid")")
wrk -t2 -c20 -d"$((duration + 4))s" -s bench/wrk/distinct_clients.lua "http://127.0.0.1:$port$path" >"$work/wrk.out" &
load=$!
sleep 2
.venv/bin/py-spy record -p "$worker" -d "$duration" -r "${RATE:-200}" -f raw -o "$out" --nonblocking ${PYSPY_ARGS:-} >/dev/null
wait "$load"
grep -E "Requests/sec" "$work/wrk.out" || true
.venv/bin/python bench/pyspy_top.py "$out" 40
echo "raw profile: $out"
