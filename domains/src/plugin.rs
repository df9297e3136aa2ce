//! The [`DomainPlugin`] trait: what a domain contributes to a decision beyond the declarative policy.
//!
//! The decision pipeline (in `lexecon-policy-cache`) calls, in order: the registry's type check,
//! [`DomainPlugin::enrich`] (derived context), [`DomainPlugin::validate`] (domain constraints), the
//! compiled policy, [`DomainPlugin::check_template`] for each template the policy enables,
//! [`DomainPlugin::compliance`], and finally [`DomainPlugin::on_decision`]. A plugin never blocks,
//! never does I/O and never reads a clock: time comes in the [`Request`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::model::{ActionType, ActorType, ComplianceFramework, DomainConfig};
use crate::request::Request;

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Permit,
    Deny,
    Escalate,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Permit => "permit",
            Verdict::Deny => "deny",
            Verdict::Escalate => "escalate",
        }
    }
}

/// What a finding demands of the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingEffect {
    /// Permit stands, but the decision is marked for after-the-fact review (e.g. break-glass).
    Review,
    /// A human must approve before the request may proceed.
    Escalate,
    /// The request must not proceed.
    Deny,
}

/// A typed result of a plugin check: a violated domain constraint or a note for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable machine-readable code, e.g. `finance.order_value_limit`.
    pub code: String,
    /// Human-readable reason that names the limit or the missing field.
    pub reason: String,
    pub effect: FindingEffect,
}

impl Finding {
    pub fn new(code: impl Into<String>, effect: FindingEffect, reason: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            reason: reason.into(),
            effect,
        }
    }
}

/// How a decision stands against one control set of a framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplianceStatus {
    /// The decision is recorded and enforced as the control requires.
    Compliant,
    /// The control required human oversight, which the decision invoked (escalated or marked for review).
    ReviewRequired,
    /// The request would have breached the control and was blocked.
    ViolationPrevented,
}

impl ComplianceStatus {
    /// The name it serializes as.
    pub fn as_str(self) -> &'static str {
        match self {
            ComplianceStatus::Compliant => "compliant",
            ComplianceStatus::ReviewRequired => "review_required",
            ComplianceStatus::ViolationPrevented => "violation_prevented",
        }
    }
}

/// One framework's controls that a decision evidences. Ids of built-in frameworks and controls are
/// borrowed from the static table (`Cow::Borrowed`), so mapping a decision copies no strings; a pack's
/// own ids are owned. Serializes as plain strings either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceMapping {
    pub framework: Cow<'static, str>,
    pub controls: Vec<Cow<'static, str>>,
    pub status: ComplianceStatus,
}

/// What the pipeline decided, as the post-decision hook and the compliance mapping see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionOutcome<'a> {
    pub verdict: Verdict,
    pub findings: &'a [Finding],
    /// True when a `dry_run` policy permitted what it would otherwise have blocked.
    pub dry_run: bool,
}

impl DecisionOutcome<'_> {
    /// The part of this outcome a compliance mapping depends on.
    pub fn compliance_outcome(&self) -> ComplianceOutcome {
        ComplianceOutcome {
            verdict: self.verdict,
            review: self
                .findings
                .iter()
                .any(|f| f.effect == FindingEffect::Review),
            dry_run: self.dry_run,
        }
    }
}

/// What a decision's compliance mapping depends on: the verdict, whether a finding asked for
/// review, and whether a `dry_run` policy permitted what it would otherwise have blocked. Mappings
/// are data (a domain's frameworks and the controls an outcome evidences), so they are a function of
/// these three alone, and the engine computes them once per policy for each of the
/// [`ComplianceOutcome::COUNT`] combinations instead of once per decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ComplianceOutcome {
    pub verdict: Verdict,
    pub review: bool,
    pub dry_run: bool,
}

impl ComplianceOutcome {
    /// How many distinct outcomes there are (3 verdicts × review × dry run).
    pub const COUNT: usize = 12;

    /// This outcome's position in `0..COUNT`; [`ComplianceOutcome::from_index`] inverts it.
    pub fn index(self) -> usize {
        let verdict = match self.verdict {
            Verdict::Permit => 0,
            Verdict::Deny => 1,
            Verdict::Escalate => 2,
        };
        verdict * 4 + usize::from(self.review) * 2 + usize::from(self.dry_run)
    }

    /// The outcome at position `index` (taken modulo [`ComplianceOutcome::COUNT`]).
    pub fn from_index(index: usize) -> Self {
        let index = index % Self::COUNT;
        Self {
            verdict: match index / 4 {
                0 => Verdict::Permit,
                1 => Verdict::Deny,
                _ => Verdict::Escalate,
            },
            review: index & 2 != 0,
            dry_run: index & 1 != 0,
        }
    }
}

