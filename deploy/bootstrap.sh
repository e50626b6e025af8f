#!/usr/bin/env bash
# Installs what `make run` and `make test` need and is missing.
#   deploy/bootstrap.sh system   Debian packages (PostgreSQL 15, Redis, python3-venv) when root
#   deploy/bootstrap.sh python   the virtualenv in .venv from requirements.txt (which includes
#                                requirements-runtime.txt)
#   deploy/bootstrap.sh browser  Debian's chromium when root (the browser test of make test)
#   deploy/bootstrap.sh promtool Debian's prometheus package when root (its promtool tests the alert rules)
#   deploy/bootstrap.sh nginx    Debian's nginx-light when root (several instances behind nginx: test, demo)
#   deploy/bootstrap.sh pgbouncer Debian's pgbouncer when root (part of the suite runs through it)
# Each step is skipped when its result is already there, so running it again is cheap.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

pg_bindir() {
  local v
  for v in 15 16 17; do
    if [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then echo "/usr/lib/postgresql/$v/bin"; return 0; fi
  done
  command -v pg_ctl >/dev/null 2>&1 && dirname "$(command -v pg_ctl)" && return 0
  return 1
}

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

system_packages() {
  local missing=()
  if [ -z "${DATABASE_URL:-}" ] && ! pg_bindir >/dev/null; then missing+=(postgresql-15); fi
  # The perf admin's index suggestions: predicates from pg_qualstats, proven with hypopg.
  if [ -z "${DATABASE_URL:-}" ]; then
    local lib
    lib=$(pg_bindir 2>/dev/null | sed 's#/bin$#/lib#') || true
    [ -n "$lib" ] && [ -f "$lib/pg_qualstats.so" ] || missing+=(postgresql-15-pg-qualstats)
    [ -n "$lib" ] && [ -f "$lib/hypopg.so" ] || missing+=(postgresql-15-hypopg)
  fi
  if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then missing+=(redis-server); fi
  if ! command -v psql >/dev/null 2>&1; then missing+=(postgresql-client-15); fi
  local python
  python=$(find_python) || missing+=(python3 python3-venv)
  if [ -n "${python:-}" ] && ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then missing+=(python3-venv); fi
  [ ${#missing[@]} -eq 0 ] && return 0

  if [ "$(id -u)" -ne 0 ] || [ ! -f /etc/debian_version ]; then
    die "missing: ${missing[*]}. Install them (Debian: sudo apt-get install ${missing[*]}), or point DATABASE_URL / REDIS_URL at running servers."
  fi
  log "installing Debian packages: ${missing[*]}"
  apt_install "${missing[@]}"
}

# apt-get install, as root on Debian. policy-rc.d keeps the packages from starting system-wide
# servers we do not use (PostgreSQL's cluster, Redis, Prometheus).
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  local own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  if [ $own_policy -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}

python_env() {
  local python stamp="$VENV/.requirements.sha256" want
  python=$(find_python) || die "Python 3.11 or newer is needed (Debian: apt-get install python3 python3-venv)."
  want=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-runtime.txt" | sha256sum | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv in $VENV with $python"
    "$python" -m venv "$VENV"
  fi
  log "installing Python packages from requirements.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
  echo "$want" > "$stamp"
}

# Debian's Chromium, for the perf admin's browser test (make test only, not make run).
browser_package() {
  command -v chromium >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ] || [ ! -f /etc/debian_version ]; then
    die "missing: chromium (the perf admin's browser test). Install it (Debian: sudo apt-get install chromium)."
  fi
  log "installing Debian package: chromium"
  apt_install chromium
}

# promtool, for the alert-rule tests (make test only). Debian ships it in the prometheus package,
# whose server policy-rc.d keeps from starting: the rules are tested, not served.
promtool_package() {
  command -v promtool >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ] || [ ! -f /etc/debian_version ]; then
    die "missing: promtool (the alert-rule tests). Install it (Debian: sudo apt-get install prometheus), or put a promtool binary from https://prometheus.io/download/ on PATH."
  fi
  log "installing Debian package: prometheus (for promtool)"
  apt_install prometheus
}

# nginx, for the several-instances test and `make scale-demo` (make test only). Debian's
# nginx-light; policy-rc.d keeps its system-wide server from starting.
nginx_package() {
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] && return 0
  if [ "$(id -u)" -ne 0 ] || [ ! -f /etc/debian_version ]; then
    die "missing: nginx (the several-instances test and make scale-demo). Install it (Debian: sudo apt-get install nginx-light)."
  fi
  log "installing Debian package: nginx-light"
  apt_install nginx-light
}

# PgBouncer, for the tests that run part of the suite through it in transaction mode (make test
# only). policy-rc.d keeps Debian's system-wide pgbouncer from starting.
pgbouncer_package() {
  command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] && return 0
  if [ "$(id -u)" -ne 0 ] || [ ! -f /etc/debian_version ]; then
    die "missing: pgbouncer (the PgBouncer tests). Install it (Debian: sudo apt-get install pgbouncer)."
  fi
  log "installing Debian package: pgbouncer"
  apt_install pgbouncer
}

case "${1:-}" in
  system) system_packages ;;
  browser) browser_package ;;
  promtool) promtool_package ;;
  nginx) nginx_package ;;
  pgbouncer) pgbouncer_package ;;
  python) python_env ;;
  pg-bindir) pg_bindir ;;
  *) die "usage: $0 system|python|browser|promtool|nginx|pgbouncer|pg-bindir" ;;
esac
