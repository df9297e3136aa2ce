//! Tests of the FHIR classifier.

use super::*;
use lexecon_config::classifier::ClassifierConfig;
use serde_json::json;

fn fhir(yaml: &str) -> FhirClassifier {
    match serde_norway::from_str::<ClassifierConfig>(yaml).unwrap() {
        ClassifierConfig::Fhir(f) => f,
        other => panic!("not fhir: {other:?}"),
    }
}

fn run_with(
    config: &FhirClassifier,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &[(&'static str, &str)],
) -> Result<ClassifiedItem, ClassifyError> {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(*name, http::HeaderValue::from_str(value).unwrap());
    }
    let parts = RequestParts {
        method,
        path,
        query,
        headers: &map,
    };
    classify(config, &parts, None).map(|mut c| c.items.remove(0))
}

pub(super) fn run(
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &[(&'static str, &str)],
) -> Result<ClassifiedItem, ClassifyError> {
    run_with(
        &fhir("kind: fhir\nbase_path: /fhir"),
        method,
        path,
        query,
        headers,
    )
}

#[test]
fn every_default_fhir_action_is_declared_by_the_healthcare_domain() {
    let registry = lexecon_domains::DomainRegistry::builtin().unwrap();
    let healthcare = registry.get("healthcare").unwrap().config();
    for interaction in Interaction::ALL {
        for resource_type in ["Patient", "MedicationRequest", "Observation"] {
            let action = default_action(resource_type, interaction);
            assert!(
                healthcare.action_type(action).is_some(),
                "{action} ({resource_type} {interaction:?}) is not a healthcare action type"
            );
        }
    }
}

#[test]
fn patient_read_is_phi_access_with_consent_and_purpose_from_headers() {
    let item = run(
        "GET",
        "/fhir/Patient/123",
        None,
        &[
            ("x-patient-consent", "true"),
            ("x-purpose-of-use", "TREAT"),
            ("x-physician-id", "dr-9"),
        ],
    )
    .unwrap();
    assert_eq!(item.action, "axn_access_phi");
    assert_eq!(item.resource.as_deref(), Some("res_phi:Patient/123"));
    assert_eq!(item.context["interaction"], json!("read"));
    assert_eq!(item.context["resource_type"], json!("Patient"));
    assert_eq!(item.context["id"], json!("123"));
    assert_eq!(item.context["patient_id"], json!("123"));
    assert_eq!(item.context["patient_consent"], json!(true));
    assert_eq!(item.context["purpose_of_use"], json!("TREAT"));
    assert_eq!(item.context["physician_id"], json!("dr-9"));
    assert_eq!(item.context["smart_scope"], json!("Patient.r"));
}

#[test]
fn read_without_consent_header_has_no_consent_in_context() {
    let item = run("GET", "/fhir/Patient/123", None, &[]).unwrap();
    assert!(!item.context.contains_key("patient_consent"));
}

#[test]
fn unrecognised_consent_value_is_malformed() {
    let err = run(
        "GET",
        "/fhir/Patient/1",
        None,
        &[("x-patient-consent", "maybe")],
    )
    .unwrap_err();
    assert!(
        matches!(err, ClassifyError::Malformed(m) if m.contains("x-patient-consent must be true or false"))
    );
}

#[test]
fn medication_request_create_is_prescribing() {
    let item = run("POST", "/fhir/MedicationRequest", None, &[]).unwrap();
    assert_eq!(item.action, "axn_prescribe_medication");
    assert_eq!(item.resource.as_deref(), Some("res_phi:MedicationRequest"));
    assert_eq!(item.context["interaction"], json!("create"));
    assert_eq!(item.context["smart_scope"], json!("MedicationRequest.c"));
}

#[test]
fn each_interaction_is_recognised() {
    for (method, path, query, interaction, action) in [
        (
            "GET",
            "/fhir/Observation/o1/_history/2",
            None,
            "vread",
            "axn_access_phi",
        ),
        (
            "GET",
            "/fhir/Observation",
            Some("patient=Patient/7&code=1234-5"),
            "search-type",
            "axn_access_phi",
        ),
        (
            "POST",
            "/fhir/Observation/_search",
            None,
            "search-type",
            "axn_access_phi",
        ),
        (
            "PUT",
            "/fhir/Observation/o1",
            None,
            "update",
            "axn_update_phi",
        ),
        (
            "PATCH",
            "/fhir/Observation/o1",
            None,
            "patch",
            "axn_update_phi",
        ),
        (
            "DELETE",
            "/fhir/Observation/o1",
            None,
            "delete",
            "axn_delete_phi",
        ),
        (
            "DELETE",
            "/fhir/Observation",
            Some("patient=7"),
            "delete",
            "axn_delete_phi",
        ),
        (
            "GET",
            "/fhir/Observation/o1/_history",
            None,
            "history-instance",
            "axn_access_phi",
        ),
        (
            "GET",
            "/fhir/Observation/_history",
            None,
            "history-type",
            "axn_access_phi",
        ),
        (
            "GET",
            "/fhir/_history",
            None,
            "history-system",
            "axn_access_phi",
        ),
        (
            "GET",
            "/fhir/metadata",
            None,
            "capabilities",
            "axn_read_metadata",
        ),
        ("POST", "/fhir", None, "batch", "axn_update_phi"),
        (
            "GET",
            "/fhir",
            Some("_type=Patient"),
            "search-system",
            "axn_access_phi",
        ),
        (
            "GET",
            "/fhir/Patient/7/$everything",
            None,
            "operation",
            "axn_access_phi",
        ),
        (
            "GET",
            "/fhir/Patient/7/Observation",
            None,
            "search-type",
            "axn_access_phi",
        ),
    ] {
        let item = run(method, path, query, &[]).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(
            item.context["interaction"],
            json!(interaction),
            "{method} {path}"
        );
        assert_eq!(item.action, action, "{method} {path}");
    }
}

#[test]
fn search_params_and_patient_reference_reach_the_context() {
    let item = run(
        "GET",
        "/fhir/Observation",
        Some("patient=Patient%2F7&code=a&code=b"),
        &[],
    )
    .unwrap();
    assert_eq!(item.context["patient_id"], json!("7"));
    assert_eq!(
        item.context["search_params"],
        json!({"patient": "Patient/7", "code": ["a", "b"]})
    );
    assert_eq!(item.resource.as_deref(), Some("res_phi:Observation"));
}

#[test]
fn compartment_search_is_about_the_patient() {
    let item = run("GET", "/fhir/Patient/7/Observation", None, &[]).unwrap();
    assert_eq!(item.resource.as_deref(), Some("res_phi:Patient/7"));
    assert_eq!(item.context["resource_type"], json!("Observation"));
    assert_eq!(item.context["compartment"], json!("Patient/7"));
    assert_eq!(item.context["patient_id"], json!("7"));
}

#[test]
fn non_compartment_types_use_the_other_resource_type() {
    let item = run("GET", "/fhir/Practitioner/p1", None, &[]).unwrap();
    assert_eq!(item.resource.as_deref(), Some("res_fhir:Practitioner/p1"));
    let meta = run("GET", "/fhir/metadata", None, &[]).unwrap();
    assert_eq!(meta.resource.as_deref(), Some("res_fhir:metadata"));
}

#[test]
fn configured_actions_win_over_defaults_and_see_operations_by_name() {
    let config = fhir(
        r#"
kind: fhir
base_path: /fhir/r4
actions: {"Observation.create": axn_record_observation, "Patient.$everything": axn_export_record}
phi_resource_type: res_ehr
consent_header: X-Consent
"#,
    );
    let created = run_with(
        &config,
        "POST",
        "/fhir/r4/Observation",
        None,
        &[("x-consent", "no")],
    )
    .unwrap();
    assert_eq!(created.action, "axn_record_observation");
    assert_eq!(created.resource.as_deref(), Some("res_ehr:Observation"));
    assert_eq!(created.context["patient_consent"], json!(false));
    let everything = run_with(&config, "GET", "/fhir/r4/Patient/1/$everything", None, &[]).unwrap();
    assert_eq!(everything.action, "axn_export_record");
    assert_eq!(everything.context["operation"], json!("$everything"));
    assert!(matches!(
        run_with(&config, "GET", "/fhir/Patient/1", None, &[]),
        Err(ClassifyError::NoOperation { .. })
    ));
}

#[test]
fn base_is_found_automatically_when_not_configured() {
    let config = fhir("kind: fhir");
    let item = run_with(&config, "GET", "/ehr/api/r4/Patient/5", None, &[]).unwrap();
    assert_eq!(item.resource.as_deref(), Some("res_phi:Patient/5"));
    let meta = run_with(&config, "GET", "/ehr/api/r4/metadata", None, &[]).unwrap();
    assert_eq!(meta.context["interaction"], json!("capabilities"));
}

#[test]
fn unknown_shapes_are_no_operation_and_bad_ids_are_malformed() {
    assert!(matches!(
        run("GET", "/fhir/patient/1", None, &[]),
        Err(ClassifyError::NoOperation { .. })
    ));
    assert!(matches!(
        run("PUT", "/fhir/Patient", None, &[]),
        Err(ClassifyError::NoOperation { .. })
    ));
    assert!(matches!(
        run("GET", "/other/Patient/1", None, &[]),
        Err(ClassifyError::NoOperation { .. })
    ));
    assert!(matches!(
        run("GET", "/fhir/Patient/a_b", None, &[]),
        Err(ClassifyError::Malformed(m)) if m.contains("not a FHIR id")
    ));
}

#[test]
fn extra_context_sources_read_headers_and_body() {
    let config = fhir(
            "kind: fhir\nbase_path: /fhir\ncontext: {medication: body./medicationCodeableConcept/text, tenant: header.x-tenant}",
        );
    let mut headers = http::HeaderMap::new();
    headers.insert("x-tenant", http::HeaderValue::from_static("north"));
    let parts = RequestParts {
        method: "POST",
        path: "/fhir/MedicationRequest",
        query: None,
        headers: &headers,
    };
    let body = br#"{"resourceType":"MedicationRequest","medicationCodeableConcept":{"text":"Amoxicillin"}}"#;
    let item = classify(&config, &parts, Some(body))
        .unwrap()
        .items
        .remove(0);
    assert_eq!(item.context["medication"], json!("Amoxicillin"));
    assert_eq!(item.context["tenant"], json!("north"));
    assert!(config.uses_body());
}
