//! Request bodies of the decision API, parsed and validated into what the decision service takes.
//!
//! - [`parse_decision_request`]: the v1 body `{request_id?, actor, action, resource?, context?,
//!   approval_id?}` into a [`DecisionRequest`] (a [`DecisionInput`] plus the approval being redeemed).
//! - [`parse_legacy_decide`]: the Lexecon 1.x `/decide` body into a [`LegacyDecideRequest`], which maps
//!   to a [`DecisionInput`] in the `ai` domain ([`LegacyDecideRequest::to_decision_input`]).
//! - [`parse_approval_comment`]: the optional `{comment}` body of approve / deny.
//!
//! Every problem of a body is collected and reported at once, one [`FieldError`] per field, as the
//! 422 answer lists them. Limits: body <= 64 KiB (413 beyond), `actor` 1..=255 characters,
//! `action`/`resource` 1..=512 bytes, `context` an object with <= 100 keys nested <= 5 levels
//! (counting `context` itself as level 1). The decision time is never taken from the body: the
//! server decides "now". Unknown fields are rejected so a misspelt field cannot silently change a
//! decision. Nothing here decides, allocates beyond the parsed body, or panics on any input.

use lexecon_domains::EntityRef;
use lexecon_policy_cache::DecisionInput;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::router::{is_valid_approval_id, is_valid_domain, LEGACY_DOMAIN};

/// Largest accepted request body (64 KiB); larger bodies are answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `actor`, in characters.
pub const MAX_ACTOR_CHARS: usize = 255;
/// Longest `action` or `resource` reference, in bytes (the entity reference limit).
pub const MAX_REF_BYTES: usize = 512;
/// Most top-level keys in `context`.
pub const MAX_CONTEXT_KEYS: usize = 100;
/// Deepest nesting of `context`, counting `context` itself as level 1.
pub const MAX_CONTEXT_DEPTH: usize = 5;
/// Longest `request_id`, in characters.
pub const MAX_REQUEST_ID_CHARS: usize = 128;
/// Longest approve/deny comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2048;
/// At most this many field errors are reported for one body.
pub const MAX_FIELD_ERRORS: usize = 50;

/// One invalid field of a request body and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Path of the field: `actor`, `context.order.legs[2]`, or `body` for the whole document.
    pub field: String,
    pub reason: String,
}

/// Why a request body (or the domain it names) was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// 413.
    #[error("request body is {size} bytes; the limit is {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },
    /// 422: not JSON at all.
    #[error("request body is not valid JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// 422: JSON, but fields are missing, mistyped or out of range.
    #[error("request body has {} invalid field(s): {}", fields.len(), summarize(fields))]
    InvalidFields { fields: Vec<FieldError> },
    /// 400: the domain name is not `[a-z][a-z0-9_]*`.
    #[error("Invalid domain: {domain}")]
    InvalidDomain { domain: String },
    /// 404: a well-formed domain with no plugin or no policy loaded.
    #[error("Domain not supported: {domain}")]
    DomainNotSupported { domain: String },
}

impl RequestError {
    /// The field errors the 422 body lists (the syntax error as field `body`).
    pub fn fields(&self) -> Vec<FieldError> {
        match self {
            RequestError::InvalidFields { fields } => fields.clone(),
            RequestError::Syntax {
                line,
                column,
                message,
            } => vec![FieldError {
                field: "body".into(),
                reason: format!("invalid JSON at line {line}, column {column}: {message}"),
            }],
            _ => Vec::new(),
        }
    }
}

