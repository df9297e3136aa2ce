//! The hostile-input corpus for the classifiers (issue 14, items 5 and 6): requests an agent on
//! loopback can send on purpose so that Lexecon decides one thing while the upstream does another
//! — FHIR `$operations` read as reads, unknown operations, a query parameter a classifier reads
//! sent twice, a JSON key sent twice (at any depth), JSON nested too deep, invalid UTF-8, numbers
//! out of range, and MCP tool names that only look like the real one.
//!
//! Each refused case is a raw HTTP/1.1 request, the status it must get, and a piece of the reason
//! the refusal is recorded with; the upstream must see nothing of it (not even its headers) and
//! nothing is decided. Each permitted case names the action it must be decided as, and must reach
//! the upstream byte for byte as sent. The decision point permits everything, so every refusal
//! here is the classifiers' own, not a policy's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};

use lexecon_tests as support;
use support::{read_response, start, RuleTable, TestUpstream};

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
    classifier: {{kind: mcp, tools: {{"delete_*": axn_delete_data}}}}
    upstream: app
  - name: fhir
    match: {{path_prefix: /fhir}}
    domain: healthcare
    classifier:
      kind: fhir
      base_path: /fhir
      actions: {{"*.$reindex": axn_update_phi}}
      context: {{tenant: query.tenant}}
    upstream: app
  - name: orders
    match: {{path_prefix: /v1/orders}}
    domain: finance
    classifier:
      kind: rest
      operations:
        - method: POST
          path: /v1/orders
          action: axn_place_order
          resource: "res_security:{{body./symbol}}"
          context: {{quantity: body./quantity, venue: query.venue}}
        - method: GET
          path: "/v1/orders/{{id}}"
          action: axn_view_order
          resource: "res_order:{{id}}"
          context: {{account: query.account}}
    upstream: app
"#
    )
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

fn request(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    request_as(method, target, JSON, body)
}

