//! The compiled forms of classifier configuration values: globs, JSON pointers, tool-argument
//! paths, path templates, value expressions and resource templates, each parsed once from its
//! source text into a [`Checked`] value, and [`OrderedMap`], a map that keeps the order it was
//! written in. Parsing never panics and never fails deserialization; errors are kept for
//! validation to report. No I/O.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A kind of configuration value that is parsed once from its source text.
pub trait Compile: Sized {
    /// What the value is, for error messages ("glob", "path template", …).
    const WHAT: &'static str;
    /// Parses the source text; the error says what is wrong and what was expected.
    fn compile(source: &str) -> Result<Self, String>;
}

/// A configuration string together with its compiled form (or the reason it did not compile).
/// Serializes as the source string; two values are equal when their sources are.
#[derive(Clone)]
pub struct Checked<T> {
    source: String,
    compiled: Result<T, String>,
}

impl<T: Compile> Checked<T> {
    /// Parses `source`; a failure is kept and reported by `validate`.
    pub fn new(source: impl Into<String>) -> Self {
        let source = source.into();
        let compiled = T::compile(&source);
        Self { source, compiled }
    }
}

impl<T> Checked<T> {
    /// The text as written in the configuration.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The compiled value, `None` when it did not compile (see [`Checked::error`]).
    pub fn get(&self) -> Option<&T> {
        self.compiled.as_ref().ok()
    }

    /// Why the value did not compile.
    pub fn error(&self) -> Option<&str> {
        self.compiled.as_ref().err().map(String::as_str)
    }
}

impl<T> fmt::Debug for Checked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, f)
    }
}

impl<T> PartialEq for Checked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<T> Serialize for Checked<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de, T: Compile> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Ok(Self::new(source))
    }
}

/// A glob over names (`delete_*`, `read_?ile`, `{get,list}_*`). `*` also matches `/`.
#[derive(Debug, Clone)]
pub struct Glob(globset::GlobMatcher);

impl Glob {
    pub fn is_match(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

impl Compile for Glob {
    const WHAT: &'static str = "glob";
    fn compile(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("a glob cannot be empty".to_string());
        }
        globset::GlobBuilder::new(source)
            .literal_separator(false)
            .build()
            .map(|glob| Glob(glob.compile_matcher()))
            .map_err(|e| e.kind().to_string())
    }
}

impl Checked<Glob> {
    /// True when the glob compiled and matches `name`.
    pub fn is_match(&self, name: &str) -> bool {
        self.get().is_some_and(|glob| glob.is_match(name))
    }
}

/// An RFC 6901 JSON pointer (`/quantity`, `/items/0/sku`, `` for the whole document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer(String);

impl JsonPointer {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Compile for JsonPointer {
    const WHAT: &'static str = "JSON pointer";
    fn compile(source: &str) -> Result<Self, String> {
        check_pointer(source)?;
        Ok(JsonPointer(source.to_string()))
    }
}

fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err("a JSON pointer is empty or starts with '/', e.g. /quantity".to_string());
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err("'~' must be followed by 0 (for ~) or 1 (for /)".to_string());
        }
    }
    Ok(())
}

/// Where an MCP tool argument is: a top-level argument name (`path`) or a JSON pointer into
/// `params.arguments` (`/target/file`). Compiled to a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentPath(String);

impl ArgumentPath {
    /// The JSON pointer into `params.arguments`.
    pub fn pointer(&self) -> &str {
        &self.0
    }
}

impl Compile for ArgumentPath {
    const WHAT: &'static str = "argument";
    fn compile(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("name an argument (`path`) or give a JSON pointer (`/target/file`)".into());
        }
        if source.starts_with('/') {
            check_pointer(source)?;
            return Ok(ArgumentPath(source.to_string()));
        }
        Ok(ArgumentPath(format!(
            "/{}",
            source.replace('~', "~0").replace('/', "~1")
        )))
    }
}

/// A request path template: `/v1/orders/{id}`. Each `{name}` is one whole path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
}

/// One segment of a [`PathTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
}

