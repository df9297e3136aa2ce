//! Compiling a [`PolicyDocument`] into a [`CompiledPolicy`]: id patterns and conditions compiled once,
//! template data rules instantiated, rules indexed by exact action type (the rest checked for every
//! request), the set of context fields the policy reads (for the decision cache key) and the policy
//! version hash. Every problem of a document is collected before failing. Compiling never touches
//! the network or the disk.

use std::collections::{BTreeSet, HashMap};

use lexecon_config::{Effect, Mode, PolicyDocument, Rule};
use lexecon_domains::{ComplianceTable, DomainPlugin, TypeIndex, Verdict};
use serde_json::{Map, Value};

use crate::condition::{CompiledCondition, Field};
use crate::decision::{RuleId, SharedStr};
use crate::error::PolicyError;
use crate::evaluate::mode_name;
use crate::pattern::Pattern;
use crate::template;

/// One compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    /// Shared with every decision that lists this rule as matched.
    pub(crate) id: RuleId,
    pub(crate) effect: Effect,
    pub(crate) actor: Option<Pattern>,
    /// `None` when the action index alone decides the action match.
    pub(crate) action: Option<Pattern>,
    pub(crate) resource: Option<Pattern>,
    pub(crate) when: Vec<CompiledCondition>,
    /// The rule's reason, or a generated one (`rule X (forbid) matched`).
    pub(crate) reason: SharedStr,
}

/// A template the policy enables, with its parameters filled with defaults; its Rust check runs at
/// decision time.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateCheck {
    pub name: String,
    pub params: Map<String, Value>,
    /// Whether the plugin says this template's check keeps state or reads the time.
    pub stateful: bool,
}

/// A policy ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub(crate) id: String,
    pub(crate) domain: String,
    pub(crate) mode: Mode,
    pub(crate) version_hash: SharedStr,
    /// Document rules, then template data rules; the index is the rule's position.
    pub(crate) rules: Vec<CompiledRule>,
    /// Rules whose action pattern pins one type id, by that type id (positions ascending).
    pub(crate) by_action: HashMap<String, Vec<u32>>,
    /// Rules with a glob or absent action pattern (positions ascending).
    pub(crate) any_action: Vec<u32>,
    pub(crate) templates: Vec<TemplateCheck>,
    /// The no-match default set by a template, and that template's name.
    pub(crate) fallback: Option<(Verdict, String)>,
    /// The rule id and reason a decision names when no rule decided (`default:<mode>`,
    /// `default:template:<name>`), built once here instead of per decision.
    pub(crate) default_id: SharedStr,
    pub(crate) default_reason: SharedStr,
    /// The domain plugin's compliance mappings for every outcome, computed here once.
    pub(crate) compliance: ComplianceTable,
    /// The domain plugin's declared types by id.
    pub(crate) types: TypeIndex,
    /// Context paths (`["order", "value"]`) any condition reads, sorted and deduplicated.
    pub(crate) context_fields: Vec<Box<[String]>>,
    /// Context keys whose provenance any condition reads (`provenance.<key>`), sorted.
    pub(crate) provenance_fields: Vec<Box<str>>,
}

fn effect_name(effect: Effect) -> &'static str {
    match effect {
        Effect::Permit => "permit",
        Effect::Forbid => "forbid",
        Effect::Escalate => "escalate",
    }
}

fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Permit => 0,
        Verdict::Escalate => 1,
        Verdict::Deny => 2,
    }
}

struct Compiler<'a> {
    policy: &'a str,
    errors: Vec<PolicyError>,
    rules: Vec<CompiledRule>,
    ids: BTreeSet<String>,
    context_fields: BTreeSet<Box<[String]>>,
    provenance_fields: BTreeSet<Box<str>>,
    regexes: HashMap<String, regex::Regex>,
}

