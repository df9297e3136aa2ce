//! The running configuration as one immutable [`ProxySnapshot`] (routes, upstreams, identity, decider),
//! swapped atomically through `arc-swap`: a request loads it once and finishes on it, whatever is
//! swapped in meanwhile. [`ProxyState::reload`] is the hot-swap hook: build, then swap; a
//! configuration that does not build leaves the old snapshot in place.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use lexecon_config::file::{Config, EnforceMode, JwksSource, Unmatched, DEFAULT_UPSTREAM};

use crate::enforce::{DecisionPoint, Pinned};
use crate::identity::{Identity, JwtVerifier, KeySet, LocalIssuer};
use crate::server::metrics::Metrics;
use crate::server::routes::{Route, RouteTable};
use crate::server::upstream::Upstream;
use crate::server::SetupError;

/// Everything one request needs, fixed for its lifetime.
pub struct ProxySnapshot {
    pub routes: RouteTable,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    pub unmatched: Unmatched,
    pub default_upstream: Option<Arc<Upstream>>,
    pub identity: Identity,
    pub decider: Arc<dyn DecisionPoint>,
    pub mode: EnforceMode,
    /// Header block limits (431) and the body read deadline (408).
    pub limits: Limits,
    /// The policies every request of this snapshot is decided on: routes and policies are swapped
    /// together, in one store (`None`: the decider's own, for a decider without a policy store).
    pub policies: Pinned,
    /// Why every request is refused (503), when the sidecar has nothing it may enforce: a control
    /// plane is configured and no bundle was ever loaded. `/health` says the same.
    pub closed: Option<String>,
}

/// The request limits of `limits:`, in the units the request path compares.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_bytes: usize,
    pub header_count: usize,
    pub body_timeout: std::time::Duration,
    pub header_timeout: std::time::Duration,
    /// The most bytes of bodies held at once across requests (`limits.held_bodies`).
    pub held_bodies: usize,
}

impl Limits {
    fn of(config: &lexecon_config::sections::RequestLimits) -> Self {
        Self {
            header_bytes: usize::try_from(config.header_bytes.bytes()).unwrap_or(usize::MAX),
            header_count: config.header_count,
            body_timeout: config.body_timeout,
            header_timeout: config.header_timeout,
            held_bodies: usize::try_from(config.held_bodies.bytes()).unwrap_or(usize::MAX),
        }
    }
}

impl std::fmt::Debug for ProxySnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxySnapshot")
            .field("routes", &self.routes)
            .field("unmatched", &self.unmatched)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl crate::api::http::ProxyView for ProxySnapshot {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn policies(&self) -> &Pinned {
        &self.policies
    }

    fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    fn breakers(&self) -> Vec<(&str, bool)> {
        self.upstreams
            .iter()
            .map(|(name, up)| (name.as_str(), up.breaker.is_open()))
            .collect()
    }
}

impl ProxySnapshot {
    /// This snapshot deciding on `policies` (built and published together with it).
    pub fn with_policies(mut self, policies: Pinned) -> Self {
        self.policies = policies;
        self
    }

    /// This snapshot refusing every request with `reason` (503), e.g. no bundle loaded yet.
    pub fn closed_because(mut self, reason: impl Into<String>) -> Self {
        self.closed = Some(reason.into());
        self
    }

    /// Builds a snapshot from a validated configuration. Blocking (DNS, JWKS file or URL): call at
    /// start-up or on reload, never on the request path.
    pub fn build(
        config: &Config,
        decider: Arc<dyn DecisionPoint>,
    ) -> Result<ProxySnapshot, SetupError> {
        config.validate()?;
        let mut upstreams = BTreeMap::new();
        for (name, up) in &config.upstreams {
            let built = Upstream::build(name, up).map_err(SetupError::Upstream)?;
            upstreams.insert(name.clone(), Arc::new(built));
        }
        let mut routes = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            let upstream = upstreams.get(&route.upstream).cloned().ok_or_else(|| {
                SetupError::Upstream(format!(
                    "route {}: unknown upstream {:?}",
                    route.name, route.upstream
                ))
            })?;
            routes.push(Route::build(route, upstream, config.mode).map_err(SetupError::Route)?);
        }
        let jwt = match &config.identity.jwt {
            Some(jwt) => Some(Arc::new(load_verifier(jwt)?)),
            None => None,
        };
        let local = match &config.identity.local_issuer {
            Some(local) => Some(Arc::new(
                LocalIssuer::load(local, &config.data_dir).map_err(SetupError::Identity)?,
            )),
            None => None,
        };
        let identity = Identity::new(&config.identity, jwt, local).map_err(SetupError::Identity)?;
        Ok(ProxySnapshot {
            routes: RouteTable { routes },
            default_upstream: upstreams.get(DEFAULT_UPSTREAM).cloned(),
            upstreams,
            unmatched: config.unmatched,
            identity,
            mode: config.mode,
            limits: Limits::of(&config.limits),
            policies: decider.pin(),
            closed: None,
            decider,
        })
    }
}

/// A JWKS file must load; a JWKS URL that cannot be fetched now starts with no keys (every token
/// fails, closed) and is fetched again by the background refresher.
fn load_verifier(jwt: &lexecon_config::file::JwtConfig) -> Result<JwtVerifier, SetupError> {
    match JwtVerifier::load(jwt.clone()) {
        Ok(v) => Ok(v),
        Err(e) => match jwt.jwks_source() {
            JwksSource::Url(url) => {
                tracing::warn!(%url, error = %e, "JWKS not available yet; bearer tokens fail until it is");
                Ok(JwtVerifier::new(jwt.clone(), KeySet::default()))
            }
            JwksSource::File(_) => Err(SetupError::Identity(format!("identity.jwt.jwks: {e}"))),
        },
    }
}

/// The shared state of a running proxy: the current snapshot and the metrics.
pub struct ProxyState {
    current: ArcSwap<ProxySnapshot>,
    pub metrics: Metrics,
}

impl ProxyState {
    pub fn new(snapshot: ProxySnapshot) -> Result<Self, SetupError> {
        Ok(Self {
            current: ArcSwap::from_pointee(snapshot),
            metrics: Metrics::new().map_err(|e| SetupError::Metrics(e.to_string()))?,
        })
    }

    /// The snapshot in force now (one atomic load).
    pub fn load(&self) -> Arc<ProxySnapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; requests in flight finish on the one they loaded.
    pub fn swap(&self, snapshot: ProxySnapshot) {
        // The tool definitions last listed stay known: a changed tool stays refused after a reload.
        let old = self.load();
        for route in &snapshot.routes.routes {
            let previous = old.routes.routes.iter().find(|r| r.name == route.name);
            if let (Some(new), Some(old)) = (&route.pins, previous.and_then(|r| r.pins.as_ref())) {
                new.adopt_seen(old);
            }
        }
        self.current.store(Arc::new(snapshot));
    }

    /// The hot-swap hook: builds a snapshot from `config` and `decider` and swaps it in. On error
    /// the old snapshot stays in force and the error says why.
    pub fn reload(
        &self,
        config: &Config,
        decider: Arc<dyn DecisionPoint>,
    ) -> Result<(), SetupError> {
        let snapshot = ProxySnapshot::build(config, decider)?;
        self.swap(snapshot);
        tracing::info!(routes = config.routes.len(), "configuration swapped");
        Ok(())
    }

    /// The JWT verifier of the current snapshot (for the JWKS refresher).
    pub fn current_jwt(&self) -> Option<Arc<JwtVerifier>> {
        self.current.load().identity.jwt().cloned()
    }
}
