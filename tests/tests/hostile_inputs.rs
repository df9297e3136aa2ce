//! The hostile-input corpus (issue 14): requests an agent on loopback can send on purpose to make
//! Lexecon decide one thing while the upstream does another. Each case is a raw HTTP/1.1 request,
//! the status it must get, and whether the upstream may see it. The decision point permits
//! everything here, so every refusal below is the enforcement point's own, not a policy's.
//!
//! Covered so far: request targets an upstream could read differently (dot segments raw and
//! encoded, encoded separators, backslashes, control characters, invalid escapes, empty segments,
//! an absolute-form authority that disagrees with `Host`), JSON-RPC batches (off by default,
//! capped, and counted against the rate limit call by call), framing and headers, bodies of any
//! size decided before forwarding, the shared budget of held bodies (`limits.held_bodies`), slow
//! clients, and protocol upgrades (only a well-formed WebSocket handshake, only on a route that
//! takes it, decided as its own call; `h2c` never).

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
  - name: ws
    match: {{path_prefix: /ws}}
    domain: ai
    classifier: {{kind: none, action: axn_read_data}}
    upstream: app
    upgrade: [websocket]
  - name: open
    match: {{path_prefix: /open}}
    domain: ai
    upstream: app
    mode: passthrough
  - name: orders-rest
    match: {{path_prefix: /v2/orders, methods: [POST]}}
    domain: ai
    classifier:
      kind: rest
      operations:
        - {{method: POST, path: /v2/orders/quote, action: axn_read_data, context: {{note: body./note}}}}
        - {{method: POST, path: /v2/orders, action: axn_delete_data, context: {{note: body./note}}}}
    upstream: app
    body_limit: 1MiB
limits: {{body_timeout: 1s, header_timeout: 1s, header_count: 40, header_bytes: 8KiB}}
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

/// Sends `request` and reads one answer; `(0, "")` when the connection closed without one.
fn try_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    if conn.write_all(request).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A JSON body of about `size` bytes whose `note` pads it.
fn padded(size: usize) -> String {
    format!(r#"{{"note":"{}"}}"#, "n".repeat(size))
}

/// `body` in chunks of `chunk` bytes.
fn chunked(body: &str, chunk: usize) -> String {
    let mut out = String::new();
    for part in body.as_bytes().chunks(chunk) {
        out.push_str(&format!(
            "{:x}\r\n{}\r\n",
            part.len(),
            String::from_utf8_lossy(part)
        ));
    }
    out.push_str("0\r\n\r\n");
    out
}

fn chunked_request(target: &str, body: &str, chunk: usize) -> String {
    format!(
        "POST {target} HTTP/1.1\r\nhost: lexecon.test\r\nx-agent-id: act_ai_agent:mallory\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{}",
        chunked(body, chunk)
    )
}

/// Requests whose body the route's classifier reads, of every size up to the limit and both
/// framings: a denied one must reach the upstream not even as headers; a permitted one reaches it
/// with exactly the bytes decided on.
#[test]
fn bodies_of_any_size_and_framing_are_decided_before_the_upstream_sees_a_byte() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&["axn_delete_data"], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let big = padded(200 * 1024);
    let small = padded(10);
    let denied: Vec<(&str, String)> = vec![
        (
            "small, content-length",
            request("POST", "/v2/orders", "", &small),
        ),
        (
            "200 KiB, content-length",
            request("POST", "/v2/orders", "", &big),
        ),
        (
            "200 KiB, chunked in 1000 chunks",
            chunked_request("/v2/orders", &big, 205),
        ),
        (
            "200 KiB, one chunk",
            chunked_request("/v2/orders", &big, big.len()),
        ),
        ("small, chunked", chunked_request("/v2/orders", &small, 3)),
    ];
    for (name, req) in &denied {
        let (status, body) = try_exchange(server.proxy_addr, req.as_bytes());
        assert_eq!(status, 403, "{name}: {body}");
        assert!(body.contains("axn_delete_data"), "{name}: {body}");
    }
    assert_eq!(
        upstream.heads(),
        Vec::<String>::new(),
        "a denied request's headers reached the upstream"
    );
    let permitted: Vec<(&str, String, &String)> = vec![
        (
            "small, content-length",
            request("POST", "/v2/orders/quote", "", &small),
            &small,
        ),
        (
            "200 KiB, content-length",
            request("POST", "/v2/orders/quote", "", &big),
            &big,
        ),
        (
            "200 KiB, chunked",
            chunked_request("/v2/orders/quote", &big, 4096),
            &big,
        ),
        (
            "small, chunked",
            chunked_request("/v2/orders/quote", &small, 3),
            &small,
        ),
    ];
    for (i, (name, req, sent)) in permitted.iter().enumerate() {
        let (status, body) = try_exchange(server.proxy_addr, req.as_bytes());
        assert_eq!(status, 200, "{name}: {body}");
        let got = upstream.requests();
        assert_eq!(got.len(), i + 1, "{name}");
        assert!(
            got[i].body == sent.as_bytes(),
            "{name}: the upstream got {} bytes, not the {} decided on",
            got[i].body.len(),
            sent.len()
        );
    }
    server.shutdown();
}

