//! Why an approval operation failed, with the HTTP status and code the decision API answers with.

use jiff::Timestamp;

use crate::ApprovalStatus;

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
    #[error(
        "{approver} does not carry the `approver` role (roles come only with a bearer token: \
         the trusted actor header names an actor, never its roles)"
    )]
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
    #[error(
        "the approval store holds {limit} approvals (api.approvals.max_stored), none of them \
         finished; escalations are refused until some are resolved or expire"
    )]
    StoreFull { limit: usize },
    #[error(
        "{actor} already has {limit} approvals pending (api.approvals.max_pending_per_actor); \
         its escalations are refused until some are resolved"
    )]
    ActorLimit { actor: String, limit: usize },
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
            ApprovalError::ActorLimit { .. } => S::TOO_MANY_REQUESTS,
            ApprovalError::TooManyPending { .. }
            | ApprovalError::StoreFull { .. }
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
            ApprovalError::StoreFull { .. } => "approval_store_full",
            ApprovalError::ActorLimit { .. } => "actor_approval_limit",
            ApprovalError::Io { .. } | ApprovalError::Corrupt { .. } => {
                "approval_store_unavailable"
            }
            ApprovalError::InvalidConfig { .. } | ApprovalError::Internal { .. } => "internal",
        }
    }
}
