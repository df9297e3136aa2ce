//! Human approvals end to end over real HTTP on loopback: an escalation through the proxy or the
//! decision API creates a pending approval; an approver (JWT with the `approver` role, not the
//! actor) approves or denies it through the API; the original request retried with
//! `x-lexecon-approval` (proxy) or `approval_id` (API) is permitted exactly once, and every other
//! retry is denied with the reason. Each step lands in the ledger.

use lexecon_tests as support;

use lexecon_tests::api_harness;

use api_harness::{assert_schema, person, ApiHarness, AGENT};
use serde_json::{json, Value};
use support::{post, Reply};

const MESSAGE: &[u8] = br#"{"to":"cfo@example.com","text":"quarterly numbers"}"#;

fn send_message(h: &ApiHarness, actor: &str, approval: Option<&str>, body: &[u8]) -> Reply {
    let mut headers = vec![("x-agent-id", actor), ("content-type", "application/json")];
    if let Some(id) = approval {
        headers.push(("x-lexecon-approval", id));
    }
    post(&h.proxy("/v1/messages"), &headers, body)
}

/// Escalates a message through the proxy and returns the approval id from the 403.
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a missing approval id must fail the test"
)]
fn escalate(h: &ApiHarness) -> String {
    let r = send_message(h, AGENT, None, MESSAGE);
    assert_eq!(r.status, 403, "{}", r.body);
    let body = r.json();
    assert_eq!(body["decision"], "escalate");
    assert_eq!(body["approval_required"], true);
    let id = body["approval_id"].as_str().unwrap().to_owned();
    assert!(body["reason"].as_str().unwrap().contains(&id));
    id
}

fn approve(h: &ApiHarness, id: &str, jwt: &str, comment: &str) -> Reply {
    h.post_bearer(
        jwt,
        &format!("/api/v1/approvals/{id}/approve"),
        &json!({ "comment": comment }),
    )
}

/// The reasons of the ledger's approval entries, in order (read from the data directory).
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: an unreadable ledger directory must fail the test"
)]
fn approval_entries(h: &ApiHarness) -> Vec<String> {
    h.flush_ledger();
    let dir = h.dir.path().join("data").join("ledger");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                if v["event_type"] == "approval" {
                    out.push(v["reason"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    }
    out
}

#[test]
fn escalation_through_the_proxy_is_approved_and_permitted_exactly_once() {
    let h = ApiHarness::start("");
    let id = escalate(&h);
    assert!(h.upstream.requests().is_empty());

    let alice = person("act_human_user:alice", &["approver"]);
    let r = get_bearer(&h, &alice, "/api/v1/approvals?status=pending");
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = r.json();
    assert_schema(&h.openapi(), "ApprovalsResponse", &listed);
    let pending = listed["approvals"].as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], id.as_str());
    assert_eq!(pending[0]["actor"], AGENT);
    assert_eq!(pending[0]["action"], "axn_send_message");
    assert_eq!(pending[0]["status"], "pending");

    let r = approve(&h, &id, &alice, "fine, numbers are public");
    assert_eq!(r.status, 200, "{}", r.body);
    let approved = r.json();
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["decided_by"], "act_human_user:alice");
    assert_schema(&h.openapi(), "Approval", &approved);

    // The same request, retried with the approval, reaches the upstream once.
    let r = send_message(&h, AGENT, Some(&id), MESSAGE);
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = h.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, MESSAGE);
    assert!(seen[0].header("x-lexecon-approval").is_none());
    assert!(seen[0].header(lexecon_token::CAPABILITY_HEADER).is_some());

    // A second retry is denied: an approval is good for one request.
    let r = send_message(&h, AGENT, Some(&id), MESSAGE);
    assert_eq!(r.status, 403, "{}", r.body);
    let body = r.json();
    assert_eq!(body["decision"], "deny");
    assert!(
        body["reason"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    assert_eq!(h.upstream.requests().len(), 1);

    let r = get_bearer(&h, &alice, &format!("/api/v1/approvals/{id}"));
    assert_eq!(r.json()["status"], "consumed");

    let entries = approval_entries(&h);
    let kinds: Vec<&str> = ["created", "approved", "consumed"]
        .into_iter()
        .filter(|k| entries.iter().any(|e| e.contains(&format!("{id} {k}"))))
        .collect();
    assert_eq!(kinds, ["created", "approved", "consumed"], "{entries:?}");
}

fn get_bearer(h: &ApiHarness, jwt: &str, path: &str) -> Reply {
    let auth = format!("Bearer {jwt}");
    support::get(&h.api(path), &[("authorization", &auth)])
}

#[test]
fn approval_is_bound_to_the_actor_and_the_exact_request() {
    let h = ApiHarness::start("");
    let id = escalate(&h);
    let alice = person("act_human_user:alice", &["approver"]);
    assert_eq!(approve(&h, &id, &alice, "ok").status, 200);

    let r = send_message(&h, "act_ai_agent:mallory", Some(&id), MESSAGE);
    assert_eq!(r.status, 403, "{}", r.body);
    let reason = r.json()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("different actor"), "{reason}");

    let other = br#"{"to":"all@example.com","text":"quarterly numbers"}"#;
    let r = send_message(&h, AGENT, Some(&id), other);
    assert_eq!(r.status, 403, "{}", r.body);
    let reason = r.json()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("different request"), "{reason}");

    let r = send_message(&h, AGENT, Some("apr_unknown"), MESSAGE);
    assert_eq!(r.status, 403);
    assert!(r.json()["reason"].as_str().unwrap().contains("not found"));

    // None of the refused retries used the approval up.
    assert!(h.upstream.requests().is_empty());
    assert_eq!(send_message(&h, AGENT, Some(&id), MESSAGE).status, 200);
}

