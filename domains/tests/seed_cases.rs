//! The seed's cases at the domain layer, through the registry as the decision pipeline calls it:
//! type check → enrich → validate → templates → compliance mapping → post-decision hook.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers build fixed, known-good fixtures"
)]

use lexecon_domains::{
    ComplianceStatus, DecisionOutcome, DomainError, DomainId, DomainRegistry, EntityRef, Finding,
    FindingEffect, Request, Verdict,
};
use serde_json::json;

fn request(
    domain: &str,
    actor: &str,
    action: &str,
    resource: &str,
    ctx: serde_json::Value,
) -> Request {
    Request {
        domain: DomainId::new(domain).unwrap(),
        actor: EntityRef::parse(actor).unwrap(),
        action: EntityRef::parse(action).unwrap(),
        resource: Some(EntityRef::parse(resource).unwrap()),
        context: ctx.as_object().cloned().unwrap(),
        // Tuesday 2026-11-24, 10:00 New York.
        provenance: Default::default(),
        time: "2026-11-24T15:00:00Z".parse().unwrap(),
    }
}

/// The strictest finding decides here (the real combination lives in lexecon-policy-cache).
fn verdict_of(findings: &[Finding]) -> Verdict {
    match findings.iter().map(|f| f.effect).max() {
        Some(FindingEffect::Deny) => Verdict::Deny,
        Some(FindingEffect::Escalate) => Verdict::Escalate,
        _ => Verdict::Permit,
    }
}

fn run(
    registry: &DomainRegistry,
    mut req: Request,
) -> (
    Verdict,
    Vec<Finding>,
    Vec<lexecon_domains::ComplianceMapping>,
) {
    registry.check_types(&req).unwrap();
    let plugin = registry.get(req.domain.as_str()).unwrap();
    plugin.enrich(&mut req);
    let findings = plugin.validate(&req);
    let verdict = verdict_of(&findings);
    let outcome = DecisionOutcome {
        verdict,
        findings: &findings,
        dry_run: false,
    };
    let mappings = plugin.compliance(outcome.compliance_outcome());
    plugin.on_decision(&req, &outcome);
    (verdict, findings, mappings)
}

#[cfg(feature = "finance")]
#[test]
fn half_million_order_is_permitted_and_maps_to_mifid_ii() {
    let r = DomainRegistry::builtin().unwrap();
    let (verdict, findings, mappings) = run(
        &r,
        request(
            "finance",
            "act_trading_algo:momentum_v3",
            "axn_place_order",
            "res_security:AAPL",
            json!({"quantity": 2500, "limit_price": 200}),
        ),
    );
    assert_eq!(verdict, Verdict::Permit, "{findings:?}");
    let mifid = mappings.iter().find(|m| m.framework == "MIFID_II").unwrap();
    assert!(mifid.controls.iter().any(|c| c == "RTS 6 Art. 15"));
    assert_eq!(mifid.status, ComplianceStatus::Compliant);
}

#[cfg(feature = "finance")]
#[test]
fn twenty_million_order_is_escalated_saying_the_limit() {
    let r = DomainRegistry::builtin().unwrap();
    let (verdict, findings, _) = run(
        &r,
        request(
            "finance",
            "act_trading_algo:momentum_v3",
            "axn_place_order",
            "res_security:AAPL",
            json!({"order_value": 20_000_000}),
        ),
    );
    assert_eq!(verdict, Verdict::Escalate);
    assert!(
        findings[0].reason.contains("limit of 10,000,000"),
        "{}",
        findings[0].reason
    );
}

#[test]
fn ai_decision_maps_to_eu_ai_act_alongside_finance() {
    let r = DomainRegistry::builtin().unwrap();
    let (verdict, _, mappings) = run(
        &r,
        request("ai", "model", "search", "res_api:web", json!({})),
    );
    assert_eq!(verdict, Verdict::Permit);
    let frameworks: Vec<&str> = mappings.iter().map(|m| m.framework.as_ref()).collect();
    assert_eq!(frameworks, ["EU_AI_ACT", "GDPR", "SOC2", "ISO_27001"]);
    assert!(mappings[0].controls.iter().any(|c| c == "Art. 12"));
}

#[cfg(feature = "healthcare")]
#[test]
fn phi_without_consent_is_denied_and_prescription_without_physician_is_not_permitted() {
    let r = DomainRegistry::builtin().unwrap();
    let (verdict, _, mappings) = run(
        &r,
        request(
            "healthcare",
            "act_cdss:triage",
            "axn_access_phi",
            "res_phi:Patient/123",
            json!({}),
        ),
    );
    assert_eq!(verdict, Verdict::Deny);
    let hipaa = mappings.iter().find(|m| m.framework == "HIPAA").unwrap();
    assert_eq!(hipaa.status, ComplianceStatus::ViolationPrevented);
    assert!(hipaa.controls.iter().any(|c| c == "164.312(b)"));
    let (verdict, _, _) = run(
        &r,
        request(
            "healthcare",
            "act_cdss:triage",
            "axn_prescribe_medication",
            "res_prescription:rx1",
            json!({}),
        ),
    );
    assert_ne!(verdict, Verdict::Permit);
}

#[test]
fn pack_domain_decision_maps_its_frameworks() {
    let r = DomainRegistry::builtin().unwrap();
    let (verdict, _, mappings) = run(
        &r,
        request(
            "energy",
            "act_grid_operator:ann",
            "axn_read_telemetry",
            "res_substation:north",
            json!({}),
        ),
    );
    assert_eq!(verdict, Verdict::Permit);
    let cip = mappings.iter().find(|m| m.framework == "NERC_CIP").unwrap();
    assert!(cip.controls.iter().any(|c| c == "CIP-004-7 R4"));
    assert_eq!(cip.status, ComplianceStatus::Compliant);
}

#[test]
fn unknown_type_is_rejected_before_any_plugin_runs() {
    let r = DomainRegistry::builtin().unwrap();
    let err = r
        .check_types(&request(
            "defense",
            "act_spy:x",
            "axn_plan_mission",
            "res_mission_plan:m1",
            json!({}),
        ))
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::UnknownActorType {
            domain: "defense".into(),
            type_id: "act_spy".into()
        }
    );
}
