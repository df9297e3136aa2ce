//! End-to-end: the proxy in-process on ephemeral ports in front of a real HTTP upstream on
//! 127.0.0.1, checked over real HTTP.

use lexecon_tests as support;

use std::net::SocketAddr;
use std::sync::Arc;

use support::{free_addr, get, post, start, RuleTable, TestUpstream};

const AGENT: (&str, &str) = ("x-agent-id", "act_ai_agent:tester");

/// Routes: /read (permitted), /delete (denied), /email (escalated), /open (passthrough),
/// /mcp (body-reading MCP route, 1 KiB limit), /big-mcp (1 MiB limit), /limited (2 requests per minute),
/// /nowhere (decider fails with 404).
fn config(upstream: SocketAddr, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  app: {{addrs: ["{upstream}"], connect_timeout: 500ms, read_timeout: 5s}}
identity:
  trusted_actor_header: x-agent-id
routes:
  - name: read
    match: {{path_prefix: /read, methods: [GET, POST]}}
    domain: ai
    classifier: {{kind: none, action: axn_read_data}}
    upstream: app
  - name: delete
    match: {{path_prefix: /delete}}
    domain: ai
    classifier: {{kind: none, action: axn_delete_data}}
    upstream: app
  - name: email
    match: {{path_prefix: /email}}
    domain: ai
    classifier: {{kind: none, action: axn_send_message}}
    upstream: app
  - name: open
    match: {{path_prefix: /open}}
    domain: ai
    upstream: app
    mode: passthrough
  - name: mcp
    match: {{path_prefix: /mcp, methods: [POST]}}
    domain: ai
    classifier: {{kind: mcp}}
    upstream: app
    body_limit: 1KiB
  - name: mcp-large
    match: {{path_prefix: /big-mcp, methods: [POST]}}
    domain: ai
    classifier: {{kind: mcp}}
    upstream: app
    body_limit: 1MiB
  - name: limited
    match: {{path_prefix: /limited}}
    domain: ai
    classifier: {{kind: none, action: axn_read_data}}
    upstream: app
    rate_limit: {{per_actor: 2/m, burst: 2}}
  - name: nowhere
    match: {{path_prefix: /nowhere}}
    domain: nowhere
    upstream: app
"#
    )
}

fn setup() -> (TestUpstream, Arc<RuleTable>, lexecon::server::ServerHandle) {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&["axn_delete_data"], &["axn_send_message"]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    (upstream, rules, server)
}

fn url(server: &lexecon::server::ServerHandle, path: &str) -> String {
    format!("http://{}{}", server.proxy_addr, path)
}

