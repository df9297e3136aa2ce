//! The [`DecisionService`]: one decision, start to end, on one snapshot. Parse and type-check the ids,
//! plugin `enrich` → `validate` → policy evaluation (cached when safe) → template checks → combine
//! (forbid > escalate > permit > default, plugin findings on top: the most severe wins) → dry_run →
//! compliance mapping → `on_decision` → observers. Never blocks, never reads the disk; a request that
//! cannot be decided is an error the caller must turn into a deny.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lexecon_config::Mode;
use lexecon_domains::{
    ActionType, DecisionOutcome, DomainId, DomainPlugin, EntityRef, Finding, FindingEffect,
    Provenance, Request, ResolvedTypes, RiskLevel, Verdict,
};

use crate::cache::DecisionCache;
use crate::compile::CompiledPolicy;
use crate::decision::{Decision, DecisionInput, Explanation, SharedStr};
use crate::error::DecideError;
use crate::evaluate::Evaluation;
use crate::store::{PolicySnapshot, PolicyStore};

/// Tuning of the decision service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Maximum cached policy evaluations; 0 disables the cache.
    pub cache_capacity: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 100_000,
        }
    }
}

/// Decides requests against the store's current snapshot. Share it as `Arc<DecisionService>`.
pub struct DecisionService {
    store: Arc<PolicyStore>,
    cache: Option<DecisionCache>,
    /// The snapshot version the cache was last used with; a change drops the older entries.
    cache_version: AtomicU64,
}

impl std::fmt::Debug for DecisionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionService")
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// A UUID v7 for `now`: 48-bit millisecond time, 74 random bits from the thread-local CSPRNG (no
/// syscall, no shared lock on the request path). `uuid::Uuid::now_v7` reads the OS's random source
/// (`getrandom`) on every call instead: strace of the proxy showed about one such syscall per two
/// requests while its request ids came from it.
pub fn new_uuid_v7(now: jiff::Timestamp) -> uuid::Uuid {
    use rand::RngCore;
    let millis = u64::try_from(now.as_millisecond()).unwrap_or(0);
    // One fill, not one generator call per byte (`gen::<[u8; 10]>()` samples each element).
    let mut random = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut random);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// [`new_uuid_v7`] as a lowercase hyphenated string.
pub fn uuid_v7(now: jiff::Timestamp) -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    new_uuid_v7(now)
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Permit => 0,
        Verdict::Escalate => 1,
        Verdict::Deny => 2,
    }
}

fn finding_verdict(effect: FindingEffect) -> Verdict {
    match effect {
        FindingEffect::Review => Verdict::Permit,
        FindingEffect::Escalate => Verdict::Escalate,
        FindingEffect::Deny => Verdict::Deny,
    }
}

/// The combined verdict of the policy and the plugin findings.
struct Combined {
    verdict: Verdict,
    rule_id: SharedStr,
    reasoning: SharedStr,
}

/// Policy verdict vs. findings: the most severe wins; on a tie a blocking finding decides (it is the
/// more specific domain constraint). Blocking findings that did not decide are appended to the reason.
/// Without blocking findings the evaluation's own id and reason are shared, not copied.
fn combine(eval: &Evaluation, findings: &[Finding]) -> Combined {
    let blocking = || {
        findings
            .iter()
            .filter(|f| f.effect != FindingEffect::Review)
    };
    let strongest = blocking().fold(None::<&Finding>, |best, f| match best {
        Some(b) if b.effect >= f.effect => Some(b),
        _ => Some(f),
    });
    let decider =
        strongest.filter(|f| severity(finding_verdict(f.effect)) >= severity(eval.verdict));
    let mut others = blocking()
        .filter(|f| !decider.is_some_and(|d| std::ptr::eq(d, *f)))
        .peekable();
    let (verdict, rule_id) = match decider {
        Some(f) => (
            finding_verdict(f.effect),
            SharedStr::from(format!("finding:{}", f.code)),
        ),
        None => (eval.verdict, eval.rule_id.clone()),
    };
    let reasoning = match (decider, others.peek()) {
        (None, None) => eval.reasoning.clone(),
        _ => {
            let mut reasoning =
                decider.map_or_else(|| eval.reasoning.to_string(), |f| f.reason.clone());
            for f in others {
                reasoning.push_str("; also ");
                reasoning.push_str(&f.code);
                reasoning.push_str(": ");
                reasoning.push_str(&f.reason);
            }
            SharedStr::from(reasoning)
        }
    };
    Combined {
        verdict,
        rule_id,
        reasoning,
    }
}

