//! End-to-end with the real product: `Engine::from_config` on a temporary data directory with the
//! shipped policy files (`deploy/policies/`), the server in-process on ephemeral ports, real HTTP
//! upstreams on 127.0.0.1, and every decision checked in the signed ledger afterwards.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::{deploy_dir, post, EngineServer, StreamingUpstream, TestUpstream};

const AGENT: (&str, &str) = ("x-agent-id", "act_ai_agent:tester");
const JSON: (&str, &str) = ("content-type", "application/json");
const MCP_ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");

/// The product configuration: MCP routes (tool-error denials with `tools/list` filtering at
/// `/mcp`; JSON-RPC-error denials without filtering at `/strict/mcp`) to `tools`, REST orders and
/// FHIR to `api`; finance with a UTC venue open 00:00–23:59 every weekday and no holidays.
fn config(
    proxy: SocketAddr,
    admin: SocketAddr,
    dir: &Path,
    tools: SocketAddr,
    api: SocketAddr,
    ai_policy: &Path,
) -> String {
    let policies = deploy_dir().join("policies");
    format!(
        r#"
node_id: e2e
data_dir: "{data}"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  tools: {{addrs: ["{tools}"], connect_timeout: 500ms, read_timeout: 10s}}
  api: {{addrs: ["{api}"], connect_timeout: 500ms, read_timeout: 10s}}
identity:
  trusted_actor_header: x-agent-id
routes:
  - name: mcp-tools
    match: {{path_prefix: /mcp, methods: [POST]}}
    domain: ai
    classifier:
      kind: mcp
      tools: {{"delete_*": axn_delete_data, "send_*": axn_send_message, "read_*": axn_read_data, "search_*": axn_read_data}}
      filter_tools_list: true
      batch_limit: 16
    upstream: tools
  - name: mcp-strict
    match: {{path_prefix: /strict/mcp, methods: [POST]}}
    domain: ai
    classifier:
      kind: mcp
      tools: {{"delete_*": axn_delete_data, "send_*": axn_send_message, "read_*": axn_read_data, "search_*": axn_read_data}}
      denial: jsonrpc_error
      batch_limit: 16
    upstream: tools
  - name: orders
    match: {{path_prefix: /v1/orders, methods: [POST]}}
    domain: finance
    classifier:
      kind: rest
      operations:
        - method: POST
          path: /v1/orders
          action: axn_place_order
          resource: "res_security:{{body./symbol}}"
          context:
            symbol: body./symbol
            quantity: body./quantity
            limit_price: body./limit_price
            order_value: "mul(body./quantity, body./limit_price)"
            venue: header.x-venue
    upstream: api
  - name: fhir
    match: {{path_prefix: /fhir, methods: [GET, POST]}}
    domain: healthcare
    classifier: {{kind: fhir, base_path: /fhir, consent_header: x-patient-consent}}
    upstream: api
unmatched: deny
domain_settings:
  finance:
    default_venue: TEST
    venues:
      TEST: {{time_zone: UTC, open: "00:00", close: "23:59"}}
      SHUT: {{time_zone: UTC, open: "00:00", close: "23:59", holidays: [{holidays}]}}
policies:
  ai: "{ai}"
  finance: "{finance}"
  healthcare: "{healthcare}"
telemetry: {{log_format: text}}
ledger:
  redact:
    ai: {{"args.query": hash, "args.account": mask, mcp_tool: keep}}
"#,
        data = dir.join("data").display(),
        holidays = shut_days(),
        ai = ai_policy.display(),
        finance = policies.join("finance.yaml").display(),
        healthcare = policies.join("healthcare.yaml").display(),
    )
}

/// Yesterday, today and tomorrow (UTC): the `SHUT` venue's holidays, so it is closed whenever
/// the test runs.
fn shut_days() -> String {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    [-1, 0, 1]
        .map(|d| {
            today
                .checked_add(jiff::Span::new().days(d))
                .unwrap()
                .to_string()
        })
        .join(", ")
}

/// Starts the product in front of `tools` (MCP) and `api` (REST, FHIR) with the shipped policies.
fn product(tools: SocketAddr, api: SocketAddr) -> EngineServer {
    let ai = deploy_dir().join("policies/ai.yaml");
    EngineServer::start(move |p, a, dir| config(p, a, dir, tools, api, &ai))
}