#[test]
fn approvers_cannot_approve_their_own_requests_and_need_the_role() {
    let h = ApiHarness::start("");
    let id = escalate(&h);
    let itself = person(AGENT, &["approver"]);
    let r = approve(&h, &id, &itself, "self-service");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "self_approval");

    let bob = person("act_human_user:bob", &["auditor"]);
    let r = approve(&h, &id, &bob, "I think so");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "not_approver");

    // Trusted-header callers carry no roles unless `api.roles` grants them.
    let r = h.post_as(
        "act_human_user:carol",
        &format!("/api/v1/approvals/{id}/approve"),
        &json!({}),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // Still pending: the retry is refused because nobody approved it.
    let r = send_message(&h, AGENT, Some(&id), MESSAGE);
    assert_eq!(r.status, 403);
    assert!(r.json()["reason"]
        .as_str()
        .unwrap()
        .contains("still pending"));
}

#[test]
fn denied_approval_refuses_the_retry_with_the_approvers_comment() {
    let h = ApiHarness::start("");
    let id = escalate(&h);
    let alice = person("act_human_user:alice", &["approver"]);
    let r = h.post_bearer(
        &alice,
        &format!("/api/v1/approvals/{id}/deny"),
        &json!({"comment": "not to the CFO"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "denied");
    let r = approve(&h, &id, &alice, "changed my mind");
    assert_eq!(r.status, 409, "{}", r.body);
    let r = send_message(&h, AGENT, Some(&id), MESSAGE);
    assert_eq!(r.status, 403);
    let reason = r.json()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("denied by act_human_user:alice: not to the CFO"),
        "{reason}"
    );
    let r = get_bearer(&h, &alice, "/api/v1/approvals/apr_nope");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "approval_not_found");
}

#[test]
fn expired_approval_refuses_the_retry() {
    let h = ApiHarness::start("api: {approvals: {ttl: 1s}}");
    let id = escalate(&h);
    std::thread::sleep(std::time::Duration::from_millis(1_300));
    let alice = person("act_human_user:alice", &["approver"]);
    let r = approve(&h, &id, &alice, "too late");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
    let r = send_message(&h, AGENT, Some(&id), MESSAGE);
    assert_eq!(r.status, 403);
    assert!(r.json()["reason"].as_str().unwrap().contains("expired"));
    assert!(h.upstream.requests().is_empty());

    // The periodic sweep makes the expiry durable and writes it to the ledger.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let expired = rt.block_on(async {
        let n = lexecon::api::expiry::expire_approvals(&h.engine).await;
        h.engine.ledger().unwrap().flush().await.unwrap();
        n
    });
    assert_eq!(expired, 1);
    assert!(approval_entries(&h)
        .iter()
        .any(|e| e.contains(&format!("{id} expired"))));
    let r = get_bearer(&h, &alice, &format!("/api/v1/approvals/{id}"));
    assert_eq!(r.json()["status"], "expired");
}

#[test]
fn escalation_through_the_api_is_redeemed_with_approval_id_once() {
    let h = ApiHarness::start("");
    let request =
        json!({"actor": AGENT, "action": "axn_send_message", "context": {"to": "cfo@example.com"}});
    let r = h.post_as(AGENT, "/api/v1/ai/decisions/request", &request);
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["decision"], "escalate");
    assert_eq!(body["capability_token"], Value::Null);
    assert_schema(&h.openapi(), "DecisionResponse", &body);
    let id = body["approval_id"].as_str().unwrap().to_owned();

    let alice = person("act_human_user:alice", &["approver"]);
    assert_eq!(approve(&h, &id, &alice, "ok").status, 200);

    let mut retry = request.clone();
    retry["approval_id"] = json!(id);
    // A different context is a different request.
    let mut changed = retry.clone();
    changed["context"]["to"] = json!("everyone@example.com");
    let r = h.post_as(AGENT, "/api/v1/ai/decisions/request", &changed);
    assert_eq!(r.json()["decision"], "deny", "{}", r.body);

    let r = h.post_as(AGENT, "/api/v1/ai/decisions/request", &retry);
    let body = r.json();
    assert_eq!(body["decision"], "permit", "{body}");
    assert_eq!(body["rule_id"], format!("approval:{id}"));
    assert!(body["capability_token"].as_str().unwrap().contains('.'));
    assert!(body["reasoning"]
        .as_str()
        .unwrap()
        .contains("act_human_user:alice"));

    let r = h.post_as(AGENT, "/api/v1/ai/decisions/request", &retry);
    let body = r.json();
    assert_eq!(body["decision"], "deny");
    assert!(body["reasoning"].as_str().unwrap().contains("already used"));
    assert_eq!(body["capability_token"], Value::Null);
}

