//! The example policies in `config/examples/` load and validate against their domains; others reuse
//! them for the demo, so a change that breaks them must fail here.

mod support;

use std::path::PathBuf;

use lexecon_config::{instantiate_template, load_policy_file, parse_policy, Effect};
use lexecon_domains::DomainConfig;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.yaml"))
}

#[test]
fn every_example_policy_validates_against_its_domain() {
    let cases: [(&str, DomainConfig); 3] = [
        ("ai", support::ai()),
        ("finance", support::finance()),
        ("healthcare", support::healthcare()),
    ];
    for (name, domain) in cases {
        let doc = load_policy_file(&example(name), Some(&domain))
            .unwrap_or_else(|e| panic!("examples/{name}.yaml: {e}"));
        assert_eq!(doc.domain.as_str(), name);
        assert!(!doc.rules.is_empty());
        assert!(
            doc.rules.iter().all(|r| r.reason.is_some()),
            "{name}: every rule explains itself"
        );
    }
}

#[test]
fn example_policy_loaded_for_the_wrong_domain_is_rejected() {
    let err = load_policy_file(&example("finance"), Some(&support::healthcare())).unwrap_err();
    assert_eq!(err.located()[0].path, "domain");
}

#[test]
fn finance_example_names_the_issue_rule() {
    let doc = load_policy_file(&example("finance"), Some(&support::finance())).unwrap();
    let rule = doc.rule("algos-may-trade").unwrap();
    assert_eq!(rule.effect, Effect::Permit);
    assert_eq!(rule.actor.as_deref(), Some("act_trading_algo:*"));
    assert_eq!(
        rule.when[0].value,
        Some(serde_json::json!(5_000_000)),
        "limit read as a number"
    );
}

#[test]
fn typo_in_action_type_is_reported_against_the_real_domain() {
    let text = std::fs::read_to_string(example("finance"))
        .unwrap()
        .replacen("action: axn_place_order", "action: axn_plac_order", 1);
    let doc = parse_policy("finance.yaml", &text).unwrap();
    let err = lexecon_config::validate_policy("finance.yaml", &doc, Some(&support::finance()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "finance.yaml: rules[0].action: unknown action type axn_plac_order in domain finance (did you mean axn_place_order?)"
    );
}

#[test]
fn instantiated_template_round_trips_through_yaml_and_validates() {
    let domain = support::finance();
    let doc = instantiate_template(&domain, "prevent_flash_crash", Default::default()).unwrap();
    let yaml = serde_norway::to_string(&doc).unwrap();
    let back = parse_policy("<stdout>", &yaml).unwrap();
    assert_eq!(back, doc);
    lexecon_config::validate_policy("<stdout>", &back, Some(&domain)).unwrap();
    assert_eq!(
        back.rules[0].reason.as_deref(),
        Some("single orders above 10000000 need a human")
    );
}

#[test]
fn converted_1x_policy_validates_against_the_ai_domain() {
    let text = r#"{
      "mode": "paranoid",
      "terms": [
        {"term_id": "actor:model", "term_type": "actor", "label": "AI Model", "description": ""},
        {"term_id": "action:search", "term_type": "action", "label": "Search", "description": ""},
        {"term_id": "action:write", "term_type": "action", "label": "Write", "description": ""}
      ],
      "relations": [
        {"relation_type": "permits", "source": "actor:model", "target": "action:search"},
        {"relation_type": "forbids", "source": "actor:model", "target": "action:write"}
      ]
    }"#;
    let doc = parse_policy("legacy.json", text).unwrap();
    lexecon_config::validate_policy("legacy.json", &doc, Some(&support::ai())).unwrap();
    assert_eq!(doc.templates[0].name, "high_risk_human_oversight");
    assert_eq!(doc.rules[1].effect, Effect::Forbid);
    assert_eq!(doc.rules[1].actor.as_deref(), Some("model"));
}

#[test]
fn list_valued_template_param_is_substituted_as_a_list() {
    let doc = instantiate_template(
        &support::healthcare(),
        "hipaa_minimum_necessary",
        serde_json::from_str(r#"{"allowed_purposes": ["TREAT"]}"#).unwrap(),
    )
    .unwrap();
    assert_eq!(
        doc.rules[0].when[0].value,
        Some(serde_json::json!(["TREAT"]))
    );
}

#[test]
fn every_example_policy_and_builtin_template_validates_against_the_real_builtin_domains() {
    let registry = lexecon_domains::DomainRegistry::builtin().unwrap();
    for name in ["ai", "finance", "healthcare"] {
        let domain = registry.get(name).unwrap().config();
        load_policy_file(&example(name), Some(domain)).unwrap_or_else(|e| {
            panic!("examples/{name}.yaml against the built-in {name} domain: {e}")
        });
    }
    for id in registry.domains() {
        let domain = registry.get(id.as_str()).unwrap().config();
        for template in &domain.policy_templates {
            let doc =
                lexecon_config::instantiate_template(domain, &template.name, Default::default())
                    .unwrap_or_else(|e| panic!("{id}/{}: {e}", template.name));
            lexecon_config::validate_policy("<template>", &doc, Some(domain))
                .unwrap_or_else(|e| panic!("{id}/{} instantiated: {e}", template.name));
        }
    }
}

#[test]
fn the_complete_file_in_the_configuration_reference_loads_and_validates() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let start = doc.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let config = lexecon_config::Config::from_yaml("docs/configuration.md", &doc[start..end])
        .unwrap_or_else(|e| panic!("the documented configuration does not load:\n{e}"));
    assert_eq!(config.node_id, "sidecar-a1");
    assert_eq!(config.routes.len(), 1);
    assert!(!config.ledger.settings().unwrap().redact.is_empty());
}
