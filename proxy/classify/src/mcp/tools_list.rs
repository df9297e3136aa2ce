//! `tools/list` filtering: removes the tools an actor may never call from a `tools/list` result,
//! in a JSON body or an SSE stream, keeping everything else byte for byte where it can. Pure:
//! bytes in, bytes out.

use serde_json::Value;

/// Removes the tools `allowed` rejects from a `tools/list` result, in a JSON body
/// (`application/json`, one response or a batch) or an SSE body (`text/event-stream`: each
/// event's `data:` lines). Returns `None` when nothing was removed or the body is not a
/// `tools/list` result (pass it through unchanged). Other SSE lines (`event:`, `id:`, comments)
/// and events are kept as they were. The body must not be content-encoded.
pub fn filter_tools_list(
    body: &[u8],
    content_type: &str,
    allowed: &dyn Fn(&str) -> bool,
) -> Option<Vec<u8>> {
    // A tool without a string name cannot be checked: it is removed (fail closed).
    let keep = |tool: &Value| {
        tool.get("name")
            .and_then(Value::as_str)
            .is_some_and(allowed)
    };
    filter_tools_list_by(body, content_type, &keep)
}

/// [`filter_tools_list`] deciding on each listed tool's whole object (name, description, input
/// schema, …), e.g. to compare its definition with an approved one. `keep` sees every listed
/// tool, in order, also when an earlier one was removed.
pub fn filter_tools_list_by(
    body: &[u8],
    content_type: &str,
    allowed: &dyn Fn(&Value) -> bool,
) -> Option<Vec<u8>> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "text/event-stream" => filter_sse(body, allowed),
        m if m == "application/json" || m.ends_with("+json") => {
            let mut value: Value = serde_json::from_slice(body).ok()?;
            if filter_value(&mut value, allowed) {
                serde_json::to_vec(&value).ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Filters a JSON-RPC response (or a batch of them) in place; true when a tool was removed.
fn filter_value(value: &mut Value, allowed: &dyn Fn(&Value) -> bool) -> bool {
    match value {
        Value::Array(elements) => {
            let mut changed = false;
            for element in elements {
                changed |= filter_value(element, allowed);
            }
            changed
        }
        Value::Object(object) => {
            let Some(Value::Array(tools)) = object
                .get_mut("result")
                .and_then(|r| r.as_object_mut())
                .and_then(|r| r.get_mut("tools"))
            else {
                return false;
            };
            let before = tools.len();
            tools.retain(|tool| allowed(tool));
            tools.len() != before
        }
        _ => false,
    }
}

fn filter_sse(body: &[u8], allowed: &dyn Fn(&Value) -> bool) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut out = String::with_capacity(text.len());
    let mut event: Vec<&str> = Vec::new();
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        event.push(line);
        if content.is_empty() {
            changed |= flush_event(&event, &mut out, allowed);
            event.clear();
        }
    }
    changed |= flush_event(&event, &mut out, allowed);
    changed.then(|| out.into_bytes())
}

/// The value of an SSE `data:` line, without the line ending.
fn data_value(line: &str) -> Option<&str> {
    line.trim_end_matches(['\n', '\r'])
        .strip_prefix("data:")
        .map(|v| v.strip_prefix(' ').unwrap_or(v))
}

/// Writes one SSE event (its lines with their endings) to `out`, with its data filtered.
fn flush_event(lines: &[&str], out: &mut String, allowed: &dyn Fn(&Value) -> bool) -> bool {
    let data: Vec<&str> = lines.iter().filter_map(|l| data_value(l)).collect();
    let filtered = if data.is_empty() {
        None
    } else {
        serde_json::from_str::<Value>(&data.join("\n"))
            .ok()
            .and_then(|mut value| {
                filter_value(&mut value, allowed)
                    .then(|| serde_json::to_string(&value).ok())
                    .flatten()
            })
    };
    let Some(json) = filtered else {
        lines.iter().for_each(|l| out.push_str(l));
        return false;
    };
    let mut written = false;
    for line in lines {
        if data_value(line).is_some() {
            if !written {
                let ending = if line.ends_with("\r\n") {
                    "\r\n"
                } else if line.ends_with('\n') {
                    "\n"
                } else {
                    ""
                };
                out.push_str("data: ");
                out.push_str(&json);
                out.push_str(ending);
                written = true;
            }
        } else {
            out.push_str(line);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"search_docs","inputSchema":{"type":"object"}},{"name":"delete_file","inputSchema":{"type":"object"}}]}}"#;

    fn no_deletes(name: &str) -> bool {
        !name.starts_with("delete_")
    }

    #[test]
    fn tools_list_json_drops_forbidden_tools() {
        let out = filter_tools_list(
            TOOLS_LIST.as_bytes(),
            "application/json; charset=utf-8",
            &no_deletes,
        )
        .unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        let tools = value["result"]["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0]["name"], json!("search_docs"));
        assert_eq!(value["id"], json!(2));
    }

    #[test]
    fn tools_list_sse_drops_forbidden_tools_and_keeps_other_lines() {
        let sse = format!(
            ": keep-alive\r\n\r\nevent: message\r\nid: 17\r\ndata: {TOOLS_LIST}\r\n\r\nevent: message\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}}\r\n\r\n"
        );
        let out = filter_tools_list(sse.as_bytes(), "text/event-stream", &no_deletes).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(": keep-alive\r\n\r\nevent: message\r\nid: 17\r\ndata: {"));
        assert!(text.contains("search_docs"));
        assert!(!text.contains("delete_file"));
        assert!(text.ends_with(
            "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\r\n\r\n"
        ));
    }

    #[test]
    fn sse_data_split_over_lines_is_joined_before_filtering() {
        let sse = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\ndata: {\"tools\":[{\"name\":\"delete_file\"},{\"name\":\"a\"}]}}\n\n";
        let out = filter_tools_list(sse.as_bytes(), "text/event-stream", &no_deletes).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 4, "{text:?}");
        assert_eq!(lines[0], "event: message");
        let data: Value = serde_json::from_str(lines[1].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["result"]["tools"], json!([{"name": "a"}]));
        assert_eq!(&lines[2..], ["", ""]);
    }

    #[test]
    fn unfiltered_or_foreign_bodies_are_left_alone() {
        assert_eq!(
            filter_tools_list(TOOLS_LIST.as_bytes(), "application/json", &|_| true),
            None
        );
        assert_eq!(
            filter_tools_list(
                b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
                "application/json",
                &|_| false
            ),
            None
        );
        assert_eq!(
            filter_tools_list(TOOLS_LIST.as_bytes(), "text/plain", &|_| false),
            None
        );
    }

    #[test]
    fn real_sdk_sse_tools_list_is_filtered() {
        let body = include_str!("../testdata/mcp-sdk-2.3.0-tools-list.sse");
        let out = filter_tools_list(body.as_bytes(), "text/event-stream", &no_deletes).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("event: message\r\ndata: {"));
        assert!(text.ends_with("}\r\n\r\n"));
        let data = text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
        let value: Value = serde_json::from_str(data).unwrap();
        let names: Vec<&str> = value["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["search"]);
        assert!(value["result"]["tools"][0]["inputSchema"]["properties"]["query"].is_object());
    }
}
