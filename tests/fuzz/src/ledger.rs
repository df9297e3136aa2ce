//! The `ledger_line` target: any bytes as ledger lines. Each line that parses as a
//! [`LedgerEntry`] is written back both ways the ledger writes lines (the derived
//! [`LedgerEntry::write_line`] and the writer's hand-written [`EntryBody`] + [`write_body_line`]),
//! which must agree byte for byte and read back as the same entry. The bytes as written are then a
//! segment for the offline tools (`verify_dir` with and without the checkpoint key, `tail`,
//! `export` as JSON lines and CSV), and the parsed entries, re-chained and their checkpoints signed
//! as the writer would, must verify. Files go to a scratch directory per thread (in /dev/shm when
//! there is one); nothing else is written.

use std::cell::RefCell;
use std::path::Path;
use std::sync::LazyLock;

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use lexecon_ledger::entry::write_body_line;
use lexecon_ledger::{
    checkpoint_message, export, tail, verify_dir, CheckpointSigner, EntryBody, EntryDraft,
    EventType, ExportFormat, FieldRule, LedgerEntry, RedactionConfig, GENESIS_HASH,
};
use lexecon_policy_cache::{Decision, Explanation};
use serde_json::Value;

/// Most lines of one input that are parsed and re-chained.
const MAX_LINES: usize = 64;

/// The checkpoint key (fixed, so that a corpus file replays the same way).
static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_bytes(&[7; 32]));
static KEY_ID: LazyLock<String> =
    LazyLock::new(|| CheckpointSigner::new(KEY.clone()).key_id().to_owned());

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// The segment file name of a ledger starting at seq 1.
const SEGMENT: &str = "ledger-00000000000000000001.jsonl";

/// Runs `f` on this thread's scratch directory after writing `bytes` as its only segment.
fn with_segment<T>(bytes: &[u8], f: impl FnOnce(&Path) -> T) -> T {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.is_none() {
            // In memory where Linux offers it: the disk costs this target 15 times its speed.
            let in_memory = tempfile::Builder::new().tempdir_in("/dev/shm");
            *scratch = match in_memory.or_else(|_| tempfile::tempdir()) {
                Ok(dir) => Some(dir),
                Err(e) => panic!("no scratch directory: {e}"),
            };
        }
        let Some(dir) = scratch.as_ref().map(tempfile::TempDir::path) else {
            panic!("no scratch directory");
        };
        if let Err(e) = std::fs::write(dir.join(SEGMENT), bytes) {
            panic!("cannot write the scratch segment: {e}");
        }
        f(dir)
    })
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

fn draft_of(entry: &LedgerEntry) -> EntryDraft {
    EntryDraft {
        timestamp: entry.timestamp,
        event_type: entry.event_type,
        domain: entry.domain.clone(),
        request_id: entry.request_id.clone(),
        decision_id: entry.decision_id.clone(),
        actor: entry.actor.clone(),
        action: entry.action.clone(),
        resource: entry.resource.clone(),
        decision: entry.decision,
        rule_id: entry.rule_id.clone(),
        reason: entry.reason.clone(),
        policy_version_hash: entry.policy_version_hash.clone(),
        compliance: entry.compliance.clone(),
        context_digest: entry.context_digest.clone(),
        context: entry.context.clone(),
    }
}

/// Writes `entry` both ways and reads it back.
fn check_entry(entry: &LedgerEntry) {
    let mut entry = entry.clone();
    let mut derived = Vec::new();
    if let Err(e) = entry.write_line(&mut derived) {
        panic!("a parsed entry does not serialize: {e}");
    }
    if entry.key_id.is_none() && entry.signature.is_none() {
        let body = match EntryBody::of_draft(&draft_of(&entry)) {
            Ok(body) => body,
            Err(e) => panic!("a parsed entry has no body: {e}"),
        };
        let mut by_hand = Vec::new();
        let hash = write_body_line(entry.seq, &body, &entry.previous_hash, &mut by_hand);
        assert_eq!(hash, entry.entry_hash, "the two writers hash differently");
        assert_eq!(
            String::from_utf8_lossy(&by_hand),
            String::from_utf8_lossy(&derived),
            "the writer's line differs from the derived serialization"
        );
    }
    check_decision_body(&entry);
    let line = derived.strip_suffix(b"\n").unwrap_or(&derived);
    let back: LedgerEntry = match serde_json::from_slice(line) {
        Ok(back) => back,
        Err(e) => panic!("a written line does not read back ({e})"),
    };
    if !entry
        .context
        .as_ref()
        .is_some_and(|c| c.values().any(has_float))
    {
        assert_eq!(back, entry, "a written line reads back differently");
    }
}