impl Compiler<'_> {
    fn rule_error(&mut self, rule: &str, field: String, reason: String) {
        self.errors.push(PolicyError::InvalidRule {
            policy: self.policy.to_owned(),
            rule: rule.to_owned(),
            field,
            reason,
        });
    }

    fn pattern(&mut self, rule: &str, field: &str, p: Option<&String>) -> Option<Option<Pattern>> {
        match p.map(|p| Pattern::compile(p)) {
            None => Some(None),
            Some(Ok(p)) => Some(Some(p)),
            Some(Err(reason)) => {
                self.rule_error(rule, field.to_owned(), reason);
                None
            }
        }
    }

    /// Compiles `rule` under `id` (template rules get a namespaced id).
    fn add(&mut self, id: String, rule: &Rule) {
        let before = self.errors.len();
        if id.is_empty() {
            self.rule_error(&id, "id".into(), "rule id is empty".into());
        } else if !self.ids.insert(id.clone()) {
            self.errors.push(PolicyError::DuplicateRuleId {
                policy: self.policy.to_owned(),
                rule: id.clone(),
            });
        }
        let actor = self.pattern(&id, "actor", rule.actor.as_ref());
        let action = self.pattern(&id, "action", rule.action.as_ref());
        let resource = self.pattern(&id, "resource", rule.resource.as_ref());
        let mut when = Vec::with_capacity(rule.when.len());
        for (i, c) in rule.when.iter().enumerate() {
            match CompiledCondition::compile(c, &mut self.regexes) {
                Ok(c) => {
                    match &c.field {
                        Field::Context(path) => {
                            self.context_fields.insert(path.clone());
                        }
                        Field::Provenance(key) => {
                            self.provenance_fields.insert(key.clone());
                        }
                        _ => {}
                    }
                    when.push(c);
                }
                Err((part, reason)) => self.rule_error(&id, format!("when[{i}].{part}"), reason),
            }
        }
        if self.errors.len() > before {
            return;
        }
        if let (Some(actor), Some(action), Some(resource)) = (actor, action, resource) {
            let reason = rule
                .reason
                .clone()
                .unwrap_or_else(|| format!("rule {id} ({}) matched", effect_name(rule.effect)));
            self.rules.push(CompiledRule {
                id: RuleId::from(id),
                effect: rule.effect,
                actor,
                action,
                resource,
                when,
                reason: reason.into(),
            });
        }
    }
}

