//! The `limits:` section: how much of a request Lexecon accepts before it answers on its own —
//! the request header block (`header_bytes`, `header_count`: 431 above either; `header_timeout`:
//! the connection is closed) and the time a client may take to send a body the proxy reads before
//! deciding (`body_timeout`: 408), and the memory all such bodies may take together
//! (`held_bodies`: 503 once it is spent). Owns
//! the defaults and the checks, and the ceiling on a route's `body_limit` (a body a classifier
//! reads is held in memory until the decision). Never runs on the request path itself: the proxy
//! copies these numbers into its snapshot.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{show, SettingError};
use crate::file::ByteSize;

/// The largest `body_limit` a route may set: the body is held in memory until it is decided.
pub const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// The largest header block a client may be allowed (pingora itself stops reading at 1 MiB).
pub const MAX_HEADER_BYTES: u64 = 1024 * 1024;
/// The most header fields a client may be allowed (pingora itself parses at most 256).
pub const MAX_HEADER_COUNT: usize = 256;
/// The longest `body_timeout` and `header_timeout`.
pub const MAX_BODY_TIMEOUT: Duration = Duration::from_secs(600);
/// The smallest `held_bodies`: one default-sized body (`body_limit` defaults to 1 MiB) must fit,
/// and a budget below a route's `body_limit` is refused too (such a body could never be held).
pub const MIN_HELD_BODIES: u64 = 64 * 1024;

/// The `limits:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLimits {
    /// The largest request header block (request line excluded): names, values and separators.
    #[serde(default = "default_header_bytes")]
    pub header_bytes: ByteSize,
    /// The most header fields in one request.
    #[serde(default = "default_header_count")]
    pub header_count: usize,
    /// The longest a client may take to send a body the proxy reads before deciding.
    #[serde(default = "default_body_timeout", with = "humantime_serde")]
    pub body_timeout: Duration,
    /// The longest a request's header block may take to arrive, idle time on a kept-alive
    /// connection included; then the connection is closed (a slowloris client is cut off).
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// The most bytes of request bodies held in memory at once, across all requests, while they
    /// are read and decided (each up to its route's `body_limit`); past it a request gets 503
    /// with `Retry-After` and nothing is forwarded.
    #[serde(default = "default_held_bodies")]
    pub held_bodies: ByteSize,
}

fn default_header_bytes() -> ByteSize {
    ByteSize(32 * 1024)
}
fn default_header_count() -> usize {
    100
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_held_bodies() -> ByteSize {
    ByteSize(256 * 1024 * 1024)
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            header_bytes: default_header_bytes(),
            header_count: default_header_count(),
            body_timeout: default_body_timeout(),
            header_timeout: default_header_timeout(),
            held_bodies: default_held_bodies(),
        }
    }
}

impl RequestLimits {
    /// Every out-of-range setting.
    pub fn problems(&self) -> Vec<SettingError> {
        let mut problems = Vec::new();
        let bytes = self.header_bytes.bytes();
        if !(1024..=MAX_HEADER_BYTES).contains(&bytes) {
            problems.push(SettingError::new(
                "limits.header_bytes",
                format!("{bytes} bytes is outside 1KiB..=1MiB"),
            ));
        }
        if self.header_count == 0 || self.header_count > MAX_HEADER_COUNT {
            problems.push(SettingError::new(
                "limits.header_count",
                format!(
                    "{} is outside 1..={MAX_HEADER_COUNT} (pingora parses at most {MAX_HEADER_COUNT} headers)",
                    self.header_count
                ),
            ));
        }
        if self.header_timeout.is_zero() || self.header_timeout > MAX_BODY_TIMEOUT {
            problems.push(SettingError::new(
                "limits.header_timeout",
                format!(
                    "{} is outside 1ms..={}",
                    show(self.header_timeout),
                    show(MAX_BODY_TIMEOUT)
                ),
            ));
        }
        if self.body_timeout.is_zero() || self.body_timeout > MAX_BODY_TIMEOUT {
            problems.push(SettingError::new(
                "limits.body_timeout",
                format!(
                    "{} is outside 1ms..={}",
                    show(self.body_timeout),
                    show(MAX_BODY_TIMEOUT)
                ),
            ));
        }
        let held = self.held_bodies.bytes();
        if held < MIN_HELD_BODIES || usize::try_from(held).is_err() {
            problems.push(SettingError::new(
                "limits.held_bodies",
                format!("{held} bytes is outside 64KiB..=what this machine can address"),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn defaults_are_in_range_and_absent_fields_take_them() {
        let limits: RequestLimits = serde_norway::from_str("header_count: 50").unwrap();
        assert_eq!(limits.header_count, 50);
        assert_eq!(limits.header_bytes, ByteSize(32 * 1024));
        assert_eq!(limits.body_timeout, Duration::from_secs(10));
        assert_eq!(limits.held_bodies, ByteSize(256 * 1024 * 1024));
        assert!(RequestLimits::default().problems().is_empty());
    }

    #[test]
    fn out_of_range_settings_are_each_named() {
        let limits: RequestLimits = serde_norway::from_str(
            "{header_bytes: 2MiB, header_count: 0, body_timeout: 0s, held_bodies: 1KiB}",
        )
        .unwrap();
        let fields: Vec<_> = limits.problems().iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "limits.header_bytes",
                "limits.header_count",
                "limits.body_timeout",
                "limits.held_bodies"
            ]
        );
        let held: RequestLimits = serde_norway::from_str("held_bodies: 16MiB").unwrap();
        assert_eq!(held.held_bodies, ByteSize(16 * 1024 * 1024));
        assert!(held.problems().is_empty());
    }
}
