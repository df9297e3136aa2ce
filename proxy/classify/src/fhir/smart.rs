//! SMART on FHIR scope checks: whether a token's `scope` claim (v1 `patient/*.read`,
//! `user/Observation.write`; v2 `patient/Patient.rs`) allows one FHIR interaction, and whether
//! `patient/` scopes hold the request to the token's launch patient. Pure; fails closed on any
//! scope it does not understand.

use serde_json::{Map, Value};

use super::{Interaction, OperationKind, SYSTEM_TYPE};
use crate::ClassifiedItem;

/// The SMART permissions a request needs: letters as bits over `c r u d s`, and whether they
/// must be granted for every type (a `*` scope) rather than the request's own type. `None` from
/// [`need`]: no scope needed (capabilities, server information).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Need {
    letters: u8,
    every_type: bool,
}

/// What an interaction (and, for an operation, its kind) needs on `resource_type` (empty or
/// `_system` at the system level, where only `*` scopes can grant). A batch and an operation
/// Lexecon does not know need full access (`*.cruds`): what they touch is not in the request line.
fn need(
    resource_type: &str,
    interaction: Interaction,
    operation: Option<OperationKind>,
) -> Option<Need> {
    let system = resource_type.is_empty() || resource_type == SYSTEM_TYPE;
    let on_type = |letters| Need {
        letters,
        every_type: system,
    };
    let everything = Need {
        letters: ALL_LETTERS,
        every_type: true,
    };
    if interaction == Interaction::Operation {
        return match operation {
            Some(OperationKind::Delete) => Some(on_type(LETTER_D)),
            Some(OperationKind::Write) => Some(on_type(LETTER_U)),
            Some(OperationKind::BulkRead) => Some(Need {
                letters: LETTER_R | LETTER_S,
                every_type: true,
            }),
            Some(OperationKind::Read | OperationKind::Terminology) => Some(on_type(LETTER_R)),
            Some(OperationKind::ServerInfo) => None,
            None => Some(everything),
        };
    }
    match interaction.scope_letter() {
        Some(letter) => Some(on_type(
            "cruds"
                .find(letter)
                .map_or(ALL_LETTERS, |index| 1u8 << index),
        )),
        None if interaction == Interaction::Capabilities => None,
        None => Some(everything),
    }
}

/// The SMART v2 scope an interaction needs, as `context.smart_scope` shows it (`Observation.r`,
/// `*.rs`, `*.cruds`); `None` when it needs none.
pub(super) fn needed_scope(
    resource_type: Option<&str>,
    interaction: Interaction,
    operation: Option<OperationKind>,
) -> Option<String> {
    let resource_type = resource_type.unwrap_or("");
    let need = need(resource_type, interaction, operation)?;
    let scope_type = if need.every_type { "*" } else { resource_type };
    let letters: String = "cruds"
        .chars()
        .enumerate()
        .filter(|(index, _)| need.letters & (1 << index) != 0)
        .map(|(_, letter)| letter)
        .collect();
    Some(format!("{scope_type}.{letters}"))
}

/// The permissions one scope grants, as a bit set over `c r u d s`, and whether it is a
/// `patient/` (launch-patient) scope. A granular v2 scope (`Observation.rs?category=laboratory`)
/// covers only part of the type: it grants its letters only to a search whose parameters hold
/// every constraint exactly (`search`, the request's `search_params`; `None` for anything but a
/// search), since no other request line shows that it stays inside them (fail closed).
fn scope_bits(scope: &str, resource_type: &str, search: Option<&Map<String, Value>>) -> (bool, u8) {
    let Some((context, rest)) = scope.split_once('/') else {
        return (false, 0);
    };
    let patient = match context {
        "patient" => true,
        "user" | "system" => false,
        _ => return (false, 0),
    };
    let (rest, constraints) = match rest.split_once('?') {
        Some((rest, constraints)) => (rest, Some(constraints)),
        None => (rest, None),
    };
    if let Some(constraints) = constraints {
        let Some(search) = search else {
            return (patient, 0);
        };
        if !constraints_hold(constraints, search) {
            return (patient, 0);
        }
    }
    let Some((scope_type, permissions)) = rest.rsplit_once('.') else {
        return (patient, 0);
    };
    if scope_type != "*" && scope_type != resource_type {
        return (patient, 0);
    }
    let bits = match permissions {
        "read" => LETTER_R | LETTER_S,
        "write" => LETTER_C | LETTER_U | LETTER_D,
        "*" => ALL_LETTERS,
        letters => {
            let mut bits = 0u8;
            let mut last: Option<usize> = None;
            for c in letters.chars() {
                let Some(index) = "cruds".find(c) else {
                    return (patient, 0);
                };
                // v2 letters appear once each, in the order c r u d s.
                if last.is_some_and(|last| index <= last) {
                    return (patient, 0);
                }
                last = Some(index);
                bits |= 1 << index;
            }
            bits
        }
    };
    // A constrained scope is a v2 granular scope: only its read and search letters make sense
    // under a search constraint.
    let bits = if constraints.is_some() {
        bits & (LETTER_R | LETTER_S)
    } else {
        bits
    };
    (patient, bits)
}

