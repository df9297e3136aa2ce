//! The approvals state machine's tests: creation, approval, redemption exactly once, expiry,
//! persistence across restarts and rollback of a change that could not be written.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use lexecon_domains::Verdict;
use lexecon_policy_cache::{Decision, DecisionInput};

use super::*;

/// An escalation of a trading algorithm's order (the fields the store keeps).
fn decision(verdict: Verdict) -> Decision {
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
        compliance_mappings: vec![].into(),
        risk_level: 3,
        requires_human_approval: false,
        review_required: false,
        explanation: lexecon_policy_cache::Explanation {
            matched_rules: vec!["algos-may-trade".into()].into(),
            findings: vec![],
            would_have: None,
            cached: false,
        },
        timestamp: T0.parse().unwrap(),
    }
}

const T0: &str = "2026-11-25T10:00:00Z";

fn at(offset_secs: i64) -> Timestamp {
    let t0: Timestamp = T0.parse().unwrap();
    t0.checked_add(SignedDuration::from_secs(offset_secs))
        .unwrap()
}

fn escalated() -> Decision {
    let mut d = decision(Verdict::Escalate);
    d.actor = "act_trader:bob".into();
    d.reasoning = "order value 20,000,000 exceeds the 10,000,000 limit".into();
    d
}

fn digest() -> RequestDigest {
    RequestDigest::of_http("POST", "/orders", br#"{"qty":100}"#)
}

fn roles() -> Vec<String> {
    vec!["approver".into()]
}

fn open(dir: &Path) -> ApprovalStore {
    ApprovalStore::open(dir, ApprovalSettings::default()).unwrap()
}

/// A store with one approval created at T0 and approved by alice at T0+60s.
fn approved(dir: &Path) -> (ApprovalStore, Approval) {
    let store = open(dir);
    let (a, _) = store.create(&escalated(), digest(), at(0)).unwrap();
    let r = roles();
    store
        .approve(
            &a.id,
            Approver {
                id: "alice",
                roles: &r,
            },
            Some("ok".into()),
            at(60),
        )
        .unwrap();
    (store, a)
}

fn consume(
    store: &ApprovalStore,
    a: &Approval,
    now: Timestamp,
) -> Result<ApprovalEvent, ApprovalError> {
    store.consume(
        &a.id,
        &a.actor,
        &a.action,
        a.resource.as_deref(),
        &digest(),
        now,
    )
}

#[test]
fn escalation_creates_a_pending_approval_with_the_request_binding() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, event) = store.create(&escalated(), digest(), at(0)).unwrap();
    assert!(a.id.starts_with("apr_"));
    assert!(is_valid_approval_id(&a.id));
    assert_eq!(a.status, ApprovalStatus::Pending);
    assert_eq!(a.actor, "act_trader:bob");
    assert_eq!(a.action, "axn_place_order");
    assert_eq!(a.resource.as_deref(), Some("res_security:AAPL"));
    assert_eq!(
        a.reason,
        "order value 20,000,000 exceeds the 10,000,000 limit"
    );
    assert_eq!(a.request_digest, digest());
    assert_eq!(a.created, at(0));
    assert_eq!(a.expires, at(15 * 60));
    assert_eq!(event.kind, ApprovalEventKind::Created);
    assert_eq!(event.approval_id, a.id);
    assert_eq!(store.get(&a.id, at(1)).unwrap(), a);
}

#[test]
fn only_escalations_create_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let err = store
        .create(&decision(Verdict::Permit), digest(), at(0))
        .unwrap_err();
    assert_eq!(
        err,
        ApprovalError::NotEscalated {
            decision_id: "dec-1".into(),
            verdict: "permit"
        }
    );
    assert!(store.list(None, at(0)).is_empty());
}

#[test]
fn approved_request_is_permitted_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, a) = approved(dir.path());
    let event = consume(&store, &a, at(120)).unwrap();
    assert_eq!(event.kind, ApprovalEventKind::Consumed);
    assert_eq!(event.by.as_deref(), Some("act_trader:bob"));
    let err = consume(&store, &a, at(121)).unwrap_err();
    assert_eq!(
        err,
        ApprovalError::AlreadyConsumed {
            id: a.id.clone(),
            at: at(120)
        }
    );
    assert!(err.to_string().contains("exactly one retry"));
    assert_eq!(
        store.get(&a.id, at(122)).unwrap().status,
        ApprovalStatus::Consumed
    );
}

