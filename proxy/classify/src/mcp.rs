//! The MCP classifier and MCP answers: JSON-RPC 2.0 over Streamable HTTP, both protocol generations
//! (2025-11-25 with the `initialize` handshake and `Mcp-Session-Id`; 2026-07-28 stateless, with the
//! `params._meta` envelope and `Mcp-Method` / `Mcp-Name` headers).
//!
//! Classification always reads the body. The headers are a routing hint: when present they must
//! agree with the body or the request is rejected ([`ClassifyError::HeaderMismatch`]) — nothing is
//! ever authorized on a header alone. The answers live in submodules and are re-exported here:
//! `denial` (denials in JSON-RPC: [`denial_body`], [`denial_answer`]) and `tools_list`
//! ([`filter_tools_list`]). All are pure functions from data to bytes; nothing here does I/O or
//! decides.
//!
//! Closed by default: the body is parsed strictly (a key sent twice at any depth is refused, see
//! `crate::json`), and a `tools/call` whose tool name is outside the MCP charset is refused.

use std::borrow::Cow;

pub use lexecon_config::classifier::DenialStyle;
use lexecon_config::classifier::McpClassifier;
use serde_json::{Map, Value};

use super::{Classified, ClassifiedItem, ClassifyError, RequestParts};

mod denial;
mod tools_list;

pub use denial::{
    denial_answer, denial_answer_at, denial_body, denial_text, DenialInfo, NOT_EXECUTED_CODE,
    POLICY_DENIED_CODE,
};
pub use tools_list::{filter_tools_list, filter_tools_list_by};

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

// The routing headers, named once: a lookup by `&str` parses and validates the name every time.
const MCP_METHOD: http::HeaderName = http::HeaderName::from_static("mcp-method");
const MCP_NAME: http::HeaderName = http::HeaderName::from_static("mcp-name");
const MCP_PROTOCOL_VERSION: http::HeaderName =
    http::HeaderName::from_static("mcp-protocol-version");
const MCP_SESSION_ID: http::HeaderName = http::HeaderName::from_static("mcp-session-id");

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
    name: http::HeaderName,
    display: &'static str,
) -> Result<Option<&'h str>, ClassifyError> {
    let mut values = headers.get_all(&name).iter();
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
        method: single_header(parts.headers, MCP_METHOD, "Mcp-Method")?,
        name: single_header(parts.headers, MCP_NAME, "Mcp-Name")?
            .map(|raw| (raw, decode_header_value(raw))),
        protocol_version: single_header(
            parts.headers,
            MCP_PROTOCOL_VERSION,
            "MCP-Protocol-Version",
        )?,
        session: parts.headers.contains_key(MCP_SESSION_ID),
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
    // Strict: a key sent twice (`"name"` in params, say) is refused, not resolved.
    let message = crate::json::from_slice(body).map_err(|e| e.into_classify("body"))?;
    match message {
        Value::Array(elements) => {
            if elements.is_empty() {
                return Err(ClassifyError::Malformed(
                    "empty JSON-RPC batch; send at least one request".into(),
                ));
            }
            if config.batch_limit == 0 {
                return Err(ClassifyError::Malformed(
                    "JSON-RPC batches are off on this route (MCP dropped them in protocol \
                     2025-06-18): send one request per HTTP request"
                        .into(),
                ));
            }
            if elements.len() > config.batch_limit {
                return Err(ClassifyError::Malformed(format!(
                    "JSON-RPC batch of {} calls is above this route's batch_limit of {}",
                    elements.len(),
                    config.batch_limit
                )));
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

fn classify_message(
    config: &McpClassifier,
    mut message: Value,
    hints: &Hints<'_>,
) -> Result<ClassifiedItem, ClassifyError> {
    // The tool arguments become `context.args`: moved out, never copied (they can be large).
    let arguments = message
        .get_mut("params")
        .and_then(|p| p.get_mut("arguments"))
        .map(Value::take);
    let Value::Object(object) = &message else {
        return Err(ClassifyError::Malformed(format!(
            "expected a JSON-RPC 2.0 object, got {}",
            lexecon_config::json_type_name(&message)
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
                lexecon_config::json_type_name(other)
            )))
        }
    };
    let params = match object.get("params") {
        None => None,
        Some(Value::Object(params)) => Some(params),
        Some(other) => {
            return Err(ClassifyError::Malformed(format!(
                "\"params\" must be an object, got {}",
                lexecon_config::json_type_name(other)
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
        check_tool_name(tool)?;
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
                    lexecon_config::json_type_name(&other)
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
        // INVARIANT: tool arguments are the caller's assertions; they live under `args` and can
        // never shadow a key set by Lexecon, a plugin or an identity claim.
        let mut context = Map::new();
        if let Some(arguments) = arguments {
            context.insert("args".into(), Value::Object(arguments));
        }
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

/// Refuses a tool name outside the MCP specification's charset (1-128 characters of `A-Z a-z
/// 0-9 _ - .`): a look-alike (`ｄelete_file`, `delete_file` with a zero-width space) would match
/// no rule written for the real name and could still reach a lenient server. The error quotes at
/// most 64 characters of the name.
fn check_tool_name(tool: &str) -> Result<(), ClassifyError> {
    let valid = (1..=128).contains(&tool.len())
        && tool
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        return Ok(());
    }
    let mut name: String = tool.chars().take(64).collect();
    if name.len() < tool.len() {
        name.push('…');
    }
    Err(ClassifyError::InvalidToolName { name })
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
pub(super) mod tests;