/// Labels every context key that has no provenance yet with `provenance`.
fn label_unlabelled(request: &mut Request, provenance: Provenance) {
    for key in request.context.keys() {
        if !request.provenance.contains_key(key) {
            request.provenance.insert(key.clone(), provenance);
        }
    }
}

impl DecisionService {
    pub fn new(store: Arc<PolicyStore>, config: ServiceConfig) -> Self {
        Self {
            store,
            cache: (config.cache_capacity > 0).then(|| DecisionCache::new(config.cache_capacity)),
            cache_version: AtomicU64::new(0),
        }
    }

    pub fn store(&self) -> &Arc<PolicyStore> {
        &self.store
    }

    /// Decides one request. Errors mean the request could not be decided; the caller must block it.
    pub fn decide(&self, input: DecisionInput) -> Result<Decision, DecideError> {
        self.decide_keeping_context(input).0
    }

    /// [`DecisionService::decide`], handing the request's context back instead of dropping it, for
    /// callers that record the context after deciding (the proxy and the decision API give it to the
    /// ledger): they need not clone it first. It is the context as the policy saw it, after the
    /// domain plugin's `enrich`; on an error, as given.
    pub fn decide_keeping_context(
        &self,
        input: DecisionInput,
    ) -> (
        Result<Decision, DecideError>,
        serde_json::Map<String, serde_json::Value>,
    ) {
        // INVARIANT: one snapshot for the whole decision.
        self.decide_on(&self.store.load(), input)
    }

    /// [`DecisionService::decide_keeping_context`] on a snapshot the caller loaded: a request of
    /// several calls (an MCP batch) decides them all on the one snapshot it loaded first, so a
    /// reload in between never splits it across policy versions.
    pub fn decide_on(
        &self,
        snapshot: &PolicySnapshot,
        input: DecisionInput,
    ) -> (
        Result<Decision, DecideError>,
        serde_json::Map<String, serde_json::Value>,
    ) {
        let DecisionInput {
            request_id,
            domain,
            actor,
            action,
            resource,
            context,
            at,
            provenance,
        } = input;
        let Some(plugin) = snapshot.registry.get(&domain) else {
            return (Err(DecideError::UnknownDomain { domain }), context);
        };
        let Some(policy) = snapshot.policy(&domain) else {
            return (Err(DecideError::NoPolicy { domain }), context);
        };
        let parse = |field: &'static str, raw: String| {
            EntityRef::parse(raw).map_err(|source| DecideError::InvalidReference { field, source })
        };
        let parsed = (|| {
            let actor = parse("actor", actor)?;
            let action = parse("action", action)?;
            let resource = resource.map(|r| parse("resource", r)).transpose()?;
            let domain = DomainId::new(domain).map_err(|e| DecideError::UnknownDomain {
                domain: e.to_string(),
            })?;
            Ok((domain, actor, action, resource))
        })();
        let (domain, actor, action, resource) = match parsed {
            Ok(ids) => ids,
            Err(e) => return (Err(e), context),
        };
        // One clock read per decision: the decision time (unless given) and the ids' time.
        let now = jiff::Timestamp::now();
        let mut request = Request {
            domain,
            actor,
            action,
            resource,
            context,
            provenance,
            time: at.unwrap_or(now),
        };
        let resolved_action =
            match ResolvedTypes::of_indexed(plugin.as_ref(), &policy.types, &request) {
                Ok(types) => types.action,
                Err(e) => return (Err(DecideError::UnknownType(e)), request.context),
            };

        // A policy that asks where a fact comes from is told `plugin` for the keys `enrich` adds.
        // (Only then are the request's own keys labelled, so that the others stand out.)
        let reads_provenance = policy.reads_provenance();
        if reads_provenance {
            label_unlabelled(&mut request, Provenance::Request);
        }
        plugin.enrich(&mut request);
        if reads_provenance {
            label_unlabelled(&mut request, Provenance::Plugin);
        }
        let mut findings = plugin.validate(&request);

