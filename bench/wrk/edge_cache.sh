#!/usr/bin/env bash
# The cached bounty list through nginx (deploy/nginx.conf rendered for one API server) with its
# micro-cache on, the same nginx with the micro-cache off (every request reaches gunicorn and
# is answered from Redis by the hit path), and the same bytes as a static file served by nginx
# (the ceiling), under wrk in the same run, taking turns for ROUNDS rounds. Prints each round,
# the medians and the ratios to the static file. All three nginx write the template's access
# log; the API runs with its rate limits on and TRUSTED_PROXY_COUNT=2 (wrk's distinct client
# addresses, then nginx), on DATABASE_URL / REDIS_URL or .local/env.
#   bench/wrk/edge_cache.sh     (ROUNDS=3 DURATION=5s CONNECTIONS=50 GUNICORN_WORKERS=5 GUNICORN_THREADS=4)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
here="$root/bench/wrk"
command -v nginx >/dev/null || { echo "nginx is not installed (make nginx)" >&2; exit 1; }
rounds=${ROUNDS:-3}
workers=${GUNICORN_WORKERS:-5} threads=${GUNICORN_THREADS:-4}
api_port=${API_PORT:-8121} on_port=$((api_port + 1)) off_port=$((api_port + 2)) static_port=$((api_port + 3))
user=()
[ "$(id -u)" = 0 ] && user=(--user root)

start_api "$api_port" GUNICORN_WORKERS="$workers" GUNICORN_THREADS="$threads" TRUSTED_PROXY_COUNT=2
wait_ready "http://127.0.0.1:$api_port/readyz"

render() {  # render <listen port> <prefix>: deploy/nginx.conf in front of the API server
    .venv/bin/python deploy/render_nginx.py --upstream "127.0.0.1:$api_port" --listen "$1" --prefix "$2" "${user[@]}"
}
mkdir -p "$work/on" "$work/off"
render "$on_port" "$work/on" >"$work/on/nginx.conf"
render "$off_port" "$work/off" | sed '/^ *proxy_cache edge;/d' >"$work/off/nginx.conf"
grep -q "proxy_cache edge;" "$work/on/nginx.conf" && ! grep -q "proxy_cache edge;" "$work/off/nginx.conf"

list_path="/api/bounties?limit=20"
mkdir -p "$work/static/root/api"
curl -fsS -H "X-Forwarded-For: 10.255.0.1" "http://127.0.0.1:$api_port$list_path" >"$work/static/root/api/list.json"
cat >"$work/static/nginx.conf" <<CONF
${user:+user root;}
worker_processes auto;
pid $work/static/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log /dev/stdout;
    client_body_temp_path $work/static/body;
    proxy_temp_path $work/static/proxy;
    fastcgi_temp_path $work/static/fastcgi;
    uwsgi_temp_path $work/static/uwsgi;
    scgi_temp_path $work/static/scgi;
    server {
        listen 127.0.0.1:$static_port;
        root $work/static/root;
        location / { default_type application/json; }
    }
}
CONF
for name in on off static; do
    nginx -e stderr -t -q -p "$work/$name" -c "$work/$name/nginx.conf"
    start_process "nginx-$name" nginx -e stderr -p "$work/$name" -c "$work/$name/nginx.conf" -g "daemon off;"
done
wait_ready "http://127.0.0.1:$static_port/api/list.json"
wait_ready "http://127.0.0.1:$on_port$list_path"
wait_ready "http://127.0.0.1:$off_port$list_path"
edge=$(curl -fsS -o /dev/null -D - "http://127.0.0.1:$on_port$list_path" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-edge-cache" {print $2}')
[ "$edge" = HIT ] || { echo "the micro-cache answered X-Edge-Cache: '$edge', not HIT" >&2; exit 1; }

rps() {
    wrk -t2 -c"${CONNECTIONS:-50}" -d"${DURATION:-5s}" -s "$here/distinct_clients.lua" "$1" \
        | awk '/non-2xx\/3xx responses:/ && $3 > 0 {print "refused or failed: " $3 > "/dev/stderr"} /Requests\/sec/ {print $2}'
}
static=() on=() off=()
for round in $(seq "$rounds"); do
    static+=("$(rps "http://127.0.0.1:$static_port/api/list.json")")
    on+=("$(rps "http://127.0.0.1:$on_port$list_path")")
    off+=("$(rps "http://127.0.0.1:$off_port$list_path")")
    echo "round $round: static file ${static[-1]} RPS, micro-cache on ${on[-1]} RPS, micro-cache off ${off[-1]} RPS"
done
python3 - "${static[*]}" "${on[*]}" "${off[*]}" "$(stat -c %s "$work/static/root/api/list.json")" <<'PY'
import statistics, sys
static, on, off = (statistics.median(map(float, arg.split())) for arg in sys.argv[1:4])
print(f"medians ({sys.argv[4]}-byte list page): static file through nginx {static:.0f} RPS, "
      f"cached list with the micro-cache {on:.0f} RPS ({on / static:.2f} of the static file), "
      f"without it {off:.0f} RPS ({off / static:.2f})")
PY
