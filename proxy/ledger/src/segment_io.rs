//! The writer's I/O seam: every `write` to and `fdatasync` of a segment file, every creation of a
//! segment, fsync of the ledger directory and cut of a torn tail goes through a [`SegmentIo`]. The
//! product uses [`OsIo`] (the operating system's calls, unchanged); a test passes its own
//! ([`crate::LedgerWriter::start_with_io`]) to fail them the way a full disk or a failing device
//! does (ENOSPC, EIO, EDQUOT, a write torn half-way, a file created whose directory entry could not
//! be made durable) and checks that the writer heals.
//!
//! An implementation must never buffer, reorder or invent bytes: the writer counts a write as done
//! when `write_all` returns `Ok`, and as durable when `sync_data` does. It may write a prefix of the
//! bytes and then fail (the writer truncates such a torn tail before it writes again), and it may
//! create a segment and then fail (the writer takes the empty file over).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;

/// Writes, syncs, creates and truncates segment files for the writer (see the module docs).
pub trait SegmentIo: Send + Sync + std::fmt::Debug + 'static {
    /// Appends all of `bytes` to `file` (opened in append mode), or fails.
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes what was written to `file` durable (`fdatasync`), or fails.
    fn sync_data(&self, file: &File) -> std::io::Result<()>;
    /// Creates the segment file `path`, which must not exist yet, opened for appending.
    fn create_new(&self, path: &Path) -> std::io::Result<File> {
        OsIo.create_new(path)
    }
    /// Makes the directory `dir`'s entries (a segment just created) durable.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        OsIo.sync_dir(dir)
    }
    /// Cuts `file` back to `len` bytes and makes that durable.
    fn truncate(&self, file: &File, len: u64) -> std::io::Result<()> {
        OsIo.truncate(file, len)
    }
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

    fn create_new(&self, path: &Path) -> std::io::Result<File> {
        OpenOptions::new().create_new(true).append(true).open(path)
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn truncate(&self, file: &File, len: u64) -> std::io::Result<()> {
        file.set_len(len)?;
        file.sync_all()
    }
}
