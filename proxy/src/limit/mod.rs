//! Per-route, per-actor rate limits with `governor`: one keyed limiter per route, keyed by actor id,
//! answering how long to wait when a request is over the limit.
//!
//! Memory stays bounded: once a limiter tracks more than [`RouteLimiter::max_keys`] actors, keys
//! whose state is back at full capacity are dropped. Never blocks and never sleeps: an over-limit
//! request is refused at once with the time after which it would pass.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use lexecon_config::file::RateLimitConfig;

/// How many distinct actors a route's limiter tracks before it drops idle ones.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// How often (in checks) the limiter looks at its size.
const HOUSEKEEPING_EVERY: u32 = 1024;

/// A request over the limit: retry after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

impl Limited {
    /// Whole seconds for a `Retry-After` header, rounded up (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        if self.retry_after.subsec_nanos() > 0 || secs == 0 {
            secs + 1
        } else {
            secs
        }
    }
}

/// One route's limiter, keyed by actor id.
pub struct RouteLimiter {
    limiter: DefaultKeyedRateLimiter<Arc<str>>,
    clock: DefaultClock,
    max_keys: usize,
    checks: AtomicU32,
    /// The rate's period: how long a request that can never fit is told to wait.
    period: std::time::Duration,
}

impl std::fmt::Debug for RouteLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteLimiter")
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl RouteLimiter {
    /// A limiter for `config` (rate and burst as validated by the config).
    pub fn new(config: &RateLimitConfig, max_keys: usize) -> Self {
        let rate = config.per_actor;
        let burst =
            std::num::NonZeroU32::new(config.effective_burst()).unwrap_or(rate.count_nonzero());
        // INVARIANT: a validated rate has count >= 1 and a period of at least one second, so the
        // replenish interval is above zero; fall back to per-second quota if not.
        let quota = Quota::with_period(rate.period())
            .unwrap_or_else(|| Quota::per_second(rate.count_nonzero()))
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            max_keys: max_keys.max(1),
            checks: AtomicU32::new(0),
            period: rate.period(),
        }
    }

    /// Counts one request of `actor`; `Err` when it is over the limit.
    pub fn check(&self, actor: &Arc<str>) -> Result<(), Limited> {
        self.housekeeping();
        match self.limiter.check_key(actor) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
        }
    }

    /// Counts `n` more requests of `actor` at once (the further calls of a JSON-RPC batch, beyond
    /// the one [`Self::check`] counted); `Err` when they do not all fit, and then none is counted.
    /// More than the burst never fits (its retry-after is one replenish period).
    pub fn check_n(&self, actor: &Arc<str>, n: u32) -> Result<(), Limited> {
        let Some(n) = std::num::NonZeroU32::new(n) else {
            return Ok(());
        };
        match self.limiter.check_key_n(actor, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
            Err(_insufficient) => Err(Limited {
                retry_after: self.period,
            }),
        }
    }

    /// The most actors tracked before idle ones are dropped.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// How many actors are tracked now.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }

    fn housekeeping(&self) {
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(HOUSEKEEPING_EVERY) && self.limiter.len() > self.max_keys {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lexecon_config::file::RateLimit;

    fn limiter(rate: &str, burst: Option<u32>) -> RouteLimiter {
        RouteLimiter::new(
            &RateLimitConfig {
                per_actor: RateLimit::parse(rate).unwrap(),
                burst,
            },
            DEFAULT_MAX_KEYS,
        )
    }

    #[test]
    fn requests_above_burst_are_limited_with_a_retry_time() {
        let l = limiter("1/m", Some(2));
        let a: Arc<str> = Arc::from("act_ai_agent:a");
        assert!(l.check(&a).is_ok());
        assert!(l.check(&a).is_ok());
        let limited = l.check(&a).unwrap_err();
        assert!(limited.retry_after > Duration::from_secs(1));
        assert!(limited.retry_after <= Duration::from_secs(60));
        assert!(limited.retry_after_secs() >= 2);
    }

    #[test]
    fn each_actor_has_its_own_budget() {
        let l = limiter("1/h", None);
        let a: Arc<str> = Arc::from("act_ai_agent:a");
        let b: Arc<str> = Arc::from("act_ai_agent:b");
        assert!(l.check(&a).is_ok());
        assert!(l.check(&a).is_err());
        assert!(l.check(&b).is_ok());
        assert_eq!(l.tracked(), 2);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let l = Limited {
            retry_after: Duration::from_millis(1),
        };
        assert_eq!(l.retry_after_secs(), 1);
        let l = Limited {
            retry_after: Duration::from_millis(2500),
        };
        assert_eq!(l.retry_after_secs(), 3);
    }
}
