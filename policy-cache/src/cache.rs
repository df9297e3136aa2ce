//! The decision cache: a bounded `quick_cache` cache of policy evaluations keyed by the snapshot version, the domain, the actor, action and
//! resource references and the values of exactly the context fields the policy (with its template
//! data rules) reads, and the provenance of the context keys its conditions ask it of. The key is an exact, self-delimiting binary encoding of those inputs (not a
//! lossy hash; the cache compares whole keys), so two requests share an entry only when the policy
//! cannot tell them apart. A new snapshot changes the version, so entries of an older snapshot are
//! never served.
//!
//! Only the policy's own evaluation is cached. Plugin checks (`validate`, template checks) and the
//! post-decision hook run for every request, because they may read any part of the context; the
//! service also bypasses the cache for time-dependent or stateful plugins and for requests with an
//! explicit decision time.
//!
//! Two levels: the shared, bounded cache (`quick_cache`: sharded, its eviction — scan-resistant,
//! a cold queue before the hot one — runs only when an insert finds a shard full, so a lookup never
//! does housekeeping), and in front of it a small per-thread table ([`FRONT_SLOTS`] entries,
//! direct-mapped) of the evaluations this thread looked up last. A front hit costs one hash and one
//! key comparison instead of a shard's read lock and hash lookup; a front miss falls through to
//! the shared cache. Front entries carry the same exact key (snapshot version
//! included) and the cache's identity, so they are never served for another snapshot or cache.
//! The key is encoded into a per-thread buffer, so a hit allocates nothing. Keys longer than
//! [`MAX_KEY_BYTES`] are not cached (both levels count entries, not bytes).

use std::cell::Cell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lexecon_domains::{EntityRef, Provenance, Request};
use serde_json::Value;

use crate::compile::CompiledPolicy;
use crate::condition::context_values;
use crate::evaluate::Evaluation;

/// An exact cache key (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Vec<u8>);

impl std::borrow::Borrow<[u8]> for CacheKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

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

/// Appends the key of `request` under `policy` in snapshot `version` to `out`.
fn encode_key(out: &mut Vec<u8>, version: u64, policy: &CompiledPolicy, request: &Request) {
    let resource = request.resource.as_ref().map_or("", EntityRef::as_str);
    out.reserve(
        16 + request.domain.as_str().len()
            + request.actor.as_str().len()
            + request.action.as_str().len()
            + resource.len()
            + 16 * policy.context_fields.len(),
    );
    push_varint(out, version);
    push_str(out, request.domain.as_str());
    push_str(out, request.actor.as_str());
    push_str(out, request.action.as_str());
    out.push(u8::from(request.resource.is_some()));
    push_str(out, resource);
    context_values(
        &request.context,
        &policy.context_fields,
        |value| match value {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                push_value(out, v);
            }
        },
    );
    // The provenance of each key a condition asks it of: 0 for a missing key, else 1 + its index.
    for key in &policy.provenance_fields {
        let tag = request
            .provenance_of(key)
            .and_then(|p| Provenance::ALL.iter().position(|q| *q == p))
            .map_or(0, |i| i as u8 + 1);
        out.push(tag);
    }
}

impl CacheKey {
    /// The key of `request` under `policy` in snapshot `version`.
    pub fn new(version: u64, policy: &CompiledPolicy, request: &Request) -> Self {
        let mut out = Vec::new();
        encode_key(&mut out, version, policy, request);
        Self(out)
    }
}

/// Entries of the per-thread front table.
pub const FRONT_SLOTS: usize = 64;

/// The longest key that is cached. Both caches count entries, not bytes, so a request whose read
/// fields are huge (a megabyte string in a field the policy reads) is evaluated but not cached:
/// otherwise the cache's memory, and each thread's key buffer and front, would grow with it.
pub const MAX_KEY_BYTES: usize = 4096;

/// One front entry: whose cache it belongs to, the key's hash and bytes, and the evaluation.
struct FrontEntry {
    cache: u64,
    hash: u64,
    key: Vec<u8>,
    value: Arc<Evaluation>,
}

/// A thread's key buffer and front table. Taken out of its thread-local slot for the length of one
/// lookup and put back after, so a lookup never holds a borrow a nested call could trip over.
#[derive(Default)]
struct Scratch {
    key: Vec<u8>,
    front: Vec<Option<FrontEntry>>,
}