/// The product in front of a tools upstream that gives every call `answer` (and an API upstream):
/// both upstreams are returned, to be kept alive and asked what they saw.
fn product_answering(answer: &[u8]) -> (TestUpstream, TestUpstream, EngineServer) {
    let tools = TestUpstream::answering(answer);
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);
    (tools, api, server)
}

fn call(id: u64, tool: &str, arguments: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
        .to_string()
        .into_bytes()
}

fn decision_ids(reply: &support::Reply) -> Vec<String> {
    reply
        .header("x-lexecon-decision-id")
        .unwrap_or_else(|| panic!("no decision id on {}: {}", reply.status, reply.body))
        .split(',')
        .map(str::to_string)
        .collect()
}

/// The decision entries of the ledger by decision id.
fn ledger_decisions(entries: &[Value]) -> std::collections::BTreeMap<String, Value> {
    entries
        .iter()
        .filter_map(|e| Some((e.get("decision_id")?.as_str()?.to_string(), e.clone())))
        .collect()
}

#[test]
fn mcp_tools_call_is_forwarded_with_a_capability_token_that_verifies_against_the_jwks() {
    let (tools, _api, mut server) = product_answering(
        br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"found"}],"isError":false}}"#,
    );

    let r = post(
        &server.url("/mcp"),
        &[AGENT, JSON, MCP_ACCEPT],
        &call(1, "search_docs", json!({"query": "refunds"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["result"]["content"][0]["text"], json!("found"));
    let ids = decision_ids(&r);
    assert_eq!(ids.len(), 1);

    let forwarded = tools.requests();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].header("x-lexecon-decision-id"), Some(&*ids[0]));
    let token = forwarded[0]
        .header("x-lexecon-capability")
        .expect("capability token forwarded");
    let jwks = lexecon_token::parse_jwks(&server.engine.keys().jwks_json()).unwrap();
    let claims = lexecon_token::verify_token(token, &jwks, Some("tools")).unwrap();
    assert_eq!(claims.sub, "act_ai_agent:tester");
    assert_eq!(claims.act, "axn_read_data");
    assert_eq!(claims.res.as_deref(), Some("res_api:search_docs"));
    assert_eq!(claims.dec, ids[0]);
    assert_eq!(claims.dom, "ai");
    // A token for another audience does not verify.
    assert!(lexecon_token::verify_token(token, &jwks, Some("api")).is_err());

    // The token is bound to this request: method, target and body (issue 15).
    assert_eq!(claims.htm.as_deref(), Some("POST"));
    assert_eq!(claims.htu.as_deref(), Some("/mcp"));
    assert!(claims.bdh.is_some() && claims.ctx.is_some(), "{claims:?}");

    // The same request again (byte for byte) reuses the token; its own decision is still
    // recorded (by the ledger writer, since nothing on the request names that entry).
    let again = post(
        &server.url("/mcp"),
        &[AGENT, JSON, MCP_ACCEPT],
        &call(1, "search_docs", json!({"query": "refunds"})),
    );
    assert_eq!(again.status, 200, "{}", again.body);
    let again_ids = decision_ids(&again);
    assert_ne!(again_ids, ids);
    let forwarded = tools.requests();
    assert_eq!(forwarded[1].header("x-lexecon-capability"), Some(token));
    // Another body (here only the JSON-RPC id differs) is another binding: another token.
    let other = post(
        &server.url("/mcp"),
        &[AGENT, JSON, MCP_ACCEPT],
        &call(2, "search_docs", json!({"query": "refunds"})),
    );
    assert_eq!(other.status, 200, "{}", other.body);
    assert_ne!(
        tools.requests()[2].header("x-lexecon-capability"),
        Some(token)
    );

    let ledger = ledger_decisions(&server.stop_and_read_ledger());
    let entry = &ledger[&ids[0]];
    assert_eq!(entry["decision"], json!("permit"));
    assert_eq!(claims.led, entry["entry_hash"].as_str().unwrap());
    let second = &ledger[&again_ids[0]];
    assert_eq!(second["decision"], json!("permit"));
    assert_eq!(second["action"], json!("axn_read_data"));
    assert_eq!(second["previous_hash"].as_str().map(str::len), Some(64));
}