#[test]
fn consume_for_a_different_request_is_refused_with_the_differing_field() {
    let dir = tempfile::tempdir().unwrap();
    let (store, a) = approved(dir.path());
    let other = RequestDigest::of_http("POST", "/orders", br#"{"qty":1000}"#);
    let res = a.resource.as_deref();
    let cases: [(&str, &str, Option<&str>, &RequestDigest, &str); 5] = [
        ("act_trader:eve", &a.action, res, &a.request_digest, "actor"),
        (
            &a.actor,
            "axn_cancel_order",
            res,
            &a.request_digest,
            "action",
        ),
        (
            &a.actor,
            &a.action,
            Some("res_security:MSFT"),
            &a.request_digest,
            "resource",
        ),
        (&a.actor, &a.action, None, &a.request_digest, "resource"),
        (
            &a.actor,
            &a.action,
            res,
            &other,
            "request (its method, path or body differ)",
        ),
    ];
    for (actor, action, resource, d, field) in cases {
        let err = store
            .consume(&a.id, actor, action, resource, d, at(120))
            .unwrap_err();
        assert_eq!(
            err,
            ApprovalError::Mismatch {
                id: a.id.clone(),
                field
            }
        );
    }
    // None of the refused attempts used the approval up.
    assert!(consume(&store, &a, at(120)).is_ok());
}

#[test]
fn consume_before_approval_after_denial_or_after_expiry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r = roles();
    let (pending, _) = store.create(&escalated(), digest(), at(0)).unwrap();
    assert_eq!(
        consume(&store, &pending, at(1)).unwrap_err(),
        ApprovalError::StillPending {
            id: pending.id.clone()
        }
    );

    let (denied, _) = store.create(&escalated(), digest(), at(0)).unwrap();
    store
        .deny(
            &denied.id,
            Approver {
                id: "alice",
                roles: &r,
            },
            Some("too large".into()),
            at(5),
        )
        .unwrap();
    let err = consume(&store, &denied, at(6)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("approval {} was denied by alice: too large", denied.id)
    );

    let (late, _) = store.create(&escalated(), digest(), at(0)).unwrap();
    store
        .approve(
            &late.id,
            Approver {
                id: "alice",
                roles: &r,
            },
            None,
            at(10),
        )
        .unwrap();
    // Exactly at expiry is too late.
    assert_eq!(
        consume(&store, &late, at(15 * 60)).unwrap_err(),
        ApprovalError::Expired {
            id: late.id.clone(),
            expired_at: at(15 * 60)
        }
    );
    assert!(consume(&store, &late, at(15 * 60 - 1)).is_ok());
    assert!(matches!(
        store.consume("apr_missing", "a", "b", None, &digest(), at(1)),
        Err(ApprovalError::NotFound { .. })
    ));
}

#[test]
fn approving_requires_the_approver_role_and_someone_other_than_the_actor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, _) = store.create(&escalated(), digest(), at(0)).unwrap();
    let no_roles: Vec<String> = vec!["viewer".into()];
    assert_eq!(
        store
            .approve(
                &a.id,
                Approver {
                    id: "carol",
                    roles: &no_roles
                },
                None,
                at(1)
            )
            .unwrap_err(),
        ApprovalError::NotApprover {
            approver: "carol".into()
        }
    );
    let r = roles();
    for me in ["bob", "act_trader:bob"] {
        let err = store
            .approve(&a.id, Approver { id: me, roles: &r }, None, at(1))
            .unwrap_err();
        assert!(
            matches!(err, ApprovalError::SelfApproval { .. }),
            "{me}: {err:?}"
        );
        let err = store
            .deny(&a.id, Approver { id: me, roles: &r }, None, at(1))
            .unwrap_err();
        assert!(
            matches!(err, ApprovalError::SelfApproval { .. }),
            "{me}: {err:?}"
        );
    }
    assert_eq!(
        store.get(&a.id, at(2)).unwrap().status,
        ApprovalStatus::Pending
    );
}

