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
use lexecon_domains::Verdict;
use lexecon_policy_cache::DecisionInput;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::{ErrorSource, ErrorType};

use crate::enforce::{self, Binding, Decided};
use crate::identity::Actor;
use crate::server::answer::{self, Answer, Refusal};
use crate::server::metrics::Outcome;
use crate::server::routes::Route;
use crate::server::state::{ProxyState, Snapshot};
use crate::server::tools_filter::ToolsFilter;
use crate::server::upstream::Upstream;
use lexecon_classify::{self as classify, RequestParts};

/// The request header that carries the decision id(s) to the upstream.
pub const DECISION_ID_HEADER: &str = "x-lexecon-decision-id";
/// The header carrying the capability token of a permitted request to the upstream.
pub const CAPABILITY_HEADER: &str = lexecon_token::CAPABILITY_HEADER;

/// The request header a retried request redeems a human approval with.
pub const APPROVAL_HEADER: &str = "x-lexecon-approval";

/// The request header a caller may set to correlate its request with the decision.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

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
    snapshot: Option<Arc<Snapshot>>,
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

/// The outcome of classifying and deciding one request.
enum Checked {
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

/// Whether [`record`] mints a capability token for the route's upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mint {
    /// A permitted request whose headers have not gone upstream yet: the token can go with them.
    Token,
    /// Blocked, or the headers went upstream before the decision: no token to carry.
    None,
}

/// Records every decision made for a request in the ledger; with [`Mint::Token`] and exactly one
/// call, mints the capability token for the route's upstream. A recording failure (ledger queue
/// full under `fail_closed`) blocks the request with the failure's status (fail closed).
/// The decisions are given away ([`crate::enforce::DecisionPoint::record_owned`]): the proxy names no ledger
/// entry, so the engine may build them off the request thread.
async fn record(
    snap: &Snapshot,
    route: &Route,
    made: Vec<Decided>,
    mint: Mint,
) -> std::result::Result<Option<String>, Answer> {
    let mut token = None;
    let single = made.len() == 1;
    for m in made {
        let audience = (mint == Mint::Token && single).then_some(route.upstream.name.as_str());
        // Kept for the refusal only; the decision itself goes to the recorder.
        let request_id = m.decision.request_id.clone();
        match snap
            .decider
            .record_owned(m.decision, m.context, audience)
            .await
        {
            Ok(recorded) => {
                if let Some(issued) = recorded.capability_token {
                    token = Some(issued.token);
                }
            }
            Err(failure) => {
                tracing::error!(route = %route.name, error = %failure, "decision could not be recorded; request blocked");
                return Err(answer::refusal(
                    Refusal::DecideFailed(failure.status),
                    &failure.message,
                    &request_id,
                    Some(&route.domain),
                ));
            }
        }
    }
    Ok(token)
}

impl RequestCtx {
    fn route<'a>(&self, snap: &'a Snapshot) -> Option<&'a Route> {
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
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.host());
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
                let answer = match record(&snap, route, made, Mint::None).await {
                    Ok(_) => answer,
                    Err(failure) => failure,
                };
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
            let reason = format!(
                "request body above the route's limit of {} bytes",
                deferred.limit
            );
            let a = answer::refusal(
                Refusal::TooLarge,
                &reason,
                &request_id(session),
                Some(&route.domain),
            );
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
                let answer = match record(snap, route, made, Mint::None).await {
                    Ok(_) => answer,
                    Err(failure) => failure,
                };
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

