//! The decision API end to end over real HTTP on loopback: every endpoint's success and error
//! answers, the Lexecon 1.x shapes, capability tokens that verify against the served JWKS, and
//! real responses validated against the served OpenAPI document.

use lexecon_tests as support;

use lexecon_tests::api_harness;

use api_harness::{assert_schema, person, ApiHarness, AGENT};
use serde_json::{json, Value};
use support::{get, post};

fn read_request() -> Value {
    json!({"request_id": "r-1", "actor": AGENT, "action": "axn_read_data", "resource": "res_file:q3",
           "context": {"purpose": "summary"}})
}

#[test]
fn health_reports_policy_ledger_and_upstream_checks() {
    let h = ApiHarness::start("");
    let r = get(&h.api("/health"), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["node_id"], "api-test-node");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["checks"]["policy"]["loaded"], 1);
    assert_eq!(body["checks"]["policy"]["domains"], json!(["ai"]));
    assert_eq!(body["checks"]["ledger_writer"]["status"], "ok");
    assert_eq!(body["checks"]["upstreams"]["breakers"]["app"], "closed");
    assert_schema(&h.openapi(), "Health", &body);
}

#[test]
fn health_is_503_when_no_policy_is_loaded_and_decisions_are_404() {
    let h = ApiHarness::start_with_policy(None, "");
    let r = get(&h.api("/health"), &[]);
    assert_eq!(r.status, 503, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["policy"]["status"], "failed");
    assert_eq!(body["checks"]["policy"]["loaded"], 0);
    assert_schema(&h.openapi(), "Health", &body);
    let r = h.post_as(AGENT, "/api/v1/ai/decisions/request", &read_request());
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error"]["message"], "Domain not supported: ai");
}

#[test]
fn permitted_decision_carries_a_token_that_verifies_against_the_served_jwks() {
    let h = ApiHarness::start("");
    let r = h.post_as(AGENT, "/api/v1/ai/decisions/request", &read_request());
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["decision"], "permit");
    assert_eq!(body["rule_id"], "agents-may-read");
    assert_eq!(body["request_id"], "r-1");
    let ledger_hash = body["ledger_entry_hash"].as_str().unwrap();
    assert_eq!(ledger_hash.len(), 64);
    let jwks_text = get(&h.api("/.well-known/jwks.json"), &[]).body;
    let jwks = lexecon_token::parse_jwks(&jwks_text).unwrap();
    let token = body["capability_token"].as_str().unwrap();
    let claims = lexecon_token::verify_token(token, &jwks, Some("lexecon-api")).unwrap();
    assert_eq!(claims.sub, AGENT);
    assert_eq!(claims.act, "axn_read_data");
    assert_eq!(claims.dec, body["decision_id"].as_str().unwrap());
    assert_eq!(claims.led, ledger_hash);
    assert_schema(&h.openapi(), "DecisionResponse", &body);

    // The token is bound to the decided context (`ctx`), and to no HTTP request.
    assert_eq!(claims.ctx.as_deref().map(str::len), Some(43), "{claims:?}");
    assert_eq!((claims.htm, claims.htu, claims.bdh), (None, None, None));
}

/// A token for another audience (the order system) is not had by asking for it: `api.audiences`
/// names which roles may ask for which, and a header-named caller has no role (issue 15).
#[test]
fn a_capability_token_for_another_audience_needs_a_role_allowed_it() {
    let h = ApiHarness::start("api: {audiences: {decider: [docs-service]}}");
    let jwks = lexecon_token::parse_jwks(&get(&h.api("/.well-known/jwks.json"), &[]).body).unwrap();
    let ask = |auth: (&str, &str)| {
        post(
            &h.api("/api/v1/ai/decisions/request"),
            &[auth, ("x-lexecon-audience", "docs-service")],
            read_request().to_string().as_bytes(),
        )
    };
    let r = ask(("x-agent-id", AGENT));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("docs-service"), "{}", r.body);
    let decider = format!("Bearer {}", person("act_service:gateway", &["decider"]));
    let r = ask(("authorization", &decider));
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["capability_token"].as_str().unwrap().to_owned();
    assert!(lexecon_token::verify_token(&token, &jwks, Some("docs-service")).is_ok());
    assert!(lexecon_token::verify_token(&token, &jwks, Some("lexecon-api")).is_err());
}

