-- wrk script of benches/api_load.sh: one decision request per call (a permit under
-- deploy/policies/ai.yaml). `done` prints a RESULT line that api_load.sh parses.
wrk.method = "POST"
wrk.body = '{"actor":"act_ai_agent:bench","action":"' .. (os.getenv("API_ACTION") or "axn_read_data") .. '","context":{"purpose":"bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-agent-id"] = "act_ai_agent:bench"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f requests=%d p50=%.1f p90=%.1f p99=%.1f errors=%d status_errors=%d\n",
    summary.requests / (summary.duration / 1e6), summary.requests,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