/// `Expect: 100-continue` with a body above pingora's 64 KiB retry buffer: the proxy asks for the
/// body, reads it, decides, and a denial still reaches the upstream not at all.
#[test]
fn expect_continue_with_a_large_body_is_decided_before_forwarding() {
    use std::io::Write;
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&["axn_delete_data"], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let big = padded(100 * 1024);
    for (target, expected) in [("/v2/orders", 403), ("/v2/orders/quote", 200)] {
        let mut conn = TcpStream::connect(server.proxy_addr).unwrap();
        let head = format!(
            "POST {target} HTTP/1.1\r\nhost: lexecon.test\r\nx-agent-id: act_ai_agent:mallory\r\n\
             expect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            big.len()
        );
        let (status, _) = exchange(&mut conn, &head);
        assert_eq!(status, 100, "{target}");
        conn.write_all(big.as_bytes()).unwrap();
        let (status, body) = support::read_response(&mut conn);
        assert_eq!(status, expected, "{target}: {body}");
    }
    assert_eq!(upstream.heads(), vec!["POST /v2/orders/quote".to_string()]);
    assert_eq!(upstream.requests()[0].body, big.as_bytes());
    assert_eq!(upstream.requests()[0].header("expect"), None);
    server.shutdown();
}

/// A client that stops sending its body gets 408 once `limits.body_timeout` (1 s here) passes,
/// and the upstream never hears of it.
#[test]
fn a_body_that_stops_arriving_gets_408_and_nothing_goes_upstream() {
    use std::io::Write;
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let body = padded(1000);
    let head = format!(
        "POST /v2/orders/quote HTTP/1.1\r\nhost: lexecon.test\r\nx-agent-id: act_ai_agent:mallory\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    let mut conn = TcpStream::connect(server.proxy_addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body.as_bytes()[..500]).unwrap();
    let started = std::time::Instant::now();
    let (status, answer) = support::read_response(&mut conn);
    assert_eq!(status, 408, "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(upstream.heads().is_empty());
    assert_eq!(rules.calls(), 0);
    server.shutdown();
}

fn head_cases() -> Vec<Case> {
    let many: String = (0..45).map(|i| format!("x-h{i}: v\r\n")).collect();
    let big = format!("x-big: {}\r\n", "v".repeat(9000));
    let raw = |head: &str, body: &str| {
        format!(
            "POST /v2/orders/quote HTTP/1.1\r\nhost: lexecon.test\r\nx-agent-id: act_ai_agent:mallory\r\n{head}connection: close\r\n\r\n{body}"
        )
    };
    let small = padded(10);
    vec![
        Case {
            name: "two Content-Lengths that differ",
            request: raw(
                &format!("content-length: {}\r\ncontent-length: 3\r\n", small.len()),
                &small,
            ),
            status: 400,
        },
        Case {
            name: "a transfer coding other than chunked",
            request: raw("transfer-encoding: gzip, chunked\r\n", &chunked(&small, 4)),
            status: 400,
        },
        Case {
            name: "obs-fold header",
            request: raw(
                &format!(
                    "x-note: a\r\n folded\r\ncontent-length: {}\r\n",
                    small.len()
                ),
                &small,
            ),
            status: 400,
        },
        Case {
            name: "more header fields than limits.header_count",
            request: raw(
                &format!("{many}content-length: {}\r\n", small.len()),
                &small,
            ),
            status: 431,
        },
        Case {
            name: "a header block above limits.header_bytes",
            request: raw(&format!("{big}content-length: {}\r\n", small.len()), &small),
            status: 431,
        },
        Case {
            name: "method override header",
            request: request(
                "POST",
                "/v2/orders/quote",
                "x-http-method-override: DELETE\r\n",
                &small,
            ),
            status: 400,
        },
        Case {
            name: "method override query parameter",
            request: request("POST", "/v2/orders/quote?_method=DELETE", "", &small),
            status: 400,
        },
        Case {
            name: "protocol upgrade (h2c smuggling)",
            request: raw(
                &format!(
                    "upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\ncontent-length: {}\r\n",
                    small.len()
                ),
                &small,
            ),
            status: 400,
        },
        Case {
            name: "Connection nominating an end-to-end header",
            request: request(
                "POST",
                "/v2/orders/quote",
                "connection: x-agent-id\r\n",
                &small,
            ),
            status: 400,
        },
    ]
}

/// A WebSocket handshake's head, with `lines` after the request line and `host`.
fn handshake(method: &str, target: &str, lines: &str) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\nhost: lexecon.test\r\nx-agent-id: act_ai_agent:mallory\r\n{lines}\r\n"
    )
}

