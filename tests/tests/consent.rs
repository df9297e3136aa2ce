//! Patient consent as real systems evaluate it (issue 15, item 2), attacked as a hostile agent
//! would, with the real engine, the shipped healthcare policy and real HTTP upstreams:
//!
//! - the demo's Consent for patient 123 permits access but withholds prescriptions (a nested deny
//!   provision for the data class MedicationRequest): a prescription search is denied naming the
//!   provision, and an `_revinclude` that would pull prescriptions in with the Patient is too;
//! - a Consent service (another upstream) says who may see what for which purpose: the caller's
//!   FHIR identity (`fhirUser`) and purpose of use come from its verified token, never from a
//!   header it sends; the route's default purpose applies when the token names none;
//! - a consent service that cannot be reached gives no consent (fail closed), and a route naming
//!   an upstream that does not exist is a located configuration error;
//! - the shipped EHR example (`deploy/examples/ehr-fhir.yaml`) runs as written: SMART scopes
//!   first, then the EHR's Consent provisions, with a client's consent header ignored.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use support::{deploy_dir, get, EngineServer};

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

/// The healthcare decisions of a ledger, in order.
fn healthcare_decisions(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| e["event_type"] == "decision" && e["domain"] == "healthcare")
        .collect()
}

/// The demo's Consent for patient 123 permits, except prescriptions: the nested deny provision
/// decides a MedicationRequest search, and the answer and the ledger entry name it. A search
/// for the Patient that would `_revinclude` the prescriptions is denied by the same provision:
/// a request that can return several data classes is held to every exception.
#[test]
fn the_demo_consent_withholds_prescriptions_by_a_nested_deny_provision() {
    let mut server = demo_server();
    let doctor = ("x-agent-id", "act_physician:dr_lee");
    let r = get(&server.url("/fhir/Patient/123"), &[doctor]);
    assert_eq!(r.status, 200, "{}", r.body);

    let r = get(
        &server.url("/fhir/MedicationRequest?patient=123"),
        &[doctor],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body
            .contains("Consent/consent-123 (provision.provision[0]) does not permit this access"),
        "{}",
        r.body
    );
    // The caller cannot talk its way around it.
    let r = get(
        &server.url("/fhir/MedicationRequest?patient=123"),
        &[
            doctor,
            ("x-patient-consent", "true"),
            ("x-purpose-of-use", "ETREAT"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = get(
        &server.url("/fhir/Patient?_id=123&_revinclude=MedicationRequest:patient"),
        &[doctor],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("provision.provision[0]"), "{}", r.body);

    let entries = server.stop_and_read_ledger();
    let decisions = healthcare_decisions(&entries);
    assert_eq!(decisions.len(), 4, "{decisions:?}");
    assert_eq!(decisions[0]["decision"], "permit");
    assert_eq!(decisions[0]["context"]["consent_provision"], "provision");
    for denied in &decisions[1..] {
        assert_eq!(denied["decision"], "deny", "{denied}");
        assert_eq!(denied["context"]["consent_id"], "Consent/consent-123");
        assert_eq!(
            denied["context"]["consent_provision"],
            "provision.provision[0]"
        );
        assert_eq!(denied["context"]["patient_consent"], false);
    }
}

/// One request a scripted upstream received: `METHOD target`.
type Seen = Arc<Mutex<Vec<String>>>;

/// A FHIR server on 127.0.0.1: `GET <base>/Consent?patient=<id>…` answers the Consent search
/// `consents(id)`; anything else answers an empty searchset. Records every request line.
fn fhir_server(base: &'static str, consents: fn(&str) -> Value) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut writer = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    // Headers (no request here has a body).
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                    }
                    let mut parts = line.split_whitespace();
                    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    record.lock().unwrap().push(format!("{method} {target}"));
                    let consent_search = format!("{base}/Consent?");
                    let body = match target.strip_prefix(&consent_search) {
                        Some(query) => {
                            let patient = query
                                .split('&')
                                .find_map(|p| p.strip_prefix("patient="))
                                .unwrap_or("");
                            consents(patient)
                        }
                        None => json!({"resourceType": "Bundle", "type": "searchset", "total": 0}),
                    }
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
    (addr, seen)
}

const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";

/// Patient 7 opted in for one practitioner, for treatment, except prescriptions: a deny base, a
/// permit for Practitioner/p1 with purpose TREAT or ETREAT, and inside it a deny for the class
/// MedicationRequest. Everyone else has no Consent.
fn opt_in(patient: &str) -> Value {
    let entries = if patient == "7" {
        vec![json!({"resource": {
            "resourceType": "Consent", "id": "opt-in-7", "status": "active",
            "patient": {"reference": "Patient/7"},
            "provision": {"type": "deny", "provision": [{
                "type": "permit",
                "actor": [{"role": {"coding": [{"code": "PRCP"}]}, "reference": {"reference": "Practitioner/p1"}}],
                "purpose": [{"system": ACT_REASON, "code": "TREAT"}, {"system": ACT_REASON, "code": "ETREAT"}],
                "provision": [{"type": "deny", "class": [{"system": RESOURCE_TYPES, "code": "MedicationRequest"}]}]
            }]}
        }})]
    } else {
        Vec::new()
    };
    json!({"resourceType": "Bundle", "type": "searchset", "entry": entries})
}

fn service_config(
    ehr: SocketAddr,
    consents: SocketAddr,
    proxy: SocketAddr,
    admin: SocketAddr,
    dir: &std::path::Path,
) -> String {
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, support::ED_JWKS).unwrap();
    format!(
        r#"
node_id: consent-test
data_dir: "{data}"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  ehr: {{addrs: ["{ehr}"]}}
  consents: {{addrs: ["{consents}"]}}
  nowhere: {{addrs: ["{nowhere}"]}}
identity:
  jwt:
    issuer: https://idp.test
    audience: lexecon
    jwks: "{jwks}"
    algorithms: [EdDSA]
    actor_prefix: "act_physician:"
    claims_to_context: {{scope: scope, fhirUser: fhir_user, purpose_of_use: purpose_of_use}}
routes:
  - name: fhir
    match: {{path_prefix: /fhir}}
    domain: healthcare
    classifier:
      kind: fhir
      base_path: /fhir
      consent_lookup: {{ttl: 60s, upstream: consents, base_path: /r4, purpose: TREAT}}
    upstream: ehr
  - name: down
    match: {{path_prefix: /down}}
    domain: healthcare
    classifier:
      kind: fhir
      base_path: /down
      consent_lookup: {{upstream: nowhere, timeout: 2s}}
    upstream: ehr
policies:
  healthcare: "{policy}"
ledger:
  redact:
    healthcare: {{consent_id: keep, consent_provision: keep, patient_consent: keep}}
"#,
        data = dir.join("data").display(),
        jwks = jwks.display(),
        nowhere = support::free_addr(),
        policy = deploy_dir().join("policies/healthcare.yaml").display(),
    )
}

/// A bearer token for practitioner `who` with SMART scopes, plus `extra` claims.
fn bearer(who: &str, extra: Value) -> String {
    let mut claims = json!({"iss": "https://idp.test", "aud": "lexecon", "sub": who,
        "exp": support::now() + 300, "scope": "openid user/*.rs"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    format!("Bearer {}", support::token(claims))
}

/// The consent service decides per actor, purpose and data class, from the token alone.
#[test]
fn a_consent_service_decides_by_the_tokens_fhir_user_purpose_and_the_data_class() {
    let (ehr, ehr_seen) = fhir_server("", |_| json!({}));
    let (consents, consent_seen) = fhir_server("/r4", opt_in);
    let mut server = EngineServer::start(move |p, a, dir| service_config(ehr, consents, p, a, dir));
    let p1 = bearer(
        "p1",
        json!({"fhirUser": "https://ehr.test/fhir/Practitioner/p1"}),
    );
    let ask = |path: &str, auth: &str, headers: &[(&str, &str)]| {
        let mut h = vec![("authorization", auth)];
        h.extend_from_slice(headers);
        get(&server.url(path), &h)
    };

    // p1, treating (the route's default purpose): observations yes, prescriptions no.
    let r = ask("/fhir/Observation?patient=7", &p1, &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = ask("/fhir/MedicationRequest?patient=7", &p1, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body
            .contains("Consent/opt-in-7 (provision.provision[0].provision[0])"),
        "{}",
        r.body
    );
    // p1 asking for payment (the token's purpose wins over the route default): the permit is
    // for treatment only, so the deny base decides.
    let paying = bearer(
        "p1",
        json!({"fhirUser": "Practitioner/p1", "purpose_of_use": "HPAYMT"}),
    );
    let r = ask("/fhir/Observation?patient=7", &paying, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("Consent/opt-in-7 (provision)"),
        "{}",
        r.body
    );

    // The attack: p2 names p1 and treatment in headers (and in a query parameter).
    let p2 = bearer("p2", json!({"fhirUser": "Practitioner/p2"}));
    let r = ask(
        "/fhir/Observation?patient=7&fhirUser=Practitioner/p1",
        &p2,
        &[
            ("fhirUser", "Practitioner/p1"),
            ("x-fhir-user", "Practitioner/p1"),
            ("x-purpose-of-use", "TREAT"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("(provision)"), "{}", r.body);
    // A token that names no FHIR identity is nobody the Consent permits.
    let anonymous = bearer("p1", json!({}));
    let r = ask(
        "/fhir/Observation?patient=7",
        &anonymous,
        &[("fhirUser", "Practitioner/p1")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // A patient without a Consent: no consent.
    let r = ask("/fhir/Observation?patient=8", &p1, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("patient consent is missing"), "{}", r.body);

    // A consent service that cannot be reached: no consent, and the answer says why.
    let r = ask("/down/Observation?patient=7", &p1, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("consent lookup"), "{}", r.body);

    // The consent service was asked once per patient (then the cache answered); the EHR saw only
    // the one permitted request, and no Consent search.
    assert_eq!(
        *consent_seen.lock().unwrap(),
        [
            "GET /r4/Consent?patient=7&status=active",
            "GET /r4/Consent?patient=8&status=active"
        ]
    );
    assert_eq!(
        *ehr_seen.lock().unwrap(),
        ["GET /fhir/Observation?patient=7"]
    );

    let entries = server.stop_and_read_ledger();
    let decisions = healthcare_decisions(&entries);
    let provisions: Vec<(&Value, &Value)> = decisions
        .iter()
        .map(|d| (&d["decision"], &d["context"]["consent_provision"]))
        .collect();
    assert_eq!(
        provisions,
        [
            (&json!("permit"), &json!("provision.provision[0]")),
            (
                &json!("deny"),
                &json!("provision.provision[0].provision[0]")
            ),
            (&json!("deny"), &json!("provision")),
            (&json!("deny"), &json!("provision")),
            (&json!("deny"), &json!("provision")),
            (&json!("deny"), &Value::Null),
            (&json!("deny"), &Value::Null),
        ],
        "{decisions:?}"
    );
}

/// A consent service the configuration does not define is refused at start, with its place.
#[test]
fn a_consent_service_that_is_not_an_upstream_is_a_located_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = service_config(
        support::free_addr(),
        support::free_addr(),
        support::free_addr(),
        support::free_addr(),
        dir.path(),
    )
    .replace("upstream: consents,", "upstream: consent-svc,");
    let path = dir.path().join("lexecon.yaml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(support::lexecon_binary())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("routes[0].classifier.consent_lookup.upstream")
            && err.contains("unknown upstream \"consent-svc\" for the consent service"),
        "{err}"
    );
}

/// A token for the shipped EHR example: its issuer and audience, signed with the key whose public
/// half is `deploy/examples/keys/jwks.json` (kid `example-key`).
fn ehr_token(claims: Value) -> String {
    let mut all = json!({"iss": "https://auth.hospital.example", "aud": "fhir-api",
        "sub": "act_physician:dr-lee", "exp": support::now() + 300});
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("example-key".into());
    let key = jsonwebtoken::EncodingKey::from_ed_pem(support::ED_PRIVATE_PEM.as_bytes()).unwrap();
    format!(
        "Bearer {}",
        jsonwebtoken::encode(&header, &all, &key).unwrap()
    )
}

/// The shipped `deploy/examples/ehr-fhir.yaml` as written — its JWT identity, SMART scope check
/// and consent lookup — in front of a FHIR server whose patient 7 opted in for Practitioner/p1's
/// treatment, except prescriptions. Only the addresses and paths are changed.
#[test]
fn the_shipped_ehr_example_checks_smart_scopes_and_looks_consent_up_end_to_end() {
    let (fhir, fhir_seen) = fhir_server("/fhir", opt_in);
    let example = deploy_dir().join("examples");
    let text = std::fs::read_to_string(example.join("ehr-fhir.yaml")).unwrap();
    assert!(text.contains("consent_lookup:") && !text.contains("consent_header"));
    let mut server = EngineServer::start(move |proxy, admin, dir| {
        text.replace("127.0.0.1:8080", &proxy.to_string())
            .replace("127.0.0.1:9901", &admin.to_string())
            .replace("127.0.0.1:8090", &fhir.to_string())
            .replace(
                "data_dir: lexecon-data",
                &format!("data_dir: \"{}\"", dir.join("data").display()),
            )
            .replace(
                "jwks: keys/jwks.json",
                &format!("jwks: \"{}\"", example.join("keys/jwks.json").display()),
            )
            .replace(
                "healthcare: ../policies/healthcare.yaml",
                &format!(
                    "healthcare: \"{}\"",
                    deploy_dir().join("policies/healthcare.yaml").display()
                ),
            )
    });
    let read = |path: &str, token: &str, headers: &[(&str, &str)]| {
        let mut h = vec![("authorization", token)];
        h.extend_from_slice(headers);
        get(&server.url(path), &h)
    };

    // A patient-context app for patient 7, used by Practitioner/p1 for treatment: forwarded.
    let launched = ehr_token(json!({"scope": "launch/patient patient/Observation.rs",
        "patient": "7", "fhirUser": "Practitioner/p1"}));
    let r = read("/fhir/Observation?patient=7", &launched, &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    // SMART first: another patient, or a type its scopes do not name, is refused before any
    // consent lookup or policy.
    let r = read("/fhir/Observation?patient=8", &launched, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "insufficient_scope", "{}", r.body);
    let r = read("/fhir/MedicationRequest?patient=7", &launched, &[]);
    assert_eq!(r.json()["error"], "insufficient_scope", "{}", r.body);
    let unscoped = ehr_token(json!({"fhirUser": "Practitioner/p1"}));
    let r = read("/fhir/Observation?patient=7", &unscoped, &[]);
    assert_eq!(r.json()["error"], "insufficient_scope", "{}", r.body);

    // Scopes that grant it, and then the Consent: its exception withholds prescriptions.
    let clinician = ehr_token(json!({"scope": "user/*.rs", "fhirUser": "Practitioner/p1"}));
    let r = read("/fhir/MedicationRequest?patient=7", &clinician, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body
            .contains("Consent/opt-in-7 (provision.provision[0].provision[0])"),
        "{}",
        r.body
    );
    // Another practitioner is not whom patient 7 consented to, whatever its headers say: the
    // example no longer trusts a client's consent header.
    let other = ehr_token(json!({"scope": "user/*.rs", "fhirUser": "Practitioner/p2",
        "sub": "act_physician:dr-roe"}));
    let r = read(
        "/fhir/Observation?patient=7",
        &other,
        &[
            ("x-patient-consent", "true"),
            ("fhirUser", "Practitioner/p1"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("Consent/opt-in-7 (provision)"),
        "{}",
        r.body
    );

    // The EHR served one Consent search (cached after) and the one permitted read.
    assert_eq!(
        *fhir_seen.lock().unwrap(),
        [
            "GET /fhir/Consent?patient=7&status=active",
            "GET /fhir/Observation?patient=7"
        ]
    );
    let entries = server.stop_and_read_ledger();
    let decisions = healthcare_decisions(&entries);
    assert_eq!(decisions.len(), 3, "{decisions:?}");
    assert_eq!(decisions[0]["decision"], "permit");
    assert_eq!(decisions[0]["context"]["consent_id"], "Consent/opt-in-7");
    let refused = entries
        .iter()
        .filter(|e| e["event_type"] == "request_refused")
        .count();
    assert_eq!(refused, 3, "the SMART refusals are recorded too");
}
