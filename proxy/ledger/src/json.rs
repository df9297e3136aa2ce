//! Hand-written JSON for the bodies every decision produces: its ledger entry
//! ([`crate::EntryBody`]) and the decision API's answer
//! (`DecisionResponse` in the `lexecon` API). serde_json escapes strings byte by byte
//! (`format_escaped_str_contents` was 5.5 % of the decision API's CPU samples), although hashes,
//! ids, timestamps and the ~700-byte capability token never contain a byte to escape. [`push_str`]
//! checks a whole string at once and copies it, and falls back to serde_json when something must be
//! escaped, so the output is always exactly serde_json's: each writer here is tested byte for byte
//! against the derived serializer it replaces.

use std::io::Write as _;

use serde::Serialize;

/// Appends `s` as a JSON string: the bytes serde_json writes for it.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    if is_plain(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // INVARIANT: serializing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// True when no byte of a string needs escaping in JSON (control characters, `"` and `\`; other
/// UTF-8 is written as is, as serde_json does). Without an early exit, so the loop vectorizes.
fn is_plain(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |plain, &b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    })
}

/// Appends `"key":`, preceded by a comma unless it is the first member (`out` is empty — a body
/// without its braces — or ends in `{`). `key` is one of the writers' own member names, which never
/// need escaping.
pub fn push_key(out: &mut Vec<u8>, key: &str) {
    if !matches!(out.last(), None | Some(b'{')) {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends `"key":"value"` (see [`push_key`], [`push_str`]).
pub fn push_member(out: &mut Vec<u8>, key: &str, value: &str) {
    push_key(out, key);
    push_str(out, value);
}

/// Appends `"key":value` with `value` as serde_json serializes it (for members without a fast path).
pub fn push_serialized<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    key: &str,
    value: &T,
) -> Result<(), serde_json::Error> {
    push_key(out, key);
    serde_json::to_writer(&mut *out, value)
}

/// Appends `"key":"<timestamp>"`: RFC 3339, as jiff's `Serialize` writes it (its `Display`).
pub fn push_timestamp(out: &mut Vec<u8>, key: &str, at: &jiff::Timestamp) {
    push_key(out, key);
    // INVARIANT: writing to a Vec cannot fail.
    let _ = write!(out, "\"{at}\"");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serde(s: &str) -> Vec<u8> {
        serde_json::to_vec(s).unwrap()
    }

    #[test]
    fn plain_and_escaped_strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "abc",
            "eyJhbGciOiJFZERTQSJ9.e30.c2ln-_",
            "quote \" inside",
            "back\\slash",
            "new\nline\ttab\r\u{1}\u{1f}",
            "ünïcödé – ✓ 𝄞",
            "\u{7f} del is not escaped",
            "/ is not escaped",
        ] {
            let mut out = b"x".to_vec();
            push_str(&mut out, s);
            assert_eq!(&out[1..], serde(s).as_slice(), "{s:?}");
        }
    }

    #[test]
    fn members_are_comma_separated_after_the_first() {
        let mut out = b"{".to_vec();
        push_member(&mut out, "a", "1");
        push_serialized(&mut out, "b", &[1, 2]).unwrap();
        push_timestamp(&mut out, "t", &jiff::Timestamp::from_second(0).unwrap());
        out.push(b'}');
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":"1","b":[1,2],"t":"1970-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn timestamps_are_written_as_jiff_serializes_them() {
        for at in [
            jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            jiff::Timestamp::new(1_700_000_000, 538_684_275).unwrap(),
            jiff::Timestamp::new(-5, 1_000).unwrap(),
            jiff::Timestamp::now(),
        ] {
            let mut out = b"{".to_vec();
            push_timestamp(&mut out, "t", &at);
            out.push(b'}');
            let expected = serde_json::to_vec(&serde_json::json!({ "t": at })).unwrap();
            assert_eq!(out, expected, "{at}");
        }
    }

    proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(s in any::<String>()) {
            let mut out = Vec::new();
            push_str(&mut out, &s);
            prop_assert_eq!(out, serde(&s));
        }
    }
}