/// A domain's behaviour. Implementations are `Send + Sync` and shared by all request threads;
/// interior state (sliding windows) must be bounded and lock-light.
pub trait DomainPlugin: Send + Sync + std::fmt::Debug {
    /// The domain's declared types, frameworks, templates and constraints.
    fn config(&self) -> &DomainConfig;

    /// Domain constraints that hold whatever the policy says (e.g. PHI needs consent).
    fn validate(&self, _request: &Request) -> Vec<Finding> {
        Vec::new()
    }

    /// Adds derived context (e.g. `order_value = quantity * limit_price`) before the policy runs.
    fn enrich(&self, _request: &mut Request) {}

    /// Runs the Rust part of template `name` with its (defaults-filled) `params`. Templates that are
    /// data rules only return `None`. Unknown names return `None`; validation rejects them earlier.
    fn check_template(
        &self,
        _name: &str,
        _params: &serde_json::Map<String, serde_json::Value>,
        _request: &Request,
    ) -> Option<Finding> {
        None
    }

    /// Whether template `name`'s check depends on state or time, so its decisions must not be cached.
    fn template_is_stateful(&self, _name: &str) -> bool {
        false
    }

    /// Whether [`DomainPlugin::validate`] depends on the request time (so decisions must not be cached).
    fn validate_is_time_dependent(&self) -> bool {
        false
    }

    /// The controls a decision with this outcome evidences, one entry per framework of the domain.
    /// Called once per outcome when a policy is compiled (see [`ComplianceOutcome`]), never per
    /// decision.
    fn compliance(&self, outcome: ComplianceOutcome) -> Vec<ComplianceMapping> {
        crate::compliance::default_mappings(self.config(), outcome)
    }

    /// Called after every decision with the final outcome (e.g. to count a permitted order's notional
    /// in a window). Must not block.
    fn on_decision(&self, _request: &Request, _outcome: &DecisionOutcome<'_>) {}

    /// The declared actor type an un-prefixed legacy actor name stands for (`model` → `act_ai_agent`).
    /// Only the `ai` domain has legacy names; others return `None`.
    fn legacy_actor_type(&self, _name: &str) -> Option<&str> {
        None
    }

    /// The declared action type an un-prefixed legacy action name stands for (`search` → `axn_search`).
    fn legacy_action_type(&self, _name: &str) -> Option<&str> {
        None
    }

    /// The framework `id` with its controls: the built-in table, or a pack's inline definition.
    fn framework(&self, id: &str) -> Option<ComplianceFramework> {
        crate::compliance::framework(id)
    }

    /// The declared actor type of `type_id`, following a legacy name if the domain has one.
    fn resolve_actor_type(&self, type_id: &str) -> Option<&ActorType> {
        let config = self.config();
        config.actor_type(type_id).or_else(|| {
            self.legacy_actor_type(type_id)
                .and_then(|id| config.actor_type(id))
        })
    }

    /// The declared action type of `type_id`, following a legacy name if the domain has one.
    fn resolve_action_type(&self, type_id: &str) -> Option<&ActionType> {
        let config = self.config();
        config.action_type(type_id).or_else(|| {
            self.legacy_action_type(type_id)
                .and_then(|id| config.action_type(id))
        })
    }
}

/// Reads a numeric template parameter, falling back to `default` when absent. A present but
/// non-numeric or negative value is an error message naming the parameter (callers fail closed).
pub fn number_param(
    params: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    default: f64,
) -> Result<f64, String> {
    match params.get(name) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(v) => match v.as_f64() {
            Some(n) if n.is_finite() && n >= 0.0 => Ok(n),
            _ => Err(format!(
                "template parameter {name} must be a non-negative number, got {v}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compliance_outcomes_are_numbered_one_to_one() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..ComplianceOutcome::COUNT {
            let o = ComplianceOutcome::from_index(i);
            assert_eq!(o.index(), i);
            assert!(seen.insert(o), "{o:?} twice");
        }
        assert_eq!(seen.len(), 3 * 2 * 2);
    }

    #[test]
    fn review_findings_set_the_review_flag_of_the_compliance_outcome() {
        let review = [Finding::new("x", FindingEffect::Review, "r")];
        let deny = [Finding::new("y", FindingEffect::Deny, "d")];
        let of = |findings: &[Finding]| {
            DecisionOutcome {
                verdict: Verdict::Permit,
                findings,
                dry_run: true,
            }
            .compliance_outcome()
        };
        assert!(of(&review).review);
        assert!(!of(&deny).review);
        assert!(of(&[]).dry_run);
    }

    #[test]
    fn verdicts_and_statuses_name_themselves_as_they_serialize() {
        for v in [Verdict::Permit, Verdict::Deny, Verdict::Escalate] {
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.as_str())
            );
        }
        for s in [
            ComplianceStatus::Compliant,
            ComplianceStatus::ReviewRequired,
            ComplianceStatus::ViolationPrevented,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}
