//! Tests of the MCP classifier.

use super::*;
use lexecon_config::classifier::ClassifierConfig;
use serde_json::json;

pub(super) fn config(yaml: &str) -> McpClassifier {
    match serde_norway::from_str::<ClassifierConfig>(yaml).unwrap() {
        ClassifierConfig::Mcp(mcp) => mcp,
        other => panic!("not mcp: {other:?}"),
    }
}

pub(super) fn agent_config() -> McpClassifier {
    config(
        r#"
kind: mcp
tools: {"delete_*": axn_delete_data, "read_*": axn_read_data}
resource_from_argument: {"read_*": {argument: path, type: res_file}}
"#,
    )
}

/// [`agent_config`] with JSON-RPC batches of up to `limit` calls.
pub(super) fn batching_config(limit: usize) -> McpClassifier {
    McpClassifier {
        batch_limit: limit,
        ..agent_config()
    }
}

pub(super) fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, http::HeaderValue::from_str(value).unwrap());
    }
    map
}

pub(super) fn run(
    config: &McpClassifier,
    headers: &http::HeaderMap,
    body: &str,
) -> Result<Classified, ClassifyError> {
    let parts = RequestParts {
        method: "POST",
        path: "/mcp",
        query: None,
        headers,
    };
    classify(config, &parts, Some(body.as_bytes()))
}

pub(super) const STATELESS_SEARCH: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search","arguments":{"query":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"mcp","version":"2.3.0"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;

#[test]
fn handshake_generation_tool_call_maps_tool_to_action_and_resource() {
    let h = headers(&[
        ("mcp-session-id", "9f1c"),
        ("mcp-protocol-version", "2025-11-25"),
    ]);
    let out = run(
            &agent_config(),
            &h,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/etc/passwd"}}}"#,
        )
        .unwrap();
    assert!(!out.batch);
    let item = &out.items[0];
    assert_eq!(item.action, "axn_delete_data");
    assert_eq!(item.resource.as_deref(), Some("res_api:delete_file"));
    assert_eq!(item.jsonrpc_id, Some(json!(7)));
    assert_eq!(item.rpc_method.as_deref(), Some("tools/call"));
    assert_eq!(item.tool.as_deref(), Some("delete_file"));
    assert_eq!(item.context["args"]["path"], json!("/etc/passwd"));
    assert!(
        !item.context.contains_key("path"),
        "arguments stay under args"
    );
    assert_eq!(item.context["mcp_tool"], json!("delete_file"));
    assert_eq!(item.context["mcp_method"], json!("tools/call"));
    assert_eq!(item.context["mcp_protocol_version"], json!("2025-11-25"));
    assert_eq!(item.context["mcp_session"], json!(true));
}

#[test]
fn initialize_is_a_read_on_the_protocol_resource() {
    let out = run(
            &agent_config(),
            &http::HeaderMap::new(),
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"claude","version":"1"}}}"#,
        )
        .unwrap();
    let item = &out.items[0];
    assert_eq!(item.action, "axn_read_data");
    assert_eq!(item.resource.as_deref(), Some("res_api:mcp"));
    assert_eq!(item.context["mcp_protocol_version"], json!("2025-11-25"));
    assert_eq!(item.context["mcp_client"], json!("claude"));
    assert_eq!(item.context["mcp_session"], json!(false));
}

#[test]
fn stateless_generation_with_agreeing_headers_is_classified_from_the_body() {
    let h = headers(&[
        ("mcp-method", "tools/call"),
        ("mcp-name", "search"),
        ("mcp-protocol-version", "2026-07-28"),
    ]);
    let item = run(&agent_config(), &h, STATELESS_SEARCH)
        .unwrap()
        .items
        .remove(0);
    assert_eq!(item.action, "axn_execute_tool");
    assert_eq!(item.resource.as_deref(), Some("res_api:search"));
    assert_eq!(item.context["args"]["query"], json!("hello"));
    assert_eq!(item.context["mcp_protocol_version"], json!("2026-07-28"));
    assert_eq!(item.context["mcp_client"], json!("mcp"));
    assert!(!item.context.contains_key("_meta"));
}