#[test]
fn pending_approvals_survive_a_restart() {
    let h = ApiHarness::start("");
    let id = escalate(&h);
    let store = h.dir.path().join("data").join("approvals");
    let reopened = lexecon_approvals::ApprovalStore::open(
        &store,
        lexecon_approvals::ApprovalSettings::default(),
    )
    .unwrap();
    let approval = reopened.get(&id, jiff::Timestamp::now()).unwrap();
    assert_eq!(approval.status, lexecon_approvals::ApprovalStatus::Pending);
    assert_eq!(approval.actor, AGENT);
}

#[test]
fn mcp_escalation_names_the_approval_and_a_retry_with_a_new_jsonrpc_id_is_permitted_once() {
    let h = ApiHarness::start("");
    let call = |id: u64, approval: Option<&str>| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "send_email", "arguments": {"to": "cfo@example.com"}}});
        let mut headers = vec![("x-agent-id", AGENT), ("content-type", "application/json")];
        if let Some(a) = approval {
            headers.push(("x-lexecon-approval", a));
        }
        post(&h.proxy("/mcp"), &headers, body.to_string().as_bytes())
    };
    let r = call(1, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let text = r.body.clone();
    let start = text.find("apr_").expect("the denial names the approval");
    let id: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert!(text.contains("x-lexecon-approval"), "{text}");
    assert!(h.upstream.requests().is_empty());

    let alice = person("act_human_user:alice", &["approver"]);
    assert_eq!(approve(&h, &id, &alice, "ok").status, 200);
    // MCP clients number their calls: the retry's JSON-RPC id differs, the call does not.
    let r = call(2, Some(&id));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.upstream.requests().len(), 1);
    let r = call(3, Some(&id));
    assert!(r.body.contains("already used"), "{}", r.body);
    assert_eq!(h.upstream.requests().len(), 1);
}

/// The attack of issue 15: the agent escalates, then names a human approver in the trusted
/// header and approves its own request. A header names an actor, never its roles — even one
/// `api.roles` makes an approver — so it gets 403; the same person with a bearer token may approve.
#[test]
fn an_agent_naming_an_approver_in_the_trusted_header_cannot_approve() {
    let h = ApiHarness::start("api: {roles: {\"act_human_user:carol\": [approver]}}");
    let id = escalate(&h);
    let r = h.post_as(
        "act_human_user:carol",
        &format!("/api/v1/approvals/{id}/approve"),
        &json!({"comment": "approved by the agent itself"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "not_approver");
    assert!(
        r.body.contains("roles come only with a bearer token"),
        "{}",
        r.body
    );
    assert_eq!(send_message(&h, AGENT, Some(&id), MESSAGE).status, 403);
    assert_eq!(
        h.upstream.requests().len(),
        0,
        "the escalated call was not forwarded"
    );

    // api.roles still grants the role to the same actor proven by a credential (no roles claim).
    let carol = person("act_human_user:carol", &[]);
    let r = h.post_bearer(
        &carol,
        &format!("/api/v1/approvals/{id}/approve"),
        &json!({"comment": "approved by carol"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["decided_by"], "act_human_user:carol");
    assert_eq!(send_message(&h, AGENT, Some(&id), MESSAGE).status, 200);
}

/// An agent cannot flood the approval queue (issue 15): past its own cap its escalations are
/// refused with 429, and another actor can still escalate.
#[test]
fn one_agent_flooding_escalations_is_capped_and_others_still_escalate() {
    let h = ApiHarness::start("api: {approvals: {max_pending_per_actor: 2}}");
    escalate(&h);
    escalate(&h);
    let r = send_message(&h, AGENT, None, MESSAGE);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("max_pending_per_actor"), "{}", r.body);
    let other = send_message(&h, "act_ai_agent:other", None, MESSAGE);
    assert_eq!(other.status, 403, "{}", other.body);
    assert!(
        other.body.contains("apr_"),
        "another actor's escalation created its approval: {}",
        other.body
    );
    assert_eq!(h.upstream.requests().len(), 0);
}
