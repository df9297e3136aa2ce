//! The writer's outages: what happens from a failed write, fdatasync or segment creation until
//! the writer writes again — appends fail closed (`failed`), the lines not yet durable wait in
//! memory, and the writer retries with back-off, cuts the torn tail, checks that the directory's
//! chain ends at the durable head, writes the kept lines again and records a `ledger_recovered`
//! entry — and the one way it stops for good (a chain that no longer ends where the durable one
//! did, or a panic), reported as such.
//!
//! It must never end the writer on an I/O error, whatever error variant carries it, nor on a log
//! line it cannot write; never extend a chain it could not verify; and never tell a `sync` caller
//! "durable" for what is not. The intake loop it serves is [`super`]; writing and rotating
//! segments [`super::commit`].

use std::fs::OpenOptions;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{log, Waiters, Writer};
use crate::entry::{EntryBody, EntryDraft, EventType};
use crate::handle::{claim_body, Msg};
use crate::recovery::recover;
use crate::LedgerError;

/// The first wait before the writer tries again after a failed write or sync; it doubles after
/// every failed attempt, up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest wait between two attempts to heal.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How [`Writer::heal`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Healed {
    /// The writer writes again.
    Writing,
    /// Still down, and asked to stop (or every handle is gone).
    Stopping,
}

/// A failed write or sync, from the moment it happened until the writer healed: appends fail
/// (`failed` is set) and the lines not yet durable wait in `buf`, in seq order, to be written again.
pub(super) struct Outage {
    /// The error that began it, and the latest one.
    pub(super) first_error: String,
    pub(super) last_error: String,
    pub(super) since: Instant,
    /// Attempts to heal so far, and the wait before the next one.
    pub(super) attempts: u32,
    pub(super) retry_in: Duration,
    /// The last durable seq when it began.
    pub(super) durable_seq: u64,
    /// `sync` callers answered with the error (their entries are written all the same once the
    /// writer heals: they were claimed).
    pub(super) refused: u64,
}

impl Writer {
    /// A write, sync or new segment failed: appends fail from now on, `sync` callers waiting are
    /// told, and the lines not yet durable stay in `buf` until the writer heals.
    pub(super) fn fail(&mut self, error: LedgerError) {
        let reason = error.to_string();
        self.shared.last_error.store(Some(Arc::new(reason.clone())));
        let outage = match &mut self.outage {
            Some(outage) => {
                outage.last_error.clone_from(&reason);
                outage
            }
            None => {
                // Down before the log line: logging may fail on the same full disk (see [`log`]).
                self.shared.failed.store(true, Ordering::Relaxed);
                log(|| {
                    tracing::error!(
                        target: "lexecon::ledger",
                        error = %reason,
                        durable_seq = self.durable_seq,
                        "ledger write failed; appends fail until the writer recovers"
                    )
                });
                self.outage.insert(Outage {
                    first_error: reason.clone(),
                    last_error: reason.clone(),
                    since: Instant::now(),
                    attempts: 0,
                    retry_in: RETRY_FIRST,
                    durable_seq: self.durable_seq,
                    refused: 0,
                })
            }
        };
        for ack in self.pending.drain(..) {
            outage.refused += 1;
            let _ = ack.send(Err(reason.clone()));
        }
    }

