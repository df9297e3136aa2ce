//! Issue 18: a disk that stays full for a long time. Every write, fdatasync, segment creation and
//! directory fsync fails through the writer's I/O seam for many retries, across checkpoint ticks
//! and segment rotation boundaries, with appends arriving all along; then the disk is cleared. The
//! writer must still be there: it heals by itself (a `ledger_recovered` entry), leaves no torn
//! tail, the chain verifies with checkpoint signatures, and later appends succeed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lexecon_keys::KeyRing;
use lexecon_ledger::{
    verify_dir, Appended, CheckpointSigner, Durability, EntryDraft, EventType, LedgerConfig,
    LedgerEntry, LedgerError, LedgerHandle, LedgerWriter, OsIo, SegmentIo,
};

const ENOSPC: i32 = 28;

/// A disk that is either fine or full. While full every write puts its first 49 bytes in the file
/// and fails with ENOSPC (a torn tail, as the soak left), every fdatasync fails with ENOSPC, and
/// (where the writer lets the seam do them) every segment creation, directory fsync and truncation
/// fails too; `create_then_fail` makes a creation leave the new file behind before it fails.
#[derive(Debug, Default)]
struct StuckDisk {
    full: AtomicBool,
    create_then_fail: AtomicBool,
    /// While set, the disk is not full but almost: each operation fails with this chance in
    /// percent (other builds take and free space all the time).
    flaky_percent: AtomicU64,
    draws: AtomicU64,
    /// Operations refused while full.
    refused: AtomicU64,
}

impl StuckDisk {
    fn refuse(&self) -> std::io::Error {
        self.refused.fetch_add(1, Ordering::SeqCst);
        std::io::Error::from_raw_os_error(ENOSPC)
    }

    fn is_full(&self) -> bool {
        if self.full.load(Ordering::SeqCst) {
            return true;
        }
        let percent = self.flaky_percent.load(Ordering::SeqCst);
        if percent == 0 {
            return false;
        }
        // A fixed pseudo-random sequence (splitmix64).
        let mut z = self
            .draws
            .fetch_add(1, Ordering::SeqCst)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        z % 100 < percent
    }
}

impl SegmentIo for StuckDisk {
    fn write_all(&self, file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
        if self.is_full() {
            let torn = bytes.len().min(49);
            file.write_all(&bytes[..torn])?;
            return Err(self.refuse());
        }
        file.write_all(bytes)
    }

    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        if self.is_full() {
            return Err(self.refuse());
        }
        file.sync_data()
    }

    fn create_new(&self, path: &Path) -> std::io::Result<File> {
        if self.is_full() {
            if self.create_then_fail.load(Ordering::SeqCst) {
                // The file exists (an inode was free), but the disk is full for what follows.
                let _ = OsIo.create_new(path);
            }
            return Err(self.refuse());
        }
        OsIo.create_new(path)
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        if self.is_full() {
            return Err(self.refuse());
        }
        OsIo.sync_dir(dir)
    }

    fn truncate(&self, file: &File, len: u64) -> std::io::Result<()> {
        if self.is_full() {
            // Cut, but the fsync that would make the cut durable fails.
            file.set_len(len)?;
            return Err(self.refuse());
        }
        OsIo.truncate(file, len)
    }
}

fn draft(i: u64) -> EntryDraft {
    let mut d = EntryDraft::event(
        EventType::Approval,
        format!("approval {i} {}", "y".repeat(40)),
    );
    d.request_id = Some(format!("req-{i}"));
    d
}

struct Setup {
    dir: tempfile::TempDir,
    disk: Arc<StuckDisk>,
    keys: KeyRing,
    handle: LedgerHandle,
}

fn start(durability: Durability, create_then_fail: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(StuckDisk::default());
    disk.create_then_fail
        .store(create_then_fail, Ordering::SeqCst);
    let keys = KeyRing::generate();
    let mut config = LedgerConfig::new(dir.path());
    config.durability = durability;
    // Rotation boundaries and checkpoints (by count and by time) fall inside the outage.
    config.segment_max_bytes = 4096;
    config.checkpoint_every = 5;
    config.checkpoint_interval = Duration::from_millis(20);
    let handle = LedgerWriter::start_with_io(
        config,
        Some(CheckpointSigner::of(&keys)),
        Arc::clone(&disk) as Arc<dyn SegmentIo>,
    )
    .unwrap();
    Setup {
        dir,
        disk,
        keys,
        handle,
    }
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    paths
}