fn summarize(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks a domain name from a path: `[a-z][a-z0-9_]*` (at most 64 characters) or 400.
pub fn check_domain(domain: &str) -> Result<(), RequestError> {
    if is_valid_domain(domain) {
        Ok(())
    } else {
        Err(RequestError::InvalidDomain {
            domain: domain.to_owned(),
        })
    }
}

/// The 404 for a well-formed domain the current snapshot has no plugin or policy for. The caller
/// decides support from its registry / snapshot and calls this to build the error.
pub fn domain_not_supported(domain: &str) -> RequestError {
    RequestError::DomainNotSupported {
        domain: domain.to_owned(),
    }
}

/// Checks a declared body length (`content-length`) before the body is read, so an oversized
/// request is answered 413 without buffering it.
pub fn check_body_len(len: u64) -> Result<(), RequestError> {
    match usize::try_from(len) {
        Ok(size) if size <= MAX_BODY_BYTES => Ok(()),
        _ => Err(RequestError::BodyTooLarge {
            size: usize::try_from(len).unwrap_or(usize::MAX),
            limit: MAX_BODY_BYTES,
        }),
    }
}

/// A validated v1 decision request.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRequest {
    /// `at` is always `None`: the server decides at its own "now".
    pub input: DecisionInput,
    /// The approval the caller redeems with this request (`approval_id`), if any.
    pub approval_id: Option<String>,
}

/// Parses the v1 decision body for `domain` (`POST /api/v1/{domain}/decisions/request`, or
/// `POST /decisions/request` with [`LEGACY_DOMAIN`]).
pub fn parse_decision_request(domain: &str, body: &[u8]) -> Result<DecisionRequest, RequestError> {
    check_domain(domain)?;
    let mut map = parse_object(body)?;
    let mut errs = Errors::default();
    let request_id = take_request_id(&mut map, &mut errs);
    let actor =
        take_string(&mut map, "actor", true, &mut errs).and_then(|a| check_actor(a, &mut errs));
    let action = take_string(&mut map, "action", true, &mut errs)
        .and_then(|a| check_ref("action", a, &mut errs));
    let resource = take_string(&mut map, "resource", false, &mut errs)
        .and_then(|r| check_ref("resource", r, &mut errs));
    let context = take_context(&mut map, "context", &mut errs);
    let approval_id = take_approval_id(&mut map, &mut errs);
    errs.unknown_fields(
        &map,
        "request_id, actor, action, resource, context, approval_id",
    );
    errs.finish()?;
    match (actor, action) {
        (Some(actor), Some(action)) => Ok(DecisionRequest {
            input: DecisionInput {
                request_id,
                domain: domain.to_owned(),
                actor,
                action,
                resource,
                context,
                at: None,
                provenance: Default::default(),
            },
            approval_id,
        }),
        // Unreachable in practice: a missing actor or action always records an error above.
        _ => Err(RequestError::InvalidFields {
            fields: vec![FieldError {
                field: "body".into(),
                reason: "actor and action are required".into(),
            }],
        }),
    }
}

/// A validated Lexecon 1.x `/decide` body.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyDecideRequest {
    pub request_id: Option<String>,
    pub actor: String,
    pub proposed_action: String,
    pub tool: String,
    pub user_intent: String,
    pub data_classes: Vec<String>,
    /// The caller's own risk estimate, 1..=5 (default 1).
    pub risk_level: u8,
    /// `tool_action` (default), `permit`, `deny` or `escalate`, lower-cased.
    pub requested_output_type: String,
    /// `strict` (default), `permissive` or `paranoid`, lower-cased.
    pub policy_mode: String,
    pub context: Map<String, Value>,
    /// Extension over 1.x: the approval this retry redeems (see the v1 body).
    pub approval_id: Option<String>,
}

/// The context keys a 1.x request's top-level fields are copied into.
pub const LEGACY_CONTEXT_KEYS: [&str; 6] = [
    "tool",
    "user_intent",
    "data_classes",
    "risk_level",
    "requested_output_type",
    "policy_mode",
];

