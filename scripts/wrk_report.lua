-- wrk script for scripts/bench_overload.py: counts answers by status across threads and
-- prints them with the latency percentiles; WRK_METHOD/WRK_BODY make a JSON request.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  local body = os.getenv("WRK_BODY")
  if body ~= nil and body ~= "" then
    wrk.method = os.getenv("WRK_METHOD") or "POST"
    wrk.body = body
    wrk.headers["Content-Type"] = "application/json"
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("status %d %d\n", status, count))
  end
  io.write(string.format("latency_us p50 %d p99 %d max %d\n", latency:percentile(50),
                         latency:percentile(99), latency.max))
  io.write(string.format("errors connect %d read %d write %d timeout %d\n",
                         summary.errors.connect, summary.errors.read, summary.errors.write,
                         summary.errors.timeout))
end
