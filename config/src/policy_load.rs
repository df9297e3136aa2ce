//! Reading policy documents: YAML or JSON text (or the Lexecon 1.x format) into a
//! [`PolicyDocument`], with every syntax or shape error located by file and path.
//!
//! Owns parsing and file loading only; the semantic checks are [`crate::policy_validate`]. Reads a file
//! only when asked to (start-up, reload, CLI), never on the request path, and never panics on input.

use std::path::Path;

use lexecon_domains::DomainConfig;
use serde_json::Value;

use crate::error::{ConfigError, Located};
use crate::legacy;
use crate::policy::PolicyDocument;
use crate::policy_validate::validate_policy;
use crate::strict_value::StrictValue;

/// Parses a policy document from YAML or JSON text (JSON is YAML). A document in the Lexecon 1.x
/// format (`terms` / `relations`, no `rules`) is detected and converted to an `ai` domain policy.
///
/// Checks syntax and shape only (unknown fields, wrong types, unknown operators or effects); call
/// [`validate_policy`] for the semantic checks, or use [`load_policy_file`] for both.
pub fn parse_policy(file: &str, text: &str) -> Result<PolicyDocument, ConfigError> {
    // A JSON document (what `lexecon bundle build` writes) parses an order of magnitude faster as
    // JSON than as YAML; one that does not parse as JSON is read as YAML (JSON is YAML), whose
    // errors are the ones reported.
    // The fast path reads the document straight into its types (duplicate keys refused by the
    // derive and by the strict values inside); anything it does not take (the 1.x format, an
    // error to locate) goes the general way.
    if text.trim_start().starts_with('{') {
        if let Ok(doc) = serde_json::from_str::<PolicyDocument>(text) {
            return Ok(doc);
        }
    }
    let value = serde_norway::from_str::<StrictValue>(text)
        .map(|v| v.0)
        .map_err(|e| ConfigError::Invalid(vec![Located::new(file, "", e.to_string())]))?;
    policy_from_value(file, value)
}

/// Turns an already parsed JSON value (e.g. a policy inside a bundle) into a [`PolicyDocument`],
/// converting the Lexecon 1.x format when detected.
pub fn policy_from_value(file: &str, value: Value) -> Result<PolicyDocument, ConfigError> {
    match &value {
        Value::Object(map) => {
            if legacy::is_legacy(map) {
                return legacy::convert(file, map);
            }
        }
        Value::Null => {
            return Err(invalid(file, "", "the document is empty"));
        }
        other => {
            return Err(invalid(
                file,
                "",
                format!(
                    "expected a mapping with id, domain and rules, found {}",
                    json_kind(other)
                ),
            ));
        }
    }
    serde_path_to_error::deserialize::<_, PolicyDocument>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        invalid(file, path, e.into_inner().to_string())
    })
}

/// Reads, parses and validates a policy file. With `expected_domain`, the policy must be for that
/// domain and may only name its declared types and templates.
pub fn load_policy_file(
    path: &Path,
    expected_domain: Option<&DomainConfig>,
) -> Result<PolicyDocument, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        file: file.clone(),
        error,
    })?;
    let doc = parse_policy(&file, &text)?;
    validate_policy(&file, &doc, expected_domain)?;
    Ok(doc)
}

pub(crate) fn invalid(
    file: &str,
    path: impl Into<String>,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid(vec![Located::new(file, path, reason)])
}

/// A JSON value's kind in JSON's words ("an array", "an object"), for errors about JSON bodies
/// (the decision API, MCP messages); [`json_kind`] words it for YAML documents.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short name for a JSON value's kind, for error messages about YAML documents.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Effect, Mode, Op};

    const TRADING_DESK: &str = r#"
id: trading-desk
domain: finance
mode: strict
templates: [{name: prevent_flash_crash, params: {max_notional_per_minute: 10000000}}]
rules:
  - id: algos-may-trade
    effect: permit
    actor: "act_trading_algo:*"
    action: axn_place_order
    resource: "res_security:*"
    when: [{field: context.order_value, op: le, value: 5000000}]
    reason: Momentum algos may place orders up to 5M