        let cache = self.cache.as_ref().filter(|_| {
            at.is_none() && !plugin.validate_is_time_dependent() && !policy.has_stateful_template()
        });
        let (eval, cached) = match cache {
            Some(cache) => {
                // Entries of older snapshots can never be hit (the version is in the key); dropping
                // them on the first decision of a new snapshot frees their memory early.
                // Read first: the common case (no swap) then never writes the shared line; fetch_max
                // so a reader still on an older snapshot never moves the mark back.
                if self.cache_version.load(Ordering::Relaxed) < snapshot.version {
                    let seen = self
                        .cache_version
                        .fetch_max(snapshot.version, Ordering::Relaxed);
                    if seen != 0 && seen < snapshot.version {
                        cache.invalidate_all();
                    }
                }
                cache.get_or_evaluate(snapshot.version, policy, &request, || {
                    policy.explain(&policy.evaluate(&request))
                })
            }
            None => (Arc::new(policy.explain(&policy.evaluate(&request))), false),
        };

        for t in policy.templates() {
            if let Some(f) = plugin.check_template(&t.name, &t.params, &request) {
                findings.push(f);
            }
        }

        // The action type the risk level comes from: the declared type of the (enriched) request's
        // action. Type checking found it already unless enrich changed the action or the request
        // used a legacy alias (which is not declared, so the lookup below finds nothing, as before).
        let action_type = Some(resolved_action)
            .filter(|a| a.type_id == request.action.type_id())
            .or_else(|| plugin.config().action_type(request.action.type_id()));

