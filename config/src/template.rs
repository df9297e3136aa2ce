//! Instantiating a domain's policy template into a policy document (`lexecon policy load --template`).
//!
//! Owns parameter checking (unknown names, kinds that differ from the default), filling defaults and
//! `{{param}}` substitution in the template's data rules (the placeholder syntax and substitution
//! itself are `lexecon_domains::placeholder`'s). The result is validated against the domain
//! like any policy. Never panics on a malformed template; reports it with the template's name and path.

use lexecon_domains::{placeholder, DomainConfig, DomainError, PolicyTemplate};
use serde_json::{Map, Value};

use crate::error::{ConfigError, Located};
use crate::policy::{Mode, PolicyDocument, Rule, TemplateUse};
use crate::policy_load::json_kind;
use crate::policy_validate::{policy_errors, same_kind};

/// A strict policy for `domain` that enables template `name` with `params` (defaults filled in) and
/// contains the template's data rules with every `{{param}}` replaced by its value.
///
/// A string that is exactly `{{param}}` becomes the parameter's JSON value (so a number stays a
/// number); a placeholder inside a longer string is replaced by the value's text.
pub fn instantiate_template(
    domain: &DomainConfig,
    name: &str,
    params: Map<String, Value>,
) -> Result<PolicyDocument, ConfigError> {
    let template = domain
        .template(name)
        .ok_or_else(|| ConfigError::UnknownTemplate {
            domain: domain.domain.to_string(),
            name: name.to_string(),
            available: domain
                .policy_templates
                .iter()
                .map(|t| t.name.clone())
                .collect(),
        })?;
    let file = format!("<template {name}>");
    let mut errors = Vec::new();
    let effective = fill_params(&file, template, params, &mut errors);
    let mut rules = Vec::with_capacity(template.rules.len());
    for (i, raw) in template.rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        let substituted = match substitute(raw, &effective, &at) {
            Ok(v) => v,
            Err(e) => {
                errors.push(Located::new(&file, e.0, e.1));
                continue;
            }
        };
        match serde_path_to_error::deserialize::<_, Rule>(substituted) {
            Ok(rule) => rules.push(rule),
            Err(e) => {
                let inner = e.path().to_string();
                let path = if inner == "." {
                    at
                } else {
                    format!("{at}.{inner}")
                };
                errors.push(Located::new(&file, path, e.into_inner().to_string()));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    let doc = PolicyDocument {
        id: format!("{}-{name}", domain.domain),
        domain: domain.domain.clone(),
        mode: Mode::Strict,
        description: template.description.clone(),
        templates: vec![TemplateUse {
            name: name.to_string(),
            params: effective,
        }],
        rules,
    };
    let errors = policy_errors(&file, &doc, Some(domain));
    if errors.is_empty() {
        Ok(doc)
    } else {
        Err(ConfigError::Invalid(errors))
    }
}

/// The template's defaults overridden by `params`; unknown names and wrong kinds are reported.
fn fill_params(
    file: &str,
    template: &PolicyTemplate,
    params: Map<String, Value>,
    errors: &mut Vec<Located>,
) -> Map<String, Value> {
    let mut effective: Map<String, Value> = template
        .params
        .iter()
        .map(|(k, p)| (k.clone(), p.default.clone()))
        .collect();
    for (key, value) in params {
        let path = format!("params.{key}");
        match template.params.get(&key) {
            None => {
                let known: Vec<&str> = template.params.keys().map(String::as_str).collect();
                errors.push(Located::new(
                    file,
                    path,
                    format!(
                        "unknown parameter {key} of template {} (parameters: {})",
                        template.name,
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            Some(p) if !same_kind(&p.default, &value) => errors.push(Located::new(
                file,
                path,
                format!(
                    "expected {} like the default {}, found {}",
                    json_kind(&p.default),
                    p.default,
                    json_kind(&value)
                ),
            )),
            Some(_) => {
                effective.insert(key, value);
            }
        }
    }
    effective
}

/// Replaces `{{param}}` placeholders in every string of `value` (rule `at`) with
/// [`lexecon_domains::placeholder::substitute`]. `Err((path, reason))` names an unknown or
/// unterminated placeholder.
fn substitute(
    value: &Value,
    params: &Map<String, Value>,
    at: &str,
) -> Result<Value, (String, String)> {
    placeholder::substitute(value, params).map_err(|e| match &e {
        DomainError::UnknownPlaceholder { path, .. } => (
            format!("{at}{path}"),
            format!("{e} (parameters: {})", keys(params)),
        ),
        DomainError::UnterminatedPlaceholder { path, .. } => (format!("{at}{path}"), e.to_string()),
        other => (at.to_string(), other.to_string()),
    })
}

fn keys(params: &Map<String, Value>) -> String {
    params.keys().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Effect;
    use crate::policy_validate::tests::finance;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test params are objects"),
        }
    }

    #[test]
    fn template_instantiates_with_defaults_filled_and_placeholders_substituted() {
        let doc = instantiate_template(&finance(), "prevent_flash_crash", Map::new()).unwrap();
        assert_eq!(doc.id, "finance-prevent_flash_crash");
        assert_eq!(doc.domain.as_str(), "finance");
        assert_eq!(
            doc.templates[0].params.get("max_notional_per_minute"),
            Some(&json!(10_000_000))
        );
        let rule = &doc.rules[0];
        assert_eq!(rule.effect, Effect::Escalate);
        assert_eq!(
            rule.when[0].value,
            Some(json!(10_000_000)),
            "stays a number"
        );
        assert_eq!(
            rule.reason.as_deref(),
            Some("orders above 10000000 need a human")
        );
    }

    #[test]
    fn given_params_override_defaults() {
        let doc = instantiate_template(
            &finance(),
            "prevent_flash_crash",
            params(json!({"max_notional_per_minute": 250})),
        )
        .unwrap();
        assert_eq!(doc.rules[0].when[0].value, Some(json!(250)));
        assert_eq!(
            doc.rules[0].reason.as_deref(),
            Some("orders above 250 need a human")
        );
    }

    #[test]
    fn unknown_template_lists_available_ones() {
        let err = instantiate_template(&finance(), "prevent_crash", Map::new()).unwrap_err();
        assert!(matches!(err, ConfigError::UnknownTemplate { .. }));
        assert_eq!(
            err.to_string(),
            "unknown template \"prevent_crash\" in domain finance (available: prevent_flash_crash)"
        );
    }

    #[test]
    fn unknown_and_mistyped_params_are_all_reported() {
        let err = instantiate_template(
            &finance(),
            "prevent_flash_crash",
            params(json!({"max_notional_per_minute": "ten", "window": 60})),
        )
        .unwrap_err();
        let got: Vec<&str> = err.located().iter().map(|l| l.path.as_str()).collect();
        assert_eq!(got, ["params.max_notional_per_minute", "params.window"]);
    }

    #[test]
    fn template_rule_with_unknown_placeholder_is_reported() {
        let mut domain = finance();
        domain.policy_templates[0].rules[0]["reason"] = json!("limit {{nope}}");
        let err = instantiate_template(&domain, "prevent_flash_crash", Map::new()).unwrap_err();
        assert_eq!(err.located()[0].path, "rules[0].reason");
        assert!(err.located()[0]
            .reason
            .contains("unknown placeholder {{nope}}"));
    }

    #[test]
    fn template_rule_with_unclosed_placeholder_is_reported_not_kept_as_text() {
        let mut domain = finance();
        domain.policy_templates[0].rules[0]["reason"] = json!("limit {{max_notional_per_minute");
        let err = instantiate_template(&domain, "prevent_flash_crash", Map::new()).unwrap_err();
        assert_eq!(err.located()[0].path, "rules[0].reason");
        assert!(
            err.located()[0].reason.contains("unterminated placeholder"),
            "{}",
            err.located()[0].reason
        );
    }

    #[test]
    fn malformed_template_rule_is_reported_with_its_path() {
        let mut domain = finance();
        domain.policy_templates[0].rules[0]["effect"] = json!("allow");
        let err = instantiate_template(&domain, "prevent_flash_crash", Map::new()).unwrap_err();
        assert_eq!(err.located()[0].file, "<template prevent_flash_crash>");
        assert_eq!(err.located()[0].path, "rules[0].effect");
    }
}
