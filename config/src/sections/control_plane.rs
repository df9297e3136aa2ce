//! The `control_plane:` section: which control-plane keys this sidecar trusts to sign bundles and
//! push tokens, and where it pulls bundles from. This section is node-local: it is read from the
//! sidecar's own file only, and a bundle can never change it (a bundle that names it is refused),
//! so a bundle never changes which keys are trusted. Owns the defaults and the checks; reads no
//! file (the keys are read by the sidecar at start).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{show, SettingError};

/// The shortest poll interval: a fleet polling faster than this is a load test on the store.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a push token may live.
pub const MAX_PUSH_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// `control_plane:` in the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneSettings {
    /// Public keys (PEM `PUBLIC KEY`, or a JWKS file with one OKP key) whose signatures on a
    /// bundle or a push token this node accepts. The key id is the key's RFC 7638 thumbprint
    /// (first 16 characters), as `lexecon bundle sign` writes it.
    pub trusted_keys: Vec<PathBuf>,
    /// Where bundles are pulled from (any HTTP server or S3-compatible store serving the file);
    /// none: push only.
    #[serde(default)]
    pub bundle_url: Option<String>,
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A random delay of up to this much is added to every poll (a fleet does not poll in step).
    #[serde(default = "default_poll_jitter", with = "humantime_serde")]
    pub poll_jitter: Duration,
    /// The longest back-off between failed polls (doubling from `poll_interval`).
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// The longest one poll (connect + download) may take.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The longest lifetime (exp − iat) a push token may declare.
    #[serde(default = "default_push_token_ttl", with = "humantime_serde")]
    pub push_token_max_ttl: Duration,
    /// With no bundle ever loaded (nothing persisted, nothing pulled), refuse every request
    /// (`true`, the default when `bundle_url` is set) or enforce the file's own routes and
    /// policies (`false`).
    #[serde(default)]
    pub require_bundle: Option<bool>,
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_poll_jitter() -> Duration {
    Duration::from_secs(5)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_push_token_ttl() -> Duration {
    Duration::from_secs(300)
}

impl ControlPlaneSettings {
    /// Whether a sidecar with no bundle refuses every request.
    pub fn requires_bundle(&self) -> bool {
        self.require_bundle.unwrap_or(self.bundle_url.is_some())
    }

    /// Every setting out of range, with its field.
    pub fn problems(&self) -> Vec<SettingError> {
        let mut out = Vec::new();
        if self.trusted_keys.is_empty() {
            out.push(SettingError::new(
                "control_plane.trusted_keys",
                "name at least one control-plane public key",
            ));
        }
        if let Some(url) = &self.bundle_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                out.push(SettingError::new(
                    "bundle_url",
                    format!("expected an http:// or https:// URL, got {url:?}"),
                ));
            }
        }
        if self.poll_interval < MIN_POLL_INTERVAL {
            out.push(SettingError::new(
                "control_plane.poll_interval",
                format!(
                    "{} is below the minimum of {}",
                    show(self.poll_interval),
                    show(MIN_POLL_INTERVAL)
                ),
            ));
        }
        if self.max_backoff < self.poll_interval {
            out.push(SettingError::new(
                "control_plane.max_backoff",
                format!(
                    "{} is below poll_interval ({})",
                    show(self.max_backoff),
                    show(self.poll_interval)
                ),
            ));
        }
        if self.request_timeout.is_zero() {
            out.push(SettingError::new(
                "control_plane.request_timeout",
                "must be above 0s",
            ));
        }
        if self.push_token_max_ttl.is_zero() || self.push_token_max_ttl > MAX_PUSH_TOKEN_TTL {
            out.push(SettingError::new(
                "control_plane.push_token_max_ttl",
                format!(
                    "{} is outside 1s..{}",
                    show(self.push_token_max_ttl),
                    show(MAX_PUSH_TOKEN_TTL)
                ),
            ));
        }
        out
    }
}
