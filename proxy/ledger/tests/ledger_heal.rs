//! The writer heals: writes and syncs go through a [`SegmentIo`] that fails them as a full or
//! failing disk does (ENOSPC with half of the bytes written, EIO on fdatasync), and the tests check
//! that appends fail closed while the writer is down, that it resumes by itself, that the
//! `ledger_recovered` entry names the failure, and that every accepted entry is in a chain that
//! verifies. Deterministic, and runs anywhere (ledger_disk_full.rs does the same on a real full
//! filesystem where mounting is allowed).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lexecon_ledger::{
    verify_dir, Durability, EntryDraft, EventType, LedgerConfig, LedgerEntry, LedgerError,
    LedgerHandle, LedgerWriter, SegmentIo,
};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

/// A disk the test fills and clears: while `full`, and for the next `fail_writes` writes, a write
/// puts half of its bytes in the file and fails with ENOSPC (a torn tail); the next `fail_syncs`
/// fdatasyncs fail with EIO.
#[derive(Debug, Default)]
struct FlakyDisk {
    full: AtomicBool,
    fail_writes: AtomicU32,
    fail_syncs: AtomicU32,
}

fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl SegmentIo for FlakyDisk {
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
        if self.full.load(Ordering::SeqCst) || take_one(&self.fail_writes) {
            file.write_all(&bytes[..bytes.len() / 2])?;
            return Err(std::io::Error::from_raw_os_error(ENOSPC));
        }
        file.write_all(bytes)
    }

    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        if take_one(&self.fail_syncs) {
            return Err(std::io::Error::from_raw_os_error(EIO));
        }
        file.sync_data()
    }
}

fn draft(i: u64) -> EntryDraft {
    let mut d = EntryDraft::event(EventType::Approval, format!("approval {i}"));
    d.request_id = Some(format!("req-{i}"));
    d
}

fn start(dir: &Path, durability: Durability, disk: &Arc<FlakyDisk>) -> LedgerHandle {
    let mut config = LedgerConfig::new(dir);
    config.durability = durability;
    config.checkpoint_every = 0;
    LedgerWriter::start_with_io(config, None, Arc::clone(disk) as Arc<dyn SegmentIo>).unwrap()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn entries(dir: &Path) -> Vec<LedgerEntry> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    paths
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<LedgerEntry>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn recovered(entries: &[LedgerEntry]) -> Vec<&LedgerEntry> {
    entries
        .iter()
        .filter(|e| e.event_type == EventType::LedgerRecovered)
        .collect()
}

fn assert_verifies(dir: &Path) {
    let report = verify_dir(dir, None).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn a_full_disk_fails_appends_closed_until_it_is_cleared_then_the_writer_resumes_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(FlakyDisk::default());
    let handle = start(dir.path(), Durability::Async, &disk);
    let mut accepted = Vec::new();
    for i in 0..10 {
        accepted.push(handle.append(draft(i)).await.unwrap());
    }
    handle.flush().await.unwrap();
    assert_eq!(handle.stats().durable_seq, 10);

    disk.full.store(true, Ordering::SeqCst);
    // Accepted (queued) before the writer learns the disk is full: not durable, kept in memory.
    // The first is always accepted; the writer may fail before the others are queued.
    for i in 10..15 {
        match handle.append(draft(i)).await {
            Ok(a) => accepted.push(a),
            Err(LedgerError::WriterFailed { .. }) => break,
            Err(other) => panic!("{other:?}"),
        }
    }
    let last_before = accepted.last().unwrap().seq;
    assert!(last_before >= 11);
    wait_until("the writer reports the failure", || handle.stats().failed).await;
    match handle.append(draft(99)).await {
        Err(LedgerError::WriterFailed { reason }) => {
            assert!(reason.contains("No space left on device"), "{reason}");
            assert!(reason.contains("until it recovers"), "{reason}");
        }
        other => panic!("an append while the disk is full must fail closed, got {other:?}"),
    }
    assert!(
        handle.flush().await.is_err(),
        "nothing is durable while down"
    );
    assert_eq!(handle.stats().durable_seq, 10);
    let last_error = handle.last_error().unwrap();
    assert!(
        last_error.contains("No space left on device"),
        "{last_error}"
    );
    // Let it retry against the full disk a few times.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(handle.stats().failed);

    disk.full.store(false, Ordering::SeqCst);
    wait_until("the writer heals", || !handle.stats().failed).await;
    assert_eq!(handle.recoveries(), 1);
    for i in 15..20 {
        accepted.push(handle.append(draft(i)).await.unwrap());
    }
    handle.flush().await.unwrap();
    handle.shutdown().await.unwrap();

    assert_verifies(dir.path());
    let all = entries(dir.path());
    // Every accepted entry is there, at the seq and with the hash it was given.
    for a in &accepted {
        let e = all.iter().find(|e| e.seq == a.seq).unwrap();
        assert_eq!(e.entry_hash, a.entry_hash, "seq {}", a.seq);
    }
    let recoveries = recovered(&all);
    assert_eq!(recoveries.len(), 1, "{recoveries:?}");
    let r = recoveries[0];
    assert_eq!(
        r.seq,
        last_before + 1,
        "after the entries accepted before it"
    );
    let reason = r.reason.as_deref().unwrap();
    assert!(reason.contains("No space left on device"), "{reason}");
    assert!(
        reason.contains("last durable seq before it: 10"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("seqs 11 to {last_before}")),
        "{reason}"
    );
    assert!(reason.contains("none lost"), "{reason}");
    assert!(reason.contains("torn tail"), "{reason}");
    assert!(reason.contains(" ms "), "names how long: {reason}");
}

#[tokio::test]
async fn a_sync_caller_is_never_told_durable_when_the_fdatasync_failed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(FlakyDisk::default());
    let handle = start(dir.path(), Durability::Sync, &disk);
    let first = handle.append(draft(0)).await.unwrap();
    assert_eq!(first.seq, 1);

    disk.fail_syncs.store(1, Ordering::SeqCst);
    match handle.append(draft(1)).await {
        Err(LedgerError::WriterFailed { reason }) => {
            assert!(reason.contains("fdatasync"), "{reason}");
            assert!(reason.contains("Input/output error"), "{reason}");
        }
        other => panic!("a failed sync must not be acknowledged, got {other:?}"),
    }
    wait_until("the writer heals", || !handle.stats().failed).await;
    let third = handle.append(draft(2)).await.unwrap();
    // Seq 2 (the refused caller's entry, already claimed) was written after recovery, then the
    // recovery entry (3), then this one.
    assert_eq!(third.seq, 4);
    handle.shutdown().await.unwrap();

    assert_verifies(dir.path());
    let all = entries(dir.path());
    assert_eq!(all.len(), 4);
    assert_eq!(all[1].reason.as_deref(), Some("approval 1"));
    let reason = recovered(&all)[0].reason.as_deref().unwrap();
    assert!(reason.contains("Input/output error"), "{reason}");
    assert!(reason.contains("last durable seq before it: 1"), "{reason}");
    assert!(reason.contains("seqs 2 to 2"), "{reason}");
    assert!(
        reason.contains("1 `sync` callers among them were answered with the error"),
        "{reason}"
    );
}

