//! The admin listener (`listeners.admin`): `/health` and `/metrics` (Prometheus text). Runs as a
//! pingora `ServeHttp` service in the same server; it never touches the request path's state
//! except to read the current snapshot and the metrics.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::server::state::ProxyState;

/// The admin app.
pub struct Admin {
    state: Arc<ProxyState>,
}

impl Admin {
    pub fn new(state: Arc<ProxyState>) -> Self {
        Self { state }
    }
}

fn response(status: u16, content_type: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
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

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/health" => {
                let snap = self.state.load();
                let body = serde_json::json!({
                    "status": "ok",
                    "routes": snap.routes.routes.len(),
                    "version": env!("CARGO_PKG_VERSION"),
                });
                response(200, "application/json", body.to_string().into_bytes())
            }
            "/metrics" => response(
                200,
                "text/plain; version=0.0.4",
                self.state.metrics.render(),
            ),
            _ => {
                let body = serde_json::json!({"error": "not_found", "reason": format!("no admin endpoint {path}; try /health or /metrics")});
                response(404, "application/json", body.to_string().into_bytes())
            }
        }
    }
}
