//! Prometheus metrics of the proxy: requests by route and outcome, request latency by route, upstream
//! circuit breakers opening and closing, and the ledger writer's counters (read from [`LedgerStats`] at each scrape). Owns its own registry (no
//! global state), rendered by the admin listener at `/metrics`.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use lexecon_ledger::LedgerStats;

use crate::server::upstream::BreakerTransition;

/// What happened to one request, as counted in `lexecon_requests_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Permit,
    Deny,
    Escalate,
    Unauthenticated,
    RateLimited,
    BadRequest,
    TooLarge,
    BodyTimeout,
    /// The body did not fit the budget of held bodies (`limits.held_bodies`): 503.
    Overloaded,
    Unmatched,
    Passthrough,
    DecideError,
    UpstreamError,
    CircuitOpen,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Permit => "permit",
            Outcome::Deny => "deny",
            Outcome::Escalate => "escalate",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::RateLimited => "rate_limited",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
            Outcome::BodyTimeout => "body_timeout",
            Outcome::Overloaded => "overloaded",
            Outcome::Unmatched => "unmatched",
            Outcome::Passthrough => "passthrough",
            Outcome::DecideError => "decide_error",
            Outcome::UpstreamError => "upstream_error",
            Outcome::CircuitOpen => "circuit_open",
        }
    }
}