#[test]
fn name_header_that_disagrees_with_the_body_is_a_mismatch() {
    let h = headers(&[("mcp-method", "tools/call"), ("mcp-name", "search")]);
    let body = STATELESS_SEARCH.replace("\"search\"", "\"delete_file\"");
    let err = run(&agent_config(), &h, &body).unwrap_err();
    assert_eq!(
        err,
        ClassifyError::HeaderMismatch {
            header: "Mcp-Name",
            header_value: "search".into(),
            body_value: "delete_file".into()
        }
    );
}

#[test]
fn method_header_that_disagrees_with_the_body_is_a_mismatch() {
    let h = headers(&[("mcp-method", "tools/list")]);
    let err = run(&agent_config(), &h, STATELESS_SEARCH).unwrap_err();
    assert!(matches!(
        err,
        ClassifyError::HeaderMismatch { header: "Mcp-Method", ref body_value, .. }
            if body_value == "tools/call"
    ));
}

#[test]
fn base64_name_header_is_decoded_before_comparing() {
    // The SDK wraps names that are not plain printable ASCII: "résumé" → =?base64?…?=
    // (A prompt name may be any text; a tool name may not, see
    // tool_names_outside_the_mcp_charset_are_refused.)
    let h = headers(&[
        ("mcp-method", "prompts/get"),
        ("mcp-name", "=?base64?csOpc3Vtw6k=?="),
    ]);
    let body = r#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"résumé"}}"#;
    let item = run(&agent_config(), &h, body).unwrap().items.remove(0);
    assert_eq!(item.context["mcp_prompt"], json!("résumé"));
    let tool = headers(&[
        ("mcp-method", "tools/call"),
        ("mcp-name", "=?base64?csOpc3Vtw6k=?="),
    ]);
    let tool_body = STATELESS_SEARCH.replace("\"search\"", "\"résumé\"");
    assert!(matches!(
        run(&agent_config(), &tool, &tool_body),
        Err(ClassifyError::InvalidToolName { .. })
    ));
    let corrupt = headers(&[("mcp-name", "=?base64?csOpc3Vtw6l=?=")]);
    assert!(matches!(
        run(&agent_config(), &corrupt, body),
        Err(ClassifyError::HeaderMismatch {
            header: "Mcp-Name",
            ..
        })
    ));
}

#[test]
fn repeated_routing_header_is_rejected() {
    let h = headers(&[("mcp-method", "tools/call"), ("mcp-method", "tools/call")]);
    assert!(matches!(
        run(&agent_config(), &h, STATELESS_SEARCH),
        Err(ClassifyError::Malformed(m)) if m.contains("Mcp-Method appears more than once")
    ));
}

#[test]
fn name_header_on_a_method_without_a_name_is_a_mismatch() {
    let h = headers(&[("mcp-name", "search")]);
    assert!(matches!(
        run(
            &agent_config(),
            &h,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
        ),
        Err(ClassifyError::HeaderMismatch {
            header: "Mcp-Name",
            ..
        })
    ));
}

#[test]
fn protocol_version_header_must_match_the_meta_envelope() {
    let h = headers(&[("mcp-protocol-version", "2025-11-25")]);
    let err = run(&agent_config(), &h, STATELESS_SEARCH).unwrap_err();
    assert!(matches!(
        err,
        ClassifyError::HeaderMismatch {
            header: "MCP-Protocol-Version",
            ..
        }
    ));
}

#[test]
fn duplicate_json_keys_are_refused_at_any_depth_naming_the_key() {
    // json.loads (the SDK server) keeps the last duplicate, other parsers the first: the proxy
    // refuses, so an agent can never show it one tool and run another.
    for (body, key) in [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"delete_file","arguments":{}}}"#,
            "name",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"delete_file"}}"#,
            "method",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"a.txt","path":"/etc/shadow"}}}"#,
            "path",
        ),
        (r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#, "id"),
    ] {
        let err = run(&agent_config(), &http::HeaderMap::new(), body).unwrap_err();
        match &err {
            ClassifyError::DuplicateKey { key: got, .. } => assert_eq!(got, key, "{body}"),
            other => panic!("{body}: expected DuplicateKey, got {other:?}"),
        }
        assert!(
            err.to_string().contains(&format!("the key {key:?} twice")),
            "{err}"
        );
    }
    let batch = format!(
        "[{STATELESS_SEARCH},{}]",
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search","arguments":{"q":1,"q":2}}}"#
    );
    assert!(matches!(
        run(&batching_config(5), &http::HeaderMap::new(), &batch),
        Err(ClassifyError::DuplicateKey { .. })
    ));
}

