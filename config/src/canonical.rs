//! Canonical JSON: the byte form that policy hashes and bundle signatures are computed over.
//!
//! Object keys sorted by their UTF-8 bytes, no whitespace, strings escaped as `serde_json` does and
//! numbers in `serde_json`'s shortest round-trip form. The output depends only on the JSON value, never
//! on the source format (YAML or JSON), key order or `serde_json` feature flags. Never used on the
//! request path.

use serde_json::Value;

/// Writes `value` in canonical form.
pub fn to_canonical_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    out
}

/// Appends `map` as a canonical JSON object to `out` (no intermediate `Value`).
pub fn write_canonical_map(map: &serde_json::Map<String, Value>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_value(item, out);
    }
    out.push(b'}');
}

/// Appends `value` in canonical form to `out`.
pub fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_canonical_map(map, out),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // INVARIANT: serializing a `str` into a `Vec` cannot fail; `serde_json` only errors on I/O or on
    // non-string map keys, neither of which a plain string has. Fall back to an escaped empty string
    // rather than panic.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_whitespace_removed_at_every_level() {
        let v = json!({"b": 1, "a": {"d": [true, null, "x"], "c": 2.5}});
        assert_eq!(
            String::from_utf8(to_canonical_bytes(&v)).unwrap(),
            r#"{"a":{"c":2.5,"d":[true,null,"x"]},"b":1}"#
        );
    }

    #[test]
    fn strings_are_escaped() {
        let v = json!({"k\"": "line\nbreak \u{1}"});
        assert_eq!(
            String::from_utf8(to_canonical_bytes(&v)).unwrap(),
            r#"{"k\"":"line\nbreak \u0001"}"#
        );
    }
}