thread_local! {
    static SCRATCH: Cell<Option<Box<Scratch>>> = const { Cell::new(None) };
}

/// Gives every cache its own identity for the front tables.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// Hashes keys for the front table. A fixed seed is enough: crafted collisions only evict each
/// other from one thread's front, and the lookup then goes to the shared cache as without a front.
/// (The shared cache hashes with a random seed per cache.)
fn front_hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6c65_7865_636f_6e31).hash_one(key)
}

/// A bounded cache of policy evaluations (with their rule ids and reason, see [`Evaluation`]).
#[derive(Debug, Clone)]
pub struct DecisionCache {
    /// Identifies this cache's entries in the per-thread front tables.
    id: u64,
    /// Shared by every clone.
    inner: Arc<Shared>,
}

type Shared = quick_cache::sync::Cache<
    CacheKey,
    Arc<Evaluation>,
    quick_cache::UnitWeighter,
    foldhash::fast::RandomState,
>;

impl DecisionCache {
    /// A cache holding at most `capacity` evaluations (plus up to [`FRONT_SLOTS`] per thread).
    pub fn new(capacity: u64) -> Self {
        Self {
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            inner: Arc::new(Shared::with(
                // Only the initial sizing: the shards grow as entries arrive.
                usize::try_from(capacity.min(4_096)).unwrap_or(4_096),
                capacity,
                quick_cache::UnitWeighter,
                foldhash::fast::RandomState::default(),
                Default::default(),
            )),
        }
    }

    /// The shared cache's entry for `key` (the front tables are not consulted).
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Evaluation>> {
        self.inner.get(key)
    }

    /// The cached evaluation of `request` under `policy` in snapshot `version`, or `evaluate()`'s,
    /// which is then cached. The flag says whether it came from the cache.
    pub fn get_or_evaluate(
        &self,
        version: u64,
        policy: &CompiledPolicy,
        request: &Request,
        evaluate: impl FnOnce() -> Evaluation,
    ) -> (Arc<Evaluation>, bool) {
        let mut scratch = SCRATCH
            .try_with(Cell::take)
            .ok()
            .flatten()
            .unwrap_or_default();
        let found = self.lookup(&mut scratch, version, policy, request, evaluate);
        // Fails only while the thread is exiting; the scratch is then simply dropped.
        let _ = SCRATCH.try_with(|slot| slot.set(Some(scratch)));
        found
    }

    fn lookup(
        &self,
        scratch: &mut Scratch,
        version: u64,
        policy: &CompiledPolicy,
        request: &Request,
        evaluate: impl FnOnce() -> Evaluation,
    ) -> (Arc<Evaluation>, bool) {
        let Scratch { key, front } = scratch;
        key.clear();
        encode_key(key, version, policy, request);
        if key.len() > MAX_KEY_BYTES {
            key.clear();
            key.shrink_to(MAX_KEY_BYTES);
            return (Arc::new(evaluate()), false);
        }
        let hash = front_hash(key);
        if front.is_empty() {
            front.resize_with(FRONT_SLOTS, || None);
        }
        let slot = front.get_mut((hash % FRONT_SLOTS as u64) as usize);
        if let Some(Some(e)) = slot.as_deref() {
            if e.cache == self.id && e.hash == hash && e.key == *key {
                return (Arc::clone(&e.value), true);
            }
        }
        let (value, cached) = match self.inner.get(key.as_slice()) {
            Some(hit) => (hit, true),
            None => {
                let fresh = Arc::new(evaluate());
                self.inner.insert(CacheKey(key.clone()), Arc::clone(&fresh));
                (fresh, false)
            }
        };
        if let Some(slot) = slot {
            match slot {
                // Reuse the evicted entry's key buffer.
                Some(e) => {
                    e.cache = self.id;
                    e.hash = hash;
                    e.key.clear();
                    e.key.extend_from_slice(key);
                    e.value = Arc::clone(&value);
                }
                None => {
                    *slot = Some(FrontEntry {
                        cache: self.id,
                        hash,
                        key: key.clone(),
                        value: Arc::clone(&value),
                    });
                }
            }
        }
        (value, cached)
    }

    pub fn insert(&self, key: CacheKey, outcome: Arc<Evaluation>) {
        self.inner.insert(key, outcome);
    }