#[tokio::test]
async fn repeated_failures_are_retried_with_backoff_and_counted_in_the_recovery_entry() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(FlakyDisk::default());
    let handle = start(dir.path(), Durability::Async, &disk);
    handle.append(draft(0)).await.unwrap();
    handle.flush().await.unwrap();
    // The first write fails, then two attempts to heal: 50 + 100 + 200 ms of back-off.
    disk.fail_writes.store(3, Ordering::SeqCst);
    let began = Instant::now();
    handle.append(draft(1)).await.unwrap();
    wait_until("the writer fails", || handle.stats().failed).await;
    wait_until("the writer heals", || !handle.stats().failed).await;
    assert!(
        began.elapsed() >= Duration::from_millis(300),
        "{:?}",
        began.elapsed()
    );
    handle.shutdown().await.unwrap();
    assert_verifies(dir.path());
    let all = entries(dir.path());
    let reason = recovered(&all)[0].reason.as_deref().unwrap();
    assert!(reason.contains("(3 attempts to recover)"), "{reason}");
    assert!(reason.contains("seqs 2 to 2"), "{reason}");
}

#[tokio::test]
async fn a_shutdown_while_the_disk_stays_full_fails_and_a_restart_recovers_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(FlakyDisk::default());
    let handle = start(dir.path(), Durability::Async, &disk);
    for i in 0..3 {
        handle.append(draft(i)).await.unwrap();
    }
    handle.flush().await.unwrap();
    disk.full.store(true, Ordering::SeqCst);
    handle.append(draft(3)).await.unwrap();
    wait_until("the writer fails", || handle.stats().failed).await;
    match handle.shutdown().await {
        Err(LedgerError::WriterFailed { reason }) => {
            assert!(
                reason.contains("seqs 4 to 4 were not made durable"),
                "{reason}"
            );
        }
        other => panic!("a shutdown that could not write must say so, got {other:?}"),
    }
    // The directory is released; a restart on a healthy disk cuts the torn tail and goes on.
    let handle = start(
        dir.path(),
        Durability::Async,
        &Arc::new(FlakyDisk::default()),
    );
    let next = handle.append(draft(4)).await.unwrap();
    handle.shutdown().await.unwrap();
    assert_verifies(dir.path());
    let all = entries(dir.path());
    assert_eq!(all[2].seq, 3);
    assert_eq!(all[3].event_type, EventType::LedgerRecovered, "{all:?}");
    assert_eq!(next.seq, 5);
}

