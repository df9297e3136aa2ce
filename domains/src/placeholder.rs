//! `{{param}}` placeholders in template data rules: the one definition of their syntax and of how a
//! template's parameter values are substituted into a rule.
//!
//! A string that is exactly one placeholder (surrounding whitespace allowed) takes the parameter's
//! JSON value, so a number stays a number and a list stays a list; a placeholder inside a longer
//! string is replaced by the value's text (a string without its quotes, anything else as JSON). A
//! placeholder naming no parameter is an error, and so is a `{{` with no `}}` after it: a template
//! string is never passed on half-substituted. Pack validation (`crate::packs`), `lexecon policy load
//! --template` (`lexecon-config`) and policy compilation (`lexecon-policy-cache`) all go through
//! here. Pure functions of the string and the parameters; never panics, never runs per request.

use serde_json::{Map, Value};

use crate::error::DomainError;

/// One piece of a template string, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text (may contain a lone `}}`).
    Text(&'a str),
    /// A placeholder's parameter name, whitespace trimmed (`{{ max }}` → `max`).
    Param(&'a str),
    /// A `{{` with no `}}` after it, and the rest of the string from it. Always the last piece.
    Unterminated(&'a str),
}

/// The pieces of `s`: literal text and placeholders, ending at an unterminated `{{` if there is one.
pub fn pieces(s: &str) -> Pieces<'_> {
    Pieces { rest: s }
}

/// Iterator returned by [`pieces`].
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(start) = self.rest.find("{{") else {
            return Some(Piece::Text(std::mem::take(&mut self.rest)));
        };
        if start > 0 {
            let (text, rest) = self.rest.split_at(start);
            self.rest = rest;
            return Some(Piece::Text(text));
        }
        let after = self.rest.get(2..).unwrap_or_default();
        match after.split_once("}}") {
            Some((name, rest)) => {
                self.rest = rest;
                Some(Piece::Param(name.trim()))
            }
            None => Some(Piece::Unterminated(std::mem::take(&mut self.rest))),
        }
    }
}

/// The parameter name when `s` is exactly one placeholder (`"{{max}}"`, `" {{ max }} "`).
pub fn whole_placeholder(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
}

/// `s` with its placeholders replaced by values of `params`: the parameter's JSON value when `s` is
/// one whole placeholder, else a string. Errors carry an empty `path`.
pub fn substitute_str(s: &str, params: &Map<String, Value>) -> Result<Value, DomainError> {
    substitute_in(s, params, "")
}

/// `value` with the placeholders in every string value replaced (object keys are left alone). The
/// error's `path` says where the bad string is inside `value` (`.when[0].value`; empty for `value`
/// itself), for the caller to prefix with its own location.
pub fn substitute(value: &Value, params: &Map<String, Value>) -> Result<Value, DomainError> {
    let mut path = String::new();
    substitute_at(value, params, &mut path)
}

