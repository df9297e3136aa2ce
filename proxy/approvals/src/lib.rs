//! Human approvals of escalated decisions: the [`ApprovalStore`].
//!
//! An `escalate` decision creates a pending [`Approval`] bound to the actor, action, resource and a
//! [`RequestDigest`] of the request. A caller with the `approver` role who is not the actor approves or
//! denies it; the original caller then redeems it exactly once ([`ApprovalStore::consume`]) for the
//! very same request before it expires. Every state change returns an [`ApprovalEvent`] for the
//! ledger.
//!
//! The store keeps everything in memory behind a `Mutex` (approvals are rare; the lock is never held
//! across an await) and persists every change to `approvals.json` in the data directory, written
//! atomically (temp file, fsync, rename, fsync of the directory) and reloaded on start, so pending
//! approvals survive a restart. A change that cannot be persisted is rolled back and reported: an
//! approval is never consumable twice because a write failed. Mutating calls do blocking file I/O;
//! async callers use [`ApprovalStore::run_blocking`]. Time is always passed in (`now`); the store
//! never reads a clock, so tests need no sleeps. It never decides anything but the approval's own
//! state.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use lexecon_domains::Verdict;
use lexecon_policy_cache::{Decision, DecisionInput};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The JWT role that may approve or deny.
pub const APPROVER_ROLE: &str = "approver";
/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "approvals.json";
const STORE_VERSION: u32 = 1;

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

/// SHA-256 over a request's method, path and body, binding an approval to that exact request.
/// Serialized as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestDigest([u8; 32]);

impl RequestDigest {
    /// Digest of a raw HTTP request, as the proxy sees it: each of method, path and body is
    /// length-prefixed (8 bytes, big-endian), so no two different requests share an input.
    pub fn of_http(method: &str, path: &str, body: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"lexecon-approval-digest-v1\0http\0");
        for part in [method.as_bytes(), path.as_bytes(), body] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Self(h.finalize().into())
    }

    /// Digest of a decided call: method, path and the canonical JSON (keys sorted, no whitespace)
    /// of its domain, actor, action, resource and context. The request id and the approval id are
    /// left out, so the retry that carries the approval id digests the same (and so does an MCP
    /// retry, whose JSON-RPC id changes every time).
    pub fn of_call(method: &str, path: &str, call: Call<'_>) -> Self {
        let mut doc = serde_json::Map::new();
        doc.insert("domain".into(), call.domain.into());
        doc.insert("actor".into(), call.actor.into());
        doc.insert("action".into(), call.action.into());
        doc.insert(
            "resource".into(),
            call.resource.map_or(serde_json::Value::Null, Into::into),
        );
        doc.insert(
            "context".into(),
            serde_json::Value::Object(call.context.clone()),
        );
        let mut canonical = Vec::with_capacity(256);
        lexecon_config::canonical::write_canonical_map(&doc, &mut canonical);
        let mut h = Sha256::new();
        h.update(b"lexecon-approval-digest-v1\0decision\0");
        for part in [method.as_bytes(), path.as_bytes(), canonical.as_slice()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Self(h.finalize().into())
    }

    /// [`Self::of_call`] of a decision request.
    pub fn of_input(method: &str, path: &str, input: &DecisionInput) -> Self {
        Self::of_call(method, path, Call::of_input(input))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl TryFrom<String> for RequestDigest {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&value, &mut out)
            .map_err(|e| format!("request digest {value:?} is not 64 hex digits: {e}"))?;
        Ok(Self(out))
    }
}

impl From<RequestDigest> for String {
    fn from(value: RequestDigest) -> Self {
        value.to_hex()
    }
}

