//! Upstreams: resolved addresses used round robin, the pingora peer for each request with its
//! timeouts and TLS settings (rustls, SNI, certificates checked against `server.ca_file` or the
//! platform roots), and a per-upstream circuit breaker.
//!
//! Host names are resolved when the upstream is built (start-up, reload), never on the request path.
//! The breaker opens after `failures` consecutive connection or read failures and refuses requests
//! (503) for `open_for`; after that one request at a time may probe, and a success closes it.
//! Each opening and closing is returned to the caller ([`BreakerTransition`]), which counts it in
//! `lexecon_circuit_breaker_transitions_total` and logs it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lexecon_config::file::{UpstreamConfig, DEFAULT_DEMO_ADDR};
use pingora::upstreams::peer::HttpPeer;

/// One upstream of the running configuration.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    addrs: Vec<SocketAddr>,
    tls: bool,
    sni: String,
    connect_timeout: Duration,
    read_timeout: Duration,
    next: AtomicUsize,
    pub breaker: CircuitBreaker,
}

impl Upstream {
    /// Resolves the addresses of `config` (blocking DNS: call at start-up or reload only).
    pub fn build(name: &str, config: &UpstreamConfig) -> Result<Self, String> {
        let mut addrs = Vec::new();
        if config.embedded {
            let listen = config
                .addrs
                .first()
                .map_or(DEFAULT_DEMO_ADDR, String::as_str);
            let addr: SocketAddr = listen
                .parse()
                .map_err(|_| format!("upstreams.{name}: {listen:?} is not ip:port"))?;
            addrs.push(addr);
        } else {
            for (i, a) in config.addrs.iter().enumerate() {
                let resolved = a
                    .to_socket_addrs()
                    .map_err(|e| format!("upstreams.{name}.addrs[{i}]: cannot resolve {a:?}: {e}"))?
                    .next()
                    .ok_or_else(|| {
                        format!("upstreams.{name}.addrs[{i}]: {a:?} resolves to no address")
                    })?;
                addrs.push(resolved);
            }
        }
        if addrs.is_empty() {
            return Err(format!("upstreams.{name}: no address"));
        }
        let sni = config.sni.clone().unwrap_or_else(|| {
            config
                .addrs
                .first()
                .and_then(|a| a.rsplit_once(':').map(|(h, _)| h.to_string()))
                .unwrap_or_default()
        });
        Ok(Self {
            name: name.to_string(),
            addrs,
            tls: config.tls,
            sni,
            connect_timeout: config.connect_timeout,
            read_timeout: config.read_timeout,
            next: AtomicUsize::new(0),
            breaker: CircuitBreaker::new(
                config.circuit_breaker.failures,
                config.circuit_breaker.open_for,
            ),
        })
    }

    /// The resolved addresses.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The peer for the next request, round robin over the addresses.
    pub fn next_peer(&self) -> HttpPeer {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        let mut peer = HttpPeer::new(self.addrs[i], self.tls, self.sni.clone());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.total_connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        peer.options.write_timeout = Some(self.read_timeout);
        peer
    }
}

/// A change of a breaker's state, reported by the call that made it (for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerTransition {
    /// It was closed (or half-open with its probe failing) and now refuses for `open_for`.
    Opened,
    /// It was open or half-open and a success closed it.
    Closed,
}

impl BreakerTransition {
    /// The state it moved to, as a metric label: `open` or `closed`.
    pub fn state(self) -> &'static str {
        match self {
            BreakerTransition::Opened => "open",
            BreakerTransition::Closed => "closed",
        }
    }
}

