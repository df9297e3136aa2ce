//! The `ai` domain (always compiled): AI agents, LLMs and the tools they call.
//!
//! Owns the seed's AI actor/action/resource types, the legacy (Lexecon 1.x) un-prefixed names that
//! map onto them, and the templates `deny_by_default` and `high_risk_human_oversight`. It never reads a
//! clock, never does I/O and keeps no state.

use std::collections::BTreeMap;

use serde_json::json;

use crate::build::{action, actor, http_request_action, resource, risk_model};
use crate::error::DomainError;
use crate::ident::DomainId;
use crate::model::{
    ActionCategory, ActorCategory, DomainConfig, PolicyTemplate, Sensitivity, TemplateParam,
};
use crate::outcome::{Finding, FindingEffect, Verdict};
use crate::plugin::{number_param, DomainPlugin};
use crate::request::Request;

/// Template name: deny whatever no rule permits.
pub const DENY_BY_DEFAULT: &str = "deny_by_default";
/// Template name: escalate high-risk actions to a human.
pub const HIGH_RISK_HUMAN_OVERSIGHT: &str = "high_risk_human_oversight";

/// Lexecon 1.x actor names and the type each stands for.
const LEGACY_ACTORS: &[(&str, &str)] = &[
    ("model", "act_ai_agent"),
    ("agent", "act_ai_agent"),
    ("assistant", "act_ai_agent"),
    ("llm", "act_ai_agent"),
    ("user", "act_human_user"),
    ("human", "act_human_user"),
    ("operator", "act_human_user"),
    ("system", "act_system_service"),
    ("service", "act_system_service"),
];

/// Lexecon 1.x action names and the type each stands for.
const LEGACY_ACTIONS: &[(&str, &str)] = &[
    ("search", "axn_search"),
    ("web_search", "axn_search"),
    ("read", "axn_read_data"),
    ("read_data", "axn_read_data"),
    ("write", "axn_write_data"),
    ("write_data", "axn_write_data"),
    ("delete", "axn_delete_data"),
    ("delete_data", "axn_delete_data"),
    ("execute", "axn_execute_tool"),
    ("tool_call", "axn_execute_tool"),
    ("execute_tool", "axn_execute_tool"),
    ("execute_code", "axn_execute_code"),
    ("run_code", "axn_execute_code"),
    ("generate", "axn_generate_content"),
    ("send_email", "axn_send_message"),
    ("send_message", "axn_send_message"),
    ("call_api", "axn_call_api"),
    ("api_call", "axn_call_api"),
];

/// The `ai` domain plugin.
#[derive(Debug, Clone)]
pub struct AiPlugin {
    config: DomainConfig,
}

impl AiPlugin {
    pub fn new() -> Result<Self, DomainError> {
        Ok(Self { config: config()? })
    }
}

impl DomainPlugin for AiPlugin {
    fn config(&self) -> &DomainConfig {
        &self.config
    }

    fn check_template(
        &self,
        name: &str,
        params: &serde_json::Map<String, serde_json::Value>,
        request: &Request,
    ) -> Option<Finding> {
        if name != HIGH_RISK_HUMAN_OVERSIGHT {
            return None;
        }
        high_risk_oversight(self, params, request)
    }

    fn legacy_actor_type(&self, name: &str) -> Option<&str> {
        lookup(LEGACY_ACTORS, name)
    }

    fn legacy_action_type(&self, name: &str) -> Option<&str> {
        lookup(LEGACY_ACTIONS, name)
    }
}

