#!/bin/bash
# Several API instances behind nginx on this machine (make scale-demo): gunicorn on each of
# SCALE_PORTS (default 8001 8002, TRUSTED_PROXY_COUNT=1: nginx forwards the client address) and
# nginx on SCALE_LISTEN (default 8080) with deploy/nginx.conf rendered for them. Ctrl-C stops all.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
read -r -a PORTS <<< "${SCALE_PORTS:-8001 8002}"
LISTEN=${SCALE_LISTEN:-8080}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
prefix="$ROOT/.local/nginx"
mkdir -p "$prefix"

render=(.venv/bin/python deploy/render_nginx.py --listen "$LISTEN" --prefix "$prefix")
for port in "${PORTS[@]}"; do render+=(--upstream "127.0.0.1:$port"); done
# As root nginx would run its workers as "nobody", who cannot reach .local.
[ "$(id -u)" -ne 0 ] || render+=(--user root)
"${render[@]}" > "$prefix/nginx.conf"

pids=()
stop_all() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop_all EXIT INT TERM
for port in "${PORTS[@]}"; do
  BIND="127.0.0.1:$port" GUNICORN_PIDFILE="$ROOT/.local/gunicorn-$port.pid" TRUSTED_PROXY_COUNT=1 \
    .venv/bin/gunicorn -c deploy/gunicorn.conf.py bountyexpo.wsgi &
  pids+=($!)
done
"$NGINX" -e stderr -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' &
pids+=($!)
echo "Serving on http://127.0.0.1:$LISTEN through nginx, instances on ${PORTS[*]}. Ctrl-C stops all."
wait -n