#[test]
fn permitted_request_is_forwarded_with_decision_id_and_traceparent() {
    let (upstream, rules, server) = setup();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = get(
        &url(&server, "/read/doc?x=1"),
        &[
            AGENT,
            ("traceparent", traceparent),
            ("x-lexecon-decision-id", "forged"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["upstream"], "ok");
    assert_eq!(r.header("x-lexecon-decision-id"), Some("dec-1"));
    let got = upstream.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/read/doc?x=1");
    assert_eq!(got[0].header("x-lexecon-decision-id"), Some("dec-1"));
    assert_eq!(got[0].header("traceparent"), Some(traceparent));
    let input = rules.last().unwrap();
    assert_eq!(input.actor, "act_ai_agent:tester");
    assert_eq!(input.action, "axn_read_data");
    assert_eq!(input.domain, "ai");
    server.shutdown();
}

#[test]
fn denied_request_gets_403_json_and_never_reaches_the_upstream() {
    let (upstream, _rules, server) = setup();
    let r = get(
        &url(&server, "/delete/x"),
        &[AGENT, ("x-request-id", "req-abc")],
    );
    assert_eq!(r.status, 403);
    let v = r.json();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reason"], "axn_delete_data is forbidden");
    assert_eq!(v["rule_id"], "test-deny");
    assert_eq!(v["decision_id"], "dec-1");
    assert_eq!(v["request_id"], "req-abc");
    assert_eq!(v["domain"], "ai");
    assert_eq!(r.header("x-lexecon-decision-id"), Some("dec-1"));
    assert!(upstream.requests().is_empty());
    server.shutdown();
}

#[test]
fn escalated_request_gets_403_with_approval_required() {
    let (upstream, _rules, server) = setup();
    let r = post(&url(&server, "/email"), &[AGENT], b"{}");
    assert_eq!(r.status, 403);
    let v = r.json();
    assert_eq!(v["decision"], "escalate");
    assert_eq!(v["approval_required"], true);
    assert!(upstream.requests().is_empty());
    server.shutdown();
}

#[test]
fn request_without_credentials_gets_401_with_www_authenticate() {
    let (upstream, rules, server) = setup();
    let r = get(&url(&server, "/read"), &[]);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(r.json()["error"], "unauthenticated");
    let r = get(
        &url(&server, "/read"),
        &[("authorization", "Bearer not-a-jwt")],
    );
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(rules.calls(), 0);
    assert!(upstream.requests().is_empty());
    server.shutdown();
}

#[test]
fn oversized_body_gets_413_before_classification() {
    let (upstream, rules, server) = setup();
    let body = vec![b'x'; 4096];
    let r = post(
        &url(&server, "/mcp"),
        &[AGENT, ("content-type", "application/json")],
        &body,
    );
    assert_eq!(r.status, 413);
    let v = r.json();
    assert_eq!(v["error"], "payload_too_large");
    assert!(v["reason"].as_str().unwrap().contains("1024"));
    assert_eq!(rules.calls(), 0);
    assert!(upstream.requests().is_empty());
    server.shutdown();
}

#[test]
fn malformed_body_on_a_classified_route_gets_400_with_a_message() {
    let (upstream, rules, server) = setup();
    let r = post(
        &url(&server, "/mcp"),
        &[AGENT, ("content-type", "application/json")],
        b"{not json",
    );
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"], "bad_request");
    assert!(!v["reason"].as_str().unwrap().is_empty());
    assert_eq!(rules.calls(), 0);
    assert!(upstream.requests().is_empty());
    // No decision was made, and the refusal is still recorded, with its reason.
    let refusals = rules.refusals();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].0, "classify");
    assert_eq!(refusals[0].1, v["reason"].as_str().unwrap());
    server.shutdown();
}

#[test]
fn a_retry_whose_approval_cannot_be_looked_up_is_refused_with_the_failure_status() {
    let upstream = TestUpstream::start();
    let rules = Arc::new(RuleTable {
        escalate: vec!["axn_send_message".into()],
        redeem_fails: true,
        ..Default::default()
    });
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    // Without an approval id the escalation answers 403 as usual…
    let r = post(&url(&server, "/email"), &[AGENT], b"{}");
    assert_eq!(r.status, 403);
    // …and a retry with one the decision point cannot redeem fails closed with its status (the
    // decision API answers the same), instead of posing as a fresh escalation.
    let r = post(
        &url(&server, "/email"),
        &[AGENT, ("x-lexecon-approval", "apr-1")],
        b"{}",
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.json()["reason"]
        .as_str()
        .unwrap()
        .contains("approval store unavailable"));
    assert!(upstream.requests().is_empty());
    server.shutdown();
}

#[test]
fn third_request_in_a_minute_gets_429_with_retry_after_whatever_actor_the_header_names() {
    let (upstream, _rules, server) = setup();
    for _ in 0..2 {
        assert_eq!(get(&url(&server, "/limited"), &[AGENT]).status, 200);
    }
    let r = get(&url(&server, "/limited"), &[AGENT]);
    assert_eq!(r.status, 429);
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "retry-after {secs}");
    assert_eq!(r.json()["error"], "rate_limited");
    // Naming another actor in the trusted header buys no fresh budget: on loopback any client can
    // name any actor, so header-named actors share one (issue 15).
    let other = get(
        &url(&server, "/limited"),
        &[("x-agent-id", "act_ai_agent:other")],
    );
    assert_eq!(other.status, 429, "{}", other.body);
    assert_eq!(upstream.requests().len(), 2);
    server.shutdown();
}

#[test]
fn unmatched_request_is_denied_with_403() {
    let (upstream, rules, server) = setup();
    let r = get(&url(&server, "/elsewhere"), &[AGENT]);
    assert_eq!(r.status, 403);
    let v = r.json();
    assert_eq!(v["error"], "no_route");
    assert!(v["reason"].as_str().unwrap().contains("/elsewhere"));
    assert_eq!(rules.calls(), 0);
    assert!(upstream.requests().is_empty());
    server.shutdown();
}

