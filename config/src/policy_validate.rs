//! Semantic validation of a [`PolicyDocument`]: every problem, each located by path
//! (`rules[3].when[0].op`), collected before failing as a compiler does.
//!
//! Owns the checks that the document's shape cannot express: unique non-empty ids, valid globs,
//! operator/value agreement, compilable regexes, known condition fields, the expected domain, known
//! templates and parameters, and — given the domain's configuration — declared actor, action and
//! resource types. It never evaluates a rule and never touches the filesystem.

use std::collections::{BTreeMap, BTreeSet};

use lexecon_domains::DomainConfig;
use serde_json::Value;

use crate::error::{ConfigError, Located};
use crate::policy::{Condition, ConditionField, Op, PolicyDocument, Rule, TemplateUse};
use crate::policy_load::json_kind;

/// The most memory one compiled `matches` regex may use; larger ones are rejected at load.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Validates `doc` and returns every problem found, or `Ok(())`.
///
/// With `domain`, the policy must be for that domain, and templates, template parameters and the
/// type part of actor/action/resource patterns must be declared by it (in the `ai` domain,
/// un-prefixed 1.x names such as `model` are accepted too).
pub fn validate_policy(
    file: &str,
    doc: &PolicyDocument,
    domain: Option<&DomainConfig>,
) -> Result<(), ConfigError> {
    let errors = policy_errors(file, doc, domain);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(errors))
    }
}

/// Like [`validate_policy`], returning the list (empty when valid), for callers that merge the
/// problems of several documents.
pub fn policy_errors(
    file: &str,
    doc: &PolicyDocument,
    domain: Option<&DomainConfig>,
) -> Vec<Located> {
    let mut v = Validator {
        file,
        errors: Vec::new(),
    };
    if doc.id.trim().is_empty() {
        v.push("id", "the policy id is empty");
    }
    // Only check types and templates against the domain the policy is actually for.
    let domain = match domain {
        Some(d) if d.domain != doc.domain => {
            v.push(
                "domain",
                format!(
                    "policy is for domain {} but is loaded for domain {}",
                    doc.domain, d.domain
                ),
            );
            None
        }
        other => other,
    };
    check_templates(&mut v, &doc.templates, domain);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, rule) in doc.rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        if rule.id.trim().is_empty() {
            v.push(format!("{at}.id"), "the rule id is empty");
        } else if let Some(first) = seen.insert(rule.id.as_str(), i) {
            v.push(
                format!("{at}.id"),
                format!(
                    "duplicate rule id {:?} (first used by rules[{first}])",
                    rule.id
                ),
            );
            seen.insert(rule.id.as_str(), first);
        }
        check_rule(&mut v, &at, rule, domain);
    }
    v.errors
}

struct Validator<'a> {
    file: &'a str,
    errors: Vec<Located>,
}

impl Validator<'_> {
    fn push(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(Located::new(self.file, path, reason));
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Actor,
    Action,
    Resource,
}

impl Kind {
    fn field(self) -> &'static str {
        match self {
            Kind::Actor => "actor",
            Kind::Action => "action",
            Kind::Resource => "resource",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::Actor => "act_",
            Kind::Action => "axn_",
            Kind::Resource => "res_",
        }
    }

    fn declared(self, domain: &DomainConfig) -> Vec<&str> {
        match self {
            Kind::Actor => domain
                .actor_types
                .iter()
                .map(|t| t.type_id.as_str())
                .collect(),
            Kind::Action => domain
                .action_types
                .iter()
                .map(|t| t.type_id.as_str())
                .collect(),
            Kind::Resource => domain
                .resource_types
                .iter()
                .map(|t| t.type_id.as_str())
                .collect(),
        }
    }
}

