//! The seam between the proxy and the decision engine: [`Decide`] takes one [`DecisionInput`] and
//! returns a [`Decision`] or a [`DecideFailure`] that the proxy answers as an HTTP error.
//!
//! The proxy has no decision logic of its own: it never permits anything the engine did not permit,
//! and a failure is never turned into a permit (fail closed).

use lexecon_policy_cache::{Decision, DecisionInput};

/// A decision engine as the proxy sees it. Called on the request path: it must not block.
pub trait Decide: Send + Sync + 'static {
    fn decide(&self, input: DecisionInput) -> Result<Decision, DecideFailure>;
}

/// Why no decision could be made: `status` is the HTTP status to answer with (400 unknown type,
/// 404 unknown domain, 500 internal error, …) and `message` says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("decision failed ({status}): {message}")]
pub struct DecideFailure {
    pub status: u16,
    pub message: String,
}

impl DecideFailure {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}
