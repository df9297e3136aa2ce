//! Every context fact has a provenance, and a policy can require one (issue 15, item 2): a policy
//! that trusts `patient_consent` only when it was looked up (`provenance.patient_consent` is
//! `authority`) permits a read whose consent the FHIR server gave, and denies the same read when
//! the consent comes from anywhere else — a header a route is configured to read, a claim of the
//! caller's token, or a decision API body that names its own provenance. Real engine, real HTTP,
//! and the real binary's policy validator. And at the proxy's boundary: a tool argument named like
//! a fact stays the request's, a token's claims are the credential's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};

use serde_json::{json, Value};
use support::{get, post, EngineServer};

/// The policy under test: PHI only with consent that was looked up.
const LOOKED_UP_ONLY: &str = r#"
id: consent-must-be-looked-up
domain: healthcare
mode: strict
rules:
  - id: phi-with-looked-up-consent
    effect: permit
    action: axn_access_phi
    resource: "res_phi:*"
    when:
      - {field: context.patient_consent, op: eq, value: true}
      - {field: provenance.patient_consent, op: eq, value: authority}
    reason: PHI may be read with the consent the FHIR server gave
"#;

/// A FHIR server whose patient 7 has an active permit Consent (nobody else has one); it answers
/// anything else with an empty searchset.
fn fhir_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut writer = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                    }
                    let entries = if line.contains("/Consent?patient=7&") {
                        vec![json!({"resource": {"resourceType": "Consent", "id": "c-7",
                            "status": "active", "provision": {"type": "permit"}}})]
                    } else {
                        Vec::new()
                    };
                    let body =
                        json!({"resourceType": "Bundle", "type": "searchset", "entry": entries})
                            .to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if writer.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn config(ehr: SocketAddr, proxy: SocketAddr, admin: SocketAddr, dir: &std::path::Path) -> String {
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, support::ED_JWKS).unwrap();
    let policy = dir.join("healthcare.yaml");
    std::fs::write(&policy, LOOKED_UP_ONLY).unwrap();
    format!(
        r#"
node_id: provenance-test
data_dir: "{data}"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  ehr: {{addrs: ["{ehr}"]}}
identity:
  jwt:
    issuer: https://idp.test
    audience: lexecon
    jwks: "{jwks}"
    algorithms: [EdDSA]
    actor_prefix: "act_physician:"
    # An IdP that asserts consent in a claim: a credential's word, not the FHIR server's.
    claims_to_context: {{scope: scope, consent: patient_consent}}
routes:
  - name: looked-up
    match: {{path_prefix: /fhir}}
    domain: healthcare
    classifier: {{kind: fhir, base_path: /fhir, consent_lookup: {{ttl: 60s}}}}
    upstream: ehr
  - name: header
    match: {{path_prefix: /trusting}}
    domain: healthcare
    classifier: {{kind: fhir, base_path: /trusting, consent_header: x-patient-consent}}
    upstream: ehr
policies:
  healthcare: "{policy}"
"#,
        data = dir.join("data").display(),
        jwks = jwks.display(),
        policy = policy.display(),
    )
}

