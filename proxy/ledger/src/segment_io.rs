//! The writer's I/O seam: every `write` to and `fdatasync` of a segment file goes through a
//! [`SegmentIo`]. The product uses [`OsIo`] (the file's own `write_all` and `sync_data`); a test
//! passes its own ([`crate::LedgerWriter::start_with_io`]) to fail writes or syncs the way a full
//! disk or a failing device does (ENOSPC, EIO, EDQUOT, a write torn half-way) and checks that the
//! writer heals.
//!
//! An implementation must never buffer, reorder or invent bytes: the writer counts a write as done
//! when `write_all` returns `Ok`, and as durable when `sync_data` does. It may write a prefix of the
//! bytes and then fail (the writer truncates such a torn tail before it writes again).

use std::fs::File;
use std::io::Write as _;

/// Writes and syncs segment files for the writer thread (see the module docs).
pub trait SegmentIo: Send + Sync + std::fmt::Debug + 'static {
    /// Appends all of `bytes` to `file` (opened in append mode), or fails.
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes what was written to `file` durable (`fdatasync`), or fails.
    fn sync_data(&self, file: &File) -> std::io::Result<()>;
}

/// The operating system's file I/O, unchanged: what `lexecon serve` uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsIo;

impl SegmentIo for OsIo {
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
        file.write_all(bytes)
    }

    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }
}
