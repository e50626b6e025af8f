#!/usr/bin/env bash
# Issue 13's peak measurement: `manage.py loadtest peak` with no think time (200 users of the
# mixed traffic) against one gunicorn server shaped like `make run`'s (deploy/gunicorn.conf.py,
# GUNICORN_WORKERS x GUNICORN_THREADS, default 5 x 4), rate limits off (200 users share one
# address), its response cache in Redis database PEAK_REDIS_DB (default 5, emptied first), over
# the database of DATABASE_URL (or .local/env) loaded by `manage.py seed_data`.
#   bench/peak.sh [--duration 60] [--compare RUN] [--report-dir reports/loadtests]
#                 (TOKENS: seed_data's tokens file, default .local/loadtest/tokens.txt)
set -euo pipefail
. "$(dirname "$0")/wrk/lib.sh"
duration=60 compare=() report_dir="reports/loadtests"
while [ $# -gt 0 ]; do
    case $1 in
        --duration) duration=$2; shift 2 ;;
        --compare) compare=(--compare "$2"); shift 2 ;;
        --report-dir) report_dir=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
tokens=${TOKENS:-.local/loadtest/tokens.txt}
[ -s "$tokens" ] || { echo "no tokens file $tokens: run manage.py seed_data first" >&2; exit 1; }
port=${PEAK_PORT:-8015}
load_local_env
redis_url="${REDIS_URL%/*}/${PEAK_REDIS_DB:-5}"
.venv/bin/python -c 'import sys, redis; redis.Redis.from_url(sys.argv[1]).flushdb()' "$redis_url"
start_api "$port" RATELIMIT_ENABLE=0 REDIS_URL="$redis_url"
wait_ready "http://127.0.0.1:$port/readyz"
label="$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes')"
.venv/bin/python manage.py loadtest peak --host "http://127.0.0.1:$port" --server-pid "$(cat "$work/$port.pid")" \
    --think-time 0 --duration "$duration" --tokens-file "$tokens" --report-dir "$report_dir" \
    --notes "bench/peak.sh on $label: one make run-shaped server, rate limits off, no think time" "${compare[@]}"
