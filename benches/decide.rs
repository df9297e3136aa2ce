//! Decision engine benchmarks: the full `DecisionService::decide` pipeline on 10, 1,000 and 10,000-rule
//! policies (cache off), a decision served from the evaluation cache (the same request again: a
//! per-thread front hit, with `decide` and with `decide_keeping_context`, which the proxy and the
//! API call; and 4,096 requests in turn: hits in the shared moka cache), the policy
//! evaluation alone, and compiling the 10,000-rule policy. After criterion, a latency pass times
//! single decisions and prints p50/p90/p99/p99.9 (each sample includes one `Instant::now()` pair,
//! ~20–40 ns).
//!
//! Inputs are built [`BATCH`] at a time just before they are decided, as the proxy and the API
//! build one right before deciding it. (criterion's `SmallInput` builds thousands ahead, several MB
//! of maps that are out of the CPU caches again when decided: that measured cache misses on the
//! input, 150–300 ns of a cache hit on this machine, rather than the decision.)
//!
//! Run: `cargo bench -p lexecon-policy-cache --bench decide -- --measurement-time 3`

#![expect(
    clippy::expect_used,
    reason = "benchmark fixtures: a broken fixture must stop the run loudly"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use lexecon_config::PolicyDocument;
use lexecon_domains::{DomainConfig, DomainPlugin, DomainRegistry, Request};
use lexecon_policy_cache::cache::CacheKey;
use lexecon_policy_cache::{
    CompiledPolicy, DecisionCache, DecisionInput, DecisionService, PolicySnapshot, PolicyStore,
    ServiceConfig,
};
use serde_json::{json, Value};

// The allocator the `lexecon` binary ships with (proxy/src/main.rs), so these figures are the
// shipped ones: compiling and deciding allocate many small objects, and glibc malloc alone was about
// half of a 10,000-rule compile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Inputs built (and then decided) at a time; see the module docs.
const BATCH: u64 = 16;
/// Distinct requests the shared-cache benchmark goes through in turn: far more than a thread's
/// front table holds, far fewer than the cache holds.
const SHARED_KEYS: u64 = 4_096;

const ACTOR_TYPES: usize = 12;
const ACTION_TYPES: usize = 40;
const RESOURCE_TYPES: usize = 10;

/// A domain the size of a real one: 12 actor, 40 action and 10 resource types, one framework.
#[derive(Debug)]
struct BenchPlugin {
    config: DomainConfig,
}

impl DomainPlugin for BenchPlugin {
    fn config(&self) -> &DomainConfig {
        &self.config
    }
}

fn plugin() -> Arc<BenchPlugin> {
    let actors: Vec<Value> = (0..ACTOR_TYPES)
        .map(|i| json!({"type_id": format!("act_agent_{i}"), "category": "ai", "label": "agent"}))
        .collect();
    let actions: Vec<Value> = (0..ACTION_TYPES)
        .map(|i| {
            json!({"type_id": format!("axn_op_{i}"), "category": "execute", "label": "op",
                   "risk_level": 1 + i % 5})
        })
        .collect();
    let resources: Vec<Value> = (0..RESOURCE_TYPES)
        .map(|i| {
            json!({"type_id": format!("res_kind_{i}"), "category": "data", "label": "kind",
                   "sensitivity": "internal"})
        })
        .collect();
    let config = serde_json::from_value(json!({
        "domain": "bench",
        "display_name": "Bench",
        "actor_types": actors,
        "action_types": actions,
        "resource_types": resources,
        "compliance_frameworks": ["SOC2"],
    }))
    .expect("bench domain config");
    Arc::new(BenchPlugin { config })
}

