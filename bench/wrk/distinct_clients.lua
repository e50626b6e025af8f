-- wrk script: every request comes from its own client address (X-Forwarded-For), so a server
-- started with TRUSTED_PROXY_COUNT=1 rate-limits per request as for many distinct users: the
-- rate-limit check runs (and costs what it costs) but does not refuse.
-- Usage: wrk -t2 -c50 -d20s -s bench/wrk/distinct_clients.lua 'http://127.0.0.1:8000/api/bounties?limit=20'
local counter = 0

request = function()
  counter = counter + 1
  local n = (counter + math.random(0, 1048575) * 64) % 16777216
  wrk.headers["X-Forwarded-For"] = string.format(
    "10.%d.%d.%d", math.floor(n / 65536), math.floor(n / 256) % 256, n % 256)
  return wrk.format()
end

done = function(summary, latency, requests)
  io.write(string.format("non-2xx/3xx responses: %d\n", summary.errors.status))
end
