//! One proxied request's enforcement, once it is routed and its caller identified: classify it
//! into calls, refuse what the route's SMART scopes do not grant and MCP tool calls whose tool
//! definition is not the pinned one (or hold them for a human), run the enforcement pipeline
//! ([`crate::enforce::decide`]) for every call on one pinned policy snapshot (all must permit), and
//! record every decision (and every refusal) before the answer or the forward. Builds an answer only
//! for a blocked request. Never forwards anything itself and never permits what the decision point
//! did not.

use lexecon_classify::{self as classify, RequestParts};
use lexecon_domains::Verdict;
use lexecon_policy_cache::DecisionInput;
use pingora::http::RequestHeader;

use crate::enforce::{self, Binding, Decided, EnforceError, Hold, Refused};
use crate::headers::{APPROVAL_HEADER, REQUEST_ID_HEADER};
use crate::identity::{Actor, Source};
use crate::server::answer::{self, Answer, Refusal};
use crate::server::metrics::Outcome;
use crate::server::routes::Route;
use crate::server::state::ProxySnapshot;
use lexecon_token::{Grant, RequestBinding};

use crate::server::break_glass::{BreakGlass, Declared};
use crate::server::consent;

/// The outcome of classifying and deciding one request.
pub(super) enum Checked {
    /// Every call was permitted; the decision ids, comma-separated, and the decisions to record.
    Permit {
        ids: Option<String>,
        made: Vec<Decided>,
    },
    /// Not forwarded: the answer, the decision id when a decision was made, and the decisions
    /// made up to and including the blocking one (all are recorded).
    Block {
        outcome: Outcome,
        answer: Answer,
        decision_id: Option<String>,
        made: Vec<Decided>,
    },
}

/// Records every decision made for a request in the ledger; with a `request` (a permitted request
/// about to go upstream) of exactly one call, mints the capability token for the route's upstream,
/// bound to that request and the decided context. A recording failure (ledger queue
/// full under `fail_closed`) blocks the request with the failure's status (fail closed).
/// The decisions are given away ([`crate::enforce::DecisionPoint::record_owned`]): the proxy names no ledger
/// entry, so the engine may build them off the request thread.
pub(super) async fn record(
    snap: &ProxySnapshot,
    route: &Route,
    made: Vec<Decided>,
    request: Option<RequestBinding<'_>>,
) -> std::result::Result<Option<http::HeaderValue>, Answer> {
    let mut token = None;
    let single = made.len() == 1;
    for m in made {
        let audience = route.upstream.name.as_str();
        let grant = request.filter(|_| single).map(|request| Grant {
            audience,
            request: Some(request),
        });
        // Kept for the refusal only; the decision itself goes to the recorder.
        let request_id = m.decision.request_id.clone();
        match snap
            .decider
            .record_owned(m.decision, m.context, grant)
            .await
        {
            Ok(recorded) => {
                if let Some(minted) = recorded.capability_token {
                    token = Some(minted.header.clone());
                }
            }
            Err(failure) => return Err(unrecorded(route, &failure, &request_id)),
        }
    }
    Ok(token)
}

/// Records the decisions of a blocked request: its answer is `answer`, or the recording failure.
pub(super) async fn record_blocked(
    snap: &ProxySnapshot,
    route: &Route,
    made: Vec<Decided>,
    answer: Answer,
) -> Answer {
    match record(snap, route, made, None).await {
        Ok(_) => answer,
        Err(failure) => failure,
    }
}

/// The answer when a decision or refusal could not be recorded (ledger queue full under
/// `fail_closed`, writer stopped): the request is blocked with the failure's status.
fn unrecorded(route: &Route, failure: &EnforceError, request_id: &str) -> Answer {
    tracing::error!(route = %route.name, error = %failure, "decision could not be recorded; request blocked");
    answer::refusal(
        Refusal::DecideFailed(failure.status),
        &failure.message,
        request_id,
        Some(&route.domain),
    )
}

