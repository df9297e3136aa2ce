//! End-to-end tests of the ledger: the writer on a temporary directory, tampering with the files, and
//! the offline verify / tail / export commands.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration-test helpers: a failed unwrap is a failed test"
)]

use std::path::Path;
use std::time::Duration;

use lexecon_config::LedgerSettings;
use lexecon_domains::{ComplianceMapping, ComplianceStatus, Verdict};
use lexecon_keys::KeyRing;
use lexecon_ledger::{
    export, tail, verify_dir, EntryDraft, EventType, ExportFormat, LedgerConfig, LedgerEntry,
    LedgerError, LedgerWriter, RedactionConfig, VerifyReason, WhenFull,
};
use lexecon_ledger::{Durability, FieldRule};
use lexecon_policy_cache::{Decision, Explanation};
use serde_json::json;

fn decision(i: u64) -> Decision {
    Decision {
        request_id: format!("req-{i}"),
        decision_id: format!("dec-{i}"),
        domain: "healthcare".to_owned(),
        actor: format!("agent-{i}"),
        action: "axn_read_record".to_owned(),
        resource: Some(format!("patient/{i}")),
        decision: Verdict::Permit,
        reasoning: "rule allow-treatment matched".to_owned().into(),
        rule_id: "allow-treatment".to_owned().into(),
        policy_version_hash: "ab".repeat(32).into(),
        compliance_mappings: vec![ComplianceMapping {
            framework: "hipaa".into(),
            controls: vec!["164.312(b)".into()],
            status: ComplianceStatus::Compliant,
        }]
        .into(),
        risk_level: 2,
        requires_human_approval: false,
        review_required: false,
        explanation: Explanation {
            matched_rules: vec!["allow-treatment".into()].into(),
            findings: vec![],
            would_have: None,
            cached: false,
        },
        timestamp: jiff::Timestamp::from_second(1_700_000_000 + i as i64).unwrap(),
    }
}

/// Healthcare entries may record `purpose` in clear, nothing else.
fn keeping_purpose() -> RedactionConfig {
    let mut redaction = RedactionConfig::default();
    redaction.domains.insert(
        "healthcare".to_owned(),
        [("context.purpose".to_owned(), FieldRule::Keep)].into(),
    );
    redaction
}

fn draft(i: u64) -> EntryDraft {
    let context = json!({"patient_id": format!("P-{i}"), "purpose": "treatment"});
    LedgerEntry::from_decision(
        &decision(i),
        context.as_object().unwrap(),
        &RedactionConfig::default(),
    )
}

/// Writes `n` decision entries (no checkpoints) and stops the writer.
async fn write_ledger(dir: &Path, n: u64) {
    write_ledger_of(dir, 1..=n).await;
}

async fn write_ledger_of(dir: &Path, ids: impl Iterator<Item = u64>) {
    let handle = LedgerWriter::start(LedgerConfig::new(dir), None).unwrap();
    for i in ids {
        handle.append(draft(i)).await.unwrap();
    }
    handle.shutdown().await.unwrap();
}

fn segment_file(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("ledger-{:020}.jsonl", 1))
}

fn read_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(segment_file(dir))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(dir: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(segment_file(dir), text).unwrap();
}

#[tokio::test]
async fn appended_entries_verify_and_checkpoints_are_signed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyRing::generate();
    let mut config = LedgerConfig::new(dir.path());
    config.checkpoint_every = 10;
    let handle =
        LedgerWriter::start(config, Some(lexecon_ledger::CheckpointSigner::of(&keys))).unwrap();
    let mut seqs = Vec::new();
    for i in 1..=35 {
        seqs.push(handle.append(draft(i)).await.unwrap().seq);
        // Each entry written before the next is claimed, so the checkpoints' places are known.
        handle.flush().await.unwrap();
    }
    handle.shutdown().await.unwrap();
    // Checkpoints at seq 11, 22, 33 interleave with the entries.
    assert_eq!(&seqs[..3], &[1, 2, 3]);
    assert_eq!(seqs[10], 12);
    let public = keys.signer().verifying_key();
    let report = verify_dir(dir.path(), Some(&public)).unwrap();
    assert!(report.is_ok(), "{report:?}");
    // 35 decisions, checkpoints after every 10, and a final one at shutdown.
    assert_eq!(report.entries_checked, 39);
    assert_eq!(report.checkpoints_verified, 4);
    let without_key = verify_dir(dir.path(), None).unwrap();
    assert!(without_key.is_ok());
    assert_eq!(without_key.checkpoints_unchecked, 4);
    assert_eq!(without_key.head_hash, report.head_hash);

    let other = KeyRing::generate().signer().verifying_key();
    let wrong = verify_dir(dir.path(), Some(&other)).unwrap();
    let failure = wrong.first_error.unwrap();
    assert_eq!(failure.reason, VerifyReason::BadSignature);
    assert_eq!(failure.seq, 11);
}