/// Consecutive-failure circuit breaker (lock-free).
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker refuses; 0 when closed.
    open_until_ms: AtomicU64,
    /// A probe request is in flight while half-open.
    probing: AtomicBool,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a request may go to the upstream now.
    pub fn allow(&self) -> bool {
        self.allow_at(self.now_ms())
    }

    fn allow_at(&self, now_ms: u64) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if now_ms < until {
            return false;
        }
        // Half-open: let one probe through.
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// How long it refuses once opened.
    pub fn open_for(&self) -> Duration {
        self.open_for
    }

    /// Whether the breaker is open (refusing) now.
    pub fn is_open(&self) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        until != 0 && self.now_ms() < until
    }

    /// Counts a success; `Closed` when it closed an open or half-open breaker.
    pub fn record_success(&self) -> Option<BreakerTransition> {
        self.failures.store(0, Ordering::Release);
        let was = self.open_until_ms.swap(0, Ordering::AcqRel);
        self.probing.store(false, Ordering::Release);
        (was != 0).then_some(BreakerTransition::Closed)
    }

    /// Counts a failure; `Opened` when it opened a closed or half-open breaker (a failure while
    /// it is already open, from a request that started before it opened, only extends it).
    pub fn record_failure(&self) -> Option<BreakerTransition> {
        self.record_failure_at(self.now_ms())
    }

    fn record_failure_at(&self, now_ms: u64) -> Option<BreakerTransition> {
        let n = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if n < self.threshold {
            return None;
        }
        let open_for = u64::try_from(self.open_for.as_millis()).unwrap_or(u64::MAX);
        let until = now_ms.saturating_add(open_for).max(1);
        let was = self.open_until_ms.swap(until, Ordering::AcqRel);
        self.probing.store(false, Ordering::Release);
        (was == 0 || was <= now_ms).then_some(BreakerTransition::Opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lexecon_config::file::CircuitBreakerConfig;

    fn config(addrs: &[&str]) -> UpstreamConfig {
        UpstreamConfig {
            addrs: addrs.iter().map(|s| s.to_string()).collect(),
            embedded: false,
            tls: false,
            sni: None,
            connect_timeout: Duration::from_millis(100),
            read_timeout: Duration::from_secs(1),
            circuit_breaker: CircuitBreakerConfig::default(),
        }
    }

    #[test]
    fn peers_rotate_round_robin_over_addresses() {
        let up = Upstream::build("t", &config(&["127.0.0.1:7001", "127.0.0.1:7002"])).unwrap();
        let a = up.next_peer()._address.to_string();
        let b = up.next_peer()._address.to_string();
        let c = up.next_peer()._address.to_string();
        assert_eq!(a, "127.0.0.1:7001");
        assert_eq!(b, "127.0.0.1:7002");
        assert_eq!(c, a);
        let p = up.next_peer();
        assert_eq!(
            p.options.connection_timeout,
            Some(Duration::from_millis(100))
        );
        assert_eq!(p.options.read_timeout, Some(Duration::from_secs(1)));
    }

    #[test]
    fn tls_peer_carries_the_configured_sni() {
        let mut c = config(&["127.0.0.1:443"]);
        c.tls = true;
        c.sni = Some("api.example".into());
        let p = Upstream::build("t", &c).unwrap().next_peer();
        assert_eq!(p.sni, "api.example");
        assert_eq!(p.scheme, pingora::upstreams::peer::Scheme::HTTPS);
        let mut c = config(&["localhost:443"]);
        c.tls = true;
        assert_eq!(
            Upstream::build("t", &c).unwrap().next_peer().sni,
            "localhost"
        );
    }

    #[test]
    fn breaker_opens_after_consecutive_failures_and_closes_on_success() {
        let b = CircuitBreaker::new(2, Duration::from_secs(3600));
        assert!(b.allow());
        assert_eq!(b.record_success(), None);
        assert_eq!(b.record_failure(), None);
        assert!(b.allow());
        assert_eq!(b.record_failure(), Some(BreakerTransition::Opened));
        assert!(b.is_open());
        assert!(!b.allow());
        // A late failure of a request already in flight does not open it again.
        assert_eq!(b.record_failure(), None);
        assert_eq!(b.record_success(), Some(BreakerTransition::Closed));
        assert!(b.allow());
        assert_eq!(b.record_success(), None);
    }

    #[test]
    fn half_open_breaker_lets_one_probe_through() {
        let b = CircuitBreaker::new(1, Duration::from_millis(100));
        assert_eq!(b.record_failure_at(1000), Some(BreakerTransition::Opened));
        assert!(!b.allow_at(1050));
        // open_for elapsed: half-open, one probe only.
        assert!(b.allow_at(1100));
        assert!(!b.allow_at(1101));
        // The probe failed: open again for open_for.
        assert_eq!(b.record_failure_at(1102), Some(BreakerTransition::Opened));
        assert!(!b.allow_at(1150));
        assert!(b.allow_at(1202));
        assert_eq!(b.record_success(), Some(BreakerTransition::Closed));
        assert!(b.allow_at(1203));
        assert!(b.allow_at(1204));
    }
}
