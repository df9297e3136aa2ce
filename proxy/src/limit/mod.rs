//! Per-route, per-actor rate limits with `governor`: one keyed limiter per route, keyed by actor id,
//! answering how long to wait when a request is over the limit.
//!
//! Memory stays bounded by the limit's `max_actors`: the actors are kept in [`Actors`], a
//! `governor` state store that counts them. When it is full, actors whose budget is back to full
//! (indistinguishable from a new actor) are forgotten; when none is, a new actor is refused
//! ([`Limited::saturated`]) — never is a tracked actor's spent budget dropped, so a flood of new
//! actors cannot buy a throttled one a fresh budget. Never blocks and never sleeps: an over-limit
//! request is refused at once with the time after which it would pass.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use lexecon_config::file::RateLimitConfig;

/// The most often a full limiter looks for actors it may forget.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// A request over the limit: retry after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
    /// The limiter tracks `max_actors` actors, all still spending their budgets, and this actor
    /// is not one of them: it is refused until one of them is idle.
    pub saturated: bool,
}

impl Limited {
    /// What happened, for a refusal's reason: the actor's budget is spent, or the limiter is full.
    pub fn what(&self) -> &'static str {
        if self.saturated {
            "is full (it tracks max_actors actors, all still spending their budgets) and refused a new actor"
        } else {
            "exceeded"
        }
    }

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

/// The actors one limiter tracks, with their count (a `DashMap`'s own `len` locks every shard; the
/// request path reads this atomic instead). Clones share the map.
#[derive(Clone, Default)]
pub struct Actors(Arc<ActorsInner>);

#[derive(Default)]
struct ActorsInner {
    map: DashMapStateStore<Arc<str>>,
    len: AtomicUsize,
}

impl Actors {
    fn contains(&self, actor: &Arc<str>) -> bool {
        self.0.map.contains_key(actor)
    }

    fn count(&self) -> usize {
        self.0.len.load(Ordering::Relaxed)
    }
}

impl StateStore for Actors {
    type Key = Arc<str>;

    fn measure_and_replace<T, F, E>(&self, key: &Arc<str>, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.0.map.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let state = self.0.map.entry(key.clone()).or_insert_with(|| {
            self.0.len.fetch_add(1, Ordering::Relaxed);
            InMemoryState::default()
        });
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl ShrinkableKeyedStateStore<Arc<str>> for Actors {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.0.map, drop_below);
        self.0.len.store(self.0.map.len(), Ordering::Relaxed);
    }

    fn shrink_to_fit(&self) {
        self.0.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.count()
    }

    fn is_empty(&self) -> bool {
        self.count() == 0
    }
}

/// One route's limiter, keyed by actor id.
pub struct RouteLimiter {
    limiter: RateLimiter<
        Arc<str>,
        Actors,
        DefaultClock,
        NoOpMiddleware<<DefaultClock as Clock>::Instant>,
    >,
    actors: Actors,
    clock: DefaultClock,
    max_actors: usize,
    /// When the last sweep ran, in milliseconds since `created`.
    last_sweep: AtomicU64,
    created: Instant,
    /// The rate's period: how long a request that can never fit is told to wait.
    period: std::time::Duration,
}

impl std::fmt::Debug for RouteLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteLimiter")
            .field("max_actors", &self.max_actors)
            .finish_non_exhaustive()
    }
}

impl RouteLimiter {
    /// A limiter for `config` (rate, burst and `max_actors` as validated by the config).
    pub fn new(config: &RateLimitConfig) -> Self {
        let rate = config.per_actor;
        let burst =
            std::num::NonZeroU32::new(config.effective_burst()).unwrap_or(rate.count_nonzero());
        // INVARIANT: a validated rate has count >= 1 and a period of at least one second, so the
        // replenish interval is above zero; fall back to per-second quota if not.
        let quota = Quota::with_period(rate.period())
            .unwrap_or_else(|| Quota::per_second(rate.count_nonzero()))
            .allow_burst(burst);
        let actors = Actors::default();
        let clock = DefaultClock::default();
        Self {
            limiter: RateLimiter::new(quota, actors.clone(), clock.clone()),
            actors,
            clock,
            max_actors: config.max_actors.max(1),
            last_sweep: AtomicU64::new(0),
            created: Instant::now(),
            period: rate.period(),
        }
    }