#[tokio::test]
async fn forged_checkpoint_signature_fails_naming_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyRing::generate();
    let mut config = LedgerConfig::new(dir.path());
    config.checkpoint_every = 5;
    let handle =
        LedgerWriter::start(config, Some(lexecon_ledger::CheckpointSigner::of(&keys))).unwrap();
    for i in 1..=5 {
        handle.append(draft(i)).await.unwrap();
    }
    handle.shutdown().await.unwrap();
    let mut lines = read_lines(dir.path());
    // Re-sign seq 6 with another key under the original key id, and fix the hash so only the
    // signature is wrong.
    let mut entry: LedgerEntry = serde_json::from_str(&lines[5]).unwrap();
    assert_eq!(entry.event_type, EventType::Checkpoint);
    let sig = {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            sk.sign(&lexecon_ledger::checkpoint_message(6, &entry.previous_hash))
                .to_bytes(),
        )
    };
    entry.signature = Some(sig);
    entry.entry_hash.clear();
    let mut out = Vec::new();
    entry.write_line(&mut out).unwrap();
    lines[5] = String::from_utf8(out).unwrap().trim_end().to_owned();
    write_lines(dir.path(), &lines);
    let report = verify_dir(dir.path(), Some(&keys.signer().verifying_key())).unwrap();
    let failure = report.first_error.unwrap();
    assert_eq!(
        (failure.seq, failure.reason),
        (6, VerifyReason::BadSignature)
    );
}

#[tokio::test]
async fn flipped_byte_fails_verification_naming_the_seq() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path(), 20).await;
    assert!(verify_dir(dir.path(), None).unwrap().is_ok());
    let original = read_lines(dir.path());

    // A byte in the content.
    let mut lines = original.clone();
    lines[6] = lines[6].replacen("agent-7", "agent-8", 1);
    write_lines(dir.path(), &lines);
    let failure = verify_dir(dir.path(), None).unwrap().first_error.unwrap();
    assert_eq!(
        (failure.seq, failure.reason),
        (7, VerifyReason::HashMismatch)
    );
    assert_eq!(failure.line, 7);

    // A byte of the recorded hash itself.
    let mut lines = original.clone();
    let mut bytes = lines[11].clone().into_bytes();
    let pos = bytes.len() - 10;
    bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
    lines[11] = String::from_utf8(bytes).unwrap();
    write_lines(dir.path(), &lines);
    let report = verify_dir(dir.path(), None).unwrap();
    let failure = report.first_error.unwrap();
    assert_eq!(
        (failure.seq, failure.reason),
        (12, VerifyReason::HashMismatch)
    );
    assert_eq!(report.entries_checked, 11);

    // A byte that breaks the JSON.
    let mut lines = original;
    lines[2] = lines[2].replacen('{', "[", 1);
    write_lines(dir.path(), &lines);
    let failure = verify_dir(dir.path(), None).unwrap().first_error.unwrap();
    assert_eq!(failure.seq, 3);
}

#[tokio::test]
async fn deleted_line_fails_with_a_gap_at_the_missing_seq() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path(), 10).await;
    let mut lines = read_lines(dir.path());
    lines.remove(4);
    write_lines(dir.path(), &lines);
    let report = verify_dir(dir.path(), None).unwrap();
    let failure = report.first_error.unwrap();
    assert_eq!((failure.seq, failure.reason), (5, VerifyReason::Gap));
    assert_eq!(report.entries_checked, 4);
}

#[tokio::test]
async fn reordered_lines_fail_at_the_first_moved_seq() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path(), 10).await;
    let mut lines = read_lines(dir.path());
    lines.swap(7, 8);
    write_lines(dir.path(), &lines);
    let failure = verify_dir(dir.path(), None).unwrap().first_error.unwrap();
    assert_eq!((failure.seq, failure.reason), (8, VerifyReason::Gap));
}

