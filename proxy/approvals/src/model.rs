//! What an approval is: its status, the approval itself, the events its state changes produce for
//! the ledger, who approves, and the store's settings. Plain data; no I/O, no clock.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::RequestDigest;

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for an approver.
    Pending,
    /// Approved; the original caller may retry once.
    Approved,
    /// Denied by an approver.
    Denied,
    /// Approved and used by the retry.
    Consumed,
    /// Not approved and used before its expiry.
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Consumed => "consumed",
            ApprovalStatus::Expired => "expired",
        }
    }

    /// Parses `pending`, `approved`, `denied`, `consumed` or `expired`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "denied" => ApprovalStatus::Denied,
            "consumed" => ApprovalStatus::Consumed,
            "expired" => ApprovalStatus::Expired,
            _ => return None,
        })
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// 1..=64 of `[A-Za-z0-9_-]`: the shape of every approval id the store mints (the API rejects any
/// other before it reaches the store).
pub fn is_valid_approval_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One approval request and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub id: String,
    pub domain: String,
    pub actor: String,
    pub action: String,
    #[serde(default)]
    pub resource: Option<String>,
    /// Why the decision was escalated.
    pub reason: String,
    /// The rule (or finding) that escalated.
    pub rule_id: String,
    /// The escalated decision.
    pub decision_id: String,
    pub request_digest: RequestDigest,
    pub created: Timestamp,
    pub expires: Timestamp,
    /// As stored; reads report `expired` for a pending or approved approval past `expires`.
    pub status: ApprovalStatus,
    /// The approver who approved or denied.
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub decided_at: Option<Timestamp>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub consumed_at: Option<Timestamp>,
}

impl Approval {
    /// The status at `now`: a pending or approved approval past its expiry is `expired`.
    pub fn status_at(&self, now: Timestamp) -> ApprovalStatus {
        match self.status {
            ApprovalStatus::Pending | ApprovalStatus::Approved if now >= self.expires => {
                ApprovalStatus::Expired
            }
            s => s,
        }
    }

    pub(crate) fn view(&self, now: Timestamp) -> Approval {
        let mut a = self.clone();
        a.status = self.status_at(now);
        a
    }
}

/// What happened to an approval, for the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalEventKind {
    Created,
    Approved,
    Denied,
    Consumed,
    Expired,
}

/// A state change of an approval; the caller appends it to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalEvent {
    pub kind: ApprovalEventKind,
    pub approval_id: String,
    pub decision_id: String,
    pub domain: String,
    pub actor: String,
    pub action: String,
    pub resource: Option<String>,
    pub request_digest: RequestDigest,
    /// The approver (approved / denied) or the actor (consumed); none for created / expired.
    pub by: Option<String>,
    pub comment: Option<String>,
    pub at: Timestamp,
}

impl ApprovalEvent {
    pub(crate) fn new(
        kind: ApprovalEventKind,
        a: &Approval,
        by: Option<&str>,
        at: Timestamp,
    ) -> Self {
        Self {
            kind,
            approval_id: a.id.clone(),
            decision_id: a.decision_id.clone(),
            domain: a.domain.clone(),
            actor: a.actor.clone(),
            action: a.action.clone(),
            resource: a.resource.clone(),
            request_digest: a.request_digest,
            by: by.map(str::to_owned),
            comment: match kind {
                ApprovalEventKind::Approved | ApprovalEventKind::Denied => a.comment.clone(),
                _ => None,
            },
            at,
        }
    }
}

/// Who is approving or denying: the authenticated caller's id and roles (from its JWT).
#[derive(Debug, Clone, Copy)]
pub struct Approver<'a> {
    pub id: &'a str,
    pub roles: &'a [String],
}
