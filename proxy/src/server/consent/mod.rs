//! Patient consent looked up, not asserted (issue 15): on a FHIR route with `consent_lookup`, a
//! request about a patient gets `context.patient_consent`, `context.consent_id` and
//! `context.consent_provision` from the patient's own FHIR `Consent` resources —
//! `GET <base>/Consent?patient=<id>&status=active` on the route's upstream, or on the consent
//! service the configuration names — cached per patient for the configured `ttl`, and their
//! provisions evaluated for every request ([`provision`]: actor, purpose of use, data class,
//! action, period; the most specific applying provision decides, a deny wins). The caller's FHIR
//! identity and purpose of use come from its verified credential (or the route's default purpose),
//! never from the request. A lookup that fails (timeout, error status, a body that is not a Bundle)
//! gives no consent — fail closed — and says why in `context.consent_error`.
//!
//! Owns the lookup client (pingora's connector, pooled) and the bounded cache. Never forwards
//! anything of the agent's request, never blocks a thread, holds no lock across an await.

pub mod provision;

use std::sync::Arc;
use std::time::Duration;

use lexecon_config::classifier::{parse_purpose, ConsentLookupConfig};
use lexecon_domains::{Provenance, Provenances};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use serde_json::{Map, Value};

use crate::identity::{Actor, Source};
use crate::server::upstream::Upstream;
use provision::{Access, Asked, Decided, Purpose};

/// Most patients whose Consent resources are cached per route.
const CACHE_CAPACITY: u64 = 100_000;
/// The largest Consent search answer read.
const MAX_BODY: usize = 1024 * 1024;

/// The context keys the lookup sets (and removes when it has nothing to say): facts of an
/// authority, never the caller's.
pub const CONTEXT_KEYS: [&str; 4] = [
    "patient_consent",
    "consent_id",
    "consent_provision",
    "consent_error",
];

/// What the lookup found for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub consent: bool,
    /// The Consent that decided it (`Consent/<id>`).
    pub consent_id: Option<String>,
    /// The provision of that Consent that decided it (`provision.provision[0]`).
    pub provision: Option<String>,
    /// Why there is no answer, when the lookup failed.
    pub error: Option<String>,
}

impl Found {
    fn of(decided: Option<Decided>) -> Self {
        match decided {
            Some(d) => Found {
                consent: d.consent,
                consent_id: Some(d.consent_id),
                provision: Some(d.provision),
                error: None,
            },
            None => Found {
                consent: false,
                consent_id: None,
                provision: None,
                error: None,
            },
        }
    }

    /// Writes the answer into a call's context (over anything the request or a claim said),
    /// labelling each fact it sets as an authority's.
    pub fn apply(&self, context: &mut Map<String, Value>, provenance: &mut Provenances) {
        context.insert("patient_consent".into(), Value::Bool(self.consent));
        for (key, value) in [
            ("consent_id", &self.consent_id),
            ("consent_provision", &self.provision),
            ("consent_error", &self.error),
        ] {
            match value {
                Some(v) => context.insert(key.into(), Value::from(v.as_str())),
                None => context.remove(key),
            };
        }
        for key in CONTEXT_KEYS {
            if context.contains_key(key) {
                provenance.insert(key.to_owned(), Provenance::Authority);
            } else {
                provenance.remove(key);
            }
        }
    }
}

/// The caller in a Consent's terms: its FHIR identities and purposes of use, from its verified
/// credential (and the route's default purpose). Computed once per request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub actors: Vec<String>,
    pub purposes: Vec<Purpose>,
}

/// The consent lookup of one route.
pub struct ConsentLookup {
    base: String,
    timeout: Duration,
    /// The consent service (an upstream's name), when it is not the route's own upstream.
    service: Option<String>,
    actor_claim: String,
    purpose_claim: String,
    purpose: Option<Purpose>,
    connector: Connector,
    /// The active Consent resources of each patient.
    cache: moka::sync::Cache<String, Arc<[Value]>>,
}

