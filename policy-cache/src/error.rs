//! Errors of the decision crate: [`PolicyError`] when a policy cannot be compiled or a snapshot cannot
//! be built (located by policy id, rule id and field, all of a document's problems collected), and
//! [`DecideError`] when a request cannot be decided at all (unknown domain, no policy, bad or unknown
//! ids). Callers on the request path must turn a [`DecideError`] into a deny, never into a permit.

use std::fmt;

use lexecon_domains::DomainError;
use thiserror::Error;

/// A policy that cannot be compiled, or a snapshot that cannot be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PolicyError {
    /// A rule (or one of its conditions) is malformed; `field` is the path inside the rule
    /// (`action`, `when[2].value`).
    #[error("policy {policy:?}, rule {rule:?}, field {field}: {reason}")]
    InvalidRule {
        policy: String,
        rule: String,
        field: String,
        reason: String,
    },
    /// Two rules of one policy (document or template rules) share an id.
    #[error("policy {policy:?}: rule id {rule:?} is used more than once")]
    DuplicateRuleId { policy: String, rule: String },
    /// The policy enables a template its domain does not declare.
    #[error("policy {policy:?}: domain {domain} has no policy template {template:?}")]
    UnknownTemplate {
        policy: String,
        domain: String,
        template: String,
    },
    /// A template is used with a parameter it does not declare, or its data rules cannot be
    /// instantiated (`field` says where).
    #[error("policy {policy:?}, template {template:?}, field {field}: {reason}")]
    InvalidTemplate {
        policy: String,
        template: String,
        field: String,
        reason: String,
    },
    /// The policy's domain has no plugin in the snapshot's registry.
    #[error("policy {policy:?}: domain {domain} has no registered domain plugin")]
    NoPlugin { policy: String, domain: String },
    /// The plugin handed to the compiler belongs to another domain.
    #[error("policy {policy:?} is for domain {policy_domain} but was compiled with the {plugin_domain} plugin")]
    DomainMismatch {
        policy: String,
        policy_domain: String,
        plugin_domain: String,
    },
    /// Two policies of one snapshot target the same domain.
    #[error("domain {domain} has two policies, {first:?} and {second:?}: one policy per domain")]
    DuplicatePolicy {
        domain: String,
        first: String,
        second: String,
    },
    /// Several problems, every one listed.
    #[error("{}", ErrorList(.0))]
    Many(Vec<PolicyError>),
}

impl PolicyError {
    /// One error as is, several as [`PolicyError::Many`]; `None` for none.
    pub(crate) fn collect(mut errors: Vec<PolicyError>) -> Option<PolicyError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(PolicyError::Many(errors)),
        }
    }

    /// Every individual error (flattening [`PolicyError::Many`]).
    pub fn errors(&self) -> Vec<&PolicyError> {
        match self {
            PolicyError::Many(list) => list.iter().flat_map(PolicyError::errors).collect(),
            other => vec![other],
        }
    }
}

struct ErrorList<'a>(&'a [PolicyError]);

impl fmt::Display for ErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} policy errors:", self.0.len())?;
        for e in self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// A request that cannot be decided. The caller must block it (fail closed).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecideError {
    #[error("unknown domain {domain:?}")]
    UnknownDomain { domain: String },
    #[error("domain {domain} has no policy loaded")]
    NoPolicy { domain: String },
    /// The actor, action or resource id is not a valid `type_id[:instance]` reference.
    #[error("invalid {field}: {source}")]
    InvalidReference {
        field: &'static str,
        #[source]
        source: DomainError,
    },
    /// The actor, action or resource type is not declared by the domain (the error names both).
    #[error(transparent)]
    UnknownType(DomainError),
}