#[test]
fn only_pending_approvals_can_be_approved_or_denied() {
    let dir = tempfile::tempdir().unwrap();
    let (store, a) = approved(dir.path());
    let r = roles();
    let err = store
        .deny(
            &a.id,
            Approver {
                id: "dave",
                roles: &r,
            },
            None,
            at(70),
        )
        .unwrap_err();
    assert_eq!(
        err,
        ApprovalError::NotPending {
            id: a.id.clone(),
            status: ApprovalStatus::Approved
        }
    );
    let (b, _) = store.create(&escalated(), digest(), at(0)).unwrap();
    let err = store
        .approve(
            &b.id,
            Approver {
                id: "dave",
                roles: &r,
            },
            None,
            at(15 * 60),
        )
        .unwrap_err();
    assert_eq!(
        err,
        ApprovalError::NotPending {
            id: b.id.clone(),
            status: ApprovalStatus::Expired
        }
    );
    assert!(matches!(
        store.approve(
            "apr_nope",
            Approver {
                id: "dave",
                roles: &r
            },
            None,
            at(1)
        ),
        Err(ApprovalError::NotFound { .. })
    ));
}

#[test]
fn approve_and_deny_events_name_the_approver_and_comment() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r = roles();
    let (a, _) = store.create(&escalated(), digest(), at(0)).unwrap();
    let (after, event) = store
        .approve(
            &a.id,
            Approver {
                id: "alice",
                roles: &r,
            },
            Some("desk ok".into()),
            at(30),
        )
        .unwrap();
    assert_eq!(after.status, ApprovalStatus::Approved);
    assert_eq!(after.decided_by.as_deref(), Some("alice"));
    assert_eq!(after.decided_at, Some(at(30)));
    assert_eq!(event.kind, ApprovalEventKind::Approved);
    assert_eq!(event.by.as_deref(), Some("alice"));
    assert_eq!(event.comment.as_deref(), Some("desk ok"));
    assert_eq!(event.at, at(30));
}

#[test]
fn list_filters_by_status_as_of_now() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r = roles();
    let (p, _) = store.create(&escalated(), digest(), at(0)).unwrap();
    let (d, _) = store.create(&escalated(), digest(), at(1)).unwrap();
    store
        .deny(
            &d.id,
            Approver {
                id: "alice",
                roles: &r,
            },
            None,
            at(2),
        )
        .unwrap();
    let ids = |s| -> Vec<String> {
        store
            .list(Some(s), at(3))
            .into_iter()
            .map(|a| a.id)
            .collect()
    };
    assert_eq!(ids(ApprovalStatus::Pending), [p.id.as_str()]);
    assert_eq!(ids(ApprovalStatus::Denied), [d.id.as_str()]);
    assert!(ids(ApprovalStatus::Approved).is_empty());
    assert_eq!(store.list(None, at(3)).len(), 2);
    let later = store.list(Some(ApprovalStatus::Expired), at(15 * 60));
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].id, p.id);
}

#[test]
fn approvals_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, a) = approved(dir.path());
    let (p, _) = store.create(&escalated(), digest(), at(100)).unwrap();
    drop(store);
    let reopened = open(dir.path());
    assert_eq!(
        reopened.get(&p.id, at(101)).unwrap().status,
        ApprovalStatus::Pending
    );
    assert_eq!(
        reopened.get(&a.id, at(101)).unwrap().status,
        ApprovalStatus::Approved
    );
    consume(&reopened, &a, at(102)).unwrap();
    drop(reopened);
    let again = open(dir.path());
    assert!(matches!(
        consume(&again, &a, at(103)),
        Err(ApprovalError::AlreadyConsumed { .. })
    ));
}

