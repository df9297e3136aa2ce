//! Tests of decision request parsing and validation (v1 and the 1.x `/decide` body).

use super::*;
use serde_json::json;

fn fields_of(err: RequestError) -> Vec<(String, String)> {
    match err {
        RequestError::InvalidFields { fields } => {
            fields.into_iter().map(|f| (f.field, f.reason)).collect()
        }
        other => panic!("expected InvalidFields, got {other:?}"),
    }
}

fn nested(depth: usize) -> Value {
    // `depth` levels of objects below a leaf: nested(1) = {"x": 1}.
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "x": v });
    }
    v
}

#[test]
fn valid_body_becomes_decision_input_without_a_caller_chosen_time() {
    let body = json!({
        "request_id": "req-1",
        "actor": "act_trading_algo:momentum_v3",
        "action": "axn_place_order",
        "resource": "res_security:AAPL",
        "context": {"order_value": 500000, "venue": {"mic": "XNYS"}},
        "approval_id": "apr_1"
    });
    let req = parse_decision_request("finance", body.to_string().as_bytes()).unwrap();
    assert_eq!(req.input.domain, "finance");
    assert_eq!(req.input.request_id.as_deref(), Some("req-1"));
    assert_eq!(req.input.actor, "act_trading_algo:momentum_v3");
    assert_eq!(req.input.action, "axn_place_order");
    assert_eq!(req.input.resource.as_deref(), Some("res_security:AAPL"));
    assert_eq!(req.input.context["order_value"], json!(500000));
    assert_eq!(req.input.at, None);
    assert_eq!(req.approval_id.as_deref(), Some("apr_1"));
}

#[test]
fn minimal_body_needs_only_actor_and_action() {
    let req = parse_decision_request("ai", br#"{"actor":"model","action":"search"}"#).unwrap();
    assert_eq!(req.input.resource, None);
    assert!(req.input.context.is_empty());
    assert_eq!(req.approval_id, None);
}

#[test]
fn every_invalid_field_is_listed_with_its_reason() {
    let body = json!({
        "request_id": "has space",
        "actor": 42,
        "resource": ":AAPL",
        "context": [1],
        "approval_id": "a/b",
        "at": "2026-01-01T00:00:00Z",
    });
    let fields =
        fields_of(parse_decision_request("finance", body.to_string().as_bytes()).unwrap_err());
    let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "request_id",
            "actor",
            "action",
            "resource",
            "context",
            "approval_id",
            "at"
        ]
    );
    assert_eq!(fields[1].1, "expected a string, found a number");
    assert_eq!(fields[2].1, "is required");
    assert!(
        fields[3].1.contains("type id before ':' is empty"),
        "{}",
        fields[3].1
    );
    assert_eq!(fields[4].1, "expected an object, found an array");
    assert!(fields[6].1.starts_with("unknown field"), "{}", fields[6].1);
}

#[test]
fn field_limits_are_enforced_at_their_boundaries() {
    let cases: Vec<(Value, Option<&str>)> = vec![
        (json!({"actor": "a".repeat(255), "action": "x"}), None),
        (
            json!({"actor": "a".repeat(256), "action": "x"}),
            Some("actor"),
        ),
        (json!({"actor": "é".repeat(255), "action": "x"}), None),
        (json!({"actor": "", "action": "x"}), Some("actor")),
        (json!({"actor": "a", "action": "x".repeat(512)}), None),
        (
            json!({"actor": "a", "action": "x".repeat(513)}),
            Some("action"),
        ),
        (json!({"actor": "a", "action": "x", "resource": null}), None),
        (json!({"actor": null, "action": "x"}), Some("actor")),
        (json!({"actor": "a\u{7}", "action": "x"}), Some("actor")),
        (
            json!({"actor": "a", "action": "x", "request_id": "r".repeat(128)}),
            None,
        ),
        (
            json!({"actor": "a", "action": "x", "request_id": "r".repeat(129)}),
            Some("request_id"),
        ),
        (
            json!({"actor": "a", "action": "x", "request_id": ""}),
            Some("request_id"),
        ),
    ];
    for (body, bad_field) in cases {
        let result = parse_decision_request("ai", body.to_string().as_bytes());
        match bad_field {
            None => assert!(result.is_ok(), "{body} should be accepted: {result:?}"),
            Some(field) => {
                let fields = fields_of(result.unwrap_err());
                assert_eq!(fields.len(), 1, "{fields:?}");
                assert_eq!(fields[0].0, field, "{body}");
            }
        }
    }
}

#[test]
fn context_with_more_than_100_keys_is_rejected() {
    let mut ctx = Map::new();
    for i in 0..100 {
        ctx.insert(format!("k{i}"), json!(i));
    }
    let ok = json!({"actor": "a", "action": "x", "context": ctx.clone()});
    assert!(parse_decision_request("ai", ok.to_string().as_bytes()).is_ok());
    ctx.insert("k100".into(), json!(100));
    let bad = json!({"actor": "a", "action": "x", "context": ctx});
    let fields = fields_of(parse_decision_request("ai", bad.to_string().as_bytes()).unwrap_err());
    assert_eq!(fields[0].0, "context");
    assert_eq!(fields[0].1, "must have at most 100 keys, found 101");
}

#[test]
fn context_nested_beyond_five_levels_is_rejected_with_the_path() {
    // context (level 1) + 4 nested objects = 5 levels: accepted.
    let ok = json!({"actor": "a", "action": "x", "context": {"a": nested(4)}});
    assert!(parse_decision_request("ai", ok.to_string().as_bytes()).is_ok());
    let bad = json!({"actor": "a", "action": "x", "context": {"ok": 1, "a": nested(5)}});
    let fields = fields_of(parse_decision_request("ai", bad.to_string().as_bytes()).unwrap_err());
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].0, "context.a.x.x.x.x");
    assert!(fields[0].1.contains("at most 5 levels"), "{}", fields[0].1);
    let arrays = json!({"actor": "a", "action": "x", "context": {"l": [[[[[1]]]]]}});
    let fields =
        fields_of(parse_decision_request("ai", arrays.to_string().as_bytes()).unwrap_err());
    assert_eq!(fields[0].0, "context.l[0][0][0][0]");
}