/// For a decision entry: the decision it records, with its `context` as the request context, must
/// get the same body from the hand-written [`EntryBody::of_decision`] (crate::json) as from the
/// derived serialization of [`EntryDraft::from_decision`], with every context field kept, masked
/// or hashed in turn.
fn check_decision_body(entry: &LedgerEntry) {
    let (
        Some(domain),
        Some(request_id),
        Some(decision_id),
        Some(actor),
        Some(action),
        Some(verdict),
        Some(rule_id),
        Some(reason),
        Some(hash),
    ) = (
        &entry.domain,
        &entry.request_id,
        &entry.decision_id,
        &entry.actor,
        &entry.action,
        entry.decision,
        &entry.rule_id,
        &entry.reason,
        &entry.policy_version_hash,
    )
    else {
        return;
    };
    let decision = Decision {
        request_id: request_id.clone(),
        decision_id: decision_id.clone(),
        domain: domain.clone(),
        actor: actor.clone(),
        action: action.clone(),
        resource: entry.resource.clone(),
        decision: verdict,
        reasoning: reason.clone().into(),
        rule_id: rule_id.clone().into(),
        policy_version_hash: hash.clone().into(),
        compliance_mappings: entry.compliance.clone().into(),
        risk_level: 3,
        requires_human_approval: false,
        review_required: false,
        explanation: Explanation {
            matched_rules: Vec::new().into(),
            findings: Vec::new(),
            would_have: None,
            cached: false,
        },
        timestamp: entry.timestamp,
    };
    let context = entry.context.clone().unwrap_or_default();
    let rules = [FieldRule::Keep, FieldRule::Mask, FieldRule::Hash];
    let mut redaction = RedactionConfig::default();
    redaction.domains.insert(
        domain.clone(),
        context
            .keys()
            .zip(rules.iter().cycle())
            .map(|(key, rule)| (key.clone(), *rule))
            .collect(),
    );
    for redaction in [RedactionConfig::default(), redaction] {
        let by_hand = EntryBody::of_decision(&decision, &context, &redaction);
        let derived =
            EntryBody::of_draft(&EntryDraft::from_decision(&decision, &context, &redaction));
        match (by_hand, derived) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "the hand-written decision body differs"),
            (a, b) => panic!("a decision body failed: {a:?} / {b:?}"),
        }
    }
}

/// The entries re-chained from seq 1, checkpoints signed with [`KEY`]; the lines and how many
/// checkpoints there are.
fn rechain(entries: Vec<LedgerEntry>) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut head = GENESIS_HASH.to_owned();
    let mut checkpoints = 0;
    for (seq, mut entry) in (1u64..).zip(entries) {
        entry.seq = seq;
        entry.previous_hash = head.clone();
        if entry.event_type == EventType::Checkpoint {
            let signature = KEY.sign(&checkpoint_message(seq, &head));
            entry.key_id = Some(KEY_ID.clone());
            entry.signature =
                Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.to_bytes()));
            checkpoints += 1;
        }
        if let Err(e) = entry.write_line(&mut out) {
            panic!("a parsed entry does not serialize: {e}");
        }
        head.clone_from(&entry.entry_hash);
    }
    (out, checkpoints)
}

/// Fuzz target `ledger_line`.
pub fn ledger_line(data: &[u8]) {
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let lines = data[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    let mut entries = Vec::new();
    for line in data.split(|b| *b == b'\n').take(MAX_LINES) {
        if let Ok(entry) = serde_json::from_slice::<LedgerEntry>(line) {
            check_entry(&entry);
            entries.push(entry);
        }
    }

    let verifying = KEY.verifying_key();
    with_segment(data, |dir| {
        for key in [None, Some(&verifying)] {
            let report = match verify_dir(dir, key) {
                Ok(report) => report,
                Err(e) => panic!("verify_dir failed on a readable directory: {e}"),
            };
            assert!(report.entries_checked <= lines);
            assert_eq!(report.head_seq, report.entries_checked);
            if report.is_ok() {
                assert_eq!(report.entries_checked, lines, "a line was skipped");
                assert_eq!(complete, data.len(), "a torn line verified");
            }
        }
        let _ = tail(dir, 3);
        for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
            let mut out = Vec::new();
            let _ = export(dir, None, None, format, &mut out);
        }
    });

    let (chain, checkpoints) = rechain(entries);
    let n = chain.iter().filter(|b| **b == b'\n').count() as u64;
    with_segment(&chain, |dir| {
        let report = verify_dir(dir, Some(&verifying));
        let report = match report {
            Ok(report) => report,
            Err(e) => panic!("verify_dir failed on a readable directory: {e}"),
        };
        assert_eq!(
            report.first_error, None,
            "a re-chained ledger does not verify"
        );
        assert_eq!(report.entries_checked, n);
        assert_eq!(report.checkpoints_verified, checkpoints);
        let unkeyed = match verify_dir(dir, None) {
            Ok(report) => report,
            Err(e) => panic!("verify_dir failed on a readable directory: {e}"),
        };
        assert_eq!(unkeyed.first_error, None);
        assert_eq!(unkeyed.checkpoints_unchecked, checkpoints);
        let mut out = Vec::new();
        match export(dir, None, None, ExportFormat::Jsonl, &mut out) {
            Ok(count) => assert_eq!(count, n),
            Err(e) => panic!("a verified ledger does not export: {e}"),
        }
        assert_eq!(out, chain, "the JSON lines export is the ledger as written");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_lines_reparse_rechain_and_verify() {
        let mut startup = LedgerEntry::from_draft(
            EntryDraft::event(EventType::SystemStartup, "started"),
            1,
            GENESIS_HASH.to_owned(),
        );
        let mut data = Vec::new();
        startup.write_line(&mut data).unwrap();
        let mut checkpoint = LedgerEntry::from_draft(
            EntryDraft::event(EventType::Checkpoint, "signed chain head after seq 1"),
            2,
            startup.entry_hash.clone(),
        );
        checkpoint.key_id = Some("someone-else".into());
        checkpoint.signature = Some("c2ln".into());
        checkpoint.write_line(&mut data).unwrap();
        data.extend_from_slice(b"{\"seq\":3,\"torn");
        ledger_line(&data);
        let (chain, checkpoints) = rechain(vec![startup, checkpoint]);
        assert_eq!(checkpoints, 1);
        with_segment(&chain, |dir| {
            let report = verify_dir(dir, Some(&KEY.verifying_key())).unwrap();
            assert!(report.is_ok(), "{report:?}");
            assert_eq!(report.checkpoints_verified, 1);
        });
    }
}
