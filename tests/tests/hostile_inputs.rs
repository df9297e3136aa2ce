//! The hostile-input corpus (issue 14): requests an agent on loopback can send on purpose to make
//! Lexecon decide one thing while the upstream does another. Each case is a raw HTTP/1.1 request,
//! the status it must get, and whether the upstream may see it. The decision point permits
//! everything here, so every refusal below is the enforcement point's own, not a policy's.
//!
//! Covered so far: request targets an upstream could read differently (dot segments raw and
//! encoded, encoded separators, backslashes, control characters, invalid escapes, empty segments,
//! an absolute-form authority that disagrees with `Host`) and JSON-RPC batches (off by default,
//! capped, and counted against the rate limit call by call).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use std::net::{SocketAddr, TcpStream};

use lexecon_tests as support;
use support::{exchange, start, RuleTable, TestUpstream};

fn config(upstream: SocketAddr, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  app: {{addrs: ["{upstream}"], connect_timeout: 500ms, read_timeout: 5s}}
identity:
  trusted_actor_header: x-agent-id
routes:
  - name: mcp
    match: {{path_prefix: /mcp, methods: [POST]}}
    domain: ai
    classifier: {{kind: mcp}}
    upstream: app
  - name: batching
    match: {{path_prefix: /batching/mcp, methods: [POST]}}
    domain: ai
    classifier: {{kind: mcp, batch_limit: 3}}
    upstream: app
    rate_limit: {{per_actor: 4/m, burst: 4}}
  - name: orders
    match: {{path_prefix: /v1/orders}}
    domain: ai
    classifier: {{kind: none, action: axn_read_data}}
    upstream: app
  - name: open
    match: {{path_prefix: /open}}
    domain: ai
    upstream: app
    mode: passthrough
"#
    )
}

/// One hostile case: what is sent, the status it must get, and why.
struct Case {
    name: &'static str,
    request: String,
    status: u16,
}

fn request(method: &str, target: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\nhost: lexecon.test\r\nx-agent-id: act_ai_agent:mallory\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
        body.len()
    )
}

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
const ORDER: &str = r#"{"symbol":"AAPL","qty":1000000}"#;

fn target_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // Routed and classified as an MCP ping, resolved by the upstream as an order.
    for target in [
        "/mcp/../v1/orders",
        "/mcp/%2e%2e/v1/orders",
        "/mcp/%2E%2E/v1/orders",
        "/mcp/.%2e/v1/orders",
        "/mcp/%2e./v1/orders",
        "/mcp/./../v1/orders",
        "/open/../v1/orders",
        "/v1/orders/.",
        "/v1/orders/./42",
    ] {
        cases.push(Case {
            name: "dot segment",
            request: request("POST", target, "", ORDER),
            status: 400,
        });
    }
    for (name, target) in [
        ("encoded slash", "/mcp%2f..%2fv1/orders"),
        ("encoded slash (upper)", "/mcp%2F..%2Fv1/orders"),
        ("encoded backslash", "/mcp%5c..%5cv1/orders"),
        ("raw backslash", "/mcp\\..\\v1/orders"),
        ("encoded NUL", "/v1/orders%00.json"),
        ("encoded newline", "/v1/orders%0d%0aX-Injected:%201"),
        ("invalid escape", "/v1/orders%zz"),
        ("truncated escape", "/v1/orders%2"),
        ("double slash", "/v1//orders"),
        ("leading double slash", "//v1/orders"),
    ] {
        cases.push(Case {
            name,
            request: request("POST", target, "", ORDER),
            status: 400,
        });
    }
    // The route matches the path; the authority names another host.
    cases.push(Case {
        name: "absolute-form authority disagrees with Host",
        request: request("POST", "http://internal.admin/v1/orders", "", ORDER),
        status: 400,
    });
    cases
}

fn batch_cases() -> Vec<Case> {
    let two = format!("[{PING},{PING}]");
    let four = format!("[{PING},{PING},{PING},{PING}]");
    vec![
        Case {
            name: "batch on a route without batch_limit",
            request: request("POST", "/mcp", "", &two),
            status: 400,
        },
        Case {
            name: "batch above the route's batch_limit",
            request: request("POST", "/batching/mcp", "", &four),
            status: 400,
        },
    ]
}

#[test]
fn hostile_targets_and_batches_are_refused_before_anything_reaches_the_upstream() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let mut failures = Vec::new();
    for case in target_cases().into_iter().chain(batch_cases()) {
        let mut conn = TcpStream::connect(server.proxy_addr).unwrap();
        let (status, body) = exchange(&mut conn, &case.request);
        if status != case.status {
            failures.push(format!(
                "{}: {:?} got {status}, expected {} ({body})",
                case.name,
                case.request.lines().next().unwrap_or_default(),
                case.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        upstream.requests().len(),
        0,
        "the upstream saw a hostile request"
    );
    assert_eq!(rules.calls(), 0, "refused before any decision");
    server.shutdown();
}

#[test]
fn ordinary_targets_still_pass_so_the_corpus_is_not_refusing_everything() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    for target in [
        "/v1/orders",
        "/v1/orders/42",
        "/v1/orders/",
        "/v1/orders/a.b",
        "/v1/orders/...",
        "/v1/orders/%41",
        "/open/anything?x=../y",
        "http://lexecon.test/v1/orders",
    ] {
        let mut conn = TcpStream::connect(server.proxy_addr).unwrap();
        let (status, body) = exchange(&mut conn, &request("POST", target, "", ORDER));
        assert_eq!(status, 200, "{target}: {body}");
    }
    let mut conn = TcpStream::connect(server.proxy_addr).unwrap();
    let (status, body) = exchange(&mut conn, &request("POST", "/mcp", "", PING));
    assert_eq!(status, 200, "a single MCP request: {body}");
    assert_eq!(upstream.requests().len(), 9);
    server.shutdown();
}

#[test]
fn every_call_of_a_batch_counts_against_the_rate_limit() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let three = format!("[{PING},{PING},{PING}]");
    // Burst 4: a batch of 3 takes 3 tokens…
    let mut conn = TcpStream::connect(server.proxy_addr).unwrap();
    let (status, body) = exchange(&mut conn, &request("POST", "/batching/mcp", "", &three));
    assert_eq!(status, 200, "{body}");
    assert_eq!(rules.calls(), 3);
    // …so a second one of 3 does not fit in the 1 left, although it is one HTTP request.
    let mut conn = TcpStream::connect(server.proxy_addr).unwrap();
    let (status, body) = exchange(&mut conn, &request("POST", "/batching/mcp", "", &three));
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("a batch of 3 calls counts as 3 requests"),
        "{body}"
    );
    assert_eq!(rules.calls(), 3, "the refused batch was not decided");
    assert_eq!(upstream.requests().len(), 1);
    server.shutdown();
}
