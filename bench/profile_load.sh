#!/usr/bin/env bash
# Where the server's CPU goes under a load-test profile: one gunicorn server shaped like `make
# run`'s (GUNICORN_WORKERS, default 5, x GUNICORN_THREADS 4; rate limits off), `manage.py
# loadtest PROFILE` against it with no think time, and py-spy sampling every worker (only the
# thread holding the GIL: CPU, not waits) for SAMPLE seconds from the WARM-th second. Prints the
# run's summary and the workers' CPU by view (bench/pyspy_views.py); keeps the report and the
# raw profile in OUT.
#   bench/profile_load.sh [PROFILE] [OUT]   (PROFILE=peak, OUT=.local/profile-load; DURATION=60
#                                            WARM=30 SAMPLE=25; DATABASE_URL / REDIS_URL or
#                                            .local/env; TOKENS: seed_data's tokens file;
#                                            LOADTEST_ARGS: more options for loadtest, e.g.
#                                            "--writes-per-second 10" for churn)
# py-spy is in requirements.txt; it needs root or ptrace permission. Sampling at 100 Hz costs
# the workers a few per cent: compare runs made the same way.
set -euo pipefail
. "$(dirname "$0")/wrk/lib.sh"
profile=${1:-peak} out=${2:-$root/.local/profile-load}
duration=${DURATION:-60} warm=${WARM:-30} sample=${SAMPLE:-25} port=${PORT:-8014}
tokens=${TOKENS:-.local/loadtest/tokens.txt}
[ -s "$tokens" ] || { echo "no tokens file $tokens: run manage.py seed_data first" >&2; exit 1; }
mkdir -p "$out"
load_local_env
start_api "$port" RATELIMIT_ENABLE=0 REDIS_URL="${REDIS_URL%/*}/${PROFILE_REDIS_DB:-5}"
wait_ready "http://127.0.0.1:$port/readyz"
master=$(cat "$work/$port.pid")
.venv/bin/python manage.py loadtest "$profile" --host "http://127.0.0.1:$port" --server-pid "$master" \
    --think-time 0 --duration "$duration" --tokens-file "$tokens" --report-dir "$out" ${LOADTEST_ARGS:-} >"$out/loadtest.log" 2>&1 &
load=$!
sleep "$warm"
samplers=()
for worker in $(pgrep -P "$master"); do
    .venv/bin/py-spy record -p "$worker" -d "$sample" -r 100 -f raw -o "$work/worker-$worker.txt" --nonblocking --gil \
        >/dev/null 2>&1 &
    samplers+=($!)
done
wait "${samplers[@]}" || true
wait "$load" || true  # a FAIL verdict exits non-zero; the report says why
cat "$work"/worker-*.txt >"$out/profile.txt"
grep -E "^run #|Throughput|p95 Response|Server CPU" "$out/loadtest.log" "$(ls -d "$out"/*-"$profile" | tail -1)/report.md" || true
.venv/bin/python bench/pyspy_views.py "$out/profile.txt"
echo "raw profile: $out/profile.txt"