/// Records a refusal made before any policy decision, and answers it with `refusal` (or, when it
/// cannot be recorded, with the recording failure).
async fn refuse(
    snap: &ProxySnapshot,
    route: &Route,
    refused: Refused<'_>,
    refusal: Refusal,
    outcome: Outcome,
) -> Checked {
    let answer = match snap.decider.record_refusal(&refused).await {
        Ok(()) => answer::refusal(
            refusal,
            refused.reason,
            refused.request_id,
            Some(&route.domain),
        ),
        Err(failure) => unrecorded(route, &failure, refused.request_id),
    };
    Checked::Block {
        outcome,
        answer,
        decision_id: None,
        made: Vec::new(),
    }
}

/// A permitted FHIR request declaring break-glass opens (or falls in) its actor's session; a start
/// (after the end of an ended session not swept yet) is recorded before the request goes on. The answer
/// when the request must stop: too many sessions open (429), or the start was not recorded.
async fn declare_break_glass(
    snap: &ProxySnapshot,
    route: &Route,
    actor: &Actor,
    classified: &classify::Classified,
    sessions: &BreakGlass,
    caller_request_id: Option<&str>,
) -> Option<(Outcome, Answer)> {
    let lexecon_config::classifier::ClassifierConfig::Fhir(fhir) = &route.classifier else {
        return None;
    };
    let reason = classified
        .items
        .iter()
        .find_map(|item| item.context.get("break_glass").and_then(|v| v.as_str()))?;
    let now = std::time::Instant::now();
    match sessions.declare(&actor.id, &route.domain, reason, fhir.break_glass_ttl, now) {
        Declared::Within => None,
        Declared::Full => {
            let rid = caller_request_id.map_or_else(new_request_id, str::to_string);
            let reason = format!(
                "{} break-glass sessions are open, the most Lexecon tracks; retry when one ends",
                crate::server::break_glass::MAX_SESSIONS
            );
            Some((
                Outcome::RateLimited,
                answer::refusal(Refusal::RateLimited, &reason, &rid, Some(&route.domain)),
            ))
        }
        Declared::Started { ended, started } => {
            for event in ended.iter().chain(std::iter::once(&started)) {
                let recorded = snap
                    .decider
                    .record_break_glass(&event.actor, &event.domain, &event.text)
                    .await;
                if let Err(failure) = recorded {
                    sessions.forget(&actor.id);
                    let rid = caller_request_id.map_or_else(new_request_id, str::to_string);
                    return Some((Outcome::DecideError, unrecorded(route, &failure, &rid)));
                }
            }
            None
        }
    }
}

