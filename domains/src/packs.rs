//! Data-only domain packs: a domain declared in YAML (types, frameworks, templates as data rules),
//! served by the generic [`PackPlugin`]. The built-in packs (defense, automotive, supply_chain, energy,
//! general) are embedded at compile time; users add their own through configuration.
//!
//! Loading validates the whole pack and reports every problem at once. A pack never runs code: its
//! templates are rules in the policy rule format, parsed and compiled by `lexecon-config`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::compliance;
use crate::error::DomainError;
use crate::ident::DomainId;
use crate::model::{
    ActionType, ActorType, ComplianceFramework, DomainConfig, PolicyTemplate, ResourceType,
    RiskModel,
};
use crate::outcome::{ComplianceMapping, ComplianceOutcome};
use crate::placeholder::{self, Piece};
use crate::plugin::DomainPlugin;

/// The built-in packs: (source name, YAML).
pub const BUILTIN_PACKS: &[(&str, &str)] = &[
    ("packs/defense.yaml", include_str!("../packs/defense.yaml")),
    (
        "packs/automotive.yaml",
        include_str!("../packs/automotive.yaml"),
    ),
    (
        "packs/supply_chain.yaml",
        include_str!("../packs/supply_chain.yaml"),
    ),
    ("packs/energy.yaml", include_str!("../packs/energy.yaml")),
    ("packs/general.yaml", include_str!("../packs/general.yaml")),
];

const EFFECTS: &[&str] = &["permit", "forbid", "escalate"];
const OPS: &[&str] = &[
    "eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "exists", "matches",
];
const RULE_KEYS: &[&str] = &[
    "id", "effect", "actor", "action", "resource", "when", "reason",
];

/// A pack file: a [`DomainConfig`] plus frameworks defined inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackDocument {
    domain: DomainId,
    display_name: String,
    #[serde(default)]
    description: String,
    actor_types: Vec<ActorType>,
    action_types: Vec<ActionType>,
    resource_types: Vec<ResourceType>,
    compliance_frameworks: Vec<String>,
    /// Frameworks the built-in table does not know, with their controls.
    #[serde(default)]
    frameworks: Vec<ComplianceFramework>,
    #[serde(default)]
    risk_models: Vec<RiskModel>,
    #[serde(default)]
    policy_templates: Vec<PolicyTemplate>,
    #[serde(default)]
    constraints: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
}

/// A domain served from data: its config and inline frameworks; templates are data rules only.
#[derive(Debug, Clone)]
pub struct PackPlugin {
    config: DomainConfig,
    frameworks: Vec<ComplianceFramework>,
    source_name: String,
}

impl PackPlugin {
    /// Parses and validates a pack. `source_name` (a file name) is used in errors.
    pub fn from_yaml(source_name: &str, yaml: &str) -> Result<Self, DomainError> {
        let invalid = |reason: String| DomainError::InvalidPack {
            source_name: source_name.to_string(),
            reason,
        };
        let doc: PackDocument = serde_norway::from_str(yaml).map_err(|e| invalid(e.to_string()))?;
        let problems = validate(&doc);
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        Ok(Self {
            config: DomainConfig {
                domain: doc.domain,
                display_name: doc.display_name,
                description: doc.description,
                actor_types: doc.actor_types,
                action_types: doc.action_types,
                resource_types: doc.resource_types,
                compliance_frameworks: doc.compliance_frameworks,
                risk_models: doc.risk_models,
                policy_templates: doc.policy_templates,
                constraints: doc.constraints,
                metadata: doc.metadata,
            },
            frameworks: doc.frameworks,
            source_name: source_name.to_string(),
        })
    }

    /// The file (or name) the pack was loaded from.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Frameworks the pack defines inline.
    pub fn inline_frameworks(&self) -> &[ComplianceFramework] {
        &self.frameworks
    }
}

impl DomainPlugin for PackPlugin {
    fn config(&self) -> &DomainConfig {
        &self.config
    }

    fn framework(&self, id: &str) -> Option<ComplianceFramework> {
        self.frameworks
            .iter()
            .find(|f| f.id == id)
            .cloned()
            .or_else(|| compliance::framework(id))
    }

