//! Template instantiation: fill a template's parameter defaults under the policy's values, and turn
//! its data rules (JSON in the rule format) into [`Rule`]s by replacing `{{param}}` placeholders with
//! `lexecon_domains::placeholder` (which owns the placeholder syntax: a whole-string placeholder
//! keeps the parameter's JSON type, an unknown or unterminated one is an error). Pure functions of
//! the template and the parameters; nothing here runs per request and nothing here parses
//! placeholders itself.

use lexecon_config::Rule;
use lexecon_domains::{placeholder, PolicyTemplate};
use serde_json::{Map, Value};

/// The template's declared defaults overlaid with `given`. A parameter the template does not declare
/// is an error naming it and the declared ones.
pub(crate) fn fill_params(
    template: &PolicyTemplate,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, (String, String)> {
    if let Some(unknown) = given.keys().find(|k| !template.params.contains_key(*k)) {
        let declared: Vec<&str> = template.params.keys().map(String::as_str).collect();
        return Err((
            format!("params.{unknown}"),
            format!(
                "template {} has no parameter {unknown:?} (declared: {})",
                template.name,
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            ),
        ));
    }
    let mut filled = Map::new();
    for (name, param) in &template.params {
        let value = given
            .get(name)
            .cloned()
            .unwrap_or_else(|| param.default.clone());
        filled.insert(name.clone(), value);
    }
    Ok(filled)
}

/// Instantiates one data rule of a template.
pub(crate) fn instantiate_rule(raw: &Value, params: &Map<String, Value>) -> Result<Rule, String> {
    let value = placeholder::substitute(raw, params).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| format!("not a valid rule after substitution: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> PolicyTemplate {
        serde_json::from_value(json!({
            "name": "order_cap",
            "params": {
                "max": {"default": 1000},
                "venues": {"default": ["XNYS"]},
                "desk": {"default": "equities"}
            },
            "rules": [{
                "id": "cap-{{desk}}",
                "effect": "escalate",
                "action": "axn_place_order",
                "when": [
                    {"field": "context.order_value", "op": "gt", "value": "{{max}}"},
                    {"field": "context.venue", "op": "in", "value": "{{ venues }}"}
                ],
                "reason": "orders above {{max}} on {{desk}} need approval"
            }]
        }))
        .unwrap()
    }

    #[test]
    fn whole_placeholders_keep_json_type_and_inline_ones_become_text() {
        let t = template();
        let params = fill_params(&t, json!({"max": 5000}).as_object().unwrap()).unwrap();
        let rule = instantiate_rule(&t.rules[0], &params).unwrap();
        assert_eq!(rule.id, "cap-equities");
        assert_eq!(rule.when[0].value, Some(json!(5000)));
        assert_eq!(rule.when[1].value, Some(json!(["XNYS"])));
        assert_eq!(
            rule.reason.as_deref(),
            Some("orders above 5000 on equities need approval")
        );
    }

    #[test]
    fn unknown_parameters_are_rejected_naming_declared_ones() {
        let err = fill_params(&template(), json!({"maxx": 1}).as_object().unwrap()).unwrap_err();
        assert_eq!(err.0, "params.maxx");
        assert!(err.1.contains("declared: desk, max, venues"), "{}", err.1);
    }

    #[test]
    fn placeholder_without_parameter_or_unterminated_is_an_error() {
        let params = Map::new();
        let rule = |reason: &str| json!({"id": "r", "effect": "permit", "reason": reason});
        assert!(instantiate_rule(&rule("{{nope}}"), &params)
            .unwrap_err()
            .contains("nope"));
        assert!(instantiate_rule(&rule("a {{b"), &params)
            .unwrap_err()
            .contains("unterminated"));
    }
}
