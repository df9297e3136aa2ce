//! The `api:` section: the decision API's per-caller rate limit, the approvals' lifetimes, the
//! roles granted by actor id and the token audiences each role may ask for. Owns the defaults and the checks; the API handler and the approval
//! store read these values and never re-parse the section.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::file::RateLimitConfig;

/// The `api:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Per-caller rate limit of the authenticated endpoints (`{per_actor: "100/s", burst: 200}`);
    /// none by default.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub approvals: ApprovalSettings,
    /// Roles granted by actor id, in addition to the JWT's `roles` claim, for callers proven by
    /// a bearer token only, e.g. `{"act_human_user:alice": [approver]}`.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// The capability-token audiences (`x-lexecon-audience`) each role may ask the API for, e.g.
    /// `{decider: [oms]}`; every caller may have `lexecon-api`, the default. Another audience → 403.
    #[serde(default)]
    pub audiences: BTreeMap<String, Vec<String>>,
}

/// `api.approvals`: how long approvals live and how many may be pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSettings {
    /// How long an escalation may be approved and retried (default 15m).
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long finished approvals stay listable (default 24h).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Most approvals pending at once (default 10000).
    pub max_pending: usize,
    /// Most approvals one actor may have pending (default 20): an agent that floods escalations
    /// is refused (429) while others can still escalate.
    pub max_pending_per_actor: usize,
    /// Most approvals kept in memory and in the store at once, finished ones included (default
    /// 50000, at least `max_pending`). When it is reached, the oldest finished approvals are
    /// dropped before their retention ends; if every one is still pending or approved, a new
    /// escalation is refused (503) — a pending approval is never dropped to make room.
    pub max_stored: usize,
}

/// The largest `api.approvals.max_stored`.
pub const MAX_STORED_APPROVALS: usize = 10_000_000;

impl Default for ApprovalSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(15 * 60),
            retention: Duration::from_secs(24 * 60 * 60),
            max_pending: 10_000,
            max_pending_per_actor: 20,
            max_stored: 50_000,
        }
    }
}

impl ApiSettings {
    /// Every problem of the section as `(path, reason)`, in document order.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Some(rl) = &self.rate_limit {
            for (field, reason) in rl.problems() {
                problems.push((format!("api.rate_limit.{field}"), reason));
            }
        }
        if self.approvals.ttl.is_zero() {
            problems.push(("api.approvals.ttl".to_owned(), "must be above 0".to_owned()));
        }
        let per_actor = self.approvals.max_pending_per_actor;
        if per_actor == 0 || per_actor > self.approvals.max_pending {
            problems.push((
                "api.approvals.max_pending_per_actor".to_owned(),
                format!(
                    "{per_actor} is outside 1..=max_pending ({})",
                    self.approvals.max_pending
                ),
            ));
        }
        let stored = self.approvals.max_stored;
        if stored < self.approvals.max_pending || stored > MAX_STORED_APPROVALS {
            problems.push((
                "api.approvals.max_stored".to_owned(),
                format!(
                    "{stored} is outside max_pending ({})..={MAX_STORED_APPROVALS}",
                    self.approvals.max_pending
                ),
            ));
        }
        for (role, audiences) in &self.audiences {
            for (i, audience) in audiences.iter().enumerate() {
                if audience.is_empty() || audience.contains(char::is_whitespace) {
                    problems.push((
                        format!("api.audiences.{role}[{i}]"),
                        "must be a non-empty audience without spaces".to_owned(),
                    ));
                }
            }
        }
        for (actor, roles) in &self.roles {
            if actor.trim().is_empty() {
                problems.push((
                    "api.roles".to_owned(),
                    "an actor id must not be empty".to_owned(),
                ));
            }
            for (i, role) in roles.iter().enumerate() {
                if role.trim().is_empty() {
                    problems.push((
                        format!("api.roles.{actor}[{i}]"),
                        "must not be empty".to_owned(),
                    ));
                }
            }
        }
        problems
    }
}