/// A deterministic policy of `n` rules: ~97% pinned to one action type, the rest with a glob or no
/// action; actor and resource globs of every shape; 0–3 conditions (numeric bounds, `in` lists,
/// nested fields, `exists`, regexes).
fn policy(n: usize) -> PolicyDocument {
    let mut rules = Vec::with_capacity(n);
    for i in 0..n {
        let effect = match i % 10 {
            0 => "forbid",
            1 | 2 => "escalate",
            _ => "permit",
        };
        let action = match i % 50 {
            0 => json!(null),
            1 => json!(format!("axn_op_{}*", i % 4)),
            _ => json!(format!("axn_op_{}", (i * 7) % ACTION_TYPES)),
        };
        let actor = match i % 4 {
            0 => json!(format!("act_agent_{}:*", i % ACTOR_TYPES)),
            1 => json!(format!("act_agent_{}:inst{}", i % ACTOR_TYPES, i % 9)),
            2 => json!(format!(
                "act_agent_{{{},{}}}:*",
                i % ACTOR_TYPES,
                (i + 1) % ACTOR_TYPES
            )),
            _ => json!(null),
        };
        let resource = match i % 3 {
            0 => json!(format!("res_kind_{}:*", i % RESOURCE_TYPES)),
            1 => json!("*:item4*"),
            _ => json!(null),
        };
        let mut when = Vec::new();
        if i % 2 == 0 {
            when.push(
                json!({"field": "context.order_value", "op": "le", "value": (i % 97) * 10_000}),
            );
        }
        if i % 3 == 0 {
            when.push(json!({"field": "context.venue", "op": "in", "value": ["XNYS", "XNAS", format!("V{i}")]}));
        }
        if i % 5 == 0 {
            when.push(json!({"field": "context.limits.daily", "op": "gt", "value": i}));
        }
        if i % 7 == 0 {
            when.push(json!({"field": "context.desk", "op": "matches", "value": format!("^desk-{}", i % 13)}));
        }
        if i % 11 == 0 {
            when.push(json!({"field": "context.approved_by", "op": "exists", "value": false}));
        }
        let mut rule = json!({"id": format!("rule-{i}"), "effect": effect, "when": when});
        for (k, v) in [("action", action), ("actor", actor), ("resource", resource)] {
            if !v.is_null() {
                rule[k] = v;
            }
        }
        rules.push(rule);
    }
    serde_json::from_value(
        json!({"id": format!("bench-{n}"), "domain": "bench", "mode": "strict", "rules": rules}),
    )
    .expect("bench policy")
}

fn input() -> DecisionInput {
    input_with_order_value(250_000)
}

