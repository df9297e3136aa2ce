//! The open-loop schedule: request k (k = 0, 1, 2, …) of the whole run is due at
//! `start + k / rate`, and connection c sends requests c, c + N, c + 2N, … of N connections, so the
//! connections interleave evenly. Requests due before `start + warmup` are sent but not measured;
//! the last request is the last one due before `start + warmup + duration`.

use std::time::{Duration, Instant};

use crate::LoadgenError;

/// Highest accepted rate (requests per second, all connections together).
pub const MAX_RATE: f64 = 10_000_000.0;
/// Highest accepted connection count.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Longest accepted run (warm-up plus measurement).
pub const MAX_TOTAL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    /// `start + warmup + duration`: nothing is sent from then on.
    end: Instant,
    rate: f64,
    connections: u64,
    /// Index of the first measured request.
    first_measured: u64,
    /// Number of requests of the whole run (warm-up included): indices `0..count`.
    count: u64,
}

impl Schedule {
    pub fn new(
        start: Instant,
        rate: f64,
        connections: usize,
        warmup: Duration,
        duration: Duration,
    ) -> Result<Self, LoadgenError> {
        if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
            return Err(LoadgenError::OutOfRange {
                what: "rate",
                value: rate.to_string(),
                expected: "a number of requests per second above 0 and at most 10,000,000",
            });
        }
        if connections == 0 || connections > MAX_CONNECTIONS {
            return Err(LoadgenError::OutOfRange {
                what: "connections",
                value: connections.to_string(),
                expected: "1 to 10,000",
            });
        }
        let total = warmup.saturating_add(duration);
        if duration.is_zero() || total > MAX_TOTAL {
            return Err(LoadgenError::OutOfRange {
                what: "duration",
                value: format!("{duration:?} (warm-up {warmup:?})"),
                expected: "above 0, and at most one hour with the warm-up",
            });
        }
        // Indices due strictly before a point t are 0..ceil(t * rate).
        let first_measured = (warmup.as_secs_f64() * rate).ceil() as u64;
        let count = (total.as_secs_f64() * rate).ceil() as u64;
        Ok(Self {
            start,
            end: start + total,
            rate,
            connections: connections as u64,
            first_measured,
            count,
        })
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn end(&self) -> Instant {
        self.end
    }

    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// When request `k` is due.
    pub fn due(&self, k: u64) -> Instant {
        let nanos = (k as f64 * 1e9 / self.rate) as u64;
        // Cannot overflow for k < count (at most an hour after start); saturate to be safe.
        self.start
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or(self.end)
    }

    /// Whether request `k` belongs to the run at all.
    pub fn contains(&self, k: u64) -> bool {
        k < self.count
    }

    /// Whether request `k` is measured (due after the warm-up).
    pub fn is_measured(&self, k: u64) -> bool {
        k >= self.first_measured && k < self.count
    }

    /// Number of measured requests in the schedule: what a target that keeps up completes.
    pub fn measured_count(&self) -> u64 {
        self.count - self.first_measured.min(self.count)
    }

    /// Requests `k, k + N, k + 2N, …` of one connection that are still in the run.
    pub fn remaining_from(&self, k: u64) -> u64 {
        if k >= self.count {
            0
        } else {
            (self.count - 1 - k) / self.connections + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(rate: f64, conns: usize, warmup_ms: u64, duration_ms: u64) -> Schedule {
        Schedule::new(
            Instant::now(),
            rate,
            conns,
            Duration::from_millis(warmup_ms),
            Duration::from_millis(duration_ms),
        )
        .unwrap()
    }

    #[test]
    fn requests_are_due_one_interval_apart() {
        let s = schedule(8000.0, 16, 0, 1000);
        for k in [0u64, 1, 7, 999, 5000] {
            let gap = s.due(k + 1) - s.due(k);
            // 125 µs, up to a nanosecond of rounding.
            assert!(gap.as_nanos().abs_diff(125_000) <= 1, "k={k}: {gap:?}");
        }
        assert_eq!(s.due(0), s.start());
        assert_eq!(s.due(8000) - s.start(), Duration::from_secs(1));
    }

    #[test]
    fn each_connection_is_due_every_n_intervals() {
        let s = schedule(1000.0, 4, 0, 1000);
        // Connection 1 sends requests 1, 5, 9, …: 4 ms apart, offset 1 ms from the start.
        assert_eq!(s.due(1) - s.start(), Duration::from_millis(1));
        assert_eq!(
            s.due(1 + s.connections()) - s.due(1),
            Duration::from_millis(4)
        );
    }

    #[test]
    fn warm_up_requests_are_not_measured_and_the_run_ends() {
        let s = schedule(100.0, 3, 500, 2000);
        assert!(!s.is_measured(49));
        assert!(s.is_measured(50));
        assert!(s.is_measured(249));
        assert!(!s.contains(250));
        assert!(!s.is_measured(250));
        assert_eq!(s.measured_count(), 200);
        // Connection 0 has 0, 3, …, 249: 84 requests; from 249 on, one.
        assert_eq!(s.remaining_from(0), 84);
        assert_eq!(s.remaining_from(249), 1);
        assert_eq!(s.remaining_from(252), 0);
    }

    #[test]
    fn fractional_rates_round_the_count_up() {
        let s = schedule(2.5, 1, 0, 1000);
        // Due at 0, 0.4 s and 0.8 s.
        assert_eq!(s.measured_count(), 3);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let now = Instant::now();
        let sec = Duration::from_secs(1);
        assert!(Schedule::new(now, 0.0, 1, Duration::ZERO, sec).is_err());
        assert!(Schedule::new(now, f64::NAN, 1, Duration::ZERO, sec).is_err());
        assert!(Schedule::new(now, 1e9, 1, Duration::ZERO, sec).is_err());
        assert!(Schedule::new(now, 10.0, 0, Duration::ZERO, sec).is_err());
        assert!(Schedule::new(now, 10.0, 1, Duration::ZERO, Duration::ZERO).is_err());
        assert!(Schedule::new(now, 10.0, 1, sec, Duration::from_secs(3600)).is_err());
    }
}
