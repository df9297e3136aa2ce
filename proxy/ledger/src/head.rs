//! The chain head entries are claimed against: the seq and `entry_hash` of the last entry given a
//! place in the chain. The request path claims its own place, so it learns its entry's seq and hash
//! at once and never waits for (or wakes) the writer thread in `async` mode.
//!
//! Claiming is lock-free: read the head, write the entry's line after it (seq + 1, `previous_hash` =
//! the head's hash, its own `entry_hash`), then compare-and-swap the head; a caller that lost the race
//! to another claim writes its line again after the new head. A claimed line must reach the writer
//! (callers reserve room in the queue before they claim), which writes lines in seq order whatever
//! order they arrive in.

use std::sync::Arc;

use arc_swap::ArcSwap;

#[derive(Debug)]
struct Head {
    seq: u64,
    hash: String,
}

/// An entry's place in the chain and its finished line (ending in `\n`).
#[derive(Debug)]
pub(crate) struct Claimed {
    pub(crate) seq: u64,
    pub(crate) line: Vec<u8>,
    pub(crate) entry_hash: String,
}

/// The head of one ledger's chain (see the module docs).
#[derive(Debug)]
pub(crate) struct ChainHead(ArcSwap<Head>);

impl ChainHead {
    /// A chain whose last entry is `seq` with hash `hash` (0 and the genesis hash when empty).
    pub(crate) fn new(seq: u64, hash: String) -> Self {
        ChainHead(ArcSwap::from_pointee(Head { seq, hash }))
    }

    /// The last claimed seq.
    #[cfg(test)]
    pub(crate) fn seq(&self) -> u64 {
        self.0.load().seq
    }

    /// Claims the next place: `write(seq, previous_hash, out)` appends the entry's line to `out` and
    /// returns its `entry_hash`; it runs again (on a cleared `out`) when another claim came first.
    pub(crate) fn claim<E>(
        &self,
        capacity: usize,
        mut write: impl FnMut(u64, &str, &mut Vec<u8>) -> Result<String, E>,
    ) -> Result<Claimed, E> {
        let mut line = Vec::with_capacity(capacity);
        loop {
            let current = self.0.load();
            line.clear();
            let seq = current.seq + 1;
            let entry_hash = write(seq, &current.hash, &mut line)?;
            let next = Arc::new(Head {
                seq,
                hash: entry_hash.clone(),
            });
            let previous = self.0.compare_and_swap(&current, next);
            if Arc::ptr_eq(&previous, &current) {
                return Ok(Claimed {
                    seq,
                    line,
                    entry_hash,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn claim(head: &ChainHead, tag: &str) -> Claimed {
        let result: Result<Claimed, Infallible> = head.claim(64, |seq, prev, out| {
            out.extend_from_slice(format!("{seq} {prev} {tag}\n").as_bytes());
            Ok(format!("h{seq}{tag}"))
        });
        match result {
            Ok(c) => c,
            Err(never) => match never {},
        }
    }

    #[test]
    fn claims_follow_each_other_and_link_the_previous_hash() {
        let head = ChainHead::new(7, "h7".to_owned());
        let a = claim(&head, "a");
        let b = claim(&head, "b");
        assert_eq!((a.seq, b.seq), (8, 9));
        assert_eq!(a.line, b"8 h7 a\n");
        assert_eq!(b.line, b"9 h8a b\n");
        assert_eq!(b.entry_hash, "h9b");
        assert_eq!(head.seq(), 9);
    }

    #[test]
    fn a_claim_that_loses_the_race_is_written_again_after_the_winner() {
        let head = ChainHead::new(0, "g".to_owned());
        let mut attempts = 0;
        let result: Result<Claimed, Infallible> = head.claim(16, |seq, prev, out| {
            attempts += 1;
            if attempts == 1 {
                // Another caller claims seq 1 while this one is writing its line.
                let winner = claim(&head, "w");
                assert_eq!(winner.seq, 1);
            }
            out.extend_from_slice(format!("{seq} {prev}\n").as_bytes());
            Ok(format!("h{seq}"))
        });
        let loser = match result {
            Ok(c) => c,
            Err(never) => match never {},
        };
        assert_eq!(attempts, 2);
        assert_eq!(loser.seq, 2);
        assert_eq!(
            loser.line, b"2 h1w\n",
            "rewritten after the winner, on a cleared line"
        );
    }

    #[test]
    fn concurrent_claims_get_distinct_consecutive_seqs_forming_one_chain() {
        let head = Arc::new(ChainHead::new(0, "h0".to_owned()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let head = Arc::clone(&head);
                std::thread::spawn(move || {
                    (0..2_000)
                        .map(|_| {
                            let c = claim(&head, &t.to_string());
                            let text = String::from_utf8(c.line).unwrap_or_default();
                            let prev = text.split(' ').nth(1).unwrap_or_default().to_owned();
                            (c.seq, prev, c.entry_hash)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(u64, String, String)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect();
        all.sort();
        assert_eq!(all.len(), 8_000);
        let mut previous = "h0".to_owned();
        for (i, (seq, prev, hash)) in all.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
            assert_eq!(*prev, previous, "seq {seq} must link the entry before it");
            previous.clone_from(hash);
        }
    }
}
