//! JSON bodies the API answers with: the v1 decision response, the Lexecon 1.x `/decide` response,
//! the domain listings and the approvals, plus [`json_response`] to wrap any body in an
//! `http::Response` with `content-type` and `content-length` set.
//!
//! The response structs borrow from the [`Decision`] and friends, so building one allocates nothing
//! but the output buffer. A capability token is only ever included for a `permit`: whatever the
//! caller passes, a denied or escalated decision never carries one (fail closed). Error bodies live
//! in [`crate::api::error`].

use lexecon_domains::{ComplianceMapping, DomainConfig, PolicyTemplate, Verdict};
use lexecon_policy_cache::Decision;
use serde::{Deserialize, Serialize};

use crate::api::validate::LegacyDecideRequest;
use lexecon_approvals::Approval;
use lexecon_ledger::entry::push_compliance;
use lexecon_ledger::json;

/// A capability token minted for a permitted decision, as the token minter hands it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The compact EdDSA JWT the caller presents upstream.
    pub token: String,
    /// The token's `jti`.
    pub token_id: String,
    pub issued_at: jiff::Timestamp,
    pub expires_at: jiff::Timestamp,
}

/// The v1 decision response (`POST /api/v1/{domain}/decisions/request`, `POST /decisions/request`).
/// Answered with 200 whatever the verdict: a deny is a decision, not an HTTP error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionResponse<'a> {
    pub request_id: &'a str,
    pub decision_id: &'a str,
    pub decision: Verdict,
    pub reasoning: &'a str,
    pub rule_id: &'a str,
    pub policy_version_hash: &'a str,
    /// The compact JWT on permit, otherwise `null`.
    pub capability_token: Option<&'a str>,
    /// Hash of the ledger entry recording this decision (`null` if the ledger had none to give).
    pub ledger_entry_hash: Option<&'a str>,
    pub compliance_mappings: &'a [ComplianceMapping],
    pub timestamp: jiff::Timestamp,
    /// On `escalate`: the approval to retry with once a human approved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<&'a str>,
}

impl<'a> DecisionResponse<'a> {
    pub fn new(
        decision: &'a Decision,
        token: Option<&'a IssuedToken>,
        ledger_entry_hash: Option<&'a str>,
        approval_id: Option<&'a str>,
    ) -> Self {
        Self {
            request_id: &decision.request_id,
            decision_id: &decision.decision_id,
            decision: decision.decision,
            reasoning: &decision.reasoning,
            rule_id: &decision.rule_id,
            policy_version_hash: &decision.policy_version_hash,
            capability_token: permitted_token(decision, token).map(|t| t.token.as_str()),
            ledger_entry_hash,
            compliance_mappings: &decision.compliance_mappings,
            timestamp: decision.timestamp,
            approval_id: approval_id.filter(|_| decision.decision == Verdict::Escalate),
        }
    }
}

impl DecisionResponse<'_> {
    /// The JSON body, written by hand ([`lexecon_ledger::json`]; every decision answer goes through here):
    /// the same bytes as the derived `Serialize` (tested).
    pub fn to_json(&self) -> Vec<u8> {
        let optional = |out: &mut Vec<u8>, key: &str, value: Option<&str>| match value {
            Some(v) => json::push_member(out, key, v),
            None => {
                json::push_key(out, key);
                out.extend_from_slice(b"null");
            }
        };
        let mut out = Vec::with_capacity(RESPONSE_CAPACITY);
        out.push(b'{');
        json::push_member(&mut out, "request_id", self.request_id);
        json::push_member(&mut out, "decision_id", self.decision_id);
        json::push_member(&mut out, "decision", self.decision.as_str());
        json::push_member(&mut out, "reasoning", self.reasoning);
        json::push_member(&mut out, "rule_id", self.rule_id);
        json::push_member(&mut out, "policy_version_hash", self.policy_version_hash);
        optional(&mut out, "capability_token", self.capability_token);
        optional(&mut out, "ledger_entry_hash", self.ledger_entry_hash);
        json::push_key(&mut out, "compliance_mappings");
        push_compliance(&mut out, self.compliance_mappings);
        json::push_timestamp(&mut out, "timestamp", &self.timestamp);
        if let Some(id) = self.approval_id {
            json::push_member(&mut out, "approval_id", id);
        }
        out.push(b'}');
        out
    }
}