/// The parts of a decided call an approval is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub domain: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub resource: Option<&'a str>,
    pub context: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> Call<'a> {
    /// The call `decision` decided, on `context` (as the decision saw it).
    pub fn of_decision(
        decision: &'a Decision,
        context: &'a serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Call {
            domain: &decision.domain,
            actor: &decision.actor,
            action: &decision.action,
            resource: decision.resource.as_deref(),
            context,
        }
    }

    pub fn of_input(input: &'a DecisionInput) -> Self {
        Call {
            domain: &input.domain,
            actor: &input.actor,
            action: &input.action,
            resource: input.resource.as_deref(),
            context: &input.context,
        }
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

    fn view(&self, now: Timestamp) -> Approval {
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
    fn new(kind: ApprovalEventKind, a: &Approval, by: Option<&str>, at: Timestamp) -> Self {
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

/// Settings of the approval store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalConfig {
    /// How long an approval may be approved and used after the escalation (default 15 minutes).
    pub ttl: Duration,
    /// How long finished (denied, consumed, expired) approvals stay listable after their expiry
    /// before they are dropped from the store (default 24 hours).
    pub retention: Duration,
    /// Most approvals pending at once; escalations beyond fail closed (default 10,000).
    pub max_pending: usize,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(15 * 60),
            retention: Duration::from_secs(24 * 60 * 60),
            max_pending: 10_000,
        }
    }
}

/// Why an approval operation failed. For [`ApprovalStore::consume`], the message is the reason the
/// retried request is denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("approval {id} not found")]
    NotFound { id: String },
    #[error("decision {decision_id} is {verdict}, not escalate: only escalations need approval")]
    NotEscalated {
        decision_id: String,
        verdict: &'static str,
    },
    #[error("{approver} does not carry the `approver` role")]
    NotApprover { approver: String },
    #[error(
        "{approver} may not approve or deny approval {id}: it is their own request (actor {actor})"
    )]
    SelfApproval {
        id: String,
        approver: String,
        actor: String,
    },
    #[error("approval {id} is {status}; only pending approvals can be approved or denied")]
    NotPending { id: String, status: ApprovalStatus },
    #[error("approval {id} is still pending: no approver has approved it yet")]
    StillPending { id: String },
    #[error("approval {id} was denied by {by}{}", comment_suffix(.comment))]
    WasDenied {
        id: String,
        by: String,
        comment: Option<String>,
    },
    #[error("approval {id} was already used at {at}; an approval permits exactly one retry")]
    AlreadyConsumed { id: String, at: Timestamp },
    #[error("approval {id} expired at {expired_at}")]
    Expired { id: String, expired_at: Timestamp },
    #[error("approval {id} was granted for a different {field}")]
    Mismatch { id: String, field: &'static str },
    #[error(
        "{limit} approvals are already pending; escalations are refused until some are resolved"
    )]
    TooManyPending { limit: usize },
    #[error("approval store {path}: {message}")]
    Io { path: String, message: String },
    #[error("approval store {path} cannot be loaded: {message}")]
    Corrupt { path: String, message: String },
    #[error("invalid approval configuration: {reason}")]
    InvalidConfig { reason: String },
    #[error("approval store task failed: {reason}")]
    Internal { reason: String },
}

fn comment_suffix(comment: &Option<String>) -> String {
    comment
        .as_deref()
        .map(|c| format!(": {c}"))
        .unwrap_or_default()
}

impl ApprovalError {
    /// The HTTP status when the error answers an approvals endpoint.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            ApprovalError::NotFound { .. } => S::NOT_FOUND,
            ApprovalError::NotApprover { .. }
            | ApprovalError::SelfApproval { .. }
            | ApprovalError::Mismatch { .. } => S::FORBIDDEN,
            ApprovalError::NotPending { .. }
            | ApprovalError::StillPending { .. }
            | ApprovalError::WasDenied { .. }
            | ApprovalError::AlreadyConsumed { .. }
            | ApprovalError::Expired { .. } => S::CONFLICT,
            ApprovalError::TooManyPending { .. }
            | ApprovalError::Io { .. }
            | ApprovalError::Corrupt { .. } => S::SERVICE_UNAVAILABLE,
            ApprovalError::NotEscalated { .. }
            | ApprovalError::InvalidConfig { .. }
            | ApprovalError::Internal { .. } => S::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApprovalError::NotFound { .. } => "approval_not_found",
            ApprovalError::NotEscalated { .. } => "not_escalated",
            ApprovalError::NotApprover { .. } => "not_approver",
            ApprovalError::SelfApproval { .. } => "self_approval",
            ApprovalError::NotPending { .. } => "approval_not_pending",
            ApprovalError::StillPending { .. } => "approval_pending",
            ApprovalError::WasDenied { .. } => "approval_denied",
            ApprovalError::AlreadyConsumed { .. } => "approval_consumed",
            ApprovalError::Expired { .. } => "approval_expired",
            ApprovalError::Mismatch { .. } => "approval_mismatch",
            ApprovalError::TooManyPending { .. } => "too_many_pending_approvals",
            ApprovalError::Io { .. } | ApprovalError::Corrupt { .. } => {
                "approval_store_unavailable"
            }
            ApprovalError::InvalidConfig { .. } | ApprovalError::Internal { .. } => "internal",
        }
    }
}