fn entries(dir: &Path) -> Vec<LedgerEntry> {
    segment_files(dir)
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

/// Appends in a loop until told to stop; keeps what was accepted and every refusal that is not
/// the writer being down (which is what an outage must look like).
fn appender(
    handle: LedgerHandle,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(Vec<Appended>, Vec<String>)> {
    tokio::spawn(async move {
        let mut accepted = Vec::new();
        let mut unexpected = Vec::new();
        let mut i = 1_000_000;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            match handle.append(draft(i)).await {
                Ok(a) => accepted.push(a),
                // Down, or (a `sync` caller) refused with the I/O error: fails closed, for now.
                Err(LedgerError::WriterFailed { reason }) if !reason.contains("stopped") => {}
                Err(other) => unexpected.push(other.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (accepted, unexpected)
    })
}

/// The whole scenario: appends, a long outage with appends arriving all along, the disk cleared,
/// then the checks of the issue.
async fn a_long_outage_heals(setup: Setup, outage: Duration) {
    let Setup {
        dir,
        disk,
        keys,
        handle,
    } = setup;
    let mut accepted = Vec::new();
    // Close to a rotation boundary (4096 bytes), with a checkpoint due every 5 entries.
    for i in 0..12 {
        accepted.push(handle.append(draft(i)).await.unwrap());
    }
    handle.flush().await.unwrap();

    disk.full.store(true, Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let task = appender(handle.clone(), Arc::clone(&stop));
    wait_until(
        "the writer reports the failure",
        Duration::from_secs(10),
        || handle.stats().failed,
    )
    .await;
    let began = Instant::now();
    while began.elapsed() < outage {
        assert!(
            handle.stats().failed,
            "the disk is still full: the writer cannot have healed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused_while_full = disk.refused.load(Ordering::SeqCst);
    assert!(
        refused_while_full >= 5,
        "the writer retried against the full disk many times: {refused_while_full}"
    );

    disk.full.store(false, Ordering::SeqCst);
    wait_until(
        "the writer heals after the disk is cleared",
        Duration::from_secs(15),
        || !handle.stats().failed,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let (during, unexpected) = task.await.unwrap();
    assert!(
        unexpected.is_empty(),
        "appends during the outage must fail closed while the writer retries, never find it stopped: {unexpected:?}"
    );
    accepted.extend(during);
    assert!(handle.recoveries() >= 1);
    for i in 100..140 {
        accepted.push(handle.append(draft(i)).await.unwrap());
    }
    handle.flush().await.unwrap();
    handle.shutdown().await.unwrap();

    let public = keys.signer().verifying_key();
    let report = verify_dir(dir.path(), Some(&public)).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(report.checkpoints_verified > 0, "{report:?}");
    for path in segment_files(dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "{} ends in a torn tail",
            path.display()
        );
    }
    assert!(
        segment_files(dir.path()).len() >= 3,
        "rotated across the outage"
    );
    let all = entries(dir.path());
    for a in &accepted {
        let e = all
            .iter()
            .find(|e| e.seq == a.seq)
            .unwrap_or_else(|| panic!("accepted seq {} is missing", a.seq));
        assert_eq!(e.entry_hash, a.entry_hash, "seq {}", a.seq);
    }
    let recoveries: Vec<_> = all
        .iter()
        .filter(|e| e.event_type == EventType::LedgerRecovered)
        .collect();
    assert!(!recoveries.is_empty());
    let reason = recoveries[0].reason.as_deref().unwrap();
    assert!(reason.contains("No space left on device"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writer_survives_a_long_full_disk_across_rotations_and_checkpoints_and_heals() {
    a_long_outage_heals(start(Durability::Async, false), Duration::from_secs(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_writer_survives_a_long_full_disk_across_rotations_and_checkpoints_and_heals() {
    a_long_outage_heals(start(Durability::Sync, false), Duration::from_secs(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writer_heals_when_a_rotation_left_the_next_segment_created_but_not_durable() {
    a_long_outage_heals(start(Durability::Async, true), Duration::from_secs(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_writer_heals_when_a_rotation_left_the_next_segment_created_but_not_durable() {
    a_long_outage_heals(start(Durability::Sync, true), Duration::from_secs(4)).await;
}

/// A disk that fails some operations and not others (space freed and taken again all the time):
/// writes that succeed with a failing fdatasync, a heal that writes the kept entries and then fails
/// to create the next segment, and so on; then it stays full for a while, then is cleared.
async fn an_unsteady_disk_heals(durability: Durability, create_then_fail: bool) {
    let setup = start(durability, create_then_fail);
    setup.disk.flaky_percent.store(30, Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let task = appender(setup.handle.clone(), Arc::clone(&stop));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let (_, unexpected) = task.await.unwrap();
    assert!(
        unexpected.is_empty(),
        "appends on an unsteady disk must fail closed while the writer retries, never find it stopped: {unexpected:?}"
    );
    setup.disk.flaky_percent.store(0, Ordering::SeqCst);
    let handle = setup.handle.clone();
    wait_until(
        "the writer heals once the disk is steady",
        Duration::from_secs(15),
        || !handle.stats().failed,
    )
    .await;
    a_long_outage_heals(setup, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writer_heals_after_an_unsteady_disk() {
    an_unsteady_disk_heals(Durability::Async, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_writer_heals_after_an_unsteady_disk() {
    an_unsteady_disk_heals(Durability::Sync, true).await;
}