/// Hostile input: an agent puts a secret into tool arguments the ledger redacts, and repeats the
/// call so that its capability token is reused — the path where the request thread digests and
/// redacts the context itself and hands the writer only the redacted fields. Every entry shows
/// the configured fields hashed, masked or kept, the same on the first call (whose entry the
/// request thread builds to link the new token) as on the repeats, and the secrets appear nowhere
/// in the ledger's files.
#[test]
fn a_repeated_call_never_gets_redacted_arguments_into_the_ledger_in_clear() {
    let (tools, _api, mut server) = product_answering(
        br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}"#,
    );
    let secret = "SECRET-4242-do-not-log";
    let account = "ACCT-99887766";
    let body = call(
        1,
        "search_docs",
        json!({"query": secret, "account": account, "page": 2}),
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = post(&server.url("/mcp"), &[AGENT, JSON, MCP_ACCEPT], &body);
        assert_eq!(r.status, 200, "{}", r.body);
        ids.push(decision_ids(&r).remove(0));
    }
    // The repeats reused the first call's token: the handed-over path was taken.
    let forwarded = tools.requests();
    assert_eq!(forwarded.len(), 3);
    let token = forwarded[0].header("x-lexecon-capability").unwrap();
    assert_eq!(forwarded[2].header("x-lexecon-capability"), Some(token));

    let ledger_dir = server.ledger_dir();
    let ledger = ledger_decisions(&server.stop_and_read_ledger());
    let hashed = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            serde_json::to_vec(secret).unwrap()
        ))
    );
    let expected =
        json!({"args.query": hashed, "args.account": "*********7766", "mcp_tool": "search_docs"});
    for id in &ids {
        assert_eq!(ledger[id]["context"], expected, "{id}");
        assert_eq!(
            ledger[id]["context_digest"].as_str().map(str::len),
            Some(64)
        );
    }
    for file in std::fs::read_dir(&ledger_dir).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap_or_default();
        assert!(
            !text.contains("SECRET-4242"),
            "the secret reached the ledger"
        );
        assert!(!text.contains(account), "the account reached the ledger");
    }
}

