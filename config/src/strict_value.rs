//! Reading a YAML or JSON document into a `serde_json::Value` strictly: a key repeated in one mapping
//! is an error (never "last one wins", which would let a second `effect:` silently override the first),
//! and so are non-finite numbers (`.nan`, `.inf`) and YAML tags, which JSON cannot represent.
//!
//! Scalar mapping keys (`1`, `true`) become strings, as in JSON. Used for every policy document
//! before its shape is checked; never on the request path.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value read without duplicate keys.
#[derive(Debug, Clone, PartialEq)]
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(StrictValue)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-compatible value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("the number {v} is not finite")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(StrictValue(key)) = map.next_key()? {
            let key = match key {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(de::Error::custom(format!(
                        "mapping keys must be strings, found {other}"
                    )))
                }
            };
            match entries.entry(key) {
                Entry::Occupied(e) => {
                    return Err(de::Error::custom(format!("duplicate key `{}`", e.key())))
                }
                Entry::Vacant(e) => {
                    let StrictValue(value) = map.next_value()?;
                    e.insert(value);
                }
            }
        }
        Ok(Value::Object(entries.into_iter().collect::<Map<_, _>>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Result<Value, String> {
        serde_norway::from_str::<StrictValue>(text)
            .map(|v| v.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_nested_yaml_like_serde_json_would() {
        assert_eq!(
            yaml("a: [1, -2, 2.5, true, null, x]\nb: {c: 'd'}\n3: e\n").unwrap(),
            json!({"a": [1, -2, 2.5, true, null, "x"], "b": {"c": "d"}, "3": "e"})
        );
    }

    #[test]
    fn duplicate_key_is_an_error_at_any_depth() {
        assert!(yaml("a: 1\na: 2\n")
            .unwrap_err()
            .contains("duplicate key `a`"));
        assert!(yaml("x: {b: 1, b: 1}\n")
            .unwrap_err()
            .contains("duplicate key `b`"));
    }

    #[test]
    fn non_finite_numbers_and_complex_keys_are_errors() {
        assert!(yaml("a: .nan\n").unwrap_err().contains("not finite"));
        assert!(yaml("? [1, 2]\n: x\n")
            .unwrap_err()
            .contains("mapping keys must be strings"));
    }
}