/// Classifies the request and decides every call; all must permit. Builds an answer only when
/// the request is blocked. An escalated call creates a pending human approval (its id goes into
/// the answer); a retry carrying [`APPROVAL_HEADER`] redeems it instead, exactly once. `upgrade`
/// names the protocol of a handshake the route takes (`websocket`): its calls are decided with
/// `context.upgrade` set, so a policy tells them from a plain `GET`.
pub(super) async fn check(
    snap: &ProxySnapshot,
    route: &Route,
    actor: &Actor,
    req: &RequestHeader,
    body: Option<&[u8]>,
    upgrade: Option<&'static str>,
    break_glass: &BreakGlass,
) -> Checked {
    let parts = RequestParts {
        method: req.method.as_str(),
        path: req.uri.path(),
        query: req.uri.query(),
        headers: &req.headers,
    };
    let caller_request_id = caller_request_id(req);
    let mut classified = match classify::classify(&route.classifier, &parts, body) {
        Ok(c) => c,
        Err(e) => {
            let rid = caller_request_id.map_or_else(new_request_id, str::to_string);
            let reason = e.to_string();
            let refused = Refused {
                request_id: &rid,
                domain: &route.domain,
                actor: Some(&actor.id),
                action: None,
                resource: None,
                by: "classify",
                reason: &reason,
            };
            return refuse(
                snap,
                route,
                refused,
                Refusal::BadRequest,
                Outcome::BadRequest,
            )
            .await;
        }
    };
    if let Some(protocol) = upgrade {
        for item in &mut classified.items {
            item.context
                .insert("upgrade".into(), serde_json::Value::from(protocol));
        }
    }
    if let Some((denied, reason)) = smart_scope_denial(route, actor, &classified) {
        let rid = caller_request_id.map_or_else(new_request_id, str::to_string);
        let refused = Refused {
            request_id: &rid,
            domain: &route.domain,
            actor: Some(&actor.id),
            action: Some(&denied.action),
            resource: denied.resource.as_deref(),
            by: "smart_scope",
            reason: &reason,
        };
        return refuse(
            snap,
            route,
            refused,
            Refusal::InsufficientScope,
            Outcome::Deny,
        )
        .await;
    }
    // Tool pinning: a call of a tool whose definition is not the approved one is refused here,
    // before the policy (or, with `on_change: escalate`, held for a human below).
    let held = match pin_refusal(route, &classified) {
        Some((index, reason)) if route_escalates_pins(route) => Some((index, reason)),
        Some((index, reason)) => {
            let rid = caller_request_id.map_or_else(new_request_id, str::to_string);
            let item = &classified.items[index];
            let refused = Refused {
                request_id: &rid,
                domain: &route.domain,
                actor: Some(&actor.id),
                action: Some(&item.action),
                resource: item.resource.as_deref(),
                by: "tool_pin",
                reason,
            };
            let answer = match snap.decider.record_refusal(&refused).await {
                Ok(()) => answer::mcp_refusal(
                    route.mcp_denial.unwrap_or_default(),
                    &classified,
                    index,
                    "tool_pin",
                    reason,
                    &rid,
                    &route.domain,
                ),
                Err(failure) => unrecorded(route, &failure, &rid),
            };
            tracing::info!(route = %route.name, tool = item.tool.as_deref().unwrap_or_default(), reason, "tool call refused by its pin");
            return Checked::Block {
                outcome: Outcome::Deny,
                answer,
                decision_id: None,
                made: Vec::new(),
            };
        }
        None => None,
    };
    // A batch's further calls count against the rate limit too: one request must not buy many
    // decisions for the price of one.
    if let (Some(limiter), Some(more)) = (&route.limiter, classified.items.len().checked_sub(1)) {
        let more = u32::try_from(more).unwrap_or(u32::MAX);
        if let Err(limited) = limiter.check_n(actor.limit_key(), more) {
            let rid = caller_request_id.map_or_else(new_request_id, str::to_string);
            let reason = format!(
                "rate limit of route {} exceeded for {}: a batch of {} calls counts as {} requests; retry after {}s",
                route.name,
                actor.id,
                more + 1,
                more + 1,
                limited.retry_after_secs()
            );
            return Checked::Block {
                outcome: Outcome::RateLimited,
                answer: answer::refusal(Refusal::RateLimited, &reason, &rid, Some(&route.domain)),
                decision_id: None,
                made: Vec::new(),
            };
        }
    }
    let consents = look_up_consent(snap, route, actor, &classified).await;
    // INVARIANT: every call of the request is decided on the policies of the snapshot the request
    // loaded: routes and policies are swapped together, and a batch never straddles two versions.
    let pinned = &snap.policies;
    let mut ids: Option<String> = None;
    let mut made = Vec::with_capacity(classified.items.len());
    let binding = approval_binding(route, req, body);
    let approval = approval_header(req);
    for (i, item) in classified.items.iter().enumerate() {
        // INVARIANT: identity claims win over request-derived context: an MCP tool's arguments are
        // written by the agent and must never pose as `patient_consent` or `physician_id` claims.
        // Every fact is labelled with where it came from (a policy may require one): the
        // request's unless a credential or an authority set it.
        let mut context = item.context.clone();
        context.extend(actor.context.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut provenance = actor.claim_provenance();
        // INVARIANT: on a consent_lookup route the consent facts are the authority's alone: they
        // win over the request and the claims, and a call about no patient has none.
        match consents.get(i) {
            Some(Some(found)) => found.apply(&mut context, &mut provenance),
            Some(None) => consent::CONTEXT_KEYS.iter().for_each(|k| {
                context.remove(*k);
                provenance.remove(*k);
            }),
            None => {}
        }
        let input = DecisionInput {
            request_id: caller_request_id.map(str::to_string),
            domain: route.domain.clone(),
            actor: actor.id.to_string(),
            action: item.action.clone(),
            resource: item.resource.clone(),
            context,
            at: None,
            provenance,
        };
        let hold = held
            .filter(|(index, _)| *index == i)
            .map(|(_, reason)| Hold {
                reason,
                rule_id: "lexecon:tool_pin",
            });
        let decided = match enforce::decide_held(
            &*snap.decider,
            pinned,
            input,
            approval,
            binding,
            hold,
        )
        .await
        {
            Ok(decided) => decided,
            Err(failure) => {
                tracing::warn!(route = %route.name, error = %failure, "decision failed; request blocked");
                let rid = caller_request_id.map_or_else(new_request_id, str::to_string);
                return Checked::Block {
                    outcome: Outcome::DecideError,
                    answer: answer::refusal(
                        Refusal::DecideFailed(failure.status),
                        &failure.message,
                        &rid,
                        Some(&route.domain),
                    ),
                    decision_id: None,
                    made,
                };
            }
        };
        if decided.is_permit() {
            let id = &decided.decision.decision_id;
            match ids.as_mut() {
                Some(s) => {
                    s.push(',');
                    s.push_str(id);
                }
                None => ids = Some(id.clone()),
            }
            made.push(decided);
            continue;
        }
        let d = &decided.decision;
        let outcome = if d.decision == Verdict::Escalate {
            Outcome::Escalate
        } else {
            Outcome::Deny
        };
        let answer = answer::blocked(
            d,
            &classified,
            i,
            route.mcp_denial,
            decided.approval_id.as_deref(),
        );
        let decision_id = Some(d.decision_id.clone());
        made.push(decided);
        return Checked::Block {
            outcome,
            answer,
            decision_id,
            made,
        };
    }
    // Break-glass is the caller's declaration; a request it got permitted opens (or falls in) an
    // accountable session, whose start is recorded before the request goes upstream. (A denied
    // declaration is in the ledger as its decision.)
    if let Some((outcome, answer)) = declare_break_glass(
        snap,
        route,
        actor,
        &classified,
        break_glass,
        caller_request_id,
    )
    .await
    {
        // The permits are recorded with the refusal that stopped them.
        return Checked::Block {
            outcome,
            answer,
            decision_id: None,
            made,
        };
    }
    Checked::Permit { ids, made }
}

/// On a route with `consent_lookup`, the consent of every call about a patient (`None` for a call
/// about none): the patient's Consent resources (cached) on the route's upstream or its consent
/// service, evaluated for the call and the caller's credential. Empty on other routes.
async fn look_up_consent(
    snap: &ProxySnapshot,
    route: &Route,
    actor: &Actor,
    classified: &classify::Classified,
) -> Vec<Option<consent::Found>> {
    let Some(lookup) = &route.consent else {
        return Vec::new();
    };
    let caller = lookup.caller(actor);
    let upstream = match lookup.service() {
        Some(name) => snap.upstreams.get(name).map(|u| &**u),
        None => Some(&*route.upstream),
    };
    let mut found = Vec::with_capacity(classified.items.len());
    for item in &classified.items {
        let patient = item.context.get("patient_id").and_then(|v| v.as_str());
        found.push(match patient {
            Some(patient) => Some(
                lookup
                    .decide(upstream, patient, &item.context, &caller)
                    .await,
            ),
            None => None,
        });
    }
    found
}

/// The first `tools/call` of the request that its route's tool pins refuse, with the reason.
fn pin_refusal(route: &Route, classified: &classify::Classified) -> Option<(usize, &'static str)> {
    let pins = route.pins.as_ref()?;
    classified.items.iter().enumerate().find_map(|(i, item)| {
        if item.rpc_method.as_deref() != Some("tools/call") {
            return None;
        }
        let tool = item.tool.as_deref()?;
        pins.check_call(tool).err().map(|reason| (i, reason))
    })
}

/// Whether the route escalates calls of changed tools instead of refusing them.
fn route_escalates_pins(route: &Route) -> bool {
    route
        .pins
        .as_ref()
        .is_some_and(|p| p.on_change == lexecon_config::classifier::PinChange::Escalate)
}

/// What an approval of this request is bound to: on MCP routes the decided call (the JSON-RPC id
/// changes with every retry), elsewhere the request as sent (method, path with query, body).
fn approval_binding<'a>(
    route: &Route,
    req: &'a RequestHeader,
    body: Option<&'a [u8]>,
) -> Binding<'a> {
    if route.mcp_denial.is_some() {
        Binding::Call {
            method: req.method.as_str(),
            path: req.uri.path(),
        }
    } else {
        Binding::Http {
            method: req.method.as_str(),
            path_and_query: req
                .uri
                .path_and_query()
                .map_or_else(|| req.uri.path(), |p| p.as_str()),
            body: body.unwrap_or_default(),
        }
    }
}

