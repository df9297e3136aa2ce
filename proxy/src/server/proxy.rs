//! The pingora [`ProxyHttp`] implementation: the request path of the sidecar.
//!
//! `request_filter` runs route → identify → limit → read body (only when the classifier needs it)
//! → classify → decide every call; anything but a permit of every call is answered here and never
//! reaches the upstream. `upstream_peer` picks the address (round robin, circuit breaker),
//! `upstream_request_filter` adds `x-lexecon-decision-id` (and `response_filter` returns it to the
//! client), `fail_to_proxy` answers upstream failures
//! as JSON. On `filter_tools_list` routes the response to a permitted `tools/list` call goes
//! through `response_body_filter` and [`ToolsFilter`]; every other response streams untouched.
//! Per request: one snapshot load, no lock, no string built that is not sent.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use lexecon_config::file::Unmatched;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::{ErrorSource, ErrorType};

use crate::headers::{APPROVAL_HEADER, CAPABILITY_HEADER, DECISION_ID_HEADER};
use crate::identity::Actor;
use crate::server::answer::{self, Answer, Refusal};
use crate::server::check::{
    caller_request_id, check, new_request_id, record, record_blocked, Checked, Mint,
};
use crate::server::metrics::Outcome;
use crate::server::routes::Route;
use crate::server::state::{ProxySnapshot, ProxyState};
use crate::server::tools_filter::ToolsFilter;
use crate::server::upstream::Upstream;
use lexecon_classify::target;

/// The longest body drained before an early answer to keep the connection alive.
const DRAIN_LIMIT: usize = 64 * 1024;

/// The enforcement proxy.
pub struct LexeconProxy {
    state: Arc<ProxyState>,
}

impl LexeconProxy {
    pub fn new(state: Arc<ProxyState>) -> Self {
        Self { state }
    }
}

/// Per-request state shared across the phases.
pub struct RequestCtx {
    start: Instant,
    snapshot: Option<Arc<ProxySnapshot>>,
    route: Option<usize>,
    upstream: Option<Arc<Upstream>>,
    decision_ids: Option<String>,
    /// The capability token minted for a permitted single-call request.
    capability: Option<String>,
    outcome: Outcome,
    tries: usize,
    upstream_answered: bool,
    /// A body too large for the retry buffer, held chunk by chunk until the end of the stream.
    deferred: Option<Deferred>,
    /// An answer decided in `request_body_filter`, written by `fail_to_proxy`.
    pending: Option<(Answer, Option<String>)>,
    /// The `tools/list` filter of the response (`filter_tools_list` routes only).
    tools_list: Option<Box<ToolsFilter>>,
}

/// The state of a request decided at the end of its body.
struct Deferred {
    actor: Arc<Actor>,
    buf: BytesMut,
    limit: u64,
}

impl RequestCtx {
    fn route<'a>(&self, snap: &'a ProxySnapshot) -> Option<&'a Route> {
        self.route.and_then(|i| snap.routes.routes.get(i))
    }
}

/// What the body reader found.
enum Body {
    Read(Bytes),
    TooLarge,
}