fn substitute_at(
    value: &Value,
    params: &Map<String, Value>,
    path: &mut String,
) -> Result<Value, DomainError> {
    Ok(match value {
        Value::String(s) => substitute_in(s, params, path)?,
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let item = substitute_at(item, params, path);
                path.truncate(len);
                out.push(item?);
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                let item = substitute_at(item, params, path);
                path.truncate(len);
                out.insert(key.clone(), item?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn substitute_in(s: &str, params: &Map<String, Value>, path: &str) -> Result<Value, DomainError> {
    let lookup = |name: &str| {
        params
            .get(name)
            .ok_or_else(|| DomainError::UnknownPlaceholder {
                path: path.to_owned(),
                name: name.to_owned(),
            })
    };
    if let Some(name) = whole_placeholder(s) {
        return lookup(name).cloned();
    }
    let mut out = String::with_capacity(s.len());
    for piece in pieces(s) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Param(name) => match lookup(name)? {
                Value::String(v) => out.push_str(v),
                other => out.push_str(&other.to_string()),
            },
            Piece::Unterminated(_) => {
                return Err(DomainError::UnterminatedPlaceholder {
                    path: path.to_owned(),
                    text: s.to_owned(),
                })
            }
        }
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> Map<String, Value> {
        json!({"max": 5000, "venues": ["XNYS"], "desk": "fx", "ratio": 0.5})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn whole_placeholder_keeps_the_parameters_json_type() {
        let p = params();
        assert_eq!(substitute_str("{{max}}", &p), Ok(json!(5000)));
        assert_eq!(substitute_str("  {{ venues }} ", &p), Ok(json!(["XNYS"])));
        assert_eq!(substitute_str("{{desk}}", &p), Ok(json!("fx")));
    }

    #[test]
    fn inline_placeholders_become_text_strings_without_quotes() {
        let p = params();
        assert_eq!(
            substitute_str("orders above {{max}} on {{ desk }} at {{ratio}}", &p),
            Ok(json!("orders above 5000 on fx at 0.5"))
        );
        assert_eq!(
            substitute_str("{{desk}}-{{venues}}", &p),
            Ok(json!("fx-[\"XNYS\"]"))
        );
        assert_eq!(
            substitute_str("no placeholders }} here", &p),
            Ok(json!("no placeholders }} here"))
        );
    }

    #[test]
    fn unknown_placeholder_is_an_error_naming_it() {
        let err = substitute_str("limit {{nope}}", &params()).unwrap_err();
        assert_eq!(
            err,
            DomainError::UnknownPlaceholder {
                path: String::new(),
                name: "nope".into()
            }
        );
        assert_eq!(err.to_string(), "unknown placeholder {{nope}}");
        assert!(substitute_str("{{}}", &params()).is_err());
    }

    #[test]
    fn unclosed_placeholder_is_an_error_not_literal_text() {
        for s in ["a {{b", "{{", "{{max}} and {{desk", "{{max"] {
            let err = substitute_str(s, &params()).unwrap_err();
            assert_eq!(
                err,
                DomainError::UnterminatedPlaceholder {
                    path: String::new(),
                    text: s.into()
                },
                "{s:?}"
            );
            assert!(err.to_string().contains("unterminated"), "{err}");
        }
    }

    #[test]
    fn errors_in_a_tree_name_the_path_inside_it() {
        let rule =
            json!({"id": "r", "when": [{"field": "context.a", "op": "eq", "value": "x {{y"}]});
        let err = substitute(&rule, &params()).unwrap_err();
        assert_eq!(
            err,
            DomainError::UnterminatedPlaceholder {
                path: ".when[0].value".into(),
                text: "x {{y".into()
            }
        );
        let rule = json!({"id": "r", "reason": "{{nope}}"});
        assert!(matches!(
            substitute(&rule, &params()),
            Err(DomainError::UnknownPlaceholder { path, .. }) if path == ".reason"
        ));
    }

    #[test]
    fn substitution_reaches_every_string_but_not_keys() {
        let rule = json!({"{{desk}}": ["{{max}}", {"n": "{{desk}}!"}], "k": 1, "b": true});
        assert_eq!(
            substitute(&rule, &params()),
            Ok(json!({"{{desk}}": [5000, {"n": "fx!"}], "k": 1, "b": true}))
        );
    }

    #[test]
    fn pieces_split_text_params_and_an_unterminated_tail() {
        let got: Vec<Piece<'_>> = pieces("a{{ x }}b}}{{y}}{{z").collect();
        assert_eq!(
            got,
            [
                Piece::Text("a"),
                Piece::Param("x"),
                Piece::Text("b}}"),
                Piece::Param("y"),
                Piece::Unterminated("{{z"),
            ]
        );
        assert_eq!(pieces("").count(), 0);
    }

    #[test]
    fn whole_placeholder_is_one_placeholder_and_nothing_else() {
        assert_eq!(whole_placeholder(" {{ a }} "), Some("a"));
        assert_eq!(whole_placeholder("{{a}} {{b}}"), None);
        assert_eq!(whole_placeholder("x{{a}}"), None);
        assert_eq!(whole_placeholder("{{a"), None);
    }

    proptest::proptest! {
        #[test]
        fn substitution_never_panics_and_text_without_braces_is_unchanged(s in "\\PC{0,24}") {
            let _ = substitute_str(&s, &params());
            if !s.contains("{{") {
                proptest::prop_assert_eq!(substitute_str(&s, &params()), Ok(Value::String(s.clone())));
            }
        }
    }
}
