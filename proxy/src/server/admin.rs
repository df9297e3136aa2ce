//! The admin/API listener (`listeners.admin`): `/metrics` (Prometheus text) and, when the server
//! runs with an engine, the whole decision API ([`crate::api::http::DecisionApi`]: `/health`, the
//! decisions, domains, approvals, JWKS and OpenAPI); without an engine only `/health` and
//! `/metrics`. Runs as a pingora `ServeHttp` service in the same server.
//!
//! It reads the request body itself (at most 64 KiB: a larger declared or streamed body is answered
//! 413 and the connection closed) and never touches the request path's state except to read the
//! current snapshot and the metrics.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::api::error::ApiError;
use crate::api::http::{ApiRequest, DecisionApi};
use crate::api::validate::{check_body_len, FieldError, RequestError, MAX_BODY_BYTES};
use crate::server::state::ProxyState;
use lexecon_ledger::LedgerHandle;

/// The control plane's endpoints (`/admin/v1/…`: bundle push, refresh, status), served on this
/// listener by whoever composes the server (`crate::control`); they read their own bodies.
#[async_trait]
pub trait ControlEndpoints: Send + Sync {
    async fn handle(&self, session: &mut ServerSession) -> http::Response<Vec<u8>>;
}

/// The path prefix [`ControlEndpoints`] answer under.
pub const CONTROL_PREFIX: &str = "/admin/v1/";

/// The admin app.
pub struct Admin {
    state: Arc<ProxyState>,
    api: Option<Arc<DecisionApi>>,
    control: Option<Arc<dyn ControlEndpoints>>,
}

impl Admin {
    /// The admin app; `api` serves the decision API when the server has an engine, `control` the
    /// control plane's endpoints when one is configured.
    pub fn new(
        state: Arc<ProxyState>,
        api: Option<Arc<DecisionApi>>,
        control: Option<Arc<dyn ControlEndpoints>>,
    ) -> Self {
        Self {
            state,
            api,
            control,
        }
    }
}

pub fn response(status: u16, content_type: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    let mut resp = http::Response::new(Vec::new());
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    let headers = resp.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    *resp.body_mut() = body;
    resp
}

/// Reads the whole request body, refusing more than [`MAX_BODY_BYTES`] (the connection is then
/// closed rather than drained).
async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, ApiError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared {
        if let Err(e) = check_body_len(len) {
            session.set_keepalive(None);
            return Err(e.into());
        }
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    session.set_keepalive(None);
                    return Err(RequestError::BodyTooLarge {
                        size: body.len() + chunk.len(),
                        limit: MAX_BODY_BYTES,
                    }
                    .into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                session.set_keepalive(None);
                return Err(RequestError::InvalidFields {
                    fields: vec![FieldError {
                        field: "body".into(),
                        reason: format!("the request body could not be read: {e}"),
                    }],
                }
                .into());
            }
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        if session.req_header().uri.path() == "/metrics" {
            let ledger = self
                .api
                .as_ref()
                .and_then(|api| api.engine().ledger())
                .map(LedgerHandle::stats);
            return response(
                200,
                "text/plain; version=0.0.4",
                self.state.metrics.render(ledger.as_ref()),
            );
        }
        if let Some(control) = &self.control {
            if session.req_header().uri.path().starts_with(CONTROL_PREFIX) {
                return control.handle(session).await;
            }
        }
        let Some(api) = &self.api else {
            return self.without_engine(session);
        };
        let body = match read_body(session).await {
            Ok(b) => b,
            Err(e) => return e.to_response(),
        };
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let snapshot = self.state.load();
        let req = session.req_header();
        let path = req
            .uri
            .path_and_query()
            .map_or_else(|| req.uri.path(), |p| p.as_str());
        let request = ApiRequest {
            method: req.method.as_str(),
            path,
            headers: &req.headers,
            peer,
            body: &body,
        };
        api.handle(request, &*snapshot).await
    }
}

impl Admin {
    /// `/health` and a 404 when the server runs without an engine (a bare proxy in tests).
    fn without_engine(&self, session: &ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        if path == "/health" {
            let snap = self.state.load();
            let body = serde_json::json!({
                "status": "ok",
                "routes": snap.routes.routes.len(),
                "version": env!("CARGO_PKG_VERSION"),
            });
            return response(200, "application/json", body.to_string().into_bytes());
        }
        let body = serde_json::json!({"error": "not_found", "reason": format!("no admin endpoint {path}; try /health or /metrics")});
        response(404, "application/json", body.to_string().into_bytes())
    }
}