#[test]
fn failed_write_rolls_back_so_the_approval_is_not_lost_or_used() {
    let dir = tempfile::tempdir().unwrap();
    let (store, a) = approved(dir.path());
    // Another connection holds the database's write lock past the busy timeout: the commit
    // fails, and the approval stays approved and unused.
    let other = rusqlite::Connection::open(dir.path().join(STORE_FILE)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = consume(&store, &a, at(120)).unwrap_err();
    assert!(matches!(err, ApprovalError::Io { .. }), "{err:?}");
    assert_eq!(
        store.get(&a.id, at(120)).unwrap().status,
        ApprovalStatus::Approved
    );
    other.execute_batch("ROLLBACK").unwrap();
    assert!(consume(&store, &a, at(121)).is_ok());
    drop(store);
    let reopened = open(dir.path());
    assert!(reopened.get(&a.id, at(122)).unwrap().consumed_at.is_some());
}

#[test]
fn corrupt_stores_are_errors_naming_the_file() {
    // A legacy JSON store that does not parse, or of another version.
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(LEGACY_STORE_FILE),
        b"{\"version\":1,\"approvals\":[{]}",
    )
    .unwrap();
    let err = ApprovalStore::open(dir.path(), ApprovalSettings::default()).unwrap_err();
    assert!(matches!(err, ApprovalError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("approvals.json"), "{err}");
    fs::write(
        dir.path().join(LEGACY_STORE_FILE),
        b"{\"version\":9,\"approvals\":[]}",
    )
    .unwrap();
    let err = ApprovalStore::open(dir.path(), ApprovalSettings::default()).unwrap_err();
    assert!(err.to_string().contains("version 9"), "{err}");
    // A database file that is not one.
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(STORE_FILE),
        b"not a database, just bytes".repeat(200),
    )
    .unwrap();
    let err = ApprovalStore::open(dir.path(), ApprovalSettings::default()).unwrap_err();
    assert!(matches!(err, ApprovalError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("approvals.sqlite3"), "{err}");
}

#[test]
fn a_legacy_json_store_is_imported_once_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let approval = {
        let old = tempfile::tempdir().unwrap();
        let (store, a) = approved(old.path());
        store.get(&a.id, at(100)).unwrap()
    };
    let legacy = serde_json::json!({"version": 1, "approvals": [approval]});
    fs::write(dir.path().join(LEGACY_STORE_FILE), legacy.to_string()).unwrap();
    let store = open(dir.path());
    assert_eq!(
        store.get(&approval.id, at(110)).unwrap().status,
        ApprovalStatus::Approved
    );
    assert!(!dir.path().join(LEGACY_STORE_FILE).exists());
    assert!(dir.path().join("approvals.json.migrated").exists());
    // The import is in the database: a restart finds it without the JSON file.
    consume(&store, &approval, at(111)).unwrap();
    drop(store);
    let again = open(dir.path());
    assert!(matches!(
        consume(&again, &approval, at(112)),
        Err(ApprovalError::AlreadyConsumed { .. })
    ));
}

#[test]
fn expire_due_marks_overdue_approvals_and_reports_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, _) = store.create(&escalated(), digest(), at(0)).unwrap();
    let (b, _) = store.create(&escalated(), digest(), at(600)).unwrap();
    assert!(store.expire_due(at(899)).unwrap().is_empty());
    let events = store.expire_due(at(900)).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].approval_id, a.id);
    assert_eq!(events[0].kind, ApprovalEventKind::Expired);
    assert!(store.expire_due(at(901)).unwrap().is_empty());
    assert_eq!(
        store.get(&b.id, at(901)).unwrap().status,
        ApprovalStatus::Pending
    );
}

#[test]
fn finished_approvals_are_dropped_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = ApprovalSettings {
        retention: Duration::from_secs(60),
        ..ApprovalSettings::default()
    };
    let store = ApprovalStore::open(dir.path(), config).unwrap();
    let (old, _) = store.create(&escalated(), digest(), at(0)).unwrap();
    // Expired at 900, retained until 960; the next write after that drops it.
    store.create(&escalated(), digest(), at(959)).unwrap();
    assert!(store.get(&old.id, at(959)).is_ok());
    store.create(&escalated(), digest(), at(960)).unwrap();
    assert!(matches!(
        store.get(&old.id, at(960)),
        Err(ApprovalError::NotFound { .. })
    ));
}

#[test]
fn pending_approvals_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let config = ApprovalSettings {
        max_pending: 2,
        max_pending_per_actor: 2,
        ..ApprovalSettings::default()
    };
    let store = ApprovalStore::open(dir.path(), config).unwrap();
    let mut other = escalated();
    other.actor = "act_trader:carl".into();
    store.create(&escalated(), digest(), at(0)).unwrap();
    store.create(&other, digest(), at(0)).unwrap();
    assert_eq!(
        store.create(&escalated(), digest(), at(0)).unwrap_err(),
        ApprovalError::TooManyPending { limit: 2 }
    );
    assert_eq!(store.list(None, at(0)).len(), 2);
}

/// An escalation of a new actor each time: a flood of unique keys.
fn escalated_by(i: usize) -> Decision {
    let mut d = escalated();
    d.actor = format!("act_ai_agent:flood{i}");
    d.resource = Some(format!("res_file:/tmp/{i}"));
    d
}