#[test]
fn passthrough_route_forwards_without_identifying_or_deciding() {
    let (upstream, rules, server) = setup();
    let r = post(&url(&server, "/open/x"), &[], b"payload");
    assert_eq!(r.status, 200);
    assert_eq!(rules.calls(), 0);
    let got = upstream.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"payload");
    assert_eq!(got[0].header("x-lexecon-decision-id"), None);
    server.shutdown();
}

#[test]
fn decision_failure_is_answered_with_its_status_and_not_forwarded() {
    let (upstream, _rules, server) = setup();
    let r = get(&url(&server, "/nowhere"), &[AGENT]);
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["error"], "decision_failed");
    assert!(v["reason"].as_str().unwrap().contains("nowhere"));
    assert!(upstream.requests().is_empty());
    server.shutdown();
}

#[test]
fn keep_alive_connection_survives_a_denial() {
    let (upstream, _rules, server) = setup();
    let mut conn = std::net::TcpStream::connect(server.proxy_addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let req = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nhost: app\r\nx-agent-id: act_ai_agent:tester\r\n\r\n")
    };
    let (status, body) = support::exchange(&mut conn, &req("/delete"));
    assert_eq!(status, 403, "{body}");
    // The same connection carries the next request.
    let (status, body) = support::exchange(&mut conn, &req("/read"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.requests().len(), 1);
    server.shutdown();
}

fn down_config(down: SocketAddr, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  down: {{addrs: ["{down}"], connect_timeout: 500ms, circuit_breaker: {{failures: 2, open_for: 1h}}}}
identity: {{anonymous_actor: "act_ai_agent:anon"}}
routes:
  - {{name: down, domain: ai, upstream: down}}
"#
    )
}

#[test]
fn upstream_down_gets_502_then_the_open_circuit_gets_503() {
    let down = free_addr();
    let rules = RuleTable::new(&[], &[]);
    let server = start(move |p, a| down_config(down, p, a), rules.clone());
    for _ in 0..2 {
        let r = get(&url(&server, "/x"), &[]);
        assert_eq!(r.status, 502, "{}", r.body);
        assert_eq!(r.json()["error"], "upstream_unavailable");
    }
    let r = get(&url(&server, "/x"), &[]);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "upstream_circuit_open");
    server.shutdown();
}