        let (decision, context) = self.finish(
            plugin.as_ref(),
            action_type,
            policy,
            request,
            request_id,
            now,
            &eval,
            findings,
            cached,
        );
        (Ok(decision), context)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the pipeline's last stage takes every piece once"
    )]
    fn finish(
        &self,
        plugin: &dyn DomainPlugin,
        action_type: Option<&ActionType>,
        policy: &CompiledPolicy,
        mut request: Request,
        request_id: Option<String>,
        now: jiff::Timestamp,
        eval: &Evaluation,
        findings: Vec<Finding>,
        cached: bool,
    ) -> (Decision, serde_json::Map<String, serde_json::Value>) {
        let combined = combine(eval, &findings);
        let (verdict, would_have, reasoning) = if policy.mode() == Mode::DryRun {
            let reasoning = if combined.verdict == Verdict::Permit {
                combined.reasoning
            } else {
                SharedStr::from(format!(
                    "dry run: would have {}: {}",
                    combined.verdict.as_str(),
                    combined.reasoning
                ))
            };
            (Verdict::Permit, Some(combined.verdict), reasoning)
        } else {
            (combined.verdict, None, combined.reasoning)
        };
        let review_required =
            verdict != Verdict::Deny && findings.iter().any(|f| f.effect == FindingEffect::Review);
        let outcome = DecisionOutcome {
            verdict,
            findings: &findings,
            dry_run: would_have.is_some_and(|w| w != Verdict::Permit),
        };
        let compliance_mappings = Arc::clone(policy.compliance.get(outcome.compliance_outcome()));
        plugin.on_decision(&request, &outcome);
        let context = std::mem::take(&mut request.context);

        // Type checking passed, so the action type is declared; a plugin that accepts an alias it
        // does not declare is treated as the highest risk.
        let risk_level = action_type.map_or(RiskLevel::MAX, |a| a.risk_level).get();
        let requires_human_approval =
            action_type.is_some_and(|a| a.requires_human_approval) || verdict == Verdict::Escalate;

        // Ids carry the real generation time (`now`, read when the decision started), even when the
        // decision time was given explicitly.
        let decision = Decision {
            request_id: request_id.unwrap_or_else(|| uuid_v7(now)),
            decision_id: uuid_v7(now),
            domain: String::from(request.domain),
            actor: String::from(request.actor),
            action: String::from(request.action),
            resource: request.resource.map(String::from),
            decision: verdict,
            reasoning,
            rule_id: combined.rule_id,
            policy_version_hash: policy.version_hash.clone(),
            compliance_mappings,
            risk_level,
            requires_human_approval,
            review_required,
            explanation: Explanation {
                matched_rules: Arc::clone(&eval.matched_rules),
                findings,
                would_have,
                cached,
            },
            timestamp: request.time,
        };
        (decision, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PolicySnapshot;
    use crate::testing::{input, plugin, registry_with, yaml_policy, TestPlugin};
    use lexecon_domains::{ComplianceStatus, DomainRegistry};
    use serde_json::{json, Value};
    use std::sync::atomic::Ordering;

    const ALGO: &str = "act_trading_algo:momentum_v3";
    const ORDER: &str = "axn_place_order";
    const AAPL: Option<&str> = Some("res_security:AAPL");

    const DESK: &str = r#"
id: trading-desk
domain: trading
mode: strict
rules:
  - id: algos-may-trade
    effect: permit
    actor: "act_trading_algo:*"
    action: axn_place_order
    resource: "res_security:*"
    when: [{field: context.order_value, op: le, value: 5000000}]
    reason: Momentum algos may place orders up to 5M
  - id: big-orders-escalate
    effect: escalate
    action: axn_place_order
    when: [{field: context.order_value, op: gt, value: 5000000}]
  - id: cancels
    effect: permit
    action: axn_cancel_order
"#;

    fn service_with(p: Arc<TestPlugin>, yaml: &str, cache: u64) -> DecisionService {
        let snap = PolicySnapshot::build(registry_with(p), vec![yaml_policy(yaml)]).unwrap();
        DecisionService::new(
            Arc::new(PolicyStore::new(snap)),
            ServiceConfig {
                cache_capacity: cache,
            },
        )
    }

    fn service(yaml: &str) -> DecisionService {
        service_with(plugin(), yaml, 1000)
    }

    const PROVENANCE: &str = r#"
id: provenance
domain: trading
rules:
  - id: looked-up-limit
    effect: permit
    action: axn_place_order
    when:
      - {field: provenance.limit, op: eq, value: authority}
      - {field: context.order_value, op: le, value: {limit}}
  - id: derived-value
    effect: permit
    action: axn_cancel_order
    when: [{field: provenance.order_value, op: eq, value: plugin}]
"#;

    #[test]
    fn a_policy_requiring_a_provenance_decides_on_where_each_fact_came_from() {
        let svc = service(&PROVENANCE.replace("{limit}", "100"));
        for cached in [false, true] {
            let mut looked_up = input(ALGO, ORDER, AAPL, json!({"order_value": 50, "limit": 1}));
            looked_up
                .provenance
                .insert("limit".into(), Provenance::Authority);
            let d = svc.decide(looked_up).unwrap();
            assert_eq!(d.decision, Verdict::Permit);
            assert_eq!(d.explanation.cached, cached);
            // The same facts, asserted by the caller (or its credential): not the authority's.
            let said = input(ALGO, ORDER, AAPL, json!({"order_value": 50, "limit": 1}));
            assert_eq!(svc.decide(said).unwrap().decision, Verdict::Deny);
            let mut claimed = input(ALGO, ORDER, AAPL, json!({"order_value": 50, "limit": 1}));
            claimed
                .provenance
                .insert("limit".into(), Provenance::Credential);
            assert_eq!(svc.decide(claimed).unwrap().decision, Verdict::Deny);
        }
        // A key the plugin's enrich adds is the plugin's; the same key sent is the request's.
        let cancel = "axn_cancel_order";
        let derived = input(ALGO, cancel, AAPL, json!({"quantity": 2, "price": 3}));
        assert_eq!(svc.decide(derived).unwrap().decision, Verdict::Permit);
        let sent = input(ALGO, cancel, AAPL, json!({"order_value": 6}));
        assert_eq!(svc.decide(sent).unwrap().decision, Verdict::Deny);
        // A caller cannot put a provenance into a serialized input.
        let forged: DecisionInput = serde_json::from_value(json!({
            "domain": "trading", "actor": ALGO, "action": ORDER, "resource": AAPL,
            "context": {"order_value": 50, "limit": 1}, "provenance": {"limit": "authority"}
        }))
        .unwrap();
        assert!(forged.provenance.is_empty());
        assert_eq!(svc.decide(forged).unwrap().decision, Verdict::Deny);
    }

    #[test]
    fn permitted_order_names_rule_reason_hash_and_mappings() {
        let svc = service(DESK);
        let d = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"order_value": 500000})))
            .unwrap();
        assert_eq!(d.decision, Verdict::Permit);
        assert_eq!(d.rule_id, "algos-may-trade");
        assert_eq!(d.reasoning, "Momentum algos may place orders up to 5M");
        assert_eq!(d.explanation.matched_rules[..], ["algos-may-trade"]);
        assert_eq!(d.risk_level, 4);
        assert!(!d.requires_human_approval);
        assert_eq!(d.compliance_mappings.len(), 1);
        assert_eq!(d.compliance_mappings[0].framework, "MIFID_II");
        assert_eq!(d.compliance_mappings[0].status, ComplianceStatus::Compliant);
        let hash = crate::compile::policy_version_hash(&yaml_policy(DESK)).unwrap();
        assert_eq!(d.policy_version_hash, hash);
        assert_eq!(d.domain, "trading");
        assert_eq!(d.actor, ALGO);
        assert_eq!(d.resource.as_deref(), Some("res_security:AAPL"));
        assert_eq!(
            uuid::Uuid::parse_str(&d.decision_id)
                .unwrap()
                .get_version_num(),
            7
        );
        assert!(uuid::Uuid::parse_str(&d.request_id).is_ok());
    }

    #[test]
    fn given_request_id_and_time_are_kept() {
        let svc = service(DESK);
        let mut i = input(ALGO, ORDER, AAPL, json!({"order_value": 1}));
        i.request_id = Some("req-42".into());
        let at: jiff::Timestamp = "2026-03-02T15:00:00Z".parse().unwrap();
        i.at = Some(at);
        let d = svc.decide(i).unwrap();
        assert_eq!(d.request_id, "req-42");
        assert_eq!(d.timestamp, at);
    }

    #[test]
    fn escalated_decision_requires_human_approval() {
        let svc = service(DESK);
        let d = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"order_value": 6000000})))
            .unwrap();
        assert_eq!(d.decision, Verdict::Escalate);
        assert_eq!(d.rule_id, "big-orders-escalate");
        assert_eq!(d.reasoning, "rule big-orders-escalate (escalate) matched");
        assert!(d.requires_human_approval);
    }

    #[test]
    fn action_flagged_for_approval_requires_it_even_when_permitted() {
        let svc = service(DESK);
        let d = svc
            .decide(input(
                "act_human_trader:bob",
                "axn_cancel_order",
                AAPL,
                json!({}),
            ))
            .unwrap();
        assert_eq!(d.decision, Verdict::Permit);
        assert!(d.requires_human_approval);
        assert_eq!(d.risk_level, 2);
    }

    #[test]
    fn enrich_runs_before_the_policy_reads_derived_fields() {
        let svc = service(DESK);
        let d = svc
            .decide(input(
                ALGO,
                ORDER,
                AAPL,
                json!({"quantity": 100, "price": 50}),
            ))
            .unwrap();
        assert_eq!(d.decision, Verdict::Permit, "{}", d.reasoning);
    }

    #[test]
    fn unknown_domain_missing_policy_bad_ids_and_unknown_types_are_errors() {
        let svc = service(DESK);
        let mut i = input(ALGO, ORDER, AAPL, json!({}));
        i.domain = "nowhere".into();
        assert!(
            matches!(svc.decide(i), Err(DecideError::UnknownDomain { domain }) if domain == "nowhere")
        );

        let err = svc.decide(input(":x", ORDER, AAPL, json!({}))).unwrap_err();
        assert!(
            matches!(err, DecideError::InvalidReference { field: "actor", .. }),
            "{err}"
        );

        let err = svc
            .decide(input("act_robot:r2", ORDER, AAPL, json!({})))
            .unwrap_err();
        assert!(
            err.to_string().contains("act_robot") && err.to_string().contains("trading"),
            "{err}"
        );
        let err = svc
            .decide(input(ALGO, "axn_short_sell", AAPL, json!({})))
            .unwrap_err();
        assert!(err.to_string().contains("unknown action type"), "{err}");
        let err = svc
            .decide(input(ALGO, ORDER, Some("res_bond:X"), json!({})))
            .unwrap_err();
        assert!(err.to_string().contains("unknown resource type"), "{err}");

        let mut reg = DomainRegistry::empty();
        reg.register(plugin()).unwrap();
        let store = Arc::new(PolicyStore::new(
            PolicySnapshot::build(reg, vec![]).unwrap(),
        ));
        let svc = DecisionService::new(store, ServiceConfig::default());
        let err = svc.decide(input(ALGO, ORDER, AAPL, json!({}))).unwrap_err();
        assert!(matches!(err, DecideError::NoPolicy { .. }), "{err}");
    }

    #[test]
    fn deny_finding_overrides_a_permit_rule() {
        let svc = service(DESK);
        let d = svc
            .decide(input(
                ALGO,
                ORDER,
                AAPL,
                json!({"order_value": 10, "venue_closed": true}),
            ))
            .unwrap();
        assert_eq!(d.decision, Verdict::Deny);
        assert_eq!(d.rule_id, "finding:test.session");
        assert_eq!(d.reasoning, "venue is closed");
        assert_eq!(d.explanation.matched_rules[..], ["algos-may-trade"]);
        assert_eq!(
            d.compliance_mappings[0].status,
            ComplianceStatus::ViolationPrevented
        );
    }

    #[test]
    fn escalate_finding_raises_a_permit_and_deny_beats_escalate() {
        let svc = service("id: p\ndomain: trading\nmode: permissive\n");
        let d = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"order_value": 20000000})))
            .unwrap();
        assert_eq!(d.decision, Verdict::Escalate);
        assert_eq!(d.rule_id, "finding:test.order_limit");
        assert!(d.reasoning.contains("10000000 limit"));
        assert!(d.requires_human_approval);

        let both = svc
            .decide(input(
                ALGO,
                ORDER,
                AAPL,
                json!({"order_value": 20000000, "venue_closed": true}),
            ))
            .unwrap();
        assert_eq!(both.decision, Verdict::Deny);
        assert_eq!(both.rule_id, "finding:test.session");
        assert!(
            both.reasoning.contains("also test.order_limit"),
            "{}",
            both.reasoning
        );
        assert_eq!(both.explanation.findings.len(), 2);
    }

    #[test]
    fn escalate_finding_decides_ties_but_default_deny_stays_and_names_the_limit() {
        let svc = service(DESK);
        // 20M: strict policy escalates via rule; the finding escalates too and (tie) decides.
        let d = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"order_value": 20000000})))
            .unwrap();
        assert_eq!(d.decision, Verdict::Escalate);
        assert_eq!(d.rule_id, "finding:test.order_limit");
        let strict = service("id: s\ndomain: trading\n");
        let d = strict
            .decide(input(ALGO, ORDER, AAPL, json!({"order_value": 20000000})))
            .unwrap();
        assert_eq!(d.decision, Verdict::Deny);
        assert_eq!(d.rule_id, "default:strict");
        assert!(d.reasoning.contains("10000000 limit"), "{}", d.reasoning);
    }

    #[test]
    fn review_finding_keeps_permit_and_marks_for_review() {
        let svc = service(DESK);
        let d = svc
            .decide(input(
                ALGO,
                ORDER,
                AAPL,
                json!({"order_value": 1, "break_glass": "ETREAT"}),
            ))
            .unwrap();
        assert_eq!(d.decision, Verdict::Permit);
        assert_eq!(d.rule_id, "algos-may-trade");
        assert!(d.review_required);
        let normal = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"order_value": 1})))
            .unwrap();
        assert!(!normal.review_required);
    }

    #[test]
    fn template_check_findings_apply() {
        let svc = service("id: p\ndomain: trading\nmode: permissive\ntemplates: [{name: burst_guard, params: {limit: 5}}]\n");
        let ok = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"burst": 5})))
            .unwrap();
        assert_eq!(ok.decision, Verdict::Permit);
        let d = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"burst": 6})))
            .unwrap();
        assert_eq!(d.decision, Verdict::Deny);
        assert_eq!(d.rule_id, "finding:test.burst");
        assert_eq!(d.reasoning, "burst 6 above 5");
    }

    #[test]
    fn dry_run_permits_and_reports_what_it_would_have_done() {
        let svc = service("id: d\ndomain: trading\nmode: dry_run\nrules:\n  - {id: no-aapl, effect: forbid, resource: \"res_security:AAPL\"}\n");
        let d = svc.decide(input(ALGO, ORDER, AAPL, json!({}))).unwrap();
        assert_eq!(d.decision, Verdict::Permit);
        assert_eq!(d.explanation.would_have, Some(Verdict::Deny));
        assert_eq!(d.rule_id, "no-aapl");
        assert!(
            d.reasoning.starts_with("dry run: would have deny"),
            "{}",
            d.reasoning
        );
        let other = svc
            .decide(input(ALGO, ORDER, Some("res_security:MSFT"), json!({})))
            .unwrap();
        assert_eq!(other.decision, Verdict::Permit);
        assert_eq!(other.explanation.would_have, Some(Verdict::Deny));
        assert_eq!(other.rule_id, "default:dry_run");
    }

    #[test]
    fn cache_hit_returns_same_verdict_with_fresh_ids_and_still_runs_hook() {
        let p = plugin();
        let svc = service_with(Arc::clone(&p), DESK, 1000);
        let first = svc
            .decide(input(
                ALGO,
                ORDER,
                AAPL,
                json!({"order_value": 10, "noise": 1}),
            ))
            .unwrap();
        let second = svc
            .decide(input(
                ALGO,
                ORDER,
                AAPL,
                json!({"order_value": 10, "noise": 2}),
            ))
            .unwrap();
        assert!(!first.explanation.cached);
        assert!(second.explanation.cached);
        assert_eq!(second.decision, first.decision);
        assert_eq!(second.rule_id, first.rule_id);
        assert_eq!(second.reasoning, first.reasoning);
        assert_eq!(second.compliance_mappings, first.compliance_mappings);
        assert_eq!(
            second.explanation.matched_rules,
            first.explanation.matched_rules
        );
        assert_ne!(second.decision_id, first.decision_id);
        assert_ne!(second.request_id, first.request_id);
        assert_eq!(p.decisions_seen.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_hit_shares_rule_ids_reason_and_mappings_instead_of_copying_them() {
        let svc = service(DESK);
        let i = || input(ALGO, ORDER, AAPL, json!({"order_value": 10}));
        let miss = svc.decide(i()).unwrap();
        let hit = svc.decide(i()).unwrap();
        assert!(hit.explanation.cached);
        assert!(Arc::ptr_eq(
            &miss.explanation.matched_rules,
            &hit.explanation.matched_rules
        ));
        assert!(std::ptr::eq(miss.rule_id.as_str(), hit.rule_id.as_str()));
        assert!(std::ptr::eq(
            miss.reasoning.as_str(),
            hit.reasoning.as_str()
        ));
        assert!(std::ptr::eq(
            miss.policy_version_hash.as_str(),
            hit.policy_version_hash.as_str()
        ));
        // Mappings depend on the outcome only: another request with the same outcome shares them.
        let other = svc
            .decide(input(
                ALGO,
                ORDER,
                Some("res_security:MSFT"),
                json!({"order_value": 20}),
            ))
            .unwrap();
        assert!(!other.explanation.cached);
        assert!(Arc::ptr_eq(
            &miss.compliance_mappings,
            &other.compliance_mappings
        ));
        // A blocking finding changes the outcome, and with it the mappings.
        let denied = svc
            .decide(input(
                ALGO,
                ORDER,
                AAPL,
                json!({"order_value": 10, "venue_closed": true}),
            ))
            .unwrap();
        assert_eq!(
            denied.compliance_mappings[0].status,
            ComplianceStatus::ViolationPrevented
        );
        assert_eq!(
            miss.compliance_mappings[0].status,
            ComplianceStatus::Compliant
        );
    }

    #[test]
    fn the_context_comes_back_as_the_policy_saw_it_after_the_hook_saw_it_too() {
        let p = plugin();
        let svc = service_with(Arc::clone(&p), DESK, 1000);
        let (d, context) = svc.decide_keeping_context(input(
            ALGO,
            ORDER,
            AAPL,
            json!({"quantity": 100, "price": 50}),
        ));
        assert_eq!(d.unwrap().decision, Verdict::Permit);
        // Enriched: the derived order value the policy read is in it.
        assert_eq!(
            Value::Object(context),
            json!({"quantity": 100, "price": 50, "order_value": 5000.0})
        );
        assert_eq!(p.context_len_seen.load(Ordering::Relaxed), 3);

        // Errors hand back the context as given.
        for bad in [
            input(":x", ORDER, AAPL, json!({"a": 1})),
            input("act_robot:r2", ORDER, AAPL, json!({"a": 1})),
            {
                let mut i = input(ALGO, ORDER, AAPL, json!({"a": 1}));
                i.domain = "nowhere".into();
                i
            },
        ] {
            let (d, context) = svc.decide_keeping_context(bad);
            assert!(d.is_err());
            assert_eq!(Value::Object(context), json!({"a": 1}));
        }
    }

    #[test]
    fn cache_misses_when_a_read_field_differs() {
        let svc = service(DESK);
        svc.decide(input(ALGO, ORDER, AAPL, json!({"order_value": 10})))
            .unwrap();
        let d = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"order_value": 6000000})))
            .unwrap();
        assert!(!d.explanation.cached);
        assert_eq!(d.decision, Verdict::Escalate);
    }

    #[test]
    fn plugin_checks_run_on_cache_hits() {
        let svc = service(DESK);
        svc.decide(input(ALGO, ORDER, AAPL, json!({"order_value": 10})))
            .unwrap();
        let d = svc
            .decide(input(
                ALGO,
                ORDER,
                AAPL,
                json!({"order_value": 10, "venue_closed": true}),
            ))
            .unwrap();
        assert!(d.explanation.cached);
        assert_eq!(d.decision, Verdict::Deny);
        assert_eq!(d.rule_id, "finding:test.session");
    }

    #[test]
    fn template_checks_run_on_cache_hits() {
        let svc = service(
            "id: p\ndomain: trading\nmode: permissive\ntemplates: [{name: size_guard, params: {limit: 5}}]\n",
        );
        let small = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"size": 1})))
            .unwrap();
        assert!(!small.explanation.cached);
        assert_eq!(small.decision, Verdict::Permit);
        // `size` is not read by the policy, so this is a hit; the check still sees it.
        let big = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"size": 9})))
            .unwrap();
        assert!(big.explanation.cached);
        assert_eq!(big.decision, Verdict::Deny);
        assert_eq!(big.rule_id, "finding:test.size");
        assert_eq!(big.reasoning, "size 9 above 5");
    }

    #[test]
    fn hit_and_miss_serialize_to_the_same_json_apart_from_ids_and_the_cached_flag() {
        let svc = service(DESK);
        let i = || {
            input(
                ALGO,
                ORDER,
                AAPL,
                json!({"order_value": 10, "noise": [1, 2]}),
            )
        };
        let miss = svc.decide(i()).unwrap();
        let hit = svc.decide(i()).unwrap();
        assert!(!miss.explanation.cached && hit.explanation.cached);
        let json = |d: &Decision, cached: &str| {
            let s = serde_json::to_string(d).unwrap();
            s.replace(&d.decision_id, "ID")
                .replace(&d.request_id, "RID")
                .replace(&d.timestamp.to_string(), "TS")
                .replace(cached, "CACHED")
        };
        assert_eq!(
            json(&miss, r#""cached":false"#),
            json(&hit, r#""cached":true"#)
        );
    }

    #[test]
    fn no_caching_for_explicit_time_time_dependent_plugins_stateful_templates_or_capacity_zero() {
        let i = || input(ALGO, ORDER, AAPL, json!({"order_value": 10}));
        let svc = service(DESK);
        let at = || {
            let mut x = i();
            x.at = Some(jiff::Timestamp::UNIX_EPOCH);
            x
        };
        svc.decide(at()).unwrap();
        assert!(!svc.decide(at()).unwrap().explanation.cached);

        let mut tp = TestPlugin::new("trading");
        tp.time_dependent = true;
        let svc = service_with(Arc::new(tp), DESK, 1000);
        svc.decide(i()).unwrap();
        assert!(!svc.decide(i()).unwrap().explanation.cached);

        let svc =
            service("id: p\ndomain: trading\nmode: permissive\ntemplates: [{name: burst_guard}]\n");
        svc.decide(i()).unwrap();
        assert!(!svc.decide(i()).unwrap().explanation.cached);

        let svc = service_with(plugin(), DESK, 0);
        svc.decide(i()).unwrap();
        assert!(!svc.decide(i()).unwrap().explanation.cached);
    }

    #[test]
    fn swapping_the_snapshot_invalidates_cached_decisions() {
        let p = plugin();
        let svc = service_with(Arc::clone(&p), DESK, 1000);
        let i = || input(ALGO, ORDER, AAPL, json!({"order_value": 10}));
        svc.decide(i()).unwrap();
        assert!(svc.decide(i()).unwrap().explanation.cached);
        svc.store()
            .rebuild(
                registry_with(p),
                vec![yaml_policy(
                    "id: lockdown\ndomain: trading\nrules: [{id: stop, effect: forbid}]\n",
                )],
            )
            .unwrap();
        let d = svc.decide(i()).unwrap();
        assert!(!d.explanation.cached);
        assert_eq!(d.decision, Verdict::Deny);
        assert_eq!(d.rule_id, "stop");
    }

    #[test]
    fn a_pinned_snapshot_decides_even_after_a_reload() {
        let p = plugin();
        let svc = service_with(Arc::clone(&p), DESK, 1000);
        let pinned = svc.store().load_full();
        svc.store()
            .rebuild(
                registry_with(p),
                vec![yaml_policy(
                    "id: lockdown\ndomain: trading\nrules: [{id: stop, effect: forbid}]\n",
                )],
            )
            .unwrap();
        let (on_pinned, _) = svc.decide_on(
            &pinned,
            input(ALGO, ORDER, AAPL, json!({"order_value": 10})),
        );
        assert_eq!(on_pinned.unwrap().decision, Verdict::Permit);
        let fresh = svc
            .decide(input(ALGO, ORDER, AAPL, json!({"order_value": 10})))
            .unwrap();
        assert_eq!(fresh.decision, Verdict::Deny);
    }
}
