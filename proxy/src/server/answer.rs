//! The bodies of answers the proxy gives itself instead of forwarding: policy denials and
//! escalations, and refusals (401, 400, 413, 429, 403 unmatched, 502/503/504).
//!
//! Every answer is built here, in one place, and only when it is sent. Plain routes get a JSON
//! object `{decision, reason, rule_id, decision_id, request_id, domain}`; MCP routes get JSON-RPC:
//! a denied `tools/call` is a tool result with `isError: true` whose text the model can act on,
//! other denied calls a JSON-RPC error object for their id.

use bytes::Bytes;
use lexecon_domains::Verdict;
use lexecon_policy_cache::Decision;
use serde_json::{json, Value};

use lexecon_config::classifier::DenialStyle;

use lexecon_classify::mcp::{self, DenialInfo};
use lexecon_classify::Classified;

use crate::headers::APPROVAL_HEADER;

/// An answer ready to write: status, body, and whether it is JSON-RPC.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// A refusal that is not a policy decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated,
    BadRequest,
    TooLarge,
    /// The header block is above `limits.header_bytes` or `limits.header_count`.
    HeadersTooLarge,
    /// The body did not arrive within `limits.body_timeout`.
    BodyTimeout,
    /// The body does not fit the budget of held bodies (`limits.held_bodies`) now.
    Overloaded,
    RateLimited,
    Unmatched,
    /// The actor's SMART scopes do not grant the FHIR interaction.
    InsufficientScope,
    /// An MCP tool whose definition is not the approved one (`pin_tools`).
    ToolNotApproved,
    DecideFailed(u16),
    UpstreamUnavailable,
    UpstreamTimeout,
    CircuitOpen,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Unauthenticated => 401,
            Refusal::BadRequest => 400,
            Refusal::TooLarge => 413,
            Refusal::HeadersTooLarge => 431,
            Refusal::BodyTimeout => 408,
            Refusal::Overloaded => 503,
            Refusal::RateLimited => 429,
            Refusal::Unmatched => 403,
            Refusal::InsufficientScope => 403,
            Refusal::ToolNotApproved => 403,
            Refusal::DecideFailed(s) => s,
            Refusal::UpstreamUnavailable => 502,
            Refusal::UpstreamTimeout => 504,
            Refusal::CircuitOpen => 503,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::BadRequest => "bad_request",
            Refusal::TooLarge => "payload_too_large",
            Refusal::HeadersTooLarge => "request_header_fields_too_large",
            Refusal::BodyTimeout => "request_timeout",
            Refusal::Overloaded => "held_bodies_exhausted",
            Refusal::RateLimited => "rate_limited",
            Refusal::Unmatched => "no_route",
            Refusal::InsufficientScope => "insufficient_scope",
            Refusal::ToolNotApproved => "tool_not_approved",
            Refusal::DecideFailed(_) => "decision_failed",
            Refusal::UpstreamUnavailable => "upstream_unavailable",
            Refusal::UpstreamTimeout => "upstream_timeout",
            Refusal::CircuitOpen => "upstream_circuit_open",
        }
    }
}

/// A refusal as JSON: `{decision: "deny", error, reason, request_id, domain}`.
pub fn refusal(kind: Refusal, reason: &str, request_id: &str, domain: Option<&str>) -> Answer {
    let body = json!({
        "decision": "deny",
        "error": kind.code(),
        "reason": reason,
        "request_id": request_id,
        "domain": domain,
    });
    Answer {
        status: kind.status(),
        body: Bytes::from(body.to_string()),
    }
}

/// The answer to an MCP request whose call `blocking` was refused before any decision (a tool pin):
/// in the route's denial style, with the request id in place of a decision id and
/// `rule_id` `lexecon:<by>`; the JSON 403 when no JSON-RPC answer fits (notifications only).
pub fn mcp_refusal(
    style: DenialStyle,
    classified: &Classified,
    blocking: usize,
    by: &str,
    reason: &str,
    request_id: &str,
    domain: &str,
) -> Answer {
    let rule_id = format!("lexecon:{by}");
    let info = DenialInfo {
        decision: "deny",
        reason,
        rule_id: Some(&rule_id),
        decision_id: request_id,
    };
    match mcp::denial_answer_at(style, classified, blocking, &info) {
        Some(body) => Answer {
            status: 200,
            body: Bytes::from(body),
        },
        None => refusal(Refusal::ToolNotApproved, reason, request_id, Some(domain)),
    }
}