    fn compliance(&self, outcome: ComplianceOutcome) -> Vec<ComplianceMapping> {
        if self.frameworks.is_empty() {
            return compliance::default_mappings(&self.config, outcome);
        }
        let status = compliance::status_of(outcome);
        self.config
            .compliance_frameworks
            .iter()
            .map(|id| ComplianceMapping {
                framework: id.clone().into(),
                controls: self
                    .framework(id)
                    .map(|f| {
                        compliance::evidenced_controls(&f, outcome)
                            .into_iter()
                            .map(Cow::Owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                status,
            })
            .collect()
    }
}

fn validate(doc: &PackDocument) -> Vec<String> {
    let mut problems = Vec::new();
    check_ids(
        "actor_types",
        "act_",
        doc.actor_types.iter().map(|t| t.type_id.as_str()),
        &mut problems,
    );
    check_ids(
        "action_types",
        "axn_",
        doc.action_types.iter().map(|t| t.type_id.as_str()),
        &mut problems,
    );
    check_ids(
        "resource_types",
        "res_",
        doc.resource_types.iter().map(|t| t.type_id.as_str()),
        &mut problems,
    );
    if doc.actor_types.is_empty() || doc.action_types.is_empty() {
        problems.push("a pack needs at least one actor type and one action type".into());
    }

    let mut inline = BTreeSet::new();
    for (i, f) in doc.frameworks.iter().enumerate() {
        if !inline.insert(f.id.as_str()) {
            problems.push(format!("frameworks[{i}]: duplicate framework id {}", f.id));
        }
        if f.controls.is_empty() {
            problems.push(format!("frameworks[{i}] ({}): no controls", f.id));
        }
    }
    for (i, id) in doc.compliance_frameworks.iter().enumerate() {
        if !compliance::is_known_framework(id) && !inline.contains(id.as_str()) {
            problems.push(format!(
                "compliance_frameworks[{i}]: unknown framework {id}; define it under `frameworks` or use one of {}",
                compliance::framework_ids().collect::<Vec<_>>().join(", ")
            ));
        }
    }

    let declared: BTreeSet<&str> = doc
        .actor_types
        .iter()
        .map(|t| t.type_id.as_str())
        .chain(doc.action_types.iter().map(|t| t.type_id.as_str()))
        .chain(doc.resource_types.iter().map(|t| t.type_id.as_str()))
        .collect();
    let mut names = BTreeSet::new();
    for (i, t) in doc.policy_templates.iter().enumerate() {
        let at = format!("policy_templates[{i}] ({})", t.name);
        if t.name.is_empty() {
            problems.push(format!("{at}: empty name"));
        }
        if !names.insert(t.name.as_str()) {
            problems.push(format!("{at}: duplicate template name"));
        }
        if t.rules.is_empty() && t.fallback.is_none() {
            problems.push(format!(
                "{at}: a pack template must carry its rules as data (`rules`) or a `fallback`"
            ));
        }
        for (j, rule) in t.rules.iter().enumerate() {
            check_rule(
                &format!("{at}.rules[{j}]"),
                rule,
                t,
                &declared,
                &mut problems,
            );
        }
    }
    problems
}

fn check_ids<'a>(
    list: &str,
    prefix: &str,
    ids: impl Iterator<Item = &'a str>,
    problems: &mut Vec<String>,
) {
    let mut seen = BTreeSet::new();
    for (i, id) in ids.enumerate() {
        if !id.starts_with(prefix) || id.len() == prefix.len() {
            problems.push(format!(
                "{list}[{i}]: type id {id:?} must start with {prefix} and name the type"
            ));
        } else if !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            problems.push(format!(
                "{list}[{i}]: type id {id:?} may only use a-z, 0-9 and _"
            ));
        }
        if !seen.insert(id) {
            problems.push(format!("{list}[{i}]: duplicate type id {id}"));
        }
    }
}

fn check_rule(
    at: &str,
    rule: &serde_json::Value,
    template: &PolicyTemplate,
    declared: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) {
    let Some(obj) = rule.as_object() else {
        problems.push(format!("{at}: a rule must be a mapping"));
        return;
    };
    for key in obj.keys() {
        if !RULE_KEYS.contains(&key.as_str()) {
            problems.push(format!(
                "{at}.{key}: unknown rule field (expected one of {})",
                RULE_KEYS.join(", ")
            ));
        }
    }
    if obj
        .get("id")
        .and_then(|v| v.as_str())
        .is_none_or(str::is_empty)
    {
        problems.push(format!("{at}.id: a rule needs a non-empty string id"));
    }
    match obj.get("effect").and_then(|v| v.as_str()) {
        Some(e) if EFFECTS.contains(&e) => {}
        other => problems.push(format!(
            "{at}.effect: expected permit, forbid or escalate, got {other:?}"
        )),
    }
    for key in ["actor", "action", "resource", "reason"] {
        match obj.get(key) {
            None => {}
            Some(serde_json::Value::String(s)) => {
                check_placeholders(&format!("{at}.{key}"), s, template, problems);
                if key != "reason" {
                    check_pattern_type(&format!("{at}.{key}"), s, declared, problems);
                }
            }
            Some(_) => problems.push(format!("{at}.{key}: must be a string")),
        }
    }
    match obj.get("when") {
        None => {}
        Some(serde_json::Value::Array(conds)) => {
            for (k, cond) in conds.iter().enumerate() {
                check_condition(&format!("{at}.when[{k}]"), cond, template, problems);
            }
        }
        Some(_) => problems.push(format!("{at}.when: must be a list of conditions")),
    }
}

fn check_condition(
    at: &str,
    cond: &serde_json::Value,
    template: &PolicyTemplate,
    problems: &mut Vec<String>,
) {
    let Some(obj) = cond.as_object() else {
        problems.push(format!(
            "{at}: a condition must be a mapping {{field, op, value}}"
        ));
        return;
    };
    for key in obj.keys() {
        if !["field", "op", "value"].contains(&key.as_str()) {
            problems.push(format!("{at}.{key}: unknown condition field"));
        }
    }
    if obj
        .get("field")
        .and_then(|v| v.as_str())
        .is_none_or(str::is_empty)
    {
        problems.push(format!("{at}.field: a condition needs a field path"));
    }
    let op = obj.get("op").and_then(|v| v.as_str());
    match op {
        Some(o) if OPS.contains(&o) => {}
        other => problems.push(format!(
            "{at}.op: expected one of {}, got {other:?}",
            OPS.join(", ")
        )),
    }
    if op != Some("exists") && !obj.contains_key("value") {
        problems.push(format!("{at}.value: required by op {op:?}"));
    }
    if let Some(serde_json::Value::String(s)) = obj.get("value") {
        check_placeholders(&format!("{at}.value"), s, template, problems);
    }
}

/// `{{param}}` placeholders must name a declared parameter of the template and be closed. Reads the
/// string as substitution does ([`placeholder::whole_placeholder`] first, then the pieces).
fn check_placeholders(at: &str, s: &str, template: &PolicyTemplate, problems: &mut Vec<String>) {
    let unknown = |name: &str| {
        (!template.params.contains_key(name)).then(|| {
            format!(
                "{at}: placeholder {{{{{name}}}}} is not a parameter of template {}",
                template.name
            )
        })
    };
    if let Some(name) = placeholder::whole_placeholder(s) {
        problems.extend(unknown(name));
        return;
    }
    for piece in placeholder::pieces(s) {
        match piece {
            Piece::Text(_) => {}
            Piece::Param(name) => problems.extend(unknown(name)),
            Piece::Unterminated(_) => {
                let unterminated = DomainError::UnterminatedPlaceholder {
                    path: String::new(),
                    text: s.to_owned(),
                };
                problems.push(format!("{at}: {unterminated}"));
            }
        }
    }
}

/// A literal type part (before `:`) of an actor/action/resource glob must be declared by the pack.
fn check_pattern_type(
    at: &str,
    pattern: &str,
    declared: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) {
    let type_part = pattern.split(':').next().unwrap_or(pattern);
    let literal = !type_part
        .chars()
        .any(|c| matches!(c, '*' | '?' | '[' | ']' | '{' | '}'));
    if literal && !declared.contains(type_part) {
        problems.push(format!(
            "{at}: type {type_part} is not declared by this pack"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
domain: logistics
display_name: Logistics
actor_types:
  - {type_id: act_dispatcher, category: human, label: Dispatcher}
action_types:
  - {type_id: axn_route_truck, category: execute, label: Route truck, risk_level: 2}
resource_types:
  - {type_id: res_truck, category: vehicle, label: Truck, sensitivity: internal}
compliance_frameworks: [SOC2, FLEET_SAFETY]
frameworks:
  - id: FLEET_SAFETY
    name: Internal fleet safety standard
    controls: [{id: FS-1, title: Dispatch log}, {id: FS-2, title: Supervisor sign-off, evidenced_when: oversight}]
policy_templates:
  - name: night_routing_review
    params: {start_hour: {default: 22}}
    rules:
      - id: night-routes-escalate
        effect: escalate
        action: axn_route_truck
        when: [{field: context.hour, op: ge, value: "{{start_hour}}"}]
        reason: Night routing needs a supervisor
"#;

    #[test]
    fn valid_pack_loads_with_inline_framework() {
        let p = PackPlugin::from_yaml("logistics.yaml", MINIMAL).unwrap();
        assert_eq!(p.config().domain.as_str(), "logistics");
        assert_eq!(p.framework("FLEET_SAFETY").unwrap().controls.len(), 2);
        assert!(p.framework("SOC2").is_some());
        assert_eq!(
            p.config()
                .template("night_routing_review")
                .unwrap()
                .rules
                .len(),
            1
        );
    }

    #[test]
    fn pack_compliance_maps_inline_controls_by_outcome() {
        use crate::outcome::{ComplianceStatus, Verdict};
        let p = PackPlugin::from_yaml("logistics.yaml", MINIMAL).unwrap();
        let outcome = |verdict| ComplianceOutcome {
            verdict,
            review: false,
            dry_run: false,
        };
        let permit = p.compliance(outcome(Verdict::Permit));
        assert_eq!(permit[0].framework, "SOC2");
        assert_eq!(permit[1].framework, "FLEET_SAFETY");
        assert_eq!(permit[1].controls, vec!["FS-1".to_string()]);
        let escalate = p.compliance(outcome(Verdict::Escalate));
        assert_eq!(
            escalate[1].controls,
            vec!["FS-1".to_string(), "FS-2".to_string()]
        );
        assert_eq!(escalate[1].status, ComplianceStatus::ReviewRequired);
    }

    #[test]
    fn pack_with_duplicate_type_id_is_rejected_naming_it() {
        let yaml = MINIMAL.replace(
            "  - {type_id: act_dispatcher, category: human, label: Dispatcher}",
            "  - {type_id: act_dispatcher, category: human, label: Dispatcher}\n  - {type_id: act_dispatcher, category: system, label: Bot}",
        );
        let err = PackPlugin::from_yaml("logistics.yaml", &yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("logistics.yaml"), "{err}");
        assert!(err.contains("duplicate type id act_dispatcher"), "{err}");
    }

    #[test]
    fn pack_problems_are_all_reported_together() {
        let yaml = MINIMAL
            .replace("type_id: act_dispatcher", "type_id: dispatcher")
            .replace("[SOC2, FLEET_SAFETY]", "[SOC2, FLEET_SAFETY, MADE_UP]")
            .replace("effect: escalate", "effect: maybe")
            .replace("op: ge", "op: approx")
            .replace("{{start_hour}}", "{{end_hour}}");
        let err = PackPlugin::from_yaml("l.yaml", &yaml)
            .unwrap_err()
            .to_string();
        for needle in [
            "must start with act_",
            "unknown framework MADE_UP",
            "rules[0].effect",
            "when[0].op",
            "{{end_hour}}",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
    }

    #[test]
    fn pack_template_with_unclosed_placeholder_is_rejected() {
        let yaml = MINIMAL.replace(
            "reason: Night routing needs a supervisor",
            "reason: Night routing after {{start_hour needs a supervisor",
        );
        let err = PackPlugin::from_yaml("l.yaml", &yaml)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rules[0].reason: unterminated placeholder"),
            "{err}"
        );
    }

    #[test]
    fn pack_template_without_rules_or_with_undeclared_type_is_rejected() {
        let head = MINIMAL.split("    rules:\n").next().unwrap();
        let no_rules = format!("{head}    rules: []\n");
        let err = PackPlugin::from_yaml("l.yaml", &no_rules)
            .unwrap_err()
            .to_string();
        assert!(err.contains("must carry its rules as data"), "{err}");
        let undeclared = MINIMAL.replace("action: axn_route_truck", "action: axn_fly_plane");
        let err = PackPlugin::from_yaml("l.yaml", &undeclared)
            .unwrap_err()
            .to_string();
        assert!(err.contains("axn_fly_plane is not declared"), "{err}");
    }

    #[test]
    fn pack_example_in_readme_loads() {
        let readme = include_str!("../packs/README.md");
        let yaml = readme
            .split("```yaml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let p = PackPlugin::from_yaml("README.md", yaml).unwrap();
        assert_eq!(p.config().domain.as_str(), "logistics");
    }

    #[test]
    fn every_builtin_pack_is_valid_and_has_a_data_template() {
        for (name, yaml) in BUILTIN_PACKS {
            let p = PackPlugin::from_yaml(name, yaml).unwrap_or_else(|e| panic!("{e}"));
            assert!(!p.config().policy_templates.is_empty(), "{name}");
            assert!(
                p.config()
                    .policy_templates
                    .iter()
                    .all(|t| !t.rules.is_empty()),
                "{name}"
            );
            for f in &p.config().compliance_frameworks {
                assert!(p.framework(f).is_some(), "{name}: {f}");
            }
        }
    }
}