    /// Down after a failed write or sync: waits (taking messages meanwhile: lines are placed,
    /// flushes answered with the error) and tries again, with a wait doubling from
    /// [`RETRY_FIRST`] to [`RETRY_MAX`], until the writer heals. A shutdown gets one more attempt
    /// (in [`Self::finish`]), then the writer stops.
    pub(super) fn heal(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        timer: &tokio::runtime::Runtime,
        waiters: &mut Waiters,
    ) -> Result<Healed, LedgerError> {
        while let Some(outage) = &self.outage {
            let reason = outage.last_error.clone();
            let deadline = Instant::now() + outage.retry_in;
            for ack in waiters.flushes.drain(..) {
                let _ = ack.send(Err(reason.clone()));
            }
            // Not durable, so not paused consistently: dropping the answer fails the caller.
            waiters.pauses.clear();
            loop {
                if !waiters.shutdowns.is_empty() {
                    // The queue is closed: take what is left in it, and let `finish` make the
                    // last attempt.
                    while let Ok(msg) = rx.try_recv() {
                        self.take_while_down(msg, rx, waiters, &reason)?;
                    }
                    return Ok(Healed::Stopping);
                }
                let wait = deadline.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    break;
                }
                match timer.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                    Ok(None) => return Ok(Healed::Stopping),
                    Ok(Some(msg)) => self.take_while_down(msg, rx, waiters, &reason)?,
                    Err(_elapsed) => break,
                }
            }
            self.heal_once()?;
        }
        Ok(Healed::Writing)
    }

    /// A message that arrives while the writer is down: lines are placed (they hold a place in
    /// the chain), flushes answered with the error, pauses refused, ticks ignored.
    fn take_while_down(
        &mut self,
        msg: Msg,
        rx: &mut mpsc::Receiver<Msg>,
        waiters: &mut Waiters,
        reason: &str,
    ) -> Result<(), LedgerError> {
        match msg {
            Msg::Flush(ack) => {
                let _ = ack.send(Err(reason.to_owned()));
                Ok(())
            }
            Msg::Pause { .. } | Msg::Tick => Ok(()),
            msg => self.take(msg, rx, waiters),
        }
    }

    /// One attempt to heal: on success records the `ledger_recovered` entry and lets appends in
    /// again; an I/O error (or any error but corruption) prolongs the outage; a segment that no
    /// longer ends where the durable chain does stops the writer ([`LedgerError::Corrupt`]).
    pub(super) fn heal_once(&mut self) -> Result<(), LedgerError> {
        let torn = match self.try_heal() {
            Ok(torn) => torn,
            // Only a chain that does not end where the durable one did stops the writer; any
            // other error (an I/O error, whatever variant carries it) prolongs the outage.
            Err(e @ LedgerError::Corrupt { .. }) => return Err(e),
            Err(e) => {
                self.fail(e);
                if let Some(outage) = &mut self.outage {
                    outage.attempts += 1;
                    outage.retry_in = (outage.retry_in * 2).min(RETRY_MAX);
                    log(|| {
                        tracing::warn!(
                            target: "lexecon::ledger",
                            error = %outage.last_error,
                            attempts = outage.attempts,
                            retry_in = ?outage.retry_in,
                            "the ledger writer is still down"
                        )
                    });
                }
                return Ok(());
            }
        };
        let Some(outage) = self.outage.take() else {
            return Ok(());
        };
        let reason = recovered_reason(&outage, torn, self.durable_seq);
        log(|| tracing::warn!(target: "lexecon::ledger", %reason, "ledger writer recovered"));
        self.shared.recoveries.fetch_add(1, Ordering::Relaxed);
        // Claimed before appends are let in again, so it directly follows the entries it
        // accounts for.
        match EntryBody::of_draft(&EntryDraft::event(EventType::LedgerRecovered, reason)) {
            Ok(body) => {
                let claimed = claim_body(&self.chain, &body);
                self.accept(claimed.seq, claimed.line, None)?;
            }
            // Nothing was claimed: the chain has no gap, only the record of the outage is missing.
            Err(e) => log(
                || tracing::error!(target: "lexecon::ledger", error = %e, "the ledger_recovered entry could not be serialized"),
            ),
        }
        self.commit(true);
        if self.outage.is_none() {
            self.shared.failed.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Cuts the current segment back to its last durable line, checks that the directory's chain
    /// ends there (the same check as at start-up), reopens the segment and writes the lines kept
    /// since, with an fsync. Returns how many torn bytes were cut.
    fn try_heal(&mut self) -> Result<u64, LedgerError> {
        let path = self.segment_path.clone();
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| LedgerError::io("open segment", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| LedgerError::io("stat segment", &path, e))?
            .len();
        if len < self.durable_len {
            return Err(LedgerError::Corrupt {
                path,
                seq: self.durable_seq,
                reason: format!(
                    "the segment is {len} bytes, shorter than the {} bytes already fsynced",
                    self.durable_len
                ),
            });
        }
        let torn = len - self.durable_len;
        if torn > 0 {
            self.io
                .truncate(&file, self.durable_len)
                .map_err(|e| LedgerError::io("truncate torn tail of", &path, e))?;
        }
        drop(file);
        let recovered = recover(&self.cfg.dir, self.io.as_ref())?;
        // An empty segment whose predecessors were archived has no link to check here: the lines
        // written into it carry it.
        let head_unknown = recovered.len == 0 && recovered.head == crate::GENESIS_HASH;
        if recovered.next_seq != self.durable_seq + 1
            || (recovered.head != self.durable_hash && !head_unknown)
        {
            return Err(LedgerError::Corrupt {
                path: recovered.path,
                seq: recovered.next_seq,
                reason: format!(
                    "after an I/O error the ledger ends at seq {} (hash {}), but seq {} (hash {}) was fsynced last",
                    recovered.next_seq - 1,
                    recovered.head,
                    self.durable_seq,
                    self.durable_hash
                ),
            });
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&recovered.path)
            .map_err(|e| LedgerError::io("open segment", &recovered.path, e))?;
        self.segment_path = recovered.path;
        self.durable_len = recovered.len;
        self.written = 0;
        self.dirty = false;
        self.try_commit(true)?;
        Ok(torn)
    }

    /// The writer stops for good (a chain it cannot verify, a panic): says so — `failed`,
    /// [`Shared::stopped`], `last_error` and a log line naming the reason — answers everyone
    /// waiting with it, closes the queue and counts what was lost.
    pub(super) fn stop_for_good(&mut self, reason: &str, rx: &mut mpsc::Receiver<Msg>) {
        // State first, then the log line: logging may fail (see [`log`]).
        self.shared
            .last_error
            .store(Some(Arc::new(reason.to_owned())));
        self.shared.stopped.store(Some(Arc::new(reason.to_owned())));
        self.shared.failed.store(true, Ordering::Relaxed);
        log(
            || tracing::error!(target: "lexecon::ledger", error = %reason, "the ledger writer stopped for good; appends fail until a restart"),
        );
        for ack in self.pending.drain(..) {
            let _ = ack.send(Err(reason.to_owned()));
        }
        let mut lost = self.out_of_order.len() as u64;
        for (_, waiting) in std::mem::take(&mut self.out_of_order) {
            if let Some(ack) = waiting.ack {
                let _ = ack.send(Err(reason.to_owned()));
            }
        }
        let unwritten = self.next_seq - 1 - self.durable_seq;
        if unwritten > 0 {
            log(|| {
                tracing::error!(
                    target: "lexecon::ledger",
                    first = self.durable_seq + 1,
                    last = self.next_seq - 1,
                    lost = unwritten,
                    "ledger entries accepted but never made durable were lost"
                )
            });
        }
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Append { ack, .. } | Msg::Decision { ack, .. } => {
                    lost += 1;
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(reason.to_owned()));
                    }
                }
                Msg::Flush(ack) | Msg::Shutdown(ack) => {
                    let _ = ack.send(Err(reason.to_owned()));
                }
                Msg::Pause { .. } | Msg::Tick => {}
            }
        }
        if lost > 0 {
            log(
                || tracing::error!(target: "lexecon::ledger", lost, "claimed ledger entries were not recorded"),
            );
        }
    }
}

/// The `ledger_recovered` entry's reason after an outage.
fn recovered_reason(outage: &Outage, torn: u64, durable_now: u64) -> String {
    let rewritten = durable_now - outage.durable_seq;
    let mut reason = format!(
        "the ledger writer could not write for {} ms ({} attempts to recover): {}; last durable seq before it: {}",
        outage.since.elapsed().as_millis(),
        outage.attempts + 1,
        outage.first_error,
        outage.durable_seq
    );
    if outage.last_error != outage.first_error {
        reason.push_str(&format!("; last error: {}", outage.last_error));
    }
    if torn > 0 {
        reason.push_str(&format!(
            "; truncated a torn tail of {torn} bytes after the last durable entry"
        ));
    }
    if rewritten > 0 {
        reason.push_str(&format!(
            "; {rewritten} entries accepted but not durable (seqs {} to {durable_now}) were written again from memory, none lost",
            outage.durable_seq + 1
        ));
    } else {
        reason.push_str("; no accepted entry was waiting, none lost");
    }
    if outage.refused > 0 {
        reason.push_str(&format!(
            "; {} `sync` callers among them were answered with the error",
            outage.refused
        ));
    }
    reason
}
