//! Evaluating a patient's FHIR `Consent` resources for one request, as real consent engines do:
//! an active Consent's base provision (`provision.type` in R4, `decision` in R5) and `period`, and
//! its nested `provision[]` exceptions, each possibly restricted to actors
//! (`actor[].reference`), purposes of use (`purpose[]`), data classes (`class[]` in R4,
//! `resourceType[]` in R5: resource types), actions (`action[]`) and a `period`.
//!
//! Semantics, for one request:
//! - a provision applies when each of its restrictions matches the request; a nested provision is
//!   considered only inside a provision that applies;
//! - the most specific applying provision decides: an applying nested provision overrides its
//!   parent, and among applying siblings a deny wins (then the first in document order);
//! - across Consents a deny wins; no applying permit → no consent;
//! - a restriction Lexecon cannot evaluate for this request (the caller's FHIR identity or purpose
//!   is unknown, a class system other than resource types, `securityLabel`, `code`, `data`, …)
//!   counts against the caller: it lets a deny apply and keeps a permit from applying.
//!
//! Pure: no I/O, no clock (`now` is given), no panics on any JSON the FHIR server sends.

use serde_json::Value;

/// The code system of resource types (`class[]` codings naming `Observation`).
pub const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";
/// The code system of `provision.action`.
const CONSENT_ACTION: &str = "http://terminology.hl7.org/CodeSystem/consentaction";
/// Restrictions this evaluator does not interpret: present, they count against the caller.
const UNEVALUATED: [&str; 6] = [
    "securityLabel",
    "code",
    "data",
    "dataPeriod",
    "documentType",
    "expression",
];

/// How a request touches the data: reads (`access`), writes (`correct`), or neither known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// Operations, batches: what they do to the data is not known from the request line.
    Other,
}

/// A purpose of use as a coding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose {
    pub system: String,
    pub code: String,
}

/// What a request asks, in the terms a Consent provision speaks.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// The resource type read or written (`Observation`); `None` when the request may return
    /// several types (`$everything`, `_include`, `_revinclude`, `_contained`).
    pub class: Option<&'a str>,
    pub access: Access,
    /// The caller's FHIR identities (`Practitioner/p1`), from a verified credential; empty when
    /// unknown.
    pub actors: &'a [String],
    /// The purposes of use, from a verified claim or the route's default; empty when unknown.
    pub purposes: &'a [Purpose],
    pub now: jiff::Timestamp,
}

/// A provision's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Permit,
    Deny,
}

impl Kind {
    fn parse(value: Option<&Value>) -> Option<Self> {
        match value.and_then(Value::as_str) {
            Some("permit") => Some(Kind::Permit),
            Some("deny") => Some(Kind::Deny),
            _ => None,
        }
    }

    fn flip(self) -> Self {
        match self {
            Kind::Permit => Kind::Deny,
            Kind::Deny => Kind::Permit,
        }
    }
}

/// The provision that decided a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// Whether it permits.
    pub consent: bool,
    /// `Consent/<id>` (`Consent` when the resource has no id).
    pub consent_id: String,
    /// Its path in the Consent: `provision` (R4 base), `provision.provision[0]` (an exception),
    /// `decision` (R5 base), `provision[1]` (an R5 exception).
    pub provision: String,
}

/// Evaluates `consents` (the resources of a Consent search) for `asked`; `None` when none decides.
pub fn evaluate(consents: &[Value], asked: &Asked<'_>) -> Option<Decided> {
    let mut permit = None;
    for consent in consents {
        let Some((kind, provision)) = decide_consent(consent, asked) else {
            continue;
        };
        let decided = || Decided {
            consent: kind == Kind::Permit,
            consent_id: consent
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| "Consent".to_owned(), |id| format!("Consent/{id}")),
            provision,
        };
        match kind {
            // Across Consents a deny wins: the first one decides.
            Kind::Deny => return Some(decided()),
            Kind::Permit => {
                if permit.is_none() {
                    permit = Some(decided());
                }
            }
        }
    }
    permit
}

