//! End-to-end: bearer JWT identity through the running proxy, with the JWKS from a file and from
//! a URL.

use lexecon_tests as support;

use std::net::SocketAddr;

use serde_json::json;
use support::{get, now, post, start, token, RuleTable, TestUpstream, ED_JWKS};

fn config(upstream: SocketAddr, jwks: &str, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  app: {{addrs: ["{upstream}"]}}
identity:
  jwt:
    issuer: https://idp.test
    audience: lexecon
    leeway: 0s
    jwks: "{jwks}"
    insecure_jwks_http: true    # the test IdP serves its JWKS over http on loopback
    algorithms: [EdDSA]
    actor_prefix: "act_ai_agent:"
    claims_to_context: {{tenant: tenant_id}}
routes:
  - name: api
    domain: ai
    classifier: {{kind: none, action: axn_read_data}}
    upstream: app
"#
    )
}

fn claims(sub: &str, exp: u64) -> serde_json::Value {
    json!({"iss": "https://idp.test", "aud": "lexecon", "sub": sub, "tenant": "acme", "exp": exp})
}

#[test]
fn valid_jwt_names_the_actor_and_context_and_bad_ones_get_401() {
    let upstream = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, ED_JWKS).unwrap();
    let rules = RuleTable::new(&[], &[]);
    let (up, path) = (upstream.addr, jwks.display().to_string());
    let server = start(move |p, a| config(up, &path, p, a), rules.clone());
    let url = format!("http://{}/x", server.proxy_addr);

    let good = token(claims("bot-7", now() + 300));
    let bearer = format!("Bearer {good}");
    let r = get(&url, &[("authorization", &bearer)]);
    assert_eq!(r.status, 200, "{}", r.body);
    let input = rules.last().unwrap();
    assert_eq!(input.actor, "act_ai_agent:bot-7");
    assert_eq!(input.context["tenant_id"], "acme");
    // The same token again is served from the verified-token cache and still works.
    assert_eq!(get(&url, &[("authorization", &bearer)]).status, 200);

    let expired = format!("Bearer {}", token(claims("bot-7", now() - 120)));
    let mut wrong_issuer = claims("bot-7", now() + 300);
    wrong_issuer["iss"] = json!("https://other.test");
    let wrong_issuer = format!("Bearer {}", token(wrong_issuer));
    for bad in [
        expired.as_str(),
        wrong_issuer.as_str(),
        "Bearer abc.def.ghi",
    ] {
        let r = get(&url, &[("authorization", bad)]);
        assert_eq!(r.status, 401, "{bad}: {}", r.body);
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token"));
        assert_eq!(r.json()["error"], "unauthenticated");
    }
    let r = get(&url, &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"lexecon\"")
    );
    assert_eq!(upstream.requests().len(), 2);
    server.shutdown();
}

