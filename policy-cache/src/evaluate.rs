//! Evaluating a [`CompiledPolicy`] against a request: the rules indexed under the request's action
//! type plus the rules with a glob or absent action are checked in document order; the outcome
//! combines forbid > escalate > permit > the default (strict and dry_run deny, permissive permits, a
//! template fallback overrides the mode), and records every matched rule and the deciding one. Pure:
//! no plugin calls, no clock, no allocation unless a rule matches.

use std::sync::Arc;

use lexecon_config::{Effect, Mode};
use lexecon_domains::{Request, Verdict};

use crate::compile::{CompiledPolicy, CompiledRule};
use crate::condition::ResolvedContext;
use crate::decision::{RuleId, SharedStr};

/// Room reserved for matched positions at the first match.
const FIRST_MATCHES: usize = 32;

/// What decided the policy's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// The rule at this position of the compiled policy.
    Rule(u32),
    /// The policy's mode default (or a template's fallback).
    Default,
}

/// The policy's verdict for one request, before plugin findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOutcome {
    pub verdict: Verdict,
    pub decider: DecidedBy,
    /// Positions of every matched rule, in document order.
    pub matched: Vec<u32>,
}

/// An [`EvalOutcome`] with the parts of a decision it alone determines, each built once and shared:
/// what the decision cache holds, so a hit copies no string and no list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub decider: DecidedBy,
    /// Ids of every matched rule, in document order.
    pub matched_rules: Arc<[RuleId]>,
    /// The deciding rule's id, or the default's (`default:strict`).
    pub rule_id: SharedStr,
    /// The deciding rule's reason, or the default's.
    pub reasoning: SharedStr,
}

impl CompiledRule {
    fn matches(&self, request: &Request, resolved: &ResolvedContext<'_>) -> bool {
        self.action
            .as_ref()
            .is_none_or(|p| p.matches(&request.action))
            && self
                .actor
                .as_ref()
                .is_none_or(|p| p.matches(&request.actor))
            && self
                .resource
                .as_ref()
                .is_none_or(|p| request.resource.as_ref().is_some_and(|r| p.matches(r)))
            && self
                .when
                .iter()
                .all(|c| c.holds_resolved(request, resolved))
    }
}

/// Walks two ascending position lists in merged (document) order.
fn merged<'a>(a: &'a [u32], b: &'a [u32]) -> impl Iterator<Item = u32> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || match (a.get(i), b.get(j)) {
        (Some(&x), Some(&y)) if x <= y => {
            i += 1;
            Some(x)
        }
        (_, Some(&y)) => {
            j += 1;
            Some(y)
        }
        (Some(&x), None) => {
            i += 1;
            Some(x)
        }
        (None, None) => None,
    })
}

impl CompiledPolicy {
    /// The verdict of the policy's rules alone for `request`.
    pub fn evaluate(&self, request: &Request) -> EvalOutcome {
        let indexed: &[u32] = self
            .by_action
            .get(request.action.type_id())
            .map_or(&[], Vec::as_slice);
        let resolved = ResolvedContext::new(&self.context_fields, &request.context);
        let mut matched = Vec::new();
        let (mut forbid, mut escalate, mut permit) = (None, None, None);
        for pos in merged(indexed, &self.any_action) {
            let Some(rule) = self.rules.get(pos as usize) else {
                continue;
            };
            if !rule.matches(request, &resolved) {
                continue;
            }
            if matched.capacity() == 0 {
                // One allocation for the usual handful of matches, instead of growing 4 → 8 → 16 → 32.
                matched.reserve(FIRST_MATCHES);
            }
            matched.push(pos);
            let slot = match rule.effect {
                Effect::Forbid => &mut forbid,
                Effect::Escalate => &mut escalate,
                Effect::Permit => &mut permit,
            };
            slot.get_or_insert(pos);
        }
        let (verdict, decider) = match (forbid, escalate, permit) {
            (Some(p), _, _) => (Verdict::Deny, DecidedBy::Rule(p)),
            (None, Some(p), _) => (Verdict::Escalate, DecidedBy::Rule(p)),
            (None, None, Some(p)) => (Verdict::Permit, DecidedBy::Rule(p)),
            (None, None, None) => (self.default_verdict(), DecidedBy::Default),
        };
        EvalOutcome {
            verdict,
            decider,
            matched,
        }
    }