impl LegacyDecideRequest {
    /// Maps the 1.x request to a decision in the `ai` domain:
    ///
    /// | 1.x field | decision input |
    /// |---|---|
    /// | `request_id` | `request_id` |
    /// | `actor` | `actor` (legacy un-prefixed names are accepted by the `ai` domain) |
    /// | `proposed_action` | `action` |
    /// | `tool`, `user_intent`, `data_classes`, `risk_level`, `requested_output_type`, `policy_mode` | `context.<same name>` |
    /// | `context` | `context` (the six keys above override same-named caller keys) |
    ///
    /// `resource` stays empty (1.x had none). `policy_mode` is recorded, never obeyed: the mode of
    /// the loaded policy governs, so a caller cannot weaken it. `risk_level` is the caller's estimate,
    /// available to rules as `context.risk_level`; the action type's own risk level still applies.
    pub fn to_decision_input(&self) -> DecisionInput {
        let mut context = self.context.clone();
        context.insert("tool".into(), Value::String(self.tool.clone()));
        context.insert(
            "user_intent".into(),
            Value::String(self.user_intent.clone()),
        );
        context.insert(
            "data_classes".into(),
            Value::Array(
                self.data_classes
                    .iter()
                    .map(|c| Value::String(c.clone()))
                    .collect(),
            ),
        );
        context.insert("risk_level".into(), Value::from(self.risk_level));
        context.insert(
            "requested_output_type".into(),
            Value::String(self.requested_output_type.clone()),
        );
        context.insert(
            "policy_mode".into(),
            Value::String(self.policy_mode.clone()),
        );
        DecisionInput {
            request_id: self.request_id.clone(),
            domain: LEGACY_DOMAIN.to_owned(),
            actor: self.actor.clone(),
            action: self.proposed_action.clone(),
            resource: None,
            context,
            at: None,
            provenance: Default::default(),
        }
    }
}

/// Parses a Lexecon 1.x `/decide` body, with the 1.x limits (`tool` 1..=255 of `[A-Za-z0-9_.-]`,
/// `user_intent` 1..=2048 characters, `data_classes` <= 1000 non-empty strings) plus this API's.
pub fn parse_legacy_decide(body: &[u8]) -> Result<LegacyDecideRequest, RequestError> {
    let mut map = parse_object(body)?;
    let mut errs = Errors::default();
    let request_id = take_request_id(&mut map, &mut errs);
    let actor =
        take_string(&mut map, "actor", true, &mut errs).and_then(|a| check_actor(a, &mut errs));
    let proposed_action = take_string(&mut map, "proposed_action", true, &mut errs)
        .and_then(|a| check_ref("proposed_action", a, &mut errs));
    let tool = take_string(&mut map, "tool", true, &mut errs).and_then(|t| {
        let ok_chars = t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if t.is_empty() || t.chars().count() > 255 || !ok_chars {
            errs.push(
                "tool",
                "expected 1 to 255 of A-Z, a-z, 0-9, '_', '-' or '.'",
            );
            None
        } else {
            Some(t)
        }
    });
    let user_intent = take_string(&mut map, "user_intent", true, &mut errs).and_then(|u| {
        if u.trim().is_empty() {
            errs.push("user_intent", "must not be empty");
            None
        } else if u.chars().count() > 2048 {
            errs.push("user_intent", "must be at most 2048 characters");
            None
        } else {
            Some(u)
        }
    });
    let data_classes = take_data_classes(&mut map, &mut errs);
    let risk_level = match map.remove("risk_level") {
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(l @ 1..=5) => l as u8,
            _ => {
                errs.push(
                    "risk_level",
                    format!("must be an integer from 1 to 5, found {n}"),
                );
                1
            }
        },
        Some(other) => {
            errs.push(
                "risk_level",
                format!(
                    "expected an integer from 1 to 5, found {}",
                    lexecon_config::json_type_name(&other)
                ),
            );
            1
        }
    };
    let requested_output_type = take_choice(
        &mut map,
        "requested_output_type",
        &["tool_action", "permit", "deny", "escalate"],
        &mut errs,
    );
    let policy_mode = take_choice(
        &mut map,
        "policy_mode",
        &["strict", "permissive", "paranoid"],
        &mut errs,
    );
    let context = take_context(&mut map, "context", &mut errs);
    let approval_id = take_approval_id(&mut map, &mut errs);
    errs.unknown_fields(
        &map,
        "request_id, actor, proposed_action, tool, user_intent, data_classes, risk_level, \
         requested_output_type, policy_mode, context, approval_id",
    );
    errs.finish()?;
    match (actor, proposed_action, tool, user_intent) {
        (Some(actor), Some(proposed_action), Some(tool), Some(user_intent)) => {
            Ok(LegacyDecideRequest {
                request_id,
                actor,
                proposed_action,
                tool,
                user_intent,
                data_classes,
                risk_level,
                requested_output_type,
                policy_mode,
                context,
                approval_id,
            })
        }
        // Unreachable in practice: each missing field records an error above.
        _ => Err(RequestError::InvalidFields {
            fields: vec![FieldError {
                field: "body".into(),
                reason: "actor, proposed_action, tool and user_intent are required".into(),
            }],
        }),
    }
}

