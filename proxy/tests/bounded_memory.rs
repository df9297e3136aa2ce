//! The process's resident memory under a flood of unique keys: a rate limiter flooded with
//! 300,000 distinct actors grows by far less than keeping them would take. One test in its own
//! binary, so no other test's allocations move the measurement.

#![allow(clippy::unwrap_used, reason = "a test")]

use std::sync::Arc;

use lexecon::limit::RouteLimiter;
use lexecon_config::file::{RateLimit, RateLimitConfig};

/// The resident set of this process, in bytes (`VmRSS` of `/proc/self/status`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn a_flood_of_unique_actors_grows_rss_by_less_than_the_refused_actors_would_take() {
    const MAX: usize = 10_000;
    const FLOOD: usize = 300_000;
    let l = RouteLimiter::new(&RateLimitConfig {
        per_actor: RateLimit::parse("1/h").unwrap(),
        burst: None,
        max_actors: MAX,
    });
    let actor = |i: usize| -> Arc<str> { Arc::from(format!("act_ai_agent:flood{i:08}")) };
    // Fill to the bound first: what follows measures growth beyond it.
    for i in 0..MAX {
        assert!(l.check(&actor(i)).is_ok());
    }
    let before = rss();
    for i in MAX..FLOOD {
        assert!(l.check(&actor(i)).unwrap_err().saturated);
    }
    let grown = rss().saturating_sub(before);
    assert_eq!(l.tracked(), MAX);
    // Keeping the 290,000 refused actors would take at least their 22-byte ids plus a 16-byte
    // Arc header and an 8-byte state each: over 13 MB. Allow 4 MiB of allocator noise.
    let would_take = (FLOOD - MAX) as u64 * (22 + 16 + 8);
    assert!(
        grown < 4 * 1024 * 1024 && grown < would_take / 3,
        "RSS grew by {grown} bytes over {} refused actors (keeping them: >= {would_take})",
        FLOOD - MAX
    );
}