#[test]
fn a_flood_of_escalations_keeps_the_store_within_max_stored_dropping_finished_ones_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = ApprovalSettings {
        max_pending: 50,
        max_pending_per_actor: 1,
        max_stored: 100,
        ..ApprovalSettings::default()
    };
    let store = ApprovalStore::open(dir.path(), config).unwrap();
    let r = roles();
    // 600 distinct actors, one escalation every 20 s: at most 45 pending at once (ttl 15m), the
    // rest expire and, with a retention of 24h, would pile up without max_stored.
    let mut latest = Vec::new();
    let mut kept = None;
    for i in 0..600 {
        let now = at(i64::try_from(i).unwrap() * 20);
        let (a, _) = store.create(&escalated_by(i), digest(), now).unwrap();
        latest.push(a.id);
        let held = store.list(None, now).len();
        assert!(held <= 100, "{held} approvals held after {i} escalations");
        if i == 300 {
            // The store has been full for a while: one approval a human approves now is live
            // until its ttl and must outlast the flood's pressure.
            assert_eq!(held, 100);
            let (k, _) = store.create(&escalated(), digest(), now).unwrap();
            let approver = Approver {
                id: "alice",
                roles: &r,
            };
            store.approve(&k.id, approver, None, now).unwrap();
            kept = Some(k.id);
        }
        if let Some(k) = kept.as_ref().filter(|_| i < 340) {
            assert_eq!(
                store.get(k, now).unwrap().status,
                ApprovalStatus::Approved,
                "an approved approval is never dropped to make room"
            );
        }
    }
    let end = at(599 * 20);
    assert_eq!(store.list(None, end).len(), 100);
    // Every approval still pending is kept: the newest 45.
    for id in &latest[latest.len() - 45..] {
        assert_eq!(store.get(id, end).unwrap().status, ApprovalStatus::Pending);
    }
    // The oldest finished ones went first.
    assert!(matches!(
        store.get(&latest[0], end),
        Err(ApprovalError::NotFound { .. })
    ));
    // The database holds what memory holds.
    drop(store);
    let reopened = ApprovalStore::open(dir.path(), config_with_max_stored(100)).unwrap();
    assert_eq!(reopened.list(None, end).len(), 100);
}

fn config_with_max_stored(max_stored: usize) -> ApprovalSettings {
    ApprovalSettings {
        max_pending: max_stored.min(50),
        max_pending_per_actor: 1,
        max_stored,
        ..ApprovalSettings::default()
    }
}

#[test]
fn a_store_full_of_live_approvals_refuses_a_new_escalation_and_drops_none() {
    let dir = tempfile::tempdir().unwrap();
    let config = ApprovalSettings {
        max_pending: 5,
        max_pending_per_actor: 1,
        max_stored: 5,
        ..ApprovalSettings::default()
    };
    let store = ApprovalStore::open(dir.path(), config).unwrap();
    let ids: Vec<String> = (0..5)
        .map(|i| {
            store
                .create(&escalated_by(i), digest(), at(0))
                .unwrap()
                .0
                .id
        })
        .collect();
    let r = roles();
    for id in &ids[..2] {
        let approver = Approver {
            id: "alice",
            roles: &r,
        };
        store.approve(id, approver, None, at(1)).unwrap();
    }
    // 3 pending (below max_pending) but 5 live approvals fill the store.
    let err = store
        .create(&escalated_by(99), digest(), at(2))
        .unwrap_err();
    assert_eq!(err, ApprovalError::StoreFull { limit: 5 });
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err.code(), "approval_store_full");
    for id in &ids {
        assert!(store.get(id, at(2)).is_ok(), "{id} kept");
    }
    // Once they expire they are finished, and room is made from them.
    store.create(&escalated_by(100), digest(), at(901)).unwrap();
    assert_eq!(store.list(None, at(901)).len(), 5);
}

