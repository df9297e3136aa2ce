//! `tools/list` response filtering for MCP routes with `filter_tools_list: true` or `pin_tools`: the
//! response to a permitted `tools/list` call loses every tool whose definition is not the pinned
//! one ([`RoutePins::observe`], which also remembers each listed definition for the calls that
//! follow; a hidden changed tool is logged and recorded once as a `request_refused` by
//! `tool_pin`), and, with `filter_tools_list`, every tool the actor may never call. Each listed tool is
//! decided as a `tools/call` of it would be (`mcp::tool_action`, `mcp::tool_resource`, the listing
//! call's context with `mcp_method: tools/call` and `mcp_tool`), decide only — nothing is recorded.
//! A tool whose decision is `deny`, or whose decision fails, is removed; `escalate` keeps it (the
//! actor may call it with a human's approval).
//!
//! Fail closed: the response is only passed on when it was filtered or shown to hold nothing to
//! filter. JSON bodies are held whole (bounded by [`MAX_BODY`]) and filtered at their end; a
//! non-empty body that does not parse as JSON is replaced by a JSON-RPC error for the listing
//! call's id. SSE bodies are filtered event by event as events complete (so they still stream),
//! with a leading byte-order mark dropped and lone-CR line endings turned into LF so that the
//! filter sees the events the client will see. A content-encoded body cannot be read and is
//! withheld (502 JSON); a body or SSE event above the bound is replaced by a JSON-RPC error and
//! the rest of the body is dropped. Every other response streams untouched: this module must
//! never hold anything but the body of a filtered `tools/list` response, and never record a
//! decision (only a pin refusal, handed to a task off the response path).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use lexecon_config::classifier::ClassifierConfig;
use lexecon_domains::Verdict;
use lexecon_policy_cache::DecisionInput;
use pingora::http::ResponseHeader;
use serde_json::{Map, Value};

use crate::enforce::Refused;
use crate::identity::Actor;
use crate::server::answer::{self, Refusal};
use crate::server::routes::Route;
use crate::server::state::ProxySnapshot;
use crate::server::tool_pins::{Listed, RoutePins};
use lexecon_classify::mcp;

/// The most a filtered JSON body (or one SSE event) may hold.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// The message of the JSON-RPC error sent instead of a `tools/list` result that cannot be read.
const UNREADABLE: &str =
    "the tools/list result from the upstream is not valid JSON; Lexecon withheld it";

/// The message of the JSON-RPC error sent instead of a `tools/list` result above [`MAX_BODY`].
const TOO_LARGE: &str =
    "the tools/list result from the upstream is above Lexecon's tools/list filter limit; withheld";

/// How the body of one `tools/list` response is handled.
#[derive(Debug)]
enum Mode {
    /// One JSON document: held whole, filtered at the end.
    Json { content_type: String },
    /// Server-sent events: filtered event by event.
    Sse { started: bool },
    /// Not readable: every chunk dropped, this answer sent at the end instead.
    Withheld(Bytes),
}

/// The filtering state of one response.
pub struct ToolsFilter {
    /// The snapshot the request was decided on, and its route.
    snap: Arc<ProxySnapshot>,
    route: usize,
    actor: Arc<Actor>,
    /// The listing call's context (identity claims included), the base of each tool's context.
    context: Map<String, Value>,
    /// The JSON-RPC id of the `tools/list` call (`null` when unknown), for error answers.
    id: Value,
    mode: Option<Mode>,
    buf: BytesMut,
    scan: Scan,
    /// Decide each tool against the policy (`filter_tools_list`).
    policy: bool,
    /// The route's tool pins (`pin_tools`).
    pins: Option<Arc<RoutePins>>,
    /// The request id of the listing, for a pin refusal's ledger entry.
    request_id: String,
}

