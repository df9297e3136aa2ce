//! The decision cache: a bounded `moka` cache of policy evaluations keyed by the snapshot version, the domain, the actor, action and
//! resource references and the values of exactly the context fields the policy (with its template
//! data rules) reads. The key is an exact, self-delimiting binary encoding of those inputs (not a
//! lossy hash; the cache compares whole keys), so two requests share an entry only when the policy
//! cannot tell them apart. A new snapshot changes the version, so entries of an older snapshot are
//! never served.
//!
//! Only the policy's own evaluation is cached. Plugin checks (`validate`, template checks),
//! compliance mapping and the post-decision hook run for every request, because they may read any
//! part of the context; the service also bypasses the cache for time-dependent or stateful plugins
//! and for requests with an explicit decision time.

use std::sync::Arc;

use lexecon_domains::{EntityRef, Request};
use serde_json::Value;

use crate::compile::CompiledPolicy;
use crate::condition::context_value;
use crate::evaluate::Evaluation;

/// An exact cache key (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Vec<u8>);

/// Appends `n` as LEB128 (one byte below 128), so every length and the version have a total,
/// self-delimiting encoding.
fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    push_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

// Tags of the value encoding: one byte, then the value's contents.
const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UNSIGNED: u8 = 3;
const SIGNED: u8 = 4;
const OTHER_NUMBER: u8 = 5;
const STRING: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;
/// Ends a number's text (which is only digits, sign, `.`, `e`/`E`).
const NUMBER_END: u8 = b';';

/// Appends an exact, self-delimiting encoding of `value`: a tag, then fixed-size or length-prefixed
/// contents (containers carry their element count). Equal bytes mean the same JSON value with the
/// same number representation, so the encoding is never coarser than the value itself.
fn push_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(UNSIGNED);
                out.extend_from_slice(&u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                out.push(SIGNED);
                out.extend_from_slice(&i.to_le_bytes());
            } else {
                // Floats (and, with serde_json's `arbitrary_precision`, any other number): the
                // number's own text, which is shortest round-trip and so one text per value.
                use std::io::Write as _;
                out.push(OTHER_NUMBER);
                // INVARIANT: writing to a Vec cannot fail.
                let _ = write!(out, "{n}");
                out.push(NUMBER_END);
            }
        }
        Value::String(s) => {
            out.push(STRING);
            push_str(out, s);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            push_varint(out, items.len() as u64);
            for item in items {
                push_value(out, item);
            }
        }
        Value::Object(map) => {
            out.push(OBJECT);
            push_varint(out, map.len() as u64);
            for (k, v) in map {
                push_str(out, k);
                push_value(out, v);
            }
        }
    }
}

impl CacheKey {
    /// The key of `request` under `policy` in snapshot `version`.
    pub fn new(version: u64, policy: &CompiledPolicy, request: &Request) -> Self {
        let resource = request.resource.as_ref().map_or("", EntityRef::as_str);
        let mut out = Vec::with_capacity(
            16 + request.domain.as_str().len()
                + request.actor.as_str().len()
                + request.action.as_str().len()
                + resource.len()
                + 16 * policy.context_fields.len(),
        );
        push_varint(&mut out, version);
        push_str(&mut out, request.domain.as_str());
        push_str(&mut out, request.actor.as_str());
        push_str(&mut out, request.action.as_str());
        out.push(u8::from(request.resource.is_some()));
        push_str(&mut out, resource);
        for path in &policy.context_fields {
            match context_value(&request.context, path) {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    push_value(&mut out, v);
                }
            }
        }
        Self(out)
    }
}

/// A bounded cache of policy evaluations (with their rule ids and reason, see [`Evaluation`]).
#[derive(Debug, Clone)]
pub struct DecisionCache {
    inner: moka::sync::Cache<CacheKey, Arc<Evaluation>>,
}

