#!/usr/bin/env python3
"""Soak driver (issue 18), run by benches/soak.sh against `lexecon serve` (the built-in demo).

Sends mixed traffic on keep-alive connections at a steady rate -- MCP permit, deny and escalate,
finance orders, FHIR reads with and without consent -- and checks every answer against what the demo's
policies say it must be. Every --reload-every seconds it sends SIGHUP (a full reload: policies and
routes rebuilt and swapped). Every --sample-every seconds it samples the process's RSS, open file
descriptors and threads from /proc. At the end it prints start, end and max of each and exits 1 if any
answer was unexpected, a request failed, or RSS, descriptors or threads grew beyond their bounds.
Loopback only; stops by itself.

The RSS bound is derived, not fixed: RSS may grow after warm-up by at most what the demo's bounded
maps can hold given the distinct keys this soak sends, plus a slack (printed with its reasoning at
the start; --max-rss-growth-mb overrides it):

    bound = sum over the maps of  min(capacity, distinct keys sent) x entry size  +  SLACK_MB

The keys are counted by replaying the workload this run is set to send (every connection's request
indices, each at its scheduled time): the decision cache keys on the snapshot version, so a key
counts once per snapshot (every reload is a new one) -- (snapshot, request kind, actor); token
reuse keys on the forwarded request (an MCP body carries its JSON-RPC id, so every MCP permit is a
new key) and an entry lives at most tokens.ttl, so it counts the most permits minted within any
ttl; approvals count every escalation (kept up to max_stored); the consent cache counts patients;
the limiters count actors. The demo sets none of these bounds, so they are the defaults (CAPS).
"""

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time

MCP = "/mcp"

# The bounded maps of the soak's configuration (the built-in demo, deploy/demo.yaml, which sets none
# of them: the defaults, docs/architecture.md "Bounded memory under hostile keys"), with an estimate
# of one entry's size in bytes (moka's own per-entry cost, ~300 bytes, included).
CAPS = {
    # policy-cache ServiceConfig::default; key ~150 B + an Arc'd evaluation whose strings the policy shares
    "decision cache": (100_000, 1024),
    # tokens.reuse_capacity; a ~1 KB compact JWS (htm/htu/bdh/ctx claims), its jti, the Arc
    "token reuse": (100_000, 2048),
    # api.approvals.max_stored; the escalated request's decision, context and reason, in memory
    "approvals": (50_000, 4096),
    # server/consent CACHE_CAPACITY per route; a patient's Consent resources as JSON values
    "consent cache": (100_000, 16384),
    # routes[].rate_limit.max_actors, per limited route; an actor id and a governor state
    "rate limiters": (100_000, 256),
}
TOKEN_TTL = 60  # tokens.ttl (the demo's default): a reused token's cache entry lives at most this long
# Allocator and fragmentation (mimalloc's per-thread heaps keep freed pages until they purge), the
# snapshot and upstream connection pools rebuilt at every reload, SQLite's page cache for the
# approvals (<= 2 MiB), the ledger writer's buffers.
SLACK_MB = 16


def mcp_call(i, tool, arguments):
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments}})


def tool_result(status, body, want_error, words=None):
    if status != 200:
        return f"status {status}"
    try:
        result = json.loads(body)["result"]
    except (ValueError, KeyError, TypeError):
        return "not a JSON-RPC result"
    if bool(result.get("isError")) != want_error:
        return f"isError is {result.get('isError')}"
    if words and words not in body:
        return f"no {words!r} in the answer"
    return None


