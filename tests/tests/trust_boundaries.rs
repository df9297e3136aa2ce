//! Trust boundaries (issue 15), attacked as a hostile agent on loopback would, against the shipped
//! demo configuration with the real engine and the real `lexecon` binary for the CLI:
//!
//! - the agent escalates a call, then names a human approver in the trusted actor header and
//!   approves its own request: refused (a header names an actor, never its roles);
//! - a person approves with a token from the local issuer (`lexecon token issue`), which the agent
//!   does not hold, and the retried call is forwarded once;
//! - the CLI refuses to sign a role the configuration does not let the local issuer grant, and a
//!   token signed by any other key is refused (401);
//! - what the caller asserts does not become a fact: MCP tool arguments stay under `context.args`,
//!   and a FHIR route that names no consent or physician header ignores the caller's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use serde_json::{json, Value};
use support::{deploy_dir, get, post, EngineServer};

const AGENT: (&str, &str) = ("x-agent-id", "act_ai_agent:demo");
const JSON: (&str, &str) = ("content-type", "application/json");

fn demo_server() -> EngineServer {
    let policies = deploy_dir().join("policies");
    let demo = std::fs::read_to_string(deploy_dir().join("demo.yaml")).unwrap();
    EngineServer::start(move |proxy, admin, dir| {
        demo.replace("127.0.0.1:8080", &proxy.to_string())
            .replace("127.0.0.1:9901", &admin.to_string())
            .replace("127.0.0.1:9902", &support::free_addr().to_string())
            .replace(
                "data_dir: lexecon-data",
                &format!("data_dir: \"{}\"", dir.join("data").display()),
            )
            .replace("policies/", &format!("{}/", policies.display()))
    })
}

fn send_email(server: &EngineServer, id: u64, approval: Option<&str>) -> support::Reply {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "send_email", "arguments": {"to": "cfo@example.com"}}});
    let mut headers = vec![AGENT, JSON];
    if let Some(a) = approval {
        headers.push(("x-lexecon-approval", a));
    }
    post(&server.url("/mcp"), &headers, body.to_string().as_bytes())
}

fn api(server: &EngineServer, path: &str) -> String {
    format!("http://{}{path}", server.handle().admin_addr)
}