/// Whether every `name=value` of a scope's constraints is a parameter the search sends once, with
/// exactly that value (a list such as `a,b` is broader than `a`: it does not hold).
fn constraints_hold(constraints: &str, search: &Map<String, Value>) -> bool {
    !constraints.is_empty()
        && constraints.split('&').all(|pair| {
            let Some((name, value)) = pair.split_once('=') else {
                return false;
            };
            !name.is_empty()
                && !value.is_empty()
                && search.get(name).and_then(Value::as_str) == Some(value)
        })
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

const LETTER_C: u8 = 1;
const LETTER_R: u8 = 1 << 1;
const LETTER_U: u8 = 1 << 2;
const LETTER_D: u8 = 1 << 3;
const LETTER_S: u8 = 1 << 4;
const ALL_LETTERS: u8 = LETTER_C | LETTER_R | LETTER_U | LETTER_D | LETTER_S;

/// How far a token's SMART scopes reach for one interaction on one resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeGrant {
    /// No scope allows it.
    Denied,
    /// Only `patient/` scopes allow it: the request must be about the token's launch patient.
    LaunchPatientOnly,
    /// A `user/` or `system/` scope allows it (or it needs no scope: capabilities).
    Granted,
}

/// What a token's SMART scopes allow for `interaction` on `resource_type` (empty or `_system`
/// for system-level interactions, which need a `*` scope). Accepts SMART v1 (`patient/*.read`,
/// `user/Observation.write`, `.*`) and v2 (`patient/Patient.rs`, letters `c r u d s` in order) in
/// the `patient/`, `user/` and `system/` contexts; other scopes (`openid`, `launch`) are ignored,
/// and a space-separated `scope` claim may be passed as one string. Capabilities need no scope;
/// a batch/transaction needs full access (`*.cruds`), since its entries are not visible in the
/// request line. So does [`Interaction::Operation`] here, where the operation is not known;
/// [`scope_permits_item`] reads the operation's name and asks what its [`OperationKind`] needs.
pub fn scope_grant(scopes: &[&str], resource_type: &str, interaction: Interaction) -> ScopeGrant {
    grant(
        scopes,
        resource_type,
        need(resource_type, interaction, None),
        None,
    )
}

fn grant(
    scopes: &[&str],
    resource_type: &str,
    need: Option<Need>,
    search: Option<&Map<String, Value>>,
) -> ScopeGrant {
    let Some(need) = need else {
        return ScopeGrant::Granted;
    };
    let check_type = if need.every_type { "*" } else { resource_type };
    let needed = need.letters;
    let (mut any, mut patient) = (0u8, 0u8);
    for scope in scopes.iter().flat_map(|s| s.split_ascii_whitespace()) {
        match scope_bits(scope, check_type, search) {
            (true, bits) => patient |= bits,
            (false, bits) => any |= bits,
        }
    }
    if any & needed == needed {
        ScopeGrant::Granted
    } else if (any | patient) & needed == needed {
        ScopeGrant::LaunchPatientOnly
    } else {
        ScopeGrant::Denied
    }
}

/// Whether the scopes allow the interaction on the resource type at all (any patient). Use
/// [`scope_permits_item`] to also hold `patient/` scopes to the token's launch patient.
pub fn scope_permits(scopes: &[&str], resource_type: &str, interaction: Interaction) -> bool {
    scope_grant(scopes, resource_type, interaction) != ScopeGrant::Denied
}

