//! The decision cache: a bounded `moka` cache of policy evaluations keyed by the snapshot version,
//! the domain, the actor, action and resource references and the values of exactly the context
//! fields the policy (with its template data rules) reads. The key is an exact, length-prefixed
//! encoding of those inputs (not a lossy hash), so two requests share an entry only when the policy
//! cannot tell them apart. A new snapshot changes the version, so entries of an older snapshot are
//! never served.
//!
//! Only the policy's own evaluation is cached. Plugin checks (`validate`, template checks),
//! compliance mapping and the post-decision hook run for every request, because they may read any
//! part of the context; the service also bypasses the cache for time-dependent or stateful plugins
//! and for requests with an explicit decision time.

use std::sync::Arc;

use lexecon_domains::{EntityRef, Request};

use crate::compile::CompiledPolicy;
use crate::condition::context_value;
use crate::evaluate::EvalOutcome;
use lexecon_config::canonical::write_value as write_canonical;

/// An exact cache key (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Vec<u8>);

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Lengths are bounded (ids <= 512 bytes); u64 keeps the encoding total.
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl CacheKey {
    /// The key of `request` under `policy` in snapshot `version`.
    pub fn new(version: u64, policy: &CompiledPolicy, request: &Request) -> Self {
        let resource = request.resource.as_ref().map_or("", EntityRef::as_str);
        let mut out = Vec::with_capacity(
            48 + request.domain.as_str().len()
                + request.actor.as_str().len()
                + request.action.as_str().len()
                + resource.len()
                + 16 * policy.context_fields.len(),
        );
        out.extend_from_slice(&version.to_le_bytes());
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
                    let start = out.len();
                    out.extend_from_slice(&0u64.to_le_bytes());
                    write_canonical(v, &mut out);
                    let len = (out.len() - start - 8) as u64;
                    out[start..start + 8].copy_from_slice(&len.to_le_bytes());
                }
            }
        }
        Self(out)
    }
}

/// A bounded cache of policy evaluations.
#[derive(Debug, Clone)]
pub struct DecisionCache {
    inner: moka::sync::Cache<CacheKey, Arc<EvalOutcome>>,
}

impl DecisionCache {
    /// A cache holding at most `capacity` evaluations.
    pub fn new(capacity: u64) -> Self {
        Self {
            inner: moka::sync::Cache::new(capacity),
        }
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<EvalOutcome>> {
        self.inner.get(key)
    }

    pub fn insert(&self, key: CacheKey, outcome: Arc<EvalOutcome>) {
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
}