/// The answer to a request one of whose calls was not permitted. `blocking` is the index in
/// `classified.items` of the call that was denied or escalated. MCP routes (`mcp_denial` is their
/// denial style) answer in JSON-RPC with HTTP 200 so the client hands the reason to the model;
/// everything else gets the JSON 403. An escalation that created approval `approval_id` names it:
/// in the reason (with the header to retry with) and, in the JSON 403, as `approval_id`.
pub fn blocked(
    decision: &Decision,
    classified: &Classified,
    blocking: usize,
    mcp_denial: Option<DenialStyle>,
    approval_id: Option<&str>,
) -> Answer {
    let reason = match approval_id {
        Some(id) => std::borrow::Cow::Owned(format!(
            "{} (approval {id}: once a human approves it, retry the same request with header {APPROVAL_HEADER}: {id})",
            decision.reasoning
        )),
        None => std::borrow::Cow::Borrowed(&*decision.reasoning),
    };
    if let Some(style) = mcp_denial {
        let info = DenialInfo {
            decision: decision.decision.as_str(),
            reason: &reason,
            rule_id: Some(&decision.rule_id),
            decision_id: &decision.decision_id,
        };
        if let Some(body) = mcp::denial_answer_at(style, classified, blocking, &info) {
            return Answer {
                status: 200,
                body: Bytes::from(body),
            };
        }
    }
    let mut body = json!({
        "decision": decision.decision.as_str(),
        "reason": reason,
        "rule_id": decision.rule_id,
        "decision_id": decision.decision_id,
        "request_id": decision.request_id,
        "domain": decision.domain,
    });
    if decision.decision == Verdict::Escalate || decision.requires_human_approval {
        body["approval_required"] = Value::Bool(true);
    }
    if let Some(id) = approval_id {
        body["approval_id"] = Value::from(id);
    }
    Answer {
        status: 403,
        body: Bytes::from(body.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lexecon_classify::ClassifiedItem;
    use lexecon_policy_cache::Explanation;

    fn decision(verdict: Verdict) -> Decision {
        Decision {
            request_id: "req-1".into(),
            decision_id: "dec-1".into(),
            domain: "ai".into(),
            actor: "act_ai_agent:a".into(),
            action: "axn_delete_data".into(),
            resource: None,
            decision: verdict,
            reasoning: "agents may not delete files".into(),
            rule_id: "no-deletes".into(),
            policy_version_hash: "h".into(),
            compliance_mappings: vec![].into(),
            risk_level: 4,
            requires_human_approval: verdict == Verdict::Escalate,
            review_required: false,
            explanation: Explanation {
                matched_rules: vec![].into(),
                findings: vec![],
                would_have: None,
                cached: false,
            },
            timestamp: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn item(method: Option<&str>, id: Option<Value>) -> ClassifiedItem {
        ClassifiedItem {
            action: "axn_delete_data".into(),
            resource: None,
            context: Default::default(),
            jsonrpc_id: id,
            rpc_method: method.map(String::from),
            tool: None,
        }
    }

    fn parse(a: &Answer) -> Value {
        serde_json::from_slice(&a.body).unwrap()
    }

    #[test]
    fn plain_denial_is_403_with_decision_fields() {
        let c = Classified {
            items: vec![item(None, None)],
            batch: false,
        };
        let a = blocked(&decision(Verdict::Deny), &c, 0, None, None);
        assert_eq!(a.status, 403);
        let v = parse(&a);
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["rule_id"], "no-deletes");
        assert_eq!(v["decision_id"], "dec-1");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["domain"], "ai");
        assert!(v.get("approval_required").is_none());
    }

    #[test]
    fn escalation_is_403_with_approval_required() {
        let c = Classified {
            items: vec![item(None, None)],
            batch: false,
        };
        let v = parse(&blocked(&decision(Verdict::Escalate), &c, 0, None, None));
        assert_eq!(v["decision"], "escalate");
        assert_eq!(v["approval_required"], true);
    }

    #[test]
    fn an_escalation_names_its_approval_in_the_reason_and_the_body() {
        let c = Classified {
            items: vec![item(None, None)],
            batch: false,
        };
        let v = parse(&blocked(
            &decision(Verdict::Escalate),
            &c,
            0,
            None,
            Some("apr-1"),
        ));
        assert_eq!(v["approval_id"], "apr-1");
        assert_eq!(v["approval_required"], true);
        let reason = v["reason"].as_str().unwrap();
        assert!(
            reason.contains("(approval apr-1: once a human approves it, retry the same request with header x-lexecon-approval: apr-1)"),
            "{reason}"
        );
        let mcp = Classified {
            items: vec![item(Some("tools/call"), Some(json!(3)))],
            batch: false,
        };
        let v = parse(&blocked(
            &decision(Verdict::Escalate),
            &mcp,
            0,
            Some(DenialStyle::ToolError),
            Some("apr-1"),
        ));
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("x-lexecon-approval: apr-1"), "{text}");
        assert!(v.get("approval_id").is_none());
    }

    #[test]
    fn denied_mcp_tool_call_is_a_tool_error_the_model_can_read() {
        let c = Classified {
            items: vec![item(Some("tools/call"), Some(json!(7)))],
            batch: false,
        };
        let a = blocked(
            &decision(Verdict::Deny),
            &c,
            0,
            Some(DenialStyle::ToolError),
            None,
        );
        assert_eq!(a.status, 200);
        let v = parse(&a);
        assert_eq!(v["id"], 7);
        assert_eq!(v["result"]["isError"], true);
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("agents may not delete files"));
        assert!(text.contains("dec-1"));
        assert!(text.contains("Do not retry; tell the user"));
    }

    #[test]
    fn denied_mcp_batch_answers_every_call() {
        let c = Classified {
            items: vec![
                item(Some("tools/call"), Some(json!(1))),
                item(Some("tools/list"), Some(json!(2))),
                item(Some("notifications/initialized"), None),
            ],
            batch: true,
        };
        let v = parse(&blocked(
            &decision(Verdict::Deny),
            &c,
            1,
            Some(DenialStyle::ToolError),
            None,
        ));
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 2);
        assert_eq!(arr[0]["id"], 1);
        assert_eq!(arr[0]["result"]["isError"], true);
        assert!(arr[0]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("another call"));
        assert_eq!(arr[1]["error"]["code"], mcp::POLICY_DENIED_CODE);
        assert_eq!(arr[1]["error"]["data"]["rule_id"], "no-deletes");
    }

    #[test]
    fn refusal_carries_status_code_and_reason() {
        let a = refusal(Refusal::RateLimited, "slow down", "req-9", Some("ai"));
        assert_eq!(a.status, 429);
        let v = parse(&a);
        assert_eq!(v["error"], "rate_limited");
        assert_eq!(v["reason"], "slow down");
        assert_eq!(v["request_id"], "req-9");
    }
}
