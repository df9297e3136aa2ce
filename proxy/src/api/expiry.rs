//! The approval-expiry background service of the server: every [`EXPIRY_INTERVAL`] it marks the
//! approvals past their expiry as expired (persisted) and records each in the ledger. Reads report
//! expiry even between runs; this makes it durable and audited. It never decides, never approves,
//! and does its blocking store work through [`lexecon_approvals::ApprovalStore::run_blocking`].

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::engine::Engine;

/// Expires due approvals (persisted) and records one ledger entry each; returns how many.
pub async fn expire_approvals(engine: &Engine) -> usize {
    let events = match engine
        .approvals()
        .run_blocking(|s| s.expire_due(Timestamp::now()))
        .await
    {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "cannot expire approvals");
            return 0;
        }
    };
    for event in &events {
        if let Err(e) = engine.record_approval(event).await {
            tracing::warn!(approval = %event.approval_id, error = %e, "approval expiry not recorded");
        }
    }
    events.len()
}

/// How often [`ApprovalExpiry`] looks for approvals past their expiry.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(10);

/// A background service of the server: every [`EXPIRY_INTERVAL`], marks approvals past their
/// expiry as expired and records each in the ledger. Reads report expiry even between runs; this
/// makes it durable and audited.
#[derive(Debug)]
pub struct ApprovalExpiry {
    engine: Arc<Engine>,
}

impl ApprovalExpiry {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for ApprovalExpiry {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(EXPIRY_INTERVAL) => {}
            }
            let n = expire_approvals(&self.engine).await;
            if n > 0 {
                tracing::info!(expired = n, "approvals expired");
            }
        }
    }
}
