//! Evaluates the configured value sources of the REST and FHIR classifiers (`path.<param>`,
//! `query.<name>`, `header.<name>`, `body./pointer`, numbers, and `add/sub/mul/div`) against one
//! request. Pure: reads only what it is given, never allocates for sources it does not read.
//!
//! Closed by default: a query parameter a source reads must appear once, and a JSON body a source
//! reads is parsed strictly (a key twice in one object is refused, see `crate::json`).

use std::borrow::Cow;

use lexecon_config::classifier::{Func, PathTemplate, TemplatePart, ValueExpr};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::ClassifyError;

/// What a value source can read from one request.
pub(super) struct Request<'r> {
    pub template: Option<&'r PathTemplate>,
    /// Raw path parameter values, in template order.
    pub path_values: &'r [&'r str],
    pub query: Option<&'r str>,
    pub headers: &'r http::HeaderMap,
    /// The parsed JSON body, when the operation reads it.
    pub body: Option<&'r Value>,
}

/// Parses a JSON body that a value source needs; `what` names the operation for the message.
pub(super) fn parse_body(body: Option<&[u8]>, what: &str) -> Result<Value, ClassifyError> {
    let bytes = body.unwrap_or_default();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ClassifyError::Malformed(format!(
            "{what} needs a JSON body, but the body is empty"
        )));
    }
    crate::json::from_slice(bytes).map_err(|e| e.into_classify(&format!("{what}: body")))
}

/// Percent-decodes a path or query component (`+` is a space in queries). Borrows when there is
/// nothing to decode.
pub(super) fn decode(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, ClassifyError> {
    let invalid =
        || ClassifyError::Malformed(format!("{raw:?} is not valid percent-encoded UTF-8"));
    if plus_is_space && raw.contains('+') {
        let spaced = raw.replace('+', " ");
        let decoded = percent_decode_str(&spaced)
            .decode_utf8()
            .map_err(|_| invalid())?;
        return Ok(Cow::Owned(decoded.into_owned()));
    }
    percent_decode_str(raw).decode_utf8().map_err(|_| invalid())
}

/// Iterates the decoded `name=value` pairs of a query string.
pub(super) fn query_pairs(
    query: &str,
) -> impl Iterator<Item = Result<(Cow<'_, str>, Cow<'_, str>), ClassifyError>> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        Ok((decode(name, true)?, decode(value, true)?))
    })
}

/// A short text for an expression, for error messages.
pub(super) fn describe(expr: &ValueExpr) -> String {
    match expr {
        ValueExpr::Path(name) => format!("path.{name}"),
        ValueExpr::Query(name) => format!("query.{name}"),
        ValueExpr::Header(name) => format!("header.{name}"),
        ValueExpr::Body(pointer) => format!("body.{pointer}"),
        ValueExpr::Number(n) => n.to_string(),
        ValueExpr::Call(func, args) => {
            let args: Vec<String> = args.iter().map(describe).collect();
            format!("{}({})", func.name(), args.join(", "))
        }
    }
}

impl Request<'_> {
    /// The value of `expr`, `None` when its source is absent. A computed expression whose operand
    /// is absent or not a number is an error (a policy must never compare against a guess).
    pub(super) fn eval(&self, expr: &ValueExpr) -> Result<Option<Value>, ClassifyError> {
        match expr {
            ValueExpr::Path(name) => {
                let index = self
                    .template
                    .and_then(|t| t.params().position(|p| p == name));
                match index.and_then(|i| self.path_values.get(i)) {
                    Some(raw) => Ok(Some(Value::from(decode(raw, false)?.into_owned()))),
                    None => Ok(None),
                }
            }
            ValueExpr::Query(name) => {
                let Some(query) = self.query else {
                    return Ok(None);
                };
                // INVARIANT: a parameter a source reads appears at most once (after decoding
                // its name): upstreams disagree on whether the first or the last copy counts.
                let mut found = None;
                for pair in query_pairs(query) {
                    let (key, value) = pair?;
                    if key == name.as_str() {
                        if found.is_some() {
                            return Err(ClassifyError::RepeatedParameter {
                                name: name.to_string(),
                            });
                        }
                        found = Some(value);
                    }
                }
                Ok(found.map(|value| Value::from(value.into_owned())))
            }
            ValueExpr::Header(name) => match self.headers.get(name.as_str()) {
                Some(value) => value.to_str().map(|v| Some(Value::from(v))).map_err(|_| {
                    ClassifyError::Malformed(format!("header {name} is not valid text"))
                }),
                None => Ok(None),
            },
            ValueExpr::Body(pointer) => Ok(self
                .body
                .and_then(|b| b.pointer(pointer))
                .filter(|v| !v.is_null())
                .cloned()),
            ValueExpr::Number(n) => Ok(Some(number(*n))),
            ValueExpr::Call(func, args) => {
                let mut result: Option<f64> = None;
                for arg in args {
                    let operand = self.number_of(arg)?;
                    result = Some(match (result, func) {
                        (None, _) => operand,
                        (Some(acc), Func::Add) => acc + operand,
                        (Some(acc), Func::Sub) => acc - operand,
                        (Some(acc), Func::Mul) => acc * operand,
                        (Some(_), Func::Div) if operand == 0.0 => {
                            return Err(ClassifyError::Malformed(format!(
                                "{}: division by zero",
                                describe(expr)
                            )))
                        }
                        (Some(acc), Func::Div) => acc / operand,
                    });
                }
                match result {
                    Some(value) if value.is_finite() => Ok(Some(number(value))),
                    _ => Err(ClassifyError::Malformed(format!(
                        "{} is not a finite number",
                        describe(expr)
                    ))),
                }
            }
        }
    }

    fn number_of(&self, expr: &ValueExpr) -> Result<f64, ClassifyError> {
        let value = self.eval(expr)?;
        let parsed = match &value {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        };
        parsed.ok_or_else(|| match value {
            None => ClassifyError::Malformed(format!("{} is missing", describe(expr))),
            Some(other) => ClassifyError::Malformed(format!(
                "{} must be a number, got {other}",
                describe(expr)
            )),
        })
    }

    /// Renders a resource template; every value in it must be present and a scalar.
    pub(super) fn render(
        &self,
        parts: &[TemplatePart],
        source: &str,
    ) -> Result<String, ClassifyError> {
        let mut out = String::new();
        for part in parts {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Value(expr) => match self.eval(expr)? {
                    Some(Value::String(s)) if !s.is_empty() => out.push_str(&s),
                    Some(Value::Number(n)) => out.push_str(&n.to_string()),
                    Some(Value::Bool(b)) => out.push_str(if b { "true" } else { "false" }),
                    _ => {
                        return Err(ClassifyError::Malformed(format!(
                            "resource {source}: {} is missing or not a string or number",
                            describe(expr)
                        )))
                    }
                },
            }
        }
        Ok(out)
    }
}

/// A JSON number: an integer when the value is whole and fits, else a float.
fn number(value: f64) -> Value {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact in f64
    if value.fract() == 0.0 && value.abs() < LIMIT {
        // INVARIANT: whole and below 2^53, so the cast is exact.
        Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
    }
}