/// The proxy's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Break-glass sessions started, and open now (server/break_glass.rs).
    pub break_glass_started: IntCounter,
    pub break_glass_active: IntGauge,
    /// Bytes of request bodies held now, and requests refused because the budget was spent
    /// (`limits.held_bodies`, server/held.rs).
    pub held_body_bytes: IntGauge,
    pub held_bodies_refused: IntCounter,
    /// Upstream circuit breakers opening and closing, by upstream and the state entered
    /// (server/upstream.rs).
    breaker_transitions: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "lexecon_requests_total",
                "Requests through the proxy by route and outcome",
            ),
            &["route", "outcome"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "lexecon_request_duration_seconds",
                "Time from request header to the end of the response, by route",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 18)?),
            &["route"],
        )?;
        let break_glass_started = IntCounter::new(
            "lexecon_break_glass_sessions_total",
            "Break-glass sessions started (each with a start and an end ledger entry)",
        )?;
        let break_glass_active = IntGauge::new(
            "lexecon_break_glass_active",
            "Break-glass sessions open now",
        )?;
        let held_body_bytes = IntGauge::new(
            "lexecon_held_body_bytes",
            "Bytes of request bodies held in memory now, read whole before their decision",
        )?;
        let held_bodies_refused = IntCounter::new(
            "lexecon_held_bodies_refused_total",
            "Requests answered 503 because the budget of held bodies (limits.held_bodies) was spent",
        )?;
        let breaker_transitions = IntCounterVec::new(
            Opts::new(
                "lexecon_circuit_breaker_transitions_total",
                "Upstream circuit breakers opening (state=open) and closing (state=closed)",
            ),
            &["upstream", "state"],
        )?;
        registry.register(Box::new(breaker_transitions.clone()))?;
        registry.register(Box::new(held_body_bytes.clone()))?;
        registry.register(Box::new(held_bodies_refused.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(break_glass_started.clone()))?;
        registry.register(Box::new(break_glass_active.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            break_glass_started,
            break_glass_active,
            held_body_bytes,
            held_bodies_refused,
            breaker_transitions,
        })
    }

    /// Counts one opening or closing of `upstream`'s circuit breaker.
    pub fn breaker_transition(&self, upstream: &str, transition: BreakerTransition) {
        self.breaker_transitions
            .with_label_values(&[upstream, transition.state()])
            .inc();
    }

    /// Adds metrics kept by another part of the server (the control plane's) to the exposition.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// Counts one finished request.
    pub fn observe(&self, route: &str, outcome: Outcome, seconds: f64) {
        self.requests
            .with_label_values(&[route, outcome.as_str()])
            .inc();
        self.latency.with_label_values(&[route]).observe(seconds);
    }

    /// How many requests of `route` ended with `outcome`.
    pub fn count(&self, route: &str, outcome: Outcome) -> u64 {
        self.requests
            .get_metric_with_label_values(&[route, outcome.as_str()])
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// The Prometheus text exposition of every metric, with the ledger writer's when it runs.
    pub fn render(&self, ledger: Option<&LedgerStats>) -> Vec<u8> {
        let mut families = self.registry.gather();
        if let Some(stats) = ledger {
            match ledger_families(stats) {
                Ok(more) => families.extend(more),
                Err(e) => tracing::warn!(error = %e, "cannot build the ledger metrics"),
            }
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The ledger writer's counters and gauges as of `stats`. Built afresh at every scrape (the writer
/// keeps the counts), so two concurrent scrapes never add to one another.
fn ledger_families(stats: &LedgerStats) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let counter =
        |name: &str, help: &str, value: u64| -> Result<Vec<MetricFamily>, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            c.inc_by(value);
            Ok(c.collect())
        };
    let gauge =
        |name: &str, help: &str, value: u64| -> Result<Vec<MetricFamily>, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            g.set(i64::try_from(value).unwrap_or(i64::MAX));
            Ok(g.collect())
        };
    let lag = Gauge::new(
        "lexecon_ledger_lag_seconds",
        "Time the oldest entry of the last written batch waited between append and write",
    )?;
    lag.set(stats.lag_micros as f64 / 1e6);
    let mut families = Vec::new();
    for part in [
        counter(
            "lexecon_ledger_entries_total",
            "Ledger entries written since start, checkpoints included",
            stats.appended,
        )?,
        counter(
            "lexecon_ledger_writes_total",
            "Batches written (one write call each) since start",
            stats.writes,
        )?,
        counter(
            "lexecon_ledger_syncs_total",
            "fdatasync calls on the ledger since start",
            stats.syncs,
        )?,
        counter(
            "lexecon_ledger_checkpoints_total",
            "Signed checkpoints written since start",
            stats.checkpoints,
        )?,
        gauge(
            "lexecon_ledger_queue_depth",
            "Entries waiting for the writer",
            stats.queue_depth as u64,
        )?,
        gauge(
            "lexecon_ledger_queue_capacity",
            "Capacity of the writer's queue",
            stats.queue_capacity as u64,
        )?,
        gauge(
            "lexecon_ledger_head_seq",
            "Highest seq written",
            stats.head_seq,
        )?,
        gauge(
            "lexecon_ledger_durable_seq",
            "Highest seq known to be fsynced",
            stats.durable_seq,
        )?,
        gauge(
            "lexecon_ledger_failed",
            "1 while the writer cannot write (an I/O error it retries, or it stopped): appends fail closed",
            u64::from(stats.failed),
        )?,
        counter(
            "lexecon_ledger_recoveries_total",
            "Times the writer healed from an I/O error without a restart (each a ledger_recovered entry)",
            stats.recoveries,
        )?,
        lag.collect(),
    ] {
        families.extend(part);
    }
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_counters_appear_only_when_a_ledger_runs() {
        let m = Metrics::new().unwrap();
        let without = String::from_utf8(m.render(None)).unwrap();
        assert!(!without.contains("lexecon_ledger"), "{without}");
        let stats = LedgerStats {
            queue_depth: 3,
            queue_capacity: 65_536,
            appended: 1_200,
            durable_seq: 1_150,
            head_seq: 1_197,
            lag_micros: 1_500,
            checkpoints: 2,
            writes: 40,
            syncs: 9,
            failed: false,
            recoveries: 1,
        };
        let text = String::from_utf8(m.render(Some(&stats))).unwrap();
        for line in [
            "lexecon_ledger_entries_total 1200",
            "lexecon_ledger_writes_total 40",
            "lexecon_ledger_syncs_total 9",
            "lexecon_ledger_checkpoints_total 2",
            "lexecon_ledger_queue_depth 3",
            "lexecon_ledger_queue_capacity 65536",
            "lexecon_ledger_head_seq 1197",
            "lexecon_ledger_durable_seq 1150",
            "lexecon_ledger_failed 0",
            "lexecon_ledger_recoveries_total 1",
            "lexecon_ledger_lag_seconds 0.0015",
            "# TYPE lexecon_ledger_entries_total counter",
            "# TYPE lexecon_ledger_queue_depth gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // Scraping twice reports the writer's counts, not their sum.
        let again = String::from_utf8(m.render(Some(&stats))).unwrap();
        assert!(again
            .lines()
            .any(|l| l == "lexecon_ledger_entries_total 1200"));
    }

    #[test]
    fn observed_requests_appear_in_the_text_exposition() {
        let m = Metrics::new().unwrap();
        m.observe("mcp", Outcome::Deny, 0.0002);
        m.observe("mcp", Outcome::Deny, 0.0003);
        assert_eq!(m.count("mcp", Outcome::Deny), 2);
        let text = String::from_utf8(m.render(None)).unwrap();
        assert!(
            text.contains("lexecon_requests_total{outcome=\"deny\",route=\"mcp\"} 2"),
            "{text}"
        );
        assert!(text.contains("lexecon_request_duration_seconds_count{route=\"mcp\"} 2"));
    }

    #[test]
    fn breaker_transitions_are_counted_by_upstream_and_state() {
        let m = Metrics::new().unwrap();
        m.breaker_transition("app", BreakerTransition::Opened);
        m.breaker_transition("app", BreakerTransition::Opened);
        m.breaker_transition("app", BreakerTransition::Closed);
        let text = String::from_utf8(m.render(None)).unwrap();
        for line in [
            "lexecon_circuit_breaker_transitions_total{state=\"open\",upstream=\"app\"} 2",
            "lexecon_circuit_breaker_transitions_total{state=\"closed\",upstream=\"app\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
