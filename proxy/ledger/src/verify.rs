//! Offline verification of a ledger directory: every line's hash, the link to its predecessor, seq
//! continuity across segments, and (given the public key) every checkpoint signature. Reports the first
//! failure with the seq where the chain breaks. Reads files only; never modifies them.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use serde::Serialize;

use super::entry::{
    checkpoint_message, hash_body, split_hash, EventType, LedgerEntry, GENESIS_HASH,
};
use super::segment::{list_segments, SegmentBytes};
use super::LedgerError;

/// Why verification stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyReason {
    /// The line's content does not hash to its `entry_hash` (it was altered).
    HashMismatch,
    /// `previous_hash` is not the previous entry's hash (lines reordered, spliced or replaced).
    BrokenLink,
    /// A checkpoint signature does not verify, or was made by another key.
    BadSignature,
    /// The seq found is not the one expected (a line is missing, or lines are out of order).
    Gap,
    /// The line is not a ledger entry (bad JSON, missing fields, torn line).
    Malformed,
}

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyFailure {
    /// The seq at which the chain breaks: the seq the failing line should have had.
    pub seq: u64,
    pub reason: VerifyReason,
    pub detail: String,
    pub segment: PathBuf,
    /// 1-based line number inside the segment.
    pub line: usize,
}

/// The result of [`verify_dir`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries that verified before the first failure (all of them when `first_error` is `None`).
    pub entries_checked: u64,
    /// `entry_hash` of the last verified entry (64 zeros for an empty ledger).
    pub head_hash: String,
    /// Seq of the last verified entry (0 for an empty ledger).
    pub head_seq: u64,
    pub segments: usize,
    /// Checkpoints whose signature was verified with the given public key.
    pub checkpoints_verified: u64,
    /// Checkpoints seen while no public key was given (signatures not checked).
    pub checkpoints_unchecked: u64,
    pub first_error: Option<VerifyFailure>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.first_error.is_none()
    }
}

/// Walks a chain line by line. Shared by [`verify_dir`] and the writer's recovery.
pub(crate) struct ChainCursor<'k> {
    pub next_seq: u64,
    pub head: String,
    pub checked: u64,
    pub checkpoints_verified: u64,
    pub checkpoints_unchecked: u64,
    key: Option<&'k VerifyingKey>,
    key_id: Option<String>,
}

impl<'k> ChainCursor<'k> {
    pub fn new(key: Option<&'k VerifyingKey>) -> Self {
        ChainCursor {
            next_seq: 1,
            head: GENESIS_HASH.to_owned(),
            checked: 0,
            checkpoints_verified: 0,
            checkpoints_unchecked: 0,
            key,
            key_id: key.map(lexecon_keys::key_id),
        }
    }

    /// Checks one line (without `\n`) and advances; on failure the cursor is unchanged.
    pub fn check(&mut self, line: &[u8]) -> Result<LedgerEntry, (VerifyReason, String)> {
        let Some((body, recorded)) = split_hash(line) else {
            return Err((
                VerifyReason::Malformed,
                "line does not end with an entry_hash member".to_owned(),
            ));
        };
        let computed = hash_body(body);
        if computed.as_bytes() != recorded {
            return Err((
                VerifyReason::HashMismatch,
                format!(
                    "content hashes to {computed}, line records {}",
                    String::from_utf8_lossy(recorded)
                ),
            ));
        }
        let entry: LedgerEntry = serde_json::from_slice(line)
            .map_err(|e| (VerifyReason::Malformed, format!("not a ledger entry: {e}")))?;
        if entry.seq != self.next_seq {
            return Err((
                VerifyReason::Gap,
                format!("expected seq {}, found seq {}", self.next_seq, entry.seq),
            ));
        }
        if entry.previous_hash != self.head {
            return Err((
                VerifyReason::BrokenLink,
                format!(
                    "previous_hash {} is not the hash of seq {} ({})",
                    entry.previous_hash,
                    self.next_seq.saturating_sub(1),
                    self.head
                ),
            ));
        }
        if entry.event_type == EventType::Checkpoint {
            self.check_checkpoint(&entry)?;
        }
        self.next_seq += 1;
        self.head.clone_from(&entry.entry_hash);
        self.checked += 1;
        Ok(entry)
    }

    fn check_checkpoint(&mut self, entry: &LedgerEntry) -> Result<(), (VerifyReason, String)> {
        let (Some(kid), Some(sig)) = (&entry.key_id, &entry.signature) else {
            return Err((
                VerifyReason::BadSignature,
                "checkpoint without key_id or signature".to_owned(),
            ));
        };
        let (Some(key), Some(expected_kid)) = (self.key, &self.key_id) else {
            self.checkpoints_unchecked += 1;
            return Ok(());
        };
        if kid != expected_kid {
            return Err((
                VerifyReason::BadSignature,
                format!("checkpoint signed by key {kid}, the given public key is {expected_kid}"),
            ));
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|e| {
                (
                    VerifyReason::BadSignature,
                    format!("signature is not base64url: {e}"),
                )
            })?;
        let signature = Signature::from_slice(&bytes)
            .map_err(|e| (VerifyReason::BadSignature, format!("signature: {e}")))?;
        key.verify(
            &checkpoint_message(entry.seq, &entry.previous_hash),
            &signature,
        )
        .map_err(|_| {
            (
                VerifyReason::BadSignature,
                format!("signature does not verify with key {expected_kid}"),
            )
        })?;
        self.checkpoints_verified += 1;
        Ok(())
    }
}

/// Verifies every segment in `dir`. With `public_key`, checkpoint signatures are verified too; without
/// it they are counted as unchecked. I/O errors are errors; a broken chain is a report with
/// `first_error` set.
pub fn verify_dir(
    dir: &Path,
    public_key: Option<&VerifyingKey>,
) -> Result<VerifyReport, LedgerError> {
    let segments = list_segments(dir)?;
    let mut cursor = ChainCursor::new(public_key);
    let mut first_error = None;
    'segments: for segment in &segments {
        if segment.first_seq != cursor.next_seq {
            first_error = Some(VerifyFailure {
                seq: cursor.next_seq,
                reason: VerifyReason::Gap,
                detail: format!(
                    "segment starts at seq {}, expected seq {}",
                    segment.first_seq, cursor.next_seq
                ),
                segment: segment.path.clone(),
                line: 0,
            });
            break;
        }
        let bytes = SegmentBytes::read(&segment.path)?;
        let mut line_no = 0;
        for line in bytes.lines() {
            line_no += 1;
            if let Err((reason, detail)) = cursor.check(line) {
                first_error = Some(VerifyFailure {
                    seq: cursor.next_seq,
                    reason,
                    detail,
                    segment: segment.path.clone(),
                    line: line_no,
                });
                break 'segments;
            }
        }
        if bytes.torn_len() > 0 {
            first_error = Some(VerifyFailure {
                seq: cursor.next_seq,
                reason: VerifyReason::Malformed,
                detail: format!(
                    "{} bytes after the last complete line (a torn write; the writer truncates it on start)",
                    bytes.torn_len()
                ),
                segment: segment.path.clone(),
                line: line_no + 1,
            });
            break;
        }
    }
    Ok(VerifyReport {
        entries_checked: cursor.checked,
        head_hash: cursor.head,
        head_seq: cursor.next_seq - 1,
        segments: segments.len(),
        checkpoints_verified: cursor.checkpoints_verified,
        checkpoints_unchecked: cursor.checkpoints_unchecked,
        first_error,
    })
}
