#!/usr/bin/env bash
# The churn load test at several posting rates against one server, optionally built from an
# earlier commit, each run stored (LoadTestRun) and reported like any `manage.py loadtest`.
#
#   bench/churn.sh [--rev REV] [--rates "0 2 10"] [--duration 90] [--compare "ID ID ID"] [--report-dir DIR]
#
# The server is deploy/gunicorn.conf.py as `make run` starts it (GUNICORN_WORKERS, default 5,
# x GUNICORN_THREADS 4), rate limits off, over the database of DATABASE_URL (or .local/env):
# load it first with `manage.py seed_data` (10k users, 100k bounties; it writes the tokens file
# TOKENS, default .local/loadtest/tokens.txt). Its response cache lives in Redis database
# CHURN_REDIS_DB (default 5), emptied before each rate. --rev REV serves the code of commit REV
# (a throwaway git worktree) with this checkout's virtualenv, so "before" and "after" run on the
# same data and machine; the load generator and its reports are always this checkout's.
# --compare gives, per rate, the run to put beside it (before/after table), and the first rate's
# run here becomes the --baseline of the others (issue 13's relative targets).
# Prints one "rate N: run #ID" line per rate at the end.
source "$(dirname "$0")/wrk/lib.sh"
set -euo pipefail

rev="" rates="0 2 10" duration=90 compare="" report_dir="reports/loadtests"
while [ $# -gt 0 ]; do
    case $1 in
        --rev) rev=$2; shift 2 ;;
        --rates) rates=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --compare) compare=$2; shift 2 ;;
        --report-dir) report_dir=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
tokens=${TOKENS:-.local/loadtest/tokens.txt}
[ -s "$tokens" ] || { echo "no tokens file $tokens: run manage.py seed_data first" >&2; exit 1; }
port=${CHURN_PORT:-8011}
load_local_env
redis_url="${REDIS_URL%/*}/${CHURN_REDIS_DB:-5}"

tree=$root
label="this checkout ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes'))"
if [ -n "$rev" ]; then
    tree=$work/tree
    git worktree add --quiet --detach "$tree" "$rev"
    trap 'git -C "$root" worktree remove --force "$tree" 2>/dev/null || true; _bench_cleanup' EXIT
    label="commit $(git rev-parse --short "$rev")"
fi

env --chdir="$tree" BIND="127.0.0.1:$port" TRUSTED_PROXY_COUNT=1 GUNICORN_ACCESSLOG=/dev/null \
    RATELIMIT_ENABLE=0 REDIS_URL="$redis_url" GUNICORN_PIDFILE="$work/server.pid" \
    PROMETHEUS_MULTIPROC_DIR="$work/metrics" \
    "$root/.venv/bin/gunicorn" -c deploy/gunicorn.conf.py bountyexpo.wsgi >"$work/server.log" 2>&1 &
_bench_pids+=($!)
wait_ready "http://127.0.0.1:$port/readyz"
server_pid=$(cat "$work/server.pid")

summary=() baseline="" index=0
for rate in $rates; do
    .venv/bin/python - "$redis_url" <<'EOF'
import sys, redis
redis.Redis.from_url(sys.argv[1]).flushdb()
EOF
    extra=()
    [ -n "$baseline" ] && extra+=(--baseline "$baseline")
    before=$(echo "$compare" | awk -v i=$((index + 1)) '{print $i}')
    [ -n "$before" ] && extra+=(--compare "$before")
    echo "==> churn at $rate posts/s against $label"
    out=$(.venv/bin/python manage.py loadtest churn --writes-per-second "$rate" --duration "$duration" \
        --host "http://127.0.0.1:$port" --server-pid "$server_pid" --tokens-file "$tokens" \
        --report-dir "$report_dir" --notes "bench/churn.sh: $label, $rate posts/s" "${extra[@]}" 2>&1) || true
    echo "$out" | tail -n 60
    run=$(echo "$out" | sed -n 's/^run #\([0-9]*\);.*/\1/p')
    [ -n "$run" ] || { echo "the run at $rate posts/s stored nothing" >&2; exit 1; }
    [ -z "$baseline" ] && baseline=$run
    summary+=("rate $rate: run #$run ($label)")
    index=$((index + 1))
done
printf '%s\n' "${summary[@]}"