#[test]
fn deeply_nested_or_invalid_utf8_bodies_are_malformed() {
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{"q":{}1{}}}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let err = run(&agent_config(), &http::HeaderMap::new(), &deep).unwrap_err();
    assert!(
        matches!(&err, ClassifyError::Malformed(m) if m.contains("recursion limit")),
        "{err:?}"
    );
    let parts = RequestParts {
        method: "POST",
        path: "/mcp",
        query: None,
        headers: &http::HeaderMap::new(),
    };
    let invalid = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"sea\xffrch\"}}";
    let err = classify(&agent_config(), &parts, Some(invalid)).unwrap_err();
    assert!(
        matches!(&err, ClassifyError::Malformed(m) if m.contains("not valid JSON")),
        "{err:?}"
    );
}

#[test]
fn tool_names_outside_the_mcp_charset_are_refused() {
    let call = |name: &str| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": name, "arguments": {}}})
        .to_string();
        run(&agent_config(), &http::HeaderMap::new(), &body)
    };
    for name in [
        "\u{ff44}elete_file",
        "delete_file\u{200b}",
        "delete\u{2010}file",
        "del\u{0435}te_file",
        "delete file",
        "delete_file\n",
        "delete/file",
        "",
        &"a".repeat(129),
    ] {
        let err = call(name).unwrap_err();
        assert!(
            matches!(&err, ClassifyError::InvalidToolName { .. }),
            "{name:?}: {err:?}"
        );
        assert!(err.to_string().contains("A-Z a-z 0-9"), "{err}");
    }
    for name in ["delete_file", "a", "Read-File.v2", &"a".repeat(128)] {
        let item = call(name).unwrap().items.remove(0);
        assert_eq!(item.tool.as_deref(), Some(name));
    }
    let long = call(&"\u{ff44}".repeat(500)).unwrap_err().to_string();
    assert!(
        long.len() < 600,
        "the message quotes a bounded prefix: {long}"
    );
}

#[test]
fn listed_tools_map_to_the_same_action_and_resource_as_their_calls() {
    let config = agent_config();
    assert_eq!(tool_action(&config, "delete_file"), "axn_delete_data");
    assert_eq!(tool_action(&config, "search"), "axn_execute_tool");
    assert_eq!(tool_resource(&config, "search"), "res_api:search");
    assert_eq!(tool_resource(&config, "read_file"), "res_file:*");
}

#[test]
fn resource_comes_from_the_mapped_argument() {
    let item = run(
            &agent_config(),
            &http::HeaderMap::new(),
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"read_file","arguments":{"path":"notes/q3.md"}}}"#,
        )
        .unwrap()
        .items
        .remove(0);
    assert_eq!(item.action, "axn_read_data");
    assert_eq!(item.resource.as_deref(), Some("res_file:notes/q3.md"));
}

#[test]
fn missing_mapped_argument_is_malformed() {
    let err = run(
            &agent_config(),
            &http::HeaderMap::new(),
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"read_file","arguments":{}}}"#,
        )
        .unwrap_err();
    assert!(
        matches!(&err, ClassifyError::Malformed(m) if m.contains("argument \"path\" names the resource")),
        "{err}"
    );
}

#[test]
fn arguments_cannot_pose_as_mcp_context_fields() {
    let item = run(
            &agent_config(),
            &http::HeaderMap::new(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"mcp_tool":"read_file","mcp_session":true,"mcp_client":"x"}}}"#,
        )
        .unwrap()
        .items
        .remove(0);
    assert_eq!(item.context["mcp_tool"], json!("search"));
    assert_eq!(item.context["mcp_session"], json!(false));
    assert!(!item.context.contains_key("mcp_client"));
}

