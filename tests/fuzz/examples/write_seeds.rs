//! Writes the seed corpus of every fuzz target into `corpus/<target>/seed-*`: real requests (the MCP
//! SDK captures of `proxy/classify/src/testdata/`, the deploy examples' routes, the hostile targets
//! of issue 14), the repository's real policies (deploy/policies, config/examples, the 1.x example)
//! and their canonical JSON, ledger lines written by the ledger's own writer functions (decisions,
//! events, a signed checkpoint, a chain, a torn and a tampered line), and seeded random bytes for the
//! differential. Run from anywhere: `cargo run -p lexecon-fuzz --example write_seeds`. Overwrites
//! only `seed-*` files; the corpus grown by fuzzing is left alone.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use lexecon_domains::{ComplianceMapping, ComplianceStatus, Verdict};
use lexecon_ledger::entry::write_body_line;
use lexecon_ledger::{
    checkpoint_message, CheckpointSigner, EntryBody, EntryDraft, EventType, FieldRule, LedgerEntry,
    RedactionConfig, GENESIS_HASH,
};
use lexecon_policy_cache::{Decision, Explanation};
use serde_json::{json, Value};

type Seeds = Vec<(String, Vec<u8>)>;
/// Header names and values of a request.
type Headers<'a> = Vec<(&'a str, &'a str)>;
/// A seed request: name, method, target, headers, body.
type Case<'a> = (&'a str, &'a str, &'a str, Headers<'a>, &'a str);
/// A seed request with its headers borrowed.
type CaseRef<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

fn seed(seeds: &mut Seeds, name: &str, bytes: impl Into<Vec<u8>>) {
    seeds.push((name.to_owned(), bytes.into()));
}