#[test]
fn jwks_is_fetched_from_a_url() {
    let idp = TestUpstream::answering(ED_JWKS.as_bytes());
    let upstream = TestUpstream::start();
    let rules = RuleTable::new(&[], &[]);
    let up = upstream.addr;
    let jwks_url = format!("http://{}/.well-known/jwks.json", idp.addr);
    let server = start(move |p, a| config(up, &jwks_url, p, a), rules.clone());
    let bearer = format!("Bearer {}", token(claims("bot-8", now() + 300)));
    let r = get(
        &format!("http://{}/x", server.proxy_addr),
        &[("authorization", &bearer)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(rules.last().unwrap().actor, "act_ai_agent:bot-8");
    assert_eq!(idp.requests()[0].path, "/.well-known/jwks.json");
    server.shutdown();
}

fn fhir_config(upstream: SocketAddr, jwks: &str, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  ehr: {{addrs: ["{upstream}"]}}
identity:
  jwt:
    issuer: https://idp.test
    audience: lexecon
    leeway: 0s
    jwks: "{jwks}"
    algorithms: [EdDSA]
    actor_prefix: "act_physician:"
    claims_to_context: {{scope: scope, patient: launch_patient}}
routes:
  - name: fhir
    match: {{path_prefix: /fhir}}
    domain: healthcare
    classifier: {{kind: fhir, base_path: /fhir}}
    upstream: ehr
"#
    )
}

#[test]
fn smart_scopes_in_the_token_limit_fhir_interactions_before_policy() {
    let upstream = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, ED_JWKS).unwrap();
    let rules = RuleTable::new(&[], &[]);
    let (up, path) = (upstream.addr, jwks.display().to_string());
    let server = start(move |p, a| fhir_config(up, &path, p, a), rules.clone());
    let base = format!("http://{}/fhir", server.proxy_addr);
    let bearer = |scope: &str, patient: Option<&str>| {
        let mut c = claims("dr-lee", now() + 300);
        c["scope"] = json!(scope);
        if let Some(p) = patient {
            c["patient"] = json!(p);
        }
        format!("Bearer {}", token(c))
    };

    // A user-level scope for another resource type does not grant reading a Patient.
    let observations_only = bearer("openid user/Observation.rs", None);
    let r = get(
        &format!("{base}/Patient/123"),
        &[("authorization", &observations_only)],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "insufficient_scope");
    assert!(r.json()["reason"]
        .as_str()
        .unwrap()
        .contains("SMART scopes"));
    assert_eq!(rules.calls(), 0, "refused before any policy decision");
    let refusals = rules.refusals();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].0, "smart_scope");
    assert_eq!(refusals[0].1, r.json()["reason"].as_str().unwrap());

    // patient/ scopes reach only the token's launch patient.
    let own_patient = bearer("patient/Patient.rs", Some("p-9"));
    let r = get(
        &format!("{base}/Patient/123"),
        &[("authorization", &own_patient)],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        upstream.requests().len(),
        0,
        "refused requests never reach the EHR"
    );
    let r = get(
        &format!("{base}/Patient/p-9"),
        &[("authorization", &own_patient)],
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // The right user-level scope passes on to the policy (here: permit all) and the EHR.
    let patients = bearer("user/Patient.rs", None);
    let r = get(
        &format!("{base}/Patient/123"),
        &[("authorization", &patients)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(upstream.requests().len(), 2);

    // Scopes as a list of strings are read too (issue 15: an array used to skip the check).
    let mut listed = claims("dr-lee", now() + 300);
    listed["scope"] = json!(["openid", "user/Observation.rs"]);
    let listed = format!("Bearer {}", token(listed));
    let r = get(
        &format!("{base}/Patient/123"),
        &[("authorization", &listed)],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "insufficient_scope");
    // A token without scopes, or with a scope claim of another shape, is refused: fail closed.
    for scope in [None, Some(json!(42)), Some(json!(["user/Patient.rs", 7]))] {
        let mut c = claims("dr-lee", now() + 300);
        if let Some(scope) = scope.clone() {
            c["scope"] = scope;
        }
        let auth = format!("Bearer {}", token(c));
        let r = get(&format!("{base}/Patient/123"), &[("authorization", &auth)]);
        assert_eq!(r.status, 403, "{scope:?}: {}", r.body);
        assert_eq!(r.json()["error"], "insufficient_scope", "{scope:?}");
    }
    assert_eq!(upstream.requests().len(), 2, "none of them reached the EHR");
    server.shutdown();
}

/// `patient/` scopes hold a request to the token's launch patient whatever names the patient: a
/// comma list or a second patient is refused before the check can see only one of them, and a
/// search by POST is checked against the patient in its form body.
#[test]
fn patient_scopes_see_every_patient_a_request_names_query_and_form_alike() {
    let upstream = TestUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, ED_JWKS).unwrap();
    let rules = RuleTable::new(&[], &[]);
    let (up, path) = (upstream.addr, jwks.display().to_string());
    let server = start(move |p, a| fhir_config(up, &path, p, a), rules.clone());
    let base = format!("http://{}/fhir", server.proxy_addr);
    let mut c = claims("dr-lee", now() + 300);
    c["scope"] = json!("patient/Observation.rs");
    c["patient"] = json!("p-9");
    let auth = format!("Bearer {}", token(c));
    let auth = ("authorization", auth.as_str());
    let form = ("content-type", "application/x-www-form-urlencoded");

    for query in [
        "patient=p-9,p-10",
        "subject=Patient/p-9,Patient/p-10",
        "patient=p-9&subject=Patient/p-10",
    ] {
        let r = get(&format!("{base}/Observation?{query}"), &[auth]);
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert!(
            r.body.contains("one patient per request"),
            "{query}: {}",
            r.body
        );
    }
    // Another patient in the form body is that patient: refused by the scope check.
    let r = post(
        &format!("{base}/Observation/_search"),
        &[auth, form],
        b"patient=p-10",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "insufficient_scope");
    // The launch patient in the query, another in the form: refused.
    let r = post(
        &format!("{base}/Observation/_search?patient=p-9"),
        &[auth, form],
        b"subject=Patient/p-10",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(upstream.heads().is_empty(), "{:?}", upstream.heads());
    assert_eq!(rules.calls(), 0, "refused before any policy decision");

    // The launch patient, named once or as a list of itself, in the query or the form: forwarded.
    let r = get(
        &format!("{base}/Observation?patient=p-9,Patient/p-9"),
        &[auth],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        &format!("{base}/Observation/_search"),
        &[auth, form],
        b"patient=p-9&code=1",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(rules.last().unwrap().context["patient_id"], "p-9");
    let got = upstream.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body, b"patient=p-9&code=1");
    server.shutdown();
}