#[async_trait]
impl ProxyHttp for LexeconProxy {
    type CTX = RequestCtx;

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
            deferred: None,
            pending: None,
            tools_list: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // INVARIANT: one snapshot per request; everything below uses `snap`.
        let snap = self.state.load();
        ctx.snapshot = Some(snap.clone());

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
        let host = host_header.or_else(|| req.uri.host());
        let found = snap
            .routes
            .routes
            .iter()
            .position(|r| r.matches(host, req.uri.path(), &req.method));
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
            if let Err(limited) = limiter.check(&actor.id) {
                ctx.outcome = Outcome::RateLimited;
                let secs = limited.retry_after_secs().to_string();
                let reason = format!(
                    "rate limit of route {} exceeded for {}; retry after {secs}s",
                    route.name, actor.id
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

        // Read the body only when the classifier needs it.
        let body = if route.needs_body {
            let declared = content_length(session);
            if declared.is_some_and(|n| n > route.configured_body_limit) {
                return too_large(session, ctx, route).await;
            }
            // INVARIANT: a request without a body is always decided here, before anything goes
            // upstream: its headers alone make a complete request the upstream could answer.
            let fits_retry_buffer = session.is_body_empty()
                || declared.is_some_and(|n| n <= route.body_limit)
                || route.configured_body_limit <= route.body_limit;
            if !fits_retry_buffer {
                // Above pingora's retry buffer (or of unknown length): forward the headers now,
                // hold the body in `request_body_filter`, decide at its end.
                write_continue_if_expected(session).await?;
                ctx.deferred = Some(Deferred {
                    actor,
                    buf: BytesMut::new(),
                    limit: route.configured_body_limit,
                });
                ctx.outcome = Outcome::Permit;
                return Ok(false);
            }
            match read_body(session, route.body_limit).await? {
                Body::Read(b) => Some(b),
                Body::TooLarge => return too_large(session, ctx, route).await,
            }
        } else {
            None
        };

        match check(&snap, route, &actor, session.req_header(), body.as_deref()).await {
            Checked::Permit { ids, made } => {
                let contexts = made.iter().map(|m| &m.context);
                let tools_list =
                    ToolsFilter::for_request(&snap, index, &actor, contexts, body.as_deref());
                match record(&snap, route, made, Mint::Token).await {
                    Ok(token) => {
                        ctx.tools_list = tools_list;
                        ctx.decision_ids = ids;
                        ctx.capability = token;
                        ctx.outcome = Outcome::Permit;
                        Ok(false)
                    }
                    Err(answer) => {
                        ctx.outcome = Outcome::DecideError;
                        send(session, answer, &[], !route.needs_body).await
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
                send(session, answer, headers, !route.needs_body).await
            }
        }
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.deferred.is_none() {
            return Ok(());
        }
        let snap = ctx.snapshot.clone();
        let route = snap.as_deref().and_then(|s| ctx.route(s));
        let (Some(snap), Some(route), Some(deferred)) =
            (snap.as_deref(), route, ctx.deferred.as_mut())
        else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "request body without a route",
            ));
        };
        if let Some(chunk) = body.take() {
            deferred.buf.extend_from_slice(&chunk);
        }
        if deferred.buf.len() as u64 > deferred.limit {
            ctx.outcome = Outcome::TooLarge;
            let a = too_large_answer(session, route, deferred.limit);
            ctx.pending = Some((a, None));
            ctx.deferred = None;
            return Err(Error::explain(ErrorType::HTTPStatus(413), "body too large"));
        }
        if !end_of_stream {
            // Hold the chunk; an empty chunk is not written upstream (`None` would end the body).
            *body = Some(Bytes::new());
            return Ok(());
        }
        let full = deferred.buf.split().freeze();
        let actor = deferred.actor.clone();
        ctx.deferred = None;
        match check(snap, route, &actor, session.req_header(), Some(&full)).await {
            Checked::Permit { ids, made } => {
                // The headers (without a decision id or token) went upstream already; release
                // the body. The client still gets the decision id on the response.
                let tools_list = match (ctx.snapshot.clone(), ctx.route) {
                    (Some(s), Some(i)) => {
                        let contexts = made.iter().map(|m| &m.context);
                        ToolsFilter::for_request(&s, i, &actor, contexts, Some(&full))
                    }
                    _ => None,
                };
                if let Err(answer) = record(snap, route, made, Mint::None).await {
                    ctx.outcome = Outcome::DecideError;
                    let status = answer.status;
                    ctx.pending = Some((answer, None));
                    return Err(Error::explain(
                        ErrorType::HTTPStatus(status),
                        "decision could not be recorded",
                    ));
                }
                ctx.tools_list = tools_list;
                ctx.decision_ids = ids;
                *body = Some(full);
                Ok(())
            }
            Checked::Block {
                outcome,
                answer,
                decision_id,
                made,
            } => {
                let answer = record_blocked(snap, route, made, answer).await;
                ctx.outcome = outcome;
                let status = answer.status;
                ctx.pending = Some((answer, decision_id));
                Err(Error::explain(
                    ErrorType::HTTPStatus(status),
                    "request blocked after reading its body",
                ))
            }
        }
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
        // A client may not forge a decision id.
        upstream_request.remove_header(DECISION_ID_HEADER);
        // Nor a capability token: only the one minted for this request goes upstream.
        upstream_request.remove_header(CAPABILITY_HEADER);
        // The approval a retry redeemed is for Lexecon, not the upstream.
        upstream_request.remove_header(APPROVAL_HEADER);
        if let Some(ids) = ctx.decision_ids.as_deref() {
            upstream_request.insert_header(DECISION_ID_HEADER, ids)?;
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
                up.breaker.record_success();
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
        if let Some(ids) = ctx.decision_ids.as_deref() {
            upstream_response.insert_header(DECISION_ID_HEADER, ids)?;
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
            up.breaker.record_failure();
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
        if let Some((a, decision_id)) = ctx.pending.take() {
            let code = a.status;
            let id_header = decision_id.as_deref().map(|id| (DECISION_ID_HEADER, id));
            let headers: &[(&'static str, &str)] = match &id_header {
                Some(h) => std::slice::from_ref(h),
                None => &[],
            };
            if let Err(err) = write_answer(session, a, headers).await {
                tracing::debug!(error = %err, "cannot write the answer");
            }
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        }
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
                    up.breaker.record_failure();
                }
            }
        }
        let upstream = ctx.upstream.as_ref().map_or("", |u| u.name.as_str());
        let reason = match kind {
            Refusal::CircuitOpen => {
                format!("upstream {upstream} is failing; its circuit breaker is open")
            }
            Refusal::UpstreamTimeout => format!("upstream {upstream} timed out: {e}"),
            Refusal::UpstreamUnavailable => format!("upstream {upstream} failed: {e}"),
            _ => e.to_string(),
        };
        let domain = ctx
            .snapshot
            .as_ref()
            .and_then(|s| ctx.route(s))
            .map(|r| r.domain.clone());
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
    // INVARIANT: a body read into the retry buffer is either declared at most `body_limit` long
    // or the route's whole limit fits the buffer, so the route's limit is the one exceeded.
    let a = too_large_answer(session, route, route.configured_body_limit);
    send(session, a, &[], false).await
}

/// The 413 answer naming the route's body limit.
fn too_large_answer(session: &Session, route: &Route, limit: u64) -> Answer {
    let reason = format!("request body above the route's limit of {limit} bytes");
    answer::refusal(
        Refusal::TooLarge,
        &reason,
        &request_id(session),
        Some(&route.domain),
    )
}

fn content_length(session: &Session) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// pingora does not answer `Expect: 100-continue` when the proxy reads the body itself.
async fn write_continue_if_expected(session: &mut Session) -> Result<()> {
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session.write_continue_response().await?;
    }
    Ok(())
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

/// Reads the request body into pingora's retry buffer (so a permitted request is re-sent
/// byte-identical), refusing more than `limit` bytes.
async fn read_body(session: &mut Session, limit: u64) -> Result<Body> {
    write_continue_if_expected(session).await?;
    session.enable_retry_buffering();
    let mut total: u64 = 0;
    while let Some(chunk) = session.read_request_body().await? {
        total = total.saturating_add(chunk.len() as u64);
        if total > limit {
            return Ok(Body::TooLarge);
        }
    }
    if session.retry_buffer_truncated() {
        return Ok(Body::TooLarge);
    }
    Ok(Body::Read(session.get_retry_buffer().unwrap_or_default()))
}

/// Writes an answer. `before_body`: the request body has not been read yet, so drain a small one
/// (keeping the connection alive) or close the connection after answering.
async fn send(
    session: &mut Session,
    a: Answer,
    headers: &[(&'static str, &str)],
    before_body: bool,
) -> Result<bool> {
    if before_body && !session.is_body_done() {
        let small = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n <= DRAIN_LIMIT);
        if small {
            if session.drain_request_body().await.is_err() {
                session.set_keepalive(None);
            }
        } else if !session.is_body_empty() {
            session.set_keepalive(None);
        }
    }
    write_answer(session, a, headers).await?;
    Ok(true)
}

async fn write_answer(
    session: &mut Session,
    a: Answer,
    headers: &[(&'static str, &str)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(a.status, Some(3 + headers.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(http::header::CONTENT_LENGTH, a.body.len().to_string())?;
    for (name, value) in headers {
        resp.insert_header(*name, *value)?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(a.body), true).await?;
    Ok(())
}
