//! The MCP classifier and MCP answers: JSON-RPC 2.0 over Streamable HTTP, both protocol generations
//! (2025-11-25 with the `initialize` handshake and `Mcp-Session-Id`; 2026-07-28 stateless, with the
//! `params._meta` envelope and `Mcp-Method` / `Mcp-Name` headers).
//!
//! Classification always reads the body. The headers are a routing hint: when present they must
//! agree with the body or the request is rejected ([`ClassifyError::HeaderMismatch`]) — nothing is
//! ever authorized on a header alone. The answers live in submodules and are re-exported here:
//! `answer` (denials in JSON-RPC: [`denial_body`], [`denial_answer`]) and `tools_list`
//! ([`filter_tools_list`]). All are pure functions from data to bytes; nothing here does I/O or
//! decides.

use std::borrow::Cow;

pub use lexecon_config::classifier::DenialStyle;
use lexecon_config::classifier::McpClassifier;
use serde_json::{Map, Value};

use super::{Classified, ClassifiedItem, ClassifyError, RequestParts};

mod answer;
mod tools_list;

pub use answer::{
    denial_answer, denial_answer_at, denial_body, denial_text, DenialInfo, NOT_EXECUTED_CODE,
    POLICY_DENIED_CODE,
};
pub use tools_list::filter_tools_list;

const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
const CLIENT_INFO_META: &str = "io.modelcontextprotocol/clientInfo";

/// Methods that only read or negotiate; they get the classifier's `read_action`.
const READ_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
];

/// What the request headers say about the call, read once per request.
struct Hints<'h> {
    method: Option<&'h str>,
    /// The raw `Mcp-Name` header and its value (`None` when its base64 form is corrupt).
    name: Option<(&'h str, Option<Cow<'h, str>>)>,
    protocol_version: Option<&'h str>,
    session: bool,
}

/// A routing header's one value. A repeated routing header is rejected: readers of the first
/// and of the last copy would disagree about what the request is.
fn single_header<'h>(
    headers: &'h http::HeaderMap,
    name: &'static str,
    display: &'static str,
) -> Result<Option<&'h str>, ClassifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ClassifyError::Malformed(format!(
            "header {display} appears more than once; send it once"
        )));
    }
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| ClassifyError::Malformed(format!("header {display} is not valid text")))
}

/// Decodes an MCP header value: verbatim, or `=?base64?…?=` (canonical base64 of UTF-8) for
/// values that are not plain printable ASCII. `None` for a corrupt sentinel, which then never
/// matches the body.
fn decode_header_value(value: &str) -> Option<Cow<'_, str>> {
    use base64::Engine as _;
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(Cow::Borrowed(value));
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine.decode(payload).ok()?;
    if engine.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