#[test]
fn denied_decision_is_200_without_a_token() {
    let h = ApiHarness::start("");
    let r = h.post_as(
        AGENT,
        "/api/v1/ai/decisions/request",
        &json!({"actor": AGENT, "action": "axn_delete_data"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["rule_id"], "no-deletes");
    assert_eq!(body["capability_token"], Value::Null);
    assert!(body.get("approval_id").is_none());
    assert_schema(&h.openapi(), "DecisionResponse", &body);
}

#[test]
fn decision_errors_have_their_status_and_error_body() {
    let h = ApiHarness::start("");
    let openapi = h.openapi();
    let check = |r: support::Reply, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        let body = r.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_schema(&openapi, "Error", &body);
        body
    };
    let body = check(
        h.post_as(AGENT, "/api/v1/Fin-ance/decisions/request", &read_request()),
        400,
        "invalid_domain",
    );
    assert_eq!(body["error"]["message"], "Invalid domain: Fin-ance");
    let body = check(
        h.post_as(
            AGENT,
            "/api/v1/no_such_domain/decisions/request",
            &read_request(),
        ),
        404,
        "domain_not_supported",
    );
    assert_eq!(
        body["error"]["message"],
        "Domain not supported: no_such_domain"
    );
    // finance has a plugin but no policy loaded here.
    check(
        h.post_as(AGENT, "/api/v1/finance/decisions/request", &read_request()),
        404,
        "domain_not_supported",
    );
    let body = check(
        h.post_as(
            AGENT,
            "/api/v1/ai/decisions/request",
            &json!({"actor": "x".repeat(300), "context": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}),
        ),
        422,
        "validation_failed",
    );
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"actor"), "{fields:?}");
    assert!(fields.contains(&"action"), "{fields:?}");
    assert!(
        fields.iter().any(|f| f.starts_with("context")),
        "{fields:?}"
    );
    check(
        post(
            &h.api("/api/v1/ai/decisions/request"),
            &[("x-agent-id", AGENT)],
            b"{not json",
        ),
        422,
        "invalid_json",
    );
    let big = format!(
        r#"{{"actor":"{AGENT}","action":"axn_read_data","context":{{"blob":"{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    check(
        post(
            &h.api("/api/v1/ai/decisions/request"),
            &[("x-agent-id", AGENT)],
            big.as_bytes(),
        ),
        413,
        "payload_too_large",
    );
    let r = get(&h.api("/decide"), &[("x-agent-id", AGENT)]);
    assert_eq!(r.header("allow"), Some("POST"));
    check(r, 405, "method_not_allowed");
    let r = post(
        &h.api("/api/v1/ai/decisions/request"),
        &[],
        read_request().to_string().as_bytes(),
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    check(r, 401, "unauthorized");
    let r = post(
        &h.api("/api/v1/ai/decisions/request"),
        &[("authorization", "Bearer not.a.jwt")],
        read_request().to_string().as_bytes(),
    );
    check(r, 401, "unauthorized");
    check(h.get_as(AGENT, "/api/v2/nothing"), 404, "not_found");
}

#[test]
fn deciding_for_another_actor_needs_the_decider_role() {
    let h = ApiHarness::start("");
    let r = h.post_as(
        "act_ai_agent:mallory",
        "/api/v1/ai/decisions/request",
        &read_request(),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("decider"));
    let service = person("act_system_service:gateway", &["decider"]);
    let r = h.post_bearer(&service, "/api/v1/ai/decisions/request", &read_request());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["decision"], "permit");
    let plain = person("act_system_service:other", &["auditor"]);
    let r = h.post_bearer(&plain, "/api/v1/ai/decisions/request", &read_request());
    assert_eq!(r.status, 403, "{}", r.body);
}

