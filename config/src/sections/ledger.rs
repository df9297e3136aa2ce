//! The `ledger:` section: `off`, or the writer's settings and the context fields an entry may
//! carry (`redact`). Owns their defaults (the only place they are written down) and their checks;
//! `lexecon_ledger::LedgerConfig` is built from [`LedgerSettings`] with a resolved directory and
//! re-runs [`LedgerSettings::problems`] for callers that build it by hand. Never touches the
//! directory it names.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{show, string_enum, SettingError};

string_enum! {
    /// When `append` returns.
    #[derive(Default)]
    pub enum Durability {
        /// After the entry is queued; it is written within microseconds and fsynced within
        /// `flush_interval`.
        #[default]
        Async = "async",
        /// After the entry is fsynced.
        Sync = "sync",
    }
}

string_enum! {
    /// What `append` does when the queue is full.
    #[derive(Default)]
    pub enum WhenFull {
        /// Wait for room (back-pressure on the request).
        #[default]
        Block = "block",
        /// Fail at once; the caller denies with 503.
        FailClosed = "fail_closed",
    }
}

string_enum! {
    /// How one context field may appear in a ledger entry.
    pub enum FieldRule {
        /// Written as is.
        Keep = "keep",
        /// Strings keep their last 4 characters (if longer than 8), the rest becomes `*`; other
        /// values become `"****"`.
        Mask = "mask",
        /// Written as `sha256:<hex>` of the value's canonical JSON (links entries without revealing
        /// it).
        Hash = "hash",
    }
}

/// The linger when none is configured (capped at `flush_interval`).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(1);
/// The smallest `segment_max_bytes`.
pub const MIN_SEGMENT_BYTES: u64 = 4096;
/// The largest `queue`: the bound of the writer's channel (tokio's `Semaphore::MAX_PERMITS`).
pub const MAX_QUEUE: usize = usize::MAX >> 3;

/// `ledger:` — `off` (also `false`), or the writer's settings (absent: every default).
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerSection {
    Off,
    On(LedgerSettings),
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection::On(LedgerSettings::default())
    }
}

impl LedgerSection {
    /// The settings, unless the ledger is off.
    pub fn settings(&self) -> Option<&LedgerSettings> {
        match self {
            LedgerSection::Off => None,
            LedgerSection::On(s) => Some(s),
        }
    }
}

impl Serialize for LedgerSection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            LedgerSection::Off => serializer.serialize_str("off"),
            LedgerSection::On(s) => s.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for LedgerSection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SectionVisitor;

        impl<'de> Visitor<'de> for SectionVisitor {
            type Value = LedgerSection;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of ledger settings, or `off`")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LedgerSection, E> {
                if v {
                    Err(E::custom(
                        "expected a mapping of ledger settings or `off`, got true",
                    ))
                } else {
                    Ok(LedgerSection::Off)
                }
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<LedgerSection, E> {
                if v == "off" {
                    Ok(LedgerSection::Off)
                } else {
                    Err(E::custom(format!(
                        "expected a mapping of ledger settings or `off`, got {v:?}"
                    )))
                }
            }

            fn visit_unit<E: de::Error>(self) -> Result<LedgerSection, E> {
                Ok(LedgerSection::default())
            }

            fn visit_none<E: de::Error>(self) -> Result<LedgerSection, E> {
                Ok(LedgerSection::default())
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<LedgerSection, D::Error> {
                d.deserialize_any(SectionVisitor)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LedgerSection, A::Error> {
                LedgerSettings::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(LedgerSection::On)
            }
        }

        deserializer.deserialize_any(SectionVisitor)
    }
}