/// Classifies an MCP request. Every JSON-RPC message in the body becomes one item.
pub(super) fn classify(
    config: &McpClassifier,
    parts: &RequestParts<'_>,
    body: Option<&[u8]>,
) -> Result<Classified, ClassifyError> {
    let hints = Hints {
        method: single_header(parts.headers, "mcp-method", "Mcp-Method")?,
        name: single_header(parts.headers, "mcp-name", "Mcp-Name")?
            .map(|raw| (raw, decode_header_value(raw))),
        protocol_version: single_header(
            parts.headers,
            "mcp-protocol-version",
            "MCP-Protocol-Version",
        )?,
        session: parts.headers.contains_key("mcp-session-id"),
    };
    match parts.method {
        "POST" => {}
        // GET opens the server-to-client SSE stream; DELETE ends a 2025-11-25 session.
        "GET" | "DELETE" => {
            let mut context = Map::new();
            let what = if parts.method == "GET" {
                "open_stream"
            } else {
                "end_session"
            };
            context.insert("mcp_http".into(), Value::from(what));
            add_common_context(&mut context, &hints, None, None);
            return Ok(Classified {
                items: vec![ClassifiedItem {
                    action: config.read_action.clone(),
                    resource: Some(protocol_resource(config)),
                    context,
                    jsonrpc_id: None,
                    rpc_method: None,
                    tool: None,
                }],
                batch: false,
            });
        }
        other => {
            return Err(ClassifyError::Malformed(format!(
                "MCP over HTTP uses POST for JSON-RPC messages, not {other}"
            )))
        }
    }
    let body = body.unwrap_or_default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ClassifyError::Malformed(
            "empty body; expected a JSON-RPC 2.0 request".into(),
        ));
    }
    let message: Value = serde_json::from_slice(body)
        .map_err(|e| ClassifyError::Malformed(format!("body is not valid JSON: {e}")))?;
    match message {
        Value::Array(elements) => {
            if elements.is_empty() {
                return Err(ClassifyError::Malformed(
                    "empty JSON-RPC batch; send at least one request".into(),
                ));
            }
            let items = elements
                .into_iter()
                .enumerate()
                .map(|(i, element)| {
                    classify_message(config, element, &hints).map_err(|e| match e {
                        ClassifyError::Malformed(m) => {
                            ClassifyError::Malformed(format!("batch element {i}: {m}"))
                        }
                        other => other,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Classified { items, batch: true })
        }
        single => Ok(Classified {
            items: vec![classify_message(config, single, &hints)?],
            batch: false,
        }),
    }
}

fn protocol_resource(config: &McpClassifier) -> String {
    format!("{}:mcp", config.resource_type)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn classify_message(
    config: &McpClassifier,
    mut message: Value,
    hints: &Hints<'_>,
) -> Result<ClassifiedItem, ClassifyError> {
    // The tool arguments become the context: moved out, never copied (they can be large).
    let arguments = message
        .get_mut("params")
        .and_then(|p| p.get_mut("arguments"))
        .map(Value::take);
    let Value::Object(object) = &message else {
        return Err(ClassifyError::Malformed(format!(
            "expected a JSON-RPC 2.0 object, got {}",
            type_name(&message)
        )));
    };
    match object.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(other) => {
            return Err(ClassifyError::Malformed(format!(
                "\"jsonrpc\" must be \"2.0\", got {other}"
            )))
        }
        None => {
            return Err(ClassifyError::Malformed(
                "not JSON-RPC 2.0: missing \"jsonrpc\": \"2.0\"".into(),
            ))
        }
    }
    let id = match object.get("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_))) => Some(id.clone()),
        Some(other) => {
            return Err(ClassifyError::Malformed(format!(
                "\"id\" must be a string or a number, got {}",
                type_name(other)
            )))
        }
    };
    let params = match object.get("params") {
        None => None,
        Some(Value::Object(params)) => Some(params),
        Some(other) => {
            return Err(ClassifyError::Malformed(format!(
                "\"params\" must be an object, got {}",
                type_name(other)
            )))
        }
    };
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object);
    let body_version = meta
        .and_then(|m| m.get(PROTOCOL_VERSION_META))
        .or_else(|| params.and_then(|p| p.get("protocolVersion")))
        .and_then(Value::as_str);
    if let (Some(header), Some(body)) = (hints.protocol_version, body_version) {
        if meta.and_then(|m| m.get(PROTOCOL_VERSION_META)).is_some() && header != body {
            return Err(ClassifyError::HeaderMismatch {
                header: "MCP-Protocol-Version",
                header_value: header.to_string(),
                body_value: body.to_string(),
            });
        }
    }
    let client = meta
        .and_then(|m| m.get(CLIENT_INFO_META))
        .or_else(|| params.and_then(|p| p.get("clientInfo")))
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str);

    let method = match object.get("method") {
        Some(Value::String(m)) if !m.is_empty() => m.as_str(),
        Some(other) => {
            return Err(ClassifyError::Malformed(format!(
                "\"method\" must be a non-empty string, got {other}"
            )))
        }
        None if object.contains_key("result") || object.contains_key("error") => {
            // A client's answer to a server request (sampling, elicitation, roots).
            if let Some(header) = hints.method {
                return Err(ClassifyError::HeaderMismatch {
                    header: "Mcp-Method",
                    header_value: header.to_string(),
                    body_value: String::new(),
                });
            }
            let mut context = Map::new();
            context.insert("mcp_message".into(), Value::from("response"));
            add_common_context(&mut context, hints, body_version, client);
            return Ok(ClassifiedItem {
                action: config.read_action.clone(),
                resource: Some(protocol_resource(config)),
                context,
                jsonrpc_id: id,
                rpc_method: None,
                tool: None,
            });
        }
        None => {
            return Err(ClassifyError::Malformed(
                "missing \"method\" (a JSON-RPC request or notification names its method)".into(),
            ))
        }
    };
    if let Some(header) = hints.method {
        if header != method {
            return Err(ClassifyError::HeaderMismatch {
                header: "Mcp-Method",
                header_value: header.to_string(),
                body_value: method.to_string(),
            });
        }
    }
    let name_field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => "",
    };
    let body_name = params
        .and_then(|p| p.get(name_field))
        .and_then(Value::as_str);
    // `Mcp-Name` on a method that names nothing is a mismatch too: stricter than the SDK
    // server, which ignores it there, and never wrong for a conforming client.
    if let Some((raw, decoded)) = &hints.name {
        if decoded.as_deref() != body_name || body_name.is_none() {
            return Err(ClassifyError::HeaderMismatch {
                header: "Mcp-Name",
                header_value: (*raw).to_string(),
                body_value: body_name.unwrap_or_default().to_string(),
            });
        }
    }

    if method == "tools/call" {
        let Some(tool) = body_name else {
            return Err(ClassifyError::Malformed(
                "tools/call needs params.name, the name of the tool".into(),
            ));
        };
        if id.is_none() {
            return Err(ClassifyError::Malformed(
                "tools/call is a request and needs an \"id\"".into(),
            ));
        }
        let arguments = match arguments {
            None | Some(Value::Null) => None,
            Some(Value::Object(arguments)) => Some(arguments),
            Some(other) => {
                return Err(ClassifyError::Malformed(format!(
                    "params.arguments of tools/call must be an object, got {}",
                    type_name(&other)
                )))
            }
        };
        let action = tool_action(config, tool).to_string();
        let resource = match config.resource_from_argument.first_match(tool) {
            Some(mapping) => {
                let pointer = mapping.argument.get().map(|a| a.pointer()).ok_or_else(|| {
                    ClassifyError::Malformed(format!(
                        "tool {tool}: the resource argument {:?} is invalid in the configuration",
                        mapping.argument.source()
                    ))
                })?;
                let value = arguments.as_ref().and_then(|args| lookup(args, pointer));
                let instance = match value {
                    Some(Value::String(s)) if !s.is_empty() => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(ClassifyError::Malformed(format!(
                            "tool {tool}: argument {:?} names the resource and must be a \
                             non-empty string or a number",
                            mapping.argument.source()
                        )))
                    }
                };
                format!("{}:{instance}", mapping.resource_type)
            }
            None => format!("{}:{tool}", config.resource_type),
        };
        let mut context = arguments.unwrap_or_default();
        context.insert("mcp_method".into(), Value::from(method));
        context.insert("mcp_tool".into(), Value::from(tool));
        add_common_context(&mut context, hints, body_version, client);
        return Ok(ClassifiedItem {
            action,
            resource: Some(resource),
            context,
            jsonrpc_id: id,
            rpc_method: Some(method.to_string()),
            tool: Some(tool.to_string()),
        });
    }

    let action = match config.methods.first_match(method) {
        Some(action) => action,
        None if READ_METHODS.contains(&method) || method.starts_with("notifications/") => {
            &config.read_action
        }
        None => &config.default_tool_action,
    };
    let mut context = Map::new();
    context.insert("mcp_method".into(), Value::from(method));
    match (method, body_name) {
        ("resources/read", Some(uri)) => {
            context.insert("mcp_uri".into(), Value::from(uri));
        }
        ("prompts/get", Some(prompt)) => {
            context.insert("mcp_prompt".into(), Value::from(prompt));
        }
        _ => {}
    }
    add_common_context(&mut context, hints, body_version, client);
    Ok(ClassifiedItem {
        action: action.clone(),
        resource: Some(protocol_resource(config)),
        context,
        jsonrpc_id: id,
        rpc_method: Some(method.to_string()),
        tool: None,
    })
}

