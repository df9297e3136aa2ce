//! Prometheus metrics of the proxy: requests by route and outcome, and request latency by route.
//! Owns its own registry (no global state), rendered by the admin listener at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
        })
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

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_requests_appear_in_the_text_exposition() {
        let m = Metrics::new().unwrap();
        m.observe("mcp", Outcome::Deny, 0.0002);
        m.observe("mcp", Outcome::Deny, 0.0003);
        assert_eq!(m.count("mcp", Outcome::Deny), 2);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains("lexecon_requests_total{outcome=\"deny\",route=\"mcp\"} 2"),
            "{text}"
        );
        assert!(text.contains("lexecon_request_duration_seconds_count{route=\"mcp\"} 2"));
    }
}
