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
    run_body(config, method, path, query, headers, None)
}

fn run_body(
    config: &FhirClassifier,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &[(&'static str, &str)],
    body: Option<&[u8]>,
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
    classify(config, &parts, body).map(|mut c| c.items.remove(0))
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
            let Some(action) = default_action(resource_type, interaction) else {
                assert_eq!(interaction, Interaction::Operation);
                continue;
            };
            assert!(
                healthcare.action_type(action).is_some(),
                "{action} ({resource_type} {interaction:?}) is not a healthcare action type"
            );
        }
    }
    for kind in OperationKind::ALL {
        let action = kind.default_action();
        assert!(
            healthcare.action_type(action).is_some(),
            "{action} ({kind:?}) is not a healthcare action type"
        );
    }
    for (name, kind) in KNOWN_OPERATIONS {
        assert!(is_operation_name(name), "{name}");
        assert_eq!(OperationKind::of(name), Some((*name, *kind)));
    }
}

#[test]
fn a_policy_can_name_the_bulk_export_action() {
    let registry = lexecon_domains::DomainRegistry::builtin().unwrap();
    let healthcare = registry.get("healthcare").unwrap().config();
    let policy = lexecon_config::parse_policy(
        "bulk.yaml",
        "id: bulk\ndomain: healthcare\nrules:\n  - {id: no-bulk, effect: forbid, action: axn_export_phi, reason: no bulk export}\n",
    )
    .unwrap();
    lexecon_config::validate_policy("bulk.yaml", &policy, Some(healthcare)).unwrap();
}

/// A route that trusts the caller's consent and physician headers, naming them.
fn trusting() -> FhirClassifier {
    fhir("kind: fhir\nbase_path: /fhir\nconsent_header: x-patient-consent\nphysician_header: x-physician-id")
}

#[test]
fn consent_and_physician_headers_are_ignored_unless_the_route_names_them() {
    let asserted = [("x-patient-consent", "true"), ("x-physician-id", "dr-9")];
    let item = run("GET", "/fhir/Patient/123", None, &asserted).unwrap();
    assert!(
        !item.context.contains_key("patient_consent"),
        "{:?}",
        item.context
    );
    assert!(
        !item.context.contains_key("physician_id"),
        "{:?}",
        item.context
    );
}