#[test]
fn decision_digest_ignores_key_order_and_ids_but_not_content() {
    let base = |ctx: serde_json::Value, request_id: Option<&str>| DecisionInput {
        request_id: request_id.map(str::to_owned),
        domain: "finance".into(),
        actor: "act_trader:bob".into(),
        action: "axn_place_order".into(),
        resource: Some("res_security:AAPL".into()),
        context: ctx.as_object().unwrap().clone(),
        at: None,
        provenance: Default::default(),
    };
    let p = "/api/v1/finance/decisions/request";
    let a = RequestDigest::of_input(
        "POST",
        p,
        &base(
            serde_json::json!({"a": 1, "b": {"y": 2, "x": 1}}),
            Some("r1"),
        ),
    );
    let b = RequestDigest::of_input(
        "POST",
        p,
        &base(
            serde_json::json!({"b": {"x": 1, "y": 2}, "a": 1}),
            Some("r2"),
        ),
    );
    let c = RequestDigest::of_input(
        "POST",
        p,
        &base(serde_json::json!({"a": 2, "b": {"x": 1, "y": 2}}), None),
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(
        RequestDigest::of_http("POST", "/a", b"bc"),
        RequestDigest::of_http("POST", "/ab", b"c")
    );
    let hex = a.to_hex();
    assert_eq!(hex.len(), 64);
    assert_eq!(RequestDigest::try_from(hex).unwrap(), a);
    assert!(RequestDigest::try_from("zz".to_owned()).is_err());
}

#[test]
fn redeeming_turns_the_approved_escalation_into_a_permit_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, a) = approved(dir.path());
    let mut retry = escalated();
    let outcome = redeem(&store, &mut retry, &a.id, &digest(), at(120));
    assert!(
        matches!(outcome, Redemption::Permitted(ref e) if e.kind == ApprovalEventKind::Consumed)
    );
    assert_eq!(retry.decision, Verdict::Permit);
    assert_eq!(retry.rule_id, format!("approval:{}", a.id));
    assert!(
        retry.reasoning.starts_with("escalation approved by alice"),
        "{}",
        retry.reasoning
    );

    let mut second = escalated();
    let outcome = redeem(&store, &mut second, &a.id, &digest(), at(121));
    assert!(matches!(
        outcome,
        Redemption::Refused(ApprovalError::AlreadyConsumed { .. })
    ));
    assert_eq!(second.decision, Verdict::Deny);
    assert!(
        second.reasoning.contains("already used"),
        "{}",
        second.reasoning
    );
    assert!(second
        .compliance_mappings
        .iter()
        .all(|m| m.status == lexecon_domains::ComplianceStatus::ViolationPrevented));
}

#[test]
fn redeeming_never_overrides_a_deny_nor_uses_up_the_approval_on_a_permit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, a) = approved(dir.path());
    for verdict in [Verdict::Deny, Verdict::Permit] {
        let mut d = escalated();
        d.decision = verdict;
        let before = d.clone();
        assert_eq!(
            redeem(&store, &mut d, &a.id, &digest(), at(120)),
            Redemption::NotApplicable
        );
        assert_eq!(d, before);
    }
    assert_eq!(
        store.get(&a.id, at(120)).unwrap().status,
        ApprovalStatus::Approved
    );
}

#[test]
fn redeeming_by_another_actor_is_denied_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (store, a) = approved(dir.path());
    let mut other = escalated();
    other.actor = "act_trader:eve".into();
    let outcome = redeem(&store, &mut other, &a.id, &digest(), at(120));
    assert!(matches!(
        outcome,
        Redemption::Refused(ApprovalError::Mismatch { field: "actor", .. })
    ));
    assert_eq!(other.decision, Verdict::Deny);
    assert_eq!(
        other.reasoning,
        format!("approval {} was granted for a different actor", a.id)
    );
    // The rightful actor can still use it.
    let mut own = escalated();
    assert!(matches!(
        redeem(&store, &mut own, &a.id, &digest(), at(121)),
        Redemption::Permitted(_)
    ));
}

#[tokio::test]
async fn run_blocking_performs_store_writes_off_the_async_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let (a, _) = store
        .run_blocking(|s| s.create(&escalated(), digest(), at(0)))
        .await
        .unwrap();
    assert_eq!(
        store.get(&a.id, at(1)).unwrap().status,
        ApprovalStatus::Pending
    );
}

#[test]
fn one_actor_flooding_escalations_is_capped_and_others_can_still_escalate() {
    let dir = tempfile::tempdir().unwrap();
    let config = ApprovalSettings {
        max_pending: 10,
        max_pending_per_actor: 3,
        ..ApprovalSettings::default()
    };
    let store = ApprovalStore::open(dir.path(), config).unwrap();
    for _ in 0..3 {
        store.create(&escalated(), digest(), at(0)).unwrap();
    }
    let flood = store.create(&escalated(), digest(), at(0)).unwrap_err();
    assert!(
        matches!(flood, ApprovalError::ActorLimit { limit: 3, .. }),
        "{flood}"
    );
    assert_eq!(flood.status(), http::StatusCode::TOO_MANY_REQUESTS);
    let mut other = escalated();
    other.actor = "act_ai_agent:other".into();
    store.create(&other, digest(), at(0)).unwrap();
    assert_eq!(store.list(None, at(0)).len(), 4);
}
