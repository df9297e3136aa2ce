//! The seam between the proxy and the decision engine: [`Decide`] takes one [`DecisionInput`] and
//! returns a [`Decision`] or a [`DecideFailure`] that the proxy answers as an HTTP error; then
//! [`Decide::record`] writes the decision to the audit ledger and, for a permit, mints the
//! capability token the upstream receives ([`Decide::record_owned`] when the caller gives the
//! decision away and needs no entry hash, so the entry can be built off the request thread).
//!
//! The proxy has no decision logic of its own: it never permits anything the engine did not permit,
//! and a failure is never turned into a permit (fail closed).

use async_trait::async_trait;
use lexecon_policy_cache::{Decision, DecisionInput};

use crate::api::approvals::RequestDigest;
use crate::token::Issued;
use serde_json::{Map, Value};

/// What recording a decision produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The hash of the decision's ledger entry, when known.
    pub ledger_entry_hash: Option<String>,
    /// For a permit with an audience: the signed capability token and its id and lifetime.
    pub capability_token: Option<Issued>,
}

/// A decision engine as the proxy sees it. Called on the request path: it must not block.
#[async_trait]
pub trait Decide: Send + Sync + 'static {
    fn decide(&self, input: DecisionInput) -> Result<Decision, DecideFailure>;

    /// [`Self::decide`], handing the request's context back for a caller that records it after
    /// deciding: as the decision saw it (after the domain plugin's `enrich`), or as given when the
    /// decision failed. The default clones it before deciding; the engine's gives it back instead.
    fn decide_keeping_context(
        &self,
        input: DecisionInput,
    ) -> (Result<Decision, DecideFailure>, Map<String, Value>) {
        let context = input.context.clone();
        (self.decide(input), context)
    }

    /// Records `decision` (taken on `context`) and, when it permits and `audience` is given, mints
    /// a capability token for that audience. An error blocks the request (e.g. the ledger queue is
    /// full under `fail_closed`). The default records nothing.
    async fn record(
        &self,
        _decision: &Decision,
        _context: &Map<String, Value>,
        _audience: Option<&str>,
    ) -> Result<Recorded, DecideFailure> {
        Ok(Recorded::default())
    }

    /// [`Self::record`] of a decision the caller no longer needs: an implementation may record it
    /// off the request thread, and then cannot say its entry's hash (`ledger_entry_hash: None`).
    /// The capability token and the failure semantics are those of [`Self::record`].
    async fn record_owned(
        &self,
        decision: Decision,
        context: Map<String, Value>,
        audience: Option<&str>,
    ) -> Result<Recorded, DecideFailure> {
        self.record(&decision, &context, audience).await
    }

    /// Creates a pending human approval for an escalated `decision` of the request with `digest`
    /// and returns its id. The default supports no approvals (`None`): the escalation just blocks.
    async fn escalated(
        &self,
        _decision: &Decision,
        _digest: RequestDigest,
    ) -> Result<Option<String>, DecideFailure> {
        Ok(None)
    }

    /// Applies the approval `approval_id` a retried request carries to its fresh `decision`
    /// (see [`crate::api::approvals::redeem`]): an escalation becomes a permit exactly once for the
    /// same actor, action, resource and digest, or a deny with the reason. The default supports no
    /// approvals and returns the decision unchanged (the escalation still blocks: fail closed).
    async fn redeem(
        &self,
        decision: Decision,
        _approval_id: &str,
        _digest: RequestDigest,
    ) -> Result<Decision, DecideFailure> {
        Ok(decision)
    }
}

/// Why no decision could be made: `status` is the HTTP status to answer with (400 unknown type,
/// 404 unknown domain, 503 ledger unavailable, …) and `message` says what is wrong.
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
