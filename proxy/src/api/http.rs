//! The decision API over HTTP: the glue between a request on the admin/API listener and the
//! [`Engine`]. [`DecisionApi::handle`] routes ([`crate::api::router`]), authenticates the caller
//! with the proxy's identity settings, applies the per-caller rate limit, validates the body
//! ([`crate::api::validate`]), decides, records (ledger + capability token), creates or redeems
//! human approvals, and answers with the bodies of [`crate::api::responses`] or an [`ApiError`].
//!
//! Who may do what:
//! - `/health`, `/.well-known/jwks.json` and `/openapi.json` are public; every other endpoint needs
//!   an authenticated caller: a bearer JWT verified against `identity.jwt`, or the trusted actor
//!   header from a loopback peer, or the configured anonymous actor — exactly as on the proxy.
//! - Roles come only with a verified credential (a bearer JWT): the `roles` entry of its identity
//!   context, i.e. the JWT claim mapped with `identity.jwt.claims_to_context: {roles: roles}` or
//!   the `roles` of a local-issuer token (an array of strings, or one string of space- or
//!   comma-separated roles), plus the roles `api.roles` grants its actor id. A caller named by the
//!   trusted actor header or the anonymous actor has no role, whatever `api.roles` says: on
//!   loopback any client can name any actor, so a role there would be the agent's to take.
//! - A decision's `actor` must be the caller itself, unless the caller has the `decider` role (a
//!   trusted service deciding for others). When the caller decides for itself its identity claims
//!   are added to the context and win over same-named body keys, as on the proxy.
//! - Approve and deny need the `approver` role and a caller who is not the approval's actor.
//!
//! The capability token of a permit is minted for the audience in the `x-lexecon-audience` header,
//! or `lexecon-api`. This module holds no lock across an await and does its only blocking work
//! (approval store writes) through [`ApprovalStore::run_blocking`]. It never decides on its own and
//! never answers a failure with a permit.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use lexecon_domains::DomainConfig;
use lexecon_policy_cache::{Decision, DecisionInput};
use serde_json::{json, Map, Value};

use crate::api::error::ApiError;
use crate::api::openapi;
use crate::api::responses::{
    json_response, raw_json_response, ApprovalsResponse, DecisionResponse, DomainsResponse,
    IssuedToken, LegacyDecideResponse, PolicyTemplatesResponse,
};
use crate::api::router::{route, Endpoint};
use crate::api::validate::{
    domain_not_supported, parse_approval_comment, parse_decision_request, parse_legacy_decide,
    FieldError, RequestError,
};
use crate::enforce::{self, Binding, Decided, EnforceError, Pinned};
use crate::engine::Engine;
use crate::headers::AUDIENCE_HEADER;
use crate::identity::{Actor, Identity, Source};
use crate::limit::RouteLimiter;
use lexecon_approvals::Approver;
use lexecon_token::{Grant, Issued};

/// The audience of tokens minted by the API when the caller names none.
pub const DEFAULT_AUDIENCE: &str = "lexecon-api";
/// The role that lets a caller ask for decisions on behalf of another actor.
pub const DECIDER_ROLE: &str = "decider";
/// The identity context key a caller's roles are read from.
pub const ROLES_KEY: &str = "roles";

/// The proxy's running configuration as the decision API reads it: who callers are (the same
/// identity settings as the proxy's) and which upstream circuit breakers are open (`/health`). The
/// server's snapshot implements it, so this module never depends on the server.
pub trait ProxyView: Send + Sync {
    fn identity(&self) -> &Identity;
    /// Every upstream by name, with whether its circuit breaker is open.
    fn breakers(&self) -> Vec<(&str, bool)>;
    /// The policies of the snapshot in force: the decision API decides on the same snapshot as
    /// the proxy (`None`: the engine's own, for a server without a proxy snapshot).
    fn policies(&self) -> &Pinned {
        &None
    }
    /// Why the sidecar refuses every request (no bundle loaded), if it does.
    fn closed(&self) -> Option<&str> {
        None
    }
}