/// The starting capacity of a decision answer: about 1.5 KB with a token.
const RESPONSE_CAPACITY: usize = 2048;

fn permitted_token<'a>(
    decision: &Decision,
    token: Option<&'a IssuedToken>,
) -> Option<&'a IssuedToken> {
    token.filter(|_| decision.decision == Verdict::Permit)
}

/// The Lexecon 1.x `/decide` response: the 1.x fields (`allowed`, `decision`, `reason`,
/// `reasoning`, `policy_version_hash`, `capability_token`, `ledger_entry_hash`, `timestamp`,
/// `request_id`) plus `decision_id`. `decision` is `permit`, `deny` or `escalate`; `allowed` is true
/// only for `permit`. 1.x's unsigned `signature` is not sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegacyDecideResponse<'a> {
    pub request_id: &'a str,
    pub decision_id: &'a str,
    pub allowed: bool,
    pub decision: Verdict,
    pub reason: &'a str,
    pub reasoning: &'a str,
    pub policy_version_hash: &'a str,
    pub capability_token: Option<LegacyCapabilityToken<'a>>,
    pub ledger_entry_hash: Option<&'a str>,
    pub timestamp: jiff::Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<&'a str>,
}

/// 1.x's capability token object, with the real signed token added as `token`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegacyCapabilityToken<'a> {
    pub token_id: &'a str,
    pub scope: LegacyScope<'a>,
    pub expiry: jiff::Timestamp,
    pub policy_version_hash: &'a str,
    pub granted_at: jiff::Timestamp,
    /// The compact EdDSA JWT.
    pub token: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegacyScope<'a> {
    pub action: &'a str,
    pub tool: &'a str,
}

impl<'a> LegacyDecideResponse<'a> {
    pub fn new(
        request: &'a LegacyDecideRequest,
        decision: &'a Decision,
        token: Option<&'a IssuedToken>,
        ledger_entry_hash: Option<&'a str>,
        approval_id: Option<&'a str>,
    ) -> Self {
        let capability_token = permitted_token(decision, token).map(|t| LegacyCapabilityToken {
            token_id: &t.token_id,
            scope: LegacyScope {
                action: &request.proposed_action,
                tool: &request.tool,
            },
            expiry: t.expires_at,
            policy_version_hash: &decision.policy_version_hash,
            granted_at: t.issued_at,
            token: &t.token,
        });
        Self {
            request_id: &decision.request_id,
            decision_id: &decision.decision_id,
            allowed: decision.decision == Verdict::Permit,
            decision: decision.decision,
            reason: &decision.reasoning,
            reasoning: &decision.reasoning,
            policy_version_hash: &decision.policy_version_hash,
            capability_token,
            ledger_entry_hash,
            timestamp: decision.timestamp,
            approval_id: approval_id.filter(|_| decision.decision == Verdict::Escalate),
        }
    }
}

/// One entry of `GET /api/v1/domains`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainSummary<'a> {
    pub domain: &'a str,
    pub display_name: &'a str,
    pub description: &'a str,
    pub compliance_frameworks: &'a [String],
    /// Actor type ids (`act_trading_algo`).
    pub actor_types: Vec<&'a str>,
    /// Action type ids (`axn_place_order`).
    pub action_types: Vec<&'a str>,
}

/// `GET /api/v1/domains`: `{domains: [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainsResponse<'a> {
    pub domains: Vec<DomainSummary<'a>>,
}

impl<'a> DomainsResponse<'a> {
    pub fn new(configs: impl IntoIterator<Item = &'a DomainConfig>) -> Self {
        Self {
            domains: configs
                .into_iter()
                .map(|c| DomainSummary {
                    domain: c.domain.as_str(),
                    display_name: &c.display_name,
                    description: &c.description,
                    compliance_frameworks: &c.compliance_frameworks,
                    actor_types: c.actor_types.iter().map(|t| t.type_id.as_str()).collect(),
                    action_types: c.action_types.iter().map(|t| t.type_id.as_str()).collect(),
                })
                .collect(),
        }
    }
}

/// `GET /api/v1/{domain}/policy-templates`: `{domain, templates: [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyTemplatesResponse<'a> {
    pub domain: &'a str,
    pub templates: &'a [PolicyTemplate],
}