    /// Drops every entry (e.g. after a snapshot swap, to free memory early).
    pub fn invalidate_all(&self) {
        self.inner.clear();
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
    fn key_distinguishes_the_provenance_a_policy_reads_and_ignores_the_rest() {
        let doc = yaml_policy(
            "id: p\ndomain: trading\nrules:\n  - id: r\n    effect: permit\n    when: [{field: provenance.v, op: eq, value: authority}]\n",
        );
        let p = CompiledPolicy::compile(&doc, plugin().as_ref()).unwrap();
        assert!(p.reads_provenance());
        let labelled = |v: Option<Provenance>, w: Option<Provenance>| {
            let mut r = request(
                "act_trading_algo:a",
                "axn_place_order",
                None,
                json!({"v": 1, "w": 2}),
            );
            r.provenance.extend(v.map(|v| ("v".to_owned(), v)));
            r.provenance.extend(w.map(|w| ("w".to_owned(), w)));
            CacheKey::new(1, &p, &r)
        };
        let authority = labelled(Some(Provenance::Authority), None);
        assert_ne!(authority, labelled(None, None));
        assert_ne!(authority, labelled(Some(Provenance::Credential), None));
        // Unlabelled is the request's: the same key as labelled `request`.
        assert_eq!(
            labelled(None, None),
            labelled(Some(Provenance::Request), None)
        );
        assert_eq!(
            authority,
            labelled(Some(Provenance::Authority), Some(Provenance::Authority))
        );
        // A missing key has no provenance, unlike a present unlabelled one.
        let missing = request("act_trading_algo:a", "axn_place_order", None, json!({}));
        assert_ne!(CacheKey::new(1, &p, &missing), labelled(None, None));
        assert!(!policy().reads_provenance());
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

    fn order(value: u64) -> Request {
        request(
            "act_trading_algo:a",
            "axn_place_order",
            None,
            json!({"order": {"value": value}}),
        )
    }

    /// The `i`th request of a flood: a new actor and a new value each time.
    fn flood_request(i: u64) -> Request {
        request(
            &format!("act_trading_algo:flood{i}"),
            "axn_place_order",
            None,
            json!({"order": {"value": i}}),
        )
    }

    /// Looks `r` up, counting how often the policy had to be evaluated.
    fn look(
        cache: &DecisionCache,
        p: &CompiledPolicy,
        r: &Request,
        evaluations: &mut u32,
    ) -> (Arc<Evaluation>, bool) {
        cache.get_or_evaluate(1, p, r, || {
            *evaluations += 1;
            p.explain(&p.evaluate(r))
        })
    }

    #[test]
    fn second_lookup_is_served_from_the_front_with_the_shared_entry() {
        let p = policy();
        let cache = DecisionCache::new(100);
        let mut evaluations = 0;
        let (first, cached) = look(&cache, &p, &order(3), &mut evaluations);
        assert!(!cached);
        let (again, cached) = look(&cache, &p, &order(3), &mut evaluations);
        assert!(cached);
        assert_eq!(evaluations, 1);
        assert!(Arc::ptr_eq(&first, &again));
        let shared = cache.get(&CacheKey::new(1, &p, &order(3))).unwrap();
        assert!(Arc::ptr_eq(&first, &shared));
    }

    #[test]
    fn keys_evicted_from_the_front_are_still_hits_in_the_shared_cache() {
        let p = policy();
        let cache = DecisionCache::new(10_000);
        let mut evaluations = 0;
        let n = 20 * FRONT_SLOTS as u64;
        for v in 0..n {
            look(&cache, &p, &order(v), &mut evaluations);
        }
        assert_eq!(evaluations, n as u32);
        for v in 0..n {
            let (e, cached) = look(&cache, &p, &order(v), &mut evaluations);
            assert!(cached, "value {v}");
            assert_eq!(e.verdict, p.evaluate(&order(v)).verdict);
        }
        assert_eq!(evaluations, n as u32);
    }

    #[test]
    fn a_flood_of_distinct_actors_and_values_keeps_the_shared_cache_within_capacity() {
        let p = policy();
        let cache = DecisionCache::new(1_000);
        let mut evaluations = 0;
        for i in 0..100_000u64 {
            look(&cache, &p, &flood_request(i), &mut evaluations);
            if i % 10_000 == 9_999 {
                let n = cache.inner.len();
                assert!(n <= 1_000, "{n} entries after {} requests", i + 1);
            }
        }
        assert_eq!(evaluations, 100_000, "every distinct request was evaluated");
    }

    /// A hostile agent floods the cache with requests that are all different (20 times its
    /// capacity) while a busy agent repeats one: the repeated one stays in the shared cache — the
    /// flood evicts its own cold entries, not the entry in use.
    #[test]
    fn a_flood_of_one_off_requests_does_not_evict_an_entry_in_use() {
        let p = policy();
        let cache = DecisionCache::new(1_000);
        let mut evaluations = 0;
        let hot = order(7);
        look(&cache, &p, &hot, &mut evaluations);
        for i in 0..20_000u64 {
            look(&cache, &p, &flood_request(i), &mut evaluations);
            if i % 10 == 0 {
                // The shared cache itself, as another thread (with its own front) would ask it.
                assert!(
                    cache.get(&CacheKey::new(1, &p, &hot)).is_some(),
                    "the entry in use was evicted after {i} flood requests"
                );
            }
        }
        assert!(cache.inner.len() <= 1_000);
    }

    #[test]
    fn requests_with_huge_read_fields_are_evaluated_but_not_cached() {
        let p = policy();
        let cache = DecisionCache::new(100);
        let huge = request(
            "act_trading_algo:a",
            "axn_place_order",
            None,
            json!({"order": {"value": "x".repeat(MAX_KEY_BYTES)}}),
        );
        let mut evaluations = 0;
        for _ in 0..2 {
            let (e, cached) = look(&cache, &p, &huge, &mut evaluations);
            assert!(!cached);
            assert_eq!(e.verdict, p.evaluate(&huge).verdict);
        }
        assert_eq!(evaluations, 2);
        assert!(cache.get(&CacheKey::new(1, &p, &huge)).is_none());
        // A normal request right after is cached as usual.
        look(&cache, &p, &order(3), &mut evaluations);
        assert!(look(&cache, &p, &order(3), &mut evaluations).1);
    }

    #[test]
    fn front_entries_belong_to_their_cache_and_version() {
        let p = policy();
        let a = DecisionCache::new(100);
        let b = DecisionCache::new(100);
        let mut evaluations = 0;
        look(&a, &p, &order(3), &mut evaluations);
        // Same key, same thread, other cache: evaluated again, not served from a's front entry.
        let (_, cached) = look(&b, &p, &order(3), &mut evaluations);
        assert!(!cached);
        assert_eq!(evaluations, 2);
        // Same cache, next snapshot version: a miss.
        let (_, cached) = a.get_or_evaluate(2, &p, &order(3), || p.explain(&p.evaluate(&order(3))));
        assert!(!cached);
    }

    #[test]
    fn an_entry_cached_on_one_thread_is_a_hit_on_another() {
        let p = Arc::new(policy());
        let cache = DecisionCache::new(100);
        let mut evaluations = 0;
        look(&cache, &p, &order(3), &mut evaluations);
        let (cache2, p2) = (cache.clone(), Arc::clone(&p));
        let cached = std::thread::spawn(move || {
            let mut evaluations = 0;
            look(&cache2, &p2, &order(3), &mut evaluations).1 && evaluations == 0
        })
        .join()
        .unwrap();
        assert!(cached);
    }

    #[test]
    fn a_lookup_nested_in_an_evaluation_works_with_its_own_scratch() {
        let p = policy();
        let cache = DecisionCache::new(100);
        let (outer, cached) = cache.get_or_evaluate(1, &p, &order(3), || {
            let mut evaluations = 0;
            let (inner, cached) = look(&cache, &p, &order(4), &mut evaluations);
            assert!(!cached && evaluations == 1);
            (*inner).clone()
        });
        assert!(!cached);
        // The outer key holds what the closure returned; both keys are cached now.
        assert_eq!(outer.verdict, p.evaluate(&order(4)).verdict);
        let mut evaluations = 0;
        assert!(look(&cache, &p, &order(4), &mut evaluations).1);
        assert!(look(&cache, &p, &order(3), &mut evaluations).1);
        assert_eq!(evaluations, 0);
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