#[test]
fn admin_serves_health_and_metrics_by_route_and_outcome() {
    let (_upstream, _rules, server) = setup();
    assert_eq!(get(&url(&server, "/read"), &[AGENT]).status, 200);
    assert_eq!(get(&url(&server, "/delete"), &[AGENT]).status, 403);
    let admin = format!("http://{}", server.admin_addr);
    let health = get(&format!("{admin}/health"), &[]);
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let metrics = get(&format!("{admin}/metrics"), &[]);
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .body
        .contains(r#"lexecon_requests_total{outcome="permit",route="read"} 1"#));
    assert!(metrics
        .body
        .contains(r#"lexecon_requests_total{outcome="deny",route="delete"} 1"#));
    assert!(metrics
        .body
        .contains("lexecon_request_duration_seconds_bucket"));
    assert_eq!(get(&format!("{admin}/nope"), &[]).status, 404);
    server.shutdown();
}

#[test]
fn reload_swaps_the_decider_for_new_requests() {
    let upstream = TestUpstream::start();
    let up = upstream.addr;
    let permissive = RuleTable::new(&[], &[]);
    let yaml = move |p, a| config(up, p, a);
    let server = start(yaml, permissive);
    assert_eq!(get(&url(&server, "/read"), &[AGENT]).status, 200);
    let text = config(up, server.proxy_addr, server.admin_addr);
    let cfg = lexecon_config::Config::from_yaml("reload.yaml", &text).unwrap();
    let strict = RuleTable::new(&["axn_read_data"], &[]);
    server.state().reload(&cfg, strict.clone()).unwrap();
    assert_eq!(get(&url(&server, "/read"), &[AGENT]).status, 403);
    assert_eq!(strict.calls(), 1);
    // An invalid configuration is refused and the running one stays.
    let mut broken = cfg.clone();
    broken.routes[0].upstream = "missing".into();
    assert!(server
        .state()
        .reload(&broken, RuleTable::new(&[], &[]))
        .is_err());
    assert_eq!(get(&url(&server, "/read"), &[AGENT]).status, 403);
    server.shutdown();
}

#[test]
fn chunked_body_above_the_limit_gets_413() {
    let (upstream, rules, server) = setup();
    let mut conn = std::net::TcpStream::connect(server.proxy_addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let chunk = "x".repeat(1000);
    let mut req = String::from(
        "POST /mcp HTTP/1.1\r\nhost: app\r\nx-agent-id: act_ai_agent:tester\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    for _ in 0..3 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("0\r\n\r\n");
    let (status, body) = support::exchange(&mut conn, &req);
    assert_eq!(status, 413, "{body}");
    assert_eq!(rules.calls(), 0);
    assert!(upstream.requests().is_empty());
    server.shutdown();
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_read() {
    let (_upstream, _rules, server) = setup();
    let mut conn = std::net::TcpStream::connect(server.proxy_addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let body = "{not json}";
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: app\r\nx-agent-id: act_ai_agent:tester\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let (status, _) = support::exchange(&mut conn, &head);
    assert_eq!(status, 100);
    let (status, answer) = support::exchange(&mut conn, body);
    assert_eq!(status, 400, "{answer}");
    server.shutdown();
}

fn two_upstreams(a: SocketAddr, b: SocketAddr, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  pool: {{addrs: ["{a}", "{b}"]}}
identity: {{anonymous_actor: "act_ai_agent:anon"}}
routes:
  - {{name: pool, domain: ai, upstream: pool}}
"#
    )
}

#[test]
fn requests_rotate_round_robin_over_upstream_addresses() {
    let (a, b) = (TestUpstream::start(), TestUpstream::start());
    let (aa, ba) = (a.addr, b.addr);
    let server = start(
        move |p, ad| two_upstreams(aa, ba, p, ad),
        RuleTable::new(&[], &[]),
    );
    for _ in 0..4 {
        assert_eq!(get(&url(&server, "/x"), &[]).status, 200);
    }
    assert_eq!((a.requests().len(), b.requests().len()), (2, 2));
    server.shutdown();
}

#[test]
fn a_down_address_is_skipped_for_the_next_one() {
    let up = TestUpstream::start();
    let (down, ok) = (free_addr(), up.addr);
    let server = start(
        move |p, ad| two_upstreams(down, ok, p, ad),
        RuleTable::new(&[], &[]),
    );
    for _ in 0..3 {
        let r = get(&url(&server, "/x"), &[]);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(up.requests().len(), 3);
    server.shutdown();
}

fn slow_config(slow: SocketAddr, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  slow: {{addrs: ["{slow}"], read_timeout: 300ms}}
identity: {{anonymous_actor: "act_ai_agent:anon"}}
routes:
  - {{name: slow, domain: ai, upstream: slow}}
"#
    )
}

#[test]
fn upstream_that_does_not_answer_in_time_gets_504() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let server = start(
        move |p, a| slow_config(slow, p, a),
        RuleTable::new(&[], &[]),
    );
    let r = get(&url(&server, "/x"), &[]);
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.json()["error"], "upstream_timeout");
    server.shutdown();
}

#[test]
fn body_above_the_retry_buffer_is_read_whole_and_refused_before_the_upstream_is_contacted() {
    let (upstream, _rules, server) = setup();
    // 100 KiB: above pingora's 64 KiB retry buffer, below the route's 1 MiB limit. Not JSON, so
    // the classifier rejects it once the whole body has been read.
    let body = vec![b'x'; 100 * 1024];
    let r = post(&url(&server, "/big-mcp"), &[AGENT], &body);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "bad_request");
    // Not even the headers went upstream.
    assert!(upstream.heads().is_empty(), "{:?}", upstream.heads());
    server.shutdown();
}

#[test]
fn body_above_a_large_route_limit_gets_413() {
    let (upstream, _rules, server) = setup();
    // The declared length is enough: the proxy answers before the body is sent.
    let mut conn = std::net::TcpStream::connect(server.proxy_addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /big-mcp HTTP/1.1\r\nhost: app\r\nx-agent-id: act_ai_agent:tester\r\ncontent-length: {}\r\n\r\n",
        1024 * 1024 + 1
    );
    let (status, body) = support::exchange(&mut conn, &head);
    assert_eq!(status, 413, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["reason"].as_str().unwrap().contains("1048576"));
    assert!(upstream.requests().is_empty());
    server.shutdown();
}

#[test]
fn chunked_body_of_unknown_length_above_a_large_route_limit_gets_413() {
    let (upstream, rules, server) = setup();
    let mut conn = std::net::TcpStream::connect(server.proxy_addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let chunk = "x".repeat(64 * 1024);
    let mut req = String::from(
        "POST /big-mcp HTTP/1.1\r\nhost: app\r\nx-agent-id: act_ai_agent:tester\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    // 16 chunks fill the 1 MiB limit exactly; one more byte is over it.
    for _ in 0..16 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("1\r\nx\r\n0\r\n\r\n");
    let (status, body) = support::exchange(&mut conn, &req);
    assert_eq!(status, 413, "{body}");
    assert_eq!(rules.calls(), 0);
    assert!(upstream.heads().is_empty(), "{:?}", upstream.heads());
    server.shutdown();
}

#[test]
fn global_passthrough_mode_forwards_every_route_without_deciding() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&["axn_delete_data"], &[]);
    let up = upstream.addr;
    let server = start(
        move |p, a| format!("{}mode: passthrough\n", config(up, p, a)),
        rules.clone(),
    );
    let r = get(&url(&server, "/delete/x"), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-lexecon-decision-id"), None);
    assert_eq!(rules.calls(), 0);
    assert_eq!(upstream.requests().len(), 1);
    server.shutdown();
}

#[test]
fn reloads_while_requests_run_fail_no_request_and_the_new_decision_applies() {
    let upstream = TestUpstream::start();
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), RuleTable::new(&[], &[]));
    let text = config(up, server.proxy_addr, server.admin_addr);
    let cfg = lexecon_config::Config::from_yaml("reload.yaml", &text).unwrap();
    let target = url(&server, "/read");
    let client = std::thread::spawn(move || {
        let agent = support::client();
        (0..300)
            .map(|_| {
                agent
                    .get(&target)
                    .header(AGENT.0, AGENT.1)
                    .call()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
            .collect::<Vec<u16>>()
    });
    // Swap engines for as long as the client runs, alternating deny and permit.
    let mut reloads = 0;
    while !client.is_finished() {
        let deny: &[&str] = if reloads % 2 == 0 {
            &["axn_read_data"]
        } else {
            &[]
        };
        server
            .state()
            .reload(&cfg, RuleTable::new(deny, &[]))
            .unwrap();
        reloads += 1;
    }
    let statuses = client.join().unwrap();
    assert!(reloads > 10, "only {reloads} reloads");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 403),
        "unexpected statuses: {:?}",
        statuses
            .iter()
            .filter(|s| **s != 200 && **s != 403)
            .collect::<Vec<_>>()
    );
    // Both engines answered some of the requests.
    assert!(statuses.contains(&200) && statuses.contains(&403));
    server
        .state()
        .reload(&cfg, RuleTable::new(&[], &[]))
        .unwrap();
    assert_eq!(get(&url(&server, "/read"), &[AGENT]).status, 200);
    server
        .state()
        .reload(&cfg, RuleTable::new(&["axn_read_data"], &[]))
        .unwrap();
    assert_eq!(get(&url(&server, "/read"), &[AGENT]).status, 403);
    server.shutdown();
}

#[test]
fn bodiless_request_on_a_large_limit_route_is_decided_before_anything_goes_upstream() {
    let (upstream, _rules, server) = setup();
    let mut conn = std::net::TcpStream::connect(server.proxy_addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // No Content-Length, no Transfer-Encoding: the headers are the whole request.
    let req = "POST /big-mcp HTTP/1.1\r\nhost: app\r\nx-agent-id: act_ai_agent:tester\r\n\r\n";
    let (status, body) = support::exchange(&mut conn, req);
    // Not a valid MCP message: refused, and the upstream never saw the request.
    assert_eq!(status, 400, "{body}");
    assert!(upstream.requests().is_empty());
    server.shutdown();
}