#[tokio::test]
async fn spliced_ledgers_fail_with_a_broken_link() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write_ledger(a.path(), 10).await;
    // Another ledger with other entries: each line valid on its own, seqs continuous.
    write_ledger_of(b.path(), 101..=110).await;
    let mut lines = read_lines(a.path());
    lines.truncate(5);
    lines.extend(read_lines(b.path()).into_iter().skip(5));
    write_lines(a.path(), &lines);
    let report = verify_dir(a.path(), None).unwrap();
    let failure = report.first_error.unwrap();
    assert_eq!((failure.seq, failure.reason), (6, VerifyReason::BrokenLink));
}

#[tokio::test]
async fn torn_final_line_is_truncated_and_recorded_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path(), 5).await;
    let mut text = std::fs::read(segment_file(dir.path())).unwrap();
    text.extend_from_slice(b"{\"seq\":6,\"timest");
    std::fs::write(segment_file(dir.path()), &text).unwrap();
    let failure = verify_dir(dir.path(), None).unwrap().first_error.unwrap();
    assert_eq!((failure.seq, failure.reason), (6, VerifyReason::Malformed));

    let handle = LedgerWriter::start(LedgerConfig::new(dir.path()), None).unwrap();
    assert_eq!(handle.append(draft(6)).await.unwrap().seq, 7);
    handle.shutdown().await.unwrap();
    let report = verify_dir(dir.path(), None).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries_checked, 7);
    let recovered: LedgerEntry = serde_json::from_str(&read_lines(dir.path())[5]).unwrap();
    assert_eq!(recovered.event_type, EventType::LedgerRecovered);
    assert!(recovered.reason.unwrap().contains("torn"));
}

#[tokio::test]
async fn writer_refuses_to_extend_a_corrupt_chain() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path(), 5).await;
    let mut lines = read_lines(dir.path());
    lines[2] = lines[2].replacen("agent-3", "agent-9", 1);
    write_lines(dir.path(), &lines);
    match LedgerWriter::start(LedgerConfig::new(dir.path()), None) {
        Err(LedgerError::Corrupt { seq, .. }) => assert_eq!(seq, 3),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn segments_rotate_by_size_and_the_chain_continues_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.segment_max_bytes = 4096;
    let handle = LedgerWriter::start(config.clone(), None).unwrap();
    for i in 1..=40 {
        handle.append(draft(i)).await.unwrap();
    }
    handle.shutdown().await.unwrap();
    let handle = LedgerWriter::start(config, None).unwrap();
    for i in 41..=60 {
        handle.append(draft(i)).await.unwrap();
    }
    handle.shutdown().await.unwrap();
    let report = verify_dir(dir.path(), None).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries_checked, 60);
    assert!(report.segments > 3, "only {} segments", report.segments);
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let len = f.unwrap().metadata().unwrap().len();
        assert!(len < 4096 + 2048, "segment of {len} bytes");
    }
    let last = tail(dir.path(), 15).unwrap();
    assert_eq!(last.len(), 15);
    let seqs: Vec<u64> = last
        .iter()
        .map(|l| serde_json::from_str::<LedgerEntry>(l).unwrap().seq)
        .collect();
    assert_eq!(seqs, (46..=60).collect::<Vec<_>>());
}

#[tokio::test]
async fn queue_full_under_fail_closed_is_refused_at_once_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.queue = 4;
    config.when_full = WhenFull::FailClosed;
    let handle = LedgerWriter::start(config, None).unwrap();
    let guard = handle.pause().await.unwrap();
    let mut seqs = Vec::new();
    for i in 1..=4 {
        seqs.push(handle.append(draft(i)).await.unwrap().seq);
    }
    assert_eq!(handle.stats().queue_depth, 4);
    match handle.append(draft(5)).await {
        Err(LedgerError::QueueFull { capacity }) => assert_eq!(capacity, 4),
        other => panic!("expected QueueFull, got {other:?}"),
    }
    drop(guard);
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    handle.shutdown().await.unwrap();
    let report = verify_dir(dir.path(), None).unwrap();
    assert!(report.is_ok());
    assert_eq!(report.entries_checked, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_full_under_block_waits_and_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.queue = 2;
    config.when_full = WhenFull::Block;
    let handle = LedgerWriter::start(config, None).unwrap();
    let guard = handle.pause().await.unwrap();
    let mut tasks = Vec::new();
    for i in 1..=20 {
        let h = handle.clone();
        tasks.push(tokio::spawn(async move { h.append(draft(i)).await }));
    }
    // Let the tasks run into the full queue.
    for _ in 0..50 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(handle.stats().queue_depth, 2);
    assert!(tasks.iter().filter(|t| !t.is_finished()).count() >= 18);
    drop(guard);
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    handle.shutdown().await.unwrap();
    let report = verify_dir(dir.path(), None).unwrap();
    assert!(report.is_ok());
    assert_eq!(report.entries_checked, 20);
}

