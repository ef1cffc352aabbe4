-- wrk script: the seed's create body, with polling code that differs on every request, so that
-- every create really waits for a syntax check in the sandbox (no remembered verdict).
-- env: WRK_PATH (path incl. integration id), WRK_KEY (bearer key)
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(os.time() + tid * 7919)
  prefix = string.format("u%d-%d", tid, math.random(1, 1e9))
end
request = function()
  counter = counter + 1
  local body = string.format([[{"name":"Neighbour %s-%d","pollingCode":"// %s-%d\nconst r = await fetch('https://api.example.com/issues?since=' + lastPollTime); return (await r.json()).map(i => ({id: i.id}));"}]], prefix, counter, prefix, counter)
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("WRK_KEY")}
  return wrk.format("POST", os.getenv("WRK_PATH"), headers, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f errors_status=%d errors_connect=%d errors_timeout=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect, summary.errors.timeout))
end
