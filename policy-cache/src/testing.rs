//! Test support: a small domain plugin with real types, templates and checks, and helpers to build
//! policies and inputs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lexecon_config::PolicyDocument;
use lexecon_domains::{
    DecisionOutcome, DomainConfig, DomainPlugin, DomainRegistry, Finding, FindingEffect, Request,
};
use serde_json::{json, Map, Value};

use crate::decision::DecisionInput;

#[derive(Debug)]
pub(crate) struct TestPlugin {
    pub config: DomainConfig,
    pub time_dependent: bool,
    pub decisions_seen: AtomicUsize,
    /// How many context fields the last `on_decision` saw.
    pub context_len_seen: AtomicUsize,
}

pub(crate) fn test_config(domain: &str) -> DomainConfig {
    serde_json::from_value(json!({
        "domain": domain,
        "display_name": "Test trading",
        "actor_types": [
            {"type_id": "act_trading_algo", "category": "ai", "label": "Algo"},
            {"type_id": "act_human_trader", "category": "human", "label": "Trader"}
        ],
        "action_types": [
            {"type_id": "axn_place_order", "category": "execute", "label": "Order", "risk_level": 4},
            {"type_id": "axn_read_quote", "category": "read", "label": "Quote", "risk_level": 1},
            {"type_id": "axn_cancel_order", "category": "write", "label": "Cancel", "risk_level": 2,
             "requires_human_approval": true}
        ],
        "resource_types": [
            {"type_id": "res_security", "category": "instrument", "label": "Security",
             "sensitivity": "internal"}
        ],
        "compliance_frameworks": ["MIFID_II"],
        "policy_templates": [
            {"name": "deny_by_default", "fallback": "deny"},
            {"name": "escalate_by_default", "fallback": "escalate"},
            {"name": "order_cap",
             "params": {"max": {"default": 1000}, "desk": {"default": "equities"}},
             "rules": [{"id": "cap", "effect": "escalate", "action": "axn_place_order",
                        "when": [{"field": "context.cap_value", "op": "gt", "value": "{{max}}"}],
                        "reason": "{{desk}} orders above {{max}} need approval"}]},
            {"name": "burst_guard", "params": {"limit": {"default": 3}}},
            {"name": "size_guard", "params": {"limit": {"default": 3}}}
        ]
    }))
    .unwrap()
}

impl TestPlugin {
    pub fn new(domain: &str) -> Self {
        Self {
            config: test_config(domain),
            time_dependent: false,
            decisions_seen: AtomicUsize::new(0),
            context_len_seen: AtomicUsize::new(0),
        }
    }
}

impl DomainPlugin for TestPlugin {
    fn config(&self) -> &DomainConfig {
        &self.config
    }

    fn enrich(&self, request: &mut Request) {
        let q = request.context.get("quantity").and_then(Value::as_f64);
        let p = request.context.get("price").and_then(Value::as_f64);
        if let (Some(q), Some(p)) = (q, p) {
            request.context.insert("order_value".into(), json!(q * p));
        }
    }

    fn validate(&self, request: &Request) -> Vec<Finding> {
        let mut findings = Vec::new();
        let ctx = &request.context;
        if ctx.get("venue_closed") == Some(&json!(true)) {
            findings.push(Finding::new(
                "test.session",
                FindingEffect::Deny,
                "venue is closed",
            ));
        }
        if ctx
            .get("order_value")
            .and_then(Value::as_f64)
            .is_some_and(|v| v > 10_000_000.0)
        {
            findings.push(Finding::new(
                "test.order_limit",
                FindingEffect::Escalate,
                "order value exceeds the 10000000 limit",
            ));
        }
        if ctx.contains_key("break_glass") {
            findings.push(Finding::new(
                "test.break_glass",
                FindingEffect::Review,
                "break-glass access",
            ));
        }
        findings
    }

    fn check_template(
        &self,
        name: &str,
        params: &Map<String, Value>,
        request: &Request,
    ) -> Option<Finding> {
        // `burst_guard` is declared stateful (never cached), `size_guard` is not.
        let (field, code) = match name {
            "burst_guard" => ("burst", "test.burst"),
            "size_guard" => ("size", "test.size"),
            _ => return None,
        };
        let limit = params.get("limit").and_then(Value::as_f64)?;
        let value = request.context.get(field).and_then(Value::as_f64)?;
        (value > limit).then(|| {
            Finding::new(
                code,
                FindingEffect::Deny,
                format!("{field} {value} above {limit}"),
            )
        })
    }

    fn template_is_stateful(&self, name: &str) -> bool {
        name == "burst_guard"
    }

    fn validate_is_time_dependent(&self) -> bool {
        self.time_dependent
    }

    fn on_decision(&self, request: &Request, _outcome: &DecisionOutcome<'_>) {
        self.decisions_seen.fetch_add(1, Ordering::Relaxed);
        self.context_len_seen
            .store(request.context.len(), Ordering::Relaxed);
    }
}

pub(crate) fn plugin() -> Arc<TestPlugin> {
    Arc::new(TestPlugin::new("trading"))
}

pub(crate) fn registry_with(plugin: Arc<TestPlugin>) -> DomainRegistry {
    let mut r = DomainRegistry::empty();
    r.register(plugin).unwrap();
    r
}

pub(crate) fn yaml_policy(yaml: &str) -> PolicyDocument {
    serde_norway::from_str(yaml).unwrap()
}

pub(crate) fn input(
    actor: &str,
    action: &str,
    resource: Option<&str>,
    ctx: Value,
) -> DecisionInput {
    DecisionInput {
        request_id: None,
        domain: "trading".into(),
        actor: actor.into(),
        action: action.into(),
        resource: resource.map(str::to_owned),
        context: ctx.as_object().cloned().unwrap_or_default(),
        at: None,
        provenance: Default::default(),
    }
}

pub(crate) fn request(actor: &str, action: &str, resource: Option<&str>, ctx: Value) -> Request {
    Request {
        domain: lexecon_domains::DomainId::new("trading").unwrap(),
        actor: lexecon_domains::EntityRef::parse(actor).unwrap(),
        action: lexecon_domains::EntityRef::parse(action).unwrap(),
        resource: resource.map(|r| lexecon_domains::EntityRef::parse(r).unwrap()),
        context: ctx.as_object().cloned().unwrap_or_default(),
        provenance: Default::default(),
        time: jiff::Timestamp::UNIX_EPOCH,
    }
}