/// Parses the optional body of approve / deny: empty, or `{"comment": "..."}`.
pub fn parse_approval_comment(body: &[u8]) -> Result<Option<String>, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut map = parse_object(body)?;
    let mut errs = Errors::default();
    let comment = take_string(&mut map, "comment", false, &mut errs).and_then(|c| {
        if c.chars().count() > MAX_COMMENT_CHARS {
            errs.push(
                "comment",
                format!("must be at most {MAX_COMMENT_CHARS} characters"),
            );
            None
        } else {
            Some(c)
        }
    });
    errs.unknown_fields(&map, "comment");
    errs.finish()?;
    Ok(comment)
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        if self.0.len() < MAX_FIELD_ERRORS {
            self.0.push(FieldError {
                field: field.into(),
                reason: reason.into(),
            });
        }
    }

    fn unknown_fields(&mut self, rest: &Map<String, Value>, expected: &str) {
        for key in rest.keys() {
            self.push(
                key.clone(),
                format!("unknown field; expected one of {expected}"),
            );
        }
    }

    fn finish(self) -> Result<(), RequestError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RequestError::InvalidFields { fields: self.0 })
        }
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, RequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::BodyTooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(RequestError::InvalidFields {
            fields: vec![FieldError {
                field: "body".into(),
                reason: format!(
                    "expected a JSON object, found {}",
                    lexecon_config::json_type_name(&other)
                ),
            }],
        }),
        Err(e) => Err(RequestError::Syntax {
            line: e.line(),
            column: e.column(),
            message: syntax_message(&e),
        }),
    }
}

/// serde_json's message without its trailing " at line L column C" (reported separately).
fn syntax_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    }
}

/// Removes `key`; a required key must be a string, an optional one a string or null.
fn take_string(
    map: &mut Map<String, Value>,
    key: &str,
    required: bool,
    errs: &mut Errors,
) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        None if required => {
            errs.push(key, "is required");
            None
        }
        Some(Value::Null) if required => {
            errs.push(key, "is required; found null");
            None
        }
        None | Some(Value::Null) => None,
        Some(other) => {
            errs.push(
                key,
                format!(
                    "expected a string, found {}",
                    lexecon_config::json_type_name(&other)
                ),
            );
            None
        }
    }
}

fn take_request_id(map: &mut Map<String, Value>, errs: &mut Errors) -> Option<String> {
    take_string(map, "request_id", false, errs).and_then(|id| {
        let ok = !id.is_empty()
            && id.chars().count() <= MAX_REQUEST_ID_CHARS
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if ok {
            Some(id)
        } else {
            errs.push(
                "request_id",
                format!(
                    "expected 1 to {MAX_REQUEST_ID_CHARS} of A-Z, a-z, 0-9, '_', '-', '.' or ':'"
                ),
            );
            None
        }
    })
}

fn take_approval_id(map: &mut Map<String, Value>, errs: &mut Errors) -> Option<String> {
    take_string(map, "approval_id", false, errs).and_then(|id| {
        if is_valid_approval_id(&id) {
            Some(id)
        } else {
            errs.push(
                "approval_id",
                "expected 1 to 64 of A-Z, a-z, 0-9, '_' or '-'",
            );
            None
        }
    })
}

fn check_actor(actor: String, errs: &mut Errors) -> Option<String> {
    let chars = actor.chars().count();
    if chars == 0 || chars > MAX_ACTOR_CHARS {
        errs.push(
            "actor",
            format!("must be 1 to {MAX_ACTOR_CHARS} characters, found {chars}"),
        );
        return None;
    }
    check_ref("actor", actor, errs)
}

fn check_ref(field: &str, raw: String, errs: &mut Errors) -> Option<String> {
    if raw.len() > MAX_REF_BYTES {
        errs.push(
            field,
            format!("must be at most {MAX_REF_BYTES} bytes, found {}", raw.len()),
        );
        return None;
    }
    match EntityRef::parse(raw.as_str()) {
        Ok(_) => Some(raw),
        Err(lexecon_domains::DomainError::InvalidEntityRef { reason, .. }) => {
            errs.push(field, format!("expected type_id[:instance]: {reason}"));
            None
        }
        Err(other) => {
            errs.push(field, other.to_string());
            None
        }
    }
}

