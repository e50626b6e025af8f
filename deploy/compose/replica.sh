#!/bin/bash
# A streaming replica of the primary: on first start, a base backup with -R (standby.signal and
# primary_conninfo written for us) through its own replication slot; then a hot standby.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h "$PRIMARY_HOST" -U replicator -q; do sleep 1; done
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h "$PRIMARY_HOST" -U replicator \
    -D "$PGDATA" -R -X stream --slot=replica1 --create-slot
  chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c shared_preload_libraries=pg_stat_statements