#[test]
fn syntax_error_reports_line_and_column() {
    let err =
        parse_decision_request("ai", b"{\n  \"actor\": \"a\",\n  \"action\" 1\n}").unwrap_err();
    match &err {
        RequestError::Syntax {
            line,
            column,
            message,
        } => {
            assert_eq!((*line, *column), (3, 12));
            assert!(message.contains("expected `:`"), "{message}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert_eq!(err.fields()[0].field, "body");
    assert!(err.fields()[0].reason.contains("line 3, column 12"));
}

#[test]
fn non_object_body_is_rejected() {
    let fields = fields_of(parse_decision_request("ai", b"[1,2]").unwrap_err());
    assert_eq!(
        fields,
        [(
            "body".to_owned(),
            "expected a JSON object, found an array".to_owned()
        )]
    );
}

#[test]
fn body_over_64_kib_is_too_large() {
    let filler = "x".repeat(MAX_BODY_BYTES);
    let body = format!(r#"{{"actor":"a","action":"x","context":{{"f":"{filler}"}}}}"#);
    assert_eq!(
        parse_decision_request("ai", body.as_bytes()),
        Err(RequestError::BodyTooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES
        })
    );
}

#[test]
fn declared_length_over_64_kib_is_refused_before_reading() {
    assert!(check_body_len(65_536).is_ok());
    assert_eq!(
        check_body_len(65_537),
        Err(RequestError::BodyTooLarge {
            size: 65_537,
            limit: MAX_BODY_BYTES
        })
    );
}

#[test]
fn invalid_domain_is_400_and_unsupported_domain_helper_names_it() {
    let err = parse_decision_request("Fin", br#"{"actor":"a","action":"x"}"#).unwrap_err();
    assert_eq!(err.to_string(), "Invalid domain: Fin");
    assert_eq!(
        domain_not_supported("logistics").to_string(),
        "Domain not supported: logistics"
    );
    assert!(check_domain("supply_chain").is_ok());
}

#[test]
fn legacy_decide_body_maps_to_ai_decision_input() {
    let body = json!({
        "request_id": "r1",
        "actor": "model",
        "proposed_action": "search",
        "tool": "web_search",
        "user_intent": "find the quarterly report",
        "data_classes": ["public"],
        "risk_level": 2,
        "requested_output_type": "Tool_Action",
        "policy_mode": "STRICT",
        "context": {"session": "s1", "tool": "ignored"}
    });
    let req = parse_legacy_decide(body.to_string().as_bytes()).unwrap();
    assert_eq!(req.requested_output_type, "tool_action");
    assert_eq!(req.policy_mode, "strict");
    let input = req.to_decision_input();
    assert_eq!(input.domain, "ai");
    assert_eq!(input.actor, "model");
    assert_eq!(input.action, "search");
    assert_eq!(input.resource, None);
    assert_eq!(input.request_id.as_deref(), Some("r1"));
    assert_eq!(input.context["tool"], json!("web_search"));
    assert_eq!(
        input.context["user_intent"],
        json!("find the quarterly report")
    );
    assert_eq!(input.context["data_classes"], json!(["public"]));
    assert_eq!(input.context["risk_level"], json!(2));
    assert_eq!(input.context["policy_mode"], json!("strict"));
    assert_eq!(input.context["session"], json!("s1"));
}

#[test]
fn legacy_decide_defaults_match_1x() {
    let body = br#"{"actor":"model","proposed_action":"search","tool":"web","user_intent":"x"}"#;
    let req = parse_legacy_decide(body).unwrap();
    assert_eq!(req.risk_level, 1);
    assert_eq!(req.requested_output_type, "tool_action");
    assert_eq!(req.policy_mode, "strict");
    assert!(req.data_classes.is_empty());
}

#[test]
fn legacy_decide_lists_every_bad_field() {
    let body = json!({
        "actor": "model",
        "tool": "web search",
        "user_intent": "  ",
        "data_classes": ["ok", "", 3],
        "risk_level": 6,
        "requested_output_type": "essay",
        "policy_mode": "lenient",
        "context": "x"
    });
    let fields = fields_of(parse_legacy_decide(body.to_string().as_bytes()).unwrap_err());
    let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "proposed_action",
            "tool",
            "user_intent",
            "data_classes[1]",
            "data_classes[2]",
            "risk_level",
            "requested_output_type",
            "policy_mode",
            "context"
        ]
    );
    assert_eq!(fields[5].1, "must be an integer from 1 to 5, found 6");
    assert!(fields[7].1.contains("strict, permissive, paranoid"));
}

#[test]
fn approval_comment_body_is_optional() {
    assert_eq!(parse_approval_comment(b"").unwrap(), None);
    assert_eq!(parse_approval_comment(b"  \n").unwrap(), None);
    assert_eq!(
        parse_approval_comment(br#"{"comment":"checked with desk"}"#).unwrap(),
        Some("checked with desk".into())
    );
    let long = json!({"comment": "c".repeat(MAX_COMMENT_CHARS + 1)});
    assert_eq!(
        fields_of(parse_approval_comment(long.to_string().as_bytes()).unwrap_err())[0].0,
        "comment"
    );
    assert_eq!(
        fields_of(parse_approval_comment(br#"{"note":"x"}"#).unwrap_err())[0].0,
        "note"
    );
}