#[tokio::test]
async fn an_outage_across_a_segment_rotation_heals_into_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(FlakyDisk::default());
    let mut config = LedgerConfig::new(dir.path());
    config.checkpoint_every = 0;
    config.segment_max_bytes = 4096;
    let handle =
        LedgerWriter::start_with_io(config, None, Arc::clone(&disk) as Arc<dyn SegmentIo>).unwrap();
    let mut accepted = Vec::new();
    for i in 0..20 {
        accepted.push(handle.append(draft(i)).await.unwrap());
    }
    handle.flush().await.unwrap();
    disk.full.store(true, Ordering::SeqCst);
    for i in 20..40 {
        if let Ok(a) = handle.append(draft(i)).await {
            accepted.push(a);
        }
    }
    wait_until("the writer fails", || handle.stats().failed).await;
    disk.full.store(false, Ordering::SeqCst);
    wait_until("the writer heals", || !handle.stats().failed).await;
    for i in 40..60 {
        accepted.push(handle.append(draft(i)).await.unwrap());
    }
    handle.shutdown().await.unwrap();
    assert_verifies(dir.path());
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jsonl")
        })
        .count();
    assert!(segments >= 3, "rotated: {segments} segments");
    let all = entries(dir.path());
    for a in &accepted {
        let e = all.iter().find(|e| e.seq == a.seq).unwrap();
        assert_eq!(e.entry_hash, a.entry_hash, "seq {}", a.seq);
    }
    assert_eq!(recovered(&all).len(), 1);
}

#[tokio::test]
async fn a_segment_cut_below_its_durable_entries_while_down_stops_the_writer_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(FlakyDisk::default());
    let handle = start(dir.path(), Durability::Async, &disk);
    for i in 0..5 {
        handle.append(draft(i)).await.unwrap();
    }
    handle.flush().await.unwrap();
    disk.full.store(true, Ordering::SeqCst);
    handle.append(draft(5)).await.unwrap();
    wait_until("the writer fails", || handle.stats().failed).await;
    // Someone cuts durable entries away while the writer is down: it must not extend the chain.
    let segment = dir.path().join(format!("ledger-{:020}.jsonl", 1));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(10)
        .unwrap();
    disk.full.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        handle.stats().failed,
        "a writer that cannot verify its tail stays down"
    );
    assert_eq!(handle.recoveries(), 0);
    match handle.append(draft(6)).await {
        Err(LedgerError::WriterFailed { reason }) => {
            assert!(reason.contains("stopped after"), "{reason}");
            assert!(reason.contains("corrupt"), "{reason}");
        }
        other => panic!("appends must fail once the writer stopped, got {other:?}"),
    }
    // Reported as a stop that needs a restart, distinct from an outage it retries.
    let stopped = handle
        .stopped()
        .expect("the stop is reported with its reason");
    assert!(stopped.contains("corrupt"), "{stopped}");
    assert!(handle.shutdown().await.is_err());
}

/// A disk whose driver panics: the seam's `write_all` panics instead of failing.
#[derive(Debug)]
struct PanickingDisk;

impl SegmentIo for PanickingDisk {
    fn write_all(&self, _: &mut File, _: &[u8]) -> std::io::Result<()> {
        panic!("the disk driver panicked");
    }

    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }
}

#[tokio::test]
async fn a_panic_in_the_writer_thread_is_reported_as_a_stop_with_its_reason_not_as_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.checkpoint_every = 0;
    let handle = LedgerWriter::start_with_io(config, None, Arc::new(PanickingDisk)).unwrap();
    handle.append(draft(0)).await.unwrap();
    wait_until("the writer reports the stop", || handle.stats().failed).await;
    let stopped = handle
        .stopped()
        .expect("a panic is a stop, with its reason");
    assert!(stopped.contains("panicked"), "{stopped}");
    assert!(stopped.contains("the disk driver panicked"), "{stopped}");
    match handle.append(draft(1)).await {
        Err(LedgerError::WriterFailed { reason }) => {
            assert!(reason.contains("the disk driver panicked"), "{reason}");
            assert!(reason.contains("needs a restart"), "{reason}");
        }
        other => panic!("appends after the stop must name it, got {other:?}"),
    }
}