fn bearer(extra: Value) -> String {
    let mut claims = json!({"iss": "https://idp.test", "aud": "lexecon", "sub": "p1",
        "exp": support::now() + 300, "scope": "user/*.rs"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    format!("Bearer {}", support::token(claims))
}

#[test]
fn a_policy_requiring_looked_up_consent_denies_consent_from_anywhere_else() {
    let ehr = fhir_server();
    let server = EngineServer::start(move |p, a, dir| config(ehr, p, a, dir));
    let plain = bearer(json!({}));
    let auth = |token: &str| ("authorization", token.to_owned());
    let read = |path: &str, headers: &[(&str, String)]| {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        get(&server.url(path), &h)
    };

    // Looked up: the FHIR server's Consent for patient 7 permits.
    let r = read("/fhir/Patient/7", &[auth(&plain)]);
    assert_eq!(r.status, 200, "{}", r.body);

    // The same consent from a header the route is configured to read: the caller's word.
    let r = read(
        "/trusting/Patient/7",
        &[auth(&plain), ("x-patient-consent", "true".into())],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("default:strict"), "{}", r.body);

    // From a claim of the caller's token: a credential's word, not an authority's.
    let claiming = bearer(json!({"consent": true}));
    let r = read("/trusting/Patient/7", &[auth(&claiming)]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("default:strict"), "{}", r.body);

    // On the lookup route the lookup wins over the claim, both ways: no Consent for patient 8
    // whatever the token says, and patient 7's Consent whatever the token says.
    let r = read("/fhir/Patient/8", &[auth(&claiming)]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("patient consent is missing"), "{}", r.body);
    let refusing = bearer(json!({"consent": false}));
    let r = read("/fhir/Patient/7", &[auth(&refusing)]);
    assert_eq!(r.status, 200, "{}", r.body);

    // The decision API: a body cannot name its own provenance, and its facts are the caller's.
    let api = format!(
        "http://{}/api/v1/healthcare/decisions/request",
        server.handle().admin_addr
    );
    let decide = |body: Value| {
        post(
            &api,
            &[
                ("authorization", plain.as_str()),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    };
    let mut body = json!({"actor": "act_physician:p1", "action": "axn_access_phi",
        "resource": "res_phi:Patient/7", "context": {"patient_consent": true},
        "provenance": {"patient_consent": "authority"}});
    let r = decide(body.clone());
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("provenance: unknown field"), "{}", r.body);
    body.as_object_mut().unwrap().remove("provenance");
    let r = decide(body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["decision"], "deny", "{}", r.body);
}

/// The real binary's policy validator accepts `provenance.<key>` conditions and points at a
/// provenance that does not exist.
#[test]
fn the_policy_validator_accepts_provenance_conditions_and_locates_a_typo() {
    let dir = tempfile::tempdir().unwrap();
    let validate = |text: &str| {
        let path = dir.path().join("healthcare.yaml");
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(support::lexecon_binary())
            .args(["policy", "validate", "--domain", "healthcare"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let ok = validate(LOOKED_UP_ONLY);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let typo = validate(&LOOKED_UP_ONLY.replace("value: authority", "value: authorty"));
    assert!(!typo.status.success());
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&typo.stdout),
        String::from_utf8_lossy(&typo.stderr)
    );
    assert!(
        err.contains("rules[0].when[1].value")
            && err.contains("\"authorty\" is not a provenance: expected one of request, credential, authority, plugin"),
        "{err}"
    );
}

fn labels_config(upstream: SocketAddr, jwks: &str, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  app: {{addrs: ["{upstream}"]}}
identity:
  trusted_actor_header: x-agent-id
  jwt:
    issuer: https://idp.test
    audience: lexecon
    jwks: "{jwks}"
    algorithms: [EdDSA]
    actor_prefix: "act_ai_agent:"
    claims_to_context: {{tenant: tenant, scope: scope}}
routes:
  - name: mcp
    match: {{path_prefix: /mcp, methods: [POST]}}
    domain: ai
    classifier: {{kind: mcp}}
    upstream: app
"#
    )
}

/// What the proxy hands the decision point says where each fact came from: a tool argument named
/// like a fact (or like a provenance) is the request's, under `args`; a claim of the caller's
/// token is the credential's; a header-named actor brings no credential facts at all.
#[test]
fn tool_arguments_are_the_requests_and_token_claims_the_credentials() {
    use lexecon_domains::Provenance;
    let upstream = support::TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, support::ED_JWKS).unwrap();
    let rules = support::RuleTable::new(&[], &[]);
    let (up, path) = (upstream.addr, jwks.display().to_string());
    let server = support::start(move |p, a| labels_config(up, &path, p, a), rules.clone());
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "lookup",
        "arguments": {"patient_consent": true, "tenant": "other", "provenance": {"tenant": "authority"}}}});
    let url = format!("http://{}/mcp", server.proxy_addr);
    let token = support::token(
        json!({"iss": "https://idp.test", "aud": "lexecon", "sub": "bot",
        "exp": support::now() + 300, "tenant": "acme"}),
    );
    let bearer = format!("Bearer {token}");
    let r = post(
        &url,
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ],
        call.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let input = rules.last().unwrap();
    assert_eq!(input.context["tenant"], "acme");
    assert_eq!(input.context["args"]["tenant"], "other");
    assert!(!input.context.contains_key("patient_consent"));
    assert_eq!(
        input.provenance,
        lexecon_domains::Provenances::from([("tenant".to_owned(), Provenance::Credential)]),
        "only the claim is labelled; args, mcp_tool and the rest are the request's"
    );

    // A header-named actor: the same call, no credential facts.
    let r = post(
        &url,
        &[
            ("x-agent-id", "act_ai_agent:bot"),
            ("content-type", "application/json"),
        ],
        call.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let input = rules.last().unwrap();
    assert!(input.provenance.is_empty(), "{:?}", input.provenance);
    assert!(!input.context.contains_key("tenant"));
    server.shutdown();
}
