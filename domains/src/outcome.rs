//! What a decision comes to, as plain values: the [`Verdict`], the [`Finding`]s of plugin checks, and
//! the compliance side of an outcome ([`ComplianceOutcome`], [`ComplianceMapping`],
//! [`ComplianceStatus`]).
//!
//! These are the vocabulary the domain model, the plugins, the compliance table and the decision
//! pipeline share; this module owns their definitions and nothing else. It depends on no other module
//! of the crate, so the model, [`crate::plugin`] and [`crate::compliance`] can all use it without
//! importing each other. It never decides anything and never maps an outcome to controls (that is
//! [`crate::compliance`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

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
