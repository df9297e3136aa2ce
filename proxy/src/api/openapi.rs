//! The checked-in OpenAPI 3.1 document of the API listener (`proxy/openapi.json`), served as is at
//! `GET /openapi.json`. Its tests check that it parses, that every route of the router appears in
//! it, and that the bodies the response builders produce validate against its schemas, so the
//! document cannot drift from the code. It never builds the document at run time.

/// The OpenAPI document, verbatim.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// `GET /openapi.json`.
pub fn response() -> http::Response<Vec<u8>> {
    crate::api::responses::raw_json_response(http::StatusCode::OK, OPENAPI_JSON.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ApiError;
    use crate::api::responses::tests::{decision, token};
    use crate::api::responses::{
        ApprovalsResponse, DecisionResponse, DomainsResponse, LegacyDecideResponse,
        PolicyTemplatesResponse,
    };
    use crate::api::router::{route, ROUTES};
    use crate::api::validate::{parse_decision_request, parse_legacy_decide};
    use lexecon_approvals::{ApprovalSettings, ApprovalStore, Approver, RequestDigest};
    use lexecon_domains::{DomainConfig, Verdict};
    use serde_json::{json, Value};

    fn doc() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("openapi.json parses")
    }

    /// Validates `instance` against `#/components/schemas/{name}`, returning every violation.
    fn violations(name: &str, instance: &Value) -> Vec<String> {
        let schema = json!({
            "$ref": format!("#/components/schemas/{name}"),
            "components": doc()["components"].clone(),
        });
        let validator = jsonschema::draft202012::new(&schema).expect("schema compiles");
        validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    fn assert_valid(name: &str, instance: &Value) {
        let v = violations(name, instance);
        assert!(v.is_empty(), "{name} rejects {instance}: {v:?}");
    }

    fn domain_config() -> DomainConfig {
        serde_json::from_value(json!({
            "domain": "finance",
            "display_name": "Finance",
            "description": "Trading and payments",
            "actor_types": [{"type_id": "act_trading_algo", "category": "ai", "label": "Trading algorithm"}],
            "action_types": [{"type_id": "axn_place_order", "category": "execute", "label": "Place order",
                              "risk_level": 4, "requires_human_approval": false}],
            "resource_types": [{"type_id": "res_security", "category": "instrument", "label": "Security",
                                "sensitivity": "internal"}],
            "compliance_frameworks": ["MIFID_II"],
            "policy_templates": [{"name": "prevent_flash_crash", "description": "Notional per minute",
                                  "params": {"max_notional_per_minute": {"default": 10000000}}}]
        }))
        .unwrap()
    }

    #[test]
    fn document_is_openapi_3_1_and_served_verbatim() {
        let d = doc();
        assert_eq!(d["openapi"], "3.1.0");
        let r = response();
        assert_eq!(r.status(), http::StatusCode::OK);
        assert_eq!(r.body(), OPENAPI_JSON.as_bytes());
        assert_eq!(r.headers()["content-type"], "application/json");
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_routes() {
        let d = doc();
        let paths = d["paths"].as_object().unwrap();
        for (method, template) in ROUTES {
            let op = &paths[*template][method.to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{method} {template} missing from openapi.json"
            );
            assert!(
                op["responses"]["200"].is_object(),
                "{method} {template} has no 200"
            );
            // The router answers the documented path with the documented endpoint.
            let concrete = template
                .replace("{domain}", "finance")
                .replace("{id}", "apr_1");
            assert_eq!(route(method, &concrete).unwrap().template(), *template);
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "openapi.json documents an operation the router lacks"
        );
    }

    #[test]
    fn every_referenced_schema_and_response_exists() {
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let d = doc();
        let mut all = Vec::new();
        refs(&d, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(d.pointer(pointer).is_some(), "dangling $ref {r}");
        }
    }

    #[test]
    fn decision_responses_validate_for_every_verdict() {
        let t = token();
        let legacy = parse_legacy_decide(
            br#"{"actor":"model","proposed_action":"search","tool":"web_search","user_intent":"x"}"#,
        )
        .unwrap();
        for verdict in [Verdict::Permit, Verdict::Deny, Verdict::Escalate] {
            let d = decision(verdict);
            for ledger in [Some("lh"), None] {
                let v1 = DecisionResponse::new(&d, Some(&t), ledger, Some("apr_1"));
                assert_valid("DecisionResponse", &serde_json::to_value(&v1).unwrap());
                let l = LegacyDecideResponse::new(&legacy, &d, Some(&t), ledger, Some("apr_1"));
                assert_valid("LegacyDecideResponse", &serde_json::to_value(&l).unwrap());
            }
        }
    }

    #[test]
    fn schema_catches_a_response_missing_a_required_field() {
        let d = decision(Verdict::Permit);
        let mut body = serde_json::to_value(DecisionResponse::new(&d, None, None, None)).unwrap();
        body.as_object_mut().unwrap().remove("rule_id");
        assert!(!violations("DecisionResponse", &body).is_empty());
    }

    #[test]
    fn error_bodies_validate() {
        let errors: Vec<ApiError> = vec![
            route("GET", "/nope").unwrap_err().into(),
            route("GET", "/decide").unwrap_err().into(),
            route("POST", "/api/v1/Bad/decisions/request")
                .unwrap_err()
                .into(),
            parse_decision_request("ai", b"{").unwrap_err().into(),
            parse_decision_request("ai", br#"{"actor":1}"#)
                .unwrap_err()
                .into(),
            crate::api::validate::domain_not_supported("energy").into(),
            ApiError::Unauthorized {
                reason: "missing bearer token".into(),
            },
            ApiError::RateLimited {
                caller: "a".into(),
                retry_after_secs: 1,
            },
            ApiError::Unavailable {
                reason: "no policy".into(),
            },
        ];
        for e in errors {
            let body: Value = serde_json::from_slice(e.to_response().body()).unwrap();
            assert_valid("Error", &body);
        }
    }

    #[test]
    fn domain_listings_validate() {
        let config = domain_config();
        let domains = serde_json::to_value(DomainsResponse::new([&config])).unwrap();
        assert_valid("DomainsResponse", &domains);
        assert_eq!(
            domains["domains"][0]["actor_types"],
            json!(["act_trading_algo"])
        );
        assert_valid("DomainConfig", &serde_json::to_value(&config).unwrap());
        let templates = serde_json::to_value(PolicyTemplatesResponse::new(&config)).unwrap();
        assert_valid("PolicyTemplatesResponse", &templates);
        assert_eq!(templates["templates"][0]["name"], "prevent_flash_crash");
    }

    #[test]
    fn approvals_validate_in_every_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalStore::open(dir.path(), ApprovalSettings::default()).unwrap();
        let now: jiff::Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let digest = RequestDigest::of_http("POST", "/orders", b"{}");
        let roles = vec!["approver".to_owned()];
        let approver = Approver {
            id: "alice",
            roles: &roles,
        };
        let (a, _) = store
            .create(&decision(Verdict::Escalate), digest, now)
            .unwrap();
        let (b, _) = store
            .create(&decision(Verdict::Escalate), digest, now)
            .unwrap();
        store
            .approve(&a.id, approver, Some("ok".into()), now)
            .unwrap();
        store.deny(&b.id, approver, None, now).unwrap();
        store
            .create(&decision(Verdict::Escalate), digest, now)
            .unwrap();
        let all = store.list(None, now);
        assert_eq!(all.len(), 3);
        let body = serde_json::to_value(ApprovalsResponse { approvals: &all }).unwrap();
        assert_valid("ApprovalsResponse", &body);
        assert_valid("Approval", &serde_json::to_value(&all[0]).unwrap());
    }

    #[test]
    fn accepted_request_bodies_validate_and_unknown_fields_do_not() {
        let v1 = json!({"request_id": "r-1", "actor": "act_trading_algo:m", "action": "axn_place_order",
                        "resource": "res_security:AAPL", "context": {"order_value": 5}, "approval_id": "apr_1"});
        assert!(parse_decision_request("finance", v1.to_string().as_bytes()).is_ok());
        assert_valid("DecisionRequest", &v1);
        let legacy = json!({"actor": "model", "proposed_action": "search", "tool": "web_search",
                            "user_intent": "x", "data_classes": ["public"], "risk_level": 3,
                            "requested_output_type": "tool_action", "policy_mode": "strict", "context": {}});
        assert!(parse_legacy_decide(legacy.to_string().as_bytes()).is_ok());
        assert_valid("LegacyDecideRequest", &legacy);
        let with_time = json!({"actor": "a", "action": "b", "at": "2026-01-01T00:00:00Z"});
        assert!(parse_decision_request("ai", with_time.to_string().as_bytes()).is_err());
        assert!(!violations("DecisionRequest", &with_time).is_empty());
    }
}
