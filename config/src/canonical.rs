//! Canonical JSON: the byte form that policy hashes and bundle signatures are computed over.
//!
//! Object keys sorted by their UTF-8 bytes, no whitespace, strings escaped as `serde_json` does and
//! numbers in `serde_json`'s shortest round-trip form. The output depends only on the JSON value, never
//! on the source format (YAML or JSON), key order or `serde_json` feature flags. Never used on the
//! request path. This module is the only canonical-JSON writer of the workspace: the policy version
//! hash that decisions, ledger entries and tokens carry is computed here and nowhere else.
//!
//! [`write_value`] over a `serde_json::Value` is the definition. [`write_serialize`] gives the same
//! bytes for any `Serialize` type by streaming it, without building the intermediate `Value` tree
//! first: hashing a policy of thousands of rules at every compile and reload then costs one buffer
//! instead of a tree of small allocations (`benches/decide.rs`, `version_hash_rules_10000`). Shapes
//! the stream does not handle (tuple or struct enum variants, non-string map keys) fall back to the
//! `Value` path; the tests below pin the two paths to identical bytes.

use std::borrow::Cow;
use std::fmt;

use serde::ser::{self, Serialize};
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

/// SHA-256 of `map`'s canonical JSON: what a capability token's `ctx` claim (base64url) and a ledger
/// entry's `context_digest` (hex) both name. Computed once per decision and handed to both.
pub fn map_digest(map: &serde_json::Map<String, Value>) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let mut out = Vec::with_capacity(256);
    write_canonical_map(map, &mut out);
    Sha256::digest(&out).into()
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

/// Appends the canonical JSON of `value` to `out`: the bytes [`write_value`] gives for
/// `serde_json::to_value(value)`, streamed when the shape allows. Fails only when `value` cannot be
/// represented as JSON at all (then `out` is left as it was).
pub fn write_serialize<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    if write_streamed(value, out).is_ok() {
        return Ok(());
    }
    out.truncate(start);
    let value = serde_json::to_value(value)?;
    write_value(&value, out);
    Ok(())
}

/// Why streaming failed; the caller falls back to `serde_json::to_value`.
#[derive(Debug)]
struct Unsupported(String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

fn unsupported<T>(what: &str) -> Result<T, Unsupported> {
    Err(Unsupported(format!(
        "{what} is not supported by the canonical writer"
    )))
}

/// Appends the canonical JSON of `value` to `out`, streamed; on `Err` `out` holds a partial write.
fn write_streamed<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    value.serialize(Writer { out })
}

fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result<(), Unsupported> {
    serde_json::to_writer(&mut *out, v).map_err(|e| Unsupported(e.to_string()))
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

/// An object being written: entries are streamed to the end of `out` and then re-emitted sorted.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    entries: Vec<(Cow<'static, str>, usize, usize)>,
    pending_key: Option<String>,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        Self {
            out,
            start,
            entries: Vec::new(),
            pending_key: None,
        }
    }

    fn value<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), Unsupported> {
        let from = self.out.len();
        value.serialize(Writer {
            out: &mut *self.out,
        })?;
        self.entries.push((key, from, self.out.len()));
        Ok(())
    }

    fn finish(mut self) -> Result<(), Unsupported> {
        // A later duplicate key wins, as in a `Value` map: stable sort, keep the last of each run.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let body_end = self.out.len();
        self.out.push(b'{');
        let mut first = true;
        for (i, (key, from, to)) in self.entries.iter().enumerate() {
            if self.entries.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            json(self.out, key.as_ref())?;
            self.out.push(b':');
            self.out.extend_from_within(*from..*to);
        }
        self.out.push(b'}');
        self.out.drain(self.start..body_end);
        Ok(())
    }
}

