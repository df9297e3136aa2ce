//! The writer heals after a real full filesystem: the ledger lives on a 3 MiB tmpfs, a filler file
//! takes the rest of it, the writer's next write fails with ENOSPC; once the filler is removed the
//! writer resumes by itself, records a `ledger_recovered` entry, and the chain verifies with every
//! accepted entry in it.
//!
//! Needs permission to mount (root, as in CI); elsewhere it says so and passes without checking
//! anything (ledger_heal.rs checks the same behaviour through the writer's I/O seam everywhere).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lexecon_ledger::{
    verify_dir, EntryDraft, EventType, LedgerConfig, LedgerEntry, LedgerError, LedgerWriter,
};

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=`) on `dir`; `None`, with the reason printed,
    /// where this machine does not allow it.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a {size} tmpfs on {} ({}): the disk-full test needs root; \
                     ledger_heal.rs covers the behaviour through the I/O seam",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount ({e}): the disk-full test needs it");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a failed test may still hold a file open on it.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn draft(i: u64) -> EntryDraft {
    let mut d = EntryDraft::event(
        EventType::Approval,
        format!("approval {i} {}", "x".repeat(200)),
    );
    d.request_id = Some(format!("req-{i}"));
    d
}

/// Writes zeros to `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        if let Err(e) = file.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
            break;
        }
    }
}

#[tokio::test]
async fn the_writer_resumes_after_the_filesystem_was_full_and_the_chain_verifies() {
    let base = tempfile::tempdir().unwrap();
    let fs = base.path().join("fs");
    std::fs::create_dir(&fs).unwrap();
    let Some(_mounted) = Tmpfs::mount(&fs, "3m") else {
        return;
    };
    let dir = fs.join("ledger");
    let mut config = LedgerConfig::new(&dir);
    config.checkpoint_every = 0;
    let handle = LedgerWriter::start(config, None).unwrap();
    let mut accepted = Vec::new();
    for i in 0..100 {
        accepted.push(handle.append(draft(i)).await.unwrap());
    }
    handle.flush().await.unwrap();

    let filler = fs.join("filler");
    fill(&filler);
    // Appends are accepted until the writer's next write meets the full disk.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 100;
    let refused = loop {
        assert!(
            Instant::now() < deadline,
            "the writer never failed on a full disk"
        );
        match handle.append(draft(i)).await {
            Ok(a) => accepted.push(a),
            Err(LedgerError::WriterFailed { reason }) => break reason,
            Err(other) => panic!("unexpected error {other:?}"),
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert!(refused.contains("No space left on device"), "{refused}");
    assert!(handle.stats().failed);
    let durable_before = handle.stats().durable_seq;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(handle.stats().failed, "still down while the disk is full");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while handle.stats().failed {
        assert!(Instant::now() < deadline, "the writer did not resume");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    accepted.push(handle.append(draft(i)).await.unwrap());
    handle.flush().await.unwrap();
    handle.shutdown().await.unwrap();

    let report = verify_dir(&dir, None).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let text = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<String>();
    let all: Vec<LedgerEntry> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for a in &accepted {
        let e = all.iter().find(|e| e.seq == a.seq).unwrap();
        assert_eq!(e.entry_hash, a.entry_hash, "seq {}", a.seq);
    }
    let recovery: Vec<_> = all
        .iter()
        .filter(|e| e.event_type == EventType::LedgerRecovered)
        .collect();
    assert_eq!(recovery.len(), 1, "{recovery:?}");
    let reason = recovery[0].reason.as_deref().unwrap();
    assert!(reason.contains("No space left on device"), "{reason}");
    assert!(
        reason.contains(&format!("last durable seq before it: {durable_before}")),
        "{reason}"
    );
    assert!(reason.contains("none lost"), "{reason}");
}
