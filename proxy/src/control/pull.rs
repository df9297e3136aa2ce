//! Pulling bundles: `control_plane.bundle_url` polled every `poll_interval` plus a random jitter,
//! with `If-None-Match` (a 304 costs one round trip and nothing else), exponential back-off up to
//! `max_backoff` while the store is unreachable, and a poll on demand
//! (`POST /admin/v1/bundle/refresh`). A pulled bundle takes the same way in as a pushed one
//! ([`super::Runtime::apply`]); the last good one stays in force, and persisted, whatever the
//! store does.
//!
//! Owns the poll loop (its own thread: the HTTP client blocks) and the ETag bookkeeping. Never
//! runs on the request path.

use std::sync::Arc;
use std::time::Duration;

use lexecon_ledger::EventType;
use rand::Rng as _;
use serde_json::{json, Value};

use super::{Applied, Refused, Runtime, Via};

/// What one poll did.
#[derive(Debug)]
pub enum Outcome {
    /// 304, or the same bundle as the one in force.
    NotModified,
    Applied(Applied),
    /// The store answered with a bundle this node refuses; the one in force stays.
    Refused(Refused),
    /// The store could not be reached or did not answer 200/304.
    Unreachable(String),
}

impl Outcome {
    pub fn status(&self) -> u16 {
        match self {
            Outcome::NotModified | Outcome::Applied(_) => 200,
            Outcome::Refused(r) => r.status,
            Outcome::Unreachable(_) => 502,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Outcome::NotModified => json!({"status": "not_modified"}),
            Outcome::Applied(a) => a.to_json(),
            Outcome::Refused(r) => {
                json!({"status": "rejected", "error": r.code, "reason": r.reason})
            }
            Outcome::Unreachable(e) => json!({"status": "unreachable", "reason": e}),
        }
    }

    /// Puts the outcome in the ledger: an applied bundle or a refused one (not 304s).
    pub async fn record(&self, runtime: &Runtime) {
        match self {
            Outcome::Applied(a) => {
                runtime
                    .record(EventType::PolicyLoaded, Runtime::applied_text(a))
                    .await
            }
            Outcome::Refused(r) => {
                runtime
                    .record(
                        EventType::BundleRejected,
                        format!("pulled bundle refused ({}): {}", r.code, r.reason),
                    )
                    .await
            }
            Outcome::NotModified | Outcome::Unreachable(_) => {}
        }
    }
}

/// Polls the store once and applies what it serves. Blocking.
pub fn poll_once(runtime: &Runtime) -> Outcome {
    let Some(settings) = runtime.settings() else {
        return Outcome::Unreachable("no control plane configured".into());
    };
    let Some(url) = settings.bundle_url.as_deref() else {
        return Outcome::Unreachable("no bundle_url configured".into());
    };
    let (etag, _) = runtime.poll_state();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(settings.request_timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some(tag) = &etag {
        request = request.header("if-none-match", tag);
    }
    let mut response = match request.call() {
        Ok(r) => r,
        Err(e) => {
            let reason = format!("cannot reach {url}: {e}");
            runtime.polled(false, None, Some(reason.clone()));
            return Outcome::Unreachable(reason);
        }
    };
    let status = response.status().as_u16();
    if status == 304 {
        runtime.polled(true, None, None);
        return Outcome::NotModified;
    }
    if status != 200 {
        let reason = format!("{url} answered {status}");
        runtime.polled(false, None, Some(reason.clone()));
        return Outcome::Unreachable(reason);
    }
    let new_etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match response
        .body_mut()
        .with_config()
        .limit(lexecon_config::bundle::MAX_BUNDLE_BYTES as u64)
        .read_to_vec()
    {
        Ok(b) => b,
        Err(e) => {
            let reason = format!("cannot read the bundle from {url}: {e}");
            runtime.polled(false, None, Some(reason.clone()));
            return Outcome::Unreachable(reason);
        }
    };
    if runtime.is_active(&bytes) {
        runtime.polled(true, new_etag, None);
        return Outcome::NotModified;
    }
    match runtime.apply(&bytes, Via::Pull) {
        Ok(applied) => {
            runtime.polled(true, new_etag, None);
            Outcome::Applied(applied)
        }
        Err(refused) => {
            // The store was reached: remember its ETag so the same refused bundle is not fetched
            // and refused again every poll (a new one has a new ETag).
            runtime.polled(true, new_etag, Some(refused.reason.clone()));
            Outcome::Refused(refused)
        }
    }
}

/// The delay before the next poll: the interval plus jitter, doubled per consecutive failure up
/// to `max_backoff`.
fn next_delay(runtime: &Runtime, failures: u32) -> Duration {
    let Some(s) = runtime.settings() else {
        return Duration::from_secs(30);
    };
    let base = if failures == 0 {
        s.poll_interval
    } else {
        s.poll_interval
            .saturating_mul(2u32.saturating_pow(failures.min(16)))
            .min(s.max_backoff)
    };
    let jitter_ms = u64::try_from(s.poll_jitter.as_millis()).unwrap_or(u64::MAX);
    let jitter = if jitter_ms == 0 {
        0
    } else {
        rand::thread_rng().gen_range(0..=jitter_ms)
    };
    base + Duration::from_millis(jitter)
}

/// Starts the poll loop on its own thread when a `bundle_url` is configured: a first poll at once,
/// then on the schedule (`POST /admin/v1/bundle/refresh` polls in between, on its own).
pub fn spawn(runtime: Arc<Runtime>) {
    if runtime
        .settings()
        .and_then(|s| s.bundle_url.as_ref())
        .is_none()
    {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("lexecon-bundle-pull".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "bundle poller not started");
                    return;
                }
            };
            let mut failures = 0u32;
            loop {
                let outcome = poll_once(&runtime);
                match &outcome {
                    Outcome::Unreachable(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %e, failures, "bundle store unreachable; the bundle in force stays");
                    }
                    Outcome::Refused(r) => {
                        failures = 0;
                        tracing::warn!(reason = %r.reason, "pulled bundle refused; the bundle in force stays");
                    }
                    Outcome::Applied(_) | Outcome::NotModified => failures = 0,
                }
                rt.block_on(outcome.record(&runtime));
                let delay = next_delay(&runtime, failures);
                let at = jiff::Timestamp::now()
                    + jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::ZERO);
                runtime.set_next_poll(at);
                std::thread::sleep(delay);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "bundle poller not started");
    }
}
