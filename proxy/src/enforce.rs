//! The enforcement pipeline, written once: decide → escalate (digest, then redeem or create an
//! approval) → record → mint. The proxy (`server::proxy`) and the decision API (`api::http`) both
//! run it: [`decide`] takes the decision and settles an escalation, then the caller records the
//! [`Decided`] call through [`DecisionPoint::record`] (the API, which answers with the entry's hash)
//! or [`DecisionPoint::record_owned`] (the proxy, which gives the decision away so the ledger writer
//! can build the entry off the request thread); a permit with an audience gets its capability
//! token there.
//!
//! [`DecisionPoint`] is the seam to the engine (the policy decision point; `Engine` implements it,
//! tests put a rule table in its place). Nothing here decides on its own: it never permits anything
//! the decision point did not permit, and a failure is never turned into a permit (fail closed).

use std::sync::Arc;

use async_trait::async_trait;
use lexecon_approvals::{Call, RequestDigest};
use lexecon_domains::Verdict;
use lexecon_policy_cache::{Decision, DecisionInput};
use lexecon_token::{Grant, Minted};
use serde_json::{Map, Value};

/// What recording a decision produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The hash of the decision's ledger entry, when known.
    pub ledger_entry_hash: Option<String>,
    /// For a permit with an audience: the signed capability token and its id and lifetime.
    pub capability_token: Option<std::sync::Arc<Minted>>,
}

/// The policy decision point as the enforcement pipeline sees it. Called on the request path: it
/// must not block.
#[async_trait]
pub trait DecisionPoint: Send + Sync + 'static {
    fn decide(&self, input: DecisionInput) -> Result<Decision, EnforceError>;

    /// [`Self::decide`], handing the request's context back for a caller that records it after
    /// deciding: as the decision saw it (after the domain plugin's `enrich`), or as given when the
    /// decision failed. The default clones it before deciding; the engine's gives it back instead.
    fn decide_keeping_context(
        &self,
        input: DecisionInput,
    ) -> (Result<Decision, EnforceError>, Map<String, Value>) {
        let context = input.context.clone();
        (self.decide(input), context)
    }

    /// The policy snapshot in force, loaded once for a request that decides several calls (an MCP
    /// batch): see [`Self::decide_pinned`]. The default pins nothing.
    fn pin(&self) -> Pinned {
        None
    }

    /// [`Self::decide_keeping_context`] on the snapshot [`Self::pin`] loaded for this request
    /// (`None`: the one in force now). The default ignores the pin.
    fn decide_pinned(
        &self,
        input: DecisionInput,
        _pinned: &Pinned,
    ) -> (Result<Decision, EnforceError>, Map<String, Value>) {
        self.decide_keeping_context(input)
    }

    /// Records a request refused before any policy decision ([`Refused`]): the ledger promises
    /// every enforcement decision, these included. An error blocks the answer as for any record
    /// (the request is refused either way). The default records nothing.
    async fn record_refusal(&self, _refused: &Refused<'_>) -> Result<(), EnforceError> {
        Ok(())
    }

    /// Records that `actor`'s break-glass session on `domain` started or ended (`text` says
    /// which, with the reason). An error blocks the request that started it. The default records
    /// nothing.
    async fn record_break_glass(
        &self,
        _actor: &str,
        _domain: &str,
        _text: &str,
    ) -> Result<(), EnforceError> {
        Ok(())
    }

    /// Records `decision` (taken on `context`) and, when it permits and a `grant` is given, mints
    /// a capability token for its audience, bound to the context and request it names. An error blocks the request (e.g. the ledger queue is
    /// full under `fail_closed`). The default records nothing.
    async fn record(
        &self,
        _decision: &Decision,
        _context: &Map<String, Value>,
        _grant: Option<Grant<'_>>,
    ) -> Result<Recorded, EnforceError> {
        Ok(Recorded::default())
    }

    /// [`Self::record`] of a decision the caller no longer needs: an implementation may record it
    /// off the request thread, and then cannot say its entry's hash (`ledger_entry_hash: None`).
    /// The capability token and the failure semantics are those of [`Self::record`].
    async fn record_owned(
        &self,
        decision: Decision,
        context: Map<String, Value>,
        grant: Option<Grant<'_>>,
    ) -> Result<Recorded, EnforceError> {
        self.record(&decision, &context, grant).await
    }

    /// Creates a pending human approval for an escalated `decision` of the request with `digest`
    /// and returns its id. The default supports no approvals (`None`): the escalation just blocks.
    async fn escalated(
        &self,
        _decision: &Decision,
        _digest: RequestDigest,
    ) -> Result<Option<String>, EnforceError> {
        Ok(None)
    }

    /// Applies the approval `approval_id` a retried request carries to its fresh `decision`
    /// (see [`lexecon_approvals::redeem`]): an escalation becomes a permit exactly once for the
    /// same actor, action, resource and digest, or a deny with the reason. The default supports no
    /// approvals and returns the decision unchanged (the escalation still blocks: fail closed).
    async fn redeem(
        &self,
        decision: Decision,
        _approval_id: &str,
        _digest: RequestDigest,
    ) -> Result<Decision, EnforceError> {
        Ok(decision)
    }
}

/// Why a request could not be enforced (no decision, no record, no approval lookup): `status` is the HTTP status to answer with (400 unknown type,
/// 404 unknown domain, 503 ledger unavailable, …) and `message` says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("decision failed ({status}): {message}")]
pub struct EnforceError {
    pub status: u16,
    pub message: String,
}