    /// The verdict when no rule matches: a template fallback, else the mode's default.
    pub fn default_verdict(&self) -> Verdict {
        match (&self.fallback, self.mode) {
            (Some((v, _)), _) => *v,
            (None, Mode::Permissive) => Verdict::Permit,
            (None, Mode::Strict | Mode::DryRun) => Verdict::Deny,
        }
    }

    /// The deciding rule's id (`default:<mode>`, `default:template:<name>` for a fallback), shared.
    pub fn decider_id(&self, decider: DecidedBy) -> SharedStr {
        match decider {
            DecidedBy::Rule(pos) => self
                .rules
                .get(pos as usize)
                .map_or_else(|| SharedStr::from(format!("rule#{pos}")), |r| r.id.clone()),
            DecidedBy::Default => self.default_id.clone(),
        }
    }

    /// The human-readable reason of the deciding rule or default, shared.
    pub fn decider_reason(&self, decider: DecidedBy) -> SharedStr {
        match decider {
            DecidedBy::Rule(pos) => self.rules.get(pos as usize).map_or_else(
                || SharedStr::from(format!("rule #{pos} matched")),
                |r| r.reason.clone(),
            ),
            DecidedBy::Default => self.default_reason.clone(),
        }
    }

    /// The ids of the matched rules, in document order (each shared, not copied).
    pub fn matched_ids(&self, matched: &[u32]) -> Arc<[RuleId]> {
        matched
            .iter()
            .filter_map(|p| self.rules.get(*p as usize).map(|r| r.id.clone()))
            .collect()
    }

    /// `outcome` with its rule ids, the deciding id and the reason looked up once.
    pub fn explain(&self, outcome: &EvalOutcome) -> Evaluation {
        Evaluation {
            verdict: outcome.verdict,
            decider: outcome.decider,
            matched_rules: self.matched_ids(&outcome.matched),
            rule_id: self.decider_id(outcome.decider),
            reasoning: self.decider_reason(outcome.decider),
        }
    }
}

pub(crate) fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Strict => "strict",
        Mode::Permissive => "permissive",
        Mode::DryRun => "dry_run",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{plugin, request, yaml_policy};
    use serde_json::{json, Value};

    fn compile(yaml: &str) -> CompiledPolicy {
        CompiledPolicy::compile(&yaml_policy(yaml), plugin().as_ref()).unwrap()
    }

    fn order(ctx: serde_json::Value) -> Request {
        request(
            "act_trading_algo:momentum_v3",
            "axn_place_order",
            Some("res_security:AAPL"),
            ctx,
        )
    }

    const MIXED: &str = r#"
id: mixed
domain: trading
rules:
  - {id: permit-algos, effect: permit, actor: "act_trading_algo:*", action: axn_place_order}
  - {id: escalate-big, effect: escalate, action: "axn_*", when: [{field: context.v, op: gt, value: 100}]}
  - {id: forbid-aapl, effect: forbid, resource: "res_security:AAPL", when: [{field: context.v, op: gt, value: 1000}]}
  - {id: permit-all, effect: permit}