#[test]
fn legacy_decide_answers_the_1x_shape() {
    let h = ApiHarness::start("");
    let r = h.post_as(
        AGENT,
        "/decide",
        &json!({"actor": AGENT, "proposed_action": "search", "tool": "web_search",
                "user_intent": "find the refund policy", "data_classes": ["public"], "risk_level": 2,
                "requested_output_type": "tool_action", "policy_mode": "strict", "context": {}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["allowed"], true, "{body}");
    assert_eq!(body["decision"], "permit");
    assert_eq!(body["reason"], body["reasoning"]);
    assert_eq!(body["capability_token"]["scope"]["tool"], "web_search");
    assert_eq!(body["capability_token"]["scope"]["action"], "search");
    // The token's id and expiry as the answer states them are the signed token's own claims.
    let jwks = lexecon_token::parse_jwks(&get(&h.api("/.well-known/jwks.json"), &[]).body).unwrap();
    let token = body["capability_token"]["token"].as_str().unwrap();
    let claims = lexecon_token::verify_token(token, &jwks, None).unwrap();
    assert_eq!(body["capability_token"]["token_id"], claims.jti.as_str());
    let expiry: jiff::Timestamp = body["capability_token"]["expiry"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(expiry.as_second(), claims.exp);
    assert_eq!(body["ledger_entry_hash"].as_str().unwrap().len(), 64);
    assert_schema(&h.openapi(), "LegacyDecideResponse", &body);

    let r = h.post_as(
        AGENT,
        "/decide",
        &json!({"actor": AGENT, "proposed_action": "delete", "tool": "fs", "user_intent": "clean up"}),
    );
    let body = r.json();
    assert_eq!(body["allowed"], false);
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["capability_token"], Value::Null);

    let r = h.post_as(AGENT, "/decide", &json!({"actor": AGENT, "risk_level": 9}));
    assert_eq!(r.status, 422);

    // 1.x clients posting the v1 body to /decisions/request decide in the ai domain.
    let r = h.post_as(AGENT, "/decisions/request", &read_request());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["decision"], "permit");
}

#[test]
fn domain_listing_config_and_templates_are_served() {
    let h = ApiHarness::start("");
    let openapi = h.openapi();
    let r = h.get_as(AGENT, "/api/v1/domains");
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_schema(&openapi, "DomainsResponse", &body);
    let names: Vec<&str> = body["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"ai") && names.contains(&"finance"),
        "{names:?}"
    );
    let ai = body["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "ai")
        .unwrap();
    assert!(ai["action_types"]
        .as_array()
        .unwrap()
        .contains(&json!("axn_send_message")));

    let r = h.get_as(AGENT, "/api/v1/finance/config");
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["domain"], "finance");
    assert_schema(&openapi, "DomainConfig", &body);

    let r = h.get_as(AGENT, "/api/v1/finance/policy-templates");
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["domain"], "finance");
    assert_schema(&openapi, "PolicyTemplatesResponse", &body);

    let r = h.get_as(AGENT, "/api/v1/no_such_domain/config");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["error"]["message"],
        "Domain not supported: no_such_domain"
    );
    assert_eq!(get(&h.api("/api/v1/domains"), &[]).status, 401);
}