/// [`input`] with another `order_value` (a field the policies read, so another cache key).
fn input_with_order_value(order_value: u64) -> DecisionInput {
    DecisionInput {
        request_id: Some("bench-request".into()),
        domain: "bench".into(),
        actor: "act_agent_3:inst3".into(),
        action: "axn_op_21".into(),
        resource: Some("res_kind_3:item42".into()),
        context: json!({
            "order_value": order_value,
            "venue": "XNYS",
            "desk": "desk-3-equities",
            "limits": {"daily": 5_000, "weekly": 20_000},
            "quantity": 100,
            "note": "rebalance"
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
        at: None,
        provenance: Default::default(),
    }
}

fn to_request(i: DecisionInput) -> Request {
    Request {
        domain: lexecon_domains::DomainId::new(i.domain).expect("domain"),
        actor: lexecon_domains::EntityRef::parse(i.actor).expect("actor"),
        action: lexecon_domains::EntityRef::parse(i.action).expect("action"),
        resource: i
            .resource
            .map(|r| lexecon_domains::EntityRef::parse(r).expect("resource")),
        context: i.context,
        provenance: Default::default(),
        time: jiff::Timestamp::now(),
    }
}

fn service(n: usize, cache_capacity: u64) -> DecisionService {
    let p = plugin();
    let mut registry = DomainRegistry::empty();
    registry.register(p).expect("register");
    let snapshot = PolicySnapshot::build(registry, vec![policy(n)]).expect("policy compiles");
    DecisionService::new(
        Arc::new(PolicyStore::new(snapshot)),
        ServiceConfig { cache_capacity },
    )
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for n in [10usize, 1_000, 10_000] {
        let svc = service(n, 0);
        let d = svc.decide(input()).expect("decides");
        eprintln!(
            "decide/{n}: {} by {} ({} matched)",
            d.decision.as_str(),
            d.rule_id,
            d.explanation.matched_rules.len()
        );
        group.bench_function(format!("rules_{n}"), |b| {
            b.iter_batched(
                input,
                |i| black_box(svc.decide(i)),
                BatchSize::NumIterations(BATCH),
            )
        });
    }
    let cached = service(1_000, 10_000);
    cached.decide(input()).expect("warm");
    assert!(cached.decide(input()).expect("hit").explanation.cached);
    group.bench_function("cache_hit_rules_1000", |b| {
        b.iter_batched(
            input,
            |i| black_box(cached.decide(i)),
            BatchSize::NumIterations(BATCH),
        )
    });
    // The call the proxy and the decision API make: the context comes back (for the ledger) and
    // is dropped by the caller later, outside this measurement.
    group.bench_function("cache_hit_keep_context_rules_1000", |b| {
        b.iter_batched(
            input,
            |i| black_box(cached.decide_keeping_context(i)),
            BatchSize::NumIterations(BATCH),
        )
    });
    let shared = shared_hits_service();
    let mut n = 0u64;
    group.bench_function("cache_hit_shared_rules_1000", |b| {
        b.iter_batched(
            || {
                n = (n + 1) % SHARED_KEYS;
                input_with_order_value(n)
            },
            |i| black_box(shared.decide(i)),
            BatchSize::NumIterations(BATCH),
        )
    });
    group.finish();

    // The cache lookup alone: building the exact key from the read context fields, then the get.
    let mut group = c.benchmark_group("cache");
    {
        let snapshot = cached.store().load_full();
        let policy = Arc::clone(snapshot.policy("bench").expect("policy"));
        let cache = DecisionCache::new(1_000);
        let request = to_request(input());
        cache.insert(
            CacheKey::new(snapshot.version, &policy, &request),
            Arc::new(policy.explain(&policy.evaluate(&request))),
        );
        group.bench_function("lookup_hit_rules_1000", |b| {
            b.iter(|| black_box(cache.get(&CacheKey::new(snapshot.version, &policy, &request))))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("evaluate");
    let p = plugin();
    for n in [1_000usize, 10_000] {
        let compiled = CompiledPolicy::compile(&policy(n), p.as_ref()).expect("compiles");
        let i = input();
        let request = Request {
            domain: lexecon_domains::DomainId::new(i.domain).expect("domain"),
            actor: lexecon_domains::EntityRef::parse(i.actor).expect("actor"),
            action: lexecon_domains::EntityRef::parse(i.action).expect("action"),
            resource: i
                .resource
                .map(|r| lexecon_domains::EntityRef::parse(r).expect("resource")),
            context: i.context,
            provenance: Default::default(),
            time: jiff::Timestamp::now(),
        };
        group.bench_function(format!("rules_{n}"), |b| {
            b.iter(|| black_box(compiled.evaluate(&request)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    let doc = policy(10_000);
    group.bench_function("rules_10000", |b| {
        b.iter(|| black_box(CompiledPolicy::compile(&doc, p.as_ref())))
    });
    group.bench_function("version_hash_rules_10000", |b| {
        b.iter(|| black_box(lexecon_policy_cache::policy_version_hash(&doc)))
    });
    group.finish();
}

/// A 1,000-rule service whose cache holds the [`SHARED_KEYS`] requests, each decided once.
fn shared_hits_service() -> DecisionService {
    let svc = service(1_000, 10_000);
    for n in 0..SHARED_KEYS {
        svc.decide(input_with_order_value(n)).expect("warm");
    }
    let hits = (0..SHARED_KEYS)
        .filter(|n| {
            svc.decide(input_with_order_value(*n))
                .expect("decides")
                .explanation
                .cached
        })
        .count();
    assert_eq!(hits as u64, SHARED_KEYS, "every shared key is a cache hit");
    svc
}

fn percentiles(
    name: &str,
    svc: &DecisionService,
    samples: usize,
    mut make: impl FnMut(usize) -> DecisionInput,
) {
    let mut times = Vec::with_capacity(samples);
    // Warm up.
    for n in 0..10_000 {
        black_box(svc.decide(make(n)).ok());
    }
    let mut batch = Vec::with_capacity(BATCH as usize);
    for n in 0..samples {
        if batch.is_empty() {
            batch.extend((0..BATCH as usize).map(|k| make(n + k)));
            batch.reverse();
        }
        let Some(i) = batch.pop() else { break };
        let start = Instant::now();
        let d = svc.decide(i);
        let elapsed = start.elapsed();
        black_box(d.ok());
        times.push(elapsed);
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let show = |d: Duration| format!("{:.3} µs", d.as_secs_f64() * 1e6);
    println!(
        "latency {name:<26} n={samples:<7} p50 {}  p90 {}  p99 {}  p99.9 {}",
        show(at(0.50)),
        show(at(0.90)),
        show(at(0.99)),
        show(at(0.999)),
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    // Skip the latency pass when cargo runs benches as tests (`cargo test --benches`).
    // Set DECIDE_SKIP_LATENCY=1 to skip it (e.g. when profiling one criterion benchmark).
    if std::env::args().any(|a| a == "--bench") && std::env::var_os("DECIDE_SKIP_LATENCY").is_none()
    {
        for n in [10usize, 1_000, 10_000] {
            percentiles(
                &format!("decide/rules_{n}"),
                &service(n, 0),
                200_000,
                |_| input(),
            );
        }
        let cached = service(1_000, 10_000);
        percentiles("decide/cache_hit_rules_1000", &cached, 200_000, |_| input());
        percentiles(
            "decide/cache_hit_shared_rules_1000",
            &shared_hits_service(),
            200_000,
            |n| input_with_order_value(n as u64 % SHARED_KEYS),
        );
    }
}