impl DecisionCache {
    /// A cache holding at most `capacity` evaluations.
    pub fn new(capacity: u64) -> Self {
        Self {
            inner: moka::sync::Cache::new(capacity),
        }
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<Evaluation>> {
        self.inner.get(key)
    }

    pub fn insert(&self, key: CacheKey, outcome: Arc<Evaluation>) {
        self.inner.insert(key, outcome);
    }

    /// Drops every entry (e.g. after a snapshot swap, to free memory early).
    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{plugin, request, yaml_policy};
    use serde_json::json;

    fn policy() -> CompiledPolicy {
        let doc = yaml_policy(
            "id: p\ndomain: trading\nrules:\n  - id: r\n    effect: permit\n    when: [{field: context.order.value, op: le, value: 5}]\n",
        );
        CompiledPolicy::compile(&doc, plugin().as_ref()).unwrap()
    }

    #[test]
    fn key_ignores_context_fields_the_policy_does_not_read() {
        let p = policy();
        let a = request(
            "act_trading_algo:a",
            "axn_place_order",
            None,
            json!({"order": {"value": 3}, "noise": 1}),
        );
        let b = request(
            "act_trading_algo:a",
            "axn_place_order",
            None,
            json!({"order": {"value": 3}, "noise": 2}),
        );
        assert_eq!(CacheKey::new(1, &p, &a), CacheKey::new(1, &p, &b));
    }

    #[test]
    fn key_distinguishes_read_values_missing_fields_ids_and_versions() {
        let p = policy();
        let base = request(
            "act_trading_algo:a",
            "axn_place_order",
            None,
            json!({"order": {"value": 3}}),
        );
        let k = CacheKey::new(1, &p, &base);
        let other_value = request(
            "act_trading_algo:a",
            "axn_place_order",
            None,
            json!({"order": {"value": 4}}),
        );
        let missing = request("act_trading_algo:a", "axn_place_order", None, json!({}));
        let other_actor = request(
            "act_trading_algo:b",
            "axn_place_order",
            None,
            json!({"order": {"value": 3}}),
        );
        let with_resource = request(
            "act_trading_algo:a",
            "axn_place_order",
            Some("res_security:X"),
            json!({"order": {"value": 3}}),
        );
        assert_ne!(k, CacheKey::new(1, &p, &other_value));
        assert_ne!(k, CacheKey::new(1, &p, &missing));
        assert_ne!(k, CacheKey::new(1, &p, &other_actor));
        assert_ne!(k, CacheKey::new(1, &p, &with_resource));
        assert_ne!(k, CacheKey::new(2, &p, &base));
    }

    fn encoded(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        push_value(&mut out, v);
        out
    }

    #[test]
    fn value_encoding_tells_apart_every_shape_that_json_does() {
        let values = [
            json!(null),
            json!(false),
            json!(true),
            json!(0),
            json!(1),
            json!(-1),
            json!(1.0),
            json!(1.5),
            json!(-0.0),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1e300),
            json!(""),
            json!("1"),
            json!("a"),
            json!("ab"),
            json!(["ab"]),
            json!(["a", "b"]),
            json!([["a"], "b"]),
            json!([]),
            json!([null]),
            json!({}),
            json!({"a": "b"}),
            json!({"ab": ""}),
            json!({"a": {"b": 1}}),
            json!({"a": 1, "b": 2}),
        ];
        for (i, a) in values.iter().enumerate() {
            for (j, b) in values.iter().enumerate() {
                assert_eq!(i == j, encoded(a) == encoded(b), "{a} vs {b}");
            }
        }
        // Map order does not matter to JSON equality, nor to the key.
        let x: Value = serde_json::from_str(r#"{"a":1,"b":[2,3]}"#).unwrap();
        let y: Value = serde_json::from_str(r#"{"b":[2,3],"a":1}"#).unwrap();
        assert_eq!(encoded(&x), encoded(&y));
    }

    #[test]
    fn long_strings_get_multi_byte_lengths_and_stay_distinct() {
        let a = json!("x".repeat(300));
        let b = json!("x".repeat(301));
        assert_ne!(encoded(&a), encoded(&b));
        let mut len = Vec::new();
        push_varint(&mut len, 300);
        assert_eq!(len, [0xac, 0x02]);
    }
}
