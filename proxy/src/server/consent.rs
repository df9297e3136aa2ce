//! Patient consent looked up, not asserted (issue 15): on a FHIR route with `consent_lookup`, a
//! request about a patient gets `context.patient_consent` and `context.consent_id` from the FHIR
//! server's own `Consent` resources — `GET <base>/Consent?patient=<id>&status=active` on the
//! route's upstream — evaluated here (active, in period, a permit or deny provision) and cached
//! per patient for the configured `ttl`. A deny provision wins over a permit. A lookup that fails
//! (timeout, error status, a body that is not a Bundle) gives no consent — fail closed — and says
//! why in `context.consent_error`.
//!
//! Owns the lookup client (pingora's connector, pooled) and the bounded cache. Never forwards
//! anything of the agent's request, never blocks a thread, holds no lock across an await.

use std::sync::Arc;
use std::time::Duration;

use lexecon_config::classifier::ConsentLookupConfig;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use serde_json::{Map, Value};

use crate::server::upstream::Upstream;

/// Most patients whose answer is cached per route.
const CACHE_CAPACITY: u64 = 100_000;
/// The largest Consent search answer read.
const MAX_BODY: usize = 1024 * 1024;

/// What the lookup found for one patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub consent: bool,
    /// The Consent that decided it (`Consent/<id>`).
    pub consent_id: Option<String>,
    /// Why there is no answer, when the lookup failed.
    pub error: Option<String>,
}

impl Found {
    /// Writes the answer into a classified call's context (over anything the request said).
    pub fn apply(&self, context: &mut Map<String, Value>) {
        context.insert("patient_consent".into(), Value::Bool(self.consent));
        match &self.consent_id {
            Some(id) => context.insert("consent_id".into(), Value::from(id.as_str())),
            None => context.remove("consent_id"),
        };
        match &self.error {
            Some(e) => context.insert("consent_error".into(), Value::from(e.as_str())),
            None => context.remove("consent_error"),
        };
    }
}

/// The consent lookup of one route.
pub struct ConsentLookup {
    base: String,
    timeout: Duration,
    connector: Connector,
    cache: moka::sync::Cache<String, Arc<Found>>,
}

impl std::fmt::Debug for ConsentLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentLookup")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ConsentLookup {
    /// The lookup for a route whose FHIR base is `base` (`/fhir`; empty for none).
    pub fn new(config: &ConsentLookupConfig, base: Option<&str>) -> Self {
        Self {
            base: base.unwrap_or("").trim_end_matches('/').to_owned(),
            timeout: config.timeout,
            connector: Connector::new(None),
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(config.ttl)
                .build(),
        }
    }

    /// The consent of `patient` (a FHIR id, already checked by the classifier), cached.
    pub async fn of(&self, upstream: &Upstream, patient: &str) -> Arc<Found> {
        if let Some(hit) = self.cache.get(patient) {
            return hit;
        }
        let target = format!("{}/Consent?patient={patient}&status=active", self.base);
        let found = match tokio::time::timeout(self.timeout, self.fetch(upstream, &target)).await {
            Ok(Ok(bundle)) => evaluate(&bundle, jiff::Timestamp::now()),
            Ok(Err(e)) => failed(e),
            Err(_) => failed(format!(
                "the consent lookup took longer than {:?}",
                self.timeout
            )),
        };
        let found = Arc::new(found);
        // A failed lookup is not cached: the next request asks again.
        if found.error.is_none() {
            self.cache.insert(patient.to_owned(), found.clone());
        }
        found
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
        error: Some(error),
    }
}

/// Evaluates a `Consent` search Bundle as of `now`: an active Consent in period whose provision
/// denies decides `false`; else one that permits decides `true`; else there is no consent.
/// Reads R4 (`provision.type`) and R5 (`decision`) shapes.
pub fn evaluate(bundle: &Value, now: jiff::Timestamp) -> Found {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return failed("consent lookup: the answer is not a FHIR Bundle".into());
    }
    let consents = bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Consent"))
        .filter(|r| r.get("status").and_then(Value::as_str) == Some("active"));
    let (mut permit, mut deny) = (None, None);
    for consent in consents {
        let provision = consent.get("provision");
        let period = provision
            .and_then(|p| p.get("period"))
            .or_else(|| consent.get("period"));
        if !in_period(period, now) {
            continue;
        }
        let verdict = consent
            .get("decision")
            .or_else(|| provision.and_then(|p| p.get("type")))
            .and_then(Value::as_str);
        let id = consent
            .get("id")
            .and_then(Value::as_str)
            .map(|id| format!("Consent/{id}"));
        match verdict {
            Some("deny") => deny = deny.or(id.or(Some("Consent".into()))),
            Some("permit") => permit = permit.or(id.or(Some("Consent".into()))),
            _ => {}
        }
    }
    match (deny, permit) {
        (Some(id), _) => Found {
            consent: false,
            consent_id: Some(id),
            error: None,
        },
        (None, Some(id)) => Found {
            consent: true,
            consent_id: Some(id),
            error: None,
        },
        (None, None) => Found {
            consent: false,
            consent_id: None,
            error: None,
        },
    }
}

