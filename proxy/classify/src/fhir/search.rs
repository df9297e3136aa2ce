//! The search parameters of a FHIR request that name its patient, and the form body of a search
//! by `POST`: which patient a request is about (at most one: no comma list, no second patient in
//! another parameter or in the body, no modifier or chain Lexecon does not read), and the form
//! body as text once its headers say it is one. Pure; refuses (fails closed) whatever it cannot
//! read as the upstream would.

use lexecon_config::classifier::{is_fhir_type, FhirClassifier};
use serde_json::{Map, Value};

use super::{interaction_segments, is_fhir_id, value, ClassifyError, Parsed};

/// The search parameters [`patient_id`] reads (and `_id` on `Patient`): each must appear once.
const PATIENT_PARAMS: [&str; 4] = ["patient", "patient:Patient", "subject", "subject:Patient"];

/// What one value of a patient parameter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named<'v> {
    Patient(&'v str),
    /// A `subject` of another type (`Group/7`): not a patient.
    Other,
}

/// What one comma-separated value of the patient parameter `param` names. `subject` may name
/// another type (`Group/7`); the others name a patient (`7` or `Patient/7`). Anything else — an
/// absolute URL, a version, an empty value, an escaped comma — is refused: the upstream could
/// read it as a patient Lexecon did not decide on.
fn named<'v>(param: &str, value: &'v str) -> Result<Named<'v>, ClassifyError> {
    let unreadable = || ClassifyError::UnreadablePatient {
        name: param.to_string(),
        value: value.to_string(),
    };
    let id = match value.split_once('/') {
        Some(("Patient", id)) if param != "_id" => id,
        Some((other, id)) if param == "subject" && is_fhir_type(other) && is_fhir_id(id) => {
            return Ok(Named::Other)
        }
        Some(_) => return Err(unreadable()),
        None => value,
    };
    if is_fhir_id(id) {
        Ok(Named::Patient(id))
    } else {
        Err(unreadable())
    }
}

/// The patient the request is about, when the request line or search says so.
///
/// Closed by default, since a SMART patient-context check, the consent lookup and the policy all
/// see this one id: a parameter it reads (`patient`, `patient:Patient`, `subject`,
/// `subject:Patient`, `_id` on `Patient`) sent twice is refused (FHIR ANDs the copies, but a
/// server that keeps only the first or the last would serve another patient than the one
/// decided); a comma-separated list (FHIR's OR) is refused unless every value is the same patient;
/// two sources naming different patients (`Patient/1/Observation?patient=2`) are refused; and so
/// is a patient parameter with a modifier or chain Lexecon does not read (`patient.identifier`,
/// `subject:missing`), which selects patients it cannot name.
pub(super) fn patient_id(
    parsed: &Parsed<'_>,
    search: &Map<String, Value>,
) -> Result<Option<String>, ClassifyError> {
    let on_patient = parsed.resource_type == Some("Patient");
    let id_param = on_patient.then_some("_id");
    for name in search.keys() {
        let base = name.split([':', '.']).next().unwrap_or(name);
        let names_patient = matches!(base, "patient" | "subject") || (on_patient && base == "_id");
        let read = PATIENT_PARAMS.contains(&name.as_str()) || id_param == Some(name.as_str());
        if names_patient && !read {
            return Err(ClassifyError::PatientParameterForm { name: name.clone() });
        }
    }
    for param in PATIENT_PARAMS.into_iter().chain(id_param) {
        if let Some(Value::Array(_)) = search.get(param) {
            return Err(ClassifyError::RepeatedParameter {
                name: param.to_string(),
            });
        }
    }

    // Every source that names a patient, as (where, id); all must agree.
    let mut found: Option<(String, String)> = None;
    let mut note = |source: &str, id: &str| -> Result<(), ClassifyError> {
        match &found {
            Some((first, seen)) if seen != id => Err(ClassifyError::SeveralPatients {
                name: format!("{first} and {source}"),
                value: format!("{seen}, {id}"),
            }),
            Some(_) => Ok(()),
            None => {
                found = Some((source.to_string(), id.to_string()));
                Ok(())
            }
        }
    };
    let from_path = match parsed.compartment {
        Some(("Patient", id)) => Some(("the compartment", id)),
        _ if on_patient => parsed.id.map(|id| ("the path", id)),
        _ => None,
    };
    if let Some((source, id)) = from_path {
        note(source, id)?;
    }
    for param in PATIENT_PARAMS.into_iter().chain(id_param) {
        let Some(value) = search.get(param) else {
            continue;
        };
        let text = value.as_str().unwrap_or_default();
        let mut list: Option<Named<'_>> = None;
        for part in text.split(',') {
            let this = named(param, part)?;
            match list {
                Some(first) if first != this || this == Named::Other => {
                    return Err(ClassifyError::SeveralPatients {
                        name: param.to_string(),
                        value: text.to_string(),
                    })
                }
                _ => list = Some(this),
            }
        }
        if let Some(Named::Patient(id)) = list {
            note(param, id)?;
        }
    }
    Ok(found.map(|(_, id)| id))
}