/// A request whose body is of `content_type` (which may carry more header lines after it).
fn request_as(method: &str, target: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {target} HTTP/1.1\r\nhost: lexecon.test\r\nx-agent-id: act_ai_agent:mallory\r\n\
         content-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn send(server: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(server).unwrap();
    conn.write_all(raw).unwrap();
    read_response(&mut conn)
}

/// A request that must be refused: the status, and a piece of the recorded reason.
struct Refused {
    name: String,
    method: &'static str,
    target: String,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    reason: &'static str,
}

fn refused(
    name: impl Into<String>,
    method: &'static str,
    target: impl Into<String>,
    body: impl Into<Vec<u8>>,
    reason: &'static str,
) -> Refused {
    Refused {
        name: name.into(),
        method,
        target: target.into(),
        content_type: JSON,
        body: body.into(),
        status: 400,
        reason,
    }
}

/// A FHIR search by POST (`target` ends in `_search`) sending `form` as `content_type`.
fn searched(
    name: impl Into<String>,
    target: &'static str,
    content_type: &'static str,
    form: &'static str,
    reason: &'static str,
) -> Refused {
    Refused {
        content_type,
        ..refused(name, "POST", target, form, reason)
    }
}

fn tool_call(name: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": name, "arguments": {"path": "a.txt"}}})
    .to_string()
}

const ORDER: &str = r#"{"symbol":"AAPL","quantity":10}"#;

fn fhir_cases() -> Vec<Refused> {
    let mut cases = Vec::new();
    let unknown = "is not one Lexecon knows";
    for (method, target) in [
        ("POST", "/fhir/Patient/1/$frobnicate"),
        ("GET", "/fhir/Patient/1/$frobnicate"),
        ("POST", "/fhir/Patient/$frobnicate"),
        ("POST", "/fhir/$frobnicate"),
        ("POST", "/fhir/Patient/1/$FROBNICATE"),
        ("POST", "/fhir/Patient/1/%24frobnicate"),
        ("POST", "/fhir/Patient/1/$frobnicate/"),
        ("POST", "/fhir/Patient/1/$Reindex"),
    ] {
        cases.push(refused(
            "unknown FHIR operation",
            method,
            target,
            "",
            unknown,
        ));
    }
    for (method, target, reason) in [
        (
            "POST",
            "/fhir/Patient/1/$a%20b",
            "not a FHIR operation name",
        ),
        ("POST", "/fhir/Patient/1/$", "not a FHIR operation name"),
        ("DELETE", "/fhir/Patient/1/$expunge", "no operation matches"),
        ("PUT", "/fhir/Patient/$expunge", "not a FHIR id"),
        (
            "POST",
            "/fhir/Patient/1/$expunge/more",
            "no operation matches",
        ),
    ] {
        cases.push(refused(
            "operation in a shape FHIR has not",
            method,
            target,
            "",
            reason,
        ));
    }
    for target in [
        "/fhir/Observation?patient=1&patient=2",
        "/fhir/Observation?patient=1&pati%65nt=2",
        "/fhir/Observation?subject=Patient/1&code=x&subject=Patient/2",
        "/fhir/Observation?subject:Patient=1&subject:Patient=2",
        "/fhir/Patient?_id=1&_id=2",
        "/fhir/Patient/1/Observation?patient=1&patient=2",
        "/fhir/Observation?tenant=north&tenant=south",
    ] {
        cases.push(refused(
            "repeated FHIR parameter a classifier reads",
            "GET",
            target,
            "",
            "appears more than once",
        ));
    }
    // A request about two patients decided as one: FHIR ORs a comma list, and a second patient
    // named elsewhere is another patient than the one the SMART check, the consent lookup and the
    // policy see.
    for target in [
        "/fhir/Observation?patient=1,2",
        "/fhir/Observation?patient=1%2C2",
        "/fhir/Observation?patient=Patient/1,Patient/2",
        "/fhir/Observation?subject=Patient/1,Patient/2",
        "/fhir/Observation?subject=Patient/1,Group/2",
        "/fhir/Observation?subject:Patient=1,2",
        "/fhir/Patient?_id=1,2",
        "/fhir/Observation?patient=1&subject=Patient/2",
        "/fhir/Patient/1/Observation?patient=2",
        "/fhir/Patient/1/$everything?_id=2",
    ] {
        cases.push(refused(
            "two patients in one request",
            "GET",
            target,
            "",
            "one patient per request",
        ));
    }
    for target in [
        "/fhir/Observation?patient=http://other.example/fhir/Patient/2",
        "/fhir/Observation?patient=",
        "/fhir/Observation?patient=1%5C,2",
        "/fhir/Observation?subject=Patient/2/_history/1",
        "/fhir/Observation?patient=Group/2",
    ] {
        cases.push(refused(
            "a patient value Lexecon cannot read",
            "GET",
            target,
            "",
            "not a patient Lexecon can read",
        ));
    }
    for target in [
        "/fhir/Observation?patient.identifier=mrn%7C123",
        "/fhir/Observation?subject:identifier=mrn%7C123",
        "/fhir/Observation?subject:missing=true",
        "/fhir/Observation?subject.name=smith",
        "/fhir/Patient?_id:not=1",
    ] {
        cases.push(refused(
            "a patient parameter with a modifier or chain",
            "GET",
            target,
            "",
            "modifier or a chain",
        ));
    }
    cases
}

/// Searches by POST: the parameters are in the form body (and may be in the query too); the
/// upstream reads them all as one search.
fn form_search_cases() -> Vec<Refused> {
    let obs = "/fhir/Observation/_search";
    let twice = "appears more than once";
    let form = "FHIR search by POST";
    vec![
        searched(
            "a form list of two patients",
            obs,
            FORM,
            "patient=1,2",
            "one patient per request",
        ),
        searched(
            "a form list of two subjects",
            obs,
            FORM,
            "subject=Patient%2F1%2CPatient%2F2",
            "one patient per request",
        ),
        searched(
            "one patient in the query, another in the form",
            "/fhir/Observation/_search?patient=1",
            FORM,
            "subject=Patient/2",
            "one patient per request",
        ),
        searched(
            "a patient in the query and again in the form",
            "/fhir/Observation/_search?patient=1",
            FORM,
            "patient=2",
            twice,
        ),
        searched(
            "a patient twice in the form",
            obs,
            FORM,
            "patient=1&patient=2",
            twice,
        ),
        searched(
            "a patient twice in the form, one name encoded",
            obs,
            FORM,
            "patient=1&pati%65nt=2",
            twice,
        ),
        searched(
            "a context parameter in the query and the form",
            "/fhir/Observation/_search?tenant=north",
            FORM,
            "tenant=south",
            twice,
        ),
        searched(
            "a chained patient in the form",
            obs,
            FORM,
            "patient.identifier=x",
            "modifier or a chain",
        ),
        searched("a JSON body", obs, JSON, r#"{"patient":"1"}"#, form),
        searched(
            "a multipart body",
            obs,
            "multipart/form-data; boundary=x",
            "patient=1",
            form,
        ),
        searched(
            "a form in another charset",
            obs,
            "application/x-www-form-urlencoded; charset=iso-8859-1",
            "patient=1",
            form,
        ),
        searched(
            "a compressed form",
            obs,
            "application/x-www-form-urlencoded\r\ncontent-encoding: gzip",
            "patient=1",
            form,
        ),
        searched(
            "a second Content-Type",
            obs,
            "application/x-www-form-urlencoded\r\ncontent-type: application/json",
            "patient=1",
            form,
        ),
        searched(
            "_method in the form (Spring runs the POST as a DELETE)",
            obs,
            FORM,
            "patient=1&_method=DELETE",
            form,
        ),
        searched(
            "a form search on the system",
            "/fhir/_search",
            JSON,
            "{}",
            form,
        ),
    ]
}

fn rest_cases() -> Vec<Refused> {
    let dup = "twice in one object";
    let invalid = "is not valid JSON";
    vec![
        refused(
            "repeated query parameter a REST source reads",
            "GET",
            "/v1/orders/9?account=a&account=b",
            "",
            "appears more than once",
        ),
        refused(
            "repeated query parameter, one copy encoded",
            "POST",
            "/v1/orders?venue=XNYS&ven%75e=DARK",
            ORDER,
            "appears more than once",
        ),
        refused(
            "duplicate key in a REST body",
            "POST",
            "/v1/orders",
            r#"{"symbol":"AAPL","quantity":10,"quantity":1000000}"#,
            dup,
        ),
        refused(
            "duplicate key deep in a REST body",
            "POST",
            "/v1/orders",
            r#"{"symbol":"AAPL","quantity":10,"legs":[{"side":"buy","side":"sell"}]}"#,
            dup,
        ),
        refused(
            "duplicate key spelled with an escape",
            "POST",
            "/v1/orders",
            r#"{"symbol":"AAPL","quantity":10,"qu\u0061ntity":1000000}"#,
            dup,
        ),
        refused(
            "REST body nested deeper than 128",
            "POST",
            "/v1/orders",
            format!(
                r#"{{"symbol":"AAPL","quantity":10,"x":{}{}}}"#,
                "[".repeat(300),
                "]".repeat(300)
            ),
            "recursion limit",
        ),
        refused(
            "invalid UTF-8 in a REST body",
            "POST",
            "/v1/orders",
            &b"{\"symbol\":\"AA\xffPL\",\"quantity\":10}"[..],
            invalid,
        ),
        refused(
            "number out of range in a REST body",
            "POST",
            "/v1/orders",
            r#"{"symbol":"AAPL","quantity":1e400}"#,
            invalid,
        ),
    ]
}

fn mcp_cases() -> Vec<Refused> {
    let dup = "twice in one object";
    let tool = "is not an MCP tool name";
    let mut cases = vec![
        refused(
            "duplicate tool name in params",
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{},"name":"delete_file"}}"#,
            dup,
        ),
        refused(
            "duplicate method",
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"delete_file"}}"#,
            dup,
        ),
        refused(
            "duplicate argument",
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"a.txt","path":"/etc/shadow"}}}"#,
            dup,
        ),
        refused(
            "MCP body nested deeper than 128",
            "POST",
            "/mcp",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{"q":{}{}}}}}}}"#,
                "{\"a\":".repeat(300),
                "}".repeat(300)
            ),
            "recursion limit",
        ),
        refused(
            "invalid UTF-8 in an MCP body",
            "POST",
            "/mcp",
            &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"delete\xc0\xaffile\"}}"[..],
            "is not valid JSON",
        ),
        refused(
            "number out of range in an MCP body",
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","id":1e999,"method":"ping"}"#,
            "is not valid JSON",
        ),
    ];
    for (name, look_alike) in [
        ("with a fullwidth letter", "\u{ff44}elete_file"),
        ("with a zero-width space", "delete_file\u{200b}"),
        ("with a Cyrillic e", "d\u{0435}lete_file"),
        ("with a non-breaking hyphen", "delete\u{2011}file"),
        ("with a space", "delete file"),
        ("with a slash", "tools/delete_file"),
        ("that is empty", ""),
    ] {
        cases.push(refused(
            format!("tool name {name}"),
            "POST",
            "/mcp",
            tool_call(look_alike),
            tool,
        ));
    }
    cases.push(refused(
        "tool name of 129 characters",
        "POST",
        "/mcp",
        tool_call(&"a".repeat(129)),
        tool,
    ));
    // The routing headers of the stateless generation are hints that must agree with the body:
    // a gateway routing on the first copy or on the header alone would see a harmless call.
    for (name, headers, reason) in [
        (
            "Mcp-Method sent twice",
            "application/json\r\nmcp-method: tools/list\r\nmcp-method: tools/call",
            "appears more than once",
        ),
        (
            "Mcp-Name sent twice",
            "application/json\r\nmcp-method: tools/call\r\nmcp-name: search\r\nmcp-name: delete_file",
            "appears more than once",
        ),
        (
            "Mcp-Method naming a read while the body calls a tool",
            "application/json\r\nmcp-method: tools/list",
            "but the body says",
        ),
        (
            "Mcp-Name naming a harmless tool while the body calls another",
            "application/json\r\nmcp-method: tools/call\r\nmcp-name: search",
            "but the body says",
        ),
    ] {
        cases.push(Refused {
            content_type: headers,
            ..refused(name, "POST", "/mcp", tool_call("delete_file"), reason)
        });
    }
    cases
}