fn lookup(table: &'static [(&'static str, &'static str)], name: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

/// Escalates an action whose type has `risk_level >= min_risk_level` or requires human approval.
/// Used by any plugin whose domain offers the template. An unknown action type or an invalid
/// parameter fails closed (deny finding).
pub(crate) fn high_risk_oversight(
    plugin: &dyn DomainPlugin,
    params: &serde_json::Map<String, serde_json::Value>,
    request: &Request,
) -> Option<Finding> {
    const CODE: &str = "ai.high_risk_human_oversight";
    let min = match number_param(params, "min_risk_level", 4.0) {
        Ok(n) => n,
        Err(reason) => return Some(Finding::new(CODE, FindingEffect::Deny, reason)),
    };
    let type_id = request.action.type_id();
    let Some(action) = plugin.resolve_action_type(type_id) else {
        return Some(Finding::new(
            CODE,
            FindingEffect::Deny,
            format!("action type {type_id} is not declared, so its risk cannot be assessed"),
        ));
    };
    let risk = action.risk_level.get();
    if action.requires_human_approval {
        Some(Finding::new(
            CODE,
            FindingEffect::Escalate,
            format!(
                "{} requires human approval (risk level {risk}); escalated for human oversight",
                action.type_id
            ),
        ))
    } else if f64::from(risk) >= min {
        Some(Finding::new(
            CODE,
            FindingEffect::Escalate,
            format!(
                "{} has risk level {risk}, at or above the oversight threshold {min}; escalated for human oversight",
                action.type_id
            ),
        ))
    } else {
        None
    }
}

fn config() -> Result<DomainConfig, DomainError> {
    use ActionCategory as A;
    use ActorCategory as C;
    let mut agent = actor(
        "act_ai_agent",
        C::Ai,
        "AI Agent",
        "Autonomous AI agent or LLM",
    );
    agent
        .metadata
        .insert("requires_human_oversight".into(), json!(true));
    Ok(DomainConfig {
        domain: DomainId::new("ai")?,
        display_name: "AI Governance".into(),
        description: "Governance for AI systems, LLMs and autonomous agents".into(),
        actor_types: vec![
            agent,
            actor(
                "act_human_user",
                C::Human,
                "Human User",
                "Human user interacting with AI",
            ),
            actor(
                "act_system_service",
                C::System,
                "System Service",
                "Backend system or service",
            ),
            actor(
                "act_mcp_client",
                C::Ai,
                "MCP Client",
                "An agent host calling tools over the Model Context Protocol",
            ),
        ],
        action_types: vec![
            action(
                "axn_execute_tool",
                A::Execute,
                "Execute Tool",
                "AI agent executing a tool or function",
                3,
                false,
            )?,
            action(
                "axn_read_data",
                A::Read,
                "Read Data",
                "Read sensitive data",
                2,
                false,
            )?,
            action(
                "axn_write_data",
                A::Write,
                "Write Data",
                "Modify or create data",
                3,
                false,
            )?,
            action(
                "axn_delete_data",
                A::Delete,
                "Delete Data",
                "Delete data permanently",
                4,
                true,
            )?,
            action(
                "axn_search",
                A::Read,
                "Search",
                "Search the web or an index",
                1,
                false,
            )?,
            action(
                "axn_generate_content",
                A::Write,
                "Generate Content",
                "Generate text, code or media for a user",
                2,
                false,
            )?,
            action(
                "axn_send_message",
                A::Transmit,
                "Send Message",
                "Send an e-mail or chat message on a user's behalf",
                3,
                false,
            )?,
            action(
                "axn_call_api",
                A::Transmit,
                "Call External API",
                "Call a third-party API",
                2,
                false,
            )?,
            action(
                "axn_execute_code",
                A::Execute,
                "Execute Code",
                "Run generated code in a sandbox or on a host",
                4,
                false,
            )?,
            http_request_action()?,
        ],
        resource_types: vec![
            resource(
                "res_database",
                "data",
                "Database",
                "Database system",
                Sensitivity::Confidential,
            ),
            resource(
                "res_api",
                "infrastructure",
                "API Endpoint",
                "External API",
                Sensitivity::Public,
            ),
            resource(
                "res_tool",
                "infrastructure",
                "Tool",
                "A tool an agent may call (MCP tool, function)",
                Sensitivity::Internal,
            ),
            resource(
                "res_file",
                "data",
                "File",
                "A file or document",
                Sensitivity::Internal,
            ),
            resource(
                "res_personal_data",
                "data",
                "Personal Data",
                "Data about an identified or identifiable person (GDPR Art. 4(1))",
                Sensitivity::Confidential,
            ),
            resource(
                "res_model",
                "model",
                "AI Model",
                "A model, its weights or configuration",
                Sensitivity::Confidential,
            ),
        ],
        compliance_frameworks: vec![
            "EU_AI_ACT".into(),
            "GDPR".into(),
            "SOC2".into(),
            "ISO_27001".into(),
        ],
        risk_models: vec![
            risk_model(
                "ai_safety",
                "Harm from autonomous actions",
                &[("action_risk_level", 0.5), ("autonomy", 0.5)],
            ),
            risk_model(
                "prompt_injection",
                "Untrusted input steering tool calls",
                &[("untrusted_input", 0.7), ("tool_privilege", 0.3)],
            ),
            risk_model(
                "data_leakage",
                "Sensitive data leaving its boundary",
                &[("sensitivity", 0.6), ("egress", 0.4)],
            ),
            risk_model(
                "model_bias",
                "Unfair outcomes for people",
                &[("impact_on_people", 1.0)],
            ),
        ],
        policy_templates: vec![
            PolicyTemplate {
                name: DENY_BY_DEFAULT.into(),
                description: "Deny all actions unless a rule explicitly permits them".into(),
                params: BTreeMap::new(),
                rules: vec![],
                fallback: Some(Verdict::Deny),
            },
            PolicyTemplate {
                name: HIGH_RISK_HUMAN_OVERSIGHT.into(),
                description: "Escalate actions of risk level >= min_risk_level, or flagged requires_human_approval, to a human (EU AI Act Art. 14)".into(),
                params: BTreeMap::from([(
                    "min_risk_level".to_string(),
                    TemplateParam {
                        description: "Lowest action risk level (1..=5) that needs human approval".into(),
                        default: json!(4),
                    },
                )]),
                rules: vec![],
                fallback: None,
            },
        ],
        constraints: BTreeMap::from([("human_oversight_min_risk_level".to_string(), json!(4))]),
        metadata: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::EntityRef;

    fn req(actor: &str, action: &str) -> Request {
        Request {
            domain: DomainId::new("ai").unwrap(),
            actor: EntityRef::parse(actor).unwrap(),
            action: EntityRef::parse(action).unwrap(),
            resource: None,
            context: Default::default(),
            provenance: Default::default(),
            time: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn params(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn deny_by_default_template_sets_deny_fallback_without_rules() {
        let p = AiPlugin::new().unwrap();
        let t = p.config().template(DENY_BY_DEFAULT).unwrap();
        assert_eq!(t.fallback, Some(Verdict::Deny));
        assert!(t.rules.is_empty());
        assert_eq!(
            p.check_template(
                DENY_BY_DEFAULT,
                &params(json!({})),
                &req("act_ai_agent:x", "axn_delete_data")
            ),
            None
        );
    }

    #[test]
    fn high_risk_action_is_escalated_and_low_risk_passes() {
        let p = AiPlugin::new().unwrap();
        let f = p
            .check_template(
                HIGH_RISK_HUMAN_OVERSIGHT,
                &params(json!({})),
                &req("act_ai_agent:x", "axn_execute_code"),
            )
            .unwrap();
        assert_eq!(f.effect, FindingEffect::Escalate);
        assert!(f.reason.contains("risk level 4"), "{}", f.reason);
        assert!(p
            .check_template(
                HIGH_RISK_HUMAN_OVERSIGHT,
                &params(json!({})),
                &req("act_ai_agent:x", "axn_execute_tool"),
            )
            .is_none());
    }

    #[test]
    fn oversight_threshold_is_a_parameter_and_approval_flag_always_escalates() {
        let p = AiPlugin::new().unwrap();
        let low = params(json!({"min_risk_level": 3}));
        assert_eq!(
            p.check_template(
                HIGH_RISK_HUMAN_OVERSIGHT,
                &low,
                &req("act_ai_agent:x", "axn_execute_tool")
            )
            .unwrap()
            .effect,
            FindingEffect::Escalate
        );
        let high = params(json!({"min_risk_level": 5}));
        let f = p
            .check_template(
                HIGH_RISK_HUMAN_OVERSIGHT,
                &high,
                &req("act_ai_agent:x", "axn_delete_data"),
            )
            .unwrap();
        assert!(f.reason.contains("requires human approval"), "{}", f.reason);
        let bad = params(json!({"min_risk_level": "high"}));
        assert_eq!(
            p.check_template(
                HIGH_RISK_HUMAN_OVERSIGHT,
                &bad,
                &req("act_ai_agent:x", "axn_search")
            )
            .unwrap()
            .effect,
            FindingEffect::Deny
        );
    }

    #[test]
    fn legacy_names_resolve_to_declared_types() {
        let p = AiPlugin::new().unwrap();
        assert_eq!(
            p.resolve_actor_type("model").unwrap().type_id,
            "act_ai_agent"
        );
        assert_eq!(
            p.resolve_actor_type("user").unwrap().type_id,
            "act_human_user"
        );
        assert_eq!(
            p.resolve_action_type("search").unwrap().type_id,
            "axn_search"
        );
        assert_eq!(
            p.resolve_action_type("delete").unwrap().type_id,
            "axn_delete_data"
        );
        assert!(p.resolve_actor_type("wizard").is_none());
        let f = p
            .check_template(
                HIGH_RISK_HUMAN_OVERSIGHT,
                &params(json!({})),
                &req("model", "delete"),
            )
            .unwrap();
        assert_eq!(f.effect, FindingEffect::Escalate);
    }

    #[test]
    fn every_legacy_name_points_at_a_declared_type() {
        let p = AiPlugin::new().unwrap();
        for (name, id) in LEGACY_ACTORS {
            assert!(p.config().actor_type(id).is_some(), "{name} -> {id}");
        }
        for (name, id) in LEGACY_ACTIONS {
            assert!(p.config().action_type(id).is_some(), "{name} -> {id}");
        }
    }
}