/// True for a `POST` to `[base]/_search` or `[base]/[type]/_search`: a search whose parameters
/// are in the form body (the proxy reads it before deciding).
pub(crate) fn is_post_search(config: &FhirClassifier, method: &str, path: &str) -> bool {
    method == "POST"
        && matches!(
            interaction_segments(config, path),
            Ok(Some(segments)) if segments.last().is_some_and(|s| s == "_search")
        )
}

/// The form body of a search by `POST`, as text: the request must say
/// `Content-Type: application/x-www-form-urlencoded` (once; a `charset` only `utf-8`), carry no
/// `Content-Encoding`, be UTF-8, and hold no `_method` parameter (Spring's
/// `HiddenHttpMethodFilter` runs a form `POST` as the method it names). A search by POST whose
/// body was not read is refused (fail closed).
pub(super) fn form_body<'b>(
    headers: &http::HeaderMap,
    body: Option<&'b [u8]>,
) -> Result<&'b str, ClassifyError> {
    let refuse = |reason: String| Err(ClassifyError::SearchForm { reason });
    let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
    let (Some(content_type), None) = (types.next(), types.next()) else {
        return refuse(
            "send the parameters as one Content-Type: application/x-www-form-urlencoded body"
                .into(),
        );
    };
    let text = String::from_utf8_lossy(content_type.as_bytes());
    let mut items = text.split(';');
    let mime = items.next().unwrap_or_default().trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return refuse(format!(
            "the body is {mime:?}; a search by POST sends its parameters as \
             application/x-www-form-urlencoded"
        ));
    }
    for parameter in items {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let value = value.trim().trim_matches('"');
        if !(name.trim().eq_ignore_ascii_case("charset") && value.eq_ignore_ascii_case("utf-8")) {
            return refuse(format!(
                "Content-Type parameter {:?} is refused (only charset=utf-8): the upstream would \
                 decode the form differently",
                parameter.trim()
            ));
        }
    }
    if let Some(coding) = headers.get(http::header::CONTENT_ENCODING) {
        if !coding.as_bytes().eq_ignore_ascii_case(b"identity") {
            return refuse(format!(
                "Content-Encoding {:?} is refused: Lexecon reads the form as sent",
                String::from_utf8_lossy(coding.as_bytes())
            ));
        }
    }
    let Some(bytes) = body else {
        return refuse("the form body was not read before deciding".into());
    };
    let Ok(form) = std::str::from_utf8(bytes) else {
        return refuse("the form body is not UTF-8".into());
    };
    for pair in value::query_pairs(form) {
        let (name, _) = pair?;
        if name.eq_ignore_ascii_case("_method") {
            return refuse(
                "form parameter _method would make some upstreams run another method than POST; \
                 it is refused"
                    .into(),
            );
        }
    }
    Ok(form)
}
