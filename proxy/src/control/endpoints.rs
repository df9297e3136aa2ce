//! The control plane's endpoints on the admin listener:
//!
//! - `PUT /admin/v1/bundle` — a bundle file as the body; the caller proves it speaks for the
//!   control plane with `Authorization: Bearer <JWT>` signed by a trusted control-plane key
//!   (`aud` `lexecon-admin`, `scope` containing `bundle:write`, `exp` no further than
//!   `push_token_max_ttl` after `iat`). 200 with old and new revision and policy hashes; 400, 401,
//!   403, 409, 422 with the exact reason; the snapshot in force stays on any failure.
//! - `POST /admin/v1/bundle/refresh` — poll the bundle store now (same token), answering what the
//!   poll did.
//! - `GET /admin/v1/status` — the bundle in force, hashes, source, last error, next poll.
//!
//! Owns the push token check and the body limit. Never decides whether a bundle is acceptable
//! (that is [`super::Runtime::apply`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lexecon_ledger::EventType;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use super::{pull, Refused, Runtime, Via};
use crate::server::admin::{response, ControlEndpoints};

/// The audience of a push token.
pub const PUSH_AUDIENCE: &str = "lexecon-admin";
/// The scope a push or refresh needs.
pub const PUSH_SCOPE: &str = "bundle:write";

/// The endpoints of one sidecar's control plane.
pub struct Endpoints(pub Arc<Runtime>);

fn json_response(status: u16, body: &serde_json::Value) -> http::Response<Vec<u8>> {
    response(status, "application/json", body.to_string().into_bytes())
}

fn refused_response(refused: &Refused, active: Option<u64>) -> http::Response<Vec<u8>> {
    json_response(
        refused.status,
        &json!({
            "status": "rejected",
            "error": refused.code,
            "reason": refused.reason,
            "revision": active,
        }),
    )
}

/// A node configured by its file alone takes no bundles.
fn no_control_plane() -> http::Response<Vec<u8>> {
    json_response(
        409,
        &json!({"status": "rejected", "error": "no_control_plane", "reason": "this node has no control_plane (trusted_keys) in its configuration: it takes no bundles"}),
    )
}

#[derive(serde::Deserialize)]
struct PushClaims {
    iat: u64,
    exp: u64,
    #[serde(default)]
    scope: String,
}

/// Checks a push token against the trusted keys: 401 for no token or one that does not verify,
/// 403 for a valid token without the scope.
pub fn authorize(runtime: &Runtime, headers: &http::HeaderMap) -> Result<(), Refused> {
    let unauthorized = |reason: String| Refused {
        status: 401,
        code: "unauthorized",
        reason,
    };
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            unauthorized(
                "a bundle push needs Authorization: Bearer <token signed by a trusted control-plane key> (lexecon bundle push makes one)"
                    .into(),
            )
        })?;
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| unauthorized(format!("push token: {e}")))?;
    if header.alg != Algorithm::EdDSA {
        return Err(unauthorized(format!(
            "push token: algorithm {:?} is not accepted (EdDSA only)",
            header.alg
        )));
    }
    let kid = header
        .kid
        .ok_or_else(|| unauthorized("push token has no kid".into()))?;
    let key = runtime.trusted().get(&kid).ok_or_else(|| {
        unauthorized(format!(
            "push token is signed by key {kid:?}, which this node does not trust"
        ))
    })?;
    let decoding = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(key.as_bytes()))
        .map_err(|e| unauthorized(format!("push token key: {e}")))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[PUSH_AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iat", "aud"]);
    validation.leeway = 30;
    let claims = jsonwebtoken::decode::<PushClaims>(token, &decoding, &validation)
        .map_err(|e| unauthorized(format!("push token: {e}")))?
        .claims;
    let max_ttl = runtime
        .settings()
        .map_or(0, |s| s.push_token_max_ttl.as_secs());
    if claims.exp.saturating_sub(claims.iat) > max_ttl {
        return Err(unauthorized(format!(
            "push token lives {}s, above control_plane.push_token_max_ttl ({max_ttl}s)",
            claims.exp.saturating_sub(claims.iat)
        )));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if claims.iat > now + 60 {
        return Err(unauthorized("push token is issued in the future".into()));
    }
    if !claims.scope.split_whitespace().any(|s| s == PUSH_SCOPE) {
        return Err(Refused {
            status: 403,
            code: "forbidden",
            reason: format!("push token lacks the scope {PUSH_SCOPE}"),
        });
    }
    Ok(())
}

/// Reads the whole body, at most `limit` bytes (the connection is closed beyond).
async fn read_body(session: &mut ServerSession, limit: usize) -> Result<Vec<u8>, Refused> {
    let too_large = |n: usize| Refused {
        status: 413,
        code: "too_large",
        reason: format!("{n} bytes is above the bundle limit of {limit}"),
    };
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        session.set_keepalive(None);
        return Err(too_large(n));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    session.set_keepalive(None);
                    return Err(too_large(body.len() + chunk.len()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                session.set_keepalive(None);
                return Err(Refused {
                    status: 400,
                    code: "malformed",
                    reason: format!("the request body could not be read: {e}"),
                });
            }
        }
    }
}

