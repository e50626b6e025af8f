#!/usr/bin/env bash
# Where the machine's CPU goes per request under wrk, for the minimal Django app, the API's cached
# bounty list as served (the hit path's WSGI front, core/hit_front.py), and the same list with the
# front off (HIT_PATH_FRONT=0: the hit path's middleware answers it): the gunicorn
# workers' user and system time, Redis's time and the whole machine's busy time, each divided by
# the requests served (from /proc, over each wrk run). Same workers and threads for all three,
# rate limits on, every request its own client; ROUNDS rounds (default 2) taking turns.
#   bench/wrk/cpu_split.sh     (ROUNDS=2 DURATION=5s GUNICORN_WORKERS=5 GUNICORN_THREADS=4;
#                                       DATABASE_URL / REDIS_URL or .local/env)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_local_env
workers=${GUNICORN_WORKERS:-5} threads=${GUNICORN_THREADS:-4}
read -r logger format < <(.venv/bin/python -c 'import runpy; c = runpy.run_path("deploy/gunicorn.conf.py"); print(c["logger_class"], c["access_log_format"])')
start_process minimal .venv/bin/gunicorn --bind 127.0.0.1:8111 --workers "$workers" --worker-class gthread \
    --threads "$threads" --keep-alive 5 --access-logfile /dev/null --access-logformat "$format" \
    --logger-class "$logger" --pythonpath "$root" --pid "$work/8111.pid" --chdir bench/minimal app
start_api 8112 GUNICORN_WORKERS="$workers" GUNICORN_THREADS="$threads"
start_api 8113 GUNICORN_WORKERS="$workers" GUNICORN_THREADS="$threads" HIT_PATH_FRONT=0
wait_ready http://127.0.0.1:8111/api/bounties
wait_ready http://127.0.0.1:8112/readyz
wait_ready http://127.0.0.1:8113/readyz
for port in 8112 8113; do  # fill the cache entry
    curl -fsS -o /dev/null -H "X-Forwarded-For: 10.255.0.1" "http://127.0.0.1:$port/api/bounties?limit=20"
done
redis_port=$(echo "$REDIS_URL" | sed -E 's#.*:([0-9]+)(/.*)?$#\1#')
redis=$(pgrep -f "redis-server.*:$redis_port" | head -1)

ticks() {  # user and system clock ticks of the given pids: "user sys"
    local user=0 sys=0 fields
    for pid in "$@"; do
        read -ra fields <"/proc/$pid/stat"
        user=$((user + fields[13])) sys=$((sys + fields[14]))
    done
    echo "$user $sys"
}
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
measure() {  # label url port
    local pids w0 r0 m0 out w1 r1 m1
    pids=$(pgrep -P "$(cat "$work/$3.pid")" | tr '\n' ' ')
    # shellcheck disable=SC2086
    w0=$(ticks $pids) r0=$(ticks "$redis") m0=$(busy)
    out=$(wrk -t2 -c"${CONNECTIONS:-50}" -d"${DURATION:-5s}" -s bench/wrk/distinct_clients.lua "$2")
    # shellcheck disable=SC2086
    w1=$(ticks $pids) r1=$(ticks "$redis") m1=$(busy)
    python3 - "$1" "$out" "$w0" "$w1" "$r0" "$r1" "$m0" "$m1" "$(getconf CLK_TCK)" <<'PY'
import re, sys
label, out, w0, w1, r0, r1, m0, m1, hz = sys.argv[1:]
n = int(re.search(r"(\d+) requests in", out)[1])
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
us = lambda a, b: (b - a) * 1e6 / int(hz) / n
(wu0, ws0), (wu1, ws1) = (map(int, w0.split()), map(int, w1.split()))
ru0, rs0 = map(int, r0.split()); ru1, rs1 = map(int, r1.split())
print(f"| {label} | {rps:.0f} | {us(wu0, wu1):.0f} | {us(ws0, ws1):.0f} | {us(ru0 + rs0, ru1 + rs1):.0f} | {us(int(m0), int(m1)):.0f} |")
PY
}
echo "| server | RPS | workers user us/request | workers system us/request | Redis us/request | machine busy us/request |"
echo "|---|---|---|---|---|---|"
for _ in $(seq "${ROUNDS:-2}"); do
    measure "minimal Django app" http://127.0.0.1:8111/api/bounties 8111
    measure "API, cached list (WSGI front, as served)" "http://127.0.0.1:8112/api/bounties?limit=20" 8112
    measure "API, cached list (HIT_PATH_FRONT=0: middleware)" "http://127.0.0.1:8113/api/bounties?limit=20" 8113
done