impl PathTemplate {
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The names of the `{params}`, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Matches a request path (without the query). A trailing `/` is ignored. Returns the raw
    /// (still percent-encoded) parameter values in template order, or `None`.
    pub fn match_path<'p>(&self, path: &'p str) -> Option<Vec<&'p str>> {
        let rest = path.strip_prefix('/')?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut values = Vec::new();
        let mut parts = if rest.is_empty() {
            None
        } else {
            Some(rest.split('/'))
        };
        for segment in &self.segments {
            let part = parts.as_mut()?.next()?;
            match segment {
                Segment::Literal(literal) => {
                    if part != literal {
                        return None;
                    }
                }
                Segment::Param(_) => {
                    if part.is_empty() {
                        return None;
                    }
                    values.push(part);
                }
            }
        }
        match parts.as_mut().and_then(Iterator::next) {
            Some(_) => None,
            None => Some(values),
        }
    }
}

impl Compile for PathTemplate {
    const WHAT: &'static str = "path template";
    fn compile(source: &str) -> Result<Self, String> {
        let rest = source
            .strip_prefix('/')
            .ok_or("a path template starts with '/', e.g. /v1/orders/{id}")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = Vec::new();
        if rest.is_empty() {
            return Ok(PathTemplate { segments });
        }
        for part in rest.split('/') {
            if part.is_empty() {
                return Err("empty segment ('//')".to_string());
            }
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if !is_identifier(name) {
                    return Err(format!(
                        "parameter {{{name}}}: a name is letters, digits and '_'"
                    ));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(n) if n == name))
                {
                    return Err(format!("parameter {{{name}}} appears twice"));
                }
                segments.push(Segment::Param(name.to_string()));
            } else if part.contains(['{', '}']) {
                return Err(format!(
                    "segment {part:?}: a parameter must be a whole segment, like {{id}}"
                ));
            } else {
                segments.push(Segment::Literal(part.to_string()));
            }
        }
        Ok(PathTemplate { segments })
    }
}

/// A value taken from the request or computed from such values.
///
/// `path.<param>`, `query.<name>`, `header.<name>`, `body./json/pointer`, a number, or
/// `add(a, b, …)`, `sub(a, b)`, `mul(a, b, …)`, `div(a, b)` over those.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueExpr {
    Path(String),
    Query(String),
    /// Lower-case header name.
    Header(String),
    /// JSON pointer into the request body.
    Body(String),
    Number(f64),
    Call(Func, Vec<ValueExpr>),
}

/// The arithmetic of computed context fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Add,
    Sub,
    Mul,
    Div,
}

impl Func {
    pub fn name(self) -> &'static str {
        match self {
            Func::Add => "add",
            Func::Sub => "sub",
            Func::Mul => "mul",
            Func::Div => "div",
        }
    }
}

impl ValueExpr {
    /// True when evaluating the expression reads the request body.
    pub fn uses_body(&self) -> bool {
        match self {
            ValueExpr::Body(_) => true,
            ValueExpr::Call(_, args) => args.iter().any(ValueExpr::uses_body),
            _ => false,
        }
    }

    /// Calls `f` with every path parameter the expression reads.
    pub fn for_each_path_param<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        match self {
            ValueExpr::Path(name) => f(name),
            ValueExpr::Call(_, args) => args.iter().for_each(|a| a.for_each_path_param(f)),
            _ => {}
        }
    }

    fn parse(source: &str) -> Result<Self, String> {
        let text = source.trim();
        if let Some(open) = text.find('(') {
            let name = text[..open].trim();
            let func = match name {
                "add" => Func::Add,
                "sub" => Func::Sub,
                "mul" => Func::Mul,
                "div" => Func::Div,
                other => {
                    return Err(format!(
                        "unknown function {other:?}; expected add, sub, mul or div"
                    ))
                }
            };
            let inner = text[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| format!("{name}(…) is missing its closing ')'"))?;
            let args = split_args(inner)?
                .into_iter()
                .map(ValueExpr::parse)
                .collect::<Result<Vec<_>, _>>()?;
            let arity_ok = match func {
                Func::Add | Func::Mul => args.len() >= 2,
                Func::Sub | Func::Div => args.len() == 2,
            };
            if !arity_ok {
                let want = match func {
                    Func::Add | Func::Mul => "at least 2",
                    Func::Sub | Func::Div => "exactly 2",
                };
                return Err(format!("{name} takes {want} arguments, got {}", args.len()));
            }
            return Ok(ValueExpr::Call(func, args));
        }
        if text.contains(')') {
            return Err("unbalanced ')'".to_string());
        }
        if let Some(pointer) = text.strip_prefix("body.") {
            check_pointer(pointer)?;
            return Ok(ValueExpr::Body(pointer.to_string()));
        }
        if text == "body" {
            return Ok(ValueExpr::Body(String::new()));
        }
        if let Some(name) = text.strip_prefix("path.") {
            if !is_identifier(name) {
                return Err(format!("path parameter {name:?} is not a valid name"));
            }
            return Ok(ValueExpr::Path(name.to_string()));
        }
        if let Some(name) = text.strip_prefix("query.") {
            if name.is_empty() {
                return Err("query. needs a parameter name, e.g. query.limit".to_string());
            }
            return Ok(ValueExpr::Query(name.to_string()));
        }
        if let Some(name) = text.strip_prefix("header.") {
            if !is_header_name(name) {
                return Err(format!("{name:?} is not a valid header name"));
            }
            return Ok(ValueExpr::Header(name.to_ascii_lowercase()));
        }
        if let Ok(number) = text.parse::<f64>() {
            if number.is_finite() {
                return Ok(ValueExpr::Number(number));
            }
        }
        Err(format!(
            "expected path.<param>, query.<name>, header.<name>, body./pointer, a number, or \
             add/sub/mul/div(…); got {text:?}"
        ))
    }
}