/// Whether `now` is inside a FHIR Period (`start`/`end` dateTimes; a bare date counts from its
/// first second for `start` and to its end for `end`); an absent period always holds, an
/// unreadable bound never does.
fn in_period(period: Option<&Value>, now: jiff::Timestamp) -> bool {
    let Some(period) = period else {
        return true;
    };
    let bound = |name: &str, end_of_day: bool| -> Result<Option<jiff::Timestamp>, ()> {
        let Some(text) = period.get(name).and_then(Value::as_str) else {
            return Ok(None);
        };
        if let Ok(t) = text.parse::<jiff::Timestamp>() {
            return Ok(Some(t));
        }
        let _: jiff::civil::Date = text.parse().map_err(|_| ())?;
        let day: jiff::Timestamp = format!("{text}T00:00:00Z").parse().map_err(|_| ())?;
        let t = if end_of_day {
            day.checked_add(jiff::SignedDuration::from_hours(24))
                .map_err(|_| ())?
        } else {
            day
        };
        Ok(Some(t))
    };
    match (bound("start", false), bound("end", true)) {
        (Ok(start), Ok(end)) => start.is_none_or(|s| s <= now) && end.is_none_or(|e| now < e),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(consents: Value) -> Value {
        let entries: Vec<Value> = consents
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!({"resource": c}))
            .collect();
        json!({"resourceType": "Bundle", "type": "searchset", "entry": entries})
    }

    fn now() -> jiff::Timestamp {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn an_active_permit_in_period_is_consent_and_names_its_id() {
        let b = bundle(
            json!([{"resourceType": "Consent", "id": "c-1", "status": "active",
            "provision": {"type": "permit", "period": {"start": "2026-01-01", "end": "2026-12-31"}}}]),
        );
        let found = evaluate(&b, now());
        assert!(found.consent);
        assert_eq!(found.consent_id.as_deref(), Some("Consent/c-1"));
    }

    #[test]
    fn deny_wins_and_inactive_expired_or_unreadable_consents_do_not_count() {
        let b = bundle(json!([
            {"resourceType": "Consent", "id": "p", "status": "active", "provision": {"type": "permit"}},
            {"resourceType": "Consent", "id": "d", "status": "active", "decision": "deny"}
        ]));
        let found = evaluate(&b, now());
        assert!(!found.consent);
        assert_eq!(found.consent_id.as_deref(), Some("Consent/d"));
        for consent in [
            json!({"resourceType": "Consent", "id": "x", "status": "inactive", "provision": {"type": "permit"}}),
            json!({"resourceType": "Consent", "id": "x", "status": "active", "provision": {"type": "permit", "period": {"end": "2026-06-01"}}}),
            json!({"resourceType": "Consent", "id": "x", "status": "active", "provision": {"type": "permit", "period": {"start": "2027-01-01"}}}),
            json!({"resourceType": "Consent", "id": "x", "status": "active", "provision": {"type": "permit", "period": {"start": "soon"}}}),
            json!({"resourceType": "Patient", "id": "x", "status": "active", "provision": {"type": "permit"}}),
        ] {
            let found = evaluate(&bundle(json!([consent.clone()])), now());
            assert!(!found.consent, "{consent}");
            assert_eq!(found.consent_id, None, "{consent}");
        }
        let empty = evaluate(
            &json!({"resourceType": "Bundle", "type": "searchset"}),
            now(),
        );
        assert!(!empty.consent && empty.error.is_none());
        let odd = evaluate(&json!({"resourceType": "OperationOutcome"}), now());
        assert!(!odd.consent && odd.error.is_some());
    }

    #[test]
    fn the_answer_overwrites_what_the_request_said() {
        let mut context = Map::new();
        context.insert("patient_consent".into(), json!(true));
        failed("down".into()).apply(&mut context);
        assert_eq!(context["patient_consent"], json!(false));
        assert_eq!(context["consent_error"], json!("down"));
    }
}