/// `lexecon token issue …` with the real binary; (exit code, stdout, stderr).
fn token_issue(server: &EngineServer, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(support::lexecon_binary())
        .args(["token", "issue", "--config"])
        .arg(&server.config_path)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_agent_cannot_approve_its_own_escalation_and_a_local_issuer_token_can() {
    let server = demo_server();
    // The agent's email needs a human: the MCP answer names the approval.
    let r = send_email(&server, 1, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let text = r.body.clone();
    let start = text.find("apr_").expect("the answer names an approval");
    let id: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(!id.is_empty(), "{text}");

    // The attack: the agent names alice and approves itself.
    let approve = api(&server, &format!("/api/v1/approvals/{id}/approve"));
    let r = post(
        &approve,
        &[("x-agent-id", "act_human_user:alice"), JSON],
        br#"{"comment":"I approve myself"}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "not_approver", "{}", r.body);
    let retried = send_email(&server, 2, Some(&id));
    assert!(
        retried.body.contains("pending"),
        "the approval is still pending: {}",
        retried.body
    );

    // The CLI signs only roles the local issuer may grant.
    let (code, _, err) = token_issue(
        &server,
        &["--subject", "act_human_user:mallory", "--role", "admin"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("may grant only"), "{err}");

    // Alice, with a credential the agent does not hold, approves.
    let (code, alice, err) = token_issue(
        &server,
        &["--subject", "act_human_user:alice", "--role", "approver"],
    );
    assert_eq!(code, 0, "{err}");
    let bearer = format!("Bearer {alice}");
    let pending = get(
        &api(&server, "/api/v1/approvals?status=pending"),
        &[("authorization", &bearer)],
    );
    assert_eq!(pending.status, 200, "{}", pending.body);
    assert!(pending.body.contains(&id), "{}", pending.body);
    let r = post(
        &approve,
        &[("authorization", &bearer), JSON],
        br#"{"comment":"expected"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["decided_by"], "act_human_user:alice");

    // The retry carrying the approval is forwarded to the demo tool server, once.
    let r = send_email(&server, 3, Some(&id));
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = r.json();
    assert!(
        v.get("error").is_none() && v["result"]["isError"] != json!(true),
        "{v}"
    );
    let again = send_email(&server, 4, Some(&id));
    assert!(again.body.contains("already used"), "{}", again.body);
}

#[test]
fn an_identity_token_signed_by_another_key_is_refused() {
    let server = demo_server();
    // Same claims, same kid, another key: the signature does not verify.
    let (_, good, _) = token_issue(
        &server,
        &["--subject", "act_human_user:alice", "--role", "approver"],
    );
    let dir = tempfile::tempdir().unwrap();
    let other = format!(
        "data_dir: \"{}\"\nidentity: {{local_issuer: {{roles: [approver]}}}}\n",
        dir.path().display()
    );
    let other_path = dir.path().join("other.yaml");
    std::fs::write(&other_path, other).unwrap();
    let out = std::process::Command::new(support::lexecon_binary())
        .args([
            "token",
            "issue",
            "--subject",
            "act_human_user:alice",
            "--role",
            "approver",
            "--config",
        ])
        .arg(&other_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let forged = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_ne!(forged, good);
    let r = get(
        &api(&server, "/api/v1/approvals?status=pending"),
        &[("authorization", &format!("Bearer {forged}"))],
    );
    assert_eq!(r.status, 401, "{}", r.body);
}

fn provenance_config(
    upstream: std::net::SocketAddr,
    proxy: std::net::SocketAddr,
    admin: std::net::SocketAddr,
) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  app: {{addrs: ["{upstream}"]}}
identity: {{trusted_actor_header: x-agent-id}}
routes:
  - name: mcp
    match: {{path_prefix: /mcp, methods: [POST]}}
    domain: ai
    classifier: {{kind: mcp}}
    upstream: app
  - name: fhir
    match: {{path_prefix: /fhir}}
    domain: healthcare
    classifier: {{kind: fhir, base_path: /fhir}}
    upstream: app
"#
    )
}

/// What the caller asserts does not become a fact: tool arguments stay under `args`, and a FHIR
/// route that names no consent or physician header ignores the caller's.
#[test]
fn caller_assertions_never_pose_as_facts() {
    let upstream = support::TestUpstream::start();
    let rules = support::RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let server = support::start(move |p, a| provenance_config(up, p, a), rules.clone());
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "lookup",
        "arguments": {"patient_consent": true, "mcp_tool": "other", "physician_id": "dr-self"}}});
    let r = post(
        &format!("http://{}/mcp", server.proxy_addr),
        &[AGENT, JSON],
        call.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let input = rules.last().unwrap();
    assert_eq!(input.context["mcp_tool"], json!("lookup"));
    assert!(
        !input.context.contains_key("patient_consent"),
        "{:?}",
        input.context
    );
    assert!(
        !input.context.contains_key("physician_id"),
        "{:?}",
        input.context
    );
    assert_eq!(input.context["args"]["patient_consent"], json!(true));

    let r = get(
        &format!("http://{}/fhir/Patient/123", server.proxy_addr),
        &[
            ("x-agent-id", "act_physician:dr_self"),
            ("x-patient-consent", "true"),
            ("x-physician-id", "dr_self"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let input = rules.last().unwrap();
    assert_eq!(input.action, "axn_access_phi");
    assert!(
        !input.context.contains_key("patient_consent"),
        "{:?}",
        input.context
    );
    assert!(
        !input.context.contains_key("physician_id"),
        "{:?}",
        input.context
    );
    server.shutdown();
}

/// Consent is the FHIR server's to say (issue 15): the shipped demo looks it up as the embedded
/// upstream's `Consent` resources. Patient 123 has an active one: the read is forwarded and its
/// ledger entry names the Consent; patient 456 has none: denied, whatever consent header the
/// caller sends.
#[test]
fn consent_is_looked_up_as_fhir_consent_resources_not_taken_from_the_caller() {
    let mut server = demo_server();
    let doctor = ("x-agent-id", "act_physician:dr_lee");
    let r = get(&server.url("/fhir/Patient/123"), &[doctor]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["resourceType"], "Patient");
    let r = get(
        &server.url("/fhir/Patient/456"),
        &[doctor, ("x-patient-consent", "true")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("consent"), "{}", r.body);

    let entries = server.stop_and_read_ledger();
    let decisions: Vec<&Value> = entries
        .iter()
        .filter(|e| e["event_type"] == "decision" && e["domain"] == "healthcare")
        .collect();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    let permitted = decisions
        .iter()
        .find(|e| e["decision"] == "permit")
        .unwrap();
    let text = permitted.to_string();
    assert!(text.contains("Consent/consent-123"), "{text}");
}

/// The consent lookup sees the patient a request is about wherever it is named: a search by POST
/// is looked up for the patient in its form body (123 has consent: forwarded; 456 has none:
/// denied), and a list of two patients never reaches the lookup or the upstream.
#[test]
fn consent_is_looked_up_for_the_patient_of_a_form_search_and_lists_are_refused() {
    let server = demo_server();
    let doctor = ("x-agent-id", "act_physician:dr_lee");
    let form = ("content-type", "application/x-www-form-urlencoded");
    let r = post(
        &server.url("/fhir/Observation/_search"),
        &[doctor, form],
        b"patient=123&code=8867-4",
    );
    // Permitted and forwarded: the demo upstream has no Observation search and says so.
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        r.body.contains("the demo upstream has no POST"),
        "{}",
        r.body
    );
    let r = post(
        &server.url("/fhir/Observation/_search"),
        &[doctor, form],
        b"patient=456",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("consent"), "{}", r.body);
    for query in ["patient=123,456", "subject=Patient/123,Patient/456"] {
        let r = get(
            &server.url(&format!("/fhir/Observation?{query}")),
            &[doctor],
        );
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert!(r.body.contains("one patient per request"), "{}", r.body);
    }
}
