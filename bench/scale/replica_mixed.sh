#!/usr/bin/env bash
# Issue 14's measurement: a short `mixed` load test through nginx in front of two API instances
# that read from a streaming replica of the local cluster. The replica is stopped (immediate)
# at --stop-replica-at seconds and instance 1 killed (SIGKILL, master and workers) at --kill-at.
# Prints the replica's share of the SELECT statements the servers ran before the replica
# stopped (pg_stat_statements on each, reset at the start), the most client backends the
# primary had open for the database at once (sampled every 0.5 s), and the load test's report.
# With --pgbouncer the instances reach the primary through Debian's PgBouncer in transaction
# mode (deploy/pgbouncer/pgbouncer.ini rendered for port 6432, DATABASE_PGBOUNCER=1).
#
#   bench/scale/replica_mixed.sh [--db bx_seed] [--users 50] [--duration 60] \
#       [--stop-replica-at 20] [--kill-at 40] [--report-dir reports/loadtests] [--pgbouncer]
#
# Needs the local cluster (make services), a seeded database (manage.py seed_data into --db)
# and its tokens file (TOKENS, default .local/loadtest/tokens.txt), nginx (make nginx). The
# replica is a pg_basebackup -R of the whole cluster into /var/tmp, removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
db=bx_seed users=50 duration=60 stop_replica_at=20 kill_at=40 report_dir=reports/loadtests pgbouncer=0
while [ $# -gt 0 ]; do
    case $1 in
        --db) db=$2; shift 2 ;;
        --users) users=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --stop-replica-at) stop_replica_at=$2; shift 2 ;;
        --kill-at) kill_at=$2; shift 2 ;;
        --report-dir) report_dir=$2; shift 2 ;;
        --pgbouncer) pgbouncer=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