impl CompiledPolicy {
    /// Compiles `doc` for the domain served by `plugin`, listing every problem on failure.
    pub fn compile(doc: &PolicyDocument, plugin: &dyn DomainPlugin) -> Result<Self, PolicyError> {
        let config = plugin.config();
        if config.domain != doc.domain {
            return Err(PolicyError::DomainMismatch {
                policy: doc.id.clone(),
                policy_domain: doc.domain.to_string(),
                plugin_domain: config.domain.to_string(),
            });
        }
        let version_hash = SharedStr::from(policy_version_hash(doc)?);
        let mut c = Compiler {
            policy: &doc.id,
            errors: Vec::new(),
            rules: Vec::with_capacity(doc.rules.len()),
            ids: BTreeSet::new(),
            context_fields: BTreeSet::new(),
            provenance_fields: BTreeSet::new(),
            regexes: HashMap::new(),
        };
        for rule in &doc.rules {
            c.add(rule.id.clone(), rule);
        }

        let mut templates = Vec::with_capacity(doc.templates.len());
        let mut fallback: Option<(Verdict, String)> = None;
        for used in &doc.templates {
            let Some(t) = config.template(&used.name) else {
                c.errors.push(PolicyError::UnknownTemplate {
                    policy: doc.id.clone(),
                    domain: doc.domain.to_string(),
                    template: used.name.clone(),
                });
                continue;
            };
            let template_error = |field: String, reason: String| PolicyError::InvalidTemplate {
                policy: doc.id.clone(),
                template: used.name.clone(),
                field,
                reason,
            };
            let params = match template::fill_params(t, &used.params) {
                Ok(p) => p,
                Err((field, reason)) => {
                    c.errors.push(template_error(field, reason));
                    continue;
                }
            };
            for (i, raw) in t.rules.iter().enumerate() {
                match template::instantiate_rule(raw, &params) {
                    Ok(rule) => c.add(format!("{}.{}", t.name, rule.id), &rule),
                    Err(reason) => c.errors.push(template_error(format!("rules[{i}]"), reason)),
                }
            }
            if let Some(v) = t.fallback {
                // INVARIANT: with several fallbacks the most restrictive one is the default.
                if fallback
                    .as_ref()
                    .is_none_or(|(cur, _)| severity(v) > severity(*cur))
                {
                    fallback = Some((v, t.name.clone()));
                }
            }
            templates.push(TemplateCheck {
                name: t.name.clone(),
                stateful: plugin.template_is_stateful(&t.name),
                params,
            });
        }
        if let Some(e) = PolicyError::collect(c.errors) {
            return Err(e);
        }

        let mut by_action: HashMap<String, Vec<u32>> = HashMap::new();
        let mut any_action = Vec::new();
        let mut rules = c.rules;
        for (i, rule) in rules.iter_mut().enumerate() {
            let pos = u32::try_from(i).map_err(|_| PolicyError::InvalidRule {
                policy: doc.id.clone(),
                rule: rule.id.to_string(),
                field: "rules".into(),
                reason: "more than 2^32 rules".into(),
            })?;
            match rule.action.as_ref().and_then(Pattern::exact_type) {
                Some(t) => {
                    match by_action.get_mut(t) {
                        Some(list) => list.push(pos),
                        None => {
                            by_action.insert(t.to_owned(), vec![pos]);
                        }
                    }
                    if rule.action.as_ref().is_some_and(Pattern::is_plain_type) {
                        // The index lookup by type id is the whole match.
                        rule.action = None;
                    }
                }
                None => any_action.push(pos),
            }
        }

        // INVARIANT: a context condition's slot is its path's position in `context_fields`, the
        // order `ResolvedContext` looks the values up in.
        let context_fields: Vec<Box<[String]>> = c.context_fields.into_iter().collect();
        for condition in rules.iter_mut().flat_map(|r| r.when.iter_mut()) {
            if let Field::Context(path) = &condition.field {
                condition.slot = context_fields
                    .binary_search(path)
                    .ok()
                    .and_then(|i| u32::try_from(i).ok());
            }
        }
        let (default_id, default_reason) = default_decider(&doc.id, doc.mode, fallback.as_ref());
        Ok(Self {
            id: doc.id.clone(),
            domain: doc.domain.to_string(),
            mode: doc.mode,
            version_hash,
            rules,
            by_action,
            any_action,
            templates,
            fallback,
            default_id: default_id.into(),
            default_reason: default_reason.into(),
            compliance: ComplianceTable::of(plugin),
            types: TypeIndex::of(plugin.config()),
            context_fields,
            provenance_fields: c.provenance_fields.into_iter().collect(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Hex sha256 of the canonical JSON of the source document.
    pub fn version_hash(&self) -> &str {
        &self.version_hash
    }

    /// Number of compiled rules (document rules plus template data rules).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Rule ids in evaluation order (document rules, then `template.rule` ids).
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// The templates the policy enables, with filled parameters.
    pub fn templates(&self) -> &[TemplateCheck] {
        &self.templates
    }

    /// The no-match default a template imposes, if any.
    pub fn fallback(&self) -> Option<Verdict> {
        self.fallback.as_ref().map(|(v, _)| *v)
    }

    /// Whether any enabled template's check keeps state or reads the time.
    pub fn has_stateful_template(&self) -> bool {
        self.templates.iter().any(|t| t.stateful)
    }

    /// Whether a condition reads the provenance of a context key (`provenance.<key>`).
    pub fn reads_provenance(&self) -> bool {
        !self.provenance_fields.is_empty()
    }

    /// The context fields conditions read, as dotted paths (`order.value`).
    pub fn context_fields(&self) -> impl Iterator<Item = String> + '_ {
        self.context_fields.iter().map(|p| p.join("."))
    }
}

/// The id and reason of the no-match default of policy `policy`: a template's fallback, else the mode.
fn default_decider(
    policy: &str,
    mode: Mode,
    fallback: Option<&(Verdict, String)>,
) -> (String, String) {
    match fallback {
        Some((v, name)) => (
            format!("default:template:{name}"),
            format!(
                "no rule of policy {policy} decided; template {name} sets the default to {}",
                v.as_str()
            ),
        ),
        None => (
            format!("default:{}", mode_name(mode)),
            match mode {
                Mode::Strict => format!(
                    "no rule of policy {policy} permits this request (strict: deny by default)"
                ),
                Mode::Permissive => format!(
                    "no rule of policy {policy} forbids or escalates this request (permissive: permit by default)"
                ),
                Mode::DryRun => format!(
                    "no rule of policy {policy} permits this request (dry_run decides as strict)"
                ),
            },
        ),
    }
}

/// Hex sha256 of the canonical JSON of `doc` (object keys sorted, no whitespace), whatever the
/// document's source format or key order: [`PolicyDocument::policy_version_hash`], the one
/// definition. Kept as a function of this crate for its callers; it does not fail.
pub fn policy_version_hash(doc: &PolicyDocument) -> Result<String, PolicyError> {
    Ok(doc.policy_version_hash())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{plugin, yaml_policy, TestPlugin};

    #[test]
    fn every_error_of_a_document_is_reported_with_its_location() {
        let doc = yaml_policy(
            r#"
id: broken
domain: trading
templates: [{name: nope}, {name: order_cap, params: {maxx: 1}}]
rules:
  - {id: a, effect: permit, actor: "act_[x"}
  - {id: a, effect: permit}
  - {id: c, effect: forbid, when: [{field: context.x, op: lt}, {field: bogus, op: eq, value: 1}]}
"#,
        );
        let err = CompiledPolicy::compile(&doc, plugin().as_ref()).unwrap_err();
        let all = err.errors();
        assert_eq!(all.len(), 6, "{err}");
        assert!(all.iter().any(|e| matches!(e, PolicyError::InvalidRule { rule, field, .. } if rule == "a" && field == "actor")));
        assert!(all
            .iter()
            .any(|e| matches!(e, PolicyError::DuplicateRuleId { rule, .. } if rule == "a")));
        assert!(all.iter().any(|e| matches!(e, PolicyError::InvalidRule { rule, field, .. } if rule == "c" && field == "when[0].value")));
        assert!(all.iter().any(|e| matches!(e, PolicyError::InvalidRule { rule, field, .. } if rule == "c" && field == "when[1].field")));
        assert!(all.iter().any(
            |e| matches!(e, PolicyError::UnknownTemplate { template, .. } if template == "nope")
        ));
        assert!(all.iter().any(
            |e| matches!(e, PolicyError::InvalidTemplate { field, .. } if field == "params.maxx")
        ));
        assert!(err.to_string().starts_with("6 policy errors:"), "{err}");
    }

    #[test]
    fn compiling_with_another_domains_plugin_is_rejected() {
        let doc = yaml_policy("id: p\ndomain: trading\n");
        let other = TestPlugin::new("other");
        let err = CompiledPolicy::compile(&doc, &other).unwrap_err();
        assert!(matches!(err, PolicyError::DomainMismatch { .. }), "{err}");
    }

    #[test]
    fn version_hash_ignores_source_format_and_key_order() {
        let yaml = yaml_policy(
            "id: p\ndomain: trading\nrules:\n  - {id: r, effect: permit, when: [{field: context.a, op: in, value: [1, 2]}]}\n",
        );
        let json: PolicyDocument = serde_json::from_str(
            r#"{"rules":[{"when":[{"value":[1,2],"op":"in","field":"context.a"}],"effect":"permit","id":"r"}],"domain":"trading","id":"p"}"#,
        )
        .unwrap();
        let h = policy_version_hash(&yaml).unwrap();
        assert_eq!(h, policy_version_hash(&json).unwrap());
        assert_eq!(h.len(), 64);
        let mut changed = yaml.clone();
        changed.rules[0].id = "r2".into();
        assert_ne!(h, policy_version_hash(&changed).unwrap());
    }

    #[test]
    fn version_hash_is_sha256_of_serde_json_value_bytes() {
        use sha2::{Digest, Sha256};
        let doc = yaml_policy(
            "id: p\ndomain: trading\nmode: permissive\ntemplates: [{name: order_cap, params: {max: 5.25, desk: \"fx\"}}]\nrules:\n  - {id: r, effect: forbid, actor: \"act_*\", when: [{field: context.a, op: in, value: [1, \"é\\\"x\", {k: null}]}], reason: \"line\\nbreak\"}\n",
        );
        let expected = serde_json::to_vec(&serde_json::to_value(&doc).unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(doc.canonical_json()).unwrap(),
            String::from_utf8(expected.clone()).unwrap()
        );
        assert_eq!(
            policy_version_hash(&doc).unwrap(),
            hex::encode(Sha256::digest(&expected))
        );
    }

    #[test]
    fn stateful_templates_are_recorded_from_the_plugin() {
        let doc = yaml_policy("id: p\ndomain: trading\ntemplates: [{name: burst_guard}]\n");
        let p = CompiledPolicy::compile(&doc, plugin().as_ref()).unwrap();
        assert!(p.has_stateful_template());
        assert_eq!(p.templates()[0].params["limit"], serde_json::json!(3));
    }
}
