-- wrk script: POST a create-subscription body (a new secret value per request) to one trigger.
-- env: WRK_PATH (…/triggers/{triggerId}/subscriptions), WRK_KEY (bearer key), WRK_INPUTS (the inputs as JSON)
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(os.time() + tid * 7919)
  prefix = string.format("s%d-%d", tid, math.random(1, 1e9))
end
request = function()
  counter = counter + 1
  -- A public IP literal: the address guard accepts it without a DNS lookup.
  local body = string.format([[{"inputs":%s,"webhookUrl":"https://93.184.215.14/h","secrets":{"API_TOKEN":"tok-%s-%d"}}]],
    os.getenv("WRK_INPUTS"), prefix, counter)
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("WRK_KEY")}
  return wrk.format("POST", os.getenv("WRK_PATH"), headers, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f errors_status=%d errors_connect=%d errors_timeout=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect, summary.errors.timeout))
end