/// One request as the listener read it.
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    /// Path with its query, if any.
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The downstream address (the trusted actor header counts only from loopback).
    pub peer: Option<IpAddr>,
    pub body: &'a [u8],
}

/// An authenticated caller and its roles.
#[derive(Debug)]
struct Caller {
    actor: Arc<Actor>,
    roles: Vec<String>,
}

impl Caller {
    fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// A decision, recorded, with what the answer reports about it.
struct Outcome {
    decision: Decision,
    token: Option<IssuedToken>,
    ledger_entry_hash: Option<String>,
    approval_id: Option<String>,
}

/// The decision API of one running `lexecon`. Share it as `Arc<DecisionApi>`.
pub struct DecisionApi {
    engine: Arc<Engine>,
    limiter: Option<RouteLimiter>,
    roles: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for DecisionApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionApi")
            .field("rate_limited", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

impl DecisionApi {
    /// The API over `engine`, with the engine's `api:` settings.
    pub fn new(engine: Arc<Engine>) -> Self {
        let limiter = engine
            .api_settings()
            .rate_limit
            .as_ref()
            .map(RouteLimiter::new);
        let roles = engine.api_settings().roles.clone();
        Self {
            engine,
            limiter,
            roles,
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Answers one request. `proxy` is the proxy's snapshot in force (identity, upstreams).
    pub async fn handle(
        &self,
        req: ApiRequest<'_>,
        proxy: &dyn ProxyView,
    ) -> http::Response<Vec<u8>> {
        match self.dispatch(req, proxy).await {
            Ok(response) => response,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(path = req.path, error = %e, "decision API error");
                }
                e.to_response()
            }
        }
    }

    async fn dispatch(
        &self,
        req: ApiRequest<'_>,
        proxy: &dyn ProxyView,
    ) -> Result<http::Response<Vec<u8>>, ApiError> {
        let endpoint = route(req.method, req.path)?;
        match endpoint {
            Endpoint::Health => return Ok(self.health(proxy)),
            Endpoint::Jwks => {
                return Ok(json_response(
                    http::StatusCode::OK,
                    &self.engine.keys().jwks(),
                ))
            }
            Endpoint::OpenApi => return Ok(openapi::response()),
            _ => {}
        }
        let caller = self.authenticate(&req, proxy)?;
        if let Some(limiter) = &self.limiter {
            limiter
                .check(caller.actor.limit_key())
                .map_err(|limited| ApiError::RateLimited {
                    caller: caller.actor.id.to_string(),
                    retry_after_secs: limited.retry_after_secs(),
                })?;
        }
        let path_only = req.path.split_once('?').map_or(req.path, |(p, _)| p);
        let now = Timestamp::now();
        let store = self.engine.approvals();
        match endpoint {
            Endpoint::DomainDecision { .. } | Endpoint::LegacyDecisionRequest => {
                let domain = endpoint.decision_domain().unwrap_or_default();
                let parsed = parse_decision_request(domain, req.body)?;
                self.check_decidable(proxy, domain)?;
                let input = self.authorize(&caller, parsed.input)?;
                let out = self
                    .decide(
                        proxy,
                        input,
                        parsed.approval_id.as_deref(),
                        path_only,
                        self.audience(&caller, req.headers)?,
                    )
                    .await?;
                let body = DecisionResponse::new(
                    &out.decision,
                    out.token.as_ref(),
                    out.ledger_entry_hash.as_deref(),
                    out.approval_id.as_deref(),
                );
                Ok(raw_json_response(http::StatusCode::OK, body.to_json()))
            }
            Endpoint::LegacyDecide => {
                let legacy = parse_legacy_decide(req.body)?;
                self.check_decidable(proxy, crate::api::router::LEGACY_DOMAIN)?;
                let input = self.authorize(
                    &caller,
                    self.resolve_legacy(proxy, legacy.to_decision_input()),
                )?;
                let out = self
                    .decide(
                        proxy,
                        input,
                        legacy.approval_id.as_deref(),
                        path_only,
                        self.audience(&caller, req.headers)?,
                    )
                    .await?;
                let body = LegacyDecideResponse::new(
                    &legacy,
                    &out.decision,
                    out.token.as_ref(),
                    out.ledger_entry_hash.as_deref(),
                    out.approval_id.as_deref(),
                );
                Ok(json_response(http::StatusCode::OK, &body))
            }
            Endpoint::ListDomains => {
                let snap = self.policies(proxy);
                let configs: Vec<&DomainConfig> = snap
                    .registry
                    .domains()
                    .filter_map(|d| snap.registry.get(d.as_str()))
                    .map(|p| p.config())
                    .collect();
                Ok(json_response(
                    http::StatusCode::OK,
                    &DomainsResponse::new(configs),
                ))
            }
            Endpoint::DomainConfig { domain } => {
                let snap = self.policies(proxy);
                let plugin = snap
                    .registry
                    .get(domain)
                    .ok_or_else(|| domain_not_supported(domain))?;
                Ok(json_response(http::StatusCode::OK, plugin.config()))
            }
            Endpoint::PolicyTemplates { domain } => {
                let snap = self.policies(proxy);
                let plugin = snap
                    .registry
                    .get(domain)
                    .ok_or_else(|| domain_not_supported(domain))?;
                Ok(json_response(
                    http::StatusCode::OK,
                    &PolicyTemplatesResponse::new(plugin.config()),
                ))
            }
            Endpoint::ListApprovals { status } => {
                let approvals = store.list(status, now);
                Ok(json_response(
                    http::StatusCode::OK,
                    &ApprovalsResponse {
                        approvals: &approvals,
                    },
                ))
            }
            Endpoint::GetApproval { id } => {
                Ok(json_response(http::StatusCode::OK, &store.get(id, now)?))
            }
            Endpoint::ApproveApproval { id } | Endpoint::DenyApproval { id } => {
                let approve = matches!(endpoint, Endpoint::ApproveApproval { .. });
                let comment = parse_approval_comment(req.body)?;
                let id = id.to_owned();
                let Caller { actor, roles } = caller;
                let (approval, event) = store
                    .run_blocking(move |s| {
                        let approver = Approver {
                            id: &actor.id,
                            roles: &roles,
                        };
                        if approve {
                            s.approve(&id, approver, comment, now)
                        } else {
                            s.deny(&id, approver, comment, now)
                        }
                    })
                    .await?;
                self.engine
                    .record_approval(&event)
                    .await
                    .map_err(|f| failure_to_api(f, &approval.domain))?;
                Ok(json_response(http::StatusCode::OK, &approval))
            }
            Endpoint::Health | Endpoint::Jwks | Endpoint::OpenApi => Err(ApiError::Internal {
                reason: "public endpoint reached the authenticated dispatch".into(),
            }),
        }
    }

    /// The caller of `req` with its roles (the JWT's `roles` plus `api.roles` for its id, for a
    /// caller proven by a credential only); 401 when it has no identity.
    fn authenticate(
        &self,
        req: &ApiRequest<'_>,
        proxy: &dyn ProxyView,
    ) -> Result<Caller, ApiError> {
        let actor = proxy
            .identity()
            .identify(req.headers, req.peer)
            .map_err(|e| ApiError::Unauthorized {
                reason: e.to_string(),
            })?;
        // INVARIANT: roles only with a verified credential (see the module notes).
        let mut roles = Vec::new();
        if actor.source == Source::Credential {
            roles = roles_of(&actor);
            if let Some(granted) = self.roles.get(&*actor.id) {
                roles.extend(granted.iter().cloned());
            }
        }
        Ok(Caller { actor, roles })
    }

    /// The audience of the caller's capability token: the one it asked for, if it is the default
    /// or `api.audiences` lets one of its roles have it; 403 otherwise (a token for the order
    /// system must not be had by asking for it).
    fn audience<'h>(
        &self,
        caller: &Caller,
        headers: &'h http::HeaderMap,
    ) -> Result<&'h str, ApiError> {
        let asked = audience(headers)?;
        let allowed = asked == DEFAULT_AUDIENCE
            || caller.roles.iter().any(|role| {
                self.engine
                    .api_settings()
                    .audiences
                    .get(role)
                    .is_some_and(|auds| auds.iter().any(|a| a == asked))
            });
        if allowed {
            Ok(asked)
        } else {
            Err(ApiError::Forbidden {
                reason: format!(
                    "{} may not have a capability token for audience {asked:?}: api.audiences \
                     grants it to none of its roles ({})",
                    caller.actor.id,
                    if caller.roles.is_empty() {
                        "it has none".to_owned()
                    } else {
                        caller.roles.join(", ")
                    }
                ),
            })
        }
    }

