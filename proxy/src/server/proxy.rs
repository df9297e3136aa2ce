//! The pingora [`ProxyHttp`] implementation: the request path of the sidecar.
//!
//! `request_filter` runs target and head checks → route → identify → limit → read the whole body
//! (only when the classifier needs it) → classify → decide every call; anything but a permit of
//! every call is answered here and never reaches the upstream: the upstream is contacted only
//! after a permit, and a body that was read is forwarded from the bytes decided on
//! (`request_body_filter` emits them; proxy/vendor/README.md says how pingora lets it). `upstream_peer` picks the address (round robin, circuit breaker),
//! `upstream_request_filter` adds `x-lexecon-decision-id` (and `response_filter` returns it to the
//! client), `fail_to_proxy` answers upstream failures
//! as JSON. On `filter_tools_list` routes the response to a permitted `tools/list` call goes
//! through `response_body_filter` and [`ToolsFilter`]; every other response streams untouched.
//! Per request: one snapshot load, no lock, no string built that is not sent.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use lexecon_config::file::Unmatched;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::{ErrorSource, ErrorType};

use crate::headers::{APPROVAL_HEADER, CAPABILITY_HEADER, DECISION_ID_HEADER};
use crate::server::answer::{self, Refusal};
use crate::server::break_glass::BreakGlass;
use crate::server::check::{
    caller_request_id, check, new_request_id, record, record_blocked, Checked,
};
use crate::server::downstream::{content_length, read_body, send, write_answer, Body};
use crate::server::held::{HeldBodies, Reservation};
use crate::server::metrics::Outcome;
use crate::server::routes::Route;
use crate::server::state::{ProxySnapshot, ProxyState};
use crate::server::tools_filter::ToolsFilter;
use crate::server::upstream::{BreakerTransition, Upstream};
use lexecon_classify::{head, target};
use lexecon_token::RequestBinding;

/// The enforcement proxy.
pub struct LexeconProxy {
    state: Arc<ProxyState>,
    break_glass: Arc<BreakGlass>,
    /// The bytes of bodies held across all requests (`limits.held_bodies`).
    held_bodies: Arc<HeldBodies>,
}

impl LexeconProxy {
    pub fn new(state: Arc<ProxyState>, break_glass: Arc<BreakGlass>) -> Self {
        let held_bodies = HeldBodies::new(Some(state.metrics.held_body_bytes.clone()));
        Self {
            state,
            break_glass,
            held_bodies,
        }
    }

    /// Counts and logs a circuit breaker opening or closing (nothing when its state held).
    fn breaker_changed(&self, upstream: &Upstream, transition: Option<BreakerTransition>) {
        let Some(transition) = transition else {
            return;
        };
        self.state
            .metrics
            .breaker_transition(&upstream.name, transition);
        match transition {
            BreakerTransition::Opened => tracing::warn!(
                upstream = %upstream.name,
                open_for = ?upstream.breaker.open_for(),
                "upstream circuit breaker opened: requests are refused (503) without contacting it"
            ),
            BreakerTransition::Closed => tracing::info!(
                upstream = %upstream.name,
                "upstream circuit breaker closed: requests are forwarded again"
            ),
        }
    }
}

/// Per-request state shared across the phases.
pub struct RequestCtx {
    start: Instant,
    snapshot: Option<Arc<ProxySnapshot>>,
    route: Option<usize>,
    upstream: Option<Arc<Upstream>>,
    /// Built once and sent twice (upstream and back to the client): a clone is a reference count.
    decision_ids: Option<http::HeaderValue>,
    /// The capability token minted for a permitted single-call request.
    capability: Option<http::HeaderValue>,
    outcome: Outcome,
    tries: usize,
    upstream_answered: bool,
    /// The body read whole and decided on: exactly these bytes go upstream, on every attempt.
    held: Option<Bytes>,
    /// Its bytes in the budget of held bodies, given back when the request ends however it ends
    /// (the context is dropped on completion, error and client disconnect alike).
    reservation: Option<Reservation>,
    /// The protocol of an upgrade the route takes (`websocket`): its headers go upstream.
    upgrade: Option<&'static str>,
    /// The `tools/list` filter of the response (`filter_tools_list` routes only).
    tools_list: Option<Box<ToolsFilter>>,
}

