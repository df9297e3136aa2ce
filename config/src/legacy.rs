//! The Lexecon 1.x policy format, converted on load into an `ai` domain [`PolicyDocument`] so 1.x
//! users can migrate without rewriting their policies.
//!
//! A 1.x document has a `mode` (`strict`, `permissive`, `paranoid`), `terms` (`term_id`/`id`,
//! `term_type`/`type` of `actor`, `action`, `data_class`, `resource`, `context`, and a `label`) and
//! `relations` (`relation_type`/`type`, `source`/`subject`, `target`/`action`, optional `object`,
//! `conditions`, `justification`). The conversion:
//!
//! - `permits` → a `permit` rule, `forbids` → a `forbid` rule; the actor is the source term, the
//!   action the target term and the resource the `object` data class, each by its term id without the
//!   1.x kind prefix (`actor:model` → `model`, accepted by the `ai` domain as a legacy name).
//! - `requires`, `implies` and `conflicts` were never enforced by 1.x and are not converted; the
//!   document's description says how many were skipped.
//! - Conditions were never enforced by 1.x either. It must not grow more permissive on migration, so:
//!   a `forbids` stays unconditional (its conditions are named in the reason); a `permits` whose
//!   conditions all read `field op value` (`trade_value <= 1000000`) becomes a permit with those
//!   `when` conditions, and one with any other condition (`high_volatility`) becomes an `escalate`
//!   rule naming the condition a human must check.
//! - `paranoid` mode becomes `strict` with the `high_risk_human_oversight` template.
//! - Other 1.x fields (`compliance_frameworks`, `constraints`, term metadata, …) are ignored, as 1.x
//!   ignored them when deciding.
//!
//! Never panics on input; every problem found is reported with its path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use lexecon_domains::DomainId;
use serde_json::{Map, Value};

use crate::error::{ConfigError, Located};
use crate::policy::{Condition, Effect, Mode, Op, PolicyDocument, RequestField, Rule, TemplateUse};
use crate::policy_load::json_kind;

/// Whether a parsed document is in the 1.x format: `terms` or `relations`, and no `rules`.
pub fn is_legacy(map: &Map<String, Value>) -> bool {
    !map.contains_key("rules") && (map.contains_key("terms") || map.contains_key("relations"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TermType {
    Actor,
    Action,
    DataClass,
    Resource,
    Context,
}

impl TermType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "actor" => TermType::Actor,
            "action" => TermType::Action,
            "data_class" => TermType::DataClass,
            "resource" => TermType::Resource,
            "context" => TermType::Context,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            TermType::Actor => "an actor",
            TermType::Action => "an action",
            TermType::DataClass => "a data class",
            TermType::Resource => "a resource",
            TermType::Context => "a context",
        }
    }
}

/// The role a term plays in a relation, and the 1.x id prefixes stripped for it.
#[derive(Debug, Clone, Copy)]
enum Role {
    Source,
    Target,
    Object,
}

impl Role {
    fn accepts(self, t: TermType) -> bool {
        match self {
            Role::Source => t == TermType::Actor,
            Role::Target => t == TermType::Action,
            Role::Object => matches!(t, TermType::DataClass | TermType::Resource),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Role::Source => "an actor",
            Role::Target => "an action",
            Role::Object => "a data class or resource",
        }
    }

    fn prefixes(self) -> &'static [&'static str] {
        match self {
            Role::Source => &["actor:"],
            Role::Target => &["action:"],
            Role::Object => &["data:", "resource:"],
        }
    }
}

struct Ctx<'a> {
    file: &'a str,
    errors: Vec<Located>,
}

impl Ctx<'_> {
    fn push(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(Located::new(self.file, path, reason));
    }

    /// The string at `keys[0]` (or an alias), reporting a non-string value.
    fn string<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        at: &str,
        keys: &[&str],
    ) -> Option<&'v str> {
        for key in keys {
            match obj.get(*key) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => return Some(s.as_str()),
                Some(other) => {
                    self.push(
                        join(at, key),
                        format!("expected a string, found {}", json_kind(other)),
                    );
                    return None;
                }
            }
        }
        None
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

