//! SMART on FHIR scope checks: whether a token's `scope` claim (v1 `patient/*.read`,
//! `user/Observation.write`; v2 `patient/Patient.rs`) allows one FHIR interaction, and whether
//! `patient/` scopes hold the request to the token's launch patient. Pure; fails closed on any
//! scope it does not understand.

use serde_json::Value;

use super::{Interaction, SYSTEM_TYPE};
use crate::ClassifiedItem;

/// The permissions one scope grants, as a bit set over `c r u d s`, and whether it is a
/// `patient/` (launch-patient) scope.
fn scope_bits(scope: &str, resource_type: &str) -> (bool, u8) {
    let Some((context, rest)) = scope.split_once('/') else {
        return (false, 0);
    };
    let patient = match context {
        "patient" => true,
        "user" | "system" => false,
        _ => return (false, 0),
    };
    // Granular v2 scopes (`Observation.rs?category=laboratory`) only cover part of the type;
    // the request line cannot show which part, so they grant nothing here (fail closed).
    if rest.contains('?') {
        return (patient, 0);
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
    (patient, bits)
}

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
/// request line.
pub fn scope_grant(scopes: &[&str], resource_type: &str, interaction: Interaction) -> ScopeGrant {
    let resource_type = if resource_type == SYSTEM_TYPE {
        ""
    } else {
        resource_type
    };
    let needed = match interaction.scope_letter() {
        Some(letter) => match "cruds".find(letter) {
            Some(index) => 1u8 << index,
            None => return ScopeGrant::Denied,
        },
        None if interaction == Interaction::Capabilities => return ScopeGrant::Granted,
        None => ALL_LETTERS,
    };
    // For a system-level interaction only wildcard scopes match.
    let check_type = if resource_type.is_empty() || interaction == Interaction::Batch {
        "*"
    } else {
        resource_type
    };
    let (mut any, mut patient) = (0u8, 0u8);
    for scope in scopes.iter().flat_map(|s| s.split_ascii_whitespace()) {
        match scope_bits(scope, check_type) {
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
    match scope_grant(scopes, resource_type, interaction) {
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
    fn malformed_or_granular_scopes_grant_nothing() {
        for scope in [
            "patient/Patient.sr",
            "patient/Patient.rr",
            "patient/Patient.x",
            "Patient.read",
            "launch/Patient.read",
            "patient/Observation.rs?category=laboratory",
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
