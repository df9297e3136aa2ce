//! Property tests of the engine's invariants over random rule sets: forbid always wins, a permissive
//! policy without forbid/escalate rules permits, a policy decides identically after a JSON or YAML
//! round trip, cache keys are equal exactly when the read values are, and a service with the
//! decision cache decides exactly as one without it.

use std::sync::Arc;

use lexecon_config::{Effect, Mode, PolicyDocument, Rule};
use lexecon_domains::{Request, Verdict};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::cache::CacheKey;
use crate::compile::CompiledPolicy;
use crate::evaluate::DecidedBy;
use crate::service::{DecisionService, ServiceConfig};
use crate::store::{PolicySnapshot, PolicyStore};
use crate::testing::{input, plugin, registry_with, request};

const ACTORS: &[&str] = &[
    "act_trading_algo:a",
    "act_trading_algo:b",
    "act_human_trader:bob",
];
const ACTIONS: &[&str] = &["axn_place_order", "axn_read_quote", "axn_cancel_order:x"];
const RESOURCES: &[Option<&str>] = &[None, Some("res_security:AAPL"), Some("res_security:MSFT")];

fn actor_pattern() -> impl Strategy<Value = Option<String>> {
    prop::sample::select(vec![
        None,
        Some("*"),
        Some("act_trading_algo:*"),
        Some("act_human_trader"),
        Some("act_*:b"),
        Some("act_trading_algo:a"),
    ])
    .prop_map(|p| p.map(str::to_owned))
}

fn action_pattern() -> impl Strategy<Value = Option<String>> {
    prop::sample::select(vec![
        None,
        Some("axn_place_order"),
        Some("axn_*"),
        Some("axn_cancel_order:x"),
        Some("axn_read_quote"),
    ])
    .prop_map(|p| p.map(str::to_owned))
}

fn resource_pattern() -> impl Strategy<Value = Option<String>> {
    prop::sample::select(vec![
        None,
        Some("res_security:*"),
        Some("*:AAPL"),
        Some("res_security:MSFT"),
    ])
    .prop_map(|p| p.map(str::to_owned))
}

fn condition() -> impl Strategy<Value = Value> {
    let num = (-5i64..5).prop_map(|n| json!(n));
    let half = (-5i64..5).prop_map(|n| json!(n as f64 + 0.5));
    let text = prop::sample::select(vec!["a", "b", "zz"]).prop_map(|s| json!(s));
    let scalar = prop_oneof![num, half, text];
    prop_oneof![
        (
            prop::sample::select(vec!["eq", "ne", "lt", "le", "gt", "ge"]),
            scalar.clone()
        )
            .prop_map(|(op, v)| json!({"field": "context.v", "op": op, "value": v})),
        (
            prop::sample::select(vec!["in", "not_in"]),
            prop::collection::vec(scalar, 0..4)
        )
            .prop_map(|(op, v)| json!({"field": "context.v", "op": op, "value": v})),
        any::<bool>().prop_map(|b| json!({"field": "context.s.t", "op": "exists", "value": b})),
        prop::sample::select(vec!["^a", "z$", "b"])
            .prop_map(|r| json!({"field": "context.s.t", "op": "matches", "value": r})),
    ]
}

fn rule(effects: Vec<Effect>) -> impl Strategy<Value = Rule> {
    (
        prop::sample::select(effects),
        actor_pattern(),
        action_pattern(),
        resource_pattern(),
        prop::collection::vec(condition(), 0..3),
        prop::option::of("[a-z ]{1,12}"),
    )
        .prop_map(|(effect, actor, action, resource, when, reason)| Rule {
            id: String::new(),
            effect,
            actor,
            action,
            resource,
            when: when
                .into_iter()
                .map(|c| serde_json::from_value(c).unwrap())
                .collect(),
            reason,
        })
}