"#;

    fn only_error(err: ConfigError) -> Located {
        let located = err.located().to_vec();
        assert_eq!(located.len(), 1, "expected one error, got {located:?}");
        located.into_iter().next().unwrap()
    }

    #[test]
    fn a_policy_as_json_reads_back_as_the_same_document_and_duplicate_keys_stay_refused() {
        let doc = parse_policy("desk.yaml", TRADING_DESK).unwrap();
        let json = serde_json::to_string(&doc).unwrap();
        // The typed fast path takes it (no fallback to the general way).
        serde_json::from_str::<PolicyDocument>(&json).unwrap();
        let back = parse_policy("desk.json", &json).unwrap();
        assert_eq!(back, doc);
        assert_eq!(back.policy_version_hash(), doc.policy_version_hash());
        // Not JSON (a YAML flow mapping): read as YAML.
        let flow = parse_policy("flow.yaml", "{id: x, domain: ai, rules: []}").unwrap();
        assert_eq!(flow.id, "x");
        // A duplicate key fails the JSON parse and then the YAML one, with its reason.
        let err = parse_policy(
            "dup.json",
            r#"{"id": "x", "id": "y", "domain": "ai", "rules": []}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
        // Also inside a condition's value and a template's parameters, which the typed JSON path
        // reads without the general one.
        let nested = r#"{"id": "x", "domain": "ai", "rules": [{"id": "r", "effect": "permit",
            "when": [{"field": "context.a", "op": "eq", "value": {"k": 1, "k": 2}}]}]}"#;
        let err = parse_policy("dup.json", nested).unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
        let params = r#"{"id": "x", "domain": "ai", "rules": [],
            "templates": [{"name": "t", "params": {"p": 1, "p": 2}}]}"#;
        let err = parse_policy("dup.json", params).unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn yaml_policy_parses_into_document() {
        let doc = parse_policy("desk.yaml", TRADING_DESK).unwrap();
        assert_eq!(doc.id, "trading-desk");
        assert_eq!(doc.domain.as_str(), "finance");
        assert_eq!(doc.mode, Mode::Strict);
        assert_eq!(doc.templates[0].name, "prevent_flash_crash");
        let rule = &doc.rules[0];
        assert_eq!(rule.effect, Effect::Permit);
        assert_eq!(rule.actor.as_deref(), Some("act_trading_algo:*"));
        assert_eq!(rule.when[0].op, Op::Le);
        assert_eq!(rule.when[0].value, Some(serde_json::json!(5000000)));
    }

    #[test]
    fn json_policy_parses_to_same_document_as_yaml() {
        let yaml = parse_policy("desk.yaml", TRADING_DESK).unwrap();
        let json = serde_json::to_string_pretty(&yaml).unwrap();
        let from_json = parse_policy("desk.json", &json).unwrap();
        assert_eq!(yaml, from_json);
        assert_eq!(yaml.policy_version_hash(), from_json.policy_version_hash());
    }

    #[test]
    fn unknown_field_is_rejected_with_its_path() {
        let text = TRADING_DESK.replace("when:", "whenn:");
        let err = only_error(parse_policy("desk.yaml", &text).unwrap_err());
        assert_eq!(err.file, "desk.yaml");
        assert_eq!(err.path, "rules[0].whenn");
        assert!(
            err.reason.contains("unknown field `whenn`"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn missing_required_field_is_named() {
        let err = only_error(parse_policy("p.yaml", "id: x\nrules: []\n").unwrap_err());
        assert_eq!(err.path, "");
        assert!(
            err.reason.contains("missing field `domain`"),
            "{}",
            err.reason
        );
        let text = TRADING_DESK.replace("    effect: permit\n", "");
        let err = only_error(parse_policy("desk.yaml", &text).unwrap_err());
        assert_eq!(err.path, "rules[0]");
        assert!(
            err.reason.contains("missing field `effect`"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn unknown_operator_is_rejected_with_its_path() {
        let text = TRADING_DESK.replace("op: le", "op: less_or_equal");
        let err = only_error(parse_policy("desk.yaml", &text).unwrap_err());
        assert_eq!(err.path, "rules[0].when[0].op");
        assert!(err.reason.contains("less_or_equal"), "{}", err.reason);
    }

    #[test]
    fn invalid_domain_id_is_rejected_at_domain() {
        let text = TRADING_DESK.replace("domain: finance", "domain: Finance");
        let err = only_error(parse_policy("desk.yaml", &text).unwrap_err());
        assert_eq!(err.path, "domain");
        assert!(err.reason.contains("Finance"), "{}", err.reason);
    }

    #[test]
    fn yaml_syntax_error_names_file_and_line() {
        let err = only_error(parse_policy("bad.yaml", "id: [unclosed\n").unwrap_err());
        assert_eq!(err.file, "bad.yaml");
        assert!(err.reason.contains("line"), "{}", err.reason);
    }

    #[test]
    fn duplicate_keys_are_rejected_with_line() {
        let text = TRADING_DESK.replace(
            "    effect: permit\n",
            "    effect: permit\n    effect: forbid\n",
        );
        let err = only_error(parse_policy("desk.yaml", &text).unwrap_err());
        assert!(
            err.reason.contains("duplicate key `effect`"),
            "{}",
            err.reason
        );
        assert!(err.reason.contains("rules[0]"), "{}", err.reason);
        assert!(err.reason.contains("line 7"), "{}", err.reason);
        let err = only_error(
            parse_policy("d.json", r#"{"id": "a", "domain": "ai", "id": "b"}"#).unwrap_err(),
        );
        assert!(err.reason.contains("duplicate key `id`"), "{}", err.reason);
    }

    #[test]
    fn empty_and_non_mapping_documents_are_rejected() {
        let err = only_error(parse_policy("e.yaml", "").unwrap_err());
        assert!(err.reason.contains("empty"), "{}", err.reason);
        let err = only_error(parse_policy("l.yaml", "- a\n- b\n").unwrap_err());
        assert!(err.reason.contains("found a list"), "{}", err.reason);
    }

    #[test]
    fn load_policy_file_reports_missing_file_with_its_name() {
        let err = load_policy_file(Path::new("/nonexistent/p.yaml"), None).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/p.yaml"));
    }

    #[test]
    fn load_policy_file_parses_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desk.yaml");
        std::fs::write(&path, TRADING_DESK).unwrap();
        assert_eq!(load_policy_file(&path, None).unwrap().id, "trading-desk");
        std::fs::write(&path, TRADING_DESK.replace("op: le", "op: matches")).unwrap();
        let err = load_policy_file(&path, None).unwrap_err();
        assert_eq!(err.located()[0].path, "rules[0].when[0].value");
    }
}