/// The verdict and deciding provision path of one Consent resource, if it decides `asked`.
fn decide_consent(consent: &Value, asked: &Asked<'_>) -> Option<(Kind, String)> {
    if consent.get("resourceType").and_then(Value::as_str) != Some("Consent")
        || consent.get("status").and_then(Value::as_str) != Some("active")
    {
        return None;
    }
    // Consent.period (R5; some R4 servers send it too) bounds the whole Consent.
    let consent_period = consent.get("period");
    if let Some(decision) = consent.get("decision") {
        // R5: the base decision, and `provision[]` as its exceptions.
        let kind = Kind::parse(Some(decision))?;
        let root = Node {
            restrictions: None,
            period: consent_period,
            kind: Some(kind),
            children: consent.get("provision"),
        };
        return root.decide("decision", "", asked);
    }
    let provision = consent.get("provision")?;
    let root = Node {
        restrictions: Some(provision),
        period: consent_period,
        kind: Kind::parse(provision.get("type")),
        children: provision.get("provision"),
    };
    root.decide("provision", "provision", asked)
}

/// One provision: the object holding its restrictions (none for an R5 base), an extra period
/// bounding it (the Consent's), its verdict (own or inherited), and its nested provisions.
struct Node<'v> {
    restrictions: Option<&'v Value>,
    period: Option<&'v Value>,
    kind: Option<Kind>,
    children: Option<&'v Value>,
}

impl Node<'_> {
    /// The most specific applying provision at or below this one: (verdict, path).
    /// `prefix` is the path nested provisions are named under.
    fn decide(&self, path: &str, prefix: &str, asked: &Asked<'_>) -> Option<(Kind, String)> {
        if !self.applies(asked) {
            return None;
        }
        let mut best: Option<(Kind, String)> = None;
        let children = self
            .children
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for (i, child) in children.enumerate() {
            // A nested provision without a type is an exception: the opposite of its parent.
            let kind = Kind::parse(child.get("type")).or(self.kind.map(Kind::flip));
            let node = Node {
                restrictions: Some(child),
                period: None,
                kind,
                children: child.get("provision"),
            };
            let child_path = if prefix.is_empty() {
                format!("provision[{i}]")
            } else {
                format!("{prefix}.provision[{i}]")
            };
            let Some(hit) = node.decide(&child_path, &child_path, asked) else {
                continue;
            };
            // Among applying siblings a deny wins; else the first.
            match &best {
                None => best = Some(hit),
                Some((Kind::Permit, _)) if hit.0 == Kind::Deny => best = Some(hit),
                Some(_) => {}
            }
        }
        best.or_else(|| self.kind.map(|kind| (kind, path.to_owned())))
    }

    /// Whether every restriction matches; one that cannot be evaluated lets only a deny apply.
    fn applies(&self, asked: &Asked<'_>) -> bool {
        let mut unknown = false;
        let outer = period(self.period, asked.now);
        let own = self.restrictions.map_or([Some(true); 6], |r| {
            [
                period(r.get("period"), asked.now),
                actor(r.get("actor"), asked.actors),
                purpose(r.get("purpose"), asked.purposes),
                both(
                    class(r.get("class"), asked.class),
                    class(r.get("resourceType"), asked.class),
                ),
                action(r.get("action"), asked.access),
                unevaluated(r),
            ]
        });
        for test in std::iter::once(outer).chain(own) {
            match test {
                Some(true) => {}
                Some(false) => return false,
                None => unknown = true,
            }
        }
        !unknown || self.kind == Some(Kind::Deny)
    }
}