impl<'a> PolicyTemplatesResponse<'a> {
    pub fn new(config: &'a DomainConfig) -> Self {
        Self {
            domain: config.domain.as_str(),
            templates: &config.policy_templates,
        }
    }
}

/// `GET /api/v1/approvals`: `{approvals: [...]}`. (`GET /api/v1/approvals/{id}` and approve /
/// deny answer a single [`Approval`].)
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalsResponse<'a> {
    pub approvals: &'a [Approval],
}

/// The `content-type` of every body here.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Serializes `value`; the response types here cannot fail to serialize, but if one ever did the
/// answer is a fixed internal-error body rather than a panic or an empty 200.
pub fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    // Most answers are a few hundred bytes to ~2 KB: start there instead of at serde_json's 128.
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

/// A JSON response with `content-type` and `content-length` set (pingora's `ServeHttp` does not set
/// the length itself). An unserializable value becomes a 500 with an error body.
pub fn json_response<T: Serialize>(status: http::StatusCode, value: &T) -> http::Response<Vec<u8>> {
    match to_json(value) {
        Ok(body) => raw_json_response(status, body),
        Err(e) => crate::api::error::ApiError::Internal {
            reason: format!("response serialization failed: {e}"),
        }
        .to_response(),
    }
}

/// Wraps an already serialized JSON body.
pub fn raw_json_response(status: http::StatusCode, body: Vec<u8>) -> http::Response<Vec<u8>> {
    let length = body.len();
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(length),
    );
    response
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lexecon_domains::ComplianceStatus;
    use lexecon_policy_cache::Explanation;
    use serde_json::json;

    pub(crate) fn decision(verdict: Verdict) -> Decision {
        Decision {
            request_id: "req-1".into(),
            decision_id: "dec-1".into(),
            domain: "finance".into(),
            actor: "act_trading_algo:momentum_v3".into(),
            action: "axn_place_order".into(),
            resource: Some("res_security:AAPL".into()),
            decision: verdict,
            reasoning: "Momentum algos may place orders up to 5M".into(),
            rule_id: "algos-may-trade".into(),
            policy_version_hash: "ab".repeat(32).into(),
            compliance_mappings: vec![ComplianceMapping {
                framework: "MIFID_II".into(),
                controls: vec!["RTS 6 Art. 15".into()],
                status: ComplianceStatus::Compliant,
            }]
            .into(),
            risk_level: 3,
            requires_human_approval: false,
            review_required: false,
            explanation: Explanation {
                matched_rules: vec!["algos-may-trade".into()].into(),
                findings: vec![],
                would_have: None,
                cached: false,
            },
            timestamp: "2026-11-25T10:00:00Z".parse().unwrap(),
        }
    }

    pub(crate) fn token() -> IssuedToken {
        IssuedToken {
            token: "eyJ.h.s".into(),
            token_id: "tok-1".into(),
            issued_at: "2026-11-25T10:00:00Z".parse().unwrap(),
            expires_at: "2026-11-25T10:01:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn hand_written_decision_answers_equal_the_derived_serialization() {
        let t = token();
        let mut escaped = decision(Verdict::Escalate);
        escaped.reasoning = "needs \"sign-off\"\n(risk 4)".into();
        escaped.compliance_mappings = Vec::new().into();
        for (d, token, hash, approval) in [
            (decision(Verdict::Permit), Some(&t), Some("lh"), None),
            (decision(Verdict::Deny), Some(&t), None, Some("ap-1")),
            (escaped, None, Some("lh"), Some("ap-\u{1}")),
        ] {
            let answer = DecisionResponse::new(&d, token, hash, approval);
            assert_eq!(
                String::from_utf8(answer.to_json()).unwrap(),
                serde_json::to_string(&answer).unwrap()
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_decision_answer_is_written_as_serde_derives_it(
            strings in proptest::collection::vec(proptest::prelude::any::<String>(), 6),
            token in proptest::option::of(proptest::prelude::any::<String>()),
            hash in proptest::option::of(proptest::prelude::any::<String>()),
            approval in proptest::option::of(proptest::prelude::any::<String>()),
            verdict in 0usize..3,
            mappings in 0usize..3,
        ) {
            let mut d = decision([Verdict::Permit, Verdict::Deny, Verdict::Escalate][verdict]);
            d.request_id = strings[0].clone();
            d.decision_id = strings[1].clone();
            d.reasoning = strings[2].clone().into();
            d.rule_id = strings[3].clone().into();
            d.policy_version_hash = strings[4].clone().into();
            let first = d.compliance_mappings[0].clone();
            d.compliance_mappings = (0..mappings)
                .map(|_| ComplianceMapping {
                    framework: strings[5].clone().into(),
                    controls: vec![strings[0].clone().into(), first.controls[0].clone()],
                    status: first.status,
                })
                .collect();
            let t = token.map(|token| IssuedToken { token, ..super::tests::token() });
            let answer = DecisionResponse::new(&d, t.as_ref(), hash.as_deref(), approval.as_deref());
            proptest::prop_assert_eq!(
                answer.to_json(),
                serde_json::to_vec(&answer).unwrap()
            );
        }
    }

    #[test]
    fn permit_response_carries_every_v1_field_and_the_token() {
        let d = decision(Verdict::Permit);
        let t = token();
        let body =
            serde_json::to_value(DecisionResponse::new(&d, Some(&t), Some("lh"), None)).unwrap();
        assert_eq!(
            body,
            json!({
                "request_id": "req-1",
                "decision_id": "dec-1",
                "decision": "permit",
                "reasoning": "Momentum algos may place orders up to 5M",
                "rule_id": "algos-may-trade",
                "policy_version_hash": "ab".repeat(32),
                "capability_token": "eyJ.h.s",
                "ledger_entry_hash": "lh",
                "compliance_mappings": [
                    {"framework": "MIFID_II", "controls": ["RTS 6 Art. 15"], "status": "compliant"}
                ],
                "timestamp": "2026-11-25T10:00:00Z"
            })
        );
    }

    #[test]
    fn denied_or_escalated_response_never_carries_a_token() {
        let t = token();
        for verdict in [Verdict::Deny, Verdict::Escalate] {
            let d = decision(verdict);
            let r = DecisionResponse::new(&d, Some(&t), Some("lh"), Some("apr-1"));
            assert_eq!(r.capability_token, None);
            let legacy_req = legacy_request();
            let l = LegacyDecideResponse::new(&legacy_req, &d, Some(&t), None, Some("apr-1"));
            assert_eq!(l.capability_token, None);
            assert!(!l.allowed);
        }
    }

    #[test]
    fn approval_id_is_only_reported_for_escalations() {
        let d = decision(Verdict::Escalate);
        let body =
            serde_json::to_value(DecisionResponse::new(&d, None, None, Some("apr-1"))).unwrap();
        assert_eq!(body["approval_id"], "apr-1");
        assert_eq!(body["decision"], "escalate");
        let d = decision(Verdict::Deny);
        let body =
            serde_json::to_value(DecisionResponse::new(&d, None, None, Some("apr-1"))).unwrap();
        assert!(body.get("approval_id").is_none());
    }

    fn legacy_request() -> LegacyDecideRequest {
        crate::api::validate::parse_legacy_decide(
            br#"{"actor":"model","proposed_action":"search","tool":"web_search","user_intent":"x"}"#,
        )
        .unwrap()
    }

    #[test]
    fn legacy_response_has_the_1x_shape() {
        let d = decision(Verdict::Permit);
        let t = token();
        let req = legacy_request();
        let body = serde_json::to_value(LegacyDecideResponse::new(
            &req,
            &d,
            Some(&t),
            Some("lh"),
            None,
        ))
        .unwrap();
        assert_eq!(body["allowed"], true);
        assert_eq!(body["decision"], "permit");
        assert_eq!(body["reason"], body["reasoning"]);
        assert_eq!(body["decision_id"], "dec-1");
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(body["ledger_entry_hash"], "lh");
        assert_eq!(
            body["capability_token"],
            json!({
                "token_id": "tok-1",
                "scope": {"action": "search", "tool": "web_search"},
                "expiry": "2026-11-25T10:01:00Z",
                "policy_version_hash": "ab".repeat(32),
                "granted_at": "2026-11-25T10:00:00Z",
                "token": "eyJ.h.s"
            })
        );
    }

    #[test]
    fn json_response_sets_content_type_and_length() {
        let r = json_response(http::StatusCode::OK, &json!({"a": 1}));
        assert_eq!(r.status(), http::StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["content-length"], "7");
        assert_eq!(r.body(), br#"{"a":1}"#);
    }
}