impl Compile for ValueExpr {
    const WHAT: &'static str = "value source";
    fn compile(source: &str) -> Result<Self, String> {
        ValueExpr::parse(source)
    }
}

fn split_args(inner: &str) -> Result<Vec<&str>, String> {
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                args.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".to_string());
    }
    let last = &inner[start..];
    if !last.trim().is_empty() || !args.is_empty() {
        args.push(last);
    }
    if args.iter().any(|a| a.trim().is_empty()) {
        return Err("empty argument".to_string());
    }
    Ok(args)
}

/// A resource id template: `res_order:{id}` (a path parameter) or `res_security:{body./symbol}`
/// (any [`ValueExpr`] in braces).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceTemplate {
    parts: Vec<TemplatePart>,
}

/// One piece of a [`ResourceTemplate`].
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    Literal(String),
    Value(ValueExpr),
}

impl ResourceTemplate {
    pub fn parts(&self) -> &[TemplatePart] {
        &self.parts
    }

    /// The value sources in the template.
    pub fn exprs(&self) -> impl Iterator<Item = &ValueExpr> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Value(v) => Some(v),
            TemplatePart::Literal(_) => None,
        })
    }
}

impl Compile for ResourceTemplate {
    const WHAT: &'static str = "resource template";
    fn compile(source: &str) -> Result<Self, String> {
        if !source.starts_with("res_") {
            return Err("a resource starts with its type, e.g. res_order:{id}".to_string());
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if rest[..open].contains('}') {
                return Err("unbalanced '}'".to_string());
            }
            if open > 0 {
                parts.push(TemplatePart::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or("unclosed '{'")?;
            let inner = after[..close].trim();
            let expr = if is_identifier(inner) {
                ValueExpr::Path(inner.to_string())
            } else {
                ValueExpr::parse(inner)?
            };
            parts.push(TemplatePart::Value(expr));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err("unbalanced '}'".to_string());
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_string()));
        }
        Ok(ResourceTemplate { parts })
    }
}

/// A map that keeps the order it was written in (first match wins where it is used for globs).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<K, V>(pub Vec<(K, V)>);

