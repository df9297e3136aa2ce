//! The writer's disk side: writing the batch buffer to the current segment (one `write`), making
//! it durable (`fdatasync`) and acknowledging `sync` callers, and rotating to a new segment once
//! the current one is full. Every write, sync and creation goes through [`crate::segment_io`].
//!
//! It must never count a line durable before its fdatasync returned, never drop the buffer before
//! it is durable (an outage writes it again), and never open a segment that holds entries as a new
//! one. A failure here begins an outage ([`super::heal`]); it never ends the writer.

use std::fs::{File, OpenOptions};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Writer;
use crate::entry::split_hash;
use crate::recovery::create_segment;
use crate::segment::segment_path;
use crate::segment_io::SegmentIo;
use crate::LedgerError;

impl Writer {
    /// Writes the buffered lines, fsyncs the current segment, and continues in a new one. A failure
    /// begins an outage and leaves the writer in the current segment.
    pub(super) fn rotate(&mut self) {
        self.commit(true);
        if self.outage.is_some() {
            return;
        }
        let path = segment_path(&self.cfg.dir, self.next_seq);
        match open_new_segment(&self.cfg.dir, &path, self.io.as_ref()) {
            Ok(file) => {
                self.file = file;
                self.segment_path = path;
                self.durable_len = 0;
            }
            Err(e) => self.fail(e),
        }
    }

    /// [`Self::try_commit`]; a failed write or sync begins an outage (or prolongs it), which the
    /// loop heals before it takes the next message. Does nothing while the writer is down.
    pub(super) fn commit(&mut self, sync: bool) {
        if self.outage.is_some() {
            return;
        }
        if let Err(e) = self.try_commit(sync) {
            self.fail(e);
        }
    }

    /// Writes what of the buffer is not written yet; fsyncs when `sync` and acknowledges the `sync`
    /// callers. The buffer is kept until it is durable.
    pub(super) fn try_commit(&mut self, sync: bool) -> Result<(), LedgerError> {
        if self.written < self.buf.len() {
            self.io
                .write_all(&mut self.file, &self.buf[self.written..])
                .map_err(|e| LedgerError::io("write", &self.segment_path, e))?;
            self.written = self.buf.len();
            self.dirty = true;
            self.shared.writes.fetch_add(1, Ordering::Relaxed);
            self.shared
                .head_seq
                .store(self.next_seq - 1, Ordering::Relaxed);
            if let Some(t) = self.oldest_enqueued.take() {
                let micros = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.shared.lag_micros.store(micros, Ordering::Relaxed);
            }
        }
        if sync && self.dirty {
            self.io
                .sync_data(&self.file)
                .map_err(|e| LedgerError::io("fdatasync", &self.segment_path, e))?;
            self.dirty = false;
            self.last_sync = Instant::now();
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
            self.durable_len += self.buf.len() as u64;
            if let Some(hash) = last_line_hash(&self.buf) {
                self.durable_hash = hash;
            }
            self.buf.clear();
            self.written = 0;
            self.durable_seq = self.next_seq - 1;
            self.shared
                .durable_seq
                .store(self.durable_seq, Ordering::Relaxed);
        }
        if !self.dirty {
            for ack in self.pending.drain(..) {
                let _ = ack.send(Ok(()));
            }
        }
        Ok(())
    }
}

/// The `entry_hash` of the last line in `buf` (complete lines, each ending in `\n`).
fn last_line_hash(buf: &[u8]) -> Option<String> {
    let body = buf.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    split_hash(&body[start..]).map(|(_, hash)| String::from_utf8_lossy(hash).into_owned())
}

/// Creates the segment at `path`, or takes it over when an earlier attempt created it and failed
/// before anything was written to it; never opens a segment that holds entries.
fn open_new_segment(
    dir: &std::path::Path,
    path: &std::path::Path,
    io: &dyn SegmentIo,
) -> Result<File, LedgerError> {
    match create_segment(dir, path, io) {
        Err(LedgerError::Io { error, .. }) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let len = std::fs::metadata(path)
                .map_err(|e| LedgerError::io("stat segment", path, e))?
                .len();
            if len > 0 {
                return Err(LedgerError::io("create segment", path, error));
            }
            let file = OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| LedgerError::io("open segment", path, e))?;
            io.sync_dir(dir)
                .map_err(|e| LedgerError::io("fsync directory", dir, e))?;
            Ok(file)
        }
        other => other,
    }
}