#[test]
fn hostile_classifier_inputs_are_refused_before_anything_reaches_the_upstream() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let mut failures = Vec::new();
    let cases: Vec<Refused> = fhir_cases()
        .into_iter()
        .chain(form_search_cases())
        .chain(rest_cases())
        .chain(mcp_cases())
        .collect();
    let mut expected_refusals = 0;
    for case in &cases {
        let raw = request_as(case.method, &case.target, case.content_type, &case.body);
        let (status, body) = send(server.proxy_addr, &raw);
        let what = format!("{} ({} {})", case.name, case.method, case.target);
        if status != case.status {
            failures.push(format!(
                "{what}: got {status}, expected {} ({body})",
                case.status
            ));
            continue;
        }
        // Each refusal is recorded (as `request_refused` in the ledger) with its reason.
        expected_refusals += 1;
        let refusals = rules.refusals();
        if refusals.len() != expected_refusals {
            failures.push(format!("{what}: {} refusals recorded", refusals.len()));
            expected_refusals = refusals.len();
            continue;
        }
        match refusals.last() {
            Some((by, reason)) if by == "classify" && reason.contains(case.reason) => {}
            other => failures.push(format!(
                "{what}: recorded refusal {other:?}, expected one by classify saying {:?}",
                case.reason
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        upstream.heads(),
        Vec::<String>::new(),
        "the upstream saw a hostile request"
    );
    assert_eq!(rules.calls(), 0, "refused before any decision");
    server.shutdown();
}

/// A request that must pass: the action it is decided as.
struct Passes {
    method: &'static str,
    target: &'static str,
    body: &'static str,
    action: &'static str,
}

fn passes(
    method: &'static str,
    target: &'static str,
    body: &'static str,
    action: &'static str,
) -> Passes {
    Passes {
        method,
        target,
        body,
        action,
    }
}

#[test]
fn ordinary_requests_of_each_kind_pass_byte_identical_and_operations_get_their_action() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let cases = [
        // FHIR operations are decided as what they do, however their name is spelled.
        passes("POST", "/fhir/Patient/1/$expunge", "", "axn_delete_phi"),
        passes("POST", "/fhir/Patient/1/$EXPUNGE", "", "axn_delete_phi"),
        passes("POST", "/fhir/Patient/1/%24expunge", "", "axn_delete_phi"),
        passes("POST", "/fhir/Patient/1/$expunge/", "", "axn_delete_phi"),
        passes("POST", "/fhir/$expunge", "", "axn_delete_phi"),
        passes("GET", "/fhir/Patient/1/$expunge", "", "axn_delete_phi"),
        passes("POST", "/fhir/Observation/o1/$purge", "", "axn_delete_phi"),
        passes("POST", "/fhir/Patient/$merge", "{}", "axn_update_phi"),
        passes("GET", "/fhir/Patient/1/$everything", "", "axn_export_phi"),
        passes("GET", "/fhir/$export", "", "axn_export_phi"),
        passes("GET", "/fhir/Patient/$export", "", "axn_export_phi"),
        passes("GET", "/fhir/Patient/1/$meta", "", "axn_access_phi"),
        passes("POST", "/fhir/Patient/$validate", "{}", "axn_access_phi"),
        passes(
            "GET",
            "/fhir/CodeSystem/$lookup?code=1",
            "",
            "axn_read_guideline",
        ),
        passes("GET", "/fhir/$versions", "", "axn_read_metadata"),
        passes("POST", "/fhir/Patient/1/$reindex", "", "axn_update_phi"),
        // Parameters no classifier reads may repeat; those it reads pass when sent once.
        passes(
            "GET",
            "/fhir/Observation?patient=1&code=a&code=b&date=ge2020&date=le2021&tenant=north",
            "",
            "axn_access_phi",
        ),
        passes("GET", "/fhir/Patient/1", "", "axn_access_phi"),
        passes(
            "GET",
            "/v1/orders/9?account=a&x=1&x=2",
            "",
            "axn_view_order",
        ),
        passes(
            "POST",
            "/v1/orders?venue=XNYS",
            r#"{"symbol":"AAPL","quantity":10,"legs":[{"k":1},{"k":2}]}"#,
            "axn_place_order",
        ),
        // MCP with the real tool name.
        passes(
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"a.txt"}}}"#,
            "axn_delete_data",
        ),
        passes(
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"Read-File.v2","arguments":{"n":123456789012345678901234567890}}}"#,
            "axn_execute_tool",
        ),
    ];
    for (n, case) in cases.iter().enumerate() {
        let what = format!("{} {}", case.method, case.target);
        let raw = request(case.method, case.target, case.body.as_bytes());
        let (status, body) = send(server.proxy_addr, &raw);
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(rules.calls(), n + 1, "{what}: decided once");
        assert_eq!(rules.last().unwrap().action, case.action, "{what}");
        let received = upstream.requests();
        assert_eq!(received.len(), n + 1, "{what}: reached the upstream");
        let got = &received[n];
        assert_eq!(
            (got.method.as_str(), got.path.as_str(), got.body.as_slice()),
            (case.method, case.target, case.body.as_bytes()),
            "{what}: forwarded as sent"
        );
    }
    assert!(rules.refusals().is_empty(), "{:?}", rules.refusals());
    server.shutdown();
}