def workload(i):
    """The i-th request: (name, method, path, headers, body, check(status, body) -> error or None).

    Agents named by a header share one rate-limit key per route (a header is not a credential), so
    the mix keeps MCP at a quarter and orders at a twentieth of the traffic: at the default 160 req/s
    that is 40/s and 8/s, under the demo's limits (50/s, 600/min with a burst of 50). A 429 is an
    unexpected answer here.
    """
    agent = {"x-agent-id": f"act_ai_agent:soak-{i % 16}", "content-type": "application/json"}
    kind = i % 20
    if kind in (0, 1, 2):
        return ("mcp-permit", "POST", MCP, agent, mcp_call(i, "search_docs", {"query": "refunds"}),
                lambda s, b: tool_result(s, b, False))
    if kind in (3, 4) and i % 100 == 3:
        # Escalations create pending approvals: one in a hundred requests, spread over 100 agents,
        # stays far below the per-actor and global caps during a soak.
        escalating = dict(agent, **{"x-agent-id": f"act_ai_agent:escalating-{(i // 100) % 100}"})
        return ("mcp-escalate", "POST", MCP, escalating,
                mcp_call(i, "send_email", {"to": "cfo@example.com"}),
                lambda s, b: tool_result(s, b, True, "approval"))
    if kind in (3, 4):
        return ("mcp-deny", "POST", MCP, agent, mcp_call(i, "delete_file", {"path": "/etc/hosts"}),
                lambda s, b: tool_result(s, b, True))
    if kind == 5:
        trader = {"x-agent-id": f"act_trading_algo:soak_{i % 32}", "content-type": "application/json"}
        order = json.dumps({"symbol": "AAPL", "quantity": 40000, "limit_price": 190.5})
        # Escalated in the NYSE session, denied outside it: refused either way.
        return ("order", "POST", "/v1/orders", trader, order,
                lambda s, b: None if s == 403 else f"status {s}")
    if kind < 13:
        return ("fhir-consent", "GET", "/fhir/Patient/123", {"x-agent-id": "act_physician:dr_lee"}, None,
                lambda s, b: None if s == 200 else f"status {s}: {b[:200]}")
    return ("fhir-no-consent", "GET", "/fhir/Patient/456",
            {"x-agent-id": "act_physician:dr_lee", "x-patient-consent": "true"}, None,
            lambda s, b: None if s == 403 else f"status {s}")


