//! MCP answers to blocked calls: JSON-RPC responses that tell the agent what was decided — a tool
//! result with `isError: true` (the model reads it) or a JSON-RPC error — and the all-or-nothing
//! answer to a batch. Pure: data in, bytes out; never decides, never does I/O.

use lexecon_config::classifier::DenialStyle;
use serde_json::{json, Map, Value};

use crate::{Classified, ClassifiedItem};

/// JSON-RPC error code of a call denied (or escalated) by policy.
pub const POLICY_DENIED_CODE: i64 = -32001;
/// JSON-RPC error code of a call that was allowed but not executed because another call of the
/// same batch was denied.
pub const NOT_EXECUTED_CODE: i64 = -32002;

/// The `_meta` key prefix of Lexecon's fields in MCP results.
const META_PREFIX: &str = "io.lexecon/";

/// What the proxy tells an agent about a blocked call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenialInfo<'a> {
    /// `deny` or `escalate`.
    pub decision: &'a str,
    pub reason: &'a str,
    pub rule_id: Option<&'a str>,
    pub decision_id: &'a str,
}

/// The text a model reads: the reason, the decision id, and what to do.
pub fn denial_text(info: &DenialInfo<'_>) -> String {
    if info.decision == "escalate" {
        format!(
            "{} (decision {}; a human must approve this call). Tell the user it awaits approval; do not retry until a human has approved it.",
            info.reason, info.decision_id
        )
    } else {
        format!(
            "{} (decision {}). Do not retry; tell the user.",
            info.reason, info.decision_id
        )
    }
}

fn decision_meta(info: &DenialInfo<'_>) -> Value {
    let mut meta = Map::new();
    meta.insert(
        format!("{META_PREFIX}decision_id"),
        Value::from(info.decision_id),
    );
    meta.insert(format!("{META_PREFIX}decision"), Value::from(info.decision));
    meta.insert(format!("{META_PREFIX}reason"), Value::from(info.reason));
    meta.insert(format!("{META_PREFIX}rule_id"), json!(info.rule_id));
    Value::Object(meta)
}

fn tool_error_result(id: Option<&Value>, text: String, meta: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {
            "content": [{"type": "text", "text": text}],
            "isError": true,
            "_meta": meta,
        }
    })
}

/// The first protocol revision whose results carry `resultType` (required by its schema).
const RESULT_TYPE_SINCE: &str = "2026-07-28";

/// True when the call was made in a protocol revision whose results need `resultType` (the
/// 2.3 SDK rejects a 2026-07-28 result without it; older peers may reject unknown keys).
fn speaks_result_type(item: &ClassifiedItem) -> bool {
    item.context
        .get("mcp_protocol_version")
        .and_then(Value::as_str)
        // Revisions are dates (YYYY-MM-DD): their order is the string order.
        .is_some_and(|version| version >= RESULT_TYPE_SINCE)
}

/// One JSON-RPC response that answers a blocked call with the given `id` (`null` when absent).
///
/// - [`DenialStyle::ToolError`]: a result with `isError: true`, the [`denial_text`] as text
///   content, and `_meta` with `io.lexecon/decision_id`, `…/decision`, `…/reason`, `…/rule_id`.
/// - [`DenialStyle::JsonrpcError`]: an error with code [`POLICY_DENIED_CODE`], the text as
///   message, and `data: {decision, decision_id, reason, rule_id}`.
///
/// The proxy sends it with HTTP 200 and `Content-Type: application/json`: MCP clients raise on
/// non-2xx answers and the model would never see the reason. Prefer [`denial_answer`], which
/// also adds `resultType: "complete"` for 2026-07-28 calls.
pub fn denial_body(style: DenialStyle, id: Option<&Value>, info: &DenialInfo<'_>) -> Value {
    match style {
        DenialStyle::ToolError => tool_error_result(id, denial_text(info), decision_meta(info)),
        DenialStyle::JsonrpcError => json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": POLICY_DENIED_CODE,
                "message": denial_text(info),
                "data": {
                    "decision": info.decision,
                    "decision_id": info.decision_id,
                    "reason": info.reason,
                    "rule_id": info.rule_id,
                }
            }
        }),
    }
}