impl Endpoints {
    async fn push(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let runtime = &self.0;
        if !runtime.enabled() {
            session.set_keepalive(None);
            return no_control_plane();
        }
        let active = runtime.poll_state().1;
        if let Err(refused) = authorize(runtime, &session.req_header().headers) {
            session.set_keepalive(None);
            return refused_response(&refused, active);
        }
        let body = match read_body(session, lexecon_config::bundle::MAX_BUNDLE_BYTES).await {
            Ok(b) => b,
            Err(refused) => return refused_response(&refused, active),
        };
        let for_apply = runtime.clone();
        let applied = tokio::task::spawn_blocking(move || for_apply.apply(&body, Via::Push)).await;
        let applied = applied.unwrap_or_else(|e| {
            Err(Refused {
                status: 500,
                code: "internal",
                reason: format!("the bundle apply did not finish: {e}"),
            })
        });
        match applied {
            Ok(applied) => {
                runtime
                    .record(EventType::PolicyLoaded, Runtime::applied_text(&applied))
                    .await;
                json_response(200, &applied.to_json())
            }
            Err(refused) => {
                runtime
                    .record(
                        EventType::BundleRejected,
                        format!(
                            "pushed bundle refused ({}): {}",
                            refused.code, refused.reason
                        ),
                    )
                    .await;
                tracing::warn!(reason = %refused.reason, "pushed bundle refused; the snapshot in force stays");
                refused_response(&refused, runtime.poll_state().1)
            }
        }
    }

    async fn refresh(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let runtime = &self.0;
        if !runtime.enabled() {
            return no_control_plane();
        }
        if let Err(refused) = authorize(runtime, &session.req_header().headers) {
            return refused_response(&refused, runtime.poll_state().1);
        }
        if runtime
            .settings()
            .and_then(|s| s.bundle_url.as_ref())
            .is_none()
        {
            return json_response(
                409,
                &json!({"status": "rejected", "error": "no_bundle_url", "reason": "control_plane.bundle_url is not set: this node is push-only"}),
            );
        }
        let polled = runtime.clone();
        let outcome = tokio::task::spawn_blocking(move || pull::poll_once(&polled)).await;
        match outcome {
            Ok(outcome) => {
                outcome.record(runtime).await;
                json_response(outcome.status(), &outcome.to_json())
            }
            Err(e) => json_response(
                500,
                &json!({"status": "error", "reason": format!("the poll did not finish: {e}")}),
            ),
        }
    }
}

#[async_trait]
impl ControlEndpoints for Endpoints {
    async fn handle(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        match (method.as_str(), path.as_str()) {
            ("GET", "/admin/v1/status") => json_response(200, &self.0.status()),
            ("PUT", "/admin/v1/bundle") => self.push(session).await,
            ("POST", "/admin/v1/bundle/refresh") => self.refresh(session).await,
            (_, "/admin/v1/status" | "/admin/v1/bundle" | "/admin/v1/bundle/refresh") => {
                session.set_keepalive(None);
                json_response(
                    405,
                    &json!({"error": "method_not_allowed", "reason": format!("{method} is not allowed on {path}")}),
                )
            }
            _ => json_response(
                404,
                &json!({"error": "not_found", "reason": format!("no admin endpoint {path}")}),
            ),
        }
    }
}