impl RequestCtx {
    fn route<'a>(&self, snap: &'a ProxySnapshot) -> Option<&'a Route> {
        self.route.and_then(|i| snap.routes.routes.get(i))
    }
}

#[async_trait]
impl ProxyHttp for LexeconProxy {
    type CTX = RequestCtx;

    /// A client trickling its header block is cut off (`limits.header_timeout`; pingora's hook is
    /// a patch of ours, proxy/vendor/README.md).
    fn request_header_timeout(&self) -> Option<std::time::Duration> {
        Some(self.state.load().limits.header_timeout)
    }

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            start: Instant::now(),
            snapshot: None,
            route: None,
            upstream: None,
            decision_ids: None,
            capability: None,
            outcome: Outcome::Unmatched,
            tries: 0,
            upstream_answered: false,
            held: None,
            reservation: None,
            upgrade: None,
            tools_list: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // INVARIANT: one snapshot per request; everything below uses `snap`.
        let snap = self.state.load();
        ctx.snapshot = Some(snap.clone());
        // INVARIANT: a sidecar with nothing it may enforce (no bundle yet) refuses everything.
        if let Some(reason) = &snap.closed {
            ctx.outcome = Outcome::DecideError;
            let a = answer::refusal(
                Refusal::DecideFailed(503),
                reason,
                &request_id(session),
                None,
            );
            return send(session, a, &[], true).await;
        }

        let req = session.req_header();
        let host_header = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        // INVARIANT: what is routed, classified and decided is the target the upstream receives;
        // one an upstream could read differently is refused before routing (server/target.rs).
        if let Err(e) = target::check(&req.method, &req.uri, host_header) {
            ctx.outcome = Outcome::BadRequest;
            let a = answer::refusal(
                Refusal::BadRequest,
                &e.to_string(),
                &request_id(session),
                None,
            );
            return send(session, a, &[], true).await;
        }
        // INVARIANT: framing and headers an upstream could act on differently are refused here
        // too (lexecon_classify::head), before any body is read.
        let limits = head::HeadLimits {
            bytes: snap.limits.header_bytes,
            count: snap.limits.header_count,
        };
        // A well-formed WebSocket handshake passes here, to be refused below unless its route
        // takes it; every other upgrade (h2c) is refused now.
        let inspected = head::inspect(
            &req.method,
            req.version,
            &req.headers,
            req.uri.query(),
            limits,
        );
        let upgrade = match inspected {
            Ok(head) => head.upgrade,
            Err(e) => {
                let kind = if e.status() == 431 {
                    ctx.outcome = Outcome::TooLarge;
                    Refusal::HeadersTooLarge
                } else {
                    ctx.outcome = Outcome::BadRequest;
                    Refusal::BadRequest
                };
                let a = answer::refusal(kind, &e.to_string(), &request_id(session), None);
                session.set_keepalive(None);
                return send(session, a, &[], false).await;
            }
        };
        let host = host_header.or_else(|| req.uri.host());
        let found = snap
            .routes
            .routes
            .iter()
            .position(|r| r.matches(host, req.uri.path(), &req.method));
        // INVARIANT: an upgraded connection is no longer decided request by request, so a
        // handshake passes only on a route that takes it (`upgrade: [websocket]`), decided as its
        // own call below; unmatched passthrough never takes one.
        if let Some(protocol) = upgrade {
            let route = found.and_then(|i| snap.routes.routes.get(i));
            if !route.is_some_and(|r| r.websocket) {
                ctx.outcome = Outcome::BadRequest;
                let reason = format!(
                    "protocol upgrade ({}) is not allowed on {}; a route takes it with upgrade: [websocket]",
                    protocol.name(),
                    route.map_or_else(|| "unmatched requests".to_string(), |r| format!("route {}", r.name)),
                );
                let domain = route.map(|r| r.domain.as_str());
                let a = answer::refusal(Refusal::BadRequest, &reason, &request_id(session), domain);
                session.set_keepalive(None);
                return send(session, a, &[], false).await;
            }
            ctx.upgrade = Some(protocol.name());
        }
        let Some(index) = found else {
            if snap.unmatched == Unmatched::Passthrough {
                if let Some(up) = &snap.default_upstream {
                    ctx.upstream = Some(up.clone());
                    ctx.outcome = Outcome::Passthrough;
                    return Ok(false);
                }
            }
            ctx.outcome = Outcome::Unmatched;
            let reason = format!(
                "no route takes {} {} (requests no route matches are denied)",
                req.method,
                req.uri.path()
            );
            let a = answer::refusal(Refusal::Unmatched, &reason, &request_id(session), None);
            return send(session, a, &[], true).await;
        };
        ctx.route = Some(index);
        if ctx.upgrade.is_some() {
            // Frames the client sends before the answer must never be read as a next request.
            session.set_keepalive(None);
        }
        let route = &snap.routes.routes[index];
        ctx.upstream = Some(route.upstream.clone());
        if route.passthrough {
            ctx.outcome = Outcome::Passthrough;
            return Ok(false);
        }

