#!/usr/bin/env bash
# The project-local PostgreSQL 15 and Redis used by `make run` and `make test`.
#   deploy/services.sh start    start both (initialising the cluster on first use); writes .local/env
#   deploy/services.sh stop     stop both
#   deploy/services.sh status   say what runs where
# A server is skipped when DATABASE_URL / REDIS_URL point elsewhere.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCAL="$ROOT/.local"
PG_PORT=${LOCAL_PG_PORT:-54329}
REDIS_PORT=${LOCAL_REDIS_PORT:-63799}
PG_USER=bountyexpo
PG_PASSWORD=bountyexpo
PG_DB=bountyexpo
ENV_FILE="$LOCAL/env"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$LOCAL"

# PostgreSQL refuses to run as root: as root, every server command runs as `postgres`.
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (apt-get install postgresql-15)."
  as_pg() { (cd / && runuser -u postgres -- "$@"); }
else
  as_pg() { "$@"; }
fi

# Where the cluster lives: .local/postgres, unless the postgres user cannot reach the checkout
# (root's home is mode 700, and CI clones wherever it likes). Then the cluster lives in
# /var/tmp under a name derived from the checkout's path, and .local/postgres links to it.
pg_home() {
  local link="$LOCAL/postgres"
  if [ -L "$link" ]; then readlink -f "$link"; return; fi
  if [ -d "$link" ] || [ "$(id -u)" -ne 0 ] || as_pg test -x "$LOCAL" 2>/dev/null; then
    echo "$link"; return
  fi
  local outside
  outside="/var/tmp/bountyexpo-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
  mkdir -p "$outside"
  ln -sfn "$outside" "$link"
  log "the postgres user cannot reach $LOCAL; the cluster lives in $outside (linked from $link)"
  echo "$outside"
}

pg_bindir() { "$ROOT/deploy/bootstrap.sh" pg-bindir || die "PostgreSQL server binaries not found (apt-get install postgresql-15)."; }

# pg_stat_statements: the perf admin's query statistics; pg_qualstats: the predicates its index
# suggestions start from (the hypopg extension that proves them needs no preload).
PRELOAD="pg_stat_statements,pg_qualstats"

pg_start() {
  local bindir home data
  bindir=$(pg_bindir)
  home=$(pg_home)
  data="$home/data"
  mkdir -p "$home"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$home"
  chmod 0700 "$home"

  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster in $data"
    local pwfile="$home/.pwfile"
    printf '%s\n' "$PG_PASSWORD" > "$pwfile"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$pwfile"
    as_pg "$bindir/initdb" -D "$data" -U "$PG_USER" --pwfile="$pwfile" -E UTF8 --no-locale \
      --auth=scram-sha-256 >"$home/initdb.log" 2>&1 || { cat "$home/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
    echo "include_if_exists = 'bountyexpo.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
  fi

  # Rewritten on every start so a changed port or setting takes effect.
  as_pg tee "$data/bountyexpo.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 256MB
effective_cache_size = 4GB
random_page_cost = 1.1
shared_preload_libraries = '$PRELOAD'
pg_qualstats.sample_rate = 1
# Predicates kept for the whole cluster (default 1000: one busy database pushes out the rest).
pg_qualstats.max = 10000
pg_stat_statements.max = 10000
pg_stat_statements.track = top
track_io_timing = on
log_min_duration_statement = 100
log_line_prefix = '%m [%p] %q%u@%d %a '
# A local development cluster: a crash may lose the last few commits, never corrupts data.
synchronous_commit = off
EOF

  if as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    # A library to preload takes effect only at start: restart a cluster started without it.
    local running
    running=$(PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
      "SHOW shared_preload_libraries" 2>/dev/null || true)
    if [ "$running" != "$PRELOAD" ]; then
      log "restarting PostgreSQL to preload $PRELOAD (it runs with '${running}')"
      as_pg "$bindir/pg_ctl" -D "$data" -l "$home/postgres.log" -w -t 60 restart -m fast >/dev/null ||
        { tail -n 20 "$home/postgres.log" >&2; die "PostgreSQL did not restart"; }
    else
      log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
    fi
  else
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $home/postgres.log)"
    as_pg "$bindir/pg_ctl" -D "$data" -l "$home/postgres.log" -w -t 60 start >/dev/null ||
      { tail -n 20 "$home/postgres.log" >&2; die "PostgreSQL did not start (is port $PG_PORT taken? set LOCAL_PG_PORT)"; }
  fi

  export PGPASSWORD="$PG_PASSWORD"
  if ! psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    log "creating database $PG_DB"
    psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -qc "CREATE DATABASE $PG_DB" >/dev/null
  fi
}

pg_stop() {
  local bindir data
  bindir=$(pg_bindir)
  [ -e "$LOCAL/postgres" ] || return 0
  data="$(readlink -f "$LOCAL/postgres")/data"
  if as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "stopping PostgreSQL"
    as_pg "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
}

redis_running() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

redis_start() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found (apt-get install redis-server)."
  mkdir -p "$LOCAL/redis"
  if redis_running; then
    log "Redis already running on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  log "starting Redis on 127.0.0.1:$REDIS_PORT (log: $LOCAL/redis/redis.log)"
  # A cache and rate-limit counters only: no persistence, least-recently-used eviction.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
    --dir "$LOCAL/redis" --pidfile "$LOCAL/redis/redis.pid" --logfile "$LOCAL/redis/redis.log" \
    --save '' --appendonly no --maxmemory 512mb --maxmemory-policy allkeys-lru
  local _
  for _ in $(seq 50); do redis_running && return 0; sleep 0.1; done
  tail -n 20 "$LOCAL/redis/redis.log" >&2
  die "Redis did not start (is port $REDIS_PORT taken? set LOCAL_REDIS_PORT)"
}

redis_stop() {
  if redis_running; then
    log "stopping Redis"
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
}

write_env() {
  # Settings read this file (real environment variables win). The secret is generated once.
  local secret=""
  [ -f "$ENV_FILE" ] && secret=$(sed -n 's/^SECRET_KEY=//p' "$ENV_FILE")
  [ -n "$secret" ] || secret=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')
  {
    echo "# Written by deploy/services.sh for local use; do not commit. Real env vars take precedence."
    echo "SECRET_KEY=$secret"
    [ -n "${DATABASE_URL:-}" ] || echo "DATABASE_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
    [ -n "${REDIS_URL:-}" ] || echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
  } > "$ENV_FILE.tmp"
  chmod 0600 "$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

case "${1:-}" in
  start)
    if [ -n "${DATABASE_URL:-}" ]; then log "DATABASE_URL is set: not starting a local PostgreSQL"; else pg_start; fi
    if [ -n "${REDIS_URL:-}" ]; then log "REDIS_URL is set: not starting a local Redis"; else redis_start; fi
    write_env
    ;;
  stop)
    pg_stop
    redis_stop
    ;;
  status)
    if redis_running; then echo "redis: running on 127.0.0.1:$REDIS_PORT"; else echo "redis: stopped"; fi
    if pg_isready -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1; then echo "postgres: running on 127.0.0.1:$PG_PORT"; else echo "postgres: stopped"; fi
    ;;
  *) die "usage: $0 start|stop|status" ;;
esac