#[tokio::test]
async fn sync_append_returns_only_after_the_entry_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.durability = Durability::Sync;
    let handle = LedgerWriter::start(config, None).unwrap();
    for i in 1..=3 {
        let appended = handle.append(draft(i)).await.unwrap();
        assert_eq!(appended.seq, i);
        assert!(handle.stats().durable_seq >= i);
        let on_disk = read_lines(dir.path());
        let last: LedgerEntry = serde_json::from_str(on_disk.last().unwrap()).unwrap();
        assert_eq!(last.entry_hash, appended.entry_hash);
    }
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn appends_after_shutdown_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let handle = LedgerWriter::start(LedgerConfig::new(dir.path()), None).unwrap();
    handle.append(draft(1)).await.unwrap();
    handle.shutdown().await.unwrap();
    assert!(matches!(
        handle.append(draft(2)).await,
        Err(LedgerError::Closed)
    ));
}

#[tokio::test]
async fn decision_entries_store_a_context_digest_never_the_raw_context() {
    let dir = tempfile::tempdir().unwrap();
    let handle = LedgerWriter::start(LedgerConfig::new(dir.path()), None).unwrap();
    let redaction = keeping_purpose();
    let context = json!({"patient_id": "P-SECRET-42", "purpose": "treatment"});
    let d = LedgerEntry::from_decision(&decision(1), context.as_object().unwrap(), &redaction);
    handle.append(d).await.unwrap();
    handle.shutdown().await.unwrap();
    let text = std::fs::read_to_string(segment_file(dir.path())).unwrap();
    assert!(!text.contains("P-SECRET-42"));
    let entry: LedgerEntry = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        entry.context_digest.unwrap(),
        lexecon_ledger::entry::context_digest(context.as_object().unwrap())
    );
    assert_eq!(entry.context.unwrap()["purpose"], json!("treatment"));
    assert_eq!(entry.actor.as_deref(), Some("agent-1"));
    assert_eq!(entry.compliance[0].framework, "hipaa");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_handed_to_the_writer_are_the_same_entries_and_join_one_chain() {
    // Some callers claim their entry's place themselves (they need its hash), others hand the
    // decision to the writer, whole or with the context digested and redacted already: all land
    // on one verified chain, and a handed-over decision is written exactly as if its caller had
    // built the entry (the redacted field shown, the others only in the digest).
    let dir = tempfile::tempdir().unwrap();
    let handle = LedgerWriter::start(LedgerConfig::new(dir.path()), None).unwrap();
    let redaction = std::sync::Arc::new(keeping_purpose());
    let context = |i: u64| {
        json!({"patient_id": format!("P-{i}"), "purpose": "treatment"})
            .as_object()
            .unwrap()
            .clone()
    };
    let mut tasks = Vec::new();
    for i in 1..=200u64 {
        let (h, r) = (handle.clone(), std::sync::Arc::clone(&redaction));
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                h.append_decision(decision(i), context(i), r).await.unwrap();
            } else if i % 3 == 1 {
                let digest = lexecon_config::canonical::map_digest(&context(i));
                h.append_decision_digested(decision(i), context(i), digest, r)
                    .await
                    .unwrap();
            } else {
                h.append(LedgerEntry::from_decision(&decision(i), &context(i), &r))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    handle.shutdown().await.unwrap();
    let report = verify_dir(dir.path(), None).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let entries: Vec<LedgerEntry> = read_lines(dir.path())
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &LedgerEntry| e.event_type == EventType::Decision)
        .collect();
    assert_eq!(entries.len(), 200);
    for i in [3u64, 99, 1, 100, 2, 200] {
        let written = entries
            .iter()
            .find(|e| e.decision_id.as_deref() == Some(&format!("dec-{i}")))
            .unwrap_or_else(|| panic!("decision {i} was not written"));
        let mut expected = LedgerEntry::from_draft(
            LedgerEntry::from_decision(&decision(i), &context(i), &redaction),
            written.seq,
            written.previous_hash.clone(),
        );
        let mut line = Vec::new();
        expected.write_line(&mut line).unwrap();
        assert_eq!(&expected, written, "decision {i}");
        assert!(!serde_json::to_string(written)
            .unwrap()
            .contains(&format!("P-{i}\"")));
    }
}