const WS: &str = "upgrade: websocket\r\nconnection: Upgrade\r\n\
                  sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n";

/// Upgrades: only a well-formed WebSocket handshake, only on a route with `upgrade: [websocket]`.
fn upgrade_cases() -> Vec<Case> {
    let key = "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let v13 = "sec-websocket-version: 13\r\n";
    let mut cases = vec![
        Case {
            name: "a WebSocket handshake on a route without upgrade",
            request: handshake("GET", "/v1/orders", WS),
            status: 400,
        },
        Case {
            name: "a WebSocket handshake no route takes",
            request: handshake("GET", "/nowhere", WS),
            status: 400,
        },
        Case {
            name: "a WebSocket handshake on a passthrough route",
            request: handshake("GET", "/open/ws", WS),
            status: 400,
        },
        Case {
            name: "a WebSocket handshake by POST",
            request: handshake("POST", "/ws/chat", WS),
            status: 400,
        },
        Case {
            name: "a WebSocket handshake over HTTP/1.0",
            request: handshake("GET", "/ws/chat", WS).replacen("HTTP/1.1", "HTTP/1.0", 1),
            status: 400,
        },
    ];
    for (name, lines) in [
        ("h2c on the WebSocket route", "upgrade: h2c\r\nconnection: upgrade, http2-settings\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n".to_string()),
        ("websocket and h2c in one Upgrade", format!("upgrade: websocket, h2c\r\nconnection: upgrade\r\n{key}{v13}")),
        ("two Upgrade headers", format!("upgrade: websocket\r\nupgrade: h2c\r\nconnection: upgrade\r\n{key}{v13}")),
        ("a WebSocket handshake carrying HTTP2-Settings", format!("{WS}http2-settings: AAMAAABkAAQAAP__\r\n")),
        ("a WebSocket handshake whose Connection does not name upgrade", format!("upgrade: websocket\r\nconnection: keep-alive\r\n{key}{v13}")),
        ("a WebSocket handshake nominating an end-to-end header", format!("upgrade: websocket\r\nconnection: upgrade, x-agent-id\r\n{key}{v13}")),
        ("a WebSocket handshake without a key", format!("upgrade: websocket\r\nconnection: upgrade\r\n{v13}")),
        ("a WebSocket handshake with two keys", format!("{WS}{key}")),
        ("a WebSocket handshake with a short key", format!("upgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: AAAA\r\n{v13}")),
        ("a WebSocket handshake of another version", format!("upgrade: websocket\r\nconnection: upgrade\r\n{key}sec-websocket-version: 8\r\n")),
        ("a WebSocket handshake with a body (smuggled frames or a request)", format!("{WS}content-length: 5\r\n")),
        ("a chunked WebSocket handshake", format!("{WS}transfer-encoding: chunked\r\n")),
        ("Connection: upgrade without Upgrade", "connection: upgrade\r\n".to_string()),
    ] {
        let body = if lines.contains("content-length: 5") {
            "hello"
        } else if lines.contains("chunked") {
            "5\r\nhello\r\n0\r\n\r\n"
        } else {
            ""
        };
        cases.push(Case {
            name,
            request: format!("{}{body}", handshake("GET", "/ws/chat", &lines)),
            status: 400,
        });
    }
    cases
}