    /// Counts one request of `actor`; `Err` when it is over the limit.
    pub fn check(&self, actor: &Arc<str>) -> Result<(), Limited> {
        self.admit(actor)?;
        match self.limiter.check_key(actor) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
                saturated: false,
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
        self.admit(actor)?;
        match self.limiter.check_key_n(actor, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
                saturated: false,
            }),
            Err(_insufficient) => Err(Limited {
                retry_after: self.period,
                saturated: false,
            }),
        }
    }

    /// The most actors tracked at once.
    pub fn max_actors(&self) -> usize {
        self.max_actors
    }

    /// How many actors are tracked now.
    pub fn tracked(&self) -> usize {
        self.actors.count()
    }

    /// Whether `actor` may be counted: always when the limiter has room or already tracks it;
    /// otherwise only if a sweep frees room. One atomic load while there is room.
    fn admit(&self, actor: &Arc<str>) -> Result<(), Limited> {
        if self.actors.count() < self.max_actors || self.actors.contains(actor) {
            return Ok(());
        }
        self.sweep();
        if self.actors.count() < self.max_actors {
            return Ok(());
        }
        Err(Limited {
            retry_after: self.period,
            saturated: true,
        })
    }

    /// Forgets the actors whose budget is full again, at most once per [`SWEEP_EVERY`] (a flood
    /// of new actors against a full limiter must not turn every request into a full scan).
    fn sweep(&self) {
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_sweep.load(Ordering::Relaxed);
        let every = u64::try_from(SWEEP_EVERY.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < every && last != 0 {
            return;
        }
        if self
            .last_sweep
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lexecon_config::file::{RateLimit, DEFAULT_MAX_ACTORS};

    fn limiter_of(rate: &str, burst: Option<u32>, max_actors: usize) -> RouteLimiter {
        RouteLimiter::new(&RateLimitConfig {
            per_actor: RateLimit::parse(rate).unwrap(),
            burst,
            max_actors,
        })
    }

    fn limiter(rate: &str, burst: Option<u32>) -> RouteLimiter {
        limiter_of(rate, burst, DEFAULT_MAX_ACTORS)
    }

    fn actor(i: usize) -> Arc<str> {
        Arc::from(format!("act_ai_agent:flood{i}"))
    }

    #[test]
    fn requests_above_burst_are_limited_with_a_retry_time() {
        let l = limiter("1/m", Some(2));
        let a: Arc<str> = Arc::from("act_ai_agent:a");
        assert!(l.check(&a).is_ok());
        assert!(l.check(&a).is_ok());
        let limited = l.check(&a).unwrap_err();
        assert!(!limited.saturated);
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
            saturated: false,
        };
        assert_eq!(l.retry_after_secs(), 1);
        let l = Limited {
            retry_after: Duration::from_millis(2500),
            saturated: false,
        };
        assert_eq!(l.retry_after_secs(), 3);
    }

    #[test]
    fn a_flood_of_unique_actors_stays_within_max_actors() {
        const MAX: usize = 10_000;
        const FLOOD: usize = 300_000;
        let l = limiter_of("1/h", None, MAX);
        for i in 0..MAX {
            assert!(l.check(&actor(i)).is_ok());
        }
        let mut refused = 0;
        for i in MAX..FLOOD {
            match l.check(&actor(i)) {
                Ok(()) => {}
                Err(limited) => {
                    assert!(limited.saturated, "a new actor is refused as saturation");
                    assert!(limited.what().contains("max_actors"));
                    refused += 1;
                }
            }
            assert!(l.tracked() <= MAX, "{} tracked at actor {i}", l.tracked());
        }
        assert_eq!(
            refused,
            FLOOD - MAX,
            "every actor beyond the bound is refused"
        );
        assert_eq!(l.tracked(), MAX);
    }

    #[test]
    fn a_flood_of_new_actors_does_not_reset_a_throttled_actors_budget() {
        let l = limiter_of("1/h", Some(2), 1000);
        let throttled: Arc<str> = Arc::from("act_ai_agent:greedy");
        assert!(l.check(&throttled).is_ok());
        assert!(l.check(&throttled).is_ok());
        assert!(l.check(&throttled).is_err());
        // The attacker controls many identities: it floods the limiter to evict its spent one.
        for i in 0..50_000 {
            let _ = l.check(&actor(i));
            assert!(l.tracked() <= 1000);
        }
        let limited = l.check(&throttled).unwrap_err();
        assert!(!limited.saturated, "still tracked, still over its limit");
        assert!(limited.retry_after > Duration::from_secs(60));
        assert!(l.check_n(&throttled, 1).is_err());
    }

    #[test]
    fn actors_whose_budget_is_full_again_are_forgotten_to_make_room() {
        let l = limiter_of("1/s", Some(1), 100);
        for i in 0..100 {
            assert!(l.check(&actor(i)).is_ok());
        }
        assert!(l.check(&actor(100)).unwrap_err().saturated);
        // Every tracked budget is full again after 1 s; governor forgets a key one period after
        // that (its `retain_recent` errs on keeping). The next new actor then sweeps them.
        std::thread::sleep(Duration::from_millis(2100));
        assert!(l.check(&actor(100)).is_ok());
        assert_eq!(l.tracked(), 1);
    }
}