fn doc(mode: Mode, mut rules: Vec<Rule>) -> PolicyDocument {
    for (i, r) in rules.iter_mut().enumerate() {
        r.id = format!("r{i}");
    }
    PolicyDocument {
        id: "prop".into(),
        domain: lexecon_domains::DomainId::new("trading").unwrap(),
        mode,
        description: String::new(),
        templates: Vec::new(),
        rules,
    }
}

fn context() -> impl Strategy<Value = Value> {
    let v = prop_oneof![
        Just(None),
        (-6i64..6).prop_map(|n| Some(json!(n))),
        (-6i64..6).prop_map(|n| Some(json!(n as f64 + 0.5))),
        prop::sample::select(vec!["a", "b", "zz", "c"]).prop_map(|s| Some(json!(s))),
    ];
    let t = prop::option::of(prop::sample::select(vec!["abc", "xyz", "b"]));
    (v, t).prop_map(|(v, t)| {
        let mut ctx = serde_json::Map::new();
        if let Some(v) = v {
            ctx.insert("v".into(), v);
        }
        if let Some(t) = t {
            ctx.insert("s".into(), json!({"t": t}));
        }
        Value::Object(ctx)
    })
}

fn req() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(ACTORS.to_vec()),
        prop::sample::select(ACTIONS.to_vec()),
        prop::sample::select(RESOURCES.to_vec()),
        context(),
    )
        .prop_map(|(a, x, r, c)| request(a, x, r, c))
}