def derived_rss_bound(a):
    """(bound in MiB, lines of reasoning): the most the demo's bounded maps can hold given the
    distinct keys this run sends, plus SLACK_MB."""
    per_connection = int(a.rate * a.duration)
    decisions, approvals, patients, actors = set(), 0, set(), set()
    minted = {}  # ttl bucket -> token-reuse keys minted in it
    for k in range(a.connections):
        for n in range(per_connection):
            i = k * 1000003 + n * 7919
            t = n / a.rate
            name, _method, path, headers, body, _check = workload(i)
            actor = headers["x-agent-id"]
            decisions.add((int(t // a.reload_every), name, actor))
            if name == "mcp-escalate":
                approvals += 1
            if path.startswith("/fhir/"):
                patients.add(path)
            if path in (MCP, "/v1/orders"):
                actors.add((path, actor))
            if name in ("mcp-permit", "fhir-consent"):
                key = body if name == "mcp-permit" else (name, actor, path)
                minted.setdefault(int(t // TOKEN_TTL), set()).add(key)
    buckets = sorted(minted)
    # Any ttl-long window lies within two adjacent buckets.
    tokens = max((len(minted[b] | minted.get(b + 1, set())) for b in buckets), default=0)
    keys = {"decision cache": len(decisions), "token reuse": tokens, "approvals": approvals,
            "consent cache": len(patients), "rate limiters": len(actors)}
    lines, total = [], 0
    for name, (cap, size) in CAPS.items():
        held = min(cap, keys[name])
        total += held * size
        lines.append(f"  {name}: min({cap}, {keys[name]} keys) x {size} B = {held * size / 2**20:.1f} MiB")
    bound = total / 2**20 + SLACK_MB
    lines.append(f"  + {SLACK_MB} MiB slack (allocator, per-reload rebuilds, SQLite page cache, ledger buffers)")
    return bound, lines


def sample(pid):
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


class Traffic(threading.Thread):
    def __init__(self, host, port, rate, stop, offset):
        super().__init__(daemon=True)
        self.host, self.port, self.rate, self.stop, self.offset = host, port, rate, stop, offset
        self.sent = 0
        self.unexpected = {}
        self.failures = 0
        self.lock = threading.Lock()

    def run(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        i = self.offset
        while not self.stop.is_set():
            name, method, path, headers, body, check = workload(i)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read().decode("utf-8", "replace")
                error = check(resp.status, text)
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            except (OSError, http.client.HTTPException) as e:
                error = f"request failed: {e}"
                self.failures += 1
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            if error:
                with self.lock:
                    seen = self.unexpected.setdefault(name, [0, error])
                    seen[0] += 1
            self.sent += 1
            i += 7919  # a prime stride: every kind, in every phase of the cycle
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--proxy", default="127.0.0.1:8080")
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--rate", type=float, default=40, help="requests per second per connection")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--reload-every", type=float, default=3)
    p.add_argument("--sample-every", type=float, default=10)
    p.add_argument("--max-rss-growth-mb", type=float, default=None,
                   help="override the derived bound (see the module docs)")
    p.add_argument("--max-fd-growth", type=int, default=16)
    p.add_argument("--max-thread-growth", type=int, default=2)
    a = p.parse_args()
    host, port = a.proxy.rsplit(":", 1)
    bound, reasoning = derived_rss_bound(a)
    if a.max_rss_growth_mb is None:
        a.max_rss_growth_mb = round(bound, 1)
        print(f"RSS growth bound after warm-up: {a.max_rss_growth_mb} MiB, what the demo's bounded maps can"
              " hold given the keys this run sends:")
    else:
        print(f"RSS growth bound after warm-up: {a.max_rss_growth_mb} MiB (given; derived: {bound:.1f} MiB):")
    print("\n".join(reasoning), flush=True)
    stop = threading.Event()
    workers = [Traffic(host, int(port), a.rate, stop, k * 1000003) for k in range(a.connections)]
    for w in workers:
        w.start()
    start = time.monotonic()
    samples = [sample(a.pid)]
    print(f"t=0s rss={samples[0][0]}MiB fds={samples[0][1]} threads={samples[0][2]}", flush=True)
    reloads = 0
    next_reload = start + a.reload_every
    next_sample = start + a.sample_every
    while time.monotonic() - start < a.duration:
        now = time.monotonic()
        if now >= next_reload:
            os.kill(a.pid, signal.SIGHUP)
            reloads += 1
            next_reload += a.reload_every
        if now >= next_sample:
            samples.append(sample(a.pid))
            sent = sum(w.sent for w in workers)
            r, f, t = samples[-1]
            print(f"t={now - start:.0f}s rss={r}MiB fds={f} threads={t} requests={sent} reloads={reloads}",
                  flush=True)
            next_sample += a.sample_every
        time.sleep(0.05)
    stop.set()
    for w in workers:
        w.join(timeout=15)
    samples.append(sample(a.pid))
    sent = sum(w.sent for w in workers)
    failures = sum(w.failures for w in workers)
    unexpected = {}
    for w in workers:
        for name, (count, error) in w.unexpected.items():
            unexpected.setdefault(name, [0, error])[0] += count
    names = ("rss MiB", "open fds", "threads")
    print(f"\n{sent} requests in {a.duration:.0f}s ({sent / a.duration:.0f}/s), {reloads} reloads (SIGHUP)")
    print("| | start | end | max |\n|---|---|---|---|")
    for k, name in enumerate(names):
        print(f"| {name} | {samples[0][k]} | {samples[-1][k]} | {max(s[k] for s in samples)} |")
    problems = []
    # The first sample is taken before any traffic: connection pools, caches and worker threads
    # fill in the first seconds. Growth is measured from the sample after warm-up (the first minute
    # of a long run, the first sample of a short one) to the end.
    warm = max(1, int(60 / a.sample_every)) if a.duration >= 120 else 1
    base = samples[min(len(samples) - 1, warm)]
    print(f"(growth measured from the sample at {warm * a.sample_every:.0f}s: rss={base[0]}MiB fds={base[1]} threads={base[2]})")
    if samples[-1][0] - base[0] > a.max_rss_growth_mb:
        problems.append(f"RSS grew {samples[-1][0] - base[0]} MiB after warm-up (bound {a.max_rss_growth_mb})")
    if samples[-1][1] - base[1] > a.max_fd_growth:
        problems.append(f"open descriptors grew by {samples[-1][1] - base[1]} after warm-up")
    if samples[-1][2] - base[2] > a.max_thread_growth:
        problems.append(f"threads grew by {samples[-1][2] - base[2]} after warm-up")
    for name, (count, error) in sorted(unexpected.items()):
        problems.append(f"{count} unexpected answers to {name}, e.g. {error}")
    if failures:
        problems.append(f"{failures} requests failed")
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print("OK: every answer as expected; RSS, descriptors and threads within bounds")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
