//! The writer's runtime settings: [`LedgerConfig`], the `ledger:` section of the configuration
//! ([`LedgerSettings`], owned by `lexecon-config` with its defaults and checks) with its directory
//! resolved. Defines no default and no check of its own: [`LedgerConfig::new`] takes the schema's
//! defaults and [`LedgerConfig::validate`] runs the schema's check, for callers (tests, tools) that
//! build one by hand.

use std::path::PathBuf;
use std::time::Duration;

pub use lexecon_config::sections::ledger::{effective_linger, Durability, WhenFull};
use lexecon_config::sections::LedgerSettings;

use super::LedgerError;

/// What the writer runs with: the settings of `ledger:` and the directory they resolve to.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerConfig {
    /// Directory of the segment files (created if missing).
    pub dir: PathBuf,
    pub durability: Durability,
    /// `async` mode: the longest time written entries stay without `fdatasync`.
    pub flush_interval: Duration,
    /// Capacity of the queue between the request path and the writer.
    pub queue: usize,
    pub when_full: WhenFull,
    /// A signed checkpoint once this many entries (plus those in flight) follow the previous one
    /// (0: never by count); see [`LedgerSettings::checkpoint_every`].
    pub checkpoint_every: u64,
    /// A signed checkpoint at least this often while entries arrive (0: never by time).
    pub checkpoint_interval: Duration,
    /// A new segment starts once the current one reaches this size.
    pub segment_max_bytes: u64,
    /// Most entries written per batch (per `write` call).
    pub batch_max: usize,
    /// `async` mode: how long the writer waits between batches; `None`: see [`Self::linger`].
    pub linger: Option<Duration>,
}

impl LedgerConfig {
    /// The writer settings of `settings`, writing to `dir` (already resolved against the data
    /// directory: [`LedgerSettings::resolved_dir`]). `redact` is not the writer's: see
    /// [`crate::RedactionConfig::from_settings`].
    pub fn from_settings(dir: impl Into<PathBuf>, settings: &LedgerSettings) -> Self {
        LedgerConfig {
            dir: dir.into(),
            durability: settings.durability,
            flush_interval: settings.flush_interval,
            queue: settings.queue,
            when_full: settings.when_full,
            checkpoint_every: settings.checkpoint_every,
            checkpoint_interval: settings.checkpoint_interval,
            segment_max_bytes: settings.segment_max_bytes,
            batch_max: settings.batch_max,
            linger: settings.linger,
        }
    }

    /// The configuration's defaults for everything but the directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::from_settings(dir, &LedgerSettings::default())
    }

    /// The linger in force: the configured one, else 1 ms capped at `flush_interval`.
    pub fn linger(&self) -> Duration {
        effective_linger(self.linger, self.flush_interval)
    }

    /// The configuration's check ([`LedgerSettings::problems`]); the first problem, if any.
    pub fn validate(&self) -> Result<(), LedgerError> {
        let settings = LedgerSettings {
            dir: self.dir.clone(),
            durability: self.durability,
            flush_interval: self.flush_interval,
            queue: self.queue,
            when_full: self.when_full,
            checkpoint_every: self.checkpoint_every,
            checkpoint_interval: self.checkpoint_interval,
            segment_max_bytes: self.segment_max_bytes,
            batch_max: self.batch_max,
            linger: self.linger,
            redact: Default::default(),
        };
        match settings.problems().into_iter().next() {
            None => Ok(()),
            Some(p) => Err(LedgerError::InvalidConfig {
                field: p.field,
                reason: p.reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_queue_is_the_channels_bound() {
        assert_eq!(
            lexecon_config::sections::ledger::MAX_QUEUE,
            tokio::sync::Semaphore::MAX_PERMITS
        );
        let mut config = LedgerConfig::new("l");
        config.queue = tokio::sync::Semaphore::MAX_PERMITS + 1;
        assert!(config.validate().is_err());
    }
}