#[derive(Serialize)]
struct StoreFileRef<'a> {
    version: u32,
    approvals: Vec<&'a Approval>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    approvals: Vec<Approval>,
}

/// The approvals of one node, persisted in its data directory. Share it as `Arc<ApprovalStore>`.
#[derive(Debug)]
pub struct ApprovalStore {
    path: PathBuf,
    ttl: SignedDuration,
    retention: SignedDuration,
    max_pending: usize,
    approvals: Mutex<BTreeMap<String, Approval>>,
}

impl ApprovalStore {
    /// Opens (creating if needed) the store in `data_dir`, reloading `approvals.json` if present.
    /// A file that cannot be read or parsed is an error, never silently an empty store.
    pub fn open(data_dir: &Path, config: ApprovalConfig) -> Result<Self, ApprovalError> {
        let to_signed = |d: Duration, name: &str| {
            SignedDuration::try_from(d).map_err(|e| ApprovalError::InvalidConfig {
                reason: format!("{name} {d:?} is out of range: {e}"),
            })
        };
        let ttl = to_signed(config.ttl, "ttl")?;
        if ttl.is_zero() {
            return Err(ApprovalError::InvalidConfig {
                reason: "ttl must be greater than zero".into(),
            });
        }
        let retention = to_signed(config.retention, "retention")?;
        let path = data_dir.join(STORE_FILE);
        fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, e))?;
        let approvals = match fs::read(&path) {
            Ok(bytes) => {
                let file: StoreFile =
                    serde_json::from_slice(&bytes).map_err(|e| ApprovalError::Corrupt {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })?;
                if file.version != STORE_VERSION {
                    return Err(ApprovalError::Corrupt {
                        path: path.display().to_string(),
                        message: format!(
                            "version {} is not supported (expected {STORE_VERSION})",
                            file.version
                        ),
                    });
                }
                file.approvals
                    .into_iter()
                    .map(|a| (a.id.clone(), a))
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io_error(&path, e)),
        };
        Ok(Self {
            path,
            ttl,
            retention,
            max_pending: config.max_pending,
            approvals: Mutex::new(approvals),
        })
    }

    /// The file the store persists to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a pending approval for an escalated `decision` of the request with `digest`.
    pub fn create(
        &self,
        decision: &Decision,
        digest: RequestDigest,
        now: Timestamp,
    ) -> Result<(Approval, ApprovalEvent), ApprovalError> {
        if decision.decision != Verdict::Escalate {
            return Err(ApprovalError::NotEscalated {
                decision_id: decision.decision_id.clone(),
                verdict: decision.decision.as_str(),
            });
        }
        let expires = now
            .checked_add(self.ttl)
            .map_err(|e| ApprovalError::InvalidConfig {
                reason: format!("ttl pushes the expiry past the supported range: {e}"),
            })?;
        self.mutate(now, |map| {
            let pending = map
                .values()
                .filter(|a| a.status_at(now) == ApprovalStatus::Pending)
                .count();
            if pending >= self.max_pending {
                return Err(ApprovalError::TooManyPending {
                    limit: self.max_pending,
                });
            }
            let approval = Approval {
                id: format!("apr_{}", uuid::Uuid::new_v4().simple()),
                domain: decision.domain.clone(),
                actor: decision.actor.clone(),
                action: decision.action.clone(),
                resource: decision.resource.clone(),
                reason: decision.reasoning.to_string(),
                rule_id: decision.rule_id.to_string(),
                decision_id: decision.decision_id.clone(),
                request_digest: digest,
                created: now,
                expires,
                status: ApprovalStatus::Pending,
                decided_by: None,
                decided_at: None,
                comment: None,
                consumed_at: None,
            };
            let event = ApprovalEvent::new(ApprovalEventKind::Created, &approval, None, now);
            map.insert(approval.id.clone(), approval.clone());
            Ok((approval, event))
        })
    }

    /// The approval `id` as of `now`.
    pub fn get(&self, id: &str, now: Timestamp) -> Result<Approval, ApprovalError> {
        self.lock()
            .get(id)
            .map(|a| a.view(now))
            .ok_or_else(|| ApprovalError::NotFound { id: id.to_owned() })
    }

    /// All approvals (or those with `status` as of `now`), oldest first.
    pub fn list(&self, status: Option<ApprovalStatus>, now: Timestamp) -> Vec<Approval> {
        let mut out: Vec<Approval> = self
            .lock()
            .values()
            .map(|a| a.view(now))
            .filter(|a| status.is_none_or(|s| a.status == s))
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Approves a pending approval. The approver must carry the `approver` role and must not be the
    /// approval's actor (neither its full reference nor its instance part).
    pub fn approve(
        &self,
        id: &str,
        approver: Approver<'_>,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<(Approval, ApprovalEvent), ApprovalError> {
        self.decide(id, approver, comment, now, ApprovalStatus::Approved)
    }

    /// Denies a pending approval; same rules as [`ApprovalStore::approve`].
    pub fn deny(
        &self,
        id: &str,
        approver: Approver<'_>,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<(Approval, ApprovalEvent), ApprovalError> {
        self.decide(id, approver, comment, now, ApprovalStatus::Denied)
    }

    fn decide(
        &self,
        id: &str,
        approver: Approver<'_>,
        comment: Option<String>,
        now: Timestamp,
        to: ApprovalStatus,
    ) -> Result<(Approval, ApprovalEvent), ApprovalError> {
        if !approver.roles.iter().any(|r| r == APPROVER_ROLE) {
            return Err(ApprovalError::NotApprover {
                approver: approver.id.to_owned(),
            });
        }
        self.mutate(now, |map| {
            let a = map
                .get_mut(id)
                .ok_or_else(|| ApprovalError::NotFound { id: id.to_owned() })?;
            if is_same_principal(approver.id, &a.actor) {
                return Err(ApprovalError::SelfApproval {
                    id: id.to_owned(),
                    approver: approver.id.to_owned(),
                    actor: a.actor.clone(),
                });
            }
            let status = a.status_at(now);
            if status != ApprovalStatus::Pending {
                return Err(ApprovalError::NotPending {
                    id: id.to_owned(),
                    status,
                });
            }
            a.status = to;
            a.decided_by = Some(approver.id.to_owned());
            a.decided_at = Some(now);
            a.comment = comment;
            let kind = if to == ApprovalStatus::Approved {
                ApprovalEventKind::Approved
            } else {
                ApprovalEventKind::Denied
            };
            Ok((
                a.clone(),
                ApprovalEvent::new(kind, a, Some(approver.id), now),
            ))
        })
    }

    /// Redeems an approved approval for the retried request: only for the same actor, action,
    /// resource and request digest, before expiry, and only once. Every other case is an error
    /// whose message is the reason to deny the retry.
    pub fn consume(
        &self,
        id: &str,
        actor: &str,
        action: &str,
        resource: Option<&str>,
        digest: &RequestDigest,
        now: Timestamp,
    ) -> Result<ApprovalEvent, ApprovalError> {
        self.mutate(now, |map| {
            let a = map
                .get_mut(id)
                .ok_or_else(|| ApprovalError::NotFound { id: id.to_owned() })?;
            let mismatch = |field| ApprovalError::Mismatch {
                id: id.to_owned(),
                field,
            };
            if a.actor != actor {
                return Err(mismatch("actor"));
            }
            if a.action != action {
                return Err(mismatch("action"));
            }
            if a.resource.as_deref() != resource {
                return Err(mismatch("resource"));
            }
            if a.request_digest != *digest {
                return Err(mismatch("request (its method, path or body differ)"));
            }
            match a.status_at(now) {
                ApprovalStatus::Approved => {}
                ApprovalStatus::Pending => {
                    return Err(ApprovalError::StillPending { id: id.to_owned() })
                }
                ApprovalStatus::Denied => {
                    return Err(ApprovalError::WasDenied {
                        id: id.to_owned(),
                        by: a.decided_by.clone().unwrap_or_default(),
                        comment: a.comment.clone(),
                    })
                }
                ApprovalStatus::Consumed => {
                    return Err(ApprovalError::AlreadyConsumed {
                        id: id.to_owned(),
                        at: a.consumed_at.unwrap_or(a.created),
                    })
                }
                ApprovalStatus::Expired => {
                    return Err(ApprovalError::Expired {
                        id: id.to_owned(),
                        expired_at: a.expires,
                    })
                }
            }
            a.status = ApprovalStatus::Consumed;
            a.consumed_at = Some(now);
            Ok(ApprovalEvent::new(
                ApprovalEventKind::Consumed,
                a,
                Some(actor),
                now,
            ))
        })
    }

    /// Marks every pending or approved approval past its expiry as expired (persisted), returning
    /// one `expired` event each. Call it periodically; reads report expiry even before it runs.
    pub fn expire_due(&self, now: Timestamp) -> Result<Vec<ApprovalEvent>, ApprovalError> {
        self.mutate(now, |map| {
            let mut events = Vec::new();
            for a in map.values_mut() {
                if matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved)
                    && a.status_at(now) == ApprovalStatus::Expired
                {
                    a.status = ApprovalStatus::Expired;
                    events.push(ApprovalEvent::new(
                        ApprovalEventKind::Expired,
                        a,
                        None,
                        a.expires,
                    ));
                }
            }
            Ok(events)
        })
    }

    /// Runs `f` on a blocking thread: use it from async code for the calls that write to disk.
    pub async fn run_blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApprovalError>
    where
        T: Send + 'static,
        F: FnOnce(&ApprovalStore) -> Result<T, ApprovalError> + Send + 'static,
    {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApprovalError::Internal {
                reason: e.to_string(),
            })?
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Approval>> {
        // No code path panics while holding the lock; if one ever did, the map is still whole.
        self.approvals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `f`, drops finished approvals past retention, persists; restores the previous state
    /// if `f` fails or the write fails.
    fn mutate<T>(
        &self,
        now: Timestamp,
        f: impl FnOnce(&mut BTreeMap<String, Approval>) -> Result<T, ApprovalError>,
    ) -> Result<T, ApprovalError> {
        let mut map = self.lock();
        let before = map.clone();
        let result = f(&mut map).and_then(|out| {
            let retention = self.retention;
            map.retain(|_, a| {
                let finished = a.status_at(now) != ApprovalStatus::Pending
                    && a.status_at(now) != ApprovalStatus::Approved;
                !finished || a.expires.checked_add(retention).is_ok_and(|t| t > now)
            });
            self.persist(&map)?;
            Ok(out)
        });
        if result.is_err() {
            *map = before;
        }
        result
    }

    fn persist(&self, map: &BTreeMap<String, Approval>) -> Result<(), ApprovalError> {
        let file = StoreFileRef {
            version: STORE_VERSION,
            approvals: map.values().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| ApprovalError::Io {
            path: self.path.display().to_string(),
            message: format!("serialization failed: {e}"),
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &self.path)?;
            #[cfg(unix)]
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| io_error(&tmp, e))
    }
}