/// A request in the targets' format.
fn http(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("{method} {target}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// The SDK captures: one JSON object per line with method, path, headers and body.
fn captured(seeds: &mut Seeds, prefix: &str, jsonl: &str) {
    for (i, line) in jsonl.lines().enumerate() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let headers: Vec<(String, String)> = v["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| Some((h[0].as_str()?.to_owned(), h[1].as_str()?.to_owned())))
            .collect();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let request = http(
            v["method"].as_str().unwrap_or("POST"),
            v["path"].as_str().unwrap_or("/mcp"),
            &headers,
            v["body"].as_str().unwrap_or(""),
        );
        seed(seeds, &format!("{prefix}-{i}"), request);
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn mcp() -> Seeds {
    let mut s = Seeds::new();
    captured(
        &mut s,
        "sdk-handshake",
        include_str!("../../../proxy/classify/src/testdata/mcp-sdk-2.3.0-handshake.jsonl"),
    );
    captured(
        &mut s,
        "sdk-stateless",
        include_str!("../../../proxy/classify/src/testdata/mcp-sdk-2.3.0-stateless.jsonl"),
    );
    let sse = include_str!("../../../proxy/classify/src/testdata/mcp-sdk-2.3.0-tools-list.sse");
    seed(
        &mut s,
        "tools-list-sse",
        http(
            "POST",
            "/mcp",
            &[("content-type", "text/event-stream")],
            sse,
        ),
    );
    let call = |name: &str, args: Value| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": args}})
            .to_string()
    };
    let cases: Vec<(&str, Headers, String)> = vec![
        ("call-read", vec![JSON], call("read_file", json!({"path": "a.txt"}))),
        (
            "call-delete-pointer",
            vec![JSON, ("mcp-method", "tools/call"), ("mcp-name", "delete_file")],
            call("delete_file", json!({"target": {"file": "/etc/passwd"}})),
        ),
        (
            "call-send-array",
            vec![JSON],
            call("send_email", json!({"to": ["a@example.com"], "body": "hi"})),
        ),
        (
            "call-name-base64",
            vec![JSON, ("mcp-name", "=?base64?cmVhZF9maWxl?=")],
            call("read_file", json!({"path": 42})),
        ),
        (
            "call-header-mismatch",
            vec![JSON, ("mcp-method", "ping")],
            call("delete_file", json!({})),
        ),
        (
            "call-poses-as-session",
            vec![JSON],
            call("search_docs", json!({"mcp_session": true, "mcp_client": "x", "query": "refunds"})),
        ),
        (
            "call-stateless-meta",
            vec![JSON, ("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "run_query")],
            json!({"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "run_query", "arguments": {"sql": "select 1"}, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": {"name": "fuzz"}}}}).to_string(),
        ),
        (
            "batch-two",
            vec![JSON, ("mcp-session-id", "s1")],
            format!("[{},{}]", call("read_file", json!({"path": "b"})), json!({"jsonrpc": "2.0", "method": "notifications/progress"})),
        ),
        (
            "batch-five",
            vec![JSON],
            format!("[{}]", vec![call("delete_x", json!({"target": {"file": "f"}})); 5].join(",")),
        ),
        ("batch-empty", vec![JSON], "[]".into()),
        ("notification", vec![JSON], json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string()),
        ("response", vec![JSON], json!({"jsonrpc": "2.0", "id": 3, "result": {"roots": []}}).to_string()),
        ("prompts-get", vec![JSON], json!({"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": "summary"}}).to_string()),
        ("resources-read", vec![JSON], json!({"jsonrpc": "2.0", "id": 5, "method": "resources/read", "params": {"uri": "file:///a"}}).to_string()),
        ("sampling", vec![JSON], json!({"jsonrpc": "2.0", "id": 6, "method": "sampling/createMessage", "params": {}}).to_string()),
        ("not-jsonrpc", vec![JSON], json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}).to_string()),
        ("deep", vec![JSON], format!("{}{}", "[".repeat(200), "]".repeat(200))),
        ("duplicate-keys", vec![JSON], r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping","params":{"name":"delete_file"}}"#.into()),
        (
            "tools-list-json",
            vec![JSON],
            json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "read_file"}, {"name": "delete_file"}, {"name": 5}, {"title": "no name"}]}}).to_string(),
        ),
    ];
    for (name, headers, body) in cases {
        seed(&mut s, name, http("POST", "/mcp", &headers, &body));
    }
    seed(
        &mut s,
        "get-stream",
        http(
            "GET",
            "/mcp",
            &[("mcp-session-id", "s1"), ("accept", "text/event-stream")],
            "",
        ),
    );
    seed(
        &mut s,
        "delete-session",
        http("DELETE", "/mcp", &[("mcp-session-id", "s1")], ""),
    );
    seed(&mut s, "put", http("PUT", "/mcp", &[JSON], "{}"));
    s
}