fn not_executed_body(style: DenialStyle, item: &ClassifiedItem, cause: &DenialInfo<'_>) -> Value {
    let text = format!(
        "Not executed: another call in the same batch was blocked by policy (decision {}). \
         Do not retry; tell the user.",
        cause.decision_id
    );
    if style == DenialStyle::ToolError && item.rpc_method.as_deref() == Some("tools/call") {
        let mut meta = Map::new();
        meta.insert(format!("{META_PREFIX}not_executed"), Value::Bool(true));
        meta.insert(
            format!("{META_PREFIX}decision_id"),
            Value::from(cause.decision_id),
        );
        return tool_error_result(item.jsonrpc_id.as_ref(), text, Value::Object(meta));
    }
    json!({
        "jsonrpc": "2.0",
        "id": item.jsonrpc_id,
        "error": {
            "code": NOT_EXECUTED_CODE,
            "message": text,
            "data": {"not_executed": true, "decision_id": cause.decision_id},
        }
    })
}

/// The whole answer to an MCP request of which at least one call was blocked. `None` when no
/// JSON-RPC answer can be built — no outcome is `Some`, or the request holds only notifications
/// and client responses, which have no id. The server calls this only when it blocks the request
/// and, on `None`, answers with the plain JSON 403: `None` never means "forward".
///
/// `outcomes[i]` is the verdict of `classified.items[i]`: `None` permitted, `Some` blocked.
/// A batch is all or nothing: when any element is blocked, nothing is forwarded; blocked
/// elements get their denial and permitted ones a "not executed" answer (code
/// [`NOT_EXECUTED_CODE`], or a tool error for `tools/call` in the `tool_error` style) naming the
/// decision that blocked the batch. `tools/call` uses `style`; other methods always get a
/// JSON-RPC error, since a tool result is not a valid answer to them. Elements without an id get
/// no answer, as JSON-RPC requires.
pub fn denial_answer(
    style: DenialStyle,
    classified: &Classified,
    outcomes: &[Option<DenialInfo<'_>>],
) -> Option<Vec<u8>> {
    let first_denial = outcomes.iter().flatten().next()?;
    let mut answers = Vec::with_capacity(classified.items.len());
    for (item, outcome) in classified.items.iter().zip(outcomes) {
        if item.jsonrpc_id.is_none() || item.rpc_method.is_none() {
            continue;
        }
        let mut answer = match outcome {
            Some(info) => {
                let style = if item.rpc_method.as_deref() == Some("tools/call") {
                    style
                } else {
                    DenialStyle::JsonrpcError
                };
                denial_body(style, item.jsonrpc_id.as_ref(), info)
            }
            None => not_executed_body(style, item, first_denial),
        };
        if speaks_result_type(item) {
            if let Some(Value::Object(result)) = answer.get_mut("result") {
                result.insert("resultType".into(), Value::from("complete"));
            }
        }
        answers.push(answer);
    }
    let value = if classified.batch {
        if answers.is_empty() {
            return None;
        }
        Value::Array(answers)
    } else {
        answers.into_iter().next()?
    };
    serde_json::to_vec(&value).ok()
}

/// [`denial_answer`] for a server that stops deciding at the first blocked call: the item at
/// `blocking` gets `info`, every other call is answered as not executed.
pub fn denial_answer_at(
    style: DenialStyle,
    classified: &Classified,
    blocking: usize,
    info: &DenialInfo<'_>,
) -> Option<Vec<u8>> {
    let outcomes: Vec<Option<DenialInfo<'_>>> = (0..classified.items.len())
        .map(|i| (i == blocking).then_some(*info))
        .collect();
    denial_answer(style, classified, &outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::tests::{agent_config, batching_config, headers, run, STATELESS_SEARCH};

    const DENY: DenialInfo<'static> = DenialInfo {
        decision: "deny",
        reason: "Deleting files is not allowed",
        rule_id: Some("no-deletes"),
        decision_id: "dec_01",
    };

    #[test]
    fn tool_error_denial_tells_the_model_not_to_retry() {
        let body = denial_body(DenialStyle::ToolError, Some(&json!(7)), &DENY);
        assert_eq!(body["id"], json!(7));
        assert_eq!(body["result"]["isError"], json!(true));
        assert_eq!(
            body["result"]["content"][0]["text"],
            json!("Deleting files is not allowed (decision dec_01). Do not retry; tell the user.")
        );
        assert_eq!(
            body["result"]["_meta"]["io.lexecon/decision_id"],
            json!("dec_01")
        );
        assert_eq!(
            body["result"]["_meta"]["io.lexecon/rule_id"],
            json!("no-deletes")
        );
        assert!(body.get("error").is_none());
    }

    #[test]
    fn stateless_generation_tool_error_carries_result_type() {
        let stateless = run(&agent_config(), &http::HeaderMap::new(), STATELESS_SEARCH).unwrap();
        let bytes = denial_answer(DenialStyle::ToolError, &stateless, &[Some(DENY)]).unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer["result"]["resultType"], json!("complete"));
        assert_eq!(answer["result"]["isError"], json!(true));
        let handshake = run(
            &agent_config(),
            &headers(&[("mcp-protocol-version", "2025-11-25")]),
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete_file","arguments":{}}}"#,
        )
        .unwrap();
        let bytes = denial_answer(DenialStyle::ToolError, &handshake, &[Some(DENY)]).unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(answer["result"].get("resultType").is_none());
    }

    #[test]
    fn jsonrpc_error_denial_carries_decision_data() {
        let body = denial_body(DenialStyle::JsonrpcError, Some(&json!("x")), &DENY);
        assert_eq!(body["id"], json!("x"));
        assert_eq!(body["error"]["code"], json!(POLICY_DENIED_CODE));
        assert_eq!(
            body["error"]["data"],
            json!({"decision": "deny", "decision_id": "dec_01", "reason": "Deleting files is not allowed", "rule_id": "no-deletes"})
        );
        assert!(body.get("result").is_none());
    }

    #[test]
    fn escalation_text_says_a_human_must_approve() {
        let info = DenialInfo {
            decision: "escalate",
            ..DENY
        };
        assert!(denial_text(&info).contains("a human must approve this call"));
    }

    fn batch_of_two() -> Classified {
        run(
            &batching_config(4),
            &http::HeaderMap::new(),
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{}}},
                {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_file","arguments":{}}},
                {"jsonrpc":"2.0","method":"notifications/progress"},
                {"jsonrpc":"2.0","id":3,"method":"tools/list"}]"#,
        )
        .unwrap()
    }

    #[test]
    fn partly_denied_batch_blocks_every_element_and_names_the_denial() {
        let classified = batch_of_two();
        let bytes = denial_answer(
            DenialStyle::ToolError,
            &classified,
            &[None, Some(DENY), None, None],
        )
        .unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        let answers = answer.as_array().unwrap();
        assert_eq!(answers.len(), 3, "the notification gets no answer");
        assert_eq!(answers[0]["id"], json!(1));
        assert_eq!(answers[0]["result"]["isError"], json!(true));
        assert!(answers[0]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Not executed: another call in the same batch was blocked by policy (decision dec_01)"));
        assert_eq!(answers[1]["id"], json!(2));
        assert!(answers[1]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Deleting files is not allowed"));
        assert_eq!(answers[2]["id"], json!(3));
        assert_eq!(answers[2]["error"]["code"], json!(NOT_EXECUTED_CODE));
    }

    #[test]
    fn nothing_denied_means_no_answer_and_single_denial_is_not_an_array() {
        let classified = batch_of_two();
        assert_eq!(
            denial_answer(DenialStyle::ToolError, &classified, &[None; 4]),
            None
        );
        let single = run(
            &agent_config(),
            &http::HeaderMap::new(),
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#,
        )
        .unwrap();
        let bytes = denial_answer(DenialStyle::ToolError, &single, &[Some(DENY)]).unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer["id"], json!(4));
        assert_eq!(
            answer["error"]["code"],
            json!(POLICY_DENIED_CODE),
            "tools/list cannot be answered with a tool result"
        );
    }

    #[test]
    fn denial_at_one_index_matches_the_outcome_list() {
        let classified = batch_of_two();
        assert_eq!(
            denial_answer_at(DenialStyle::JsonrpcError, &classified, 1, &DENY),
            denial_answer(
                DenialStyle::JsonrpcError,
                &classified,
                &[None, Some(DENY), None, None]
            )
        );
        assert_eq!(
            denial_answer_at(DenialStyle::JsonrpcError, &classified, 9, &DENY),
            None,
            "no JSON-RPC answer: the server falls back to the plain 403"
        );
    }

    #[test]
    fn denied_notification_has_no_jsonrpc_answer() {
        let note = run(
            &agent_config(),
            &http::HeaderMap::new(),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .unwrap();
        assert_eq!(
            denial_answer(DenialStyle::ToolError, &note, &[Some(DENY)]),
            None
        );
    }
}
