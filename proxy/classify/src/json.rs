//! Strict JSON for request bodies a classifier reads: one pass over the bytes into a
//! [`serde_json::Value`], refusing an object that has the same key twice, at any depth. Python's
//! `json` and Go's `encoding/json` keep the last copy, serde_json's `Value` the last, derived
//! structs fail, some parsers keep the first: a body whose decision could depend on which copy
//! counts is refused instead. Everything else is serde_json's own reading — its recursion limit
//! (128 levels), UTF-8 validation, number parsing, no trailing data. Pure; never panics.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::ClassifyError;

/// Why a body is not strict JSON.
#[derive(Debug)]
pub(crate) enum JsonError {
    /// An object has `key` twice; the position is just after the second copy of the key.
    DuplicateKey {
        key: String,
        line: usize,
        column: usize,
    },
    /// Not JSON at all (syntax, nesting deeper than 128, invalid UTF-8, trailing data).
    Invalid(serde_json::Error),
}

impl JsonError {
    /// The classifier's error: a duplicate key as such; anything else as a malformed body,
    /// `context` saying where (`"body"`, `"POST /v1/orders: body"`).
    pub(crate) fn into_classify(self, context: &str) -> ClassifyError {
        match self {
            JsonError::DuplicateKey { key, line, column } => {
                ClassifyError::DuplicateKey { key, line, column }
            }
            JsonError::Invalid(e) => {
                ClassifyError::Malformed(format!("{context} is not valid JSON: {e}"))
            }
        }
    }
}

/// Parses `bytes` as one JSON value, refusing duplicate keys.
pub(crate) fn from_slice(bytes: &[u8]) -> Result<Value, JsonError> {
    let duplicate = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue(&duplicate)
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    parsed.map_err(|error| match duplicate.take() {
        Some(key) => JsonError::DuplicateKey {
            key,
            line: error.line(),
            column: error.column(),
        },
        None => JsonError::Invalid(error),
    })
}

/// Builds a [`Value`] as serde_json's own visitor does, noting a repeated key in the cell it
/// shares with every nested seed (the error serde_json returns carries only text and position).
#[derive(Clone, Copy)]
struct StrictValue<'d>(&'d Cell<Option<String>>);

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(value) = seq.next_element_seed(self)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match object.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(self)?);
                }
                serde_json::map::Entry::Occupied(taken) => {
                    let key = taken.key().clone();
                    let message = format!("duplicate key {key:?}");
                    self.0.set(Some(key));
                    return Err(de::Error::custom(message));
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn duplicate(text: &str) -> Option<String> {
        match from_slice(text.as_bytes()) {
            Err(JsonError::DuplicateKey { key, .. }) => Some(key),
            _ => None,
        }
    }

    #[test]
    fn parses_what_serde_json_parses_into_the_same_value() {
        for text in [
            r#"{"a":1,"b":[true,null,"x",{"c":-2.5}],"d":{"e":{}},"f":18446744073709551615}"#,
            r#"[1,2,{"a":{"a":{"a":1}}}]"#,
            r#""\u00e9\ud83d\ude00""#,
            "  123  ",
            r#"{"a":1e400}"#,
        ] {
            let ours = from_slice(text.as_bytes());
            let theirs = serde_json::from_str::<Value>(text);
            match (ours, theirs) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "{text}"),
                (Err(JsonError::Invalid(_)), Err(_)) => {}
                (ours, theirs) => panic!("{text}: ours {ours:?}, serde_json {theirs:?}"),
            }
        }
        let same_key_in_sibling_objects = r#"{"a":{"k":1},"b":{"k":2},"c":[{"k":1},{"k":2}]}"#;
        assert_eq!(
            from_slice(same_key_in_sibling_objects.as_bytes()).unwrap(),
            json!({"a":{"k":1},"b":{"k":2},"c":[{"k":1},{"k":2}]})
        );
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth_and_named() {
        assert_eq!(duplicate(r#"{"a":1,"a":2}"#).as_deref(), Some("a"));
        assert_eq!(
            duplicate(r#"{"params":{"name":"read","arguments":{},"name":"delete"}}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            duplicate(r#"[{"x":[{"deep":{"k":1,"k":1}}]}]"#).as_deref(),
            Some("k"),
            "even when both copies agree"
        );
        assert_eq!(
            duplicate(r#"{"n\u0061me":1,"name":2}"#).as_deref(),
            Some("name"),
            "keys are compared after unescaping"
        );
        let Err(JsonError::DuplicateKey { line, column, .. }) =
            from_slice(b"{\n  \"a\": 1,\n  \"a\": 2\n}")
        else {
            panic!("not refused")
        };
        assert_eq!((line, column), (3, 5), "just after the second \"a\"");
    }

    #[test]
    fn deep_nesting_invalid_utf8_and_trailing_data_are_invalid() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let Err(JsonError::Invalid(e)) = from_slice(deep.as_bytes()) else {
            panic!("200 levels parsed")
        };
        assert!(e.to_string().contains("recursion limit"), "{e}");
        let nested = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(from_slice(nested.as_bytes()).is_ok(), "100 levels are fine");
        let deep_objects = "{\"a\":".repeat(200) + "1" + &"}".repeat(200);
        assert!(matches!(
            from_slice(deep_objects.as_bytes()),
            Err(JsonError::Invalid(_))
        ));
        for bytes in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"\xc3\x28\":1}",
            b"{\"a\":1} x",
            b"{\"a\":1}{\"a\":2}",
            b"",
        ] {
            assert!(
                matches!(from_slice(bytes), Err(JsonError::Invalid(_))),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
