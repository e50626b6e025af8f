#!/usr/bin/env bash
# What the metrics cost: the cached bounty list under wrk on two gunicorn servers started from
# this checkout with the same settings, one with METRICS_ENABLED=1 and one with 0, taking turns
# for ROUNDS rounds in the same run; prints each round's requests per second and the workers'
# CPU time per request, then the medians and the overhead.
# Uses the database and Redis of DATABASE_URL / REDIS_URL, else .local/env (make services first).
#   bench/wrk/metrics_overhead.sh    (ROUNDS=20 DURATION=4s CONNECTIONS=50 GUNICORN_WORKERS=2)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
here="$root/bench/wrk"
rounds=${ROUNDS:-20}
path=${BENCH_PATH:-/api/bounties?limit=20}

on_port=${METRICS_ON_PORT:-8101} off_port=${METRICS_OFF_PORT:-8102}
start_api "$on_port" METRICS_ENABLED=1 GUNICORN_WORKERS="${GUNICORN_WORKERS:-2}"
start_api "$off_port" METRICS_ENABLED=0 GUNICORN_WORKERS="${GUNICORN_WORKERS:-2}"
wait_ready "http://127.0.0.1:$on_port/readyz"; wait_ready "http://127.0.0.1:$off_port/readyz"
curl -fsS "http://127.0.0.1:$off_port/metrics" >/dev/null 2>&1 && { echo "metrics still served with METRICS_ENABLED=0" >&2; exit 1; }
# Warm both: the first requests fill the cache and open the pools.
wrk -t1 -c4 -d2s -s "$here/distinct_clients.lua" "http://127.0.0.1:$on_port$path" >/dev/null
wrk -t1 -c4 -d2s -s "$here/distinct_clients.lua" "http://127.0.0.1:$off_port$path" >/dev/null

# This machine's speed drifts by tens of percent from one second to the next (shared cores), so
# besides requests per second each round records the CPU time the server's workers spent per
# request (utime + stime from /proc, summed over the workers): the cost of a request, which the
# drift barely moves. The two servers take turns, alternating which goes first.
cpu_ticks() {  # cpu_ticks <port>: CPU clock ticks used so far by that server's workers
    local master total=0 pid
    master=$(cat "$work/$1.pid")
    for pid in $(pgrep -P "$master"); do
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
measure() {  # measure <port>: "<RPS> <CPU microseconds per request>"
    local before after out requests
    before=$(cpu_ticks "$1")
    out=$(wrk -t2 -c"${CONNECTIONS:-50}" -d"${DURATION:-4s}" -s "$here/distinct_clients.lua" "http://127.0.0.1:$1$path")
    after=$(cpu_ticks "$1")
    echo "$out" | awk '/non-2xx\/3xx responses:/ && $3 > 0 {print "refused or failed: " $3 > "/dev/stderr"}'
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(( (after - before) * 1000000 / $(getconf CLK_TCK) / requests ))"
}
on=() off=() on_cpu=() off_cpu=()
for round in $(seq "$rounds"); do
    if (( round % 2 )); then
        read -r r c <<<"$(measure "$off_port")"; off+=("$r"); off_cpu+=("$c")
        read -r r c <<<"$(measure "$on_port")"; on+=("$r"); on_cpu+=("$c")
    else
        read -r r c <<<"$(measure "$on_port")"; on+=("$r"); on_cpu+=("$c")
        read -r r c <<<"$(measure "$off_port")"; off+=("$r"); off_cpu+=("$c")
    fi
    echo "round $round: metrics off ${off[-1]} RPS ${off_cpu[-1]} us CPU/request, metrics on ${on[-1]} RPS ${on_cpu[-1]} us CPU/request"
done
python3 - "${off[*]}" "${on[*]}" "${off_cpu[*]}" "${on_cpu[*]}" <<'PY'
import statistics, sys
off, on, off_cpu, on_cpu = ([float(x) for x in arg.split()] for arg in sys.argv[1:5])
# Each round's pair ran back to back on the same machine: compare within pairs, then take the
# median over the rounds (an outlier round moves it little).
rps = statistics.median((a - b) / a * 100 for a, b in zip(off, on))
cpu = statistics.median((b - a) / a * 100 for a, b in zip(off_cpu, on_cpu))
cpu_us = statistics.median(b - a for a, b in zip(off_cpu, on_cpu))
print(f"medians: metrics off {statistics.median(off):.0f} RPS {statistics.median(off_cpu):.0f} us CPU/request,"
      f" metrics on {statistics.median(on):.0f} RPS {statistics.median(on_cpu):.0f} us CPU/request")
print(f"overhead (median of the rounds' pairs): {rps:+.1f} % requests per second, {cpu:+.1f} % CPU per request"
      f" ({cpu_us:+.0f} us)")
PY
