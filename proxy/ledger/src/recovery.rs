//! Opening a ledger directory: its writer lock, and the recovery of its last segment — verify the
//! chain to its tail, truncate a torn final line (reported, so that the writer records a
//! `ledger_recovered` entry) — and the creation of new segment files. Start-up only; it never
//! extends or rewrites a chain it could not verify, and never removes a complete line.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::entry::{split_hash, LedgerEntry, GENESIS_HASH};
use super::segment::{list_segments, segment_path, SegmentBytes};
use super::segment_io::SegmentIo;
use super::verify::ChainCursor;
use super::LedgerError;

/// Takes the directory's writer lock (see [`crate::dirlock`]), released when the writer stops.
pub(crate) fn lock_dir(dir: &Path, wait: Duration) -> Result<File, LedgerError> {
    crate::dirlock::lock(dir, wait).map_err(|e| match e {
        crate::dirlock::LockError::InUse { lock } => LedgerError::InUse {
            dir: dir.to_path_buf(),
            lock,
        },
        crate::dirlock::LockError::Io { path, source } => LedgerError::io("lock", &path, source),
    })
}

/// Where the chain of a recovered directory stands.
pub(crate) struct Recovered {
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
    pub(crate) next_seq: u64,
    pub(crate) head: String,
    /// What was truncated, if anything.
    pub(crate) torn: Option<String>,
}

/// Verifies the last segment (linked to the one before it), truncates a torn final line, and
/// returns where the chain continues; an empty directory gets its first segment.
/// Creating and truncating go through `io` (see [`crate::segment_io`]).
pub(crate) fn recover(dir: &Path, io: &dyn SegmentIo) -> Result<Recovered, LedgerError> {
    let segments = list_segments(dir)?;
    let Some(last) = segments.last() else {
        let path = segment_path(dir, 1);
        create_segment(dir, &path, io)?;
        return Ok(Recovered {
            path,
            len: 0,
            next_seq: 1,
            head: GENESIS_HASH.to_owned(),
            torn: None,
        });
    };
    let bytes = SegmentBytes::read(&last.path)?;
    let mut cursor = ChainCursor::new(None);
    cursor.next_seq = last.first_seq;
    let mut trust_first_link = false;
    if segments.len() > 1 {
        let prev = &segments[segments.len() - 2];
        let prev_bytes = SegmentBytes::read(&prev.path)?;
        let head = prev_bytes
            .lines()
            .last()
            .and_then(split_hash)
            .map(|(_, h)| String::from_utf8_lossy(h).into_owned());
        match head {
            Some(h) => cursor.head = h,
            None => {
                return Err(LedgerError::Corrupt {
                    path: prev.path.clone(),
                    seq: last.first_seq.saturating_sub(1),
                    reason: "the previous segment has no readable final entry".to_owned(),
                })
            }
        }
    } else if last.first_seq != 1 {
        // Older segments were archived: the first entry's link cannot be checked here.
        trust_first_link = true;
    }
    for line in bytes.lines() {
        if trust_first_link {
            if let Ok(entry) = serde_json::from_slice::<LedgerEntry>(line) {
                cursor.head = entry.previous_hash;
            }
            trust_first_link = false;
        }
        if let Err((reason, detail)) = cursor.check(line) {
            return Err(LedgerError::Corrupt {
                path: last.path.clone(),
                seq: cursor.next_seq,
                reason: format!("{reason:?}: {detail}"),
            });
        }
    }
    let mut torn = None;
    if bytes.torn_len() > 0 {
        let file = OpenOptions::new()
            .write(true)
            .open(&last.path)
            .map_err(|e| LedgerError::io("open segment", &last.path, e))?;
        io.truncate(&file, bytes.complete_len as u64)
            .map_err(|e| LedgerError::io("truncate torn line of", &last.path, e))?;
        torn = Some(format!(
            "truncated a torn final line of {} bytes at byte {} of {} (seq {} was never completed)",
            bytes.torn_len(),
            bytes.complete_len,
            last.path.display(),
            cursor.next_seq
        ));
    }
    Ok(Recovered {
        path: last.path.clone(),
        len: bytes.complete_len as u64,
        next_seq: cursor.next_seq,
        head: cursor.head,
        torn,
    })
}

/// Creates a segment file and makes its directory entry durable. A failure may leave the file
/// behind, empty (created, but its directory entry not known to be durable).
pub(crate) fn create_segment(
    dir: &Path,
    path: &Path,
    io: &dyn SegmentIo,
) -> Result<File, LedgerError> {
    let file = io
        .create_new(path)
        .map_err(|e| LedgerError::io("create segment", path, e))?;
    // The new file's directory entry must be durable too.
    io.sync_dir(dir)
        .map_err(|e| LedgerError::io("fsync directory", dir, e))?;
    Ok(file)
}