#[tokio::test]
async fn a_handed_over_decision_is_refused_when_the_queue_is_full_and_durable_when_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.queue = 2;
    config.when_full = WhenFull::FailClosed;
    let handle = LedgerWriter::start(config, None).unwrap();
    let redaction = std::sync::Arc::new(RedactionConfig::default());
    let guard = handle.pause().await.unwrap();
    for i in 1..=2 {
        let ctx = json!({"i": i}).as_object().unwrap().clone();
        handle
            .append_decision(decision(i), ctx, std::sync::Arc::clone(&redaction))
            .await
            .unwrap();
    }
    let ctx = json!({"i": 3}).as_object().unwrap().clone();
    match handle
        .append_decision(decision(3), ctx, std::sync::Arc::clone(&redaction))
        .await
    {
        Err(LedgerError::QueueFull { capacity }) => assert_eq!(capacity, 2),
        other => panic!("expected QueueFull, got {other:?}"),
    }
    drop(guard);
    handle.shutdown().await.unwrap();
    let report = verify_dir(dir.path(), None).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries_checked, 2);

    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.durability = Durability::Sync;
    let handle = LedgerWriter::start(config, None).unwrap();
    for i in 1..=3 {
        let ctx = json!({"i": i}).as_object().unwrap().clone();
        handle
            .append_decision(decision(i), ctx, std::sync::Arc::clone(&redaction))
            .await
            .unwrap();
        // Returned only once fsynced: the entry is on disk and durable.
        assert!(handle.stats().durable_seq >= i);
        let last: LedgerEntry =
            serde_json::from_str(read_lines(dir.path()).last().unwrap()).unwrap();
        assert_eq!(
            last.decision_id.as_deref(),
            Some(format!("dec-{i}").as_str())
        );
    }
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn export_filters_by_time_and_writes_jsonl_or_csv() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path(), 10).await;
    let since = jiff::Timestamp::from_second(1_700_000_003).unwrap();
    let until = jiff::Timestamp::from_second(1_700_000_008).unwrap();
    let mut out = Vec::new();
    let n = export(
        dir.path(),
        Some(since),
        Some(until),
        ExportFormat::Jsonl,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 5);
    let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0], read_lines(dir.path())[2]);

    let mut out = Vec::new();
    export(dir.path(), Some(since), None, ExportFormat::Csv, &mut out).unwrap();
    let mut reader = csv::Reader::from_reader(out.as_slice());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "seq");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 8);
    assert_eq!(&rows[0][0], "3");
    assert_eq!(&rows[0][6], "agent-3");
    assert_eq!(&rows[0][13], "hipaa:164.312(b):compliant");
}

