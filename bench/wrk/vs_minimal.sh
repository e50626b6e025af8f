#!/usr/bin/env bash
# The cached bounty list against the minimal Django app (bench/minimal/app.py: one view, no
# middleware, the same bytes' worth of fixed JSON) and against this API's /healthz, all under
# wrk in the same run: two gunicorn servers of this checkout with the same workers and threads,
# taking turns for ROUNDS rounds. Prints each round, the medians and the ratios to the minimal app.
# The API runs with its rate limits on and TRUSTED_PROXY_COUNT=1 (every request its own client,
# distinct_clients.lua), on DATABASE_URL / REDIS_URL or .local/env; warm_cache first.
# Both servers write gunicorn's access log (to /dev/null, in deploy/gunicorn.conf.py's format, with
# its logger class): formatting a line is server work either app pays; MINIMAL_ACCESSLOG=0 spares
# the minimal app.
#   bench/wrk/vs_minimal.sh     (ROUNDS=5 DURATION=5s CONNECTIONS=50 GUNICORN_WORKERS=5 GUNICORN_THREADS=4)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
here="$root/bench/wrk"
rounds=${ROUNDS:-5}
workers=${GUNICORN_WORKERS:-5} threads=${GUNICORN_THREADS:-4}
minimal_port=${MINIMAL_PORT:-8111} api_port=${API_PORT:-8112}
access_log=()
if [ "${MINIMAL_ACCESSLOG:-1}" != 0 ]; then
    read -r logger format < <(.venv/bin/python -c 'import runpy; c = runpy.run_path("deploy/gunicorn.conf.py"); print(c["logger_class"], c["access_log_format"])')
    access_log=(--access-logfile /dev/null --access-logformat "$format" --logger-class "$logger" --pythonpath "$root")
fi
start_process minimal .venv/bin/gunicorn --bind "127.0.0.1:$minimal_port" --workers "$workers" \
    --worker-class gthread --threads "$threads" --keep-alive 5 "${access_log[@]}" --chdir bench/minimal app
start_api "$api_port" GUNICORN_WORKERS="$workers" GUNICORN_THREADS="$threads"
wait_ready "http://127.0.0.1:$minimal_port/api/bounties"
wait_ready "http://127.0.0.1:$api_port/readyz"

rps() {
    wrk -t2 -c"${CONNECTIONS:-50}" -d"${DURATION:-5s}" -s "$here/distinct_clients.lua" "$1" \
        | awk '/non-2xx\/3xx responses:/ && $3 > 0 {print "refused or failed: " $3 > "/dev/stderr"} /Requests\/sec/ {print $2}'
}
list="http://127.0.0.1:$api_port/api/bounties?limit=20"
curl -fsS -o /dev/null -H "X-Forwarded-For: 10.255.0.1" "$list"  # fill the cache entry
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
