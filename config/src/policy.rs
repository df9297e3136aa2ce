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
//!
//! This module owns the document's shape (plain serde, unknown fields rejected) and its canonical
//! form and version hash. Parsing with located errors is in [`crate::policy_load`], validation in
//! [`crate::policy_validate`]; nothing here evaluates a rule.

use lexecon_domains::{DomainId, Provenance};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canonical::write_serialize;

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

/// One condition: `field` is a dotted path into the request, one of [`ConditionField`]
/// (`context.order_value`, `actor`, `actor.type`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    /// Required by every operator but `exists` (where it may be `true`/`false`, default `true`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict_option"
    )]
    pub value: Option<serde_json::Value>,
}

/// Values inside a policy refuse duplicate keys however the document is read (a typed parse of a
/// JSON policy included): parsers disagree on which of two equal keys wins.
fn strict_option<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    Option::<crate::strict_value::StrictValue>::deserialize(deserializer).map(|v| v.map(|v| v.0))
}

fn strict_map<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<serde_json::Map<String, serde_json::Value>, D::Error> {
    match crate::strict_value::StrictValue::deserialize(deserializer)?.0 {
        serde_json::Value::Object(map) => Ok(map),
        serde_json::Value::Null => Ok(serde_json::Map::new()),
        other => Err(serde::de::Error::custom(format!(
            "expected a mapping of parameters, found {}",
            crate::policy_load::json_type_name(&other)
        ))),
    }
}

/// A part of the request a condition reads by a fixed name. With `context.<key>[.<key>…]` these are
/// the only condition fields; validation, the 1.x conversion and the compiler in
/// `lexecon-policy-cache` all take the list from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestField {
    Actor,
    ActorType,
    ActorInstance,
    Action,
    ActionType,
    ActionInstance,
    Resource,
    ResourceType,
    ResourceInstance,
    Domain,
}

impl RequestField {
    /// Every request field, in the order error messages list them.
    pub const ALL: [RequestField; 10] = [
        RequestField::Actor,
        RequestField::ActorType,
        RequestField::ActorInstance,
        RequestField::Action,
        RequestField::ActionType,
        RequestField::ActionInstance,
        RequestField::Resource,
        RequestField::ResourceType,
        RequestField::ResourceInstance,
        RequestField::Domain,
    ];

    /// The field as written in a condition (`actor.type`).
    pub fn path(self) -> &'static str {
        match self {
            RequestField::Actor => "actor",
            RequestField::ActorType => "actor.type",
            RequestField::ActorInstance => "actor.instance",
            RequestField::Action => "action",
            RequestField::ActionType => "action.type",
            RequestField::ActionInstance => "action.instance",
            RequestField::Resource => "resource",
            RequestField::ResourceType => "resource.type",
            RequestField::ResourceInstance => "resource.instance",
            RequestField::Domain => "domain",
        }
    }

    /// The request field written `path`, if it is one.
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.path() == path)
    }
}