    /// The policies in force: the proxy snapshot's (one swap for routes and policies), or the
    /// engine's when the server has no proxy snapshot with policies.
    fn policies(&self, proxy: &dyn ProxyView) -> Arc<lexecon_policy_cache::PolicySnapshot> {
        match proxy.policies() {
            Some(p) => p.clone(),
            None => self.engine.snapshot(),
        }
    }

    /// 404 `Domain not supported` unless the snapshot has the domain's plugin and a policy for it.
    fn check_decidable(&self, proxy: &dyn ProxyView, domain: &str) -> Result<(), ApiError> {
        let snap = self.policies(proxy);
        if snap.registry.get(domain).is_some() && snap.policy(domain).is_some() {
            Ok(())
        } else {
            Err(domain_not_supported(domain).into())
        }
    }

    /// Rewrites Lexecon 1.x un-prefixed actor and action names to their typed form the way
    /// [`lexecon_domains::DomainRegistry::resolve_legacy`] does (`model` → `act_ai_agent:model`,
    /// `search` → `axn_search:search`), so typed policy rules match 1.x requests. Names the domain
    /// does not know are left for the engine to reject.
    fn resolve_legacy(&self, proxy: &dyn ProxyView, mut input: DecisionInput) -> DecisionInput {
        let snap = self.policies(proxy);
        let Some(plugin) = snap.registry.get(&input.domain) else {
            return input;
        };
        let config = plugin.config();
        let type_of = |r: &str| r.split_once(':').map_or(r, |(t, _)| t).to_owned();
        let actor_type = type_of(&input.actor);
        if config.actor_type(&actor_type).is_none() {
            if let Some(id) = plugin.legacy_actor_type(&actor_type) {
                input.actor = format!("{id}:{}", input.actor);
            }
        }
        let action_type = type_of(&input.action);
        if config.action_type(&action_type).is_none() {
            if let Some(id) = plugin.legacy_action_type(&action_type) {
                input.action = format!("{id}:{}", input.action);
            }
        }
        input
    }

