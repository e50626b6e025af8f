#!/bin/sh
# Compose's PgBouncer: the auth file from the environment (PGBOUNCER_USER, PGBOUNCER_PASSWORD:
# the role PgBouncer logs in as, and the password clients give it), then pgbouncer in the
# foreground with deploy/pgbouncer/pgbouncer.ini.
set -eu
umask 077
printf '"%s" "%s"\n' "$PGBOUNCER_USER" "$PGBOUNCER_PASSWORD" > /etc/pgbouncer/userlist.txt
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
