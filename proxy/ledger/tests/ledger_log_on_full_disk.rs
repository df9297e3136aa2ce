//! Issue 18, the soak's finding: the disk filled and stayed full, and the ledger writer ended
//! ("ledger writer is not running") instead of healing, leaving a torn tail. The process logs to
//! stderr on that same disk, and `tracing_subscriber::fmt()` (what `lexecon serve` installs)
//! reports a failed write of a log line with `eprintln!`, which panics when stderr cannot be
//! written: the writer's "ledger write failed" line panicked its thread before it had marked itself
//! down. This test installs a subscriber that does the same while the disk is full and checks that
//! the writer survives its own log lines: appends fail closed as retrying, the writer heals once
//! the disk is cleared, and the chain verifies without a torn tail.
//!
//! Its own test binary: the subscriber is process-wide (the writer logs from its own thread).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lexecon_ledger::{
    verify_dir, Durability, EntryDraft, EventType, LedgerConfig, LedgerError, LedgerWriter,
    SegmentIo,
};
use tracing::span;

/// The disk both the ledger and stderr are on.
static DISK_FULL: AtomicBool = AtomicBool::new(false);
/// Log lines the subscriber could not write.
static LOST_LOG_LINES: AtomicU64 = AtomicU64::new(0);

/// Formats nothing; while the disk is full, fails an event the way `tracing_subscriber::fmt()`
/// does when its writer (stderr) is on a full disk: its `eprintln!` of the write error panics.
struct StderrOnTheFullDisk;

impl tracing::Subscriber for StderrOnTheFullDisk {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {
        if DISK_FULL.load(Ordering::SeqCst) {
            LOST_LOG_LINES.fetch_add(1, Ordering::SeqCst);
            panic!("failed printing to stderr: No space left on device (os error 28)");
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// The ledger's writes while the disk is full: half of the bytes, then ENOSPC.
#[derive(Debug)]
struct LedgerDisk;

impl SegmentIo for LedgerDisk {
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
        if DISK_FULL.load(Ordering::SeqCst) {
            file.write_all(&bytes[..bytes.len().min(49)])?;
            return Err(std::io::Error::from_raw_os_error(28));
        }
        file.write_all(bytes)
    }

    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        if DISK_FULL.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        file.sync_data()
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn draft(i: u64) -> EntryDraft {
    EntryDraft::event(EventType::Approval, format!("approval {i}"))
}

#[tokio::test]
async fn a_log_line_that_cannot_be_written_to_the_full_disk_does_not_end_the_writer() {
    tracing::subscriber::set_global_default(StderrOnTheFullDisk).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.durability = Durability::Async;
    config.checkpoint_every = 0;
    let handle = LedgerWriter::start_with_io(config, None, Arc::new(LedgerDisk)).unwrap();
    for i in 0..5 {
        handle.append(draft(i)).await.unwrap();
    }
    handle.flush().await.unwrap();

    DISK_FULL.store(true, Ordering::SeqCst);
    handle.append(draft(5)).await.unwrap();
    // Failing, and retrying (and logging that it still cannot write) against the full disk.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        LOST_LOG_LINES.load(Ordering::SeqCst) > 0,
        "the writer logged while the disk was full"
    );
    match handle.append(draft(6)).await {
        Err(LedgerError::WriterFailed { reason }) => {
            assert!(reason.contains("until it recovers"), "{reason}");
        }
        other => panic!("the writer must be down and retrying, got {other:?}"),
    }

    DISK_FULL.store(false, Ordering::SeqCst);
    wait_until("the writer heals", || !handle.stats().failed).await;
    assert_eq!(handle.recoveries(), 1);
    let after = handle.append(draft(7)).await.unwrap();
    handle.shutdown().await.unwrap();

    let report = verify_dir(dir.path(), None).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.head_seq, after.seq);
    let segment = std::fs::read(dir.path().join(format!("ledger-{:020}.jsonl", 1))).unwrap();
    assert!(segment.ends_with(b"\n"), "no torn tail is left");
}
