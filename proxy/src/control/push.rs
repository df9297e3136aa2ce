//! The control plane's client side: push tokens and `lexecon bundle push` to a fleet.
//!
//! A push token is a short-lived EdDSA JWT signed with the same control-plane key that signs
//! bundles (`aud` `lexecon-admin`, `scope` `bundle:write`, a `jti`); a fleet push sends one bundle
//! to many sidecars concurrently, with bounded parallelism and a per-target timeout, and reports
//! one row per sidecar. Owns nothing a sidecar runs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use super::endpoints::{PUSH_AUDIENCE, PUSH_SCOPE};

/// Signs a push token valid for `ttl`.
pub fn push_token(key: &SigningKey, ttl: Duration) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "iss": "lexecon-control-plane",
        "aud": PUSH_AUDIENCE,
        "scope": PUSH_SCOPE,
        "iat": now,
        "exp": now + ttl.as_secs().max(1),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(lexecon_keys::key_id(&key.verifying_key()));
    let pem = {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        key.to_pkcs8_pem(Default::default())
            .map_err(|e| anyhow::anyhow!("cannot encode the key: {e}"))?
    };
    let encoding = EncodingKey::from_ed_pem(pem.as_bytes())?;
    Ok(jsonwebtoken::encode(&header, &claims, &encoding)?)
}

/// One sidecar's result of a fleet push.
#[derive(Debug, Clone)]
pub struct Row {
    pub target: String,
    pub before: Option<u64>,
    pub after: Option<u64>,
    pub took: Duration,
    pub error: Option<String>,
}

/// Pushes `bundle` to one sidecar's admin listener (`host:port`).
fn push_one(target: &str, bundle: &[u8], token: &str, timeout: Duration) -> Row {
    let start = Instant::now();
    let mut row = Row {
        target: target.to_owned(),
        before: None,
        after: None,
        took: Duration::ZERO,
        error: None,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://{target}/admin/v1/bundle");
    let result = agent
        .put(&url)
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/gzip")
        .send(bundle);
    match result {
        Err(e) => row.error = Some(format!("cannot reach {target}: {e}")),
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body: Value = response
                .body_mut()
                .with_config()
                .limit(1024 * 1024)
                .read_to_vec()
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            if status == 200 {
                row.before = body.get("revision_before").and_then(Value::as_u64);
                row.after = body.get("revision").and_then(Value::as_u64);
            } else {
                row.before = body.get("revision").and_then(Value::as_u64);
                row.after = row.before;
                let reason = body
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                row.error = Some(format!("{status}: {reason}"));
            }
        }
    }
    row.took = start.elapsed();
    row
}

/// Pushes `bundle` to every target with at most `parallel` at once; rows in target order.
pub fn push_fleet(
    targets: &[String],
    bundle: &[u8],
    token: &str,
    parallel: usize,
    timeout: Duration,
) -> Vec<Row> {
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<Option<Row>>> = Mutex::new(vec![None; targets.len()]);
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, targets.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(target) = targets.get(i) else {
                    break;
                };
                let row = push_one(target, bundle, token, timeout);
                let mut rows = rows
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(slot) = rows.get_mut(i) {
                    *slot = Some(row);
                }
            });
        }
    });
    rows.into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect()
}