/// What redeeming an approval did to a retried request's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Redemption {
    /// The decision was not `escalate` (a permit or deny stands as decided); nothing was consumed.
    NotApplicable,
    /// The approval was consumed and the escalation became a permit.
    Permitted(ApprovalEvent),
    /// The approval could not be used; the decision became a deny with this reason.
    Refused(ApprovalError),
}

/// Applies a caller's `approval_id` (or `x-lexecon-approval`) to the fresh `decision` of the
/// retried request. Only an `escalate` is affected, so an approval can never override a deny (a
/// policy that now forbids the request wins) and is not used up by a request that is permitted
/// anyway. An escalation whose approval is consumed becomes `permit` (rule `approval:<id>`, the
/// approver named in the reasoning); any failure becomes `deny` with the precise reason, and its
/// compliance mappings `violation_prevented`. Does blocking file I/O on success: async callers run
/// it through [`ApprovalStore::run_blocking`].
pub fn redeem(
    store: &ApprovalStore,
    decision: &mut Decision,
    approval_id: &str,
    digest: &RequestDigest,
    now: Timestamp,
) -> Redemption {
    if decision.decision != Verdict::Escalate {
        return Redemption::NotApplicable;
    }
    let result = store.consume(
        approval_id,
        &decision.actor,
        &decision.action,
        decision.resource.as_deref(),
        digest,
        now,
    );
    decision.rule_id = format!("approval:{approval_id}").into();
    match result {
        Ok(event) => {
            let approver = store
                .get(approval_id, now)
                .ok()
                .and_then(|a| a.decided_by)
                .unwrap_or_else(|| "an approver".to_owned());
            decision.decision = Verdict::Permit;
            decision.reasoning = format!(
                "escalation approved by {approver} (approval {approval_id}): {}",
                decision.reasoning
            )
            .into();
            Redemption::Permitted(event)
        }
        Err(e) => {
            decision.decision = Verdict::Deny;
            decision.reasoning = e.to_string().into();
            decision.compliance_mappings = decision
                .compliance_mappings
                .iter()
                .map(|m| lexecon_domains::ComplianceMapping {
                    status: lexecon_domains::ComplianceStatus::ViolationPrevented,
                    ..m.clone()
                })
                .collect();
            Redemption::Refused(e)
        }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> ApprovalError {
    ApprovalError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Whether `principal` (a JWT subject) is the approval's `actor`: the same reference, or the
/// instance part of `type:instance`.
fn is_same_principal(principal: &str, actor: &str) -> bool {
    principal == actor
        || actor
            .split_once(':')
            .is_some_and(|(_, inst)| inst == principal)
}

#[cfg(test)]
mod tests {
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
        ApprovalStore::open(dir, ApprovalConfig::default()).unwrap()
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
        // A directory where the temp file goes makes the write fail (even as root).
        let blocker = dir.path().join("approvals.json.tmp");
        fs::create_dir(&blocker).unwrap();
        let err = consume(&store, &a, at(120)).unwrap_err();
        assert!(matches!(err, ApprovalError::Io { .. }), "{err:?}");
        assert_eq!(
            store.get(&a.id, at(120)).unwrap().status,
            ApprovalStatus::Approved
        );
        fs::remove_dir(&blocker).unwrap();
        assert!(consume(&store, &a, at(121)).is_ok());
    }

    #[test]
    fn corrupt_store_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(STORE_FILE),
            b"{\"version\":1,\"approvals\":[{]}",
        )
        .unwrap();
        let err = ApprovalStore::open(dir.path(), ApprovalConfig::default()).unwrap_err();
        assert!(matches!(err, ApprovalError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("approvals.json"), "{err}");
        fs::write(
            dir.path().join(STORE_FILE),
            b"{\"version\":9,\"approvals\":[]}",
        )
        .unwrap();
        let err = ApprovalStore::open(dir.path(), ApprovalConfig::default()).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
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
        let config = ApprovalConfig {
            retention: Duration::from_secs(60),
            ..ApprovalConfig::default()
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
        let config = ApprovalConfig {
            max_pending: 2,
            ..ApprovalConfig::default()
        };
        let store = ApprovalStore::open(dir.path(), config).unwrap();
        store.create(&escalated(), digest(), at(0)).unwrap();
        store.create(&escalated(), digest(), at(0)).unwrap();
        assert_eq!(
            store.create(&escalated(), digest(), at(0)).unwrap_err(),
            ApprovalError::TooManyPending { limit: 2 }
        );
        assert_eq!(store.list(None, at(0)).len(), 2);
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
}