/// Two restrictions that must both match.
fn both(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// `Some(true)` when a list restriction is absent or empty, `None` when it is not a list.
fn list(value: Option<&Value>) -> Result<&[Value], Option<bool>> {
    match value {
        None => Err(Some(true)),
        Some(Value::Array(items)) if items.is_empty() => Err(Some(true)),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(None),
    }
}

/// Folds per-entry answers of a list restriction: any match → matches; else any entry that
/// cannot be told → unknown; else does not match.
fn any_of(answers: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut unknown = false;
    for answer in answers {
        match answer {
            Some(true) => return Some(true),
            Some(false) => {}
            None => unknown = true,
        }
    }
    if unknown {
        None
    } else {
        Some(false)
    }
}

fn actor(value: Option<&Value>, actors: &[String]) -> Option<bool> {
    let entries = match list(value) {
        Ok(entries) => entries,
        Err(answer) => return answer,
    };
    any_of(entries.iter().map(|entry| {
        let reference = entry
            .get("reference")
            .and_then(|r| r.get("reference"))
            .and_then(Value::as_str)?;
        if actors.is_empty() {
            return None;
        }
        Some(actors.iter().any(|mine| same_reference(mine, reference)))
    }))
}

/// Two references to the same resource: compared as `Type/id` (an absolute URL's last two
/// segments; a version suffix ignored).
fn same_reference(a: &str, b: &str) -> bool {
    fn type_and_id(reference: &str) -> Option<(&str, &str)> {
        let reference = reference.split('#').next()?;
        let reference = reference
            .split_once("/_history/")
            .map_or(reference, |(r, _)| r);
        let mut segments = reference.trim_end_matches('/').rsplit('/');
        let id = segments.next().filter(|s| !s.is_empty())?;
        let kind = segments.next().filter(|s| !s.is_empty())?;
        Some((kind, id))
    }
    matches!((type_and_id(a), type_and_id(b)), (Some(x), Some(y)) if x == y)
}

fn purpose(value: Option<&Value>, purposes: &[Purpose]) -> Option<bool> {
    let codings = match list(value) {
        Ok(codings) => codings,
        Err(answer) => return answer,
    };
    any_of(codings.iter().map(|coding| {
        let code = coding.get("code").and_then(Value::as_str)?;
        if purposes.is_empty() {
            return None;
        }
        let system = coding.get("system").and_then(Value::as_str);
        Some(
            purposes
                .iter()
                .any(|p| p.code == code && system.is_none_or(|s| s == p.system)),
        )
    }))
}

fn class(value: Option<&Value>, asked: Option<&str>) -> Option<bool> {
    let codings = match list(value) {
        Ok(codings) => codings,
        Err(answer) => return answer,
    };
    any_of(codings.iter().map(|coding| {
        let code = coding.get("code").and_then(Value::as_str)?;
        match coding.get("system").and_then(Value::as_str) {
            None | Some(RESOURCE_TYPES) => Some(code == asked?),
            // A profile, a MIME type: not something the request line tells.
            Some(_) => None,
        }
    }))
}

fn action(value: Option<&Value>, access: Access) -> Option<bool> {
    let concepts = match list(value) {
        Ok(concepts) => concepts,
        Err(answer) => return answer,
    };
    let codings = concepts.iter().flat_map(|c| {
        c.get("coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    });
    let answer = any_of(codings.map(|coding| {
        match coding.get("system").and_then(Value::as_str) {
            None | Some(CONSENT_ACTION) => {}
            Some(_) => return None,
        }
        let code = coding.get("code").and_then(Value::as_str)?;
        match (access, code) {
            (Access::Read, "access" | "use") | (Access::Write, "correct" | "collect") => Some(true),
            (Access::Other, _) => None,
            (_, "access" | "use" | "correct" | "collect" | "disclose") => Some(false),
            _ => None,
        }
    }));
    // A list of concepts without a single coding cannot be read.
    if answer == Some(false)
        && concepts
            .iter()
            .all(|c| c.get("coding").and_then(Value::as_array).is_none())
    {
        return None;
    }
    answer
}

/// `None` when the provision restricts by something this evaluator does not interpret.
fn unevaluated(provision: &Value) -> Option<bool> {
    let restricted = UNEVALUATED.iter().any(|name| match provision.get(*name) {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    });
    (!restricted).then_some(true)
}

/// Whether `now` is inside a FHIR Period (`start`/`end` dateTimes; a bare date counts from its
/// first second for `start` and to its end for `end`): `Some(true)` for an absent period, `None`
/// for one that cannot be read.
pub fn period(period: Option<&Value>, now: jiff::Timestamp) -> Option<bool> {
    let Some(period) = period else {
        return Some(true);
    };
    if !period.is_object() {
        return None;
    }
    let bound = |name: &str, end_of_day: bool| -> Result<Option<jiff::Timestamp>, ()> {
        let Some(value) = period.get(name) else {
            return Ok(None);
        };
        let text = value.as_str().ok_or(())?;
        if let Ok(t) = text.parse::<jiff::Timestamp>() {
            return Ok(Some(t));
        }
        // A date (`2026-12-31`), a year-month or a year: FHIR's partial dates.
        let full = match text.len() {
            4 => format!("{text}-01-01"),
            7 => format!("{text}-01"),
            _ => text.to_owned(),
        };
        let date: jiff::civil::Date = full.parse().map_err(|_| ())?;
        let next = match (text.len(), end_of_day) {
            (_, false) => date,
            (4, true) => date
                .checked_add(jiff::Span::new().years(1))
                .map_err(|_| ())?,
            (7, true) => date
                .checked_add(jiff::Span::new().months(1))
                .map_err(|_| ())?,
            (_, true) => date.tomorrow().map_err(|_| ())?,
        };
        let t: jiff::Timestamp = format!("{next}T00:00:00Z").parse().map_err(|_| ())?;
        Ok(Some(t))
    };
    match (bound("start", false), bound("end", true)) {
        (Ok(start), Ok(end)) => Some(start.is_none_or(|s| s <= now) && end.is_none_or(|e| now < e)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    fn treat() -> Vec<Purpose> {
        vec![Purpose {
            system: "http://terminology.hl7.org/CodeSystem/v3-ActReason".into(),
            code: "TREAT".into(),
        }]
    }

    fn ask<'a>(class: Option<&'a str>, actors: &'a [String], purposes: &'a [Purpose]) -> Asked<'a> {
        Asked {
            class,
            access: Access::Read,
            actors,
            purposes,
            now: now(),
        }
    }

    /// A permit with two exceptions: no MedicationRequest for anyone, nothing for payment.
    fn consent() -> Value {
        json!({
            "resourceType": "Consent", "id": "c-1", "status": "active",
            "provision": {
                "type": "permit",
                "period": {"start": "2020-01-01"},
                "provision": [
                    {"type": "deny", "class": [{"system": RESOURCE_TYPES, "code": "MedicationRequest"}]},
                    {"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HPAYMT"}]},
                ]
            }
        })
    }

    fn decide(consents: &[Value], asked: &Asked<'_>) -> Option<(bool, String, String)> {
        evaluate(consents, asked).map(|d| (d.consent, d.consent_id, d.provision))
    }

    #[test]
    fn the_base_permit_decides_unless_a_nested_deny_applies() {
        let actors = vec!["Practitioner/p1".to_owned()];
        let purposes = treat();
        let c = [consent()];
        assert_eq!(
            decide(&c, &ask(Some("Observation"), &actors, &purposes)),
            Some((true, "Consent/c-1".into(), "provision".into()))
        );
        assert_eq!(
            decide(&c, &ask(Some("MedicationRequest"), &actors, &purposes)),
            Some((false, "Consent/c-1".into(), "provision.provision[0]".into()))
        );
        let payment = vec![Purpose {
            system: "http://terminology.hl7.org/CodeSystem/v3-ActReason".into(),
            code: "HPAYMT".into(),
        }];
        assert_eq!(
            decide(&c, &ask(Some("Observation"), &actors, &payment)),
            Some((false, "Consent/c-1".into(), "provision.provision[1]".into()))
        );
    }

    #[test]
    fn what_cannot_be_told_lets_a_deny_apply_and_keeps_a_permit_from_applying() {
        let c = [consent()];
        // No purpose known: the payment exception may apply, so it does.
        assert_eq!(
            decide(&c, &ask(Some("Observation"), &[], &[])),
            Some((false, "Consent/c-1".into(), "provision.provision[1]".into()))
        );
        // `$everything` returns every class: the MedicationRequest exception applies.
        let purposes = treat();
        assert_eq!(
            decide(&c, &ask(None, &[], &purposes)),
            Some((false, "Consent/c-1".into(), "provision.provision[0]".into()))
        );
        // A permit for one practitioner does not apply to a caller whose identity is unknown.
        let only_p1 = json!({"resourceType": "Consent", "id": "c-2", "status": "active",
            "provision": {"type": "permit", "actor": [{"role": {}, "reference": {"reference": "Practitioner/p1"}}]}});
        assert_eq!(
            decide(
                std::slice::from_ref(&only_p1),
                &ask(Some("Observation"), &[], &purposes)
            ),
            None
        );
        let p1 = vec!["https://ehr.example/fhir/Practitioner/p1".to_owned()];
        assert_eq!(
            decide(
                std::slice::from_ref(&only_p1),
                &ask(Some("Observation"), &p1, &purposes)
            ),
            Some((true, "Consent/c-2".into(), "provision".into()))
        );
        let p2 = vec!["Practitioner/p2".to_owned()];
        assert_eq!(
            decide(&[only_p1], &ask(Some("Observation"), &p2, &purposes)),
            None
        );
        // A restriction this evaluator does not read: a permit does not apply, a deny does.
        let labelled = |kind: &str| {
            json!({"resourceType": "Consent", "id": "c-3", "status": "active",
                "provision": {"type": kind, "securityLabel": [{"code": "R"}]}})
        };
        assert_eq!(
            decide(
                &[labelled("permit")],
                &ask(Some("Observation"), &p1, &purposes)
            ),
            None
        );
        assert_eq!(
            decide(
                &[labelled("deny")],
                &ask(Some("Observation"), &p1, &purposes)
            )
            .map(|d| d.0),
            Some(false)
        );
    }

    #[test]
    fn an_opt_out_base_with_a_permit_exception_for_an_actor_and_a_deeper_deny() {
        let c = [json!({
            "resourceType": "Consent", "id": "opt-out", "status": "active",
            "provision": {"type": "deny", "provision": [{
                "type": "permit",
                "actor": [{"reference": {"reference": "Organization/o1"}}],
                "purpose": [{"code": "TREAT"}],
                "provision": [{"class": [{"system": RESOURCE_TYPES, "code": "Observation"}],
                               "period": {"end": "2026-06-30"}}]
            }]}
        })];
        let o1 = vec!["Practitioner/p9".to_owned(), "Organization/o1".to_owned()];
        let purposes = treat();
        assert_eq!(
            decide(&c, &ask(Some("Condition"), &o1, &purposes)),
            Some((
                true,
                "Consent/opt-out".into(),
                "provision.provision[0]".into()
            ))
        );
        // The untyped grandchild is an exception to its permit (a deny), but its period is over.
        assert_eq!(
            decide(&c, &ask(Some("Observation"), &o1, &purposes)).map(|d| d.0),
            Some(true)
        );
        let other = vec!["Organization/o2".to_owned()];
        assert_eq!(
            decide(&c, &ask(Some("Condition"), &other, &purposes)),
            Some((false, "Consent/opt-out".into(), "provision".into()))
        );
    }

    #[test]
    fn deny_wins_among_siblings_and_across_consents() {
        let c = json!({
            "resourceType": "Consent", "id": "s", "status": "active",
            "provision": {"type": "deny", "provision": [
                {"type": "permit", "class": [{"system": RESOURCE_TYPES, "code": "Observation"}]},
                {"type": "deny", "action": [{"coding": [{"system": CONSENT_ACTION, "code": "access"}]}]}
            ]}
        });
        assert_eq!(
            decide(&[c], &ask(Some("Observation"), &[], &[])),
            Some((false, "Consent/s".into(), "provision.provision[1]".into()))
        );
        let permit = json!({"resourceType": "Consent", "id": "p", "status": "active", "provision": {"type": "permit"}});
        let r5_deny =
            json!({"resourceType": "Consent", "id": "d", "status": "active", "decision": "deny"});
        assert_eq!(
            decide(&[permit, r5_deny], &ask(Some("Observation"), &[], &[])),
            Some((false, "Consent/d".into(), "decision".into()))
        );
    }

    #[test]
    fn r5_exceptions_flip_the_base_decision() {
        let c = [json!({
            "resourceType": "Consent", "id": "r5", "status": "active", "decision": "permit",
            "period": {"start": "2026-01-01", "end": "2026-12-31"},
            "provision": [{"resourceType": [{"system": RESOURCE_TYPES, "code": "MedicationRequest"}]}]
        })];
        assert_eq!(
            decide(&c, &ask(Some("Observation"), &[], &[])),
            Some((true, "Consent/r5".into(), "decision".into()))
        );
        assert_eq!(
            decide(&c, &ask(Some("MedicationRequest"), &[], &[])),
            Some((false, "Consent/r5".into(), "provision[0]".into()))
        );
    }

    #[test]
    fn inactive_expired_unreadable_or_odd_consents_do_not_permit() {
        let asked = ask(Some("Patient"), &[], &[]);
        for consent in [
            json!({"resourceType": "Consent", "id": "x", "status": "inactive", "provision": {"type": "permit"}}),
            json!({"resourceType": "Consent", "id": "x", "status": "active", "provision": {"type": "permit", "period": {"end": "2026-06-01"}}}),
            json!({"resourceType": "Consent", "id": "x", "status": "active", "provision": {"type": "permit", "period": {"start": "2027-01-01"}}}),
            json!({"resourceType": "Consent", "id": "x", "status": "active", "provision": {"type": "permit", "period": {"start": "soon"}}}),
            json!({"resourceType": "Consent", "id": "x", "status": "active", "provision": {"type": "permit", "period": "always"}}),
            json!({"resourceType": "Consent", "id": "x", "status": "active", "provision": {"type": "permit", "actor": "everyone"}}),
            json!({"resourceType": "Consent", "id": "x", "status": "active", "provision": {"period": {"start": "2020"}}}),
            json!({"resourceType": "Consent", "id": "x", "status": "active", "provision": {"type": "allow"}}),
            json!({"resourceType": "Patient", "id": "x", "status": "active", "provision": {"type": "permit"}}),
            json!("Consent"),
            json!(null),
        ] {
            assert_eq!(
                decide(std::slice::from_ref(&consent), &asked),
                None,
                "{consent}"
            );
        }
        assert_eq!(decide(&[], &asked), None);
    }

    #[test]
    fn partial_dates_bound_whole_days_months_and_years() {
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
        let p = json!({"start": "2026-12", "end": "2026"});
        assert_eq!(period(Some(&p), at("2026-12-31T23:59:59Z")), Some(true));
        assert_eq!(period(Some(&p), at("2027-01-01T00:00:00Z")), Some(false));
        assert_eq!(period(Some(&p), at("2026-11-30T23:59:59Z")), Some(false));
        let p = json!({"end": "2026-12-06"});
        assert_eq!(period(Some(&p), at("2026-12-06T23:00:00Z")), Some(true));
        assert_eq!(period(Some(&json!({"end": 2026})), now()), None);
    }

    #[test]
    fn references_compare_as_type_and_id() {
        assert!(same_reference(
            "Practitioner/p1",
            "https://ehr.example/fhir/Practitioner/p1"
        ));
        assert!(same_reference(
            "Practitioner/p1/_history/3",
            "Practitioner/p1"
        ));
        assert!(!same_reference("Practitioner/p1", "Patient/p1"));
        assert!(!same_reference("p1", "p1"));
        assert!(!same_reference("Practitioner/", "Practitioner/"));
    }
}