        // Identify.
        let peer_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let actor = match snap
            .identity
            .identify(&session.req_header().headers, peer_ip)
        {
            Ok(actor) => actor,
            Err(e) => {
                ctx.outcome = Outcome::Unauthenticated;
                let a = answer::refusal(
                    Refusal::Unauthenticated,
                    &e.to_string(),
                    &request_id(session),
                    Some(&route.domain),
                );
                let www = [("www-authenticate", e.www_authenticate())];
                return send(session, a, &www, true).await;
            }
        };

        // Limit.
        if let Some(limiter) = &route.limiter {
            if let Err(limited) = limiter.check(actor.limit_key()) {
                ctx.outcome = Outcome::RateLimited;
                let secs = limited.retry_after_secs().to_string();
                let reason = format!(
                    "rate limit of route {} {} for {}; retry after {secs}s",
                    route.name,
                    limited.what(),
                    actor.id
                );
                let a = answer::refusal(
                    Refusal::RateLimited,
                    &reason,
                    &request_id(session),
                    Some(&route.domain),
                );
                return send(session, a, &[("retry-after", secs.as_str())], true).await;
            }
        }

        // Read the whole body, only when the classifier needs it (the route's classifier reads
        // bodies, or this request is a FHIR search by POST, whose parameters are its form body).
        // INVARIANT: nothing goes upstream before the decision, whatever the body's size or framing.
        // A handshake has no body (head::inspect): nothing is held, and what follows the 101 are
        // frames that stream through uninspected.
        let needs_body = ctx.upgrade.is_none()
            && (route.needs_body || {
                let req = session.req_header();
                lexecon_classify::needs_body_of(
                    &route.classifier,
                    req.method.as_str(),
                    req.uri.path(),
                )
            });
        let body = if needs_body {
            if content_length(session).is_some_and(|n| n > route.body_limit) {
                return too_large(session, ctx, route).await;
            }
            let budget = (&self.held_bodies, snap.limits.held_bodies);
            match read_body(session, route.body_limit, snap.limits.body_timeout, budget).await? {
                Body::Read(b, reservation) => {
                    ctx.reservation = Some(reservation);
                    Some(b)
                }
                Body::TooLarge => return too_large(session, ctx, route).await,
                Body::Overloaded { started } => {
                    ctx.outcome = Outcome::Overloaded;
                    self.state.metrics.held_bodies_refused.inc();
                    let reason = format!(
                        "Lexecon holds as many request bodies awaiting their decision as \
                         limits.held_bodies allows ({} bytes); nothing was forwarded, retry later",
                        snap.limits.held_bodies
                    );
                    tracing::warn!(route = %route.name, "{reason}");
                    let a = answer::refusal(
                        Refusal::Overloaded,
                        &reason,
                        &request_id(session),
                        Some(&route.domain),
                    );
                    if started {
                        session.set_keepalive(None);
                    }
                    return send(session, a, &[("retry-after", "1")], !started).await;
                }
                Body::TimedOut => {
                    ctx.outcome = Outcome::BodyTimeout;
                    session.set_keepalive(None);
                    let reason = format!(
                        "the request body did not arrive within {:?}",
                        snap.limits.body_timeout
                    );
                    let a = answer::refusal(
                        Refusal::BodyTimeout,
                        &reason,
                        &request_id(session),
                        Some(&route.domain),
                    );
                    return send(session, a, &[], false).await;
                }
            }
        } else {
            None
        };