impl std::fmt::Debug for ToolsFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolsFilter")
            .field("route", &self.route)
            .field("actor", &self.actor.id)
            .field("mode", &self.mode)
            .field("held", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl ToolsFilter {
    /// For a permitted request on route `route` of `snap`: the filter of its response when the
    /// route filters `tools/list` and one of the permitted calls (`contexts`, one per call) is a
    /// `tools/list`. `None` (stream untouched) otherwise. `body` is the request body.
    pub fn for_request<'c>(
        snap: &Arc<ProxySnapshot>,
        route: usize,
        actor: &Arc<Actor>,
        mut contexts: impl Iterator<Item = &'c Map<String, Value>>,
        body: Option<&[u8]>,
    ) -> Option<Box<ToolsFilter>> {
        let found = snap.routes.routes.get(route)?;
        let pins = found.pins.clone();
        let policy = match &found.classifier {
            ClassifierConfig::Mcp(config) if config.filter_tools_list || pins.is_some() => {
                config.filter_tools_list
            }
            _ => return None,
        };
        let listing =
            contexts.find(|c| c.get("mcp_method").and_then(Value::as_str) == Some("tools/list"))?;
        Some(Box::new(ToolsFilter {
            snap: snap.clone(),
            route,
            actor: actor.clone(),
            context: listing.clone(),
            id: body.map_or(Value::Null, listing_id),
            mode: None,
            buf: BytesMut::new(),
            scan: Scan::default(),
            policy,
            pins,
            request_id: String::new(),
        }))
    }

    /// Whether one listed tool (its whole object) stays in the result: its definition must be the
    /// pinned one (pinned routes; every tool is observed, so the calls that follow are checked
    /// against what was listed last), and, with `filter_tools_list`, the actor must be able to
    /// call it.
    fn keep(&self, tool: &Value) -> bool {
        if let Some(pins) = &self.pins {
            if let Listed::Hide { reason, report } = pins.observe(tool) {
                if report {
                    self.report(tool, reason);
                }
                return false;
            }
        }
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return false;
        };
        !self.policy || self.allowed(name)
    }

    /// Logs a tool hidden by its pin and records it in the ledger (`request_refused`, by
    /// `tool_pin`) from a task: the response does not wait for the ledger.
    fn report(&self, tool: &Value, reason: &'static str) {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(route) = self.route() else {
            return;
        };
        tracing::warn!(route = %route.name, tool = %name, reason, "tools/list: tool hidden by its pin");
        let ClassifierConfig::Mcp(config) = &route.classifier else {
            return;
        };
        let action = mcp::tool_action(config, &name).to_owned();
        let resource = mcp::tool_resource(config, &name);
        let domain = route.domain.clone();
        let decider = self.snap.decider.clone();
        let actor = self.actor.clone();
        let request_id = self.request_id.clone();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            let refused = Refused {
                request_id: &request_id,
                domain: &domain,
                actor: Some(&actor.id),
                action: Some(&action),
                resource: Some(&resource),
                by: "tool_pin",
                reason,
            };
            if let Err(e) = decider.record_refusal(&refused).await {
                tracing::error!(error = %e, tool = %name, "pin refusal not recorded");
            }
        });
    }

    fn route(&self) -> Option<&Route> {
        self.snap.routes.routes.get(self.route)
    }

    /// Whether a `tools/call` of `tool` could be permitted (now or after approval).
    fn allowed(&self, tool: &str) -> bool {
        let Some(route) = self.route() else {
            return false;
        };
        let ClassifierConfig::Mcp(config) = &route.classifier else {
            return false;
        };
        let mut context = self.context.clone();
        context.insert("mcp_method".into(), Value::from("tools/call"));
        context.insert("mcp_tool".into(), Value::from(tool));
        // Identity claims win, as they do for a real call.
        context.extend(
            self.actor
                .context
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let input = DecisionInput {
            request_id: None,
            domain: route.domain.clone(),
            actor: self.actor.id.to_string(),
            action: mcp::tool_action(config, tool).to_string(),
            resource: Some(mcp::tool_resource(config, tool)),
            context,
            at: None,
            provenance: self.actor.claim_provenance(),
        };
        match self
            .snap
            .decider
            .decide_pinned(input, &self.snap.policies)
            .0
        {
            Ok(d) => d.decision != Verdict::Deny,
            Err(failure) => {
                tracing::warn!(tool, error = %failure, "tools/list: tool hidden, its decision failed");
                false
            }
        }
    }

    /// Sets up the response: decides how its body is read and makes its length open (chunked),
    /// or withholds it (502) when it cannot be read. `false`: the response has no body to filter
    /// (204, 304). An informational (1xx) head changes nothing: the final one is still to come.
    pub fn start(&mut self, resp: &mut ResponseHeader, request_id: &str) -> pingora::Result<bool> {
        request_id.clone_into(&mut self.request_id);
        let status = resp.status.as_u16();
        if status < 200 {
            // Informational (100 Continue): the final response is still to come; keep the filter.
            return Ok(true);
        }
        if status == 204 || status == 304 {
            return Ok(false);
        }
        let header = |name: http::header::HeaderName| {
            resp.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let encoding = header(http::header::CONTENT_ENCODING)
            .filter(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"));
        let declared = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        let content_type = header(http::header::CONTENT_TYPE).unwrap_or_default();
        let withhold = match (&encoding, declared) {
            (Some(e), _) => Some(format!(
                "the upstream's tools/list result is {e}-encoded and cannot be filtered; withheld"
            )),
            (None, Some(n)) if n > MAX_BODY as u64 => Some(format!(
                "the upstream's tools/list result ({n} bytes) is above the filter's limit of {MAX_BODY} bytes; withheld"
            )),
            _ => None,
        };
        let mode = match withhold {
            Some(reason) => {
                tracing::warn!(%reason, "tools/list response withheld");
                let domain = self.route().map(|r| r.domain.as_str());
                let a = answer::refusal(Refusal::UpstreamUnavailable, &reason, request_id, domain);
                resp.set_status(a.status)?;
                resp.remove_header(&http::header::CONTENT_ENCODING);
                resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
                Mode::Withheld(a.body)
            }
            None if is_sse(&content_type) => Mode::Sse { started: false },
            None => Mode::Json {
                content_type: if is_json(&content_type) {
                    content_type
                } else {
                    "application/json".into()
                },
            },
        };
        resp.remove_header(&http::header::CONTENT_LENGTH);
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        self.mode = Some(mode);
        Ok(true)
    }

    /// Takes one chunk of the response body; returns what to send now. A body (or SSE event)
    /// above [`MAX_BODY`] is replaced by a JSON-RPC error and the rest of it dropped.
    pub fn chunk(&mut self, chunk: Option<&[u8]>, end: bool) -> Bytes {
        let Some(mode) = self.mode.take() else {
            // No final response head was seen: nothing is known about this body (fail closed).
            tracing::warn!("tools/list body before its response head; dropped");
            return Bytes::new();
        };
        let over = chunk.is_some_and(|c| self.buf.len() + c.len() > MAX_BODY);
        let mode = match mode {
            Mode::Json { .. } if over => {
                tracing::warn!("tools/list result above the filter's limit; withheld");
                self.buf = BytesMut::new();
                Mode::Withheld(self.error(TOO_LARGE))
            }
            Mode::Sse { .. } if over => {
                tracing::warn!(
                    "tools/list event above the filter's limit; the rest of the stream is withheld"
                );
                self.buf = BytesMut::new();
                self.mode = Some(Mode::Withheld(Bytes::new()));
                let error = self.error(TOO_LARGE);
                let mut event = BytesMut::with_capacity(error.len() + 24);
                event.extend_from_slice(b"event: message\ndata: ");
                event.extend_from_slice(&error);
                event.extend_from_slice(b"\n\n");
                return event.freeze();
            }
            other => other,
        };
        let (out, mode) = match mode {
            Mode::Withheld(body) => {
                if end {
                    (body.clone(), Mode::Withheld(body))
                } else {
                    (Bytes::new(), Mode::Withheld(body))
                }
            }
            Mode::Json { content_type } => {
                self.take(chunk);
                let out = if end {
                    self.finish_json(&content_type)
                } else {
                    Bytes::new()
                };
                (out, Mode::Json { content_type })
            }
            Mode::Sse { mut started } => {
                self.take(chunk);
                if !started && (self.buf.len() >= 3 || end) {
                    if self.buf.starts_with("\u{feff}".as_bytes()) {
                        let _ = self.buf.split_to(3);
                    }
                    started = true;
                }
                let out = if started {
                    let complete = if end {
                        self.buf.len()
                    } else {
                        complete_events(&self.buf, &mut self.scan)
                    };
                    self.scan = self.scan.shift(complete);
                    let events = self.buf.split_to(complete);
                    self.filter_sse(&events)
                } else {
                    Bytes::new()
                };
                (out, Mode::Sse { started })
            }
        };
        self.mode = Some(mode);
        out
    }

    /// A JSON-RPC error answering the listing call (code -32603, internal error).
    fn error(&self, message: &str) -> Bytes {
        let error = serde_json::json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": {"code": -32603, "message": message},
        });
        Bytes::from(error.to_string())
    }

    fn take(&mut self, chunk: Option<&[u8]>) {
        if let Some(c) = chunk {
            self.buf.extend_from_slice(c);
        }
    }

    fn finish_json(&mut self, content_type: &str) -> Bytes {
        let body = self.buf.split().freeze();
        let text = body
            .strip_prefix("\u{feff}".as_bytes())
            .unwrap_or(&body[..]);
        if text.iter().all(u8::is_ascii_whitespace) {
            return body;
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(text).is_err() {
            tracing::warn!("tools/list result is not JSON; withheld");
            return self.error(UNREADABLE);
        }
        match mcp::filter_tools_list_by(text, content_type, &|tool| self.keep(tool)) {
            Some(filtered) => Bytes::from(filtered),
            None => body,
        }
    }

    fn filter_sse(&self, events: &[u8]) -> Bytes {
        if events.is_empty() {
            return Bytes::new();
        }
        let normalized = normalize_lone_cr(events);
        let events = normalized.as_deref().unwrap_or(events);
        match mcp::filter_tools_list_by(events, "text/event-stream", &|tool| self.keep(tool)) {
            Some(filtered) => Bytes::from(filtered),
            None => Bytes::copy_from_slice(events),
        }
    }
}

/// The JSON-RPC id of the (first) `tools/list` call in a request body; `null` when none.
fn listing_id(body: &[u8]) -> Value {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Value::Null;
    };
    let is_listing = |m: &Value| m.get("method").and_then(Value::as_str) == Some("tools/list");
    let listing = match &value {
        Value::Array(batch) => batch.iter().find(|m| is_listing(m)),
        single => Some(single).filter(|m| is_listing(m)),
    };
    listing
        .and_then(|m| m.get("id"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn mime(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_sse(content_type: &str) -> bool {
    mime(content_type) == "text/event-stream"
}

fn is_json(content_type: &str) -> bool {
    let m = mime(content_type);
    m == "application/json" || m.ends_with("+json")
}

/// Where the search for event boundaries in the held SSE bytes stopped, so that each byte is
/// scanned once however the body is split.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    /// Start of the line being read.
    line_start: usize,
    /// First byte not scanned yet.
    pos: usize,
}

/// The length of the prefix of `buf` made of complete SSE events (each ended by an empty line;
/// lines end in CRLF, LF or CR), scanning from `scan` and leaving it where it stopped. A CR at
/// the very end is undecided (CRLF may be split). After the caller removes the prefix, `scan`
/// must be shifted by its length ([`Scan::shift`]).
fn complete_events(buf: &[u8], scan: &mut Scan) -> usize {
    let mut boundary = 0;
    let mut line_start = scan.line_start;
    let mut i = scan.pos;
    while i < buf.len() {
        let end = match buf[i] {
            b'\n' => i + 1,
            b'\r' => match buf.get(i + 1) {
                Some(b'\n') => i + 2,
                Some(_) => i + 1,
                None => break,
            },
            _ => {
                i += 1;
                continue;
            }
        };
        if i == line_start {
            boundary = end;
        }
        line_start = end;
        i = end;
    }
    *scan = Scan { line_start, pos: i };
    boundary
}

impl Scan {
    /// The scan position after the first `n` bytes were removed (`n` is at most a boundary,
    /// which is never after the scan position).
    fn shift(self, n: usize) -> Scan {
        Scan {
            line_start: self.line_start.saturating_sub(n),
            pos: self.pos.saturating_sub(n),
        }
    }
}

/// `events` with every CR that does not start a CRLF turned into LF; `None` when there is none.
fn normalize_lone_cr(events: &[u8]) -> Option<Vec<u8>> {
    let lone = |i: usize| events[i] == b'\r' && events.get(i + 1) != Some(&b'\n');
    if !(0..events.len()).any(lone) {
        return None;
    }
    Some(
        (0..events.len())
            .map(|i| if lone(i) { b'\n' } else { events[i] })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::{DecisionPoint, EnforceError};
    use lexecon_policy_cache::{Decision, Explanation};

    /// Denies `axn_delete_data`, fails for `axn_broken`, escalates `axn_send_message`, permits
    /// the rest.
    struct Rules;

    impl DecisionPoint for Rules {
        fn decide(&self, input: DecisionInput) -> Result<Decision, EnforceError> {
            let verdict = match input.action.as_str() {
                "axn_delete_data" => Verdict::Deny,
                "axn_broken" => return Err(EnforceError::new(500, "broken")),
                "axn_send_message" => Verdict::Escalate,
                _ => Verdict::Permit,
            };
            Ok(Decision {
                request_id: "r".into(),
                decision_id: "d".into(),
                domain: input.domain,
                actor: input.actor,
                action: input.action,
                resource: input.resource,
                decision: verdict,
                reasoning: String::new().into(),
                rule_id: String::new().into(),
                policy_version_hash: String::new().into(),
                compliance_mappings: vec![].into(),
                risk_level: 1,
                requires_human_approval: false,
                review_required: false,
                explanation: Explanation {
                    matched_rules: vec![].into(),
                    findings: vec![],
                    would_have: None,
                    cached: false,
                },
                timestamp: jiff::Timestamp::now(),
            })
        }
    }

    fn filter() -> Box<ToolsFilter> {
        let yaml = r#"
listeners: {proxy: "127.0.0.1:1", admin: "127.0.0.1:2"}
upstreams: {tools: {addrs: ["127.0.0.1:3"]}}
identity: {trusted_actor_header: x-agent-id}
routes:
  - name: mcp
    match: {path_prefix: /mcp}
    domain: ai
    classifier:
      kind: mcp
      tools: {"delete_*": axn_delete_data, "send_*": axn_send_message, "broken_*": axn_broken}
      filter_tools_list: true
    upstream: tools
"#;
        let config = lexecon_config::Config::from_yaml("t.yaml", yaml).unwrap();
        let snap = Arc::new(ProxySnapshot::build(&config, Arc::new(Rules)).unwrap());
        let actor = Arc::new(Actor {
            id: Arc::from("act_ai_agent:t"),
            context: Map::new(),
            source: crate::identity::Source::Header,
        });
        let mut listing = Map::new();
        listing.insert("mcp_method".into(), Value::from("tools/list"));
        let body = br#"{"jsonrpc":"2.0","id":"L","method":"tools/list"}"#;
        ToolsFilter::for_request(&snap, 0, &actor, std::iter::once(&listing), Some(body)).unwrap()
    }

    fn response(content_type: &str) -> ResponseHeader {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("content-type", content_type).unwrap();
        resp.insert_header("content-length", "10").unwrap();
        resp
    }

    /// Feeds `body` split at `cuts` and returns everything sent.
    fn run(content_type: &str, body: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut f = filter();
        let mut resp = response(content_type);
        assert!(f.start(&mut resp, "rid").unwrap());
        assert!(resp.headers.get("content-length").is_none());
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
            out.extend_from_slice(&f.chunk(Some(&body[from..cut]), false));
            from = cut;
        }
        out.extend_from_slice(&f.chunk(None, true));
        out
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":"L","result":{"tools":[{"name":"search"},{"name":"delete_file"},{"name":"send_email"},{"name":"broken_tool"}]}}"#;

    #[test]
    fn denied_and_failing_tools_are_removed_escalated_ones_kept() {
        let out = run("application/json", LIST.as_bytes(), &[]);
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            value["result"]["tools"],
            serde_json::json!([{"name": "search"}, {"name": "send_email"}])
        );
    }

    #[test]
    fn sse_gives_the_same_output_however_the_body_is_split() {
        let sse = format!(
            ": hi\r\n\r\nevent: message\r\ndata: {LIST}\r\n\r\nevent: message\rdata: {LIST}\r\r"
        );
        let whole = run("text/event-stream", sse.as_bytes(), &[]);
        let text = String::from_utf8(whole.clone()).unwrap();
        assert!(
            !text.contains("delete_file") && text.contains("send_email"),
            "{text}"
        );
        let every_byte: Vec<usize> = (1..sse.len()).collect();
        assert_eq!(run("text/event-stream", sse.as_bytes(), &every_byte), whole);
        for cut in 1..sse.len() {
            assert_eq!(
                run("text/event-stream", sse.as_bytes(), &[cut]),
                whole,
                "split at {cut}"
            );
        }
    }

    #[test]
    fn body_that_is_not_json_is_replaced_by_an_error_for_the_listing_id() {
        let out = run(
            "application/json",
            br#"{"result":{"tools":[{"name":"delete_file"}"#,
            &[],
        );
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["id"], Value::from("L"));
        assert_eq!(value["error"]["code"], Value::from(-32603));
        assert_eq!(run("application/json", b"  \n", &[]), b"  \n");
    }

    #[test]
    fn informational_head_keeps_the_filter_and_no_head_drops_the_body() {
        let mut f = filter();
        let mut cont = ResponseHeader::build(100, None).unwrap();
        assert!(f.start(&mut cont, "rid").unwrap());
        assert!(f.chunk(Some(LIST.as_bytes()), true).is_empty());
        let mut no_content = ResponseHeader::build(204, None).unwrap();
        assert!(!f.start(&mut no_content, "rid").unwrap());
    }

    #[test]
    fn complete_events_ends_after_the_last_empty_line() {
        let complete = |b: &[u8]| complete_events(b, &mut Scan::default());
        assert_eq!(complete(b"data: 1\n\ndata: 2\n"), 9);
        assert_eq!(complete(b"data: 1\r\n\r\ndata: 2"), 11);
        assert_eq!(complete(b"data: 1\r\rdata: 2"), 9);
        assert_eq!(
            complete(b"data: 1\r\n\r"),
            0,
            "a final CR may be half a CRLF"
        );
        assert_eq!(complete(b"data: 1\n"), 0);
        assert_eq!(complete(b""), 0);
    }

    #[test]
    fn listing_id_is_the_id_of_the_tools_list_call_single_or_in_a_batch() {
        let single = br#"{"jsonrpc":"2.0","id":"a-1","method":"tools/list"}"#;
        assert_eq!(listing_id(single), Value::from("a-1"));
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#;
        assert_eq!(listing_id(batch), Value::from(2));
        assert_eq!(listing_id(b"{not json"), Value::Null);
        assert_eq!(listing_id(br#"{"id":3,"method":"ping"}"#), Value::Null);
    }

    #[test]
    fn lone_carriage_returns_become_line_feeds_and_crlf_stays() {
        assert_eq!(
            normalize_lone_cr(b"data: 1\r\rx\r\n").as_deref(),
            Some(&b"data: 1\n\nx\r\n"[..])
        );
        assert_eq!(normalize_lone_cr(b"data: 1\r\n\r\n"), None);
    }
}