"#;

    #[test]
    fn forbid_beats_escalate_beats_permit_and_all_matches_are_listed() {
        let p = compile(MIXED);
        let out = p.evaluate(&order(json!({"v": 5000})));
        assert_eq!(out.verdict, Verdict::Deny);
        assert_eq!(p.decider_id(out.decider), "forbid-aapl");
        assert_eq!(
            p.matched_ids(&out.matched)[..],
            ["permit-algos", "escalate-big", "forbid-aapl", "permit-all"]
        );
        let out = p.evaluate(&order(json!({"v": 500})));
        assert_eq!(out.verdict, Verdict::Escalate);
        assert_eq!(p.decider_id(out.decider), "escalate-big");
        assert_eq!(
            p.decider_reason(out.decider),
            "rule escalate-big (escalate) matched"
        );
        let out = p.evaluate(&order(json!({"v": 5})));
        assert_eq!(out.verdict, Verdict::Permit);
        assert_eq!(p.decider_id(out.decider), "permit-algos");
    }

    #[test]
    fn first_rule_in_document_order_decides_among_equal_effects() {
        let p = compile(
            r#"
id: order
domain: trading
rules:
  - {id: wild-first, effect: permit, action: "axn_*", reason: wildcard}
  - {id: exact-second, effect: permit, action: axn_place_order}
"#,
        );
        let out = p.evaluate(&order(json!({})));
        assert_eq!(p.decider_id(out.decider), "wild-first");
        assert_eq!(p.decider_reason(out.decider), "wildcard");
        assert_eq!(
            p.matched_ids(&out.matched)[..],
            ["wild-first", "exact-second"]
        );
    }

    #[test]
    fn rules_for_other_action_types_are_not_consulted() {
        let p = compile(
            "id: x\ndomain: trading\nrules:\n  - {id: quotes, effect: permit, action: axn_read_quote}\n",
        );
        assert_eq!(p.by_action.len(), 1);
        assert!(p.any_action.is_empty());
        let out = p.evaluate(&order(json!({})));
        assert_eq!(out.verdict, Verdict::Deny);
        assert!(out.matched.is_empty());
        let quote = request(
            "act_human_trader:bob",
            "axn_read_quote:level2",
            None,
            json!({}),
        );
        assert_eq!(p.evaluate(&quote).verdict, Verdict::Permit);
    }

    #[test]
    fn exact_action_instance_pattern_is_indexed_but_still_checked() {
        let p = compile(
            "id: x\ndomain: trading\nrules:\n  - {id: v2-only, effect: permit, action: \"axn_place_order:v2\"}\n",
        );
        assert!(p.by_action.contains_key("axn_place_order"));
        let v2 = request("act_trading_algo:a", "axn_place_order:v2", None, json!({}));
        let v1 = request("act_trading_algo:a", "axn_place_order:v1", None, json!({}));
        assert_eq!(p.evaluate(&v2).verdict, Verdict::Permit);
        assert_eq!(p.evaluate(&v1).verdict, Verdict::Deny);
    }

    #[test]
    fn resource_pattern_never_matches_a_request_without_resource() {
        let p = compile(
            "id: x\ndomain: trading\nrules:\n  - {id: any-res, effect: permit, resource: \"*\"}\n",
        );
        let none = request("act_trading_algo:a", "axn_place_order", None, json!({}));
        assert_eq!(p.evaluate(&none).verdict, Verdict::Deny);
        assert_eq!(p.evaluate(&order(json!({}))).verdict, Verdict::Permit);
    }

    #[test]
    fn defaults_follow_the_mode_and_name_it() {
        let strict = compile("id: s\ndomain: trading\nrules: []\n");
        let out = strict.evaluate(&order(json!({})));
        assert_eq!(
            (out.verdict, out.decider),
            (Verdict::Deny, DecidedBy::Default)
        );
        assert_eq!(strict.decider_id(out.decider), "default:strict");
        assert!(strict.decider_reason(out.decider).contains("strict"));
        let permissive = compile("id: p\ndomain: trading\nmode: permissive\nrules: []\n");
        let out = permissive.evaluate(&order(json!({})));
        assert_eq!(out.verdict, Verdict::Permit);
        assert_eq!(permissive.decider_id(out.decider), "default:permissive");
        let dry = compile("id: d\ndomain: trading\nmode: dry_run\nrules: []\n");
        let out = dry.evaluate(&order(json!({})));
        assert_eq!(out.verdict, Verdict::Deny);
        assert_eq!(dry.decider_id(out.decider), "default:dry_run");
    }

    #[test]
    fn template_fallback_overrides_the_permissive_default() {
        let p = compile(
            "id: p\ndomain: trading\nmode: permissive\ntemplates: [{name: deny_by_default}]\nrules:\n  - {id: quotes, effect: permit, action: axn_read_quote}\n",
        );
        let out = p.evaluate(&order(json!({})));
        assert_eq!(out.verdict, Verdict::Deny);
        assert_eq!(
            p.decider_id(out.decider),
            "default:template:deny_by_default"
        );
        assert!(p.decider_reason(out.decider).contains("deny_by_default"));
        let quote = request("act_human_trader:bob", "axn_read_quote", None, json!({}));
        assert_eq!(p.evaluate(&quote).verdict, Verdict::Permit);
    }

    #[test]
    fn most_restrictive_template_fallback_wins() {
        let p = compile(
            "id: p\ndomain: trading\nmode: permissive\ntemplates: [{name: escalate_by_default}, {name: deny_by_default}]\n",
        );
        assert_eq!(p.fallback(), Some(Verdict::Deny));
        let q = compile(
            "id: p\ndomain: trading\nmode: permissive\ntemplates: [{name: escalate_by_default}]\n",
        );
        assert_eq!(q.evaluate(&order(json!({}))).verdict, Verdict::Escalate);
    }

    #[test]
    fn conditions_on_more_context_fields_than_are_resolved_up_front_still_hold() {
        // 20 distinct fields: the first 16 (sorted) come from the per-request lookup, the rest
        // are looked up per condition; both must read the same values.
        let when: Vec<String> = (0..20)
            .map(|i| format!("{{field: context.f{i:02}, op: eq, value: {i}}}"))
            .collect();
        let p = compile(&format!(
            "id: x\ndomain: trading\nrules:\n  - {{id: all, effect: permit, when: [{}]}}\n  - {{id: last, effect: escalate, when: [{{field: context.f19, op: eq, value: 0}}]}}\n",
            when.join(", ")
        ));
        assert_eq!(p.context_fields().count(), 20);
        let ctx: serde_json::Map<String, Value> =
            (0..20).map(|i| (format!("f{i:02}"), json!(i))).collect();
        let out = p.evaluate(&order(Value::Object(ctx.clone())));
        assert_eq!(out.verdict, Verdict::Permit);
        assert_eq!(p.matched_ids(&out.matched)[..], ["all"]);
        let mut off = ctx;
        off.insert("f19".into(), json!(0));
        let out = p.evaluate(&order(Value::Object(off)));
        assert_eq!(p.matched_ids(&out.matched)[..], ["last"]);
    }

    #[test]
    fn template_data_rules_are_instantiated_with_params_and_defaults() {
        let p = compile(
            "id: p\ndomain: trading\nmode: permissive\ntemplates: [{name: order_cap, params: {max: 5000}}]\n",
        );
        assert_eq!(p.rule_ids().collect::<Vec<_>>(), ["order_cap.cap"]);
        let out = p.evaluate(&order(json!({"cap_value": 6000})));
        assert_eq!(out.verdict, Verdict::Escalate);
        assert_eq!(p.decider_id(out.decider), "order_cap.cap");
        assert_eq!(
            p.decider_reason(out.decider),
            "equities orders above 5000 need approval"
        );
        assert_eq!(
            p.evaluate(&order(json!({"cap_value": 4000}))).verdict,
            Verdict::Permit
        );
        assert_eq!(p.context_fields().collect::<Vec<_>>(), ["cap_value"]);
        let defaults =
            compile("id: p\ndomain: trading\nmode: permissive\ntemplates: [{name: order_cap}]\n");
        assert_eq!(
            defaults
                .evaluate(&order(json!({"cap_value": 1001})))
                .verdict,
            Verdict::Escalate
        );
        assert_eq!(defaults.templates()[0].params["max"], json!(1000));
    }
}