#[test]
fn notification_and_ping_are_reads_and_notification_has_no_id() {
    let out = run(
        &agent_config(),
        &http::HeaderMap::new(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .unwrap();
    assert_eq!(out.items[0].action, "axn_read_data");
    assert_eq!(out.items[0].jsonrpc_id, None);
    let ping = run(
        &agent_config(),
        &http::HeaderMap::new(),
        r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#,
    )
    .unwrap();
    assert_eq!(ping.items[0].action, "axn_read_data");
    assert_eq!(ping.items[0].rpc_method.as_deref(), Some("ping"));
}

#[test]
fn configured_method_globs_override_and_unknown_methods_are_not_reads() {
    let cfg = config("kind: mcp\nmethods: {\"prompts/*\": axn_use_prompt}");
    let h = http::HeaderMap::new();
    let prompt = run(
        &cfg,
        &h,
        r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summarize"}}"#,
    )
    .unwrap();
    assert_eq!(prompt.items[0].action, "axn_use_prompt");
    assert_eq!(prompt.items[0].context["mcp_prompt"], json!("summarize"));
    let unknown = run(&cfg, &h, r#"{"jsonrpc":"2.0","id":2,"method":"tasks/run"}"#).unwrap();
    assert_eq!(unknown.items[0].action, "axn_execute_tool");
}

#[test]
fn batch_yields_one_item_per_element() {
    let out = run(
            &batching_config(3),
            &http::HeaderMap::new(),
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{}}},
                {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"x"}}},
                {"jsonrpc":"2.0","method":"notifications/progress"}]"#,
        )
        .unwrap();
    assert!(out.batch);
    let actions: Vec<&str> = out.items.iter().map(|i| i.action.as_str()).collect();
    assert_eq!(
        actions,
        ["axn_execute_tool", "axn_delete_data", "axn_read_data"]
    );
}

#[test]
fn batches_are_refused_unless_the_route_allows_them_and_then_up_to_its_limit() {
    let h = http::HeaderMap::new();
    let two =
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#;
    match run(&agent_config(), &h, two) {
        Err(ClassifyError::Malformed(m)) => assert!(m.contains("batches are off"), "{m}"),
        other => panic!("a batch on a default route must be refused, got {other:?}"),
    }
    match run(&batching_config(1), &h, two) {
        Err(ClassifyError::Malformed(m)) => {
            assert!(
                m.contains("batch of 2 calls is above this route's batch_limit of 1"),
                "{m}"
            )
        }
        other => panic!("got {other:?}"),
    }
    assert_eq!(run(&batching_config(2), &h, two).unwrap().items.len(), 2);
    // A single request is not a batch, whatever the limit.
    assert!(run(
        &agent_config(),
        &h,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#
    )
    .is_ok());
}