#[test]
fn openapi_document_is_served_verbatim_and_documents_every_route() {
    let h = ApiHarness::start("");
    let r = get(&h.api("/openapi.json"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, lexecon::api::openapi::OPENAPI_JSON);
    let doc = r.json();
    for (method, template) in lexecon::api::router::ROUTES {
        assert!(
            doc["paths"][*template][method.to_ascii_lowercase()].is_object(),
            "{method} {template}"
        );
    }
    let jwks = get(&h.api("/.well-known/jwks.json"), &[]).json();
    assert_schema(&doc, "Jwks", &jwks);
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    // Metrics stay on the same listener.
    let r = get(&h.api("/metrics"), &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn callers_over_the_rate_limit_get_429_with_retry_after() {
    let h = ApiHarness::start("api: {rate_limit: {per_actor: 2/m}}");
    for _ in 0..2 {
        assert_eq!(
            h.post_as(AGENT, "/api/v1/ai/decisions/request", &read_request())
                .status,
            200
        );
    }
    let r = h.post_as(AGENT, "/api/v1/ai/decisions/request", &read_request());
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    // Naming another actor in the trusted header buys no fresh budget (issue 15)...
    let other = json!({"actor": "act_ai_agent:other", "action": "axn_read_data"});
    let r = h.post_as("act_ai_agent:other", "/api/v1/ai/decisions/request", &other);
    assert_eq!(r.status, 429, "{}", r.body);
    // ...while a caller proven by a credential has its own.
    let decider = person("act_service:risk", &["decider"]);
    let r = h.post_bearer(&decider, "/api/v1/ai/decisions/request", &other);
    assert_eq!(r.status, 200, "{}", r.body);
    // Public endpoints are not limited.
    assert_eq!(get(&h.api("/health"), &[]).status, 200);
}

#[test]
fn every_decision_answer_names_its_own_ledger_entry() {
    // Repeated permits reuse one capability token (its `led` links the first decision's entry),
    // but each answer must still name the entry of its own decision, denies included.
    let h = ApiHarness::start("");
    let mut hashes = Vec::new();
    for i in 0..3 {
        let mut request = read_request();
        request["request_id"] = json!(format!("r-same-{i}"));
        let r = h.post_as(AGENT, "/api/v1/ai/decisions/request", &request);
        assert_eq!(r.status, 200, "{}", r.body);
        let body = r.json();
        assert_eq!(body["decision"], "permit");
        hashes.push((
            body["decision_id"].as_str().unwrap().to_owned(),
            body["ledger_entry_hash"]
                .as_str()
                .unwrap_or_else(|| panic!("permit {i} has no ledger_entry_hash: {body}"))
                .to_owned(),
        ));
    }
    let r = h.post_as(
        AGENT,
        "/api/v1/ai/decisions/request",
        &json!({"actor": AGENT, "action": "axn_delete_data", "resource": "res_file:q3"}),
    );
    let body = r.json();
    assert_eq!(body["decision"], "deny", "{body}");
    hashes.push((
        body["decision_id"].as_str().unwrap().to_owned(),
        body["ledger_entry_hash"]
            .as_str()
            .unwrap_or_else(|| panic!("the deny has no ledger_entry_hash: {body}"))
            .to_owned(),
    ));
    // Each hash is the entry_hash of the ledger line recording that decision.
    h.flush_ledger();
    let dir = h.dir.path().join("data").join("ledger");
    let mut lines = Vec::new();
    for file in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    for (decision_id, hash) in &hashes {
        let entry = lines
            .iter()
            .find(|e| e["decision_id"] == decision_id.as_str())
            .unwrap_or_else(|| panic!("no ledger entry for decision {decision_id}"));
        assert_eq!(entry["entry_hash"], hash.as_str(), "{entry}");
    }
    // The writer's counters are scraped with the other metrics, as of the flush above.
    let text = get(&h.api("/metrics"), &[]).body;
    let metric = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    };
    assert_eq!(metric("lexecon_ledger_entries_total"), lines.len() as f64);
    let head = metric("lexecon_ledger_head_seq");
    assert_eq!(head, lines.len() as f64, "one seq per entry, from 1");
    assert_eq!(metric("lexecon_ledger_durable_seq"), head, "flushed");
    assert!(metric("lexecon_ledger_writes_total") >= 1.0);
    assert!(metric("lexecon_ledger_syncs_total") >= 1.0);
    assert_eq!(metric("lexecon_ledger_failed"), 0.0);
    assert_eq!(metric("lexecon_ledger_queue_depth"), 0.0);
}