impl EnforceError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// The policy snapshot a request's calls are all decided on (see [`DecisionPoint::pin`]).
pub type Pinned = Option<Arc<lexecon_policy_cache::PolicySnapshot>>;

/// A request the enforcement point refused before any policy decision, as the ledger records it.
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    pub request_id: &'a str,
    pub domain: &'a str,
    /// The caller, when it was identified.
    pub actor: Option<&'a str>,
    /// The classified call that was refused, when classification got that far.
    pub action: Option<&'a str>,
    pub resource: Option<&'a str>,
    /// What refused it: `classify` (the request could not be classified), `smart_scope`, or
    /// `tool_pin` (an MCP tool whose definition is not the approved one).
    pub by: &'static str,
    pub reason: &'a str,
}

/// What an approval of an escalated call is bound to, so that only the very same request can redeem
/// it.
#[derive(Debug, Clone, Copy)]
pub enum Binding<'a> {
    /// The decided call (domain, actor, action, resource, context) under `method path`: the
    /// decision API, and MCP routes (the JSON-RPC id in an MCP body changes with every retry, the
    /// call itself must not).
    Call { method: &'a str, path: &'a str },
    /// The HTTP request as sent: method, path with its query, and body (plain proxied routes).
    Http {
        method: &'a str,
        path_and_query: &'a str,
        body: &'a [u8],
    },
}

impl Binding<'_> {
    /// The digest an approval for `decision` (taken on `context`) is bound to.
    pub fn digest(&self, decision: &Decision, context: &Map<String, Value>) -> RequestDigest {
        match *self {
            Binding::Call { method, path } => {
                RequestDigest::of_call(method, path, Call::of_decision(decision, context))
            }
            Binding::Http {
                method,
                path_and_query,
                body,
            } => RequestDigest::of_http(method, path_and_query, body),
        }
    }
}

/// A decision taken by [`decide`], with the context it was taken on, not yet recorded.
#[derive(Debug)]
pub struct Decided {
    pub decision: Decision,
    /// The context as the decision saw it (after the domain plugin's `enrich`): the ledger entry
    /// digests it.
    pub context: Map<String, Value>,
    /// The pending approval this escalation created (its id goes into the answer).
    pub approval_id: Option<String>,
}

impl Decided {
    pub fn is_permit(&self) -> bool {
        self.decision.decision == Verdict::Permit
    }
}

/// The first half of enforcement: decides `input` and settles an escalation. A retry that carries
/// an approval id (`approval`) redeems it, exactly once, for the same call ([`Binding`]): the
/// escalation becomes a permit, or a deny that says why. Without one, a pending approval is
/// created and named in [`Decided::approval_id`]; when the approval store refuses (full, or
/// failing), the escalation stands without one and is logged.
///
/// Fails (never permits) when no decision can be made, and when a carried approval could not be
/// looked up at all (the approval store or the ledger is unavailable): the caller answers with
/// the failure's status, as it would for a decision that failed.
pub async fn decide(
    point: &dyn DecisionPoint,
    pinned: &Pinned,
    input: DecisionInput,
    approval: Option<&str>,
    binding: Binding<'_>,
) -> Result<Decided, EnforceError> {
    decide_held(point, pinned, input, approval, binding, None).await
}

/// Why a call the policy permits must still be approved by a human, and by whom it is held
/// (`rule_id`), e.g. an MCP tool whose definition changed since it was approved.
#[derive(Debug, Clone, Copy)]
pub struct Hold<'a> {
    pub reason: &'a str,
    pub rule_id: &'a str,
}

/// [`decide`], where a `hold` turns a permit into an escalation with its reason (a deny stays a
/// deny): the escalation then creates or redeems an approval as any other does.
pub async fn decide_held(
    point: &dyn DecisionPoint,
    pinned: &Pinned,
    input: DecisionInput,
    approval: Option<&str>,
    binding: Binding<'_>,
    hold: Option<Hold<'_>>,
) -> Result<Decided, EnforceError> {
    let (decided, context) = point.decide_pinned(input, pinned);
    let mut decision = decided?;
    if let Some(hold) = hold {
        if decision.decision == Verdict::Permit {
            decision.decision = Verdict::Escalate;
            decision.requires_human_approval = true;
            decision.reasoning = hold.reason.to_owned().into();
            decision.rule_id = hold.rule_id.to_owned().into();
        }
    }
    let mut approval_id = None;
    if decision.decision == Verdict::Escalate {
        let digest = binding.digest(&decision, &context);
        match approval {
            Some(id) => {
                decision = point.redeem(decision, id, digest).await.inspect_err(
                    |failure| tracing::warn!(approval = id, error = %failure, "approval could not be redeemed; request refused"),
                )?;
            }
            None => match point.escalated(&decision, digest).await {
                Ok(id) => approval_id = id,
                // An actor over its own cap of pending approvals is told so (429) and creates
                // none: it cannot flood the queue that others escalate into.
                Err(failure) if failure.status == 429 => return Err(failure),
                Err(failure) => {
                    tracing::warn!(decision_id = %decision.decision_id, error = %failure, "escalation without an approval: the approval store refused it");
                }
            },
        }
    }
    Ok(Decided {
        decision,
        context,
        approval_id,
    })
}