#[tokio::test]
async fn idle_ledger_gets_a_time_based_checkpoint_and_reports_stats() {
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyRing::generate();
    let mut config = LedgerConfig::new(dir.path());
    config.checkpoint_every = 0;
    config.checkpoint_interval = Duration::from_millis(20);
    let handle =
        LedgerWriter::start(config, Some(lexecon_ledger::CheckpointSigner::of(&keys))).unwrap();
    assert_eq!(handle.append(draft(1)).await.unwrap().seq, 1);
    // Wait (bounded) for the ticker; no assertion on how long it took.
    for _ in 0..500 {
        if handle.stats().checkpoints > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.flush().await.unwrap();
    let stats = handle.stats();
    assert_eq!(stats.checkpoints, 1);
    assert_eq!(stats.appended, 2);
    assert_eq!(stats.durable_seq, 2);
    assert_eq!(stats.head_seq, 2);
    assert_eq!(stats.queue_depth, 0);
    assert!(!stats.failed);
    handle.shutdown().await.unwrap();
    let report = verify_dir(dir.path(), Some(&keys.signer().verifying_key())).unwrap();
    assert!(report.is_ok());
    // Nothing new after the time-based checkpoint: shutdown adds no second one.
    assert_eq!(report.checkpoints_verified, 1);
    assert_eq!(report.entries_checked, 2);
}

#[test]
fn invalid_ledger_config_is_rejected_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.queue = 0;
    match LedgerWriter::start(config, None) {
        Err(LedgerError::InvalidConfig { field, .. }) => assert_eq!(field, "ledger.queue"),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    let settings: LedgerSettings = serde_norway::from_str(
        "{dir: ledger, durability: sync, flush_interval: 2ms, queue: 1024, when_full: fail_closed, checkpoint_every: 500}",
    )
    .unwrap();
    let parsed = LedgerConfig::from_settings(dir.path().join("ledger"), &settings);
    assert_eq!(parsed.durability, Durability::Sync);
    assert_eq!(parsed.when_full, WhenFull::FailClosed);
    assert_eq!(parsed.flush_interval, Duration::from_millis(2));
    assert_eq!(parsed.queue, 1024);
    assert_eq!(parsed.checkpoint_every, 500);
    assert!(serde_norway::from_str::<LedgerSettings>("{dir: l, queue_size: 3}").is_err());
}

// ---------------------------------------------------------------------------------------------
// Async writer going idle (added with the load benchmark: it now waits up to `flush_interval` for
// more entries before its fdatasync instead of syncing at once).

#[tokio::test]
async fn async_writer_syncs_after_going_idle_and_keeps_accepting_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.flush_interval = Duration::from_millis(20);
    config.checkpoint_every = 0;
    let handle = LedgerWriter::start(config, None).unwrap();
    for round in 0..3u64 {
        let seq = round * 2 + 1;
        let a = handle.append(draft(seq)).await.unwrap();
        let b = handle.append(draft(seq + 1)).await.unwrap();
        assert_eq!(a.seq, seq);
        assert_eq!(b.seq, seq + 1);
        // Idle with unsynced entries: the writer syncs by itself (bounded wait, no timing assertion).
        for _ in 0..500 {
            if handle.stats().durable_seq > seq {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stats = handle.stats();
        assert_eq!(
            stats.durable_seq,
            seq + 1,
            "round {round}: idle writer never synced"
        );
        assert!(!stats.failed);
    }
    assert_eq!(read_lines(dir.path()).len(), 6);
    handle.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Async writer lingering between batches (so that under load the request path only queues entries
// and never pays for waking the writer thread).

#[tokio::test]
async fn lingering_writer_answers_appends_at_once_and_wakes_for_flush_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    // A linger no test run could wait out: only a flush or a shutdown can make the writer write.
    config.flush_interval = Duration::from_secs(3600);
    config.linger = Some(Duration::from_secs(3600));
    config.checkpoint_every = 0;
    let handle = LedgerWriter::start(config, None).unwrap();
    let first = handle.append(draft(1)).await.unwrap();
    assert_eq!(first.seq, 1);
    // The writer now lingers for an hour; appends still answer with their place in the chain.
    let mut appended = vec![first];
    for seq in 2..=4u64 {
        let a = tokio::time::timeout(Duration::from_secs(60), handle.append(draft(seq)))
            .await
            .expect("an async append never waits for the writer")
            .unwrap();
        assert_eq!(a.seq, seq);
        appended.push(a);
    }
    tokio::time::timeout(Duration::from_secs(60), handle.flush())
        .await
        .expect("flush must wake the lingering writer")
        .unwrap();
    assert_eq!(handle.stats().durable_seq, 4);
    // Each answer's hash is the hash of the line the writer wrote for it.
    let lines = read_lines(dir.path());
    assert_eq!(lines.len(), 4);
    for (line, a) in lines.iter().zip(&appended) {
        let entry: LedgerEntry = serde_json::from_str(line).unwrap();
        assert_eq!((entry.seq, &entry.entry_hash), (a.seq, &a.entry_hash));
    }
    handle.append(draft(5)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), handle.shutdown())
        .await
        .expect("shutdown must wake the lingering writer")
        .unwrap();
    assert_eq!(read_lines(dir.path()).len(), 5);
    verify_dir(dir.path(), None).unwrap();
}

#[tokio::test]
async fn lingering_writer_writes_unwaited_entries_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path());
    config.flush_interval = Duration::from_millis(20);
    config.linger = Some(Duration::from_millis(10));
    config.checkpoint_every = 0;
    let handle = LedgerWriter::start(config, None).unwrap();
    for seq in 1..=50u64 {
        // Nobody waits for a receipt: the writer must take these on its own.
        handle.append(draft(seq)).await.unwrap();
    }
    for _ in 0..1000 {
        if handle.stats().durable_seq == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        handle.stats().durable_seq,
        50,
        "entries were left unwritten"
    );
    handle.shutdown().await.unwrap();
    assert_eq!(read_lines(dir.path()).len(), 50);
}

