//! Parsers never panic: any text, any JSON shape and any bytes give a document or a located error.

use lexecon_config::{parse_policy, policy_from_value, validate_policy, Bundle};
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("permits"),
            Just("forbids"),
            Just("requires"),
            Just("actor:a"),
            Just("action:b"),
            Just("data:c"),
            Just("actor"),
            Just("action"),
            Just("data_class"),
            Just("x <= 1"),
            Just("strict"),
            Just("paranoid"),
            Just("permit"),
            Just("eq"),
            Just("matches"),
            Just("(")
        ]
        .prop_map(|s| Value::String(s.to_string())),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    let keys = prop_oneof![
        Just("terms".to_string()),
        Just("relations".to_string()),
        Just("mode".to_string()),
        Just("term_id".to_string()),
        Just("term_type".to_string()),
        Just("type".to_string()),
        Just("relation_type".to_string()),
        Just("source".to_string()),
        Just("target".to_string()),
        Just("subject".to_string()),
        Just("object".to_string()),
        Just("conditions".to_string()),
        Just("condition".to_string()),
        Just("metadata".to_string()),
        Just("id".to_string()),
        Just("domain".to_string()),
        Just("rules".to_string()),
        Just("when".to_string()),
        Just("effect".to_string()),
        Just("field".to_string()),
        Just("op".to_string()),
        Just("value".to_string()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_policy_never_panics_on_any_text(text in "\\PC{0,200}") {
        if let Ok(doc) = parse_policy("fuzz.yaml", &text) {
            let _ = validate_policy("fuzz.yaml", &doc, None);
        }
    }

    #[test]
    fn any_json_shape_converts_or_reports_located_errors(value in json_value()) {
        match policy_from_value("fuzz.json", value) {
            Ok(doc) => { let _ = validate_policy("fuzz.json", &doc, None); }
            Err(e) => prop_assert!(!e.located().is_empty(), "error without location: {e}"),
        }
    }

    #[test]
    fn bundle_parser_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Bundle::parse(&bytes);
    }
}