fn rest() -> Seeds {
    let mut s = Seeds::new();
    let order = r#"{"symbol":"AAPL","side":"buy","quantity":100,"limit_price":187.5}"#;
    let cases: Vec<Case> = vec![
        (
            "place",
            "POST",
            "/v1/orders",
            vec![JSON, ("x-venue", "XNYS")],
            order,
        ),
        (
            "place-strings",
            "POST",
            "/v1/orders",
            vec![JSON],
            r#"{"symbol":"MSFT","quantity":"3","limit_price":"2.5"}"#,
        ),
        (
            "place-huge",
            "POST",
            "/v1/orders",
            vec![JSON],
            r#"{"symbol":"A","quantity":1e308,"limit_price":1e308}"#,
        ),
        (
            "place-bignum",
            "POST",
            "/v1/orders",
            vec![JSON],
            r#"{"symbol":"A","quantity":18446744073709551616,"limit_price":-0.0}"#,
        ),
        (
            "place-missing",
            "POST",
            "/v1/orders",
            vec![JSON],
            r#"{"symbol":"A"}"#,
        ),
        (
            "place-dup-keys",
            "POST",
            "/v1/orders",
            vec![JSON],
            r#"{"symbol":"AAPL","symbol":"GME","quantity":1,"limit_price":1}"#,
        ),
        (
            "place-not-json",
            "POST",
            "/v1/orders",
            vec![JSON],
            "symbol=AAPL",
        ),
        (
            "place-bad-utf8",
            "POST",
            "/v1/orders",
            vec![JSON],
            "{\"symbol\":\"\u{fffd}\"}",
        ),
        (
            "place-symbol-object",
            "POST",
            "/v1/orders",
            vec![JSON],
            r#"{"symbol":{"a":1},"quantity":1,"limit_price":1}"#,
        ),
        (
            "modify",
            "PUT",
            "/v1/orders/42",
            vec![JSON],
            r#"{"quantity":5,"limit_price":10}"#,
        ),
        ("cancel", "DELETE", "/v1/orders/42", vec![], ""),
        ("cancel-dot", "DELETE", "/v1/orders/.", vec![], ""),
        ("cancel-encoded", "DELETE", "/v1/orders/%2e%2e", vec![], ""),
        ("cancel-slash", "DELETE", "/v1/orders/42/", vec![], ""),
        (
            "cancel-escaped-slash",
            "DELETE",
            "/v1/orders/a%2Fb",
            vec![],
            "",
        ),
        (
            "view",
            "GET",
            "/v1/accounts/acc-1/orders/7/?reason=audit&amount=3&a=10&b=4",
            vec![("x-agent-id", "act_ai_agent:demo")],
            r#"{"x":1}"#,
        ),
        (
            "view-div-zero",
            "GET",
            "/v1/accounts/a/orders/7?a=1&b=0",
            vec![],
            r#"{"x":1}"#,
        ),
        (
            "view-repeated",
            "GET",
            "/v1/accounts/a/orders/7?a=1&a=2&b=3&reason=x&reason=y",
            vec![],
            r#"{"x":"2"}"#,
        ),
        (
            "view-escapes",
            "GET",
            "/v1/accounts/%41%42/orders/%C3%A9?reason=%ZZ&amount=+1",
            vec![],
            "{}",
        ),
        ("unmatched", "PATCH", "/v1/orders/42", vec![], ""),
    ];
    for (name, method, target, headers, body) in cases {
        seed(&mut s, name, http(method, target, &headers, body));
    }
    s
}