/// Converts a 1.x document (already detected with [`is_legacy`]) into an `ai` domain policy.
pub fn convert(file: &str, map: &Map<String, Value>) -> Result<PolicyDocument, ConfigError> {
    let mut cx = Ctx {
        file,
        errors: Vec::new(),
    };
    let (mode, paranoid) = match cx.string(map, "", &["mode"]) {
        None | Some("strict") => (Mode::Strict, false),
        Some("permissive") => (Mode::Permissive, false),
        Some("paranoid") => (Mode::Strict, true),
        Some(other) => {
            cx.push(
                "mode",
                format!("unknown 1.x mode {other:?}: expected strict, permissive or paranoid"),
            );
            (Mode::Strict, false)
        }
    };
    let id = cx
        .string(map, "", &["id", "policy_id", "name"])
        .map(str::to_string)
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty() && !s.starts_with('<'))
        })
        .unwrap_or_else(|| "lexecon-1x".to_string());
    let terms = read_terms(&mut cx, map);
    let (rules, skipped) = read_relations(&mut cx, map, &terms);

    let mut description = String::from("Converted from the Lexecon 1.x format");
    if let Some(d) = cx.string(map, "", &["description"]) {
        description.push_str(": ");
        description.push_str(d);
    }
    if skipped > 0 {
        description.push_str(&format!(
            " ({skipped} requires/implies/conflicts relation(s) skipped: 1.x did not enforce them)"
        ));
    }
    if !cx.errors.is_empty() {
        return Err(ConfigError::Invalid(cx.errors));
    }
    let domain = DomainId::new("ai")
        .map_err(|e| ConfigError::Invalid(vec![Located::new(file, "", e.to_string())]))?;
    let templates = if paranoid {
        vec![TemplateUse {
            name: "high_risk_human_oversight".into(),
            params: Map::new(),
        }]
    } else {
        Vec::new()
    };
    Ok(PolicyDocument {
        id,
        domain,
        mode,
        description,
        templates,
        rules,
    })
}

fn read_terms(cx: &mut Ctx<'_>, map: &Map<String, Value>) -> BTreeMap<String, TermType> {
    let mut terms = BTreeMap::new();
    let list = match map.get("terms") {
        None | Some(Value::Null) => return terms,
        Some(Value::Array(list)) => list,
        Some(other) => {
            cx.push(
                "terms",
                format!("expected a list of terms, found {}", json_kind(other)),
            );
            return terms;
        }
    };
    for (i, term) in list.iter().enumerate() {
        let at = format!("terms[{i}]");
        let Value::Object(obj) = term else {
            cx.push(
                at,
                format!("expected a term mapping, found {}", json_kind(term)),
            );
            continue;
        };
        let id = cx.string(obj, &at, &["term_id", "id"]);
        let kind = cx.string(obj, &at, &["term_type", "type"]);
        match (id, kind) {
            (None, _) => cx.push(join(&at, "term_id"), "a term needs a term_id"),
            (_, None) => cx.push(join(&at, "term_type"), "a term needs a term_type"),
            (Some(id), Some(kind)) => match TermType::parse(kind) {
                None => cx.push(
                    join(&at, "term_type"),
                    format!(
                        "unknown term type {kind:?}: expected actor, action, data_class, resource or context"
                    ),
                ),
                Some(t) => {
                    if terms.insert(id.to_string(), t).is_some() {
                        cx.push(join(&at, "term_id"), format!("duplicate term id {id:?}"));
                    }
                }
            },
        }
    }
    terms
}

