#!/usr/bin/env bash
# Requests per second of the cached bounty list against a trivial view (/healthz) on the same
# running server, measured alternately ROUNDS times with wrk; prints each round, the medians
# and their ratio. Start the server with TRUSTED_PROXY_COUNT=1 so that distinct_clients.lua's
# addresses keep the per-client rate limits from refusing (the check itself still runs).
#   bench/wrk/compare.sh [http://127.0.0.1:8000]    (ROUNDS=3 DURATION=15s CONNECTIONS=50)
set -euo pipefail
host=${1:-http://127.0.0.1:8000}
rounds=${ROUNDS:-3}
here=$(cd "$(dirname "$0")" && pwd)
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }

rps() {
    wrk -t2 -c"${CONNECTIONS:-50}" -d"${DURATION:-15s}" -s "$here/distinct_clients.lua" "$1" \
        | awk '/non-2xx\/3xx responses:/ && $3 > 0 {print "refused or failed: " $3 > "/dev/stderr"} /Requests\/sec/ {print $2}'
}

trivial=() cached=()
for round in $(seq "$rounds"); do
    trivial+=("$(rps "$host/healthz")")
    cached+=("$(rps "$host/api/bounties?limit=20")")
    echo "round $round: /healthz ${trivial[-1]} RPS, /api/bounties?limit=20 ${cached[-1]} RPS"
done
python3 - "${trivial[*]}" "${cached[*]}" <<'PY'
import statistics, sys
trivial = statistics.median(map(float, sys.argv[1].split()))
cached = statistics.median(map(float, sys.argv[2].split()))
print(f"median: trivial view {trivial:.0f} RPS, cached bounty list {cached:.0f} RPS, ratio {cached / trivial:.2f}")
PY