/// The action a `tools/call` of `tool` gets: the first matching `tools` glob, else
/// `default_tool_action`. For `tools/list` filtering: decide this action per listed tool.
pub fn tool_action<'c>(config: &'c McpClassifier, tool: &str) -> &'c str {
    config
        .tools
        .first_match(tool)
        .unwrap_or(&config.default_tool_action)
}

/// The resource a `tools/call` of `tool` gets when its arguments are not known: `res_api:<tool>`,
/// or `<type>:*` when the resource comes from an argument (`resource_from_argument`).
pub fn tool_resource(config: &McpClassifier, tool: &str) -> String {
    match config.resource_from_argument.first_match(tool) {
        Some(mapping) => format!("{}:*", mapping.resource_type),
        None => format!("{}:{tool}", config.resource_type),
    }
}

/// `mcp_protocol_version` (body first, then header), `mcp_session` and `mcp_client`. Set after
/// the tool arguments so that an argument cannot pose as one of them.
fn add_common_context(
    context: &mut Map<String, Value>,
    hints: &Hints<'_>,
    body_version: Option<&str>,
    client: Option<&str>,
) {
    if let Some(version) = body_version.or(hints.protocol_version) {
        context.insert("mcp_protocol_version".into(), Value::from(version));
    } else {
        context.remove("mcp_protocol_version");
    }
    context.insert("mcp_session".into(), Value::from(hints.session));
    match client {
        Some(client) => context.insert("mcp_client".into(), Value::from(client)),
        None => context.remove("mcp_client"),
    };
}