/// The ledger writer's settings and the redaction rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSettings {
    /// Directory of the segment files, relative to `data_dir` (default `ledger`).
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    #[serde(default)]
    pub durability: Durability,
    /// `async` mode: the longest time written entries stay without `fdatasync`.
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Capacity of the queue between the request path and the writer.
    #[serde(default = "default_queue")]
    pub queue: usize,
    #[serde(default)]
    pub when_full: WhenFull,
    /// A signed checkpoint once this many entries follow the previous one (0: never by count). The
    /// checkpoint signs the chain head as claimed when the writer reaches that count, so it also
    /// covers the entries still queued at that moment: intervals are this many entries plus what is
    /// in flight (measured: ~108 with 50 at 25,000 appends/s), never fewer.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// A signed checkpoint at least this often while entries arrive (0s: never by time).
    #[serde(default = "default_checkpoint_interval", with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// A new segment starts once the current one reaches this size.
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// Most entries written per batch (per `write` call).
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// `async` mode: after writing a batch, the writer waits this long before it takes the next
    /// one, so that a busy request path hands entries over without waking the writer thread for
    /// each (0s: take entries as they arrive). A caller that waits for its entry's receipt cuts
    /// the wait short. Unset: 1 ms, or `flush_interval` when that is shorter (see
    /// [`effective_linger`]).
    #[serde(default, with = "humantime_serde::option")]
    pub linger: Option<Duration>,
    /// Context fields an entry may carry besides its digest, by domain: `{healthcare:
    /// {patient_id: hash}}`. Keys are field paths, with or without a leading `context.`.
    #[serde(default)]
    pub redact: BTreeMap<String, BTreeMap<String, FieldRule>>,
}

fn default_dir() -> PathBuf {
    PathBuf::from("ledger")
}
fn default_flush_interval() -> Duration {
    Duration::from_millis(5)
}
fn default_queue() -> usize {
    65_536
}
fn default_checkpoint_every() -> u64 {
    1000
}
fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_segment_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_batch_max() -> usize {
    4096
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            dir: default_dir(),
            durability: Durability::default(),
            flush_interval: default_flush_interval(),
            queue: default_queue(),
            when_full: WhenFull::default(),
            checkpoint_every: default_checkpoint_every(),
            checkpoint_interval: default_checkpoint_interval(),
            segment_max_bytes: default_segment_max_bytes(),
            batch_max: default_batch_max(),
            linger: None,
            redact: BTreeMap::new(),
        }
    }
}

/// The linger in force: `linger`, else [`DEFAULT_LINGER`] capped at `flush_interval`.
pub fn effective_linger(linger: Option<Duration>, flush_interval: Duration) -> Duration {
    linger.unwrap_or_else(|| DEFAULT_LINGER.min(flush_interval))
}

impl LedgerSettings {
    /// The segment directory: `dir` relative to `data_dir` (an absolute `dir` stays).
    pub fn resolved_dir(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.dir)
    }

    /// Every out-of-range writer setting (the writer refuses to start on the first).
    pub fn problems(&self) -> Vec<SettingError> {
        let mut problems = Vec::new();
        if self.queue == 0 {
            problems.push(SettingError::new("ledger.queue", "must be at least 1"));
        }
        if self.queue > MAX_QUEUE {
            problems.push(SettingError::new(
                "ledger.queue",
                format!("must be at most {MAX_QUEUE}"),
            ));
        }
        if self.batch_max == 0 {
            problems.push(SettingError::new("ledger.batch_max", "must be at least 1"));
        }
        if let Some(linger) = self.linger.filter(|l| *l > self.flush_interval) {
            // The crash bound of `async` is flush_interval + linger; keep the linger the smaller part.
            problems.push(SettingError::new(
                "ledger.linger",
                format!(
                    "{} is above flush_interval ({})",
                    show(linger),
                    show(self.flush_interval)
                ),
            ));
        }
        if self.segment_max_bytes < MIN_SEGMENT_BYTES {
            problems.push(SettingError::new(
                "ledger.segment_max_bytes",
                format!(
                    "{} is below the minimum of {MIN_SEGMENT_BYTES}",
                    self.segment_max_bytes
                ),
            ));
        }
        problems
    }
}