fn compile(d: &PolicyDocument) -> CompiledPolicy {
    CompiledPolicy::compile(d, plugin().as_ref()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn forbid_always_wins_over_any_mix_of_matching_rules(
        others in prop::collection::vec(rule(vec![Effect::Permit, Effect::Escalate]), 0..12),
        forbid in rule(vec![Effect::Forbid]),
        at in any::<prop::sample::Index>(),
        mode in prop::sample::select(vec![Mode::Strict, Mode::Permissive]),
        r in req(),
    ) {
        // Make the forbid rule match this request: patterns pinned to its ids, no conditions.
        let mut forbid = forbid;
        forbid.actor = Some(r.actor.as_str().to_owned());
        forbid.action = Some(r.action.type_id().to_owned());
        forbid.resource = r.resource.as_ref().map(|x| x.as_str().to_owned());
        forbid.when.clear();
        let mut rules = others;
        rules.insert(at.index(rules.len() + 1), forbid);
        let d = doc(mode, rules);
        let p = compile(&d);
        let out = p.evaluate(&r);
        prop_assert_eq!(out.verdict, Verdict::Deny);
        let DecidedBy::Rule(pos) = out.decider else { panic!("a rule must decide") };
        prop_assert_eq!(p.rules[pos as usize].effect, Effect::Forbid);

        // The whole pipeline agrees (the test plugin raises no finding for this context).
        let svc = DecisionService::new(
            Arc::new(PolicyStore::new(PolicySnapshot::build(registry_with(plugin()), vec![d]).unwrap())),
            ServiceConfig { cache_capacity: 16 },
        );
        let i = input(
            r.actor.as_str(),
            r.action.as_str(),
            r.resource.as_ref().map(|x| x.as_str()),
            Value::Object(r.context.clone()),
        );
        let decision = svc.decide(i).unwrap();
        prop_assert_eq!(decision.decision, Verdict::Deny);
    }

    #[test]
    fn permissive_policy_without_forbid_or_escalate_permits(
        rules in prop::collection::vec(rule(vec![Effect::Permit]), 0..12),
        r in req(),
    ) {
        let p = compile(&doc(Mode::Permissive, rules));
        prop_assert_eq!(p.evaluate(&r).verdict, Verdict::Permit);
    }

    #[test]
    fn json_and_yaml_round_trips_decide_identically(
        rules in prop::collection::vec(
            rule(vec![Effect::Permit, Effect::Escalate, Effect::Forbid]), 0..16),
        mode in prop::sample::select(vec![Mode::Strict, Mode::Permissive, Mode::DryRun]),
        requests in prop::collection::vec(req(), 1..8),
    ) {
        let original = doc(mode, rules);
        let from_json: PolicyDocument =
            serde_json::from_str(&serde_json::to_string(&original).unwrap()).unwrap();
        let from_yaml: PolicyDocument =
            serde_norway::from_str(&serde_norway::to_string(&original).unwrap()).unwrap();
        let (a, b, c) = (compile(&original), compile(&from_json), compile(&from_yaml));
        prop_assert_eq!(a.version_hash(), b.version_hash());
        prop_assert_eq!(a.version_hash(), c.version_hash());
        for r in &requests {
            let expected = a.evaluate(r);
            prop_assert_eq!(&expected, &b.evaluate(r));
            prop_assert_eq!(&expected, &c.evaluate(r));
        }
    }

    #[test]
    fn cache_key_bytes_are_equal_exactly_when_the_read_values_are(
        a in json_value(), b in json_value(),
    ) {
        let p = compile(&PolicyDocument {
            rules: vec![serde_json::from_value(json!(
                {"id": "r", "effect": "permit", "when": [{"field": "context.v", "op": "exists", "value": true}]}
            )).unwrap()],
            ..doc(Mode::Strict, vec![])
        });
        let key = |v: &Value| {
            CacheKey::new(1, &p, &request(ACTORS[0], ACTIONS[0], None, json!({"v": v, "unread": 1})))
        };
        // The same JSON text, not `Value`'s `==`: that holds 0.0 and -0.0 equal, which the key
        // keeps apart — a spare cache miss, never a shared entry for values a condition could
        // tell apart.
        let same = serde_json::to_string(&a).unwrap() == serde_json::to_string(&b).unwrap();
        prop_assert_eq!(same, key(&a) == key(&b));
        if key(&a) == key(&b) {
            prop_assert_eq!(&a, &b);
        }
        prop_assert_eq!(key(&a), key(&a.clone()));
    }

    #[test]
    fn cached_and_uncached_services_decide_identically(
        rules in prop::collection::vec(
            rule(vec![Effect::Permit, Effect::Escalate, Effect::Forbid]), 0..16),
        mode in prop::sample::select(vec![Mode::Strict, Mode::Permissive, Mode::DryRun]),
        requests in prop::collection::vec(req(), 1..12),
    ) {
        let d = doc(mode, rules);
        let service = |cache_capacity| DecisionService::new(
            Arc::new(PolicyStore::new(
                PolicySnapshot::build(registry_with(plugin()), vec![d.clone()]).unwrap(),
            )),
            ServiceConfig { cache_capacity },
        );
        let (cached, uncached) = (service(10_000), service(0));
        // Each request twice, so the second pass is served from the cache.
        for (n, r) in requests.iter().chain(&requests).enumerate() {
            let i = || input(
                r.actor.as_str(),
                r.action.as_str(),
                r.resource.as_ref().map(|x| x.as_str()),
                Value::Object(r.context.clone()),
            );
            let (a, b) = (cached.decide(i()).unwrap(), uncached.decide(i()).unwrap());
            prop_assert!(!b.explanation.cached);
            if n >= requests.len() {
                prop_assert!(a.explanation.cached);
            }
            prop_assert_eq!(without_ids(&a), without_ids(&b));
        }
    }
}

/// Any JSON value, nested up to three levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        (-3.0f64..3.0).prop_map(|n| json!(n)),
        prop::sample::select(vec![0.0f64, -0.0, 1.0, 2.5]).prop_map(|n| json!(n)),
        "[a-c\"\\\\é]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]{0,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A decision's JSON without the fields that differ between two identical decisions (fresh ids,
/// the decision time, the cached flag).
fn without_ids(d: &crate::Decision) -> Value {
    let mut v = serde_json::to_value(d).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("decision_id");
    o.remove("request_id");
    o.remove("timestamp");
    o["explanation"].as_object_mut().unwrap().remove("cached");
    v
}