tokens=${TOKENS:-.local/loadtest/tokens.txt}
[ -s "$tokens" ] || { echo "no tokens file $tokens: run manage.py seed_data first" >&2; exit 1; }
if [ -f .local/env ]; then set -a; . .local/env; set +a; fi
base=${DATABASE_URL%/*}                    # postgres://user:pw@host:port
primary_url="$base/$db"
replica_port=${REPLICA_PORT:-54330}
replica_url="${base%:*}:$replica_port/$db"
bindir=$(deploy/bootstrap.sh pg-bindir)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

work=$(mktemp -d -p /var/tmp bx-scale-XXXXXX)
[ "$(id -u)" -ne 0 ] || chown postgres: "$work"
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    as_pg "$bindir/pg_ctl" -D "$work/standby" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

userinfo=${base#postgres://}; userinfo=${userinfo%@*}
hostport=${base##*@}
conninfo="host=${hostport%:*} port=${hostport##*:} user=${userinfo%%:*} password=${userinfo#*:}"
echo "==> base backup of the local cluster into $work/standby"
as_pg "$bindir/pg_basebackup" -d "$conninfo" -D "$work/standby" -R -X stream --checkpoint=fast
as_pg "$bindir/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w -o "-p $replica_port" start >/dev/null

selects() {  # SELECT calls of $db on the server at $1
    psql "$1" -tAc "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND query ILIKE 'select%'"
}
psql "$primary_url" -qtAc "SELECT pg_stat_statements_reset()" >/dev/null
psql "$replica_url" -qtAc "SELECT pg_stat_statements_reset()" >/dev/null

app_db=(DATABASE_URL="$primary_url")
path_note="directly"
if [ "$pgbouncer" -eq 1 ]; then
    .venv/bin/python deploy/render_pgbouncer.py --server "$base" --listen 6432 --prefix "$work/pgbouncer" >/dev/null
    [ "$(id -u)" -ne 0 ] || chown -R postgres: "$work/pgbouncer"
    as_pg "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" "$work/pgbouncer/pgbouncer.ini" &
    pids+=($!)
    app_db=(DATABASE_URL="${base%:*}:6432/$db" DATABASE_PGBOUNCER=1 DATABASE_DIRECT_URL="$primary_url")
    path_note="through PgBouncer (transaction mode, default_pool_size 20)"
    sleep 1
fi

for port in 8001 8002; do
    env BIND="127.0.0.1:$port" "${app_db[@]}" DATABASE_REPLICA_URLS="$replica_url" \
        RATELIMIT_ENABLE=0 TRUSTED_PROXY_COUNT=1 GUNICORN_ACCESSLOG=/dev/null \
        GUNICORN_PIDFILE="$work/$port.pid" PROMETHEUS_MULTIPROC_DIR="$work/metrics-$port" \
        .venv/bin/gunicorn -c deploy/gunicorn.conf.py bountyexpo.wsgi >"$work/$port.log" 2>&1 &
    pids+=($!)
done
mkdir -p "$work/nginx"
user=(); [ "$(id -u)" -ne 0 ] || user=(--user root)
.venv/bin/python deploy/render_nginx.py --upstream 127.0.0.1:8001 --upstream 127.0.0.1:8002 \
    --listen 8080 --prefix "$work/nginx" "${user[@]}" >"$work/nginx/nginx.conf"
"$(command -v nginx || echo /usr/sbin/nginx)" -e stderr -p "$work/nginx" -c "$work/nginx/nginx.conf" \
    -g 'daemon off;' >"$work/nginx.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    curl -fsS -o /dev/null http://127.0.0.1:8001/readyz 2>/dev/null &&
        curl -fsS -o /dev/null http://127.0.0.1:8002/readyz 2>/dev/null &&
        curl -fsS -o /dev/null http://127.0.0.1:8080/readyz 2>/dev/null && break
    sleep 0.3
done
curl -fsS http://127.0.0.1:8080/readyz; echo

(   # the primary's client backends for the database, every 0.5 s, during the run
    end=$((SECONDS + duration))
    while [ $SECONDS -lt $end ]; do
        psql "$primary_url" -tAc "SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND backend_type = 'client backend'
              AND pid <> pg_backend_pid()" >>"$work/backends" 2>/dev/null || true
        sleep 0.5
    done
) &
sampler=$!

(
    sleep "$stop_replica_at"
    on_replica=$(selects "$replica_url") on_primary=$(selects "$primary_url")
    echo "$on_replica $on_primary" >"$work/at_stop"
    for port in 8001 8002; do
        curl -fsS "http://127.0.0.1:$port/metrics" | grep '^db_replica_fallbacks_total' |
            sed "s/^/instance $port before the stop: /" >>"$work/fallbacks" || true
    done
    as_pg "$bindir/pg_ctl" -D "$work/standby" -m immediate stop >/dev/null
    echo "==> $(date +%T) replica stopped (immediate) after ${stop_replica_at} s"
    sleep $((kill_at - stop_replica_at))
    master=$(cat "$work/8001.pid")
    pkill -KILL -P "$master" || true
    kill -KILL "$master" || true
    echo "==> $(date +%T) instance 127.0.0.1:8001 killed (SIGKILL, master and workers) after ${kill_at} s"
) &
events=$!

.venv/bin/python manage.py loadtest mixed --host http://127.0.0.1:8080 --users "$users" \
    --duration "$duration" --tokens-file "$tokens" --server-pid "$(cat "$work/8002.pid")" \
    --report-dir "$report_dir" \
    --notes "bench/scale/replica_mixed.sh: two instances behind nginx reading from a streaming replica, writing to the primary $path_note; replica stopped at ${stop_replica_at} s, instance 1 killed at ${kill_at} s" \
    2>&1 | tail -n 45 || true
wait "$events" || true
wait "$sampler" || true
echo "primary's client backends for $db ($path_note): most at once $(sort -n "$work/backends" | tail -1)," \
    "median $(sort -n "$work/backends" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')" \
    "over $(wc -l <"$work/backends") samples"
read -r on_replica on_primary <"$work/at_stop"
echo "SELECT statements before the replica stopped: replica $on_replica, primary $on_primary," \
    "replica share $(awk -v r="$on_replica" -v p="$on_primary" 'BEGIN { printf "%.1f %%", 100 * r / (r + p) }')"
cat "$work/fallbacks" 2>/dev/null || true
for port in 8001 8002; do
    echo "instance $port: $(grep -c 'ran again on the primary' "$work/$port.log" || true) requests re-run on the primary," \
        "$(grep -c 'skipped for' "$work/$port.log" || true) replica-skipped warnings"
done
