//! Property tests: validation never panics and accepts exactly what it documents.

use super::*;
use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_decision_request("ai", &body);
        let _ = parse_legacy_decide(&body);
        let _ = parse_approval_comment(&body);
    }

    #[test]
    fn accepted_context_respects_the_limits(ctx in json_value()) {
        let body = serde_json::json!({"actor": "a", "action": "x", "context": ctx});
        if let Ok(req) = parse_decision_request("ai", body.to_string().as_bytes()) {
            prop_assert!(req.input.context.len() <= MAX_CONTEXT_KEYS);
            fn depth(v: &Value) -> usize {
                match v {
                    Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
                    Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                    _ => 0,
                }
            }
            prop_assert!(depth(&Value::Object(req.input.context)) <= MAX_CONTEXT_DEPTH);
        } else {
            // Rejected only when the context is not an object or nests too deeply.
            let is_object = body["context"].is_object() || body["context"].is_null();
            let too_deep = body["context"].as_object().is_some_and(|m| {
                m.values().any(|v| too_deep(v, 2).is_some())
            });
            prop_assert!(!is_object || too_deep);
        }
    }
}