fn read_relations(
    cx: &mut Ctx<'_>,
    map: &Map<String, Value>,
    terms: &BTreeMap<String, TermType>,
) -> (Vec<Rule>, usize) {
    let mut rules = Vec::new();
    let mut skipped = 0;
    let list = match map.get("relations") {
        None | Some(Value::Null) => return (rules, skipped),
        Some(Value::Array(list)) => list,
        Some(other) => {
            cx.push(
                "relations",
                format!("expected a list of relations, found {}", json_kind(other)),
            );
            return (rules, skipped);
        }
    };
    let mut ids = BTreeSet::new();
    for (i, relation) in list.iter().enumerate() {
        let at = format!("relations[{i}]");
        let Value::Object(obj) = relation else {
            cx.push(
                at,
                format!("expected a relation mapping, found {}", json_kind(relation)),
            );
            continue;
        };
        let empty = Map::new();
        let metadata = match obj.get("metadata") {
            Some(Value::Object(m)) => m,
            _ => &empty,
        };
        let effect = match cx.string(obj, &at, &["relation_type", "type"]) {
            Some("permits") => Effect::Permit,
            Some("forbids") => Effect::Forbid,
            Some("requires" | "implies" | "conflicts") => {
                skipped += 1;
                continue;
            }
            Some(other) => {
                cx.push(
                    join(&at, "relation_type"),
                    format!(
                        "unknown relation type {other:?}: expected permits, forbids, requires, implies or conflicts"
                    ),
                );
                continue;
            }
            None => {
                cx.push(
                    join(&at, "relation_type"),
                    "a relation needs a relation_type",
                );
                continue;
            }
        };
        let source = cx.string(obj, &at, &["source", "subject"]);
        let target = cx.string(obj, &at, &["target", "action"]);
        let (Some(source), Some(target)) = (source, target) else {
            cx.push(
                at,
                "a permits/forbids relation needs a source (subject) and a target (action)",
            );
            continue;
        };
        let object = cx
            .string(obj, &at, &["object"])
            .or_else(|| cx.string(metadata, &join(&at, "metadata"), &["object"]));
        let actor = term_ref(cx, &join(&at, "source"), source, Role::Source, terms);
        let action = term_ref(cx, &join(&at, "target"), target, Role::Target, terms);
        let resource =
            object.and_then(|o| term_ref(cx, &join(&at, "object"), o, Role::Object, terms));

        let mut conditions: Vec<(String, &Value)> = Vec::new();
        match obj.get("conditions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => conditions.extend(
                list.iter()
                    .enumerate()
                    .map(|(j, c)| (format!("{at}.conditions[{j}]"), c)),
            ),
            Some(other) => cx.push(
                join(&at, "conditions"),
                format!("expected a list of conditions, found {}", json_kind(other)),
            ),
        }
        if let Some(c) = obj.get("condition").filter(|c| !c.is_null()) {
            conditions.push((join(&at, "condition"), c));
        } else if let Some(c) = metadata.get("condition").filter(|c| !c.is_null()) {
            conditions.push((format!("{at}.metadata.condition"), c));
        }
        let justification = cx
            .string(obj, &at, &["justification"])
            .or_else(|| cx.string(metadata, &join(&at, "metadata"), &["justification"]));

        let kind = if effect == Effect::Permit {
            "permits"
        } else {
            "forbids"
        };
        let base_id = cx
            .string(obj, &at, &["relation_id"])
            .map(str::to_string)
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| format!("{kind}:{source}:{target}"));
        let mut id = base_id.clone();
        let mut n = 2;
        while !ids.insert(id.clone()) {
            id = format!("{base_id}#{n}");
            n += 1;
        }
        let mut reason = justification
            .map(str::to_string)
            .unwrap_or_else(|| format!("Lexecon 1.x: {source} {kind} {target}"));

        let mut when = Vec::new();
        let mut unchecked = Vec::new();
        for (path, c) in &conditions {
            match condition(c) {
                Ok(cond) => when.push(cond),
                Err(text) if text.is_empty() => cx.push(
                    path.clone(),
                    format!("expected a condition string, found {}", json_kind(c)),
                ),
                Err(text) => unchecked.push(text),
            }
        }
        let effect = match effect {
            Effect::Forbid => {
                if !conditions.is_empty() {
                    let all: Vec<String> = conditions.iter().map(|(_, c)| show(c)).collect();
                    reason.push_str(&format!(
                        " (1.x conditions {} not enforced; forbidden unconditionally as in 1.x)",
                        all.join(", ")
                    ));
                }
                when.clear();
                Effect::Forbid
            }
            _ if !unchecked.is_empty() => {
                reason.push_str(&format!(
                    " (escalated: a human must check the 1.x condition(s) {})",
                    unchecked.join(", ")
                ));
                Effect::Escalate
            }
            other => other,
        };
        rules.push(Rule {
            id,
            effect,
            actor,
            action,
            resource,
            when,
            reason: Some(reason),
        });
    }
    (rules, skipped)
}

/// A term reference without its 1.x kind prefix, checking a declared term's type fits its role.
fn term_ref(
    cx: &mut Ctx<'_>,
    path: &str,
    raw: &str,
    role: Role,
    terms: &BTreeMap<String, TermType>,
) -> Option<String> {
    if let Some(t) = terms.get(raw) {
        if !role.accepts(*t) {
            cx.push(
                path,
                format!(
                    "term {raw:?} is {} but this position needs {}",
                    t.name(),
                    role.expected()
                ),
            );
            return None;
        }
    }
    let name = role
        .prefixes()
        .iter()
        .find_map(|p| raw.strip_prefix(p))
        .unwrap_or(raw);
    if name.is_empty() {
        cx.push(path, format!("term reference {raw:?} has an empty name"));
        return None;
    }
    Some(name.to_string())
}