/// The SMART check for an item this classifier produced (reads `context.interaction`,
/// `context.resource_type` and `context.patient_id`). When only `patient/` scopes allow the
/// interaction, the request must name `launch_patient` (the token's `patient` claim) as its
/// patient — a search without a patient parameter or a create whose patient is only in the body
/// is refused (fail closed). False for items of other classifiers.
pub fn scope_permits_item(
    scopes: &[&str],
    item: &ClassifiedItem,
    launch_patient: Option<&str>,
) -> bool {
    let Some(interaction) = item
        .context
        .get("interaction")
        .and_then(Value::as_str)
        .and_then(Interaction::from_code)
    else {
        return false;
    };
    let resource_type = item
        .context
        .get("resource_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let operation = item
        .context
        .get("operation")
        .and_then(Value::as_str)
        .and_then(OperationKind::of)
        .map(|(_, kind)| kind);
    // Granular scopes can hold only for a search, against the parameters it sends.
    let search = match interaction {
        Interaction::SearchType => item
            .context
            .get("search_params")
            .and_then(Value::as_object)
            .or(Some(&EMPTY)),
        _ => None,
    };
    match grant(
        scopes,
        resource_type,
        need(resource_type, interaction, operation),
        search,
    ) {
        ScopeGrant::Granted => true,
        ScopeGrant::LaunchPatientOnly => {
            let patient = item.context.get("patient_id").and_then(Value::as_str);
            launch_patient.is_some_and(|launch| patient == Some(launch))
        }
        ScopeGrant::Denied => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::tests::run;

    #[test]
    fn smart_v2_letters_grant_exactly_their_interactions() {
        let scopes = ["openid", "patient/Patient.rs", "user/Observation.cu"];
        assert!(scope_permits(&scopes, "Patient", Interaction::Read));
        assert!(scope_permits(&scopes, "Patient", Interaction::SearchType));
        assert!(scope_permits(&scopes, "Patient", Interaction::Vread));
        assert!(!scope_permits(&scopes, "Patient", Interaction::Update));
        assert!(scope_permits(&scopes, "Observation", Interaction::Create));
        assert!(scope_permits(&scopes, "Observation", Interaction::Patch));
        assert!(!scope_permits(&scopes, "Observation", Interaction::Read));
        assert!(!scope_permits(&scopes, "Observation", Interaction::Delete));
        assert!(!scope_permits(&scopes, "Condition", Interaction::Read));
    }

    #[test]
    fn smart_v1_read_write_and_wildcards() {
        assert!(scope_permits(
            &["patient/*.read"],
            "Observation",
            Interaction::Read
        ));
        assert!(scope_permits(
            &["patient/*.read"],
            "Observation",
            Interaction::HistoryType
        ));
        assert!(!scope_permits(
            &["patient/*.read"],
            "Observation",
            Interaction::Create
        ));
        assert!(scope_permits(
            &["user/Observation.write"],
            "Observation",
            Interaction::Delete
        ));
        assert!(!scope_permits(
            &["user/Observation.write"],
            "Observation",
            Interaction::Read
        ));
        assert!(scope_permits(
            &["system/*.*"],
            "MedicationRequest",
            Interaction::Create
        ));
        assert!(scope_permits(
            &["user/Observation.read user/Patient.read"],
            "Patient",
            Interaction::Read
        ));
    }

    #[test]
    fn granular_scopes_grant_only_a_search_that_stays_inside_them() {
        let scopes = ["user/Observation.rs?category=laboratory"];
        let inside = run(
            "GET",
            "/fhir/Observation",
            Some("category=laboratory&code=1234"),
            &[],
        )
        .unwrap();
        assert!(scope_permits_item(&scopes, &inside, None));
        for (path, query) in [
            ("/fhir/Observation", Some("category=vital-signs")),
            ("/fhir/Observation", Some("category=laboratory,vital-signs")),
            (
                "/fhir/Observation",
                Some("category=laboratory&category=vital-signs"),
            ),
            ("/fhir/Observation", Some("code=1234")),
            ("/fhir/Observation", None),
            // A read cannot show its category: not granted.
            ("/fhir/Observation/77", None),
        ] {
            let item = run("GET", path, query, &[]).unwrap();
            assert!(
                !scope_permits_item(&scopes, &item, None),
                "{path} {query:?}"
            );
        }
        // Malformed constraints grant nothing.
        for scope in [
            "user/Observation.rs?",
            "user/Observation.rs?category",
            "user/Observation.rs?=x",
        ] {
            let item = run("GET", "/fhir/Observation", Some("category=laboratory"), &[]).unwrap();
            assert!(!scope_permits_item(&[scope], &item, None), "{scope}");
        }
    }

    #[test]
    fn malformed_or_granular_scopes_grant_nothing() {
        for scope in [
            "patient/Patient.sr",
            "patient/Patient.rr",
            "patient/Patient.x",
            "Patient.read",
            "launch/Patient.read",
            "patient/Patient.rs?category=laboratory",
        ] {
            assert!(
                !scope_permits(&[scope], "Patient", Interaction::Read)
                    && !scope_permits(&[scope], "Observation", Interaction::Read),
                "{scope}"
            );
        }
    }

    #[test]
    fn system_level_interactions_need_wildcard_scopes_and_capabilities_none() {
        assert!(scope_permits(&[], "", Interaction::Capabilities));
        assert!(!scope_permits(
            &["user/Patient.rs"],
            "",
            Interaction::SearchSystem
        ));
        assert!(scope_permits(&["user/*.rs"], "", Interaction::SearchSystem));
        assert!(!scope_permits(
            &["user/*.read"],
            SYSTEM_TYPE,
            Interaction::Batch
        ));
        assert!(scope_permits(
            &["system/*.cruds"],
            SYSTEM_TYPE,
            Interaction::Batch
        ));
    }

    #[test]
    fn scope_check_reads_a_classified_item() {
        let item = run("GET", "/fhir/Observation/o1", None, &[]).unwrap();
        assert!(scope_permits_item(&["user/Observation.r"], &item, None));
        assert!(!scope_permits_item(&["user/Patient.r"], &item, None));
        let mut other = item.clone();
        other.context.clear();
        assert!(!scope_permits_item(&["system/*.*"], &other, None));
        for interaction in Interaction::ALL {
            assert_eq!(
                Interaction::from_code(interaction.code()),
                Some(interaction)
            );
        }
    }

    #[test]
    fn operations_need_the_scope_of_what_they_do() {
        let expunge = run("POST", "/fhir/Patient/1/$expunge", None, &[]).unwrap();
        assert!(!scope_permits_item(&["user/*.read"], &expunge, None));
        assert!(!scope_permits_item(&["user/Patient.rs"], &expunge, None));
        assert!(scope_permits_item(&["user/Patient.d"], &expunge, None));
        let merge = run("POST", "/fhir/Patient/$merge", None, &[]).unwrap();
        assert!(!scope_permits_item(&["user/Patient.r"], &merge, None));
        assert!(scope_permits_item(&["user/Patient.u"], &merge, None));
        let everything = run("GET", "/fhir/Patient/1/$everything", None, &[]).unwrap();
        assert!(
            !scope_permits_item(&["user/Patient.rs"], &everything, None),
            "the whole compartment needs every type"
        );
        assert!(scope_permits_item(&["user/*.rs"], &everything, None));
        assert!(scope_permits_item(
            &["patient/*.rs"],
            &everything,
            Some("1")
        ));
        assert!(!scope_permits_item(
            &["patient/*.rs"],
            &everything,
            Some("2")
        ));
        let export = run("GET", "/fhir/$export", None, &[]).unwrap();
        assert!(!scope_permits_item(&["patient/*.rs"], &export, Some("1")));
        assert!(scope_permits_item(&["system/*.rs"], &export, None));
        let meta = run("GET", "/fhir/Patient/1/$meta", None, &[]).unwrap();
        assert!(scope_permits_item(&["user/Patient.r"], &meta, None));
        let versions = run("GET", "/fhir/$versions", None, &[]).unwrap();
        assert!(scope_permits_item(&[], &versions, None));
        assert_eq!(
            scope_grant(&["user/Patient.r"], "Patient", Interaction::Operation),
            ScopeGrant::Denied,
            "an operation not known by name needs full access"
        );
        assert_eq!(
            scope_grant(&["user/*.cruds"], "Patient", Interaction::Operation),
            ScopeGrant::Granted
        );
    }

    #[test]
    fn patient_scopes_reach_only_the_launch_patient() {
        let scopes = ["launch/patient patient/*.rs"];
        let own = run("GET", "/fhir/Patient/123", None, &[]).unwrap();
        let other = run("GET", "/fhir/Patient/456", None, &[]).unwrap();
        let own_labs = run("GET", "/fhir/Observation", Some("patient=123"), &[]).unwrap();
        let all_labs = run("GET", "/fhir/Observation", Some("code=1234-5"), &[]).unwrap();
        assert_eq!(
            scope_grant(&scopes, "Patient", Interaction::Read),
            ScopeGrant::LaunchPatientOnly
        );
        assert!(scope_permits_item(&scopes, &own, Some("123")));
        assert!(!scope_permits_item(&scopes, &other, Some("123")));
        assert!(!scope_permits_item(&scopes, &own, None));
        assert!(scope_permits_item(&scopes, &own_labs, Some("123")));
        assert!(!scope_permits_item(&scopes, &all_labs, Some("123")));
        assert!(
            scope_permits_item(&["user/Patient.r"], &other, Some("123")),
            "user scopes are not tied to a patient"
        );
    }
}
