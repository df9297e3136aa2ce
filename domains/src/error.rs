//! Errors of the domain model: every variant carries the id, field or value a user needs to fix the
//! problem. Never used for a decision outcome (those are [`crate::Finding`]s).

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DomainError {
    #[error("invalid domain id {id:?}: expected [a-z][a-z0-9_]* (at most 64 characters)")]
    InvalidDomainId { id: String },
    #[error("invalid reference {raw:?}: {reason}")]
    InvalidEntityRef { raw: String, reason: &'static str },
    #[error("invalid risk level {level}: expected 1..=5")]
    InvalidRiskLevel { level: u8 },
    #[error("unknown domain {domain:?}")]
    UnknownDomain { domain: String },
    #[error("unknown actor type {type_id:?} in domain {domain}")]
    UnknownActorType { domain: String, type_id: String },
    #[error("unknown action type {type_id:?} in domain {domain}")]
    UnknownActionType { domain: String, type_id: String },
    #[error("unknown resource type {type_id:?} in domain {domain}")]
    UnknownResourceType { domain: String, type_id: String },
    #[error("domain {domain} is already registered")]
    DuplicateDomain { domain: String },
    #[error("domain pack {source_name}: {reason}")]
    InvalidPack { source_name: String, reason: String },
    #[error("domain settings {field}: {reason}")]
    InvalidSettings { field: String, reason: String },
    /// A built-in domain's embedded catalogue (e.g. `finance.yaml`) is malformed; its unit tests
    /// guarantee this never reaches a user.
    #[error("built-in catalogue of domain {domain}: {reason}")]
    InvalidCatalogue {
        domain: &'static str,
        reason: String,
    },
    /// A template string names a parameter the template does not declare. `path` is where the string
    /// sits inside the substituted value (`.when[0].value`, empty for the value itself); the message
    /// leaves it out so the caller can locate it in its own terms.
    #[error("unknown placeholder {{{{{name}}}}}")]
    UnknownPlaceholder { path: String, name: String },
    /// A template string has a `{{` with no `}}` after it. `path` as for `UnknownPlaceholder`.
    #[error("unterminated placeholder: {{{{ without }}}} in {text:?}")]
    UnterminatedPlaceholder { path: String, text: String },
}