/// What a condition's `field` names: a [`RequestField`], a key path into the request context, or
/// the provenance of a context key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionField<'a> {
    Request(RequestField),
    /// `context.order.value` as `order.value`: one or more non-empty keys joined by `.`.
    Context(&'a str),
    /// `provenance.patient_consent` as `patient_consent`: where the top-level context key comes
    /// from, one of [`Provenance`] as a string (`request`, `credential`, `authority`, `plugin`).
    Provenance(&'a str),
}

impl<'a> ConditionField<'a> {
    /// The field `path` names, or `None` for an unknown field (see [`ConditionField::unknown`]).
    pub fn parse(path: &'a str) -> Option<Self> {
        if let Some(keys) = path.strip_prefix("context.") {
            return keys
                .split('.')
                .all(|key| !key.is_empty())
                .then_some(ConditionField::Context(keys));
        }
        if let Some(key) = path.strip_prefix("provenance.") {
            return (!key.is_empty() && !key.contains('.'))
                .then_some(ConditionField::Provenance(key));
        }
        RequestField::from_path(path).map(ConditionField::Request)
    }

    /// The reason an unknown field `path` is rejected, listing the fields there are.
    pub fn unknown(path: &str) -> String {
        let fields: Vec<&str> = RequestField::ALL.iter().map(|f| f.path()).collect();
        format!(
            "unknown field {path:?}: expected one of {}, context.<key>[.<key>…], provenance.<key>",
            fields.join(", ")
        )
    }

    /// What is wrong with comparing a provenance with `op` and `value`, as (the part at fault,
    /// why): it compares with `eq`, `ne`, `in`, `not_in` (against provenance names) or `exists`.
    /// `None` for any other field.
    pub fn provenance_problem(
        &self,
        op: Op,
        value: Option<&serde_json::Value>,
    ) -> Option<(&'static str, String)> {
        let ConditionField::Provenance(_) = self else {
            return None;
        };
        let names = || {
            Provenance::ALL
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let check = |v: &serde_json::Value| match v.as_str() {
            Some(name) if Provenance::parse(name).is_some() => None,
            _ => Some((
                "value",
                format!("{v} is not a provenance: expected one of {}", names()),
            )),
        };
        match (op, value) {
            (Op::Exists, _) => None,
            (Op::Eq | Op::Ne, Some(v)) => check(v),
            (Op::In | Op::NotIn, Some(serde_json::Value::Array(items))) => {
                items.iter().find_map(check)
            }
            // A missing value or a non-list for in/not_in: the operator's own check says so.
            (Op::Eq | Op::Ne | Op::In | Op::NotIn, _) => None,
            _ => Some((
                "op",
                format!(
                    "a provenance compares with eq, ne, in, not_in or exists, not {}",
                    op.as_str()
                ),
            )),
        }
    }
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
    #[serde(
        default,
        skip_serializing_if = "serde_json::Map::is_empty",
        deserialize_with = "strict_map"
    )]
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

impl PolicyDocument {
    /// The canonical bytes of this document: its JSON form with keys sorted and no whitespace. Stable
    /// across source formats: the same document read from YAML or JSON gives the same bytes.
    pub fn canonical_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 256 * self.rules.len());
        // INVARIANT: a PolicyDocument serializes to JSON without error (all map keys are strings, no
        // custom serializer can fail); `null` is unreachable and would still hash stably.
        if write_serialize(self, &mut out).is_err() {
            out.clear();
            out.extend_from_slice(b"null");
        }
        out
    }

    /// Lower-case hex sha256 of [`PolicyDocument::canonical_json`]: the `policy_version_hash` every
    /// decision reports.
    pub fn policy_version_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json()))
    }

    /// Every condition field the rules read (`context.order_value`, `actor.instance`, …): with the
    /// actor, action and resource, the inputs a decision cache must key on.
    pub fn condition_fields(&self) -> std::collections::BTreeSet<&str> {
        self.rules
            .iter()
            .flat_map(|r| r.when.iter().map(|c| c.field.as_str()))
            .collect()
    }

    /// The rule with this id, if any.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

impl Condition {
    /// For `exists`: whether the field must be present (`true`, the default) or absent (`false`).
    /// `None` for other operators or a non-boolean value (which validation rejects).
    pub fn exists_expected(&self) -> Option<bool> {
        match (self.op, &self.value) {
            (Op::Exists, None) => Some(true),
            (Op::Exists, Some(serde_json::Value::Bool(b))) => Some(*b),
            _ => None,
        }
    }
}

impl Op {
    /// The operator as written in a policy (`not_in`).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Exists => "exists",
            Op::Matches => "matches",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ConditionField, RequestField};
    use crate::policy_load::parse_policy;

    #[test]
    fn every_request_field_parses_from_its_path_and_context_paths_need_keys() {
        for f in RequestField::ALL {
            assert_eq!(
                ConditionField::parse(f.path()),
                Some(ConditionField::Request(f))
            );
        }
        assert_eq!(
            ConditionField::parse("context.order.value"),
            Some(ConditionField::Context("order.value"))
        );
        assert_eq!(
            ConditionField::parse("provenance.patient_consent"),
            Some(ConditionField::Provenance("patient_consent"))
        );
        for bad in [
            "context.",
            "context.a..b",
            "context.a.",
            "context",
            "ctx.a",
            "provenance",
            "provenance.",
            "provenance.a.b",
            "actor.kind",
            "",
        ] {
            assert_eq!(ConditionField::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            ConditionField::unknown("x"),
            "unknown field \"x\": expected one of actor, actor.type, actor.instance, action, \
             action.type, action.instance, resource, resource.type, resource.instance, domain, \
             context.<key>[.<key>…], provenance.<key>"
        );
    }

    #[test]
    fn condition_fields_lists_each_field_once() {
        let doc = parse_policy(
            "p.yaml",
            "id: x\ndomain: ai\nrules:\n  - {id: a, effect: permit, when: [{field: context.b, op: exists}, {field: actor.instance, op: eq, value: z}]}\n  - {id: b, effect: forbid, when: [{field: context.b, op: exists, value: false}]}\n",
        )
        .unwrap();
        let fields: Vec<&str> = doc.condition_fields().into_iter().collect();
        assert_eq!(fields, ["actor.instance", "context.b"]);
        assert_eq!(doc.rules[0].when[0].exists_expected(), Some(true));
        assert_eq!(doc.rules[1].when[0].exists_expected(), Some(false));
        assert_eq!(doc.rules[0].when[1].exists_expected(), None);
    }
}
