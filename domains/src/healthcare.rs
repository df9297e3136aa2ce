//! The `healthcare` domain (feature `healthcare`): clinical decision support, PHI and FHIR access.
//!
//! Owns the seed's healthcare types plus `res_phi` and `res_fhir`, and two constraints that hold
//! whatever a policy says: PHI access needs `patient_consent: true` or a recognised break-glass reason
//! (which permits but marks the decision for review), and treatment recommendations and prescriptions
//! need a `physician_id` (human oversight). It never reads a clock, does no I/O and keeps no state.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::build::{action, actor, http_request_action, resource, risk_model};
use crate::error::DomainError;
use crate::ident::DomainId;
use crate::model::{
    ActionCategory, ActorCategory, DomainConfig, PolicyTemplate, Sensitivity, TemplateParam,
};
use crate::outcome::{Finding, FindingEffect};
use crate::plugin::DomainPlugin;
use crate::request::Request;

pub use crate::settings::HealthcareSettings;

/// Actions that access PHI whatever their resource.
const PHI_ACTIONS: &[&str] = &[
    "axn_access_phi",
    "axn_share_phi",
    "axn_update_phi",
    "axn_delete_phi",
    "axn_export_phi",
];

/// Actions that need a responsible physician.
const CLINICAL_ACTIONS: &[&str] = &["axn_recommend_treatment", "axn_prescribe_medication"];

/// The `healthcare` domain plugin.
#[derive(Debug, Clone)]
pub struct HealthcarePlugin {
    config: DomainConfig,
    /// Upper-cased accepted break-glass reason codes.
    break_glass_reasons: Vec<String>,
}

impl HealthcarePlugin {
    /// The plugin with default settings.
    pub fn new() -> Result<Self, DomainError> {
        Self::with_settings(HealthcareSettings::default())
    }

    /// The plugin with the configured break-glass reasons (validated first).
    pub fn with_settings(settings: HealthcareSettings) -> Result<Self, DomainError> {
        settings.validate()?;
        let reasons: Vec<String> = settings
            .break_glass_reasons
            .iter()
            .map(|r| r.to_ascii_uppercase())
            .collect();
        Ok(Self {
            config: config(&reasons)?,
            break_glass_reasons: reasons,
        })
    }
}

impl DomainPlugin for HealthcarePlugin {
    fn config(&self) -> &DomainConfig {
        &self.config
    }

    fn validate(&self, request: &Request) -> Vec<Finding> {
        let mut findings = Vec::new();
        let action = request.action.type_id();
        let on_phi = request
            .resource
            .as_ref()
            .is_some_and(|r| r.type_id() == "res_phi");
        if on_phi || PHI_ACTIONS.contains(&action) {
            if let Some(f) = consent_finding(request, &self.break_glass_reasons) {
                findings.push(f);
            }
        }
        if CLINICAL_ACTIONS.contains(&action) {
            let has_physician = request
                .context
                .get("physician_id")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.trim().is_empty());
            if !has_physician {
                findings.push(Finding::new(
                    "healthcare.physician_oversight",
                    FindingEffect::Escalate,
                    format!(
                        "{action} needs a responsible physician (context.physician_id is missing or empty); escalated for human oversight"
                    ),
                ));
            }
        }
        findings
    }
}

/// `None` when consent is given; a `Review` finding for a recognised break-glass; else `Deny`.
fn consent_finding(request: &Request, reasons: &[String]) -> Option<Finding> {
    if request.context.get("patient_consent") == Some(&Value::Bool(true)) {
        return None;
    }
    match request.context.get("break_glass") {
        Some(Value::String(reason))
            if reasons
                .iter()
                .any(|r| r.eq_ignore_ascii_case(reason.trim())) =>
        {
            Some(Finding::new(
                "healthcare.break_glass",
                FindingEffect::Review,
                format!(
                    "PHI accessed without patient consent under break-glass reason {}; marked for privacy review",
                    reason.trim().to_ascii_uppercase()
                ),
            ))
        }
        Some(other) => Some(Finding::new(
            "healthcare.patient_consent",
            FindingEffect::Deny,
            format!(
                "patient consent is missing and break_glass {other} is not a recognised reason (expected one of {})",
                reasons.join(", ")
            ),
        )),
        None => Some(Finding::new(
            "healthcare.patient_consent",
            FindingEffect::Deny,
            missing_consent_reason(&request.context),
        )),
    }
}

