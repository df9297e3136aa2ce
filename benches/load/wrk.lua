-- wrk script of benches/load.sh (max-load phase, closed loop). Environment:
--   LOAD_KIND   get | post | mcp   small GET of /v1/files/<id>, a 1 KiB JSON POST to /v1/records,
--                                  or an MCP tools/call of search_docs (POST /mcp, JSON-RPC)
--   LOAD_TOKEN  bearer JWT sent on every request (all variants send the same bytes)
-- The half-load latency phase uses benches/loadgen instead, which sends the same requests.
-- Requests are built once (1,000 of them, cycling the file id) so that wrk spends no Lua time per
-- request. `done` prints one machine-readable RESULT line that load.sh parses.

local kind = os.getenv("LOAD_KIND") or "get"
local token = os.getenv("LOAD_TOKEN") or ""

local requests = {}
local n = 0

local function body_1k()
  local head = '{"table":"events","rows":25,"purpose":"sync","payload":"'
  local tail = '"}'
  return head .. string.rep("x", 1024 - #head - #tail) .. tail
end

function init(args)
  local headers = { ["Authorization"] = "Bearer " .. token, ["Host"] = "load.test" }
  if kind == "mcp" then
    headers["Content-Type"] = "application/json"
    headers["Accept"] = "application/json, text/event-stream"
    headers["MCP-Protocol-Version"] = "2025-06-18"
    for i = 1, 1000 do
      local body = string.format(
        '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"quarterly report %d"}}}',
        i - 1, i - 1)
      requests[i] = wrk.format("POST", "/mcp", headers, body)
    end
  elseif kind == "post" then
    headers["Content-Type"] = "application/json"
    local body = body_1k()
    requests[1] = wrk.format("POST", "/v1/records", headers, body)
  else
    for i = 1, 1000 do
      requests[i] = wrk.format("GET", "/v1/files/f" .. (i - 1), headers, nil)
    end
  end
end

function request()
  n = n + 1
  if n > #requests then n = 1 end
  return requests[n]
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT rps=%.1f requests=%d p50=%.1f p90=%.1f p99=%.1f p999=%.1f max=%.1f errors=%d status_errors=%d\n",
    summary.requests / secs, summary.requests,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
end
