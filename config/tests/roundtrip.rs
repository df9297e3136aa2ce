//! Property: a policy document and its JSON and YAML round trips are the same document with the same
//! `policy_version_hash`, whatever strings and values it holds.

use lexecon_config::{
    parse_policy, Condition, Effect, Mode, Op, PolicyDocument, Rule, TemplateUse,
};
use lexecon_domains::DomainId;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Strings that trip YAML up when written carelessly, plus arbitrary printable ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("yes".to_string()),
        Just("no".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        Just("1.0".to_string()),
        Just("0x1F".to_string()),
        Just("007".to_string()),
        Just("true".to_string()),
        Just("- item".to_string()),
        Just("key: value".to_string()),
        Just("# not a comment".to_string()),
        Just(" padded ".to_string()),
        Just("multi\nline\n".to_string()),
        Just("'single' \"double\" \\back".to_string()),
        Just("2024-01-01".to_string()),
        "[a-z_]{1,10}:[A-Za-z0-9*/]{0,8}",
        "\\PC{0,16}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e15f64..1.0e15).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Eq),
        Just(Op::Ne),
        Just(Op::Lt),
        Just(Op::Le),
        Just(Op::Gt),
        Just(Op::Ge),
        Just(Op::In),
        Just(Op::NotIn),
        Just(Op::Exists),
        Just(Op::Matches),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        text(),
        prop_oneof![
            Just(Effect::Permit),
            Just(Effect::Forbid),
            Just(Effect::Escalate)
        ],
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::collection::vec(
            (text(), op(), prop::option::of(value())).prop_map(|(field, op, value)| Condition {
                field,
                op,
                value,
            }),
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

#[expect(
    clippy::unwrap_used,
    reason = "the generated domain id always matches [a-z][a-z0-9_]*"
)]
fn document() -> impl Strategy<Value = PolicyDocument> {
    (
        text(),
        "[a-z][a-z0-9_]{0,10}",
        prop_oneof![
            Just(Mode::Strict),
            Just(Mode::Permissive),
            Just(Mode::DryRun)
        ],
        text(),
        prop::collection::vec(
            (
                text(),
                prop::collection::btree_map("[a-z_]{1,8}", value(), 0..3),
            )
                .prop_map(|(name, params)| TemplateUse {
                    name,
                    params: params.into_iter().collect::<Map<_, _>>(),
                }),
            0..2,
        ),
        prop::collection::vec(rule(), 0..4),
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

/// `value: null` reads back as "no value" (serde maps null to `None`), which is the same condition.
fn normalise(mut doc: PolicyDocument) -> PolicyDocument {
    for rule in &mut doc.rules {
        for cond in &mut rule.when {
            if cond.value == Some(Value::Null) {
                cond.value = None;
            }
        }
    }
    doc
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hash_is_stable_across_json_and_yaml_round_trips(doc in document()) {
        let doc = normalise(doc);
        let json = serde_json::to_string_pretty(&doc).unwrap();
        let yaml = serde_norway::to_string(&doc).unwrap();
        let from_json = parse_policy("p.json", &json).unwrap();
        let from_yaml = parse_policy("p.yaml", &yaml).unwrap();
        prop_assert_eq!(&from_json, &doc);
        prop_assert_eq!(&from_yaml, &doc);
        let hash = doc.policy_version_hash();
        prop_assert_eq!(from_json.policy_version_hash(), hash.clone());
        prop_assert_eq!(from_yaml.policy_version_hash(), hash);
    }

    #[test]
    fn changing_any_rule_reason_changes_the_hash(doc in document(), extra in "[a-z]{1,8}") {
        prop_assume!(!doc.rules.is_empty());
        let mut changed = doc.clone();
        let reason = changed.rules[0].reason.get_or_insert_with(String::new);
        reason.push_str(&extra);
        prop_assert_ne!(changed.policy_version_hash(), doc.policy_version_hash());
    }
}

#[test]
fn canonical_json_has_sorted_keys_and_no_whitespace() {
    let doc = parse_policy(
        "p.yaml",
        "rules: [{reason: r, id: a, effect: permit}]\ndomain: ai\nid: x\n",
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(doc.canonical_json()).unwrap(),
        r#"{"domain":"ai","id":"x","mode":"strict","rules":[{"effect":"permit","id":"a","reason":"r"}]}"#
    );
    assert_eq!(doc.policy_version_hash().len(), 64);
}