fn lookup<'v>(object: &'v Map<String, Value>, pointer: &str) -> Option<&'v Value> {
    let rest = pointer.strip_prefix('/')?;
    let (first, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let key = first.replace("~1", "/").replace("~0", "~");
    object.get(&key)?.pointer(tail)
}

#[cfg(test)]
pub(super) mod tests {
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
        assert_eq!(item.context["path"], json!("/etc/passwd"));
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
        assert_eq!(item.context["query"], json!("hello"));
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
        let h = headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?csOpc3Vtw6k=?="),
        ]);
        let body = STATELESS_SEARCH.replace("\"search\"", "\"résumé\"");
        let item = run(&agent_config(), &h, &body).unwrap().items.remove(0);
        assert_eq!(item.tool.as_deref(), Some("résumé"));
        let corrupt = headers(&[("mcp-name", "=?base64?csOpc3Vtw6l=?=")]);
        assert!(matches!(
            run(&agent_config(), &corrupt, &body),
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
    fn duplicate_json_keys_resolve_like_the_python_sdk_last_wins() {
        // json.loads (the SDK server) keeps the last duplicate; so must the proxy, or an agent
        // could show the proxy one tool and run another.
        let item = run(
            &agent_config(),
            &http::HeaderMap::new(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"delete_file","arguments":{}}}"#,
        )
        .unwrap()
        .items
        .remove(0);
        assert_eq!(item.tool.as_deref(), Some("delete_file"));
        assert_eq!(item.action, "axn_delete_data");
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
            &agent_config(),
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
            match run(&agent_config(), &h, body) {
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
        let got = replay(include_str!("testdata/mcp-sdk-2.3.0-stateless.jsonl"));
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
        let got = replay(include_str!("testdata/mcp-sdk-2.3.0-handshake.jsonl"));
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
}