fn fhir() -> Seeds {
    let mut s = Seeds::new();
    let consent = [
        ("x-patient-consent", "true"),
        ("x-purpose-of-use", "TREAT"),
        ("x-physician-id", "dr-lee"),
        ("x-fuzz-scope", "patient/*.read launch/patient"),
    ];
    let obs = r#"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/123"},"medicationCodeableConcept":{"text":"aspirin"}}"#;
    let cases: Vec<CaseRef> = vec![
        ("read", "GET", "/fhir/Patient/123", &consent, ""),
        ("vread", "GET", "/fhir/Patient/123/_history/2", &consent, ""),
        (
            "search",
            "GET",
            "/fhir/Observation?patient=123&code=8867-4&code=x",
            &consent,
            "",
        ),
        (
            "search-subject",
            "GET",
            "/fhir/Observation?subject=Patient/123",
            &[("x-fuzz-scope", "user/Observation.rs")],
            "",
        ),
        (
            "compartment",
            "GET",
            "/fhir/Patient/123/Observation?category=vital-signs",
            &consent,
            "",
        ),
        (
            "search-post",
            "POST",
            "/fhir/Observation/_search",
            &[],
            "patient=123",
        ),
        ("search-system", "GET", "/fhir?_type=Patient", &[], ""),
        (
            "history-instance",
            "GET",
            "/fhir/Patient/123/_history",
            &[],
            "",
        ),
        ("history-type", "GET", "/fhir/Patient/_history", &[], ""),
        ("history-system", "GET", "/fhir/_history", &[], ""),
        (
            "create",
            "POST",
            "/fhir/Observation",
            &[JSON, ("x-fuzz-scope", "user/Observation.c")],
            obs,
        ),
        (
            "prescribe",
            "POST",
            "/fhir/MedicationRequest",
            &[JSON, ("x-break-glass", "yes")],
            r#"{"medicationCodeableConcept":{"text":"x"}}"#,
        ),
        (
            "update",
            "PUT",
            "/fhir/Patient/123",
            &[JSON],
            r#"{"resourceType":"Patient","id":"123"}"#,
        ),
        (
            "conditional-update",
            "PUT",
            "/fhir/Patient?identifier=x",
            &[JSON],
            "{}",
        ),
        (
            "patch",
            "PATCH",
            "/fhir/Patient/123",
            &[("content-type", "application/json-patch+json")],
            "[]",
        ),
        (
            "delete",
            "DELETE",
            "/fhir/Patient/123",
            &[("x-fuzz-scope", "system/*.*")],
            "",
        ),
        (
            "conditional-delete",
            "DELETE",
            "/fhir/Observation?patient=1",
            &[],
            "",
        ),
        ("metadata", "GET", "/fhir/metadata", &[], ""),
        (
            "batch",
            "POST",
            "/fhir",
            &[JSON, ("x-fuzz-scope", "user/*.cruds")],
            r#"{"resourceType":"Bundle","type":"transaction","entry":[]}"#,
        ),
        (
            "everything",
            "GET",
            "/fhir/Patient/123/$everything",
            &consent,
            "",
        ),
        ("expunge", "POST", "/fhir/Patient/123/$expunge", &[], ""),
        ("export", "GET", "/fhir/$export", &[], ""),
        (
            "type-operation",
            "POST",
            "/fhir/Patient/$match",
            &[JSON],
            "{}",
        ),
        ("bad-id", "GET", "/fhir/Patient/123$", &[], ""),
        ("dot-id", "GET", "/fhir/Patient/..", &[], ""),
        ("unknown-type", "GET", "/fhir/NotAType/1", &[], ""),
        (
            "consent-bad",
            "GET",
            "/fhir/Patient/1",
            &[("x-patient-consent", "maybe")],
            "",
        ),
        ("no-base", "GET", "/api/r4/Patient/9/Observation", &[], ""),
        (
            "granular-scope",
            "GET",
            "/fhir/Observation?patient=1",
            &[("x-fuzz-scope", "patient/Observation.rs?category=laboratory")],
            "",
        ),
    ];
    for (name, method, target, headers, body) in cases {
        seed(&mut s, name, http(method, target, headers, body));
    }
    s
}