impl std::fmt::Debug for ConsentLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentLookup")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// A purpose of use as configured or claimed (`TREAT`, `<system>|<code>`).
fn purpose(text: &str) -> Option<Purpose> {
    parse_purpose(text).map(|(system, code)| Purpose {
        system: system.to_owned(),
        code: code.to_owned(),
    })
}

/// The strings of a claim: one string (space-separated values when `split`), or a list of them.
fn claim_strings(value: Option<&Value>, split: bool) -> Vec<&str> {
    match value {
        Some(Value::String(s)) if split => s.split_whitespace().collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The resource type a request reads or writes, as a Consent's data class; `None` when it may
/// return several types (operations such as `$everything`, searches with `_include`,
/// `_revinclude` or `_contained`) or names none.
pub fn data_class(context: &Map<String, Value>) -> Option<&str> {
    let interaction = context.get("interaction").and_then(Value::as_str)?;
    let single = matches!(
        interaction,
        "read"
            | "vread"
            | "create"
            | "update"
            | "patch"
            | "delete"
            | "history-instance"
            | "history-type"
            | "search-type"
    );
    if !single {
        return None;
    }
    if let Some(Value::Object(params)) = context.get("search_params") {
        let widening = ["_include", "_revinclude", "_contained"];
        if params
            .keys()
            .any(|k| widening.iter().any(|w| k.starts_with(w)))
        {
            return None;
        }
    }
    context.get("resource_type").and_then(Value::as_str)
}

/// Whether a request reads or writes, from its FHIR interaction.
pub fn access(context: &Map<String, Value>) -> Access {
    match context.get("interaction").and_then(Value::as_str) {
        Some(
            "read" | "vread" | "search-type" | "search-system" | "history-instance"
            | "history-type" | "history-system",
        ) => Access::Read,
        Some("create" | "update" | "patch" | "delete") => Access::Write,
        _ => Access::Other,
    }
}

impl ConsentLookup {
    /// The lookup for a route whose FHIR base is `route_base` (`/fhir`; empty for none).
    pub fn new(config: &ConsentLookupConfig, route_base: Option<&str>) -> Self {
        let service = config.upstream.clone();
        let base = match (&config.base_path, &service) {
            (Some(base), _) => base.as_str(),
            (None, None) => route_base.unwrap_or(""),
            (None, Some(_)) => "",
        };
        Self {
            base: base.trim_end_matches('/').to_owned(),
            timeout: config.timeout,
            service,
            actor_claim: config.actor_claim.clone(),
            purpose_claim: config.purpose_claim.clone(),
            purpose: config.purpose.as_deref().and_then(purpose),
            connector: Connector::new(None),
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(config.ttl)
                .build(),
        }
    }

    /// The caller's FHIR identities and purposes of use: from its verified credential only (a
    /// header-named or anonymous actor has none), the purpose defaulting to the route's.
    pub fn caller(&self, actor: &Actor) -> Caller {
        let claims = (actor.source == Source::Credential).then_some(&actor.context);
        let actors = claims
            .map(|c| claim_strings(c.get(&self.actor_claim), false))
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut purposes: Vec<Purpose> = claims
            .map(|c| claim_strings(c.get(&self.purpose_claim), true))
            .unwrap_or_default()
            .into_iter()
            .filter_map(purpose)
            .collect();
        if purposes.is_empty() {
            purposes.extend(self.purpose.clone());
        }
        Caller { actors, purposes }
    }

    /// The upstream named as the consent service, if the route names one (else its own upstream
    /// is asked).
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// The consent of `patient` (a FHIR id, already checked by the classifier) for the call whose
    /// classified context is `context`, asked by `caller`, looked up on `upstream` (`None`: the
    /// consent service is not among the snapshot's upstreams, which validation rules out).
    pub async fn decide(
        &self,
        upstream: Option<&Upstream>,
        patient: &str,
        context: &Map<String, Value>,
        caller: &Caller,
    ) -> Found {
        let Some(upstream) = upstream else {
            return failed(format!(
                "consent lookup: the consent service {:?} is not a configured upstream",
                self.service.as_deref().unwrap_or_default()
            ));
        };
        let consents = match self.consents(upstream, patient).await {
            Ok(consents) => consents,
            Err(error) => return failed(error),
        };
        let asked = Asked {
            class: data_class(context),
            access: access(context),
            actors: &caller.actors,
            purposes: &caller.purposes,
            now: jiff::Timestamp::now(),
        };
        Found::of(provision::evaluate(&consents, &asked))
    }

    /// The active Consent resources of `patient`, cached; a failed lookup is not cached (the next
    /// request asks again).
    async fn consents(&self, upstream: &Upstream, patient: &str) -> Result<Arc<[Value]>, String> {
        if let Some(hit) = self.cache.get(patient) {
            return Ok(hit);
        }
        let target = format!("{}/Consent?patient={patient}&status=active", self.base);
        let consents = match tokio::time::timeout(self.timeout, self.fetch(upstream, &target)).await
        {
            Ok(Ok(bundle)) => active_consents(bundle)?,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(format!(
                    "the consent lookup took longer than {:?}",
                    self.timeout
                ))
            }
        };
        let consents: Arc<[Value]> = consents.into();
        self.cache.insert(patient.to_owned(), consents.clone());
        Ok(consents)
    }

    async fn fetch(&self, upstream: &Upstream, target: &str) -> Result<Value, String> {
        let peer = upstream.next_peer();
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("consent lookup {what}: {e}");
        let (mut session, _) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|e| fail("cannot connect", &e))?;
        let mut req = RequestHeader::build("GET", target.as_bytes(), None)
            .map_err(|e| fail("request", &e))?;
        req.insert_header("host", upstream.name.as_str())
            .and_then(|()| req.insert_header("accept", "application/fhir+json"))
            .map_err(|e| fail("request", &e))?;
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(|e| fail("write", &e))?;
        session
            .finish_request_body()
            .await
            .map_err(|e| fail("write", &e))?;
        session
            .read_response_header()
            .await
            .map_err(|e| fail("read", &e))?;
        let status = session.response_header().map_or(0, |h| h.status.as_u16());
        let mut body = Vec::new();
        while let Some(chunk) = session
            .read_response_body()
            .await
            .map_err(|e| fail("read", &e))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!(
                    "consent lookup: the answer is above {MAX_BODY} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        self.connector
            .release_http_session(session, &peer, Some(Duration::from_secs(30)))
            .await;
        if status != 200 {
            return Err(format!("consent lookup {target} answered {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("consent lookup: not JSON: {e}"))
    }
}

fn failed(error: String) -> Found {
    tracing::warn!(%error, "consent lookup failed; the request has no consent");
    Found {
        consent: false,
        consent_id: None,
        provision: None,
        error: Some(error),
    }
}

/// The active `Consent` resources of a Consent search answer; an error when it is not a Bundle.
fn active_consents(bundle: Value) -> Result<Vec<Value>, String> {
    let Value::Object(mut bundle) = bundle else {
        return Err("consent lookup: the answer is not a FHIR Bundle".into());
    };
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err("consent lookup: the answer is not a FHIR Bundle".into());
    }
    let entries = match bundle.remove("entry") {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    };
    Ok(entries
        .into_iter()
        .filter_map(|mut e| e.get_mut("resource").map(Value::take))
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Consent"))
        .filter(|r| r.get("status").and_then(Value::as_str) == Some("active"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_active_consents_of_a_bundle_are_kept_and_anything_else_is_an_error() {
        let bundle = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "Consent", "id": "a", "status": "active"}},
            {"resource": {"resourceType": "Consent", "id": "b", "status": "inactive"}},
            {"resource": {"resourceType": "Patient", "id": "c", "status": "active"}},
            {"fullUrl": "no resource"},
            "not an entry"
        ]});
        let kept = active_consents(bundle).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0]["id"], "a");
        assert!(active_consents(json!({"resourceType": "Bundle"}))
            .unwrap()
            .is_empty());
        for odd in [
            json!({"resourceType": "OperationOutcome"}),
            json!([]),
            json!("x"),
        ] {
            assert!(active_consents(odd).is_err());
        }
    }

    #[test]
    fn the_answer_overwrites_what_the_request_said() {
        let mut context = Map::new();
        context.insert("patient_consent".into(), json!(true));
        context.insert("consent_id".into(), json!("Consent/forged"));
        context.insert("consent_provision".into(), json!("provision"));
        let mut provenance = Provenances::new();
        failed("down".into()).apply(&mut context, &mut provenance);
        assert_eq!(context["patient_consent"], json!(false));
        assert_eq!(
            provenance,
            Provenances::from([
                ("consent_error".to_owned(), Provenance::Authority),
                ("patient_consent".to_owned(), Provenance::Authority)
            ])
        );
        assert_eq!(context["consent_error"], json!("down"));
        assert!(!context.contains_key("consent_id"));
        assert!(!context.contains_key("consent_provision"));
    }

    #[test]
    fn the_data_class_is_the_type_requested_unless_the_request_can_return_others() {
        let ctx = |v: Value| v.as_object().unwrap().clone();
        let read = ctx(json!({"interaction": "read", "resource_type": "Observation"}));
        assert_eq!(data_class(&read), Some("Observation"));
        assert_eq!(access(&read), Access::Read);
        let search = ctx(
            json!({"interaction": "search-type", "resource_type": "Patient",
            "search_params": {"_id": "123", "_revinclude": "MedicationRequest:patient"}}),
        );
        assert_eq!(data_class(&search), None);
        let iterate = ctx(
            json!({"interaction": "search-type", "resource_type": "Patient",
            "search_params": {"_include:iterate": "x"}}),
        );
        assert_eq!(data_class(&iterate), None);
        let everything = ctx(
            json!({"interaction": "operation", "resource_type": "Patient", "operation": "$everything"}),
        );
        assert_eq!(data_class(&everything), None);
        assert_eq!(access(&everything), Access::Other);
        let create = ctx(json!({"interaction": "create", "resource_type": "MedicationRequest"}));
        assert_eq!(data_class(&create), Some("MedicationRequest"));
        assert_eq!(access(&create), Access::Write);
    }

    #[test]
    fn the_caller_is_taken_from_its_credential_only() {
        let config = ConsentLookupConfig {
            purpose: Some("TREAT".into()),
            ..ConsentLookupConfig::default()
        };
        let lookup = ConsentLookup::new(&config, Some("/fhir"));
        let claims = json!({"fhir_user": "Practitioner/p1", "purpose_of_use": "HPAYMT http://x|Y"});
        let mut actor = Actor {
            id: Arc::from("act_physician:p1"),
            context: claims.as_object().unwrap().clone(),
            source: Source::Credential,
        };
        let caller = lookup.caller(&actor);
        assert_eq!(caller.actors, ["Practitioner/p1"]);
        let codes: Vec<(&str, &str)> = caller
            .purposes
            .iter()
            .map(|p| (p.system.as_str(), p.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                (lexecon_config::classifier::PURPOSE_OF_USE_SYSTEM, "HPAYMT"),
                ("http://x", "Y")
            ]
        );
        // The same facts, not proven by a credential, are not the caller's.
        actor.source = Source::Header;
        let caller = lookup.caller(&actor);
        assert!(caller.actors.is_empty());
        assert_eq!(caller.purposes.len(), 1);
        assert_eq!(caller.purposes[0].code, "TREAT");
    }

    /// A flood of lookups for distinct patients (each answer cached as the lookup caches it) keeps
    /// at most [`CACHE_CAPACITY`] patients per route; a patient evicted is simply looked up again.
    #[test]
    fn a_flood_of_distinct_patients_keeps_the_consent_cache_within_its_capacity() {
        let lookup = ConsentLookup::new(&ConsentLookupConfig::default(), Some("/fhir"));
        let flood = CACHE_CAPACITY + CACHE_CAPACITY / 2;
        let none: Arc<[Value]> = Arc::from(Vec::new());
        for i in 0..flood {
            lookup.cache.insert(format!("p-{i}"), none.clone());
        }
        lookup.cache.run_pending_tasks();
        let kept = lookup.cache.entry_count();
        assert!(
            kept <= CACHE_CAPACITY,
            "{kept} patients cached after a flood of {flood} (capacity {CACHE_CAPACITY})"
        );
        assert!(kept > 0, "the lookup caches answers at all");
    }
}
