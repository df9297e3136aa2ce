//! The `policy` target: any text through the whole policy load path — `parse_policy` (YAML or JSON,
//! the Lexecon 1.x format converted), `validate_policy` against the built-in domain the document
//! names, `CompiledPolicy::compile` for that domain's plugin, and one evaluation of the compiled
//! policy. Besides "never panics": a refused document is refused with located errors (this file's
//! name, a path, a reason), and a document without floats survives its canonical JSON unchanged
//! (same document, same version hash). Floats are left out of that round trip because the fuzz
//! build's serde_json parses without `float_roundtrip` (the workspace build turns it on).

use std::sync::LazyLock;

use lexecon_config::{parse_policy, policy_from_value, validate_policy, ConfigError};
use lexecon_domains::{DomainRegistry, EntityRef, Request};
use lexecon_policy_cache::CompiledPolicy;
use serde_json::Value;

const FILE: &str = "fuzz-policy.yaml";

static REGISTRY: LazyLock<DomainRegistry> = LazyLock::new(|| match DomainRegistry::builtin() {
    Ok(registry) => registry,
    Err(e) => panic!("the built-in domains do not load: {e}"),
});

fn assert_located(err: &ConfigError, file: &str) {
    let located = err.located();
    assert!(!located.is_empty(), "an error without a location: {err}");
    for l in located {
        assert_eq!(l.file, file, "{l}");
        assert!(!l.reason.is_empty(), "an error without a reason: {l}");
    }
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// A request of the domain's first declared types, with some context.
fn sample_request(registry_domain: &lexecon_domains::DomainConfig) -> Option<Request> {
    let actor = registry_domain.actor_types.first()?;
    let action = registry_domain.action_types.first()?;
    let resource = registry_domain.resource_types.first();
    let mut context = serde_json::Map::new();
    context.insert("order_value".into(), Value::from(5_000));
    context.insert("patient_consent".into(), Value::Bool(true));
    Some(Request {
        domain: registry_domain.domain.clone(),
        actor: EntityRef::parse(format!("{}:fuzz", actor.type_id)).ok()?,
        action: EntityRef::parse(action.type_id.clone()).ok()?,
        resource: resource.and_then(|r| EntityRef::parse(format!("{}:1", r.type_id)).ok()),
        context,
        provenance: Default::default(),
        time: jiff::Timestamp::UNIX_EPOCH,
    })
}

/// Fuzz target `policy`.
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let doc = match parse_policy(FILE, &text) {
        Ok(doc) => doc,
        Err(e) => return assert_located(&e, FILE),
    };
    // The canonical form is the document.
    let canonical = doc.canonical_json();
    match serde_json::from_slice::<Value>(&canonical) {
        Ok(value) if !has_float(&value) => match policy_from_value("canonical.json", value) {
            Ok(back) => {
                assert_eq!(back, doc, "the canonical JSON reads back differently");
                assert_eq!(back.policy_version_hash(), doc.policy_version_hash());
            }
            Err(e) => panic!("the canonical JSON of a parsed document does not parse: {e}"),
        },
        Ok(_) => {}
        Err(e) => panic!("canonical_json is not JSON ({e})"),
    }
    let plugin = REGISTRY.get(doc.domain.as_str());
    let domain_config = plugin.map(|p| p.config());
    if let Err(e) = validate_policy(FILE, &doc, None) {
        assert_located(&e, FILE);
    }
    if let Err(e) = validate_policy(FILE, &doc, domain_config) {
        assert_located(&e, FILE);
    }
    let Some(plugin) = plugin else { return };
    let compiled = match CompiledPolicy::compile(&doc, plugin.as_ref()) {
        Ok(compiled) => compiled,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert_eq!(compiled.version_hash(), doc.policy_version_hash());
    if let Some(request) = sample_request(plugin.config()) {
        let outcome = compiled.evaluate(&request);
        let explained = compiled.explain(&outcome);
        assert_eq!(explained.matched_rules.len(), outcome.matched.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_and_broken_policies_go_through_the_whole_load_path() {
        policy(include_bytes!("../../../deploy/policies/finance.yaml"));
        policy(include_bytes!("../../../config/examples/healthcare.yaml"));
        policy(b"id: x\ndomain: ai\nrules: [{id: a, effect: permit, when: [{field: context.a, op: in, value: 5}]}]\n");
        policy(b"id: [unclosed\n");
        policy(b"\xff\xfe");
    }

    #[test]
    fn a_refused_document_names_the_file_and_a_path() {
        let err = parse_policy(FILE, "id: x\nrules: []\n").unwrap_err();
        assert_located(&err, FILE);
    }
}
