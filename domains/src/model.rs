//! The data a domain declares: actor, action and resource types, risk levels, sensitivity,
//! compliance frameworks, risk models and policy templates. Plain serde data: built-in plugins build
//! it in Rust, data-only packs load it from YAML, and the CLI and API print it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ident::DomainId;

/// Who an actor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorCategory {
    Human,
    Ai,
    System,
    Robot,
}

/// What an action does to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionCategory {
    Read,
    Write,
    Execute,
    Delete,
    Transmit,
}

/// How sensitive a resource is, least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Public,
    Internal,
    Confidential,
    Secret,
}

/// Risk level 1 (minimal) ..= 5 (critical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct RiskLevel(u8);

impl RiskLevel {
    pub const MIN: RiskLevel = RiskLevel(1);
    pub const MAX: RiskLevel = RiskLevel(5);

    pub fn new(level: u8) -> Result<Self, DomainError> {
        if (1..=5).contains(&level) {
            Ok(Self(level))
        } else {
            Err(DomainError::InvalidRiskLevel { level })
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for RiskLevel {
    type Error = DomainError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<RiskLevel> for u8 {
    fn from(value: RiskLevel) -> Self {
        value.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorType {
    /// `act_…`, unique within the domain.
    pub type_id: String,
    pub category: ActorCategory,
    pub label: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionType {
    /// `axn_…`, unique within the domain.
    pub type_id: String,
    pub category: ActionCategory,
    pub label: String,
    #[serde(default)]
    pub description: String,
    pub risk_level: RiskLevel,
    #[serde(default)]
    pub requires_human_approval: bool,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceType {
    /// `res_…`, unique within the domain.
    pub type_id: String,
    pub category: String,
    pub label: String,
    #[serde(default)]
    pub description: String,
    pub sensitivity: Sensitivity,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// One control of a framework, with the real reference (`Art. 12`, `CC6.1`, `164.312(b)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRef {
    pub id: String,
    pub title: String,
    /// Which decisions evidence this control (default: every recorded decision).
    #[serde(default)]
    pub evidenced_when: EvidencedWhen,
}

/// Which decisions evidence a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidencedWhen {
    /// Every recorded decision (record-keeping, access enforcement).
    #[default]
    Always,
    /// Decisions that invoked human oversight: escalated, or permitted but marked for review.
    Oversight,
    /// Decisions that blocked the request.
    Blocked,
}

/// A compliance framework a domain evidences, and the controls a recorded decision evidences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceFramework {
    /// `EU_AI_ACT`, `MIFID_II`, `HIPAA`, …
    pub id: String,
    pub name: String,
    pub controls: Vec<ControlRef>,
}

/// How a domain scores risk: named factors and their weights (informational; shown by `domains info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskModel {
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub factors: BTreeMap<String, f64>,
}

/// A parameter of a policy template, with its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateParam {
    #[serde(default)]
    pub description: String,
    pub default: serde_json::Value,
}

/// A named, parameterised building block a policy enables with `templates: [{name, params}]`.
///
/// A template contributes either plugin checks implemented in Rust (`DomainPlugin::check_template`)
/// or data rules (`rules`, written in the policy rule format and parsed by `lexecon-config`), or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTemplate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub params: BTreeMap<String, TemplateParam>,
    /// Rules in the policy document's rule format; `{{param}}` in a string value is replaced by the
    /// parameter's value when the template is instantiated.
    #[serde(default)]
    pub rules: Vec<serde_json::Value>,
    /// When set, the policy's no-match default becomes this verdict whatever its mode
    /// (`deny_by_default` sets `deny`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<crate::outcome::Verdict>,
}

/// Everything a domain declares about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    pub domain: DomainId,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    pub actor_types: Vec<ActorType>,
    pub action_types: Vec<ActionType>,
    pub resource_types: Vec<ResourceType>,
    /// Framework ids (`MIFID_II`); their controls come from [`crate::compliance`] or the pack.
    pub compliance_frameworks: Vec<String>,
    #[serde(default)]
    pub risk_models: Vec<RiskModel>,
    #[serde(default)]
    pub policy_templates: Vec<PolicyTemplate>,
    /// Free-form domain constraints, shown to users (`max_order_value: 10000000`).
    #[serde(default)]
    pub constraints: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl DomainConfig {
    pub fn actor_type(&self, type_id: &str) -> Option<&ActorType> {
        self.actor_types.iter().find(|t| t.type_id == type_id)
    }

    pub fn action_type(&self, type_id: &str) -> Option<&ActionType> {
        self.action_types.iter().find(|t| t.type_id == type_id)
    }

    pub fn resource_type(&self, type_id: &str) -> Option<&ResourceType> {
        self.resource_types.iter().find(|t| t.type_id == type_id)
    }

    pub fn template(&self, name: &str) -> Option<&PolicyTemplate> {
        self.policy_templates.iter().find(|t| t.name == name)
    }
}