struct Seq<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value.serialize(Writer {
            out: &mut *self.out,
        })
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        match serde_json::to_value(key) {
            Ok(serde_json::Value::String(s)) => {
                self.pending_key = Some(s);
                Ok(())
            }
            _ => unsupported("a non-string map key"),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        match self.pending_key.take() {
            Some(key) => self.value(Cow::Owned(key), value),
            None => unsupported("a map value without key"),
        }
    }
    fn end(self) -> Result<(), Unsupported> {
        self.finish()
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.value(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.finish()
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = ser::Impossible<(), Unsupported>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = ser::Impossible<(), Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Unsupported> {
        // Route through `Value` so out-of-range handling matches the `Value` path exactly.
        json(
            self.out,
            &serde_json::to_value(v).map_err(|e| Unsupported(e.to_string()))?,
        )
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Unsupported> {
        json(
            self.out,
            &serde_json::to_value(v).map_err(|e| Unsupported(e.to_string()))?,
        )
    }
    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        json(
            self.out,
            &serde_json::to_value(v).map_err(|e| Unsupported(e.to_string()))?,
        )
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        json(
            self.out,
            &serde_json::to_value(v).map_err(|e| Unsupported(e.to_string()))?,
        )
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        json(self.out, &v)
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        json(self.out, v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsupported> {
        json(self.out, v)
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        json(self.out, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        let mut object = Object::new(self.out);
        object.value(Cow::Borrowed(variant), value)?;
        object.finish()
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a>, Unsupported> {
        self.out.push(b'[');
        Ok(Seq {
            out: self.out,
            first: true,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Seq<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        unsupported("a tuple enum variant")
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Object<'a>, Unsupported> {
        Ok(Object::new(self.out))
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Object<'a>, Unsupported> {
        Ok(Object::new(self.out))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        unsupported("a struct enum variant")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Condition, Effect, Mode, Op, PolicyDocument, Rule, TemplateUse};
    use crate::policy_load::parse_policy;
    use lexecon_domains::DomainId;
    use proptest::prelude::*;
    use serde_json::{json, Map};

    /// The `Value` path: the definition the streamed bytes must equal.
    fn via_value<T: Serialize>(v: &T) -> Vec<u8> {
        to_canonical_bytes(&serde_json::to_value(v).unwrap())
    }

    fn streamed<T: Serialize>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        write_streamed(v, &mut out).unwrap();
        out
    }

    #[derive(serde::Serialize)]
    struct Sample {
        zeta: u8,
        alpha: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        mid: Vec<serde_json::Value>,
        float: f64,
        nan: f64,
        neg: i64,
        #[serde(rename = "Upper")]
        upper: bool,
    }

    #[test]
    fn streamed_bytes_equal_the_value_path_and_serde_json() {
        let sample = Sample {
            zeta: 1,
            alpha: None,
            skipped: None,
            mid: vec![
                json!({"b": 1, "a": [1.5, "x\"\\\n", null], "é": {"z": {}, "y": []}}),
                json!(1e300),
                json!(-0.0),
                json!(u64::MAX),
            ],
            float: 0.1 + 0.2,
            nan: f64::NAN,
            neg: -7,
            upper: true,
        };
        let value = serde_json::to_value(&sample).unwrap();
        assert_eq!(
            String::from_utf8(streamed(&sample)).unwrap(),
            String::from_utf8(via_value(&sample)).unwrap()
        );
        assert_eq!(streamed(&sample), serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn shapes_the_stream_does_not_handle_fall_back_to_the_value_path() {
        #[derive(serde::Serialize)]
        enum Shape {
            Pair(u8, String),
            Named { b: u8, a: u8 },
        }
        let shapes = vec![Shape::Pair(1, "x".into()), Shape::Named { b: 2, a: 1 }];
        let mut out = b"prefix".to_vec();
        write_serialize(&shapes, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"prefix[{"Pair":[1,"x"]},{"Named":{"a":1,"b":2}}]"#
        );
    }

    #[test]
    fn policy_version_hash_is_pinned() {
        // Decisions, ledger entries and tokens carry this hash: a change to the canonical form must
        // be deliberate. The value was computed by the code this module replaced (the `Value` path
        // in lexecon-config and the streamed one in lexecon-policy-cache agreed on it).
        let doc = parse_policy("p.yaml", PINNED).unwrap();
        assert_eq!(
            doc.policy_version_hash(),
            "c45f8c48654085c062860875b88cdba540f71c1899e51bbf6a169b6d5b377a19"
        );
        assert_eq!(doc.canonical_json(), via_value(&doc));
    }

    const PINNED: &str = "id: pinned\ndomain: finance\nmode: dry_run\ndescription: \"tab\\there, é, \\u0001\"\ntemplates: [{name: prevent_flash_crash, params: {max_notional_per_minute: 2.5e7, z: [1, -2, 0.1], a: {y: null, b: true}}}]\nrules:\n  - {id: r1, effect: escalate, actor: \"act_*\", action: axn_place_order, resource: \"res_security:*\", when: [{field: context.order_value, op: gt, value: 12345678901234}, {field: actor.instance, op: matches, value: \"^m[a-z]+$\"}, {field: context.x, op: exists}], reason: \"line\\nbreak \\\"quoted\\\"\"}\n  - {id: r2, effect: forbid, when: [{field: context.venue, op: not_in, value: [XNYS, 1.5, false]}]}\n";

    #[test]
    fn every_deployed_policy_streams_to_the_value_path_bytes() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/policies");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let doc = parse_policy(&path.display().to_string(), &text).unwrap();
            assert_eq!(streamed(&doc), via_value(&doc), "{}", path.display());
            assert_eq!(doc.canonical_json(), via_value(&doc), "{}", path.display());
            seen += 1;
        }
        assert!(
            seen >= 3,
            "deploy/policies has the ai, finance and healthcare policies"
        );
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("line\nbreak \"q\" \\ \u{1} \u{7f} é 😀".to_string()),
            "[a-z_]{1,10}:[A-Za-z0-9*/]{0,8}",
            "\\PC{0,16}",
            ".{0,8}",
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop::sample::select(vec![
            Op::Eq,
            Op::Ne,
            Op::Lt,
            Op::Le,
            Op::Gt,
            Op::Ge,
            Op::In,
            Op::NotIn,
            Op::Exists,
            Op::Matches,
        ])
    }

    fn rule() -> impl Strategy<Value = Rule> {
        (
            text(),
            prop::sample::select(vec![Effect::Permit, Effect::Forbid, Effect::Escalate]),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::collection::vec(
                (text(), op(), prop::option::of(value()))
                    .prop_map(|(field, op, value)| Condition { field, op, value }),
                0..3,
            ),
            prop::option::of(text()),
        )
            .prop_map(|(id, effect, actor, action, resource, when, reason)| Rule {
                id,
                effect,
                actor,
                action,
                resource,
                when,
                reason,
            })
    }

    fn document() -> impl Strategy<Value = PolicyDocument> {
        (
            text(),
            "[a-z][a-z0-9_]{0,10}",
            prop::sample::select(vec![Mode::Strict, Mode::Permissive, Mode::DryRun]),
            text(),
            prop::collection::vec(
                (text(), prop::collection::btree_map(text(), value(), 0..3)).prop_map(
                    |(name, params)| TemplateUse {
                        name,
                        params: params.into_iter().collect::<Map<_, _>>(),
                    },
                ),
                0..3,
            ),
            prop::collection::vec(rule(), 0..5),
        )
            .prop_map(
                |(id, domain, mode, description, templates, rules)| PolicyDocument {
                    id,
                    domain: DomainId::new(domain).unwrap(),
                    mode,
                    description,
                    templates,
                    rules,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn streamed_policy_bytes_equal_the_value_path(doc in document()) {
            let expected = via_value(&doc);
            prop_assert_eq!(&streamed(&doc), &expected);
            prop_assert_eq!(&doc.canonical_json(), &expected);
        }

        #[test]
        fn streamed_json_values_equal_the_value_path(v in value()) {
            prop_assert_eq!(streamed(&v), to_canonical_bytes(&v));
        }
    }

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