#[test]
fn a_new_config_has_the_configuration_files_defaults() {
    let settings = LedgerSettings::default();
    assert_eq!(
        LedgerConfig::new("/d/ledger"),
        LedgerConfig::from_settings("/d/ledger", &settings)
    );
    let config = LedgerConfig::new("l");
    assert_eq!(config.durability, Durability::Async);
    assert_eq!(config.flush_interval, Duration::from_millis(5));
    assert_eq!(config.queue, 65_536);
    assert_eq!(config.when_full, WhenFull::Block);
    assert_eq!(config.checkpoint_every, 1000);
    assert_eq!(config.checkpoint_interval, Duration::from_secs(10));
    assert_eq!(config.segment_max_bytes, 64 * 1024 * 1024);
    assert_eq!(config.batch_max, 4096);
    assert_eq!(config.linger, None);
}

#[test]
fn a_linger_longer_than_the_flush_interval_is_rejected() {
    let mut config = LedgerConfig::new("ledger");
    config.flush_interval = Duration::from_millis(5);
    config.linger = Some(Duration::from_millis(6));
    match config.validate() {
        Err(LedgerError::InvalidConfig { field, reason }) => {
            assert_eq!(field, "ledger.linger");
            assert!(reason.contains("flush_interval"), "{reason}");
        }
        other => panic!("expected an invalid linger, got {other:?}"),
    }
}

#[test]
fn the_default_linger_never_exceeds_a_short_flush_interval() {
    let mut config = LedgerConfig::new("ledger");
    assert_eq!(config.linger(), Duration::from_millis(1));
    config.flush_interval = Duration::from_micros(500);
    config.validate().unwrap();
    assert_eq!(config.linger(), Duration::from_micros(500));
    let settings: LedgerSettings =
        serde_norway::from_str("{dir: l, flush_interval: 200us, linger: 100us}").unwrap();
    let parsed = LedgerConfig::from_settings("l", &settings);
    parsed.validate().unwrap();
    assert_eq!(parsed.linger(), Duration::from_micros(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_each_get_their_own_place_in_one_gapless_verified_chain() {
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyRing::generate();
    let mut config = LedgerConfig::new(dir.path());
    config.checkpoint_every = 7;
    config.batch_max = 3;
    let handle =
        LedgerWriter::start(config, Some(lexecon_ledger::CheckpointSigner::of(&keys))).unwrap();
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let h = handle.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..250 {
                    got.push(h.append(draft(t * 1000 + i)).await.unwrap());
                }
                got
            })
        })
        .collect();
    let mut appended = Vec::new();
    for t in tasks {
        appended.extend(t.await.unwrap());
    }
    handle.shutdown().await.unwrap();
    let public = keys.signer().verifying_key();
    let report = verify_dir(dir.path(), Some(&public)).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(report.checkpoints_verified >= 1);
    // Every answer names the seq and hash of the line written for it.
    let by_seq: std::collections::HashMap<u64, LedgerEntry> = read_lines(dir.path())
        .iter()
        .map(|l| serde_json::from_str::<LedgerEntry>(l).unwrap())
        .map(|e| (e.seq, e))
        .collect();
    assert_eq!(appended.len(), 2000);
    for a in &appended {
        let e = &by_seq[&a.seq];
        assert_eq!(e.entry_hash, a.entry_hash, "seq {}", a.seq);
        assert_eq!(e.event_type, EventType::Decision);
    }
    let decisions = by_seq
        .values()
        .filter(|e| e.event_type == EventType::Decision)
        .count();
    assert_eq!(decisions, 2000);
}