/// Why consent is missing, naming the Consent provision that denied or the failed lookup when
/// the consent lookup says so (`consent_id`, `consent_provision`, `consent_error`).
fn missing_consent_reason(context: &serde_json::Map<String, Value>) -> String {
    const NEEDS: &str =
        "PHI access needs context.patient_consent = true or a break_glass reason (HIPAA 164.508)";
    let text = |key: &str| context.get(key).and_then(Value::as_str);
    match (
        text("consent_id"),
        text("consent_provision"),
        text("consent_error"),
    ) {
        (Some(id), Some(provision), _) => format!(
            "patient consent is missing: {id} ({provision}) does not permit this access; {NEEDS}"
        ),
        (_, _, Some(error)) => format!("patient consent is missing: {error}; {NEEDS}"),
        _ => format!("patient consent is missing: {NEEDS}"),
    }
}

fn config(break_glass_reasons: &[String]) -> Result<DomainConfig, DomainError> {
    use ActionCategory as A;
    use ActorCategory as C;
    use Sensitivity as S;
    let mut cdss = actor(
        "act_cdss",
        C::Ai,
        "Clinical Decision Support System",
        "AI system for medical diagnosis or treatment",
    );
    cdss.metadata
        .insert("requires_physician_oversight".into(), json!(true));
    let mut physician = actor(
        "act_physician",
        C::Human,
        "Physician",
        "Licensed medical doctor",
    );
    physician
        .metadata
        .insert("license_required".into(), json!(true));
    let mut access_phi = action(
        "axn_access_phi",
        A::Read,
        "Access PHI",
        "Access protected health information",
        4,
        false,
    )?;
    access_phi
        .metadata
        .insert("requires_patient_consent".into(), json!(true));
    Ok(DomainConfig {
        domain: DomainId::new("healthcare")?,
        display_name: "Healthcare Governance".into(),
        description: "Governance for clinical decision support, PHI access and medical AI".into(),
        actor_types: vec![
            cdss,
            physician,
            actor("act_nurse", C::Human, "Nurse", "Registered nurse"),
            actor("act_pharmacist", C::Human, "Pharmacist", "Licensed pharmacist"),
            actor(
                "act_ehr_system",
                C::System,
                "EHR System",
                "Electronic health record system or FHIR server client",
            ),
            actor(
                "act_medical_device",
                C::Robot,
                "Medical Device",
                "Connected or software medical device (SaMD)",
            ),
            actor(
                "act_patient",
                C::Human,
                "Patient",
                "Patient using a portal or app",
            ),
        ],
        action_types: vec![
            access_phi,
            action(
                "axn_share_phi",
                A::Transmit,
                "Share PHI",
                "Disclose PHI to another party",
                5,
                false,
            )?,
            action(
                "axn_update_record",
                A::Write,
                "Update Health Record",
                "Create or amend an entry in a health record",
                4,
                false,
            )?,
            action(
                "axn_update_phi",
                A::Write,
                "Create or Update PHI",
                "Create, update or patch a patient-compartment FHIR resource",
                4,
                false,
            )?,
            action(
                "axn_delete_phi",
                A::Delete,
                "Delete PHI",
                "Delete a patient-compartment FHIR resource",
                5,
                true,
            )?,
            action(
                "axn_export_phi",
                A::Read,
                "Export PHI in Bulk",
                "Read PHI in bulk: a patient's whole record (FHIR $everything) or many patients' (FHIR $export)",
                5,
                true,
            )?,
            action(
                "axn_read_metadata",
                A::Read,
                "Read Server Metadata",
                "Read a FHIR server's CapabilityStatement (no patient data)",
                1,
                false,
            )?,
            action(
                "axn_recommend_treatment",
                A::Execute,
                "Recommend Treatment",
                "AI recommending medical treatment",
                5,
                true,
            )?,
            action(
                "axn_prescribe_medication",
                A::Execute,
                "Prescribe Medication",
                "Generate prescription",
                5,
                true,
            )?,
            action(
                "axn_order_lab_test",
                A::Execute,
                "Order Lab Test",
                "Order a laboratory test",
                3,
                false,
            )?,
            action(
                "axn_read_guideline",
                A::Read,
                "Read Clinical Guideline",
                "Read non-patient reference material",
                1,
                false,
            )?,
            http_request_action()?,
        ],
        resource_types: vec![
            resource(
                "res_phi",
                "data",
                "Protected Health Information",
                "Individually identifiable health information (45 CFR 160.103)",
                S::Secret,
            ),
            resource(
                "res_fhir",
                "data",
                "FHIR Resource",
                "An HL7 FHIR resource (Patient/123, Observation/9)",
                S::Confidential,
            ),
            resource(
                "res_ehr",
                "data",
                "Electronic Health Record",
                "A patient's record in the EHR",
                S::Secret,
            ),
            resource(
                "res_prescription",
                "clinical_order",
                "Prescription",
                "A medication order",
                S::Confidential,
            ),
            resource(
                "res_lab_result",
                "data",
                "Lab Result",
                "A laboratory result",
                S::Confidential,
            ),
            resource(
                "res_clinical_guideline",
                "reference",
                "Clinical Guideline",
                "Published clinical guidance",
                S::Public,
            ),
        ],
        compliance_frameworks: vec![
            "HIPAA".into(),
            "FDA_21_CFR_PART_11".into(),
            "GDPR".into(),
            "ISO_13485".into(),
        ],
        risk_models: vec![
            risk_model(
                "medical_malpractice",
                "Harm from clinical actions without oversight",
                &[("action_risk_level", 0.6), ("physician_involved", 0.4)],
            ),
            risk_model(
                "phi_breach",
                "Unauthorised PHI disclosure",
                &[("sensitivity", 0.5), ("consent", 0.5)],
            ),
            risk_model("diagnostic_error", "Wrong AI diagnosis", &[("model_confidence", 1.0)]),
            risk_model("treatment_harm", "Adverse treatment", &[("drug_interaction", 1.0)]),
        ],
        policy_templates: vec![PolicyTemplate {
            name: "hipaa_minimum_necessary".into(),
            description: "HIPAA minimum necessary: PHI only for a stated treatment, payment or operations purpose".into(),
            params: BTreeMap::from([(
                "allowed_purposes".to_string(),
                TemplateParam {
                    description: "Purposes of use that justify PHI access".into(),
                    default: json!(["TREAT", "ETREAT", "HPAYMT", "HOPERAT"]),
                },
            )]),
            rules: vec![
                json!({
                    "id": "phi-without-purpose-forbidden",
                    "effect": "forbid",
                    "resource": "res_phi:*",
                    "when": [{"field": "context.purpose_of_use", "op": "not_in", "value": "{{allowed_purposes}}"}],
                    "reason": "PHI access needs a purpose of use that satisfies the minimum necessary standard (45 CFR 164.502(b))"
                }),
                json!({
                    "id": "phi-with-purpose-permitted",
                    "effect": "permit",
                    "resource": "res_phi:*",
                    "when": [{"field": "context.purpose_of_use", "op": "in", "value": "{{allowed_purposes}}"}],
                    "reason": "PHI access for a permitted purpose of use"
                }),
            ],
            fallback: None,
        }],
        constraints: BTreeMap::from([
            ("phi_requires_patient_consent".to_string(), json!(true)),
            ("clinical_actions_require_physician".to_string(), json!(true)),
            ("break_glass_reasons".to_string(), json!(break_glass_reasons)),
        ]),
        metadata: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::EntityRef;

    fn req(action: &str, resource: Option<&str>, context: Value) -> Request {
        Request {
            domain: DomainId::new("healthcare").unwrap(),
            actor: EntityRef::parse("act_cdss:sepsis_model").unwrap(),
            action: EntityRef::parse(action).unwrap(),
            resource: resource.map(|r| EntityRef::parse(r).unwrap()),
            context: context.as_object().cloned().unwrap(),
            provenance: Default::default(),
            time: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn phi_access_without_consent_is_denied_saying_consent_is_missing() {
        let p = HealthcarePlugin::new().unwrap();
        let f = p.validate(&req(
            "axn_access_phi",
            Some("res_phi:Patient/123"),
            json!({}),
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].effect, FindingEffect::Deny);
        assert!(
            f[0].reason.contains("consent is missing"),
            "{}",
            f[0].reason
        );
        let f = p.validate(&req(
            "axn_update_record",
            Some("res_phi:Patient/123"),
            json!({"patient_consent": "yes"}),
        ));
        assert_eq!(
            f[0].effect,
            FindingEffect::Deny,
            "a non-boolean consent does not count"
        );
    }

    #[test]
    fn a_looked_up_denial_names_the_consent_provision_or_the_failed_lookup() {
        let p = HealthcarePlugin::new().unwrap();
        let f = p.validate(&req(
            "axn_access_phi",
            Some("res_phi:MedicationRequest/1"),
            json!({"patient_consent": false, "consent_id": "Consent/c-1", "consent_provision": "provision.provision[0]"}),
        ));
        assert!(
            f[0].reason.starts_with(
                "patient consent is missing: Consent/c-1 (provision.provision[0]) does not permit this access"
            ),
            "{}",
            f[0].reason
        );
        let f = p.validate(&req(
            "axn_access_phi",
            Some("res_phi:Patient/1"),
            json!({"patient_consent": false, "consent_error": "the consent lookup took longer than 2s"}),
        ));
        assert!(
            f[0].reason
                .contains("missing: the consent lookup took longer than 2s;"),
            "{}",
            f[0].reason
        );
    }

    #[test]
    fn phi_access_with_consent_passes() {
        let p = HealthcarePlugin::new().unwrap();
        let f = p.validate(&req(
            "axn_access_phi",
            Some("res_phi:Patient/123"),
            json!({"patient_consent": true}),
        ));
        assert!(f.is_empty(), "{f:?}");
        let f = p.validate(&req(
            "axn_read_guideline",
            Some("res_clinical_guideline:sepsis"),
            json!({}),
        ));
        assert!(f.is_empty(), "non-PHI access needs no consent");
    }

    #[test]
    fn break_glass_with_recognised_reason_permits_with_review_finding() {
        let p = HealthcarePlugin::new().unwrap();
        let f = p.validate(&req(
            "axn_access_phi",
            Some("res_phi:Patient/123"),
            json!({"break_glass": "etreat"}),
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].effect, FindingEffect::Review);
        assert!(f[0].reason.contains("ETREAT"), "{}", f[0].reason);
        let f = p.validate(&req(
            "axn_access_phi",
            None,
            json!({"break_glass": "curiosity"}),
        ));
        assert_eq!(f[0].effect, FindingEffect::Deny);
        assert!(
            f[0].reason.contains("not a recognised reason"),
            "{}",
            f[0].reason
        );
    }

    #[test]
    fn break_glass_reasons_are_configurable() {
        let p = HealthcarePlugin::with_settings(HealthcareSettings {
            break_glass_reasons: vec!["code_blue".into()],
        })
        .unwrap();
        let f = p.validate(&req(
            "axn_access_phi",
            None,
            json!({"break_glass": "CODE_BLUE"}),
        ));
        assert_eq!(f[0].effect, FindingEffect::Review);
        let f = p.validate(&req(
            "axn_access_phi",
            None,
            json!({"break_glass": "ETREAT"}),
        ));
        assert_eq!(f[0].effect, FindingEffect::Deny);
    }

    #[test]
    fn prescription_without_physician_escalates_for_oversight() {
        let p = HealthcarePlugin::new().unwrap();
        for action in CLINICAL_ACTIONS {
            let f = p.validate(&req(
                action,
                Some("res_prescription:rx1"),
                json!({"physician_id": "  "}),
            ));
            assert_eq!(f.len(), 1, "{action}");
            assert_eq!(f[0].effect, FindingEffect::Escalate);
            assert!(f[0].reason.contains("physician_id"), "{}", f[0].reason);
        }
        let f = p.validate(&req(
            "axn_prescribe_medication",
            Some("res_prescription:rx1"),
            json!({"physician_id": "dr_house"}),
        ));
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn bulk_phi_export_is_a_high_risk_read_that_needs_consent() {
        let p = HealthcarePlugin::new().unwrap();
        let export = p.config().action_type("axn_export_phi").unwrap();
        assert_eq!(export.category, ActionCategory::Read);
        assert_eq!(export.risk_level.get(), 5);
        assert!(export.requires_human_approval);
        let f = p.validate(&req("axn_export_phi", Some("res_fhir:_system"), json!({})));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].effect, FindingEffect::Deny, "bulk PHI needs consent");
        let f = p.validate(&req(
            "axn_export_phi",
            Some("res_phi:Patient/1"),
            json!({"patient_consent": true}),
        ));
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn healthcare_declares_phi_secret_and_fhir_confidential() {
        let p = HealthcarePlugin::new().unwrap();
        let c = p.config();
        assert_eq!(
            c.resource_type("res_phi").unwrap().sensitivity,
            Sensitivity::Secret
        );
        assert_eq!(
            c.resource_type("res_fhir").unwrap().sensitivity,
            Sensitivity::Confidential
        );
        for f in ["HIPAA", "FDA_21_CFR_PART_11", "ISO_13485", "GDPR"] {
            assert!(c.compliance_frameworks.iter().any(|x| x == f), "{f}");
        }
    }
}