fn show(c: &Value) -> String {
    match c {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Converts one 1.x condition: a `{field, op, value}` mapping or a `field op value` string whose
/// value is a number, boolean or quoted string. `Err(text)` for a condition that cannot be checked
/// automatically (empty text when it is not even a string).
fn condition(c: &Value) -> Result<Condition, String> {
    let text = match c {
        Value::Object(_) => {
            return serde_json::from_value::<Condition>(c.clone()).map_err(|_| show(c));
        }
        Value::String(s) => s.trim(),
        _ => return Err(String::new()),
    };
    let ops = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
        ("=", Op::Eq),
    ];
    let Some((pos, token, op)) = ops
        .iter()
        .filter_map(|(tok, op)| text.find(tok).map(|p| (p, *tok, *op)))
        .min_by_key(|(p, tok, _)| (*p, std::cmp::Reverse(tok.len())))
    else {
        return Err(show(c));
    };
    let field = text[..pos].trim();
    let value = text[pos + token.len()..].trim();
    let field_ok = !field.is_empty()
        && field
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.');
    let value = match serde_json::from_str::<Value>(value) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_))) => v,
        _ => return Err(show(c)),
    };
    if !field_ok {
        return Err(show(c));
    }
    let field = if RequestField::from_path(field).is_some() || field.starts_with("context.") {
        field.to_string()
    } else {
        format!("context.{field}")
    };
    Ok(Condition {
        field,
        op,
        value: Some(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_load::parse_policy;
    use crate::policy_validate::validate_policy;

    const SEED_EXAMPLE: &str = r#"{
  "mode": "strict",
  "terms": [
    {"term_id": "actor:user", "term_type": "actor", "label": "User", "description": "Human user", "metadata": {}},
    {"term_id": "actor:model", "term_type": "actor", "label": "AI Model", "description": "", "metadata": {}},
    {"term_id": "action:read", "term_type": "action", "label": "Read Data", "description": ""},
    {"term_id": "action:write", "term_type": "action", "label": "Write Data", "description": ""},
    {"term_id": "action:search", "term_type": "action", "label": "Search", "description": ""},
    {"term_id": "data:pii", "term_type": "data_class", "label": "PII", "description": ""}
  ],
  "relations": [
    {"relation_id": "permits:actor:user:action:read", "relation_type": "permits", "source": "actor:user", "target": "action:read", "conditions": [], "metadata": {}},
    {"relation_id": "permits:actor:model:action:search", "relation_type": "permits", "source": "actor:model", "target": "action:search", "conditions": [], "metadata": {}},
    {"relation_id": "forbids:actor:model:action:write", "relation_type": "forbids", "source": "actor:model", "target": "action:write", "conditions": [], "metadata": {"justification": "models never write"}}
  ]
}"#;

    #[test]
    fn seed_1x_policy_converts_to_ai_permit_and_forbid_rules() {
        let doc = parse_policy("example_policy.json", SEED_EXAMPLE).unwrap();
        assert_eq!(doc.domain.as_str(), "ai");
        assert_eq!(doc.mode, Mode::Strict);
        assert_eq!(doc.id, "example_policy");
        assert_eq!(doc.rules.len(), 3);
        let search = doc.rule("permits:actor:model:action:search").unwrap();
        assert_eq!(search.effect, Effect::Permit);
        assert_eq!(search.actor.as_deref(), Some("model"));
        assert_eq!(search.action.as_deref(), Some("search"));
        assert_eq!(search.resource, None);
        let write = doc.rule("forbids:actor:model:action:write").unwrap();
        assert_eq!(write.effect, Effect::Forbid);
        assert_eq!(write.reason.as_deref(), Some("models never write"));
        validate_policy("example_policy.json", &doc, None).unwrap();
    }

    #[test]
    fn simplified_1x_relations_with_subject_action_object_convert() {
        let text = r#"
name: fin
mode: permissive
compliance_frameworks: [SOX]
terms:
  - {id: "actor:ai_trading_system", type: actor, name: ai_trading_system, sensitivity: high}
  - {id: "data:market_data", type: data_class, name: market_data}
relations:
  - {type: permits, subject: "actor:ai_trading_system", action: "action:analyze_market_data", object: "data:market_data", justification: Public market analysis permitted}
  - {type: requires, action: "action:execute_trade", condition: dual_authorization}
"#;
        let doc = parse_policy("fin.yaml", text).unwrap();
        assert_eq!(doc.id, "fin");
        assert_eq!(doc.mode, Mode::Permissive);
        assert_eq!(doc.rules.len(), 1);
        let r = &doc.rules[0];
        assert_eq!(
            r.id,
            "permits:actor:ai_trading_system:action:analyze_market_data"
        );
        assert_eq!(r.actor.as_deref(), Some("ai_trading_system"));
        assert_eq!(r.action.as_deref(), Some("analyze_market_data"));
        assert_eq!(r.resource.as_deref(), Some("market_data"));
        assert_eq!(
            r.reason.as_deref(),
            Some("Public market analysis permitted")
        );
        assert!(doc
            .description
            .contains("1 requires/implies/conflicts relation(s) skipped"));
    }

    #[test]
    fn permit_with_checkable_condition_gets_when_and_unknown_condition_escalates() {
        let text = r#"
relations:
  - {type: permits, subject: "actor:bot", action: "action:pay", conditions: ["amount <= 1000", "context.currency == \"EUR\""]}
  - {type: permits, subject: "actor:bot", action: "action:trade", conditions: ["high_volatility"]}
  - {type: forbids, subject: "actor:bot", action: "action:wire", conditions: ["trade_value > threshold"]}
"#;
        let doc = parse_policy("c.yaml", text).unwrap();
        let pay = &doc.rules[0];
        assert_eq!(pay.effect, Effect::Permit);
        assert_eq!(pay.when.len(), 2);
        assert_eq!(pay.when[0].field, "context.amount");
        assert_eq!(pay.when[0].op, Op::Le);
        assert_eq!(pay.when[0].value, Some(serde_json::json!(1000)));
        assert_eq!(pay.when[1].field, "context.currency");
        assert_eq!(pay.when[1].value, Some(serde_json::json!("EUR")));
        let trade = &doc.rules[1];
        assert_eq!(trade.effect, Effect::Escalate);
        assert!(trade.reason.as_deref().unwrap().contains("high_volatility"));
        let wire = &doc.rules[2];
        assert_eq!(wire.effect, Effect::Forbid);
        assert!(wire.when.is_empty(), "1.x forbids stay unconditional");
        assert!(wire
            .reason
            .as_deref()
            .unwrap()
            .contains("trade_value > threshold"));
        validate_policy("c.yaml", &doc, None).unwrap();
    }

    #[test]
    fn paranoid_mode_becomes_strict_with_human_oversight_template() {
        let doc = parse_policy("p.yaml", "mode: paranoid\nterms: []\n").unwrap();
        assert_eq!(doc.mode, Mode::Strict);
        assert_eq!(doc.templates[0].name, "high_risk_human_oversight");
    }

    #[test]
    fn bad_1x_documents_report_every_problem_with_its_path() {
        let text = r#"
mode: lenient
terms:
  - {term_id: "actor:a", term_type: actor}
  - {term_id: "action:b", term_type: verb}
  - {term_type: actor}
relations:
  - {relation_type: permits, source: "actor:a"}
  - {relation_type: allows, source: "actor:a", target: "action:b"}
  - {relation_type: forbids, source: "action:x", target: "actor:a"}
"#;
        let terms_typed = text
            .replace("term_type: verb", "term_type: action")
            .replace("\"action:x\"", "\"action:b\"");
        let err = parse_policy("bad.yaml", text).unwrap_err();
        let got: Vec<&str> = err.located().iter().map(|l| l.path.as_str()).collect();
        assert_eq!(
            got,
            [
                "mode",
                "terms[1].term_type",
                "terms[2].term_id",
                "relations[0]",
                "relations[1].relation_type",
                "relations[2].target",
            ],
            "{err}"
        );
        assert!(err
            .to_string()
            .contains("term \"actor:a\" is an actor but this position needs an action"));
        // With the action term declared, the reversed relation is caught on both ends.
        let err = parse_policy("bad.yaml", &terms_typed).unwrap_err();
        assert!(err
            .located()
            .iter()
            .any(|l| l.path == "relations[2].source"));
    }

    #[test]
    fn duplicate_1x_relation_ids_are_made_unique() {
        let text = r#"
relations:
  - {type: permits, subject: "actor:a", action: "action:b"}
  - {type: permits, subject: "actor:a", action: "action:b"}
"#;
        let doc = parse_policy("d.yaml", text).unwrap();
        assert_eq!(doc.rules[0].id, "permits:actor:a:action:b");
        assert_eq!(doc.rules[1].id, "permits:actor:a:action:b#2");
        validate_policy("d.yaml", &doc, None).unwrap();
    }
}
