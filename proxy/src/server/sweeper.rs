//! The cache sweeper: every [`SWEEP_INTERVAL`] it drops the request path's cached entries that can
//! no longer be served — capability tokens past half their life, verified JWTs past their `exp` —
//! so that their memory does not wait for capacity eviction after a burst. It owns no cache and
//! never runs on the request path: the caches' lookups do no housekeeping and check expiry
//! themselves, so a late sweep costs memory for a while, never a stale answer.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::server::state::ProxyState;

/// How often the sweeper runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

pub struct CacheSweeper {
    /// The engine whose token minter keeps reusable tokens (none with a custom decision point).
    pub engine: Option<Arc<Engine>>,
    /// For the token verifiers (JWT, local issuer) of the snapshot in force.
    pub state: Arc<ProxyState>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for CacheSweeper {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
            let tokens = self
                .engine
                .as_ref()
                .map_or(0, |engine| engine.sweep_expired_tokens());
            let jwts = self.state.load().identity.sweep_expired();
            if tokens + jwts > 0 {
                tracing::debug!(tokens, jwts, "expired cache entries dropped");
            }
        }
    }
}
