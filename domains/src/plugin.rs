//! The [`DomainPlugin`] trait: what a domain contributes to a decision beyond the declarative policy.
//!
//! The decision pipeline (in `lexecon-policy-cache`) calls, in order: the registry's type check,
//! [`DomainPlugin::enrich`] (derived context), [`DomainPlugin::validate`] (domain constraints), the
//! compiled policy, [`DomainPlugin::check_template`] for each template the policy enables,
//! [`DomainPlugin::compliance`], and finally [`DomainPlugin::on_decision`]. A plugin never blocks,
//! never does I/O and never reads a clock: time comes in the [`Request`]. The values a plugin returns
//! and receives (verdicts, findings, compliance mappings) are [`crate::outcome`]'s.

use crate::model::{ActionType, ActorType, ComplianceFramework, DomainConfig};
use crate::outcome::{ComplianceMapping, ComplianceOutcome, DecisionOutcome, Finding};
use crate::request::Request;

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