    /// The body's actor must be the caller unless the caller is a `decider`; a caller deciding for
    /// itself has its identity claims added to the context (claims win).
    fn authorize(
        &self,
        caller: &Caller,
        mut input: DecisionInput,
    ) -> Result<DecisionInput, ApiError> {
        if input.actor == *caller.actor.id {
            input.context.extend(
                caller
                    .actor
                    .context
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            // The body's keys are the caller's assertions; its claims are its credential's.
            input.provenance.extend(caller.actor.claim_provenance());
            Ok(input)
        } else if caller.has_role(DECIDER_ROLE) {
            Ok(input)
        } else {
            Err(ApiError::Forbidden {
                reason: format!(
                    "{} may only ask for its own decisions, not for actor {} (that needs the `{DECIDER_ROLE}` role, which only a bearer token carries)",
                    caller.actor.id, input.actor
                ),
            })
        }
    }

    /// Runs the enforcement pipeline ([`enforce::decide`], then record and mint): an approval is
    /// bound to `POST path` and the decided call (domain, actor, action, resource, context).
    async fn decide(
        &self,
        proxy: &dyn ProxyView,
        input: DecisionInput,
        approval: Option<&str>,
        path: &str,
        audience: &str,
    ) -> Result<Outcome, ApiError> {
        let domain = input.domain.clone();
        let binding = Binding::Call {
            method: "POST",
            path,
        };
        let Decided {
            decision,
            context,
            approval_id,
        } = enforce::decide(&*self.engine, proxy.policies(), input, approval, binding)
            .await
            .map_err(|f| failure_to_api(f, &domain))?;
        let recorded = self
            .engine
            .record_decision(&decision, &context, Some(Grant::to(audience)))
            .await
            .map_err(|f| failure_to_api(f, &domain))?;
        let token = match recorded.capability_token {
            Some(t) => Some(issued(t.issued.clone())?),
            None => None,
        };
        Ok(Outcome {
            decision,
            token,
            ledger_entry_hash: recorded.ledger_entry_hash,
            approval_id,
        })
    }

    /// `GET /health`: 200 when every check passes, 503 when no policy is loaded or the ledger
    /// writer failed or its queue is full. Open upstream breakers are reported, not failed: the
    /// decision API still works without them.
    fn health(&self, proxy: &dyn ProxyView) -> http::Response<Vec<u8>> {
        let snap = self.policies(proxy);
        let loaded = snap.policies.len();
        let closed = proxy.closed();
        let policy_ok = loaded > 0 && closed.is_none();
        let mut domains: Vec<&str> = snap.policies.keys().map(String::as_str).collect();
        domains.sort_unstable();
        let policy = json!({
            "status": if policy_ok { "ok" } else { "failed" },
            "loaded": loaded,
            "version": snap.version,
            "domains": domains,
            "error": closed.or((loaded == 0).then_some("no policy loaded")),
        });
        let (ledger_ok, ledger) = match self.engine.ledger() {
            None => (true, json!({"status": "disabled"})),
            Some(handle) => {
                let s = handle.stats();
                let full = s.queue_capacity > 0 && s.queue_depth >= s.queue_capacity;
                // A writer that stopped for good (an unverifiable tail, a panic) needs a restart;
                // an outage heals by itself: the two are told apart.
                let stopped = handle.stopped();
                let error = if let Some(reason) = &stopped {
                    Some(format!(
                        "the ledger writer stopped and needs a restart: {reason}"
                    ))
                } else if s.failed {
                    Some(match handle.last_error() {
                        Some(e) => format!("the ledger writer cannot write ({e}); appends fail until it recovers"),
                        None => "the ledger writer cannot write (an I/O error); appends fail until it recovers".to_owned(),
                    })
                } else if full {
                    Some("the ledger queue is full".to_owned())
                } else {
                    None
                };
                let status = match (&stopped, &error) {
                    (Some(_), _) => "stopped",
                    (None, Some(_)) => "failed",
                    (None, None) => "ok",
                };
                (
                    error.is_none(),
                    json!({
                        "status": status,
                        "queue_depth": s.queue_depth,
                        "queue_capacity": s.queue_capacity,
                        "head_seq": s.head_seq,
                        "durable_seq": s.durable_seq,
                        "last_error": error,
                    }),
                )
            }
        };
        let breakers: Map<String, Value> = proxy
            .breakers()
            .into_iter()
            .map(|(name, open)| {
                let state = if open { "open" } else { "closed" };
                (name.to_owned(), Value::from(state))
            })
            .collect();
        let any_open = breakers.values().any(|v| v == "open");
        let healthy = policy_ok && ledger_ok;
        let body = json!({
            "status": if healthy { "ok" } else { "unavailable" },
            "version": env!("CARGO_PKG_VERSION"),
            "node_id": self.engine.node_id(),
            "timestamp": Timestamp::now(),
            "checks": {
                "policy": policy,
                "ledger_writer": ledger,
                "upstreams": {
                    "status": if any_open { "degraded" } else { "ok" },
                    "breakers": breakers,
                },
            },
        });
        let status = if healthy {
            http::StatusCode::OK
        } else {
            http::StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, &body)
    }
}

/// The `roles` of an identity context: an array of strings or a space/comma separated string.
fn roles_of(actor: &Actor) -> Vec<String> {
    match actor.context.get(ROLES_KEY) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => s
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The audience the caller asked for (`x-lexecon-audience`), or [`DEFAULT_AUDIENCE`]; the caller
/// need not be allowed it (see [`DecisionApi::audience`]).
fn audience(headers: &http::HeaderMap) -> Result<&str, ApiError> {
    let Some(value) = headers.get(AUDIENCE_HEADER) else {
        return Ok(DEFAULT_AUDIENCE);
    };
    match value.to_str() {
        Ok(a) if !a.is_empty() && a.len() <= 255 && !a.contains(char::is_whitespace) => Ok(a),
        _ => Err(RequestError::InvalidFields {
            fields: vec![FieldError {
                field: format!("header {AUDIENCE_HEADER}"),
                reason: "expected 1 to 255 visible characters without spaces".into(),
            }],
        }
        .into()),
    }
}

/// Maps an engine failure to the API's error: 404 domain, 503 ledger, 422 for a request the
/// domain rejects (unknown actor or action type), 500 otherwise.
fn failure_to_api(f: EnforceError, domain: &str) -> ApiError {
    match f.status {
        404 => domain_not_supported(domain).into(),
        503 => ApiError::Unavailable { reason: f.message },
        400 | 422 => RequestError::InvalidFields {
            fields: vec![FieldError {
                field: "body".into(),
                reason: f.message,
            }],
        }
        .into(),
        _ => ApiError::Internal { reason: f.message },
    }
}

/// The token id and lifetime of a capability token this node just minted, as the minter reported
/// them (no decoding of the token).
fn issued(token: Issued) -> Result<IssuedToken, ApiError> {
    let at = |secs: i64| {
        Timestamp::from_second(secs).map_err(|e| ApiError::Internal {
            reason: format!("minted capability token has an invalid time: {e}"),
        })
    };
    Ok(IssuedToken {
        token_id: token.jti.to_string(),
        issued_at: at(token.iat)?,
        expires_at: at(token.exp)?,
        token: token.token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(context: Value) -> Actor {
        Actor {
            id: Arc::from("act_human:alice"),
            context: context.as_object().cloned().unwrap_or_default(),
            source: Source::Credential,
        }
    }

    #[test]
    fn roles_come_from_an_array_or_a_separated_string() {
        assert_eq!(
            roles_of(&actor(json!({"roles": ["approver", "decider"]}))),
            vec!["approver", "decider"]
        );
        assert_eq!(
            roles_of(&actor(json!({"roles": "approver, auditor decider"}))),
            vec!["approver", "auditor", "decider"]
        );
        assert!(roles_of(&actor(json!({"tenant": "acme"}))).is_empty());
        assert!(roles_of(&actor(json!({"roles": 3}))).is_empty());
    }

    #[test]
    fn audience_defaults_and_rejects_blank_or_spaced_values() {
        let mut h = http::HeaderMap::new();
        assert_eq!(audience(&h).unwrap(), DEFAULT_AUDIENCE);
        h.insert(AUDIENCE_HEADER, "payments-api".parse().unwrap());
        assert_eq!(audience(&h).unwrap(), "payments-api");
        h.insert(AUDIENCE_HEADER, "a b".parse().unwrap());
        assert_eq!(
            audience(&h).unwrap_err().status(),
            http::StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn engine_failures_map_to_api_statuses() {
        let cases = [
            (404, http::StatusCode::NOT_FOUND),
            (503, http::StatusCode::SERVICE_UNAVAILABLE),
            (400, http::StatusCode::UNPROCESSABLE_ENTITY),
            (500, http::StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (status, expected) in cases {
            let e = failure_to_api(EnforceError::new(status, "x"), "finance");
            assert_eq!(e.status(), expected, "{status}");
        }
    }

    #[test]
    fn issued_token_reports_the_minters_jti_and_lifetime() {
        let jti = uuid::Uuid::nil();
        let t = issued(Issued {
            token: "h.p.s".into(),
            jti,
            iat: 1_700_000_000,
            exp: 1_700_000_060,
        })
        .unwrap();
        assert_eq!(t.token, "h.p.s");
        assert_eq!(t.token_id, jti.to_string());
        assert_eq!(t.issued_at.as_second(), 1_700_000_000);
        assert_eq!(t.expires_at.as_second() - t.issued_at.as_second(), 60);
        let out_of_range = Issued {
            token: "h.p.s".into(),
            jti,
            iat: i64::MAX,
            exp: i64::MAX,
        };
        assert!(issued(out_of_range).is_err());
    }
}