/// A FHIR search by POST is decided on every parameter, the query's and the form body's, as the
/// same search a GET would be — and the upstream gets the form byte for byte, large or small.
#[test]
fn a_search_by_post_is_decided_on_the_query_and_the_form_and_forwarded_as_sent() {
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = start(move |p, a| config(up, p, a), rules.clone());
    let large = format!("patient=7&code=a&note={}", "n".repeat(100 * 1024));
    let cases: [(&str, &str, &str); 3] = [
        (
            "/fhir/Observation/_search?code=b",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "patient=Patient%2F7&code=a&tenant=north",
        ),
        ("/fhir/Observation/_search", FORM, &large),
        ("/fhir/Observation/_search?patient=7", FORM, ""),
    ];
    for (n, (target, content_type, form)) in cases.iter().enumerate() {
        let raw = request_as("POST", target, content_type, form.as_bytes());
        let (status, body) = send(server.proxy_addr, &raw);
        assert_eq!(status, 200, "{target}: {body}");
        let input = rules.last().unwrap();
        assert_eq!(input.action, "axn_access_phi", "{target}");
        assert_eq!(input.context["interaction"], "search-type", "{target}");
        assert_eq!(input.context["patient_id"], "7", "{target}");
        let got = &upstream.requests()[n];
        assert_eq!((got.method.as_str(), got.path.as_str()), ("POST", *target));
        assert!(
            got.body == form.as_bytes(),
            "{target}: the form was not forwarded as sent"
        );
        assert_eq!(got.header("content-type"), Some(*content_type));
    }
    let first = rules.seen.lock().unwrap()[0].clone();
    assert_eq!(
        first.context["search_params"]["code"],
        serde_json::json!(["b", "a"])
    );
    assert_eq!(first.context["tenant"], "north");
    // One patient named twice the same way is that patient.
    let raw = request("GET", "/fhir/Observation?patient=7,Patient/7", b"");
    let (status, body) = send(server.proxy_addr, &raw);
    assert_eq!(status, 200, "{body}");
    assert_eq!(rules.last().unwrap().context["patient_id"], "7");
    assert!(rules.refusals().is_empty(), "{:?}", rules.refusals());
    server.shutdown();
}