fn check_rule(v: &mut Validator<'_>, at: &str, rule: &Rule, domain: Option<&DomainConfig>) {
    for (kind, pattern) in [
        (Kind::Actor, &rule.actor),
        (Kind::Action, &rule.action),
        (Kind::Resource, &rule.resource),
    ] {
        if let Some(pattern) = pattern {
            check_pattern(v, &format!("{at}.{}", kind.field()), kind, pattern, domain);
        }
    }
    for (j, cond) in rule.when.iter().enumerate() {
        check_condition(v, &format!("{at}.when[{j}]"), cond);
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

fn check_pattern(
    v: &mut Validator<'_>,
    path: &str,
    kind: Kind,
    pattern: &str,
    domain: Option<&DomainConfig>,
) {
    if pattern.is_empty() {
        v.push(
            path,
            format!(
                "empty {} pattern; omit the field to match any",
                kind.field()
            ),
        );
        return;
    }
    // Same options as the engine: `*` crosses `/` (instances like `Patient/123`), `\` escapes.
    let built = globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build();
    if let Err(e) = built {
        v.push(path, format!("invalid glob {pattern:?}: {}", e.kind()));
        return;
    }
    let Some(domain) = domain else { return };
    let type_part = pattern.split_once(':').map_or(pattern, |(t, _)| t);
    if is_glob(type_part) || type_part.is_empty() {
        return;
    }
    let declared = kind.declared(domain);
    if declared.contains(&type_part) {
        return;
    }
    // Backward compatibility: the ai domain accepts un-prefixed Lexecon 1.x names (`model`, `search`).
    if domain.domain.as_str() == "ai" && !type_part.starts_with(kind.prefix()) {
        return;
    }
    let mut reason = format!(
        "unknown {} type {type_part} in domain {}",
        kind.field(),
        domain.domain
    );
    if let Some(near) = closest(type_part, &declared) {
        reason.push_str(&format!(" (did you mean {near}?)"));
    }
    v.push(path, reason);
}

/// The declared name nearest to `name` by edit distance, when it is a plausible typo.
fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn check_condition(v: &mut Validator<'_>, at: &str, cond: &Condition) {
    match ConditionField::parse(&cond.field) {
        None => v.push(format!("{at}.field"), ConditionField::unknown(&cond.field)),
        Some(field) => {
            if let Some((part, reason)) = field.provenance_problem(cond.op, cond.value.as_ref()) {
                v.push(format!("{at}.{part}"), reason);
            }
        }
    }
    let value_path = format!("{at}.value");
    let op = cond.op.as_str();
    match (cond.op, &cond.value) {
        (Op::Exists, None | Some(Value::Bool(_))) => {}
        (Op::Exists, Some(other)) => v.push(
            value_path,
            format!(
                "exists takes true, false or no value, found {}",
                json_kind(other)
            ),
        ),
        (_, None) => v.push(value_path, format!("{op} needs a value")),
        (Op::Eq | Op::Ne, Some(_)) => {}
        (Op::Lt | Op::Le | Op::Gt | Op::Ge, Some(Value::Number(_) | Value::String(_))) => {}
        (Op::Lt | Op::Le | Op::Gt | Op::Ge, Some(other)) => v.push(
            value_path,
            format!(
                "{op} compares with a number or a string, found {}",
                json_kind(other)
            ),
        ),
        (Op::In | Op::NotIn, Some(Value::Array(_))) => {}
        (Op::In | Op::NotIn, Some(other)) => v.push(
            value_path,
            format!("{op} needs a list of values, found {}", json_kind(other)),
        ),
        (Op::Matches, Some(Value::String(re))) => {
            if let Err(e) = regex::RegexBuilder::new(re)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
            {
                let detail = e.to_string().replace('\n', " ");
                v.push(value_path, format!("invalid regex {re:?}: {detail}"));
            }
        }
        (Op::Matches, Some(other)) => v.push(
            value_path,
            format!("matches needs a regex string, found {}", json_kind(other)),
        ),
    }
}

fn check_templates(v: &mut Validator<'_>, uses: &[TemplateUse], domain: Option<&DomainConfig>) {
    let mut seen = BTreeSet::new();
    for (i, used) in uses.iter().enumerate() {
        let at = format!("templates[{i}]");
        if !seen.insert(used.name.as_str()) {
            v.push(
                format!("{at}.name"),
                format!("template {} is enabled twice", used.name),
            );
        }
        let Some(domain) = domain else { continue };
        let Some(template) = domain.template(&used.name) else {
            let available: Vec<&str> = domain
                .policy_templates
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            v.push(
                format!("{at}.name"),
                format!(
                    "unknown template {} in domain {} (available: {})",
                    used.name,
                    domain.domain,
                    if available.is_empty() {
                        "none".to_string()
                    } else {
                        available.join(", ")
                    }
                ),
            );
            continue;
        };
        for (key, value) in &used.params {
            let path = format!("{at}.params.{key}");
            match template.params.get(key) {
                None => {
                    let known: Vec<&str> = template.params.keys().map(String::as_str).collect();
                    v.push(
                        path,
                        format!(
                            "unknown parameter {key} of template {} (parameters: {})",
                            used.name,
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
                Some(param) => {
                    if !same_kind(&param.default, value) {
                        v.push(
                            path,
                            format!(
                                "expected {} like the default {}, found {}",
                                json_kind(&param.default),
                                param.default,
                                json_kind(value)
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Whether a parameter value has the same JSON kind as the parameter's default (a `null` default
/// accepts anything).
pub(crate) fn same_kind(default: &Value, value: &Value) -> bool {
    default.is_null() || std::mem::discriminant(default) == std::mem::discriminant(value)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy_load::parse_policy;
    use lexecon_domains::DomainId;

    /// A small finance domain for tests (the real one lives in lexecon-domains). Built from YAML so
    /// fields the domain model gains later (with serde defaults) do not break it.
    pub(crate) fn finance() -> DomainConfig {
        serde_norway::from_str(
            r#"
domain: finance
display_name: Finance
actor_types: [{type_id: act_trading_algo, category: ai, label: Trading algorithm}]
action_types: [{type_id: axn_place_order, category: execute, label: Place order, risk_level: 4}]
resource_types: [{type_id: res_security, category: instrument, label: Security, sensitivity: internal}]
compliance_frameworks: [MIFID_II]
policy_templates:
  - name: prevent_flash_crash
    description: Notional per actor per rolling minute
    params: {max_notional_per_minute: {default: 10000000}}
    rules:
      - id: flash-crash-guard
        effect: escalate
        actor: "act_trading_algo:*"
        action: axn_place_order
        when: [{field: context.order_value, op: gt, value: "{{max_notional_per_minute}}"}]
        reason: "orders above {{max_notional_per_minute}} need a human"
"#,
        )
        .unwrap()
    }

    fn paths(err: ConfigError) -> Vec<(String, String)> {
        err.located()
            .iter()
            .map(|l| (l.path.clone(), l.reason.clone()))
            .collect()
    }

    const MULTI_ERROR: &str = r#"
id: trading-desk
domain: finance
templates:
  - {name: prevent_flash_crash, params: {max_notional: 5}}
  - {name: no_such_template}
rules:
  - id: a
    effect: permit
    actor: "act_trading_algo:*"
    action: axn_plac_order
  - id: a
    effect: forbid
    actor: "act_[trading"
  - id: ""
    effect: escalate
    resource: "res_unknown:*"
    when:
      - {field: context.order_value, op: in, value: 5}
      - {field: context.venue, op: matches, value: "(unclosed"}
      - {field: context.size, op: lt, value: [1, 2]}
      - {field: context.flag, op: exists, value: "yes"}
      - {field: order_value, op: eq, value: 1}
      - {field: context.x, op: ne}
"#;

    #[test]
    fn every_error_of_a_multi_error_policy_is_reported_with_its_path() {
        let doc = parse_policy("desk.yaml", MULTI_ERROR).unwrap();
        let err = validate_policy("desk.yaml", &doc, Some(&finance())).unwrap_err();
        assert!(err.located().iter().all(|l| l.file == "desk.yaml"));
        let got = paths(err);
        let expected_paths = [
            "templates[0].params.max_notional",
            "templates[1].name",
            "rules[0].action",
            "rules[1].id",
            "rules[1].actor",
            "rules[2].id",
            "rules[2].resource",
            "rules[2].when[0].value",
            "rules[2].when[1].value",
            "rules[2].when[2].value",
            "rules[2].when[3].value",
            "rules[2].when[4].field",
            "rules[2].when[5].value",
        ];
        let got_paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(got_paths, expected_paths, "{got:#?}");
        let reason = |p: &str| &got.iter().find(|(q, _)| q == p).unwrap().1;
        assert!(reason("rules[0].action")
            .starts_with("unknown action type axn_plac_order in domain finance"));
        assert!(reason("rules[0].action").contains("did you mean axn_place_order"));
        assert!(reason("rules[1].id").contains("duplicate rule id \"a\""));
        assert!(reason("rules[1].actor").contains("invalid glob"));
        assert!(reason("rules[2].id").contains("empty"));
        assert!(reason("rules[2].resource").contains("unknown resource type res_unknown"));
        assert!(reason("rules[2].when[0].value").contains("in needs a list"));
        assert!(reason("rules[2].when[1].value").contains("invalid regex"));
        assert!(reason("rules[2].when[2].value").contains("number or a string"));
        assert!(reason("rules[2].when[3].value").contains("exists takes true, false"));
        assert!(reason("rules[2].when[4].field").contains("unknown field \"order_value\""));
        assert!(reason("rules[2].when[5].value").contains("ne needs a value"));
        assert!(reason("templates[0].params.max_notional")
            .contains("parameters: max_notional_per_minute"));
        assert!(reason("templates[1].name").contains("available: prevent_flash_crash"));
        // The display lists one error per line, each with file and path.
        let doc = parse_policy("desk.yaml", MULTI_ERROR).unwrap();
        let shown = validate_policy("desk.yaml", &doc, Some(&finance()))
            .unwrap_err()
            .to_string();
        assert_eq!(shown.lines().count(), expected_paths.len());
        assert!(shown.contains("desk.yaml: rules[2].when[1].value: invalid regex"));
    }

    #[test]
    fn valid_policy_passes_with_and_without_domain() {
        let text = r#"
id: desk
domain: finance
templates: [{name: prevent_flash_crash, params: {max_notional_per_minute: 20000000}}]
rules:
  - {id: p, effect: permit, actor: "act_trading_algo:*", action: axn_place_order, resource: "res_security:AAPL",
     when: [{field: context.order_value, op: le, value: 5000000}, {field: actor.instance, op: in, value: [a, b]},
            {field: context.venue, op: matches, value: "^X[A-Z]{3}$"}, {field: context.ok, op: exists},
            {field: resource.type, op: ne, value: res_x}, {field: context.a.b, op: ge, value: "2024-01-01"}]}
  - {id: f, effect: forbid, actor: "*", action: "axn_*"}
"#;
        let doc = parse_policy("p.yaml", text).unwrap();
        validate_policy("p.yaml", &doc, None).unwrap();
        validate_policy("p.yaml", &doc, Some(&finance())).unwrap();
    }

    #[test]
    fn policy_for_another_domain_is_rejected_at_domain() {
        let doc = parse_policy("p.yaml", "id: x\ndomain: healthcare\nrules: []\n").unwrap();
        let got = paths(validate_policy("p.yaml", &doc, Some(&finance())).unwrap_err());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "domain");
        assert!(got[0]
            .1
            .contains("policy is for domain healthcare but is loaded for domain finance"));
    }

    #[test]
    fn template_param_of_wrong_kind_is_rejected() {
        let doc = parse_policy(
            "p.yaml",
            "id: x\ndomain: finance\ntemplates: [{name: prevent_flash_crash, params: {max_notional_per_minute: lots}}]\n",
        )
        .unwrap();
        let got = paths(validate_policy("p.yaml", &doc, Some(&finance())).unwrap_err());
        assert_eq!(got[0].0, "templates[0].params.max_notional_per_minute");
        assert!(got[0].1.contains("expected a number"), "{}", got[0].1);
    }

    #[test]
    fn ai_domain_accepts_unprefixed_legacy_names_but_not_unknown_prefixed_ones() {
        let mut ai = finance();
        ai.domain = DomainId::new("ai").unwrap();
        ai.policy_templates.clear();
        let doc = parse_policy(
            "p.yaml",
            "id: x\ndomain: ai\nrules: [{id: a, effect: permit, actor: model, action: search}, {id: b, effect: permit, actor: act_nope}]\n",
        )
        .unwrap();
        let got = paths(validate_policy("p.yaml", &doc, Some(&ai)).unwrap_err());
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "rules[1].actor");
    }

    #[test]
    fn oversized_regex_is_rejected() {
        let doc = parse_policy(
            "p.yaml",
            "id: x\ndomain: ai\nrules: [{id: a, effect: forbid, when: [{field: context.t, op: matches, value: '\\w{1000}\\w{1000}'}]}]\n",
        )
        .unwrap();
        let got = paths(validate_policy("p.yaml", &doc, None).unwrap_err());
        assert_eq!(got[0].0, "rules[0].when[0].value");
        assert!(got[0].1.contains("size limit"), "{}", got[0].1);
    }

    #[test]
    fn a_provenance_condition_names_a_provenance_and_compares_by_equality() {
        let doc = parse_policy(
            "p.yaml",
            r#"
id: x
domain: healthcare
rules:
  - id: looked-up
    effect: permit
    when:
      - {field: provenance.patient_consent, op: eq, value: authority}
      - {field: provenance.fhir_user, op: in, value: [credential, authority]}
      - {field: provenance.args, op: exists, value: false}
  - id: typo
    effect: forbid
    when:
      - {field: provenance.patient_consent, op: ne, value: authorty}
      - {field: provenance.x, op: not_in, value: [request, 7]}
      - {field: provenance.x, op: matches, value: "auth.*"}
      - {field: provenance.a.b, op: eq, value: request}
"#,
        )
        .unwrap();
        let got = paths(validate_policy("p.yaml", &doc, None).unwrap_err());
        let at: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            at,
            [
                "rules[1].when[0].value",
                "rules[1].when[1].value",
                "rules[1].when[2].op",
                "rules[1].when[3].field"
            ],
            "{got:?}"
        );
        assert_eq!(
            got[0].1,
            "\"authorty\" is not a provenance: expected one of request, credential, authority, plugin"
        );
        assert!(
            got[2].1.contains("eq, ne, in, not_in or exists"),
            "{}",
            got[2].1
        );
    }

    #[test]
    fn context_field_needs_a_key() {
        for bad in ["context.", "context", "context..x", "actor.kind", "Actor"] {
            assert!(
                ConditionField::parse(bad).is_none(),
                "{bad} should be unknown"
            );
        }
        for good in ["context.x", "context.a.b", "domain", "action.type"] {
            assert!(
                ConditionField::parse(good).is_some(),
                "{good} should be known"
            );
        }
    }
}