#[test]
fn malformed_messages_say_what_is_wrong() {
    let h = http::HeaderMap::new();
    for (body, expected) in [
        ("", "empty body"),
        ("{\"jsonrpc\":", "not valid JSON"),
        ("[]", "empty JSON-RPC batch"),
        ("42", "expected a JSON-RPC 2.0 object, got a number"),
        (r#"{"id":1,"method":"ping"}"#, "missing \"jsonrpc\""),
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            "must be \"2.0\"",
        ),
        (r#"{"jsonrpc":"2.0","id":1}"#, "missing \"method\""),
        (
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            "\"id\" must be a string or a number",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            "needs params.name",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
            "must be an object, got an array",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
            "needs an \"id\"",
        ),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 5]"#,
            "batch element 1",
        ),
    ] {
        match run(&batching_config(10), &h, body) {
            Err(ClassifyError::Malformed(message)) => {
                assert!(message.contains(expected), "{body}: {message}")
            }
            other => panic!("{body}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn client_response_is_a_read_without_method() {
    let out = run(
        &agent_config(),
        &http::HeaderMap::new(),
        r#"{"jsonrpc":"2.0","id":"srv-1","result":{"action":"accept"}}"#,
    )
    .unwrap();
    assert_eq!(out.items[0].action, "axn_read_data");
    assert_eq!(out.items[0].rpc_method, None);
    assert_eq!(out.items[0].context["mcp_message"], json!("response"));
}

#[test]
fn get_opens_the_stream_as_a_read_and_put_is_rejected() {
    let h = headers(&[("mcp-session-id", "s")]);
    let parts = RequestParts {
        method: "GET",
        path: "/mcp",
        query: None,
        headers: &h,
    };
    let out = classify(&agent_config(), &parts, None).unwrap();
    assert_eq!(out.items[0].action, "axn_read_data");
    assert_eq!(out.items[0].context["mcp_http"], json!("open_stream"));
    let put = RequestParts {
        method: "PUT",
        ..parts
    };
    assert!(matches!(
        classify(&agent_config(), &put, Some(b"{}")),
        Err(ClassifyError::Malformed(m)) if m.contains("not PUT")
    ));
}

/// Replays requests the official Python SDK (`mcp` 2.3.0) sent, captured on the wire:
/// `(http method, rpc method, tool, action)` per request.
fn replay(capture: &str) -> Vec<(String, Option<String>, Option<String>, String)> {
    capture
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            let mut h = http::HeaderMap::new();
            for pair in record["headers"].as_array().unwrap() {
                let name =
                    http::HeaderName::from_bytes(pair[0].as_str().unwrap().as_bytes()).unwrap();
                h.append(
                    name,
                    http::HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
                );
            }
            let method = record["method"].as_str().unwrap();
            let parts = RequestParts {
                method,
                path: record["path"].as_str().unwrap(),
                query: None,
                headers: &h,
            };
            let body = record["body"].as_str().unwrap().as_bytes();
            let mut out = classify(&agent_config(), &parts, Some(body)).unwrap();
            assert_eq!(out.items.len(), 1);
            let item = out.items.remove(0);
            (method.to_string(), item.rpc_method, item.tool, item.action)
        })
        .collect()
}

fn expected(
    rows: &[(&str, Option<&str>, Option<&str>, &str)],
) -> Vec<(String, Option<String>, Option<String>, String)> {
    rows.iter()
        .map(|(m, r, t, a)| {
            (
                m.to_string(),
                r.map(String::from),
                t.map(String::from),
                a.to_string(),
            )
        })
        .collect()
}

#[test]
fn real_sdk_stateless_session_is_classified() {
    let got = replay(include_str!("../testdata/mcp-sdk-2.3.0-stateless.jsonl"));
    assert_eq!(
        got,
        expected(&[
            ("POST", Some("server/discover"), None, "axn_read_data"),
            ("POST", Some("tools/list"), None, "axn_read_data"),
            (
                "POST",
                Some("tools/call"),
                Some("search"),
                "axn_execute_tool"
            ),
            (
                "POST",
                Some("tools/call"),
                Some("delete_file"),
                "axn_delete_data"
            ),
        ])
    );
}

#[test]
fn real_sdk_handshake_session_is_classified() {
    let got = replay(include_str!("../testdata/mcp-sdk-2.3.0-handshake.jsonl"));
    assert_eq!(
        got,
        expected(&[
            ("POST", Some("initialize"), None, "axn_read_data"),
            (
                "POST",
                Some("notifications/initialized"),
                None,
                "axn_read_data"
            ),
            ("GET", None, None, "axn_read_data"),
            ("POST", Some("tools/list"), None, "axn_read_data"),
            (
                "POST",
                Some("tools/call"),
                Some("search"),
                "axn_execute_tool"
            ),
            (
                "POST",
                Some("tools/call"),
                Some("delete_file"),
                "axn_delete_data"
            ),
            ("DELETE", None, None, "axn_read_data"),
        ])
    );
}

/// Tool arguments are the caller's assertions: under `args`, they cannot pose as a fact Lexecon,
/// a plugin or an identity claim sets (`patient_consent`, `mcp_tool`, `mcp_session`).
#[test]
fn tool_arguments_cannot_shadow_another_context_key() {
    let out = run(
        &agent_config(),
        &headers(&[]),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_email","arguments":{"patient_consent":true,"mcp_tool":"search_docs","mcp_session":true}}}"#,
    )
    .unwrap();
    let context = &out.items[0].context;
    assert_eq!(context["mcp_tool"], json!("send_email"));
    assert!(!context.contains_key("patient_consent"));
    assert_ne!(context.get("mcp_session"), Some(&json!(true)));
    assert_eq!(context["args"]["patient_consent"], json!(true));
}
