//! The policy document: one per domain, in YAML or JSON.
//!
//! ```yaml
//! id: trading-desk
//! domain: finance
//! mode: strict
//! templates: [{name: prevent_flash_crash, params: {max_notional_per_minute: 10000000}}]
//! rules:
//!   - id: algos-may-trade
//!     effect: permit
//!     actor: "act_trading_algo:*"
//!     action: axn_place_order
//!     resource: "res_security:*"
//!     when: [{field: context.order_value, op: le, value: 5000000}]
//!     reason: Momentum algos may place orders up to 5M
//! ```

use lexecon_domains::DomainId;
use serde::{Deserialize, Serialize};

/// How a policy decides when no rule matches, and whether it enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Deny unless a rule permits.
    #[default]
    Strict,
    /// Permit unless a rule forbids or escalates.
    Permissive,
    /// Decide as `strict`, report what would have happened, but always permit.
    DryRun,
}

/// What a matching rule asks for. Combination: forbid > escalate > permit > the mode's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Permit,
    Forbid,
    Escalate,
}

/// Comparison operators of a `when` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Exists,
    Matches,
}

/// One condition: `field` is a dotted path into the request (`context.order_value`, `actor`,
/// `actor.type`, `actor.instance`, `action`, `resource`, `resource.type`, `resource.instance`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    /// Required by every operator but `exists` (where it may be `true`/`false`, default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// One rule. `actor`, `action` and `resource` are globs over the full reference (`act_trading_algo:*`);
/// absent means "any".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub effect: Effect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A template the policy enables, with parameters overriding the template's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateUse {
    pub name: String,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// A policy document for one domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    pub id: String,
    pub domain: DomainId,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateUse>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}