/// The approval id a retried request carries, if any.
fn approval_header(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(APPROVAL_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub(super) fn caller_request_id(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

pub(super) fn new_request_id() -> String {
    lexecon_policy_cache::uuid_v7(jiff::Timestamp::now())
}

/// On FHIR routes, an actor whose token carries SMART scopes (the `scope` claim mapped into the
/// context with `claims_to_context: {scope: scope}`) may only perform the interactions those scopes
/// grant; `patient/` scopes reach only the token's launch patient (`patient` claim mapped to
/// `launch_patient`). Checked before any policy decision; actors without scopes are left to policy.
fn smart_scope_denial<'c>(
    route: &Route,
    actor: &Actor,
    classified: &'c classify::Classified,
) -> Option<(&'c classify::ClassifiedItem, String)> {
    if !matches!(
        route.classifier,
        lexecon_config::classifier::ClassifierConfig::Fhir(_)
    ) {
        return None;
    }
    // A header-named or anonymous actor holds no token, so no scopes: its trust is the route's
    // and the policy's (docs/trust.md). A bearer token must carry its scopes (fail closed).
    if actor.source != Source::Credential {
        return None;
    }
    let first = classified.items.first()?;
    let scopes: Vec<&str> = match actor.context.get("scope") {
        Some(serde_json::Value::String(text)) => text.split_whitespace().collect(),
        Some(serde_json::Value::Array(items)) => {
            let mut scopes = Vec::with_capacity(items.len());
            for item in items {
                let Some(text) = item.as_str() else {
                    return Some((first, "the token's scope claim lists a value that is not a string".into()));
                };
                scopes.extend(text.split_whitespace());
            }
            scopes
        }
        Some(_) => {
            return Some((first, "the token's scope claim is neither a string nor a list of strings".into()))
        }
        None => {
            return Some((
                first,
                "the bearer token carries no SMART scopes (context.scope, mapped by identity.jwt.claims_to_context)"
                    .into(),
            ))
        }
    };
    let launch_patient = actor.context.get("launch_patient").and_then(|v| v.as_str());
    let denied = classified
        .items
        .iter()
        .find(|item| !classify::fhir::scope_permits_item(&scopes, item, launch_patient))?;
    let what = format!(
        "the token's SMART scopes do not grant {} on {}",
        denied
            .context
            .get("interaction")
            .and_then(|v| v.as_str())
            .unwrap_or("this interaction"),
        denied.resource.as_deref().unwrap_or("this resource"),
    );
    Some((denied, what))
}