#[test]
fn framing_and_headers_an_upstream_could_read_differently_are_refused() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let mut failures = Vec::new();
    for case in head_cases().into_iter().chain(upgrade_cases()) {
        let (status, body) = try_exchange(server.proxy_addr, case.request.as_bytes());
        if status != case.status {
            failures.push(format!(
                "{}: got {status}, expected {} ({body})",
                case.name, case.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(upstream.heads().is_empty(), "{:?}", upstream.heads());
    assert_eq!(rules.calls(), 0, "refused before any decision");
    server.shutdown();
}

/// Hop-by-hop headers are for the client's connection only: a permitted request reaches the
/// upstream without them.
#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let small = padded(10);
    let extra = "keep-alive: timeout=5\r\nproxy-authorization: Basic bWFsbG9yeTp4\r\n\
                 proxy-connection: keep-alive\r\nte: trailers\r\n";
    let (status, body) = try_exchange(
        server.proxy_addr,
        request("POST", "/v2/orders/quote", extra, &small).as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let got = &upstream.requests()[0];
    for name in [
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
    ] {
        assert_eq!(got.header(name), None, "{name} was forwarded");
    }
    assert_eq!(got.header("x-agent-id"), Some("act_ai_agent:mallory"));
    server.shutdown();
}

/// `Transfer-Encoding: chunked` with a `Content-Length`: pingora drops the length (RFC 9112 §6.3)
/// and closes the connection after the answer, so the chunked body is the one decided on and the
/// only framing the upstream sees — no second parser can take the length instead.
#[test]
fn transfer_encoding_with_content_length_is_decided_and_forwarded_as_chunked_only() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&["axn_delete_data"], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let small = padded(10);
    // The length covers only the first chunk line; a length-reading upstream would see garbage.
    let raw = |target: &str| {
        format!(
            "POST {target} HTTP/1.1\r\nhost: lexecon.test\r\nx-agent-id: act_ai_agent:mallory\r\n\
             content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n{}",
            chunked(&small, 4)
        )
    };
    let (status, body) = try_exchange(server.proxy_addr, raw("/v2/orders").as_bytes());
    assert_eq!(status, 403, "{body}");
    assert!(upstream.heads().is_empty());
    let (status, body) = try_exchange(server.proxy_addr, raw("/v2/orders/quote").as_bytes());
    assert_eq!(status, 200, "{body}");
    let got = &upstream.requests()[0];
    assert_eq!(got.header("content-length"), None);
    assert_eq!(got.header("transfer-encoding"), Some("chunked"));
    assert_eq!(got.body, small.as_bytes());
    server.shutdown();
}

/// A slowloris client trickles its header block a line at a time: `limits.header_timeout` (1 s
/// here) bounds the whole head, so the connection is closed and the upstream never hears of it.
#[test]
fn a_header_block_that_trickles_in_is_cut_off_at_the_header_timeout() {
    use std::io::{Read, Write};
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let mut conn = TcpStream::connect(server.proxy_addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    conn.write_all(b"POST /v2/orders/quote HTTP/1.1\r\nhost: lexecon.test\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    // One header line every 200 ms: each read is quick, only the total is too long.
    for i in 0..40 {
        if conn
            .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
            .is_err()
        {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        match conn.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let took = started.elapsed();
    assert!(closed, "the connection stayed open for {took:?}");
    assert!(
        took < std::time::Duration::from_secs(4),
        "closed only after {took:?}"
    );
    assert!(upstream.heads().is_empty());
    assert_eq!(rules.calls(), 0);
    server.shutdown();
}

/// A proxy whose budget of held bodies (`limits.held_bodies`) is one 64 KiB body.
fn tiny_budget(upstream: SocketAddr, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  app: {{addrs: ["{upstream}"], connect_timeout: 500ms, read_timeout: 5s}}
identity:
  trusted_actor_header: x-agent-id
routes:
  - name: quotes
    match: {{path_prefix: /v2/orders, methods: [POST]}}
    domain: ai
    classifier:
      kind: rest
      operations:
        - {{method: POST, path: /v2/orders/quote, action: axn_read_data, context: {{note: body./note}}}}
    upstream: app
    body_limit: 64KiB
limits: {{body_timeout: 1s, held_bodies: 64KiB}}
"#
    )
}

/// The raw answer (head and body) to a request whose connection the server closes.
fn raw_answer(conn: &mut TcpStream) -> String {
    use std::io::Read;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// Bodies held whole before their decision share one budget: while one slow 40 KB body holds most
/// of a 64 KiB budget, a second (declared or chunked) gets 503 with `Retry-After` and the upstream
/// sees nothing of it; the budget comes back when the first completes, when a client goes away
/// mid-body, and when a body times out.
#[test]
fn bodies_held_at_once_share_one_budget_and_give_it_back_however_they_end() {
    use std::io::Write;
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| tiny_budget(up, p, a), rules.clone());
    let body = padded(40_000);
    let head = format!(
        "POST /v2/orders/quote HTTP/1.1\r\nhost: lexecon.test\r\nx-agent-id: act_ai_agent:mallory\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let full = format!("{head}{body}");
    let settle = || std::thread::sleep(std::time::Duration::from_millis(300));

    // The first body arrives slowly: its 40 KB are claimed as soon as its head is read.
    let mut slow = TcpStream::connect(server.proxy_addr).unwrap();
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&body.as_bytes()[..1000]).unwrap();
    settle();

    // A second declared body does not fit: 503 before its body is read.
    let mut second = TcpStream::connect(server.proxy_addr).unwrap();
    second.write_all(full.as_bytes()).unwrap();
    let answer = raw_answer(&mut second);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{answer}"
    );
    assert!(answer.contains("held_bodies_exhausted"), "{answer}");
    assert!(answer.contains("limits.held_bodies"), "{answer}");

    // A chunked body is claimed chunk by chunk: 10 KB fit, 30 KB more do not.
    let mut chunks = TcpStream::connect(server.proxy_addr).unwrap();
    let first_part = padded(10_000);
    chunks
        .write_all(
            format!(
                "POST /v2/orders/quote HTTP/1.1\r\nhost: lexecon.test\r\nx-agent-id: act_ai_agent:mallory\r\n\
                 transfer-encoding: chunked\r\n\r\n{:x}\r\n{first_part}\r\n",
                first_part.len()
            )
            .as_bytes(),
        )
        .unwrap();
    settle();
    let _ = chunks.write_all(format!("7530\r\n{}\r\n", "n".repeat(30_000)).as_bytes());
    let answer = raw_answer(&mut chunks);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(upstream.heads().is_empty(), "{:?}", upstream.heads());
    assert_eq!(rules.calls(), 0, "refused before any decision");

    // The first body completes: decided and forwarded; its bytes come back.
    slow.write_all(&body.as_bytes()[1000..]).unwrap();
    let (status, answer) = support::read_response(&mut slow);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(upstream.requests().len(), 1);

    // A client that goes away mid-body gives its bytes back too…
    let mut gone = TcpStream::connect(server.proxy_addr).unwrap();
    gone.write_all(head.as_bytes()).unwrap();
    gone.write_all(&body.as_bytes()[..1000]).unwrap();
    settle();
    drop(gone);
    settle();
    let (status, answer) = try_exchange(server.proxy_addr, full.as_bytes());
    assert_eq!(status, 200, "after a client went away: {answer}");

    // …and so does one that stops sending (408 at limits.body_timeout).
    let mut stalled = TcpStream::connect(server.proxy_addr).unwrap();
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.write_all(&body.as_bytes()[..1000]).unwrap();
    let (status, answer) = support::read_response(&mut stalled);
    assert_eq!(status, 408, "{answer}");
    let (status, answer) = try_exchange(server.proxy_addr, full.as_bytes());
    assert_eq!(status, 200, "after a body timed out: {answer}");
    assert_eq!(upstream.requests().len(), 3);

    // The last request's bytes are given back when its session ends, which may be just after
    // its client has read the answer: wait (briefly) for the gauge to reach 0.
    let metrics_url = format!("http://{}/metrics", server.admin_addr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let metrics = loop {
        let metrics = support::get(&metrics_url, &[]).body;
        let released = metrics.lines().any(|l| l == "lexecon_held_body_bytes 0");
        if released || std::time::Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        metrics
            .lines()
            .any(|l| l == "lexecon_held_bodies_refused_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l == "lexecon_held_body_bytes 0"),
        "{metrics}"
    );
    server.shutdown();
}

/// SHA-1 (FIPS 180-4), for `Sec-WebSocket-Accept` in the test upstream.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2).
fn websocket_accept(key: &str) -> String {
    use base64::Engine;
    let digest = sha1(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// A tiny WebSocket upstream: records each handshake head, answers 101 with the right
/// `Sec-WebSocket-Accept`, then echoes every byte it gets.
struct WsUpstream {
    addr: SocketAddr,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl WsUpstream {
    fn start() -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if conn.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    seen.lock().unwrap().push(head.clone());
                    let key = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("sec-websocket-key")
                                .then(|| value.trim().to_string())
                        })
                        .unwrap_or_default();
                    let answer = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                         sec-websocket-accept: {}\r\n\r\n",
                        websocket_accept(&key)
                    );
                    if conn.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                    let mut buf = [0u8; 1024];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if conn.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Self { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn websocket_config(upstream: SocketAddr, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  chat: {{addrs: ["{upstream}"], connect_timeout: 500ms, read_timeout: 5s}}
identity:
  trusted_actor_header: x-agent-id
routes:
  - name: chat
    match: {{path_prefix: /ws/chat}}
    domain: ai
    classifier: {{kind: none, action: axn_read_data}}
    upstream: chat
    upgrade: [websocket]
  - name: admin
    match: {{path_prefix: /ws/admin}}
    domain: ai
    classifier: {{kind: none, action: axn_delete_data}}
    upstream: chat
    upgrade: [websocket]
"#
    )
}

/// A WebSocket route: a permitted handshake is decided as its own call (`context.upgrade`), gets
/// the upstream's 101 with the right accept, and frames then pass both ways; a denied one gets
/// 403 and the upstream hears nothing of it.
#[test]
fn a_permitted_websocket_is_decided_then_carried_both_ways_and_a_denied_one_never_reaches_the_upstream(
) {
    use std::io::{Read, Write};
    assert_eq!(
        websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        "RFC 6455's example"
    );
    let upstream = WsUpstream::start();
    let rules = RuleTable::new(&["axn_delete_data"], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| websocket_config(up, p, a), rules.clone());

    let (status, body) = try_exchange(
        server.proxy_addr,
        handshake("GET", "/ws/admin", WS).as_bytes(),
    );
    assert_eq!(status, 403, "{body}");
    assert!(upstream.heads().is_empty(), "{:?}", upstream.heads());
    assert_eq!(rules.last().unwrap().context["upgrade"], "websocket");

    let mut conn = TcpStream::connect(server.proxy_addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    conn.write_all(handshake("GET", "/ws/chat?room=1", WS).as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "closed: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    let input = rules.last().unwrap();
    assert_eq!(input.action, "axn_read_data");
    assert_eq!(input.context["upgrade"], "websocket");
    let seen = upstream.heads();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let seen = seen[0].to_ascii_lowercase();
    assert!(seen.starts_with("get /ws/chat?room=1 http/1.1"), "{seen}");
    for line in [
        "upgrade: websocket",
        "connection: upgrade",
        "sec-websocket-key: dghlihnhbxbszsbub25jzq==",
        "sec-websocket-version: 13",
        "x-lexecon-decision-id:",
    ] {
        assert!(seen.contains(line), "{line} missing upstream: {seen}");
    }
    // A masked text frame "hello", and the echo of its bytes.
    let frame = [
        0x81u8, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    for _ in 0..2 {
        conn.write_all(&frame).unwrap();
        let mut echoed = [0u8; 11];
        conn.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, frame);
    }
    assert_eq!(rules.calls(), 2, "the frames are not decided");
    server.shutdown();
}