impl<K, V> Default for OrderedMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K, V> OrderedMap<K, V> {
    pub fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.0.iter()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V> OrderedMap<Checked<Glob>, V> {
    /// The value of the first glob that matches `name`.
    pub fn first_match(&self, name: &str) -> Option<&V> {
        self.0
            .iter()
            .find(|(glob, _)| glob.is_match(name))
            .map(|(_, v)| v)
    }
}

impl<K: Serialize, V: Serialize> Serialize for OrderedMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<K, V> {
            type Value = OrderedMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0));
                while let Some(entry) = access.next_entry()? {
                    entries.push(entry);
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_template_matches_literals_and_params() {
        let t = PathTemplate::compile("/v1/orders/{id}/fills/{fill}").unwrap();
        assert_eq!(t.match_path("/v1/orders/42/fills/7"), Some(vec!["42", "7"]));
        assert_eq!(
            t.match_path("/v1/orders/42/fills/7/"),
            Some(vec!["42", "7"])
        );
        assert_eq!(t.match_path("/v1/orders/42/fills"), None);
        assert_eq!(t.match_path("/v1/orders/42/fills/7/x"), None);
        assert_eq!(t.match_path("/v1/orders//fills/7"), None);
        assert_eq!(t.match_path("/v2/orders/42/fills/7"), None);
        let root = PathTemplate::compile("/").unwrap();
        assert_eq!(root.match_path("/"), Some(vec![]));
        assert_eq!(root.match_path("/a"), None);
    }

    #[test]
    fn bad_path_templates_say_what_is_wrong() {
        for (source, expected) in [
            ("v1/orders", "starts with '/'"),
            ("/v1//orders", "empty segment"),
            ("/v1/orders/{id", "whole segment"),
            ("/v1/order-{id}", "whole segment"),
            ("/v1/{a b}", "letters, digits"),
            ("/v1/{id}/{id}", "appears twice"),
        ] {
            let err = PathTemplate::compile(source).unwrap_err();
            assert!(err.contains(expected), "{source}: {err}");
        }
    }

    #[test]
    fn value_expressions_parse_sources_numbers_and_calls() {
        assert_eq!(
            ValueExpr::parse("mul(body./quantity, body./limit_price)").unwrap(),
            ValueExpr::Call(
                Func::Mul,
                vec![
                    ValueExpr::Body("/quantity".into()),
                    ValueExpr::Body("/limit_price".into())
                ]
            )
        );
        assert_eq!(
            ValueExpr::parse("add(query.a, sub(header.X-Fee, 2.5))").unwrap(),
            ValueExpr::Call(
                Func::Add,
                vec![
                    ValueExpr::Query("a".into()),
                    ValueExpr::Call(
                        Func::Sub,
                        vec![ValueExpr::Header("x-fee".into()), ValueExpr::Number(2.5)]
                    )
                ]
            )
        );
        assert_eq!(
            ValueExpr::parse("path.id").unwrap(),
            ValueExpr::Path("id".into())
        );
    }

    #[test]
    fn bad_value_expressions_say_what_is_wrong() {
        for (source, expected) in [
            ("pow(body./a, 2)", "unknown function \"pow\""),
            ("mul(body./a)", "at least 2"),
            ("sub(body./a, body./b, body./c)", "exactly 2"),
            ("mul(body./a, body./b", "closing ')'"),
            ("body.quantity", "starts with '/'"),
            ("body./a~9", "'~' must be followed"),
            ("cookie.session", "expected path.<param>"),
            ("mul(body./a,, body./b)", "empty argument"),
        ] {
            let err = ValueExpr::parse(source).unwrap_err();
            assert!(err.contains(expected), "{source}: {err}");
        }
    }

    #[test]
    fn resource_templates_accept_params_and_expressions() {
        let t = ResourceTemplate::compile("res_security:{body./symbol}@{path.venue}").unwrap();
        assert_eq!(
            t.parts(),
            &[
                TemplatePart::Literal("res_security:".into()),
                TemplatePart::Value(ValueExpr::Body("/symbol".into())),
                TemplatePart::Literal("@".into()),
                TemplatePart::Value(ValueExpr::Path("venue".into())),
            ]
        );
        assert!(ResourceTemplate::compile("order:{id}")
            .unwrap_err()
            .contains("starts with its type"));
        assert!(ResourceTemplate::compile("res_order:{id")
            .unwrap_err()
            .contains("unclosed"));
    }

    proptest::proptest! {
        #[test]
        fn compiling_any_text_never_panics(text in r#"[a-z_./{}()~,0-9 $\[\]*?-]{0,30}"#) {
            let _ = PathTemplate::compile(&text);
            let _ = ValueExpr::compile(&text);
            let _ = ResourceTemplate::compile(&text);
            let _ = ArgumentPath::compile(&text);
            let _ = JsonPointer::compile(&text);
            let _ = Glob::compile(&text);
        }

        #[test]
        fn compiled_path_templates_match_their_own_shape(
            segments in proptest::collection::vec("[a-z]{1,5}", 0..5),
        ) {
            let source = format!("/{}", segments.join("/"));
            let template = PathTemplate::compile(&source).unwrap();
            proptest::prop_assert_eq!(template.match_path(&source), Some(vec![]));
        }
    }
}