/// Classifies the request and decides every call; all must permit. Builds an answer only when
/// the request is blocked. An escalated call creates a pending human approval (its id goes into
/// the answer); a retry carrying [`APPROVAL_HEADER`] redeems it instead, exactly once.
async fn check(
    snap: &Snapshot,
    route: &Route,
    actor: &Actor,
    req: &RequestHeader,
    body: Option<&[u8]>,
) -> Checked {
    let parts = RequestParts {
        method: req.method.as_str(),
        path: req.uri.path(),
        query: req.uri.query(),
        headers: &req.headers,
    };
    let caller_request_id = caller_request_id(req);
    let classified = match classify::classify(&route.classifier, &parts, body) {
        Ok(c) => c,
        Err(e) => {
            let rid = caller_request_id.map_or_else(new_request_id, str::to_string);
            return Checked::Block {
                outcome: Outcome::BadRequest,
                answer: answer::refusal(
                    Refusal::BadRequest,
                    &e.to_string(),
                    &rid,
                    Some(&route.domain),
                ),
                decision_id: None,
                made: Vec::new(),
            };
        }
    };
    if let Some(refused) = smart_scope_refusal(route, actor, &classified, caller_request_id) {
        return refused;
    }
    let mut ids: Option<String> = None;
    let mut made = Vec::with_capacity(classified.items.len());
    let binding = approval_binding(route, req, body);
    let approval = approval_header(req);
    for (i, item) in classified.items.iter().enumerate() {
        // INVARIANT: identity claims win over request-derived context: an MCP tool's arguments are
        // written by the agent and must never pose as `patient_consent` or `physician_id` claims.
        let mut context = item.context.clone();
        context.extend(actor.context.iter().map(|(k, v)| (k.clone(), v.clone())));
        let input = DecisionInput {
            request_id: caller_request_id.map(str::to_string),
            domain: route.domain.clone(),
            actor: actor.id.to_string(),
            action: item.action.clone(),
            resource: item.resource.clone(),
            context,
            at: None,
        };
        let decided = match enforce::decide(&*snap.decider, input, approval, binding).await {
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
        let answer = match decided.approval_id.as_deref() {
            Some(id) => escalation_answer(d, &classified, i, route, id),
            None => answer::blocked(d, &classified, i, route.mcp_denial),
        };
        let decision_id = Some(d.decision_id.clone());
        made.push(decided);
        return Checked::Block {
            outcome,
            answer,
            decision_id,
            made,
        };
    }
    Checked::Permit { ids, made }
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

/// The answer to an escalation that created approval `id`: the plain 403 JSON gains
/// `approval_id`; an MCP denial names the approval and the retry header in its reason.
fn escalation_answer(
    d: &lexecon_policy_cache::Decision,
    classified: &classify::Classified,
    blocking: usize,
    route: &Route,
    id: &str,
) -> Answer {
    let mut named = d.clone();
    named.reasoning = format!(
        "{} (approval {id}: once a human approves it, retry the same request with header {APPROVAL_HEADER}: {id})",
        d.reasoning
    )
    .into();
    let mut a = answer::blocked(&named, classified, blocking, route.mcp_denial);
    if route.mcp_denial.is_none() {
        if let Ok(serde_json::Value::Object(mut body)) =
            serde_json::from_slice::<serde_json::Value>(&a.body)
        {
            body.insert("approval_id".into(), serde_json::Value::from(id));
            if let Ok(bytes) = serde_json::to_vec(&body) {
                a.body = Bytes::from(bytes);
            }
        }
    }
    a
}

/// Answers 413 and closes the connection (the rest of the body is not read).
async fn too_large(session: &mut Session, ctx: &mut RequestCtx, route: &Route) -> Result<bool> {
    ctx.outcome = Outcome::TooLarge;
    session.set_keepalive(None);
    // INVARIANT: a body read into the retry buffer is either declared at most `body_limit` long
    // or the route's whole limit fits the buffer, so the route's limit is the one exceeded.
    let reason = format!(
        "request body above the route's limit of {} bytes",
        route.configured_body_limit
    );
    let a = answer::refusal(
        Refusal::TooLarge,
        &reason,
        &request_id(session),
        Some(&route.domain),
    );
    send(session, a, &[], false).await
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

fn caller_request_id(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
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

fn new_request_id() -> String {
    lexecon_policy_cache::uuid_v7(jiff::Timestamp::now())
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

/// On FHIR routes, an actor whose token carries SMART scopes (the `scope` claim mapped into the
/// context with `claims_to_context: {scope: scope}`) may only perform the interactions those scopes
/// grant; `patient/` scopes reach only the token's launch patient (`patient` claim mapped to
/// `launch_patient`). Checked before any policy decision; actors without scopes are left to policy.
fn smart_scope_refusal(
    route: &Route,
    actor: &Actor,
    classified: &classify::Classified,
    caller_request_id: Option<&str>,
) -> Option<Checked> {
    if !matches!(
        route.classifier,
        lexecon_config::classifier::ClassifierConfig::Fhir(_)
    ) {
        return None;
    }
    let scopes: Vec<&str> = actor
        .context
        .get("scope")?
        .as_str()?
        .split_whitespace()
        .collect();
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
    let rid = caller_request_id.map_or_else(new_request_id, str::to_string);
    Some(Checked::Block {
        outcome: Outcome::Deny,
        answer: answer::refusal(Refusal::InsufficientScope, &what, &rid, Some(&route.domain)),
        decision_id: None,
        made: Vec::new(),
    })
}