#[test]
fn mcp_denied_call_is_a_tool_error_by_default_and_a_jsonrpc_error_on_the_strict_route() {
    let tools = TestUpstream::start();
    let api = TestUpstream::start();
    let mut server = product(tools.addr, api.addr);

    let r = post(
        &server.url("/mcp"),
        &[AGENT, JSON, MCP_ACCEPT],
        &call(7, "delete_file", json!({"path": "a.txt"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["id"], json!(7));
    assert_eq!(body["result"]["isError"], json!(true));
    let text = body["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("AI agents may not delete data"), "{text}");
    assert!(text.contains("Do not retry"), "{text}");
    let tool_error_id = decision_ids(&r).remove(0);
    assert!(text.contains(&tool_error_id), "{text}");

    let r = post(
        &server.url("/strict/mcp"),
        &[AGENT, JSON, MCP_ACCEPT],
        &call(8, "delete_file", json!({"path": "a.txt"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["id"], json!(8));
    assert!(body.get("result").is_none(), "{body}");
    assert_eq!(body["error"]["code"], json!(-32001));
    assert_eq!(body["error"]["data"]["decision"], json!("deny"));
    assert_eq!(
        body["error"]["data"]["rule_id"],
        json!("no-deletes-by-agents")
    );
    let rpc_error_id = decision_ids(&r).remove(0);
    assert_eq!(body["error"]["data"]["decision_id"], json!(rpc_error_id));

    assert!(
        tools.requests().is_empty(),
        "a denied call reached the tool server"
    );
    let ledger = ledger_decisions(&server.stop_and_read_ledger());
    for id in [&tool_error_id, &rpc_error_id] {
        assert_eq!(ledger[id]["decision"], json!("deny"));
        assert_eq!(ledger[id]["action"], json!("axn_delete_data"));
    }
}

#[test]
fn mcp_name_header_that_disagrees_with_the_body_is_rejected_with_400() {
    let tools = TestUpstream::start();
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);

    let r = post(
        &server.url("/mcp"),
        &[
            AGENT,
            JSON,
            MCP_ACCEPT,
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "search_docs"),
        ],
        &call(3, "delete_file", json!({"path": "/etc/passwd"})),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let reason = r.json()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("search_docs") && reason.contains("delete_file"),
        "{reason}"
    );

    // The same request with an agreeing header is decided on the body (and denied).
    let r = post(
        &server.url("/mcp"),
        &[
            AGENT,
            JSON,
            MCP_ACCEPT,
            ("mcp-method", "tools/call"),
            ("mcp-name", "delete_file"),
        ],
        &call(4, "delete_file", json!({"path": "/etc/passwd"})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["isError"], json!(true));
    assert!(tools.requests().is_empty());
}

#[test]
fn malformed_json_is_rejected_with_400_saying_what_is_wrong() {
    let tools = TestUpstream::start();
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);

    let r = post(
        &server.url("/mcp"),
        &[AGENT, JSON],
        br#"{"jsonrpc":"2.0","id":1,"method":"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], json!("bad_request"));
    assert!(!r.json()["reason"].as_str().unwrap().is_empty());

    let r = post(&server.url("/v1/orders"), &[AGENT, JSON], b"{not json");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(tools.requests().is_empty() && api.requests().is_empty());
}

/// A raw HTTP/1.1 response whose chunked body is read chunk by chunk.
struct Streamed {
    reader: BufReader<TcpStream>,
    status: u16,
    headers: Vec<(String, String)>,
}

impl Streamed {
    fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Self {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        out.extend_from_slice(body);
        conn.write_all(&out).unwrap();
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        Self {
            reader,
            status,
            headers,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next chunk of the body; `None` at its end.
    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        assert_eq!(self.header("transfer-encoding"), Some("chunked"));
        let mut size = String::new();
        self.reader.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; n + 2];
        self.reader.read_exact(&mut chunk).unwrap();
        chunk.truncate(n);
        (n > 0).then_some(chunk)
    }

    /// Reads chunks until `needle` has arrived; returns everything read.
    fn read_until(&mut self, needle: &str) -> String {
        let mut seen = String::new();
        while !seen.contains(needle) {
            match self.next_chunk() {
                Some(c) => seen.push_str(&String::from_utf8(c).unwrap()),
                None => panic!("body ended before {needle:?}: {seen:?}"),
            }
        }
        seen
    }

    fn read_to_end(&mut self) -> String {
        let mut seen = String::new();
        while let Some(c) = self.next_chunk() {
            seen.push_str(&String::from_utf8(c).unwrap());
        }
        seen
    }
}

#[test]
fn sse_response_streams_through_before_the_upstream_finishes() {
    let events: Vec<Vec<u8>> = vec![
        b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n".to_vec(),
        b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"done\"}]}}\n\n".to_vec(),
    ];
    let tools = StreamingUpstream::start("text/event-stream", events, true);
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);

    let mut resp = Streamed::post(
        server.handle().proxy_addr,
        "/mcp",
        &[AGENT, JSON, MCP_ACCEPT],
        &call(5, "run_report", json!({"month": "2026-10"})),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.header("x-lexecon-decision-id").is_some());
    // The upstream holds the second event until released: the first arriving now proves that
    // the proxy does not buffer the stream.
    let first = resp.read_until("notifications/progress");
    assert!(!first.contains("\"id\":5"), "{first}");
    tools.release();
    let rest = resp.read_to_end();
    assert!(rest.contains("\"text\":\"done\""), "{rest}");
    assert_eq!(tools.requests().len(), 1);
}

const TOOLS: &str = r#"[{"name":"search_docs","inputSchema":{"type":"object"}},{"name":"read_file","inputSchema":{"type":"object"}},{"name":"delete_file","inputSchema":{"type":"object"}},{"name":"send_email","inputSchema":{"type":"object"}},{"name":"run_report","inputSchema":{"type":"object"}}]"#;

fn listed(result: &Value) -> Vec<String> {
    result["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {result}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tools_list_json_hides_denied_tools_and_keeps_escalated_ones() {
    let (tools, _api, server) = product_answering(
        format!(r#"{{"jsonrpc":"2.0","id":2,"result":{{"tools":{TOOLS}}}}}"#).as_bytes(),
    );
    let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

    let r = post(&server.url("/mcp"), &[AGENT, JSON, MCP_ACCEPT], list);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        listed(&r.json()),
        ["search_docs", "read_file", "send_email", "run_report"],
        "delete_file is forbidden for agents; send_email only needs approval"
    );
    assert_eq!(r.json()["id"], json!(2));
    assert!(
        r.header("content-length").is_none()
            || r.body.len()
                == r.header("content-length")
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
    );

    // An actor no rule permits anything may not even list (strict: deny by default).
    let r = post(
        &server.url("/mcp"),
        &[("x-agent-id", "act_human_user:alice"), JSON, MCP_ACCEPT],
        list,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], json!(-32001), "{}", r.body);
    assert_eq!(tools.requests().len(), 1);

    // The route without `filter_tools_list` passes the list untouched.
    let r = post(&server.url("/strict/mcp"), &[AGENT, JSON, MCP_ACCEPT], list);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(listed(&r.json()).len(), 5);
}

#[test]
fn tools_list_sse_is_filtered_event_by_event() {
    let events: Vec<Vec<u8>> = vec![
        b": keep-alive\r\n\r\n".to_vec(),
        format!("event: message\r\nid: 1\r\ndata: {{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{{\"tools\":{TOOLS}}}}}\r\n\r\n")
            .into_bytes(),
    ];
    let tools = StreamingUpstream::start("text/event-stream", events, true);
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);

    let mut resp = Streamed::post(
        server.handle().proxy_addr,
        "/mcp",
        &[AGENT, JSON, MCP_ACCEPT],
        br#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
    );
    assert_eq!(resp.status, 200);
    // Complete events still stream: the comment arrives while the list is held upstream.
    let first = resp.read_until(": keep-alive\r\n\r\n");
    assert_eq!(first, ": keep-alive\r\n\r\n");
    tools.release();
    let rest = resp.read_to_end();
    assert!(
        rest.starts_with("event: message\r\nid: 1\r\ndata: "),
        "{rest:?}"
    );
    assert!(rest.ends_with("\r\n\r\n"), "{rest:?}");
    let data = rest.lines().nth(2).unwrap().strip_prefix("data: ").unwrap();
    assert_eq!(
        listed(&serde_json::from_str(data).unwrap()),
        ["search_docs", "read_file", "send_email", "run_report"]
    );
}

#[test]
fn tools_list_sse_with_lone_cr_line_endings_or_a_bom_is_still_filtered() {
    let body = format!(
        "\u{feff}event: message\rdata: {{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{{\"tools\":{TOOLS}}}}}\r\r"
    );
    let tools = StreamingUpstream::start("text/event-stream", vec![body.into_bytes()], false);
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);
    let r = post(
        &server.url("/mcp"),
        &[AGENT, JSON, MCP_ACCEPT],
        br#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
    );
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("delete_file"), "{:?}", r.body);
    assert!(r.body.contains("search_docs"), "{:?}", r.body);
}

#[test]
fn tools_list_that_is_not_json_is_withheld() {
    let tools = StreamingUpstream::start(
        "application/json",
        vec![br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"delete_file"}"#.to_vec()],
        false,
    );
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);
    let r = post(
        &server.url("/mcp"),
        &[AGENT, JSON, MCP_ACCEPT],
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    );
    assert!(!r.body.contains("delete_file"), "{:?}", r.body);
    assert_eq!(r.json()["error"]["code"], json!(-32603));
    assert_eq!(
        r.json()["id"],
        json!(2),
        "the error answers the listing call"
    );
}

/// The finance session check uses the clock: the test venue is open 00:00–23:59 UTC on weekdays.
fn venue_open_now() -> bool {
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let weekend = matches!(
        now.weekday(),
        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
    );
    let closed_minute = now.hour() == 23 && now.minute() >= 59;
    !(weekend || closed_minute)
}

#[test]
fn order_over_the_limit_is_escalated_on_any_weekday_and_denied_outside_the_session() {
    let tools = TestUpstream::start();
    let api = TestUpstream::start();
    let mut server = product(tools.addr, api.addr);
    let algo = ("x-agent-id", "act_trading_algo:momentum");
    let order = |quantity: u64, price: f64| {
        json!({"symbol": "AAPL", "quantity": quantity, "limit_price": price})
            .to_string()
            .into_bytes()
    };

    // A venue that is closed today: denied, whatever the day.
    let shut = post(
        &server.url("/v1/orders"),
        &[algo, JSON, ("x-venue", "SHUT")],
        &order(1000, 150.0),
    );
    assert_eq!(shut.status, 403, "{}", shut.body);
    let body = shut.json();
    assert_eq!(body["decision"], json!("deny"), "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("outside the SHUT regular session"),
        "{body}"
    );
    let shut_id = decision_ids(&shut).remove(0);

    let open_before = venue_open_now();
    let small = post(
        &server.url("/v1/orders"),
        &[algo, JSON],
        &order(1000, 150.0),
    );
    let big = post(
        &server.url("/v1/orders"),
        &[algo, JSON],
        &order(100_000, 200.0),
    );
    let medium = post(
        &server.url("/v1/orders"),
        &[algo, JSON],
        &order(30_000, 200.0),
    );
    let open_after = venue_open_now();
    if open_before != open_after {
        // The session opened or closed between the requests; the outcome is not determined.
        return;
    }
    let mut ids = decision_ids(&small);
    ids.extend(decision_ids(&big));
    ids.extend(decision_ids(&medium));
    ids.push(shut_id);
    if open_before {
        assert_eq!(small.status, 200, "{}", small.body);
        assert_eq!(api.requests().len(), 1);
        assert_eq!(big.status, 403, "{}", big.body);
        let body = big.json();
        assert_eq!(body["decision"], json!("escalate"), "{body}");
        assert_eq!(body["approval_required"], json!(true));
        let reason = body["reason"].as_str().unwrap();
        assert!(reason.contains("10,000,000"), "{reason}");
        assert!(reason.contains("20,000,000"), "{reason}");
        // 6M: under the plugin's limit, over the policy's escalation rule.
        assert_eq!(medium.status, 403, "{}", medium.body);
        let body = medium.json();
        assert_eq!(body["decision"], json!("escalate"), "{body}");
        assert_eq!(body["rule_id"], json!("large-orders-escalate"), "{body}");
    } else {
        for r in [&small, &big, &medium] {
            assert_eq!(r.status, 403, "{}", r.body);
            let body = r.json();
            assert_eq!(body["decision"], json!("deny"));
            assert!(
                body["reason"]
                    .as_str()
                    .unwrap()
                    .contains("outside the TEST regular session"),
                "{body}"
            );
        }
        assert!(api.requests().is_empty());
    }
    assert_eq!(api.requests().len(), usize::from(open_before));
    let ledger = ledger_decisions(&server.stop_and_read_ledger());
    for id in &ids {
        assert!(ledger.contains_key(id), "decision {id} not in the ledger");
    }
}

#[test]
fn fhir_patient_read_without_consent_is_denied_and_with_consent_permitted() {
    let tools = TestUpstream::start();
    let api = TestUpstream::answering(br#"{"resourceType":"Patient","id":"p-1"}"#);
    let server = product(tools.addr, api.addr);
    let clinician = ("x-agent-id", "act_physician:dr_who");

    let r = support::get(&server.url("/fhir/Patient/p-1"), &[clinician]);
    assert_eq!(r.status, 403, "{}", r.body);
    let body = r.json();
    assert_eq!(body["decision"], json!("deny"));
    assert!(
        body["reason"].as_str().unwrap().contains("consent"),
        "{body}"
    );
    assert!(api.requests().is_empty());

    let r = support::get(
        &server.url("/fhir/Patient/p-1"),
        &[clinician, ("x-patient-consent", "true")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["resourceType"], json!("Patient"));
    let forwarded = api.requests();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].path, "/fhir/Patient/p-1");
    assert!(forwarded[0].header("x-lexecon-capability").is_some());
}

#[test]
fn policy_replaced_while_requests_run_fails_no_request_and_the_new_decision_applies() {
    let tools = TestUpstream::answering(
        br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"found"}],"isError":false}}"#,
    );
    let api = TestUpstream::start();
    let policy_dir = tempfile::tempdir().unwrap();
    let ai = policy_dir.path().join("ai.yaml");
    let shipped = std::fs::read_to_string(deploy_dir().join("policies/ai.yaml")).unwrap();
    std::fs::write(&ai, &shipped).unwrap();
    let (t, a, p) = (tools.addr, api.addr, ai.clone());
    let mut server =
        EngineServer::start(move |proxy, admin, dir| config(proxy, admin, dir, t, a, &p));
    let url = server.url("/mcp");

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let permitted = std::sync::Arc::new(AtomicUsize::new(0));
    let denied = std::sync::Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (url, stop) = (url.clone(), stop.clone());
            let (permitted, denied) = (permitted.clone(), denied.clone());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                let mut seen_deny = false;
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let r = post(
                        &url,
                        &[AGENT, JSON, MCP_ACCEPT],
                        &call(n, "search_docs", json!({"q": w})),
                    );
                    assert_eq!(r.status, 200, "request failed during reload: {}", r.body);
                    let body = r.json();
                    if body["result"]["isError"] == json!(true) {
                        seen_deny = true;
                        denied.fetch_add(1, Ordering::SeqCst);
                    } else {
                        assert!(
                            !seen_deny,
                            "the old policy came back after the new one applied"
                        );
                        assert_eq!(
                            body["result"]["content"][0]["text"],
                            json!("found"),
                            "{body}"
                        );
                        permitted.fetch_add(1, Ordering::SeqCst);
                    }
                    ids.extend(decision_ids(&r));
                }
                ids
            })
        })
        .collect();
    let wait_for = |counter: &AtomicUsize, at_least: usize| {
        let start = std::time::Instant::now();
        while counter.load(Ordering::SeqCst) < at_least {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "requests did not run"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    };

    // Let requests run on the old policy, then forbid reads while they keep running.
    wait_for(&permitted, 4);
    let forbid = shipped.replace(
        "  - id: agents-may-read\n    effect: permit",
        "  - id: agents-may-read\n    effect: forbid",
    );
    assert_ne!(forbid, shipped);
    std::fs::write(&ai, forbid).unwrap();
    server.reload().unwrap();
    let after = post(
        &url,
        &[AGENT, JSON, MCP_ACCEPT],
        &call(99, "search_docs", json!({})),
    );
    assert_eq!(after.status, 200);
    assert_eq!(
        after.json()["result"]["isError"],
        json!(true),
        "{}",
        after.body
    );
    wait_for(&denied, 4);
    stop.store(true, Ordering::SeqCst);

    let mut all_ids = decision_ids(&after);
    for w in workers {
        all_ids.extend(w.join().expect("a worker saw a failed request"));
    }
    assert_eq!(
        all_ids.len(),
        1 + permitted.load(Ordering::SeqCst) + denied.load(Ordering::SeqCst)
    );

    // A broken policy file is rejected and the policy in force stays.
    std::fs::write(&ai, "id: [broken").unwrap();
    assert!(server.reload().is_err());
    let r = post(
        &url,
        &[AGENT, JSON, MCP_ACCEPT],
        &call(100, "search_docs", json!({})),
    );
    assert_eq!(r.json()["result"]["isError"], json!(true));
    all_ids.extend(decision_ids(&r));

    let ledger = ledger_decisions(&server.stop_and_read_ledger());
    for id in &all_ids {
        assert!(ledger.contains_key(id), "decision {id} not in the ledger");
    }
}

