//! Test fixtures: the seed's ai, finance and healthcare domain declarations as `DomainConfig`s, so the
//! config crate's tests do not depend on the built-in plugins.

use lexecon_domains::DomainConfig;

#[expect(
    clippy::unwrap_used,
    reason = "fixtures are constants; a broken one should fail the test loudly"
)]
fn config(yaml: &str) -> DomainConfig {
    serde_norway::from_str(yaml).unwrap()
}

pub fn ai() -> DomainConfig {
    config(
        r#"
domain: ai
display_name: AI Governance
actor_types:
  - {type_id: act_ai_agent, category: ai, label: AI Agent}
  - {type_id: act_human_user, category: human, label: Human User}
  - {type_id: act_system_service, category: system, label: System Service}
action_types:
  - {type_id: axn_execute_tool, category: execute, label: Execute Tool, risk_level: 3}
  - {type_id: axn_read_data, category: read, label: Read Data, risk_level: 2}
  - {type_id: axn_write_data, category: write, label: Write Data, risk_level: 3}
  - {type_id: axn_delete_data, category: delete, label: Delete Data, risk_level: 4, requires_human_approval: true}
resource_types:
  - {type_id: res_database, category: data, label: Database, sensitivity: confidential}
  - {type_id: res_api, category: infrastructure, label: API Endpoint, sensitivity: public}
compliance_frameworks: [EU_AI_ACT, GDPR, SOC2, ISO_27001]
policy_templates:
  - {name: deny_by_default, fallback: deny}
  - {name: high_risk_human_oversight, params: {min_risk_level: {default: 4}}}
"#,
    )
}

pub fn finance() -> DomainConfig {
    config(
        r#"
domain: finance
display_name: Financial Services
actor_types:
  - {type_id: act_trading_algo, category: ai, label: Trading Algorithm}
  - {type_id: act_portfolio_manager, category: human, label: Portfolio Manager}
  - {type_id: act_risk_system, category: system, label: Risk System}
action_types:
  - {type_id: axn_place_order, category: execute, label: Place Order, risk_level: 3}
  - {type_id: axn_cancel_order, category: delete, label: Cancel Order, risk_level: 2}
  - {type_id: axn_rebalance_portfolio, category: execute, label: Rebalance Portfolio, risk_level: 4, requires_human_approval: true}
resource_types:
  - {type_id: res_security, category: financial_instrument, label: Security, sensitivity: confidential}
  - {type_id: res_account, category: financial_account, label: Trading Account, sensitivity: secret}
compliance_frameworks: [MIFID_II, SEC_RULE_613, DODD_FRANK, BASEL_III]
policy_templates:
  - name: prevent_flash_crash
    params: {max_notional_per_minute: {default: 10000000}}
    rules:
      - id: flash-crash-guard
        effect: escalate
        action: axn_place_order
        when: [{field: context.order_value, op: gt, value: "{{max_notional_per_minute}}"}]
        reason: "single orders above {{max_notional_per_minute}} need a human"
  - name: position_limits
    params: {max_position_pct: {default: 5.0}}
"#,
    )
}

pub fn healthcare() -> DomainConfig {
    config(
        r#"
domain: healthcare
display_name: Healthcare
actor_types:
  - {type_id: act_cdss, category: ai, label: Clinical Decision Support System}
  - {type_id: act_physician, category: human, label: Physician}
action_types:
  - {type_id: axn_access_phi, category: read, label: Access PHI, risk_level: 4}
  - {type_id: axn_recommend_treatment, category: execute, label: Recommend Treatment, risk_level: 5, requires_human_approval: true}
  - {type_id: axn_prescribe_medication, category: execute, label: Prescribe Medication, risk_level: 5, requires_human_approval: true}
resource_types:
  - {type_id: res_phi, category: data, label: PHI, sensitivity: secret}
  - {type_id: res_fhir, category: data, label: FHIR resource, sensitivity: confidential}
compliance_frameworks: [HIPAA, FDA_21_CFR_PART_11, GDPR, ISO_13485]
policy_templates:
  - name: hipaa_minimum_necessary
    params: {allowed_purposes: {default: [TREAT, ETREAT, HPAYMT, HOPERAT]}}
    rules:
      - id: phi-without-purpose-forbidden
        effect: forbid
        resource: "res_phi:*"
        when: [{field: context.purpose_of_use, op: not_in, value: "{{allowed_purposes}}"}]
"#,
    )
}