fn take_context(map: &mut Map<String, Value>, key: &str, errs: &mut Errors) -> Map<String, Value> {
    match map.remove(key) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(ctx)) => {
            let before = errs.0.len();
            if ctx.len() > MAX_CONTEXT_KEYS {
                errs.push(
                    key,
                    format!(
                        "must have at most {MAX_CONTEXT_KEYS} keys, found {}",
                        ctx.len()
                    ),
                );
            }
            for (k, v) in &ctx {
                if let Some(mut path) = too_deep(v, 2) {
                    path.push(Segment::Key(k));
                    let mut field = key.to_owned();
                    for seg in path.iter().rev() {
                        match seg {
                            Segment::Key(k) => {
                                field.push('.');
                                field.push_str(k);
                            }
                            Segment::Index(i) => field.push_str(&format!("[{i}]")),
                        }
                    }
                    errs.push(
                        field,
                        format!(
                            "nested too deeply: {key} may nest at most {MAX_CONTEXT_DEPTH} levels \
                             of objects and arrays, counting {key} itself"
                        ),
                    );
                }
            }
            if errs.0.len() == before {
                ctx
            } else {
                Map::new()
            }
        }
        Some(other) => {
            errs.push(
                key,
                format!(
                    "expected an object, found {}",
                    lexecon_config::json_type_name(&other)
                ),
            );
            Map::new()
        }
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// For a value at nesting `level`, the path (innermost first) to the first container nested
/// deeper than [`MAX_CONTEXT_DEPTH`], if any.
fn too_deep(value: &Value, level: usize) -> Option<Vec<Segment<'_>>> {
    let is_container = matches!(value, Value::Object(_) | Value::Array(_));
    if !is_container {
        return None;
    }
    if level > MAX_CONTEXT_DEPTH {
        return Some(Vec::new());
    }
    match value {
        Value::Object(m) => m.iter().find_map(|(k, v)| {
            too_deep(v, level + 1).map(|mut p| {
                p.push(Segment::Key(k));
                p
            })
        }),
        Value::Array(a) => a.iter().enumerate().find_map(|(i, v)| {
            too_deep(v, level + 1).map(|mut p| {
                p.push(Segment::Index(i));
                p
            })
        }),
        _ => None,
    }
}

fn take_data_classes(map: &mut Map<String, Value>, errs: &mut Errors) -> Vec<String> {
    match map.remove("data_classes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > 1000 {
                errs.push(
                    "data_classes",
                    format!("must have at most 1000 items, found {}", items.len()),
                );
                return Vec::new();
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(s) if !s.trim().is_empty() && s.len() <= MAX_REF_BYTES => {
                        out.push(s)
                    }
                    Value::String(_) => errs.push(
                        format!("data_classes[{i}]"),
                        format!("must be a non-empty string of at most {MAX_REF_BYTES} bytes"),
                    ),
                    other => errs.push(
                        format!("data_classes[{i}]"),
                        format!(
                            "expected a string, found {}",
                            lexecon_config::json_type_name(&other)
                        ),
                    ),
                }
            }
            out
        }
        Some(other) => {
            errs.push(
                "data_classes",
                format!(
                    "expected an array of strings, found {}",
                    lexecon_config::json_type_name(&other)
                ),
            );
            Vec::new()
        }
    }
}

/// An optional case-insensitive choice; absent means the first choice.
fn take_choice(
    map: &mut Map<String, Value>,
    key: &str,
    choices: &[&str],
    errs: &mut Errors,
) -> String {
    let default = choices.first().copied().unwrap_or_default().to_owned();
    match take_string(map, key, false, errs) {
        None => default,
        Some(v) => {
            let lower = v.to_ascii_lowercase();
            if choices.contains(&lower.as_str()) {
                lower
            } else {
                errs.push(
                    key,
                    format!("must be one of {}, found {v:?}", choices.join(", ")),
                );
                default
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