#[test]
fn patient_read_is_phi_access_with_consent_and_purpose_from_headers() {
    let item = run_with(
        &trusting(),
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
    let err = run_with(
        &trusting(),
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
            "axn_export_phi",
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

/// One operation case: method, path, the action it must get, the canonical operation name and
/// the SMART scope it needs.
type OperationCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

#[test]
fn known_operations_get_the_action_of_what_they_do_at_every_level() {
    let cases: &[OperationCase] = &[
        (
            "POST",
            "/fhir/Patient/123/$expunge",
            "axn_delete_phi",
            "$expunge",
            Some("Patient.d"),
        ),
        (
            "POST",
            "/fhir/Patient/$expunge",
            "axn_delete_phi",
            "$expunge",
            Some("Patient.d"),
        ),
        (
            "POST",
            "/fhir/$expunge",
            "axn_delete_phi",
            "$expunge",
            Some("*.d"),
        ),
        (
            "GET",
            "/fhir/Patient/123/$expunge",
            "axn_delete_phi",
            "$expunge",
            Some("Patient.d"),
        ),
        (
            "POST",
            "/fhir/Observation/o1/$purge",
            "axn_delete_phi",
            "$purge",
            Some("Observation.d"),
        ),
        (
            "POST",
            "/fhir/Patient/$merge",
            "axn_update_phi",
            "$merge",
            Some("Patient.u"),
        ),
        (
            "POST",
            "/fhir/Patient/1/$meta-add",
            "axn_update_phi",
            "$meta-add",
            Some("Patient.u"),
        ),
        (
            "GET",
            "/fhir/Patient/1/$everything",
            "axn_export_phi",
            "$everything",
            Some("*.rs"),
        ),
        (
            "POST",
            "/fhir/Patient/$everything",
            "axn_export_phi",
            "$everything",
            Some("*.rs"),
        ),
        (
            "GET",
            "/fhir/$export",
            "axn_export_phi",
            "$export",
            Some("*.rs"),
        ),
        (
            "GET",
            "/fhir/Patient/$export",
            "axn_export_phi",
            "$export",
            Some("*.rs"),
        ),
        (
            "GET",
            "/fhir/Patient/1/$meta",
            "axn_access_phi",
            "$meta",
            Some("Patient.r"),
        ),
        (
            "POST",
            "/fhir/Observation/$validate",
            "axn_access_phi",
            "$validate",
            Some("Observation.r"),
        ),
        (
            "GET",
            "/fhir/CodeSystem/$lookup",
            "axn_read_guideline",
            "$lookup",
            Some("CodeSystem.r"),
        ),
        (
            "POST",
            "/fhir/ConceptMap/$translate",
            "axn_read_guideline",
            "$translate",
            Some("ConceptMap.r"),
        ),
        (
            "GET",
            "/fhir/ValueSet/vs1/$expand",
            "axn_read_guideline",
            "$expand",
            Some("ValueSet.r"),
        ),
        (
            "GET",
            "/fhir/ValueSet/$validate-code",
            "axn_read_guideline",
            "$validate-code",
            Some("ValueSet.r"),
        ),
        (
            "GET",
            "/fhir/CodeSystem/$subsumes",
            "axn_read_guideline",
            "$subsumes",
            Some("CodeSystem.r"),
        ),
        (
            "GET",
            "/fhir/$versions",
            "axn_read_metadata",
            "$versions",
            None,
        ),
        (
            "GET",
            "/fhir/$capabilities",
            "axn_read_metadata",
            "$capabilities",
            None,
        ),
    ];
    for (method, path, action, operation, scope) in cases {
        let item = run(method, path, None, &[]).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(item.action, *action, "{method} {path}");
        assert_eq!(
            item.context["interaction"],
            json!("operation"),
            "{method} {path}"
        );
        assert_eq!(
            item.context["operation"],
            json!(operation),
            "{method} {path}"
        );
        assert_eq!(
            item.context.get("smart_scope"),
            scope.map(|s| json!(s)).as_ref(),
            "{method} {path}"
        );
    }
}

#[test]
fn case_trailing_slash_and_percent_encoding_do_not_disguise_an_operation() {
    for path in [
        "/fhir/Patient/123/$EXPUNGE",
        "/fhir/Patient/123/$Expunge",
        "/fhir/Patient/123/$expunge/",
        "/fhir/Patient/123/%24expunge",
        "/fhir/Patient/123/%24EXPUNGE",
        "/fhir/Patient/123/$%65xpunge",
        "/fhir/%50atient/%31%32%33/$expunge",
    ] {
        let item = run("POST", path, None, &[]).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(item.action, "axn_delete_phi", "{path}");
        assert_eq!(item.context["operation"], json!("$expunge"), "{path}");
        assert_eq!(
            item.resource.as_deref(),
            Some("res_phi:Patient/123"),
            "{path}"
        );
    }
    let config = fhir("kind: fhir");
    let item = run_with(&config, "POST", "/ehr/r4/Patient/9/%24expunge", None, &[]).unwrap();
    assert_eq!(
        item.action, "axn_delete_phi",
        "found without a base_path too"
    );
}

#[test]
fn unknown_operations_are_refused_naming_the_key_to_map() {
    for (method, path, key) in [
        ("POST", "/fhir/Patient/1/$reindex", "Patient.$reindex"),
        ("GET", "/fhir/$diff", "_system.$diff"),
        (
            "POST",
            "/fhir/Patient/$Everything-Else",
            "Patient.$Everything-Else",
        ),
    ] {
        match run(method, path, None, &[]) {
            Err(err @ ClassifyError::UnknownOperation { .. }) => {
                assert!(err.to_string().contains(&format!("{key:?}")), "{err}");
                assert!(err.to_string().contains("actions"), "{err}");
            }
            other => panic!("{method} {path}: expected UnknownOperation, got {other:?}"),
        }
    }
    for path in ["/fhir/Patient/1/$", "/fhir/Patient/1/$a%20b", "/fhir/$x!y"] {
        assert!(
            matches!(run("POST", path, None, &[]), Err(ClassifyError::Malformed(m)) if m.contains("not a FHIR operation name")),
            "{path}"
        );
    }
}

#[test]
fn a_route_maps_operations_only_with_globs_that_name_operations() {
    let config = fhir(
        r#"
kind: fhir
base_path: /fhir
actions:
  "Patient.*": axn_read_guideline
  "*.$reindex": axn_update_phi
  "Patient.$merge": axn_share_phi
"#,
    );
    let run = |path| run_with(&config, "POST", path, None, &[]);
    assert_eq!(
        run("/fhir/Patient/1/$reindex").unwrap().action,
        "axn_update_phi"
    );
    assert_eq!(
        run("/fhir/Patient/$merge").unwrap().action,
        "axn_share_phi",
        "a mapping wins over the built-in kind"
    );
    assert_eq!(
        run("/fhir/Patient/1/$expunge").unwrap().action,
        "axn_delete_phi",
        "Patient.* is for interactions, never an operation"
    );
    assert!(matches!(
        run("/fhir/Patient/1/$unknown"),
        Err(ClassifyError::UnknownOperation { .. })
    ));
    assert_eq!(
        run_with(&config, "GET", "/fhir/Patient/1", None, &[])
            .unwrap()
            .action,
        "axn_read_guideline"
    );
    let upper = run("/fhir/Patient/$MERGE").unwrap();
    assert_eq!(
        upper.action, "axn_share_phi",
        "the canonical name is looked up"
    );
    assert_eq!(
        upper.context["smart_scope"],
        json!("Patient.u"),
        "a mapped known operation keeps its scope"
    );
    let unknown = run("/fhir/Patient/1/$reindex").unwrap();
    assert_eq!(unknown.context["smart_scope"], json!("*.cruds"));
}

#[test]
fn other_methods_on_an_operation_path_are_refused() {
    for (method, path) in [
        ("DELETE", "/fhir/Patient/1/$expunge"),
        ("PUT", "/fhir/Patient/$expunge"),
        ("PATCH", "/fhir/$expunge"),
        ("POST", "/fhir/Patient/1/$expunge/x"),
    ] {
        assert!(run(method, path, None, &[]).is_err(), "{method} {path}");
    }
}

#[test]
fn a_patient_parameter_sent_twice_is_refused_and_others_may_repeat() {
    for (path, query, name) in [
        ("/fhir/Observation", "patient=1&patient=2", "patient"),
        (
            "/fhir/Observation",
            "subject=Patient/1&code=a&subject=Patient/2",
            "subject",
        ),
        (
            "/fhir/Observation",
            "subject:Patient=1&subject:Patient=1",
            "subject:Patient",
        ),
        ("/fhir/Patient", "_id=1&_id=2", "_id"),
        ("/fhir/Observation", "patient=1&pati%65nt=2", "patient"),
        (
            "/fhir/Patient/7/Observation",
            "patient=1&patient=2",
            "patient",
        ),
    ] {
        match run("GET", path, Some(query), &[]) {
            Err(err @ ClassifyError::RepeatedParameter { .. }) => {
                assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
            }
            other => panic!("{path}?{query}: expected RepeatedParameter, got {other:?}"),
        }
    }
    let item = run(
        "GET",
        "/fhir/Observation",
        Some("patient=7&code=a&code=b&date=ge2020&date=le2021&_id=x&_id=y"),
        &[],
    )
    .unwrap();
    assert_eq!(item.context["patient_id"], json!("7"));
    assert_eq!(item.context["search_params"]["code"], json!(["a", "b"]));
}

#[test]
fn a_context_query_source_refuses_its_parameter_sent_twice() {
    let config = fhir("kind: fhir\nbase_path: /fhir\ncontext: {tenant: query.tenant}");
    let once = run_with(
        &config,
        "GET",
        "/fhir/Observation",
        Some("tenant=a&code=1&code=2"),
        &[],
    )
    .unwrap();
    assert_eq!(once.context["tenant"], json!("a"));
    assert!(matches!(
        run_with(&config, "GET", "/fhir/Observation", Some("tenant=a&tenant=b"), &[]),
        Err(ClassifyError::RepeatedParameter { name }) if name == "tenant"
    ));
}

#[test]
fn a_context_body_source_refuses_duplicate_keys() {
    let config = fhir("kind: fhir\nbase_path: /fhir\ncontext: {subject: body./subject/reference}");
    let headers = http::HeaderMap::new();
    let parts = RequestParts {
        method: "POST",
        path: "/fhir/Observation",
        query: None,
        headers: &headers,
    };
    let body = br#"{"resourceType":"Observation","subject":{"reference":"Patient/1","reference":"Patient/2"}}"#;
    assert!(matches!(
        classify(&config, &parts, Some(body)),
        Err(ClassifyError::DuplicateKey { key, .. }) if key == "reference"
    ));
    let plain = fhir("kind: fhir\nbase_path: /fhir");
    assert!(
        classify(&plain, &parts, Some(body)).is_ok(),
        "a route that reads no body never parses it"
    );
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// A search by POST: `form` is the body, sent as a form.
fn post_search(
    path: &str,
    query: Option<&str>,
    form: &str,
) -> Result<ClassifiedItem, ClassifyError> {
    run_body(
        &fhir("kind: fhir\nbase_path: /fhir\ncontext: {tenant: query.tenant}"),
        "POST",
        path,
        query,
        &[FORM],
        Some(form.as_bytes()),
    )
}

#[test]
fn a_search_by_post_is_the_search_a_get_would_be_with_every_parameter() {
    let config = fhir("kind: fhir\nbase_path: /fhir\ncontext: {tenant: query.tenant}");
    for (path, query, form, all) in [
        (
            "/fhir/Observation/_search",
            Some("code=b"),
            "patient=Patient%2F7&code=a&tenant=north",
            "code=b&patient=Patient%2F7&code=a&tenant=north",
        ),
        ("/fhir/Observation/_search", None, "patient=7", "patient=7"),
        ("/fhir/Patient/_search", Some("_id=7"), "", "_id=7"),
        (
            "/fhir/_search",
            None,
            "_type=Patient&tenant=s",
            "_type=Patient&tenant=s",
        ),
    ] {
        let posted = post_search(path, query, form).unwrap();
        let get_path = path.trim_end_matches("/_search");
        let get_path = if get_path == "/fhir" {
            "/fhir"
        } else {
            get_path
        };
        let got = run_with(&config, "GET", get_path, Some(all), &[]).unwrap();
        assert_eq!(posted.action, got.action, "{path}");
        assert_eq!(posted.resource, got.resource, "{path}");
        assert_eq!(posted.context, got.context, "{path} {form}");
    }
    let item = post_search(
        "/fhir/Observation/_search",
        Some("code=b"),
        "patient=7&code=a",
    )
    .unwrap();
    assert_eq!(item.context["patient_id"], json!("7"));
    assert_eq!(item.context["search_params"]["code"], json!(["b", "a"]));
    for charset in ["utf-8", "UTF-8", "\"utf-8\""] {
        let content_type = format!("application/x-www-form-urlencoded; charset={charset}");
        let item = run_body(
            &fhir("kind: fhir\nbase_path: /fhir"),
            "POST",
            "/fhir/Observation/_search",
            None,
            &[("content-type", &content_type)],
            Some(b"patient=7"),
        )
        .unwrap();
        assert_eq!(item.context["patient_id"], json!("7"), "{charset}");
    }
}

#[test]
fn a_parameter_read_twice_across_query_and_form_is_refused() {
    for (query, form, name) in [
        (Some("patient=1"), "patient=2", "patient"),
        (Some("patient=1"), "patient=1", "patient"),
        (None, "patient=1&patient=2", "patient"),
        (None, "subject=Patient/1&pati%65nt=1&patient=1", "patient"),
        (Some("tenant=a"), "tenant=b", "tenant"),
    ] {
        match post_search("/fhir/Observation/_search", query, form) {
            Err(ClassifyError::RepeatedParameter { name: got }) => assert_eq!(got, name),
            other => panic!("{query:?} + {form}: expected RepeatedParameter, got {other:?}"),
        }
    }
}

#[test]
fn a_search_by_post_must_send_a_plain_utf8_form() {
    let config = fhir("kind: fhir\nbase_path: /fhir");
    type Case<'a> = (&'a [(&'static str, &'a str)], Option<&'a [u8]>);
    let cases: [Case<'_>; 10] = [
        (&[("content-type", "application/json")], Some(b"{}")),
        (&[], Some(b"patient=1")),
        (
            &[("content-type", "multipart/form-data; boundary=x")],
            Some(b"patient=1"),
        ),
        (
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=iso-8859-1",
            )],
            Some(b"patient=1"),
        ),
        (
            &[(
                "content-type",
                "application/x-www-form-urlencoded; boundary=x",
            )],
            Some(b"patient=1"),
        ),
        (&[FORM, FORM], Some(b"patient=1")),
        (&[FORM, ("content-encoding", "gzip")], Some(b"\x1f\x8b")),
        (&[FORM], None),
        (&[FORM], Some(b"patient=\xff")),
        (&[FORM], Some(b"patient=1&_method=DELETE")),
    ];
    for (headers, body) in cases {
        let got = run_body(
            &config,
            "POST",
            "/fhir/Observation/_search",
            None,
            headers,
            body,
        );
        assert!(
            matches!(got, Err(ClassifyError::SearchForm { .. })),
            "{headers:?} {body:?}: {got:?}"
        );
    }
    assert!(is_post_search(&config, "POST", "/fhir/Observation/_search"));
    assert!(is_post_search(&config, "POST", "/fhir/_search"));
    assert!(is_post_search(
        &config,
        "POST",
        "/fhir/Observation/%5Fsearch"
    ));
    assert!(!is_post_search(&config, "GET", "/fhir/Observation/_search"));
    assert!(!is_post_search(&config, "POST", "/fhir/Observation"));
    assert!(!is_post_search(&config, "POST", "/other/_search"));
}

#[test]
fn a_request_about_two_patients_is_refused_whatever_names_them() {
    for (path, query) in [
        ("/fhir/Observation", "patient=1,2"),
        ("/fhir/Observation", "patient=1%2C2"),
        ("/fhir/Observation", "subject=Patient/1,Patient/2"),
        ("/fhir/Observation", "subject=Patient/1,Group/2"),
        ("/fhir/Observation", "subject=Group/2,Group/3"),
        ("/fhir/Observation", "subject:Patient=1,2"),
        ("/fhir/Observation", "patient:Patient=1,2"),
        ("/fhir/Patient", "_id=1,2"),
        ("/fhir/Observation", "patient=1&subject=Patient/2"),
        ("/fhir/Observation", "patient=1&subject:Patient=2"),
        ("/fhir/Patient/1/Observation", "patient=2"),
        ("/fhir/Patient/1/Observation", "patient=1,2"),
        ("/fhir/Patient/1/$everything", "_id=2"),
    ] {
        match run("GET", path, Some(query), &[]) {
            Err(err @ ClassifyError::SeveralPatients { .. }) => {
                assert!(err.to_string().contains("one patient per request"), "{err}");
            }
            other => panic!("{path}?{query}: expected SeveralPatients, got {other:?}"),
        }
    }
    match post_search("/fhir/Observation/_search", None, "patient=1,2") {
        Err(ClassifyError::SeveralPatients { .. }) => {}
        other => panic!("a form list: {other:?}"),
    }
    match post_search(
        "/fhir/Observation/_search",
        Some("patient=1"),
        "subject=Patient/2",
    ) {
        Err(ClassifyError::SeveralPatients { .. }) => {}
        other => panic!("query and form: {other:?}"),
    }
}

#[test]
fn one_patient_named_many_ways_is_that_patient() {
    for (path, query) in [
        ("/fhir/Observation", "patient=7,7"),
        ("/fhir/Observation", "patient=7,Patient/7"),
        ("/fhir/Observation", "subject=Patient/7,Patient/7"),
        ("/fhir/Observation", "patient=7&subject=Patient/7"),
        ("/fhir/Observation", "patient:Patient=7"),
        ("/fhir/Observation", "subject=Group/2&patient=7"),
        ("/fhir/Patient/7/Observation", "patient=7"),
        ("/fhir/Patient", "_id=7"),
        ("/fhir/Patient", "_id=7,7"),
    ] {
        let item =
            run("GET", path, Some(query), &[]).unwrap_or_else(|e| panic!("{path}?{query}: {e}"));
        assert_eq!(item.context["patient_id"], json!("7"), "{path}?{query}");
    }
    let group = run("GET", "/fhir/Observation", Some("subject=Group/2"), &[]).unwrap();
    assert!(
        !group.context.contains_key("patient_id"),
        "{:?}",
        group.context
    );
    let other_ids = run("GET", "/fhir/Observation", Some("_id=1,2&code=a,b"), &[]).unwrap();
    assert!(!other_ids.context.contains_key("patient_id"));
}

#[test]
fn a_patient_value_or_parameter_lexecon_cannot_read_is_refused() {
    for query in [
        "patient=http://other.example/fhir/Patient/1",
        "patient=",
        "patient=1%5C,2",
        "patient=Group/1",
        "patient=Patient/1/_history/2",
        "subject=Patient/1/_history/2",
        "subject=urn:uuid:1234",
        "subject=",
        "patient=a_b",
    ] {
        match run("GET", "/fhir/Observation", Some(query), &[]) {
            Err(ClassifyError::UnreadablePatient { .. }) => {}
            other => panic!("{query}: expected UnreadablePatient, got {other:?}"),
        }
    }
    for (path, query) in [
        ("/fhir/Observation", "patient.identifier=mrn%7C123"),
        ("/fhir/Observation", "subject.name=smith"),
        ("/fhir/Observation", "subject:missing=true"),
        ("/fhir/Observation", "patient:identifier=mrn%7C123"),
        ("/fhir/Observation", "subject:Group=1"),
        ("/fhir/Observation", "subject:Patient.name=smith"),
        ("/fhir/Patient", "_id:not=1"),
        ("/fhir/Patient", "_id:missing=false"),
    ] {
        match run("GET", path, Some(query), &[]) {
            Err(ClassifyError::PatientParameterForm { .. }) => {}
            other => panic!("{path}?{query}: expected PatientParameterForm, got {other:?}"),
        }
    }
    // `_id` names a patient only on Patient.
    assert!(run("GET", "/fhir/Observation", Some("_id:not=1"), &[]).is_ok());
}
