//! Segment files: naming (`ledger-<first seq, 20 digits>.jsonl`), listing in seq order, and reading a
//! segment into complete lines plus a possibly torn tail. Startup and offline tools only; never on the
//! request path.

use std::path::{Path, PathBuf};

use super::LedgerError;

const PREFIX: &str = "ledger-";
const SUFFIX: &str = ".jsonl";

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The seq of the segment's first entry, from its name.
    pub first_seq: u64,
    pub path: PathBuf,
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{first_seq:020}{SUFFIX}"))
}

/// The segments in `dir`, ordered by first seq. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<Segment>, LedgerError> {
    let rd = std::fs::read_dir(dir).map_err(|e| LedgerError::io("read directory", dir, e))?;
    let mut segments = Vec::new();
    for item in rd {
        let item = item.map_err(|e| LedgerError::io("read directory", dir, e))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name
            .strip_prefix(PREFIX)
            .and_then(|n| n.strip_suffix(SUFFIX))
        else {
            continue;
        };
        if let Ok(first_seq) = num.parse::<u64>() {
            segments.push(Segment {
                first_seq,
                path: item.path(),
            });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// A segment's bytes split into complete lines (without `\n`) and the bytes after the last `\n`.
pub(crate) struct SegmentBytes {
    pub data: Vec<u8>,
    /// Length of the prefix made of complete lines.
    pub complete_len: usize,
}

impl SegmentBytes {
    pub fn read(path: &Path) -> Result<Self, LedgerError> {
        let data = std::fs::read(path).map_err(|e| LedgerError::io("read segment", path, e))?;
        let complete_len = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        Ok(SegmentBytes { data, complete_len })
    }

    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.data[..self.complete_len]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
    }

    pub fn torn_len(&self) -> usize {
        self.data.len() - self.complete_len
    }
}
