//! The memory budget of held request bodies (`limits.held_bodies`): every body the proxy reads
//! whole before deciding (up to its route's `body_limit`) takes its bytes from one process-wide
//! budget, so many concurrent large bodies cannot take the sidecar's memory. A request that does
//! not fit is answered 503 with `Retry-After` and nothing is forwarded.
//!
//! Lock-free: one `AtomicUsize` of the bytes held, claimed with a compare-and-swap loop against
//! the capacity of the snapshot the request loaded (so a reload changes the limit for new claims,
//! and what is held stays counted until released). A claim is a [`Reservation`] that gives its
//! bytes back when dropped, however the request ends: decided and forwarded, refused, timed out,
//! or dropped by a client that went away. Never blocks, never waits for budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The bytes of request bodies held now, across all requests.
#[derive(Debug, Default)]
pub struct HeldBodies {
    used: AtomicUsize,
    /// Mirrors `used` for `/metrics` (`lexecon_held_body_bytes`).
    gauge: Option<prometheus::IntGauge>,
}

impl HeldBodies {
    /// A budget whose use `gauge` reports.
    pub fn new(gauge: Option<prometheus::IntGauge>) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            gauge,
        })
    }

    /// The bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Claims `bytes` if the total stays within `capacity`; `None` when it would not.
    pub fn reserve(self: &Arc<Self>, bytes: usize, capacity: usize) -> Option<Reservation> {
        let mut reservation = Reservation {
            budget: self.clone(),
            bytes: 0,
        };
        reservation.grow(bytes, capacity).then_some(reservation)
    }

    fn claim(&self, bytes: usize, capacity: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let mut current = self.used.load(Ordering::Acquire);
        loop {
            let Some(next) = current.checked_add(bytes).filter(|n| *n <= capacity) else {
                return false;
            };
            match self.used.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.track(bytes, true);
                    return true;
                }
                Err(now) => current = now,
            }
        }
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            // INVARIANT: only a reservation releases, and only the bytes it claimed.
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            self.track(bytes, false);
        }
    }

    fn track(&self, bytes: usize, add: bool) {
        if let Some(gauge) = &self.gauge {
            let n = i64::try_from(bytes).unwrap_or(i64::MAX);
            if add {
                gauge.add(n);
            } else {
                gauge.sub(n);
            }
        }
    }
}

/// Bytes claimed from a [`HeldBodies`] budget for one request's body; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<HeldBodies>,
    bytes: usize,
}

impl Reservation {
    /// Claims `more` bytes for the same body; false (nothing claimed) when they do not fit.
    pub fn grow(&mut self, more: usize, capacity: usize) -> bool {
        if self.budget.claim(more, capacity) {
            self.bytes += more;
            true
        } else {
            false
        }
    }

    /// The bytes this reservation holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_capacity_and_give_their_bytes_back_on_drop() {
        let budget = HeldBodies::new(None);
        let first = budget.reserve(60, 100).unwrap();
        assert!(budget.reserve(41, 100).is_none(), "60 + 41 > 100");
        assert_eq!(budget.used(), 60, "a refused claim takes nothing");
        let mut second = budget.reserve(30, 100).unwrap();
        assert!(!second.grow(11, 100));
        assert!(second.grow(10, 100));
        assert_eq!((budget.used(), second.bytes()), (100, 40));
        drop(first);
        assert_eq!(budget.used(), 40);
        drop(second);
        assert_eq!(budget.used(), 0);
        assert!(
            budget.reserve(usize::MAX, usize::MAX).is_some(),
            "no overflow"
        );
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_smaller_capacity_after_a_reload_refuses_new_claims_until_enough_is_released() {
        let budget = HeldBodies::new(None);
        let held = budget.reserve(80, 100).unwrap();
        assert!(budget.reserve(1, 50).is_none());
        drop(held);
        assert!(budget.reserve(50, 50).is_some());
    }

    #[test]
    fn concurrent_claims_never_exceed_the_capacity() {
        let budget = HeldBodies::new(None);
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (budget, peak) = (budget.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        if let Some(r) = budget.reserve(7, 50) {
                            peak.fetch_max(budget.used(), Ordering::SeqCst);
                            drop(r);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 50);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_gauge_follows_the_bytes_held() {
        let gauge = prometheus::IntGauge::new("held", "held").unwrap();
        let budget = HeldBodies::new(Some(gauge.clone()));
        let r = budget.reserve(12, 100).unwrap();
        assert_eq!(gauge.get(), 12);
        drop(r);
        assert_eq!(gauge.get(), 0);
    }
}