#[test]
fn tools_list_that_is_content_encoded_is_withheld_with_502() {
    let tools = StreamingUpstream::with_headers(
        "content-type: application/json\r\ncontent-encoding: gzip\r\n",
        vec![b"\x1f\x8b\x08\x00 not really gzip".to_vec()],
        false,
    );
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);
    let r = post(
        &server.url("/mcp"),
        &[AGENT, JSON, MCP_ACCEPT, ("accept-encoding", "gzip")],
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    );
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.header("content-encoding").is_none());
    let body = r.json();
    assert_eq!(body["error"], json!("upstream_unavailable"));
    assert!(
        body["reason"].as_str().unwrap().contains("gzip-encoded"),
        "{body}"
    );

    // Other calls on the same route are not touched by the filter.
    let r = post(
        &server.url("/mcp"),
        &[AGENT, JSON, MCP_ACCEPT],
        &call(3, "search_docs", json!({})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
}

#[test]
fn tools_list_above_the_filter_limit_is_cut_off_not_passed() {
    let limit = lexecon::server::tools_filter::MAX_BODY;
    let padding = "x".repeat(64 * 1024);
    let mut parts =
        vec![br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"delete_file"},"#.to_vec()];
    let mut size = parts[0].len();
    while size <= limit {
        let part = format!(r#"{{"name":"search_{size}","description":"{padding}"}},"#).into_bytes();
        size += part.len();
        parts.push(part);
    }
    parts.push(br#"{"name":"last"}]}}"#.to_vec());
    let tools = StreamingUpstream::start("application/json", parts, false);
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);

    let mut req = support::client().post(&server.url("/mcp"));
    for (k, v) in [AGENT, JSON, MCP_ACCEPT] {
        req = req.header(k, v);
    }
    let body = req
        .send(&br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#[..])
        .and_then(|mut r| {
            r.body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()
        })
        .unwrap();
    assert!(
        body.len() < 1024,
        "an unfiltered list of {} bytes went through",
        body.len()
    );
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], json!(-32603), "{body}");
    assert_eq!(error["id"], json!(2), "{body}");
    assert!(body.contains("filter limit"), "{body}");
}

#[test]
fn shipped_demo_configuration_filters_the_embedded_tool_servers_list() {
    let policies = deploy_dir().join("policies");
    let demo = std::fs::read_to_string(deploy_dir().join("demo.yaml")).unwrap();
    let mut server = EngineServer::start(move |proxy, admin, dir| {
        let upstream = support::free_addr();
        let text = demo
            .replace("127.0.0.1:8080", &proxy.to_string())
            .replace("127.0.0.1:9901", &admin.to_string())
            .replace("127.0.0.1:9902", &upstream.to_string())
            .replace(
                "data_dir: lexecon-data",
                &format!("data_dir: \"{}\"", dir.join("data").display()),
            )
            .replace("policies/", &format!("{}/", policies.display()));
        assert!(
            text.contains(&format!("data_dir: \"{}", dir.display())),
            "{text}"
        );
        text
    });
    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let r = post(
        &server.url("/mcp"),
        &[("x-agent-id", "act_ai_agent:demo"), JSON],
        list,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        listed(&r.json()),
        ["search_docs", "read_file", "send_email"]
    );
    let list_id = decision_ids(&r).remove(0);

    let r = post(
        &server.url("/mcp"),
        &[("x-agent-id", "act_ai_agent:demo"), JSON],
        &call(2, "search_docs", json!({"query": "refunds"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let text = r.json()["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.starts_with("demo search_docs ran"), "{text}");
    let call_id = decision_ids(&r).remove(0);

    // Listing decides each tool but records only the listing call itself.
    let entries = server.stop_and_read_ledger();
    let decisions: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("decision_id").is_some())
        .collect();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    let ledger = ledger_decisions(&entries);
    assert_eq!(ledger[&list_id]["action"], json!("axn_read_data"));
    assert_eq!(ledger[&call_id]["resource"], json!("res_api:search_docs"));
}

#[test]
fn tools_list_sse_event_above_the_filter_limit_is_replaced_by_an_error() {
    let limit = lexecon::server::tools_filter::MAX_BODY;
    let padding = "x".repeat(64 * 1024);
    let mut parts = vec![
        b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n"
            .to_vec(),
        br#"event: message
data: {"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"delete_file"},"#
            .to_vec(),
    ];
    let mut size = parts[1].len();
    while size <= limit {
        let part = format!(r#"{{"name":"search_{size}","description":"{padding}"}},"#).into_bytes();
        size += part.len();
        parts.push(part);
    }
    parts.push(b"{\"name\":\"last\"}]}}\n\n".to_vec());
    let tools = StreamingUpstream::start("text/event-stream", parts, false);
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);

    let mut req = support::client().post(&server.url("/mcp"));
    for (k, v) in [AGENT, JSON, MCP_ACCEPT] {
        req = req.header(k, v);
    }
    let body = req
        .send(&br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#[..])
        .and_then(|mut r| {
            r.body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()
        })
        .unwrap();
    assert!(
        body.len() < 1024,
        "an unfiltered list of {} bytes went through",
        body.len()
    );
    assert!(
        body.starts_with(
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n"
        ),
        "{body}"
    );
    assert!(!body.contains("delete_file"), "{body}");
    assert!(body.contains("filter limit"), "{body}");
}

#[test]
fn tools_list_in_a_batch_or_in_a_body_above_the_retry_buffer_is_filtered() {
    let tools = TestUpstream::answering(
        format!(
            r#"[{{"jsonrpc":"2.0","id":1,"result":{{}}}},{{"jsonrpc":"2.0","id":2,"result":{{"tools":{TOOLS}}}}}]"#
        )
        .as_bytes(),
    );
    let api = TestUpstream::start();
    let server = product(tools.addr, api.addr);

    let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#;
    let r = post(&server.url("/mcp"), &[AGENT, JSON, MCP_ACCEPT], batch);
    assert_eq!(r.status, 200, "{}", r.body);
    let answers = r.json();
    assert_eq!(answers[0]["id"], json!(1));
    assert_eq!(
        listed(&answers[1]),
        ["search_docs", "read_file", "send_email", "run_report"]
    );
    assert_eq!(decision_ids(&r).len(), 2);

    // Above pingora's 64 KiB retry buffer the body is held and decided at its end; the filter
    // is set up there too.
    let big = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": {"padding": "x".repeat(100 * 1024)}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ])
    .to_string();
    let r = post(
        &server.url("/mcp"),
        &[AGENT, JSON, MCP_ACCEPT],
        big.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        listed(&r.json()[1]),
        ["search_docs", "read_file", "send_email", "run_report"]
    );
    assert_eq!(tools.requests().len(), 2);
}
