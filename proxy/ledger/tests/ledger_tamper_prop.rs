//! Property: changing any single byte of a ledger file is detected, and verification names the seq of
//! the line that holds the byte.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration-test helpers: a failed unwrap is a failed test"
)]

use std::sync::OnceLock;

use lexecon_ledger::{verify_dir, EntryDraft, EventType, LedgerConfig, LedgerWriter};
use proptest::prelude::*;

const FILE: &str = "ledger-00000000000000000001.jsonl";

/// A 12-entry ledger (with signed checkpoints) written once, as bytes.
fn ledger_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let keys = lexecon_keys::KeyRing::generate();
            let mut config = LedgerConfig::new(dir.path());
            config.checkpoint_every = 5;
            let h = LedgerWriter::start(config, Some(lexecon_ledger::CheckpointSigner::of(&keys)))
                .unwrap();
            for i in 0..10 {
                let mut d = EntryDraft::event(EventType::Approval, format!("approved change {i}"));
                d.actor = Some(format!("reviewer-{i}"));
                h.append(d).await.unwrap();
            }
            h.shutdown().await.unwrap();
        });
        std::fs::read(dir.path().join(FILE)).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_byte_change_is_detected_at_its_line(pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let original = ledger_bytes();
        let pos = pos.index(original.len());
        let mut bytes = original.to_vec();
        bytes[pos] ^= xor;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), &bytes).unwrap();
        let report = verify_dir(dir.path(), None).unwrap();
        let failure = report.first_error.expect("tampering went unnoticed");
        // The line the byte belongs to (a line's `\n` belongs to it).
        let line = original[..pos].iter().filter(|b| **b == b'\n').count() as u64 + 1;
        prop_assert_eq!(failure.seq, line, "byte {} ({:?})", pos, failure);
    }
}