        let checked = check(
            &snap,
            route,
            &actor,
            session.req_header(),
            body.as_deref(),
            ctx.upgrade,
            &self.break_glass,
        )
        .await;
        match checked {
            Checked::Permit { ids, made } => {
                let contexts = made.iter().map(|m| &m.context);
                let tools_list =
                    ToolsFilter::for_request(&snap, index, &actor, contexts, body.as_deref());
                // The token travels with this request: bind it to what the upstream receives.
                let req = session.req_header();
                let target = req
                    .uri
                    .path_and_query()
                    .map_or_else(|| req.uri.path(), |pq| pq.as_str());
                let binding = RequestBinding {
                    method: req.method.as_str(),
                    target,
                    body: body.as_deref(),
                };
                match record(&snap, route, made, Some(binding)).await {
                    Ok(token) => {
                        ctx.held = body;
                        ctx.tools_list = tools_list;
                        ctx.decision_ids = ids
                            .map(http::HeaderValue::try_from)
                            .transpose()
                            .map_err(|e| {
                                Error::explain(
                                    ErrorType::InternalError,
                                    format!("decision ids are not a header value: {e}"),
                                )
                            })?;
                        ctx.capability = token;
                        ctx.outcome = Outcome::Permit;
                        Ok(false)
                    }
                    Err(answer) => {
                        ctx.outcome = Outcome::DecideError;
                        send(session, answer, &[], !needs_body).await
                    }
                }
            }
            Checked::Block {
                outcome,
                answer,
                decision_id,
                made,
            } => {
                let answer = record_blocked(&snap, route, made, answer).await;
                ctx.outcome = outcome;
                let id_header = decision_id.as_deref().map(|id| (DECISION_ID_HEADER, id));
                let headers: &[(&'static str, &str)] = match &id_header {
                    Some(h) => std::slice::from_ref(h),
                    None => &[],
                };
                send(session, answer, headers, !needs_body).await
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(held) = &ctx.held else {
            // A route whose classifier does not read the body: it streams as it comes, the
            // decision having been made on the head alone.
            return Ok(());
        };
        // INVARIANT: the body was read to its end in `request_filter`, so pingora calls this once
        // per upstream attempt, at the end of the body (with its retry-buffer copy, or nothing
        // above 64 KiB): send exactly the bytes that were decided on, every attempt.
        *body = Some(if end_of_stream {
            held.clone()
        } else {
            Bytes::new()
        });
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(upstream) = ctx.upstream.clone() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no upstream selected for the request",
            ));
        };
        if !upstream.breaker.allow() {
            ctx.outcome = Outcome::CircuitOpen;
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "upstream circuit breaker is open",
            ));
        }
        ctx.tries += 1;
        Ok(Box::new(upstream.next_peer()))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_request.remove_header("expect");
        // Hop-by-hop headers are for the client's connection only — but for the handshake of an
        // upgrade the route takes, whose `Connection: Upgrade` and `Upgrade: websocket` pingora
        // has normalised and must carry upstream for the 101 to come back.
        let upgrading = ctx.upgrade.is_some();
        let hop_by_hop: Vec<http::HeaderName> = upstream_request
            .headers
            .keys()
            .filter(|name| head::is_hop_by_hop(name))
            .filter(|name| {
                !(upgrading
                    && (*name == http::header::CONNECTION || *name == http::header::UPGRADE))
            })
            .cloned()
            .collect();
        for name in &hop_by_hop {
            upstream_request.remove_header(name);
        }
        // A client may not forge a decision id.
        upstream_request.remove_header(DECISION_ID_HEADER);
        // Nor a capability token: only the one minted for this request goes upstream.
        upstream_request.remove_header(CAPABILITY_HEADER);
        // The approval a retry redeemed is for Lexecon, not the upstream.
        upstream_request.remove_header(APPROVAL_HEADER);
        if let Some(ids) = &ctx.decision_ids {
            upstream_request.insert_header(DECISION_ID_HEADER, ids.clone())?;
        }
        if let Some(token) = ctx.capability.take() {
            upstream_request.insert_header(CAPABILITY_HEADER, token)?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !ctx.upstream_answered {
            ctx.upstream_answered = true;
            if let Some(up) = &ctx.upstream {
                self.breaker_changed(up, up.breaker.record_success());
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(ids) = &ctx.decision_ids {
            upstream_response.insert_header(DECISION_ID_HEADER, ids.clone())?;
        }
        if let Some(filter) = ctx.tools_list.as_mut() {
            if !filter.start(upstream_response, &request_id(session))? {
                ctx.tools_list = None;
            }
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        // Only a filtered `tools/list` response is touched; everything else streams as it comes.
        let Some(filter) = ctx.tools_list.as_mut() else {
            return Ok(None);
        };
        *body = Some(filter.chunk(body.as_deref(), end_of_stream));
        Ok(None)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(up) = &ctx.upstream {
            self.breaker_changed(up, up.breaker.record_failure());
            // Try each address at most once.
            e.set_retry(ctx.tries < up.addrs().len());
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let kind = match e.etype() {
            ErrorType::HTTPStatus(503) if ctx.outcome == Outcome::CircuitOpen => {
                Some(Refusal::CircuitOpen)
            }
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if *e.esource() == ErrorSource::Upstream =>
            {
                Some(Refusal::UpstreamTimeout)
            }
            _ if *e.esource() == ErrorSource::Upstream => Some(Refusal::UpstreamUnavailable),
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed
                if *e.esource() == ErrorSource::Downstream =>
            {
                None
            }
            ErrorType::HTTPStatus(code) => Some(Refusal::DecideFailed(*code)),
            _ if *e.esource() == ErrorSource::Downstream => Some(Refusal::BadRequest),
            _ => Some(Refusal::DecideFailed(500)),
        };
        let Some(kind) = kind else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        if matches!(
            kind,
            Refusal::UpstreamTimeout | Refusal::UpstreamUnavailable
        ) {
            ctx.outcome = Outcome::UpstreamError;
            // Connect failures were counted in `fail_to_connect`; count read failures here.
            if ctx.upstream_answered || !is_connect_error(e.etype()) {
                if let Some(up) = &ctx.upstream {
                    self.breaker_changed(up, up.breaker.record_failure());
                }
            }
        }
        let upstream = ctx.upstream.as_ref().map_or("", |u| u.name.as_str());
        let route = ctx.snapshot.as_ref().and_then(|s| ctx.route(s));
        let route_name = route.map_or("-", |r| &*r.name);
        let reason = match kind {
            Refusal::CircuitOpen => format!(
                "route {route_name}: upstream {upstream} is failing; its circuit breaker is open"
            ),
            Refusal::UpstreamTimeout => {
                format!("route {route_name}: upstream {upstream} timed out: {e}")
            }
            Refusal::UpstreamUnavailable => {
                format!("route {route_name}: upstream {upstream} failed: {e}")
            }
            _ => e.to_string(),
        };
        let domain = route.map(|r| r.domain.clone());
        let a = answer::refusal(kind, &reason, &request_id(session), domain.as_deref());
        let code = a.status;
        if let Err(err) = write_answer(session, a, &[]).await {
            tracing::debug!(error = %err, "cannot write the error answer");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, _session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let mut outcome = ctx.outcome;
        let upstream_failed = e.is_some_and(|e| *e.esource() == ErrorSource::Upstream);
        if upstream_failed && matches!(outcome, Outcome::Permit | Outcome::Passthrough) {
            outcome = Outcome::UpstreamError;
        }
        let route = ctx
            .snapshot
            .as_ref()
            .and_then(|s| ctx.route(s))
            .map_or("-", |r| &*r.name);
        self.state
            .metrics
            .observe(route, outcome, ctx.start.elapsed().as_secs_f64());
    }
}

/// Answers 413 and closes the connection (the rest of the body is not read).
async fn too_large(session: &mut Session, ctx: &mut RequestCtx, route: &Route) -> Result<bool> {
    ctx.outcome = Outcome::TooLarge;
    session.set_keepalive(None);
    let reason = format!(
        "request body above the route's limit of {} bytes",
        route.body_limit
    );
    let a = answer::refusal(
        Refusal::TooLarge,
        &reason,
        &request_id(session),
        Some(&route.domain),
    );
    send(session, a, &[], false).await
}

fn is_connect_error(e: &ErrorType) -> bool {
    matches!(
        e,
        ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::SocketError
    )
}

/// The caller's `x-request-id`, or a new one (only called when an answer is sent).
fn request_id(session: &Session) -> String {
    caller_request_id(session.req_header()).map_or_else(new_request_id, str::to_string)
}
