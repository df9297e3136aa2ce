//! The audit ledger: every decision and system event as one hash-chained JSON line, written by one
//! dedicated writer thread with group commit, signed at checkpoints, rotated by size, recovered after a
//! crash, and verified, tailed or exported offline.
//!
//! The request path only ever touches [`LedgerHandle::append`] (or `append_body`): it claims the
//! entry's place in the chain itself (`head.rs`, lock-free) and hands the finished line to a bounded
//! channel; it never waits for the writer or the disk unless `durability: sync` was chosen. This module must never
//! drop an entry silently, never write a request context raw (only its digest and the fields a
//! [`RedactionConfig`] names), and never continue a chain it could not verify.
//!
//! File format (one segment = `ledger-<first seq, 20 digits>.jsonl`): each line is the compact JSON of a
//! [`LedgerEntry`] in declaration order, ending with `"entry_hash"`. `entry_hash` is the lowercase hex
//! SHA-256 of the line's bytes up to (not including) `,"entry_hash":` followed by `}` — i.e. of the
//! canonical entry without `entry_hash`. `previous_hash` is the `entry_hash` of the entry with the
//! previous `seq` (64 zeros for seq 1). A `checkpoint` entry carries an Ed25519 signature over
//! [`checkpoint_message`] (its seq and the chain head it follows) and the signing key's id.

pub mod config;
pub mod dirlock;
pub mod entry;
pub mod export;
pub mod handle;
mod head;
pub mod json;
mod recovery;
mod segment;
pub mod segment_io;
pub mod signer;
pub mod verify;
pub mod writer;

use std::path::PathBuf;

pub use config::{Durability, LedgerConfig, WhenFull};
pub use entry::{
    checkpoint_message, EntryBody, EntryDraft, EventType, FieldRule, LedgerEntry, RedactionConfig,
    GENESIS_HASH,
};
pub use export::{export, tail, ExportFormat};
pub use handle::{Appended, LedgerHandle, LedgerStats, PauseGuard};
pub use segment_io::{OsIo, SegmentIo};
pub use signer::CheckpointSigner;
pub use verify::{verify_dir, VerifyFailure, VerifyReason, VerifyReport};
pub use writer::LedgerWriter;

/// Everything that can go wrong in the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// `when_full: fail_closed` and the queue is at capacity: the caller must deny (503).
    #[error("ledger queue is full ({capacity} entries waiting); the request must be denied")]
    QueueFull { capacity: usize },
    /// The writer has stopped (shut down, or failed earlier); nothing more can be recorded.
    #[error("ledger writer is not running; the request must be denied")]
    Closed,
    /// The writer cannot write (an I/O error it retries until it heals, or it stopped); the entry
    /// was not recorded, or (a `sync` caller) is not known to be durable.
    #[error("ledger writer failed: {reason}")]
    WriterFailed { reason: String },
    /// The I/O error is part of the message and not a `source()`: a caller printing the chain
    /// (`lexecon serve`: `{:#}`) would show it twice.
    #[error("ledger I/O error: {op} {}: {error}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// The existing ledger does not verify; the writer refuses to extend a broken chain.
    #[error("ledger {path} is corrupt at seq {seq}: {reason}; run `lexecon ledger verify` and investigate before restarting")]
    Corrupt {
        path: PathBuf,
        seq: u64,
        reason: String,
    },
    /// Another writer (another `lexecon` process, or one of this process still shutting down)
    /// holds the directory: two writers would interleave two chains in one file.
    #[error("ledger directory {} is in use by another writer (lock {}); stop it or choose another `ledger.dir`", .dir.display(), .lock.display())]
    InUse { dir: PathBuf, lock: PathBuf },
    #[error("invalid ledger configuration: {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("cannot serialize ledger entry: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("cannot write export: {0}")]
    Export(String),
}

impl LedgerError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        LedgerError::Io {
            op,
            path: path.into(),
            error,
        }
    }
}