fn target() -> Seeds {
    let mut s = Seeds::new();
    let cases = [
        ("ok-mcp", "POST /mcp", ""),
        ("ok-order", "DELETE /v1/orders/42", ""),
        ("ok-fhir-op", "GET /fhir/Patient/123/$everything?x=1", ""),
        ("ok-escapes", "GET /files/name%20with%20space/%41", ""),
        ("ok-dots-in-names", "GET /files/.../..b/c../.hidden", ""),
        ("dotdot", "POST /mcp/../v1/orders", ""),
        ("dot-trailing", "DELETE /v1/orders/.", ""),
        ("encoded-dotdot", "GET /fhir/Patient/%2e%2e/Observation", ""),
        ("mixed-dotdot", "GET /a/.%2E/b", ""),
        ("encoded-slash", "POST /mcp%2F..%2Fv1/orders", ""),
        ("encoded-backslash", "GET /a%5cb", ""),
        ("backslash", "GET /a\\..\\b", ""),
        ("nul", "GET /a%00b", ""),
        ("newline", "GET /a%0ab", ""),
        ("tab", "GET /a\tb", ""),
        ("invalid-escape", "GET /a%zzb", ""),
        ("short-escape", "GET /a%2", ""),
        ("double-slash", "GET /v1//orders", ""),
        ("leading-double-slash", "GET //v1/orders", ""),
        ("relative", "GET v1/orders", ""),
        ("star", "OPTIONS *", ""),
        ("star-get", "GET *", ""),
        (
            "absolute",
            "GET http://ehr.internal/fhir/Patient/1",
            "ehr.internal",
        ),
        (
            "absolute-case",
            "GET http://EHR.internal/fhir/Patient/1",
            "ehr.internal",
        ),
        (
            "absolute-mismatch",
            "GET http://ehr.internal/fhir/Patient/1",
            "public.example",
        ),
        (
            "absolute-port",
            "GET http://ehr.internal:8080/a",
            "ehr.internal:8080",
        ),
        ("double-encoded", "GET /a/%252e%252e/b", ""),
        ("overlong", "GET /a/%c0%ae%c0%ae/b", ""),
        ("unicode", "GET /caf\u{e9}/\u{2024}\u{2024}", ""),
        ("query-dots", "GET /v1/orders?path=../../etc", ""),
    ];
    for (name, line, host) in cases {
        let mut bytes = format!("{line}\r\n").into_bytes();
        if !host.is_empty() {
            bytes.extend_from_slice(format!("host: {host}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        seed(&mut s, name, bytes);
    }
    s
}

fn policy() -> Seeds {
    let mut s = Seeds::new();
    let files = [
        (
            "deploy-ai",
            include_str!("../../../deploy/policies/ai.yaml"),
        ),
        (
            "deploy-finance",
            include_str!("../../../deploy/policies/finance.yaml"),
        ),
        (
            "deploy-healthcare",
            include_str!("../../../deploy/policies/healthcare.yaml"),
        ),
        (
            "example-ai",
            include_str!("../../../config/examples/ai.yaml"),
        ),
        (
            "example-finance",
            include_str!("../../../config/examples/finance.yaml"),
        ),
        (
            "example-healthcare",
            include_str!("../../../config/examples/healthcare.yaml"),
        ),
        ("legacy-1x", LEGACY),
        ("multi-error", MULTI_ERROR),
        ("all-operators", ALL_OPERATORS),
    ];
    for (name, text) in files {
        seed(&mut s, name, text);
        if let Ok(doc) = lexecon_config::parse_policy(name, text) {
            seed(&mut s, &format!("{name}-canonical"), doc.canonical_json());
        }
    }
    seed(&mut s, "empty", "");
    seed(&mut s, "list", "- a\n- b\n");
    seed(&mut s, "duplicate-key", "id: a\ndomain: ai\nid: b\n");
    seed(&mut s, "syntax", "id: [unclosed\n");
    seed(
        &mut s,
        "anchors",
        "id: &a x\ndomain: ai\nrules: [{id: *a, effect: permit, actor: *a}]\n",
    );
    seed(&mut s, "non-finite", "id: x\ndomain: ai\nrules: [{id: a, effect: permit, when: [{field: context.a, op: lt, value: .inf}]}]\n");
    s
}

/// The 1.x example of `config/src/legacy.rs`.
const LEGACY: &str = r#"{
  "mode": "paranoid",
  "terms": [
    {"term_id": "actor:user", "term_type": "actor", "label": "User"},
    {"term_id": "actor:model", "term_type": "actor", "label": "AI Model"},
    {"term_id": "action:read", "term_type": "action", "label": "Read Data"},
    {"term_id": "action:write", "term_type": "action", "label": "Write Data"},
    {"term_id": "data:pii", "term_type": "data_class", "label": "PII"}
  ],
  "relations": [
    {"relation_id": "permits:actor:user:action:read", "relation_type": "permits", "source": "actor:user", "target": "action:read", "conditions": ["amount < 100"]},
    {"relation_id": "forbids:actor:model:action:write", "relation_type": "forbids", "source": "actor:model", "target": "action:write", "conditions": [], "metadata": {"justification": "models never write"}}
  ]
}"#;

/// The multi-error policy of `config/src/policy_validate.rs`'s tests.
const MULTI_ERROR: &str = r#"
id: trading-desk
domain: finance
templates:
  - {name: prevent_flash_crash, params: {max_notional: 5}}
  - {name: no_such_template}
rules:
  - {id: a, effect: permit, actor: "act_trading_algo:*", action: axn_plac_order}
  - {id: a, effect: forbid, actor: "act_[trading"}
  - id: ""
    effect: escalate
    resource: "res_unknown:*"
    when:
      - {field: context.order_value, op: in, value: 5}
      - {field: context.venue, op: matches, value: "(unclosed"}
      - {field: context.size, op: lt, value: [1, 2]}
      - {field: context.flag, op: exists, value: "yes"}
      - {field: order_value, op: eq, value: 1}
      - {field: context.x, op: ne}
"#;

/// Every operator, field kind and pattern form in one valid finance policy.
const ALL_OPERATORS: &str = r#"
id: all
domain: finance
mode: permissive
templates: [{name: prevent_flash_crash, params: {max_notional_per_minute: 20000000}}]
rules:
  - {id: p, effect: permit, actor: "act_trading_algo:*", action: axn_place_order, resource: "res_security:{AAPL,MSFT}",
     when: [{field: context.order_value, op: le, value: 5000000}, {field: actor.instance, op: in, value: [a, b]},
            {field: context.venue, op: matches, value: "^X[A-Z]{3}$"}, {field: context.ok, op: exists},
            {field: resource.type, op: ne, value: res_x}, {field: context.a.b, op: ge, value: "2024-01-01"}]}
  - {id: f, effect: forbid, actor: "*", action: "axn_*", when: [{field: context.flag, op: exists, value: false}]}
  - {id: e, effect: escalate, resource: "res_security:[A-M]*", when: [{field: context.side, op: not_in, value: [buy]}]}
"#;

fn decision(i: u64, verdict: Verdict) -> Decision {
    Decision {
        request_id: format!("req-{i}"),
        decision_id: format!("0190a1b2-c3d4-7e5f-8a9b-{i:012}"),
        domain: "healthcare".to_owned(),
        actor: "act_clinician:dr_lee".to_owned(),
        action: "axn_access_phi".to_owned(),
        resource: i.is_multiple_of(2).then(|| format!("res_phi:Patient/{i}")),
        decision: verdict,
        reasoning: "consent given; line\nbreak \"quoted\" \u{1f}"
            .to_owned()
            .into(),
        rule_id: "allow-consented".to_owned().into(),
        policy_version_hash: "ab".repeat(32).into(),
        compliance_mappings: vec![ComplianceMapping {
            framework: "HIPAA".into(),
            controls: vec!["164.312(b)".into(), "164.308(a)(1)".into()],
            status: ComplianceStatus::Compliant,
        }]
        .into(),
        risk_level: 3,
        requires_human_approval: false,
        review_required: false,
        explanation: Explanation {
            matched_rules: vec!["allow-consented".into()].into(),
            findings: vec![],
            would_have: None,
            cached: false,
        },
        timestamp: jiff::Timestamp::new(1_700_000_000 + i as i64, 538_684_275).unwrap_or_default(),
    }
}

/// A system event at a fixed time, so that the seeds are the same on every run.
fn event(event_type: EventType, reason: impl Into<String>) -> EntryDraft {
    let mut draft = EntryDraft::event(event_type, reason);
    draft.timestamp = jiff::Timestamp::new(1_700_000_000, 0).unwrap_or_default();
    draft
}

fn ledger() -> Seeds {
    let mut s = Seeds::new();
    let mut redaction = RedactionConfig::default();
    redaction.domains.insert(
        "healthcare".to_owned(),
        [
            ("context.purpose".to_owned(), FieldRule::Keep),
            ("patient_id".to_owned(), FieldRule::Hash),
            ("card.number".to_owned(), FieldRule::Mask),
        ]
        .into(),
    );
    let context = json!({"patient_id": "P-1", "purpose": "treatment", "card": {"number": "4111111111111111"}, "n": 1.5});
    let context = context.as_object().cloned().unwrap_or_default();
    let key = SigningKey::from_bytes(&[7; 32]);
    let key_id = CheckpointSigner::new(key.clone()).key_id().to_owned();

    // A chain as the writer writes it: startup, policy load, decisions, a signed checkpoint.
    let mut chain = Vec::new();
    let mut head = GENESIS_HASH.to_owned();
    let mut push = |chain: &mut Vec<u8>, body: &EntryBody, seq: u64| {
        let mut line = Vec::new();
        head = write_body_line(seq, body, &head, &mut line);
        chain.extend_from_slice(&line);
        line
    };
    let bodies = [
        EntryBody::of_draft(&event(EventType::SystemStartup, "lexecon 0.1.0 started")),
        EntryBody::of_draft(&event(
            EventType::PolicyLoaded,
            "healthcare policy hipaa-baseline loaded",
        )),
        EntryBody::of_decision(&decision(1, Verdict::Permit), &context, &redaction),
        EntryBody::of_decision(
            &decision(2, Verdict::Deny),
            &context,
            &RedactionConfig::default(),
        ),
        EntryBody::of_decision(
            &decision(3, Verdict::Escalate),
            &serde_json::Map::new(),
            &redaction,
        ),
        EntryBody::of_draft(&event(
            EventType::RequestRefused,
            "not granted by the token's SMART scopes",
        )),
        EntryBody::of_draft(&event(
            EventType::Approval,
            "approval apr-1 granted by act_human_user:alice",
        )),
        EntryBody::of_draft(&event(
            EventType::LedgerRecovered,
            "truncated 17 torn bytes",
        )),
    ];
    let mut seq = 0;
    for (i, body) in bodies.into_iter().enumerate() {
        let Ok(body) = body else { continue };
        seq += 1;
        let line = push(&mut chain, &body, seq);
        seed(&mut s, &format!("line-{i}"), line);
    }
    // A checkpoint signed as the writer signs it.
    seq += 1;
    let mut checkpoint = LedgerEntry::from_draft(
        event(
            EventType::Checkpoint,
            format!("signed chain head after seq {}", seq - 1),
        ),
        seq,
        head.clone(),
    );
    checkpoint.key_id = Some(key_id);
    checkpoint.signature = Some(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(key.sign(&checkpoint_message(seq, &head)).to_bytes()),
    );
    let mut line = Vec::new();
    if checkpoint.write_line(&mut line).is_ok() {
        chain.extend_from_slice(&line);
        seed(&mut s, "line-checkpoint", line.clone());
    }
    seed(&mut s, "chain", chain.clone());
    let mut torn = chain.clone();
    torn.extend_from_slice(b"{\"seq\":11,\"timestamp\":\"2023-11-14T22:13");
    seed(&mut s, "chain-torn", torn);
    let text =
        String::from_utf8_lossy(&chain).replace("\"decision\":\"deny\"", "\"decision\":\"permit\"");
    seed(&mut s, "chain-tampered", text);
    let lines: Vec<&[u8]> = chain.split(|b| *b == b'\n').collect();
    let mut reordered = Vec::new();
    for i in [1, 0, 2] {
        reordered.extend_from_slice(lines[i]);
        reordered.push(b'\n');
    }
    seed(&mut s, "chain-reordered", reordered);
    seed(&mut s, "not-json", "hello\n");
    seed(&mut s, "empty-object", "{}\n");
    s
}

fn differential() -> Seeds {
    let mut s = Seeds::new();
    let mut state = 0x00d1_ff00_u64;
    for i in 0..40 {
        let len = 64 + (i * 37) % 448;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        seed(&mut s, &format!("random-{i:02}"), bytes);
    }
    s
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let all: [(&str, Seeds); 7] = [
        ("classify_mcp", mcp()),
        ("classify_rest", rest()),
        ("classify_fhir", fhir()),
        ("target", target()),
        ("policy", policy()),
        ("ledger_line", ledger()),
        ("differential", differential()),
    ];
    for (target, seeds) in all {
        let dir: &Path = &root.join(target);
        std::fs::create_dir_all(dir)?;
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}
