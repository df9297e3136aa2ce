//! The ledger writer: [`LedgerWriter::start`] recovers the directory and spawns one dedicated OS thread
//! that owns the files; [`LedgerHandle`] (cheap to clone) is what the request path holds.
//!
//! The request path serializes its entry ([`EntryBody`], from an [`EntryDraft`] or straight from a
//! decision), reserves room in a bounded `tokio::sync::mpsc` channel, claims the entry's place in the
//! chain itself ([`ChainHead`]: seq, `previous_hash` and `entry_hash`, lock-free), enqueues the finished
//! line and returns its seq and hash (`durability: async`) or waits until it is on disk (`sync`). So
//! an answer that names its ledger entry (the decision API, a capability token's `led` claim) never
//! waits for the writer thread nor wakes it. A caller that names no entry (a proxied request whose
//! token is reused) hands the decision itself over instead ([`LedgerHandle::append_decision`]): the
//! writer serializes, claims and drops it, and the request thread only queues it. The thread takes whatever is queued (up to
//! `batch_max`), puts lines back in seq order (two callers may enqueue in the opposite order of their
//! claims), writes the batch with one `write`, and calls `fdatasync` once per batch in `sync` mode, or
//! at most every `flush_interval` (and at the latest `flush_interval` after the last sync once it goes
//! idle) in `async` mode — group commit. In `async` mode it then lingers (`linger`, 1 ms by default)
//! before taking the next batch, so that under load the request path only queues lines; a flush, a
//! pause or a shutdown unparks it. It must never block the async runtime (it uses `blocking_recv` on
//! its own thread), never drop a claimed entry without saying so (a `sync` caller gets the error; a
//! gap is logged), and never extend a chain whose tail does not verify.
//!
//! Durability, precisely: in `async` mode `append` returns once the entry is queued; it is written
//! within `linger` and fsynced within `flush_interval` after that. A killed process loses the entries
//! still queued (at most the last `linger`), an OS crash those of the last `flush_interval` +
//! `linger`.
//!
//! A failed write or fdatasync (ENOSPC, EIO, EDQUOT) or a segment that cannot be created is an
//! outage, not the end: appends fail closed until the writer heals by itself ([`heal`]). Only a
//! chain that no longer ends where the durable one did, or a panic, stops it for good, reported as
//! such ([`LedgerHandle::stopped`]); its own log lines never end it (see `log`).
//!
//! This file is the thread: [`LedgerWriter::start`] and the loop of named steps (take a batch, place
//! its lines in seq order, sign checkpoints, commit, answer flushes and pauses, linger). Writing,
//! syncing and rotating segments is [`commit`], outages and healing [`heal`]; the request side is
//! [`crate::handle`], opening and recovering a directory [`crate::recovery`], the settings
//! [`crate::config`].

mod commit;
mod heal;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use tokio::sync::{mpsc, oneshot};

use super::config::{Durability, LedgerConfig};
use super::entry::{checkpoint_message, write_body_line, EntryBody, EntryDraft, EventType};
use super::handle::{
    claim_body, AckResult, DecisionEntry, EntryContext, LedgerHandle, Msg, Shared,
};
use super::head::{ChainHead, Claimed};
use super::recovery::{lock_dir, recover};
use super::segment_io::{OsIo, SegmentIo};
use super::signer::CheckpointSigner;
use super::LedgerError;
use heal::{Healed, Outage};

/// Starts the ledger writer.
#[derive(Debug)]
pub struct LedgerWriter;

impl LedgerWriter {
    /// Validates `config`, recovers the directory (verifies the last segment, truncates a torn final
    /// line and records a `ledger_recovered` entry), and starts the writer thread. Checkpoints are
    /// signed with `signer`; without one, no checkpoints are written.
    ///
    /// Reads and fsyncs files: call it at startup, not on the request path.
    pub fn start(
        config: LedgerConfig,
        signer: Option<CheckpointSigner>,
    ) -> Result<LedgerHandle, LedgerError> {
        Self::start_with_io(config, signer, Arc::new(OsIo))
    }

    /// [`Self::start`] with the segment writes and syncs going through `io` (see
    /// [`crate::segment_io`]): for tests that fail them as a full or failing disk would.
    pub fn start_with_io(
        config: LedgerConfig,
        signer: Option<CheckpointSigner>,
        io: Arc<dyn SegmentIo>,
    ) -> Result<LedgerHandle, LedgerError> {
        config.validate()?;
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| LedgerError::io("create directory", &config.dir, e))?;
        let lock = lock_dir(&config.dir, crate::dirlock::WAIT)?;
        let recovered = recover(&config.dir, io.as_ref())?;
        let file = OpenOptions::new()
            .append(true)
            .open(&recovered.path)
            .map_err(|e| LedgerError::io("open segment", &recovered.path, e))?;
        let shared = Arc::new(Shared::default());
        let head_seq = recovered.next_seq - 1;
        shared.head_seq.store(head_seq, Ordering::Relaxed);
        shared.durable_seq.store(head_seq, Ordering::Relaxed);
        let chain = Arc::new(ChainHead::new(head_seq, recovered.head.clone()));
        let now = Instant::now();
        let mut writer = Writer {
            buf: Vec::with_capacity(1 << 20),
            pending: Vec::new(),
            cfg: config,
            signer,
            shared: Arc::clone(&shared),
            chain: Arc::clone(&chain),
            lock: Some(lock),
            io,
            file,
            segment_path: recovered.path,
            durable_len: recovered.len,
            written: 0,
            durable_seq: head_seq,
            durable_hash: recovered.head,
            outage: None,
            next_seq: recovered.next_seq,
            out_of_order: BTreeMap::new(),
            checkpoint_seq: head_seq,
            last_checkpoint: now,
            oldest_enqueued: None,
            dirty: false,
            last_sync: now,
        };
        if let Some(reason) = recovered.torn {
            log(|| tracing::warn!(target: "lexecon::ledger", %reason, "ledger recovered"));
            let body = EntryBody::of_draft(&EntryDraft::event(EventType::LedgerRecovered, reason))?;
            let claimed = claim_body(&chain, &body);
            writer.accept(claimed.seq, claimed.line, None)?;
            writer.try_commit(true)?;
        }
        let (tx, rx) = mpsc::channel(writer.cfg.queue);
        let ticker_period = writer.cfg.checkpoint_interval;
        let durability = writer.cfg.durability;
        let when_full = writer.cfg.when_full;
        let thread = std::thread::Builder::new()
            .name("lexecon-ledger".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|e| LedgerError::io("spawn writer thread", PathBuf::new(), e))?;
        let handle = LedgerHandle {
            tx,
            writer: thread.thread().clone(),
            chain,
            shared,
            durability,
            when_full,
        };
        if !ticker_period.is_zero() {
            let weak = handle.tx.downgrade();
            std::thread::Builder::new()
                .name("lexecon-ledger-tick".to_owned())
                .spawn(move || loop {
                    std::thread::sleep(ticker_period);
                    let Some(tx) = weak.upgrade() else { break };
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Msg::Tick) {
                        break;
                    }
                })
                .map_err(|e| LedgerError::io("spawn ticker thread", PathBuf::new(), e))?;
        }
        Ok(handle)
    }
}

/// A claimed line waiting for the lines before it.
struct Waiting {
    line: Vec<u8>,
    ack: Option<oneshot::Sender<AckResult>>,
    checkpoint: bool,
}

struct Writer {
    cfg: LedgerConfig,
    signer: Option<CheckpointSigner>,
    shared: Arc<Shared>,
    chain: Arc<ChainHead>,
    /// The directory lock, held until the writer has stopped writing.
    lock: Option<File>,
    /// Every write and sync of a segment goes through it (see [`crate::segment_io`]).
    io: Arc<dyn SegmentIo>,
    file: File,
    segment_path: PathBuf,
    /// Length of the current segment up to its last durable line: what an outage cuts it back to.
    durable_len: u64,
    /// How many bytes at the start of `buf` are already in the file (not yet fsynced).
    written: usize,
    /// The last seq known to be fsynced, and its `entry_hash`: where a healed segment must end.
    durable_seq: u64,
    durable_hash: String,
    /// Set while the writer cannot write (see [`Outage`]).
    outage: Option<Outage>,
    /// The seq of the next line to write.
    next_seq: u64,
    /// Claimed lines that arrived before a line with a lower seq (its caller claimed first but
    /// enqueued later); written as soon as the gap closes.
    out_of_order: BTreeMap<u64, Waiting>,
    /// The seq of the last checkpoint claimed (the chain head at start): entries after it are not
    /// covered by a signature yet.
    checkpoint_seq: u64,
    last_checkpoint: Instant,
    /// Lines not yet durable: the first `written` bytes are in the file but not fsynced, the rest
    /// not written yet. Kept until fsynced, so that after a failed write or sync they can be
    /// written again (in `async` mode at most `flush_interval` of them, plus what arrives while
    /// the writer is down: bounded by the queue).
    buf: Vec<u8>,
    /// `sync` callers to acknowledge once their lines are fsynced.
    pending: Vec<oneshot::Sender<AckResult>>,
    oldest_enqueued: Option<Instant>,
    /// Written but not fsynced.
    dirty: bool,
    last_sync: Instant,
}

/// Who waits for the writer: flushes and pauses wait for the lines claimed before them that are
/// still on their way; shutdowns for everything queued.
#[derive(Default)]
struct Waiters {
    flushes: Vec<oneshot::Sender<Result<(), String>>>,
    pauses: Vec<(oneshot::Sender<()>, std::sync::mpsc::Receiver<()>)>,
    shutdowns: Vec<oneshot::Sender<Result<(), String>>>,
}

impl Writer {
    /// The thread: runs the loop, and if it stops for good (a chain it cannot verify, or a panic)
    /// says so — `failed`, [`Shared::stopped`] and a log line naming the reason — and answers
    /// everyone waiting with it. Never ends silently: a writer that is gone without a reason reads
    /// as "not running", which tells an operator nothing.
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let ended =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_inner(&mut rx)));
        let stopped = match ended {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                Some(format!("the ledger writer thread panicked: {what}"))
            }
        };
        if let Some(reason) = stopped {
            self.stop_for_good(&reason, &mut rx);
        }
    }

    fn run_inner(&mut self, rx: &mut mpsc::Receiver<Msg>) -> Result<(), LedgerError> {
        let mut batch = Vec::with_capacity(self.cfg.batch_max);
        let mut waiters = Waiters::default();
        // Only to wait for the queue with a timeout; this thread runs no other task on it.
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| LedgerError::io("start the writer's timer", PathBuf::new(), e))?;
        while let Some(first) = self.next_message(rx, &timer, &mut waiters)? {
            batch.push(first);
            while batch.len() < self.cfg.batch_max {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut linger = self.lingers_after(&batch);
            for msg in batch.drain(..) {
                self.take(msg, rx, &mut waiters)?;
            }
            self.commit(self.sync_due());
            if self.outage.is_some() {
                // `next_message` heals first.
                continue;
            }
            if self.out_of_order.is_empty() {
                self.answer_flushes_and_pauses(&mut waiters);
            } else {
                // A line claimed earlier is on its way: take it as soon as it arrives.
                linger = false;
            }
            if linger && waiters.shutdowns.is_empty() && waiters.flushes.is_empty() {
                // Let entries gather: senders meanwhile only queue (the receiver is not waiting,
                // so nothing wakes this thread), instead of a thread wake-up per entry. A flush, a
                // pause or a shutdown unparks it at once.
                std::thread::park_timeout(self.cfg.linger());
            }
        }
        self.finish(waiters)
    }

    /// The next message, waiting for one; `None` once the queue is closed and empty. While written
    /// entries are unsynced (`async`) it waits at most until `flush_interval` has passed since the
    /// last sync, and syncs then.
    fn next_message(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        timer: &tokio::runtime::Runtime,
        waiters: &mut Waiters,
    ) -> Result<Option<Msg>, LedgerError> {
        loop {
            if self.outage.is_some() {
                if self.heal(rx, timer, waiters)? == Healed::Stopping {
                    return Ok(None);
                }
                continue;
            }
            if !self.dirty {
                return Ok(rx.blocking_recv());
            }
            match rx.try_recv() {
                Ok(m) => return Ok(Some(m)),
                Err(mpsc::error::TryRecvError::Disconnected) => return Ok(None),
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            // Idle with unsynced entries (`async`): take entries as they arrive until
            // `flush_interval` has passed since the last sync, then sync. Syncing at every idle
            // moment cost an fdatasync every few requests at moderate load (about 900/s measured
            // with benches/load.sh).
            let wait = self
                .cfg
                .flush_interval
                .saturating_sub(self.last_sync.elapsed());
            if wait.is_zero() {
                self.commit(true);
                continue;
            }
            match timer.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                Ok(received) => return Ok(received),
                Err(_elapsed) => self.commit(true),
            }
        }
    }

    /// `async` with a linger, and the batch brought entries: wait before taking the next one.
    fn lingers_after(&self, batch: &[Msg]) -> bool {
        self.cfg.durability == Durability::Async
            && !self.cfg.linger().is_zero()
            && batch
                .iter()
                .any(|m| matches!(m, Msg::Append { .. } | Msg::Decision { .. }))
    }

    /// Takes one message of a batch: places a line, signs a checkpoint that is due, or notes who
    /// waits for what.
    fn take(
        &mut self,
        msg: Msg,
        rx: &mut mpsc::Receiver<Msg>,
        waiters: &mut Waiters,
    ) -> Result<(), LedgerError> {
        match msg {
            Msg::Decision {
                entry,
                ack,
                enqueued,
            } => {
                self.oldest_enqueued.get_or_insert(enqueued);
                self.accept_decision(*entry, ack)
            }
            Msg::Append {
                seq,
                line,
                ack,
                enqueued,
            } => {
                self.oldest_enqueued.get_or_insert(enqueued);
                self.accept(seq, line, ack)
            }
            Msg::Tick => self.checkpoint_if_due(),
            Msg::Flush(ack) => {
                waiters.flushes.push(ack);
                Ok(())
            }
            Msg::Pause { ack, resume } => {
                waiters.pauses.push((ack, resume));
                Ok(())
            }
            Msg::Shutdown(ack) => {
                // Take what is already queued (and what holds room in the queue), accept nothing
                // new.
                rx.close();
                waiters.shutdowns.push(ack);
                Ok(())
            }
        }
    }

    /// A time-based checkpoint, once `checkpoint_interval` has passed with entries uncovered.
    fn checkpoint_if_due(&mut self) -> Result<(), LedgerError> {
        if !self.cfg.checkpoint_interval.is_zero()
            && self.uncovered() > 0
            && self.last_checkpoint.elapsed() >= self.cfg.checkpoint_interval
        {
            self.push_checkpoint()?;
        }
        Ok(())
    }

    /// Whether this commit fsyncs: always in `sync` mode, else once `flush_interval` has passed.
    fn sync_due(&self) -> bool {
        self.cfg.durability == Durability::Sync
            || self.last_sync.elapsed() >= self.cfg.flush_interval
    }

    /// With no claimed line missing: makes everything durable for the flushes and pauses waiting,
    /// answers them, and holds each pause until its guard is dropped.
    fn answer_flushes_and_pauses(&mut self, waiters: &mut Waiters) {
        if !waiters.flushes.is_empty() || !waiters.pauses.is_empty() {
            self.commit(true);
        }
        if self.outage.is_some() {
            // Not durable: the writer heals first, and answers them with the error meanwhile.
            return;
        }
        for ack in waiters.flushes.drain(..) {
            let _ = ack.send(Ok(()));
        }
        for (ack, resume) in waiters.pauses.drain(..) {
            let _ = ack.send(());
            // Returns when the guard is dropped.
            let _ = resume.recv();
        }
    }

    /// The queue is closed and empty: writes a final checkpoint, fsyncs, releases the directory and
    /// answers everyone still waiting.
    fn finish(&mut self, waiters: Waiters) -> Result<(), LedgerError> {
        // The queue is closed and empty, and every reserved slot was used: no claimed line can
        // still arrive.
        if let Some((&seq, _)) = self.out_of_order.first_key_value() {
            log(|| {
                tracing::error!(
                    target: "lexecon::ledger",
                    missing = self.next_seq,
                    unwritten = self.out_of_order.len(),
                    first_unwritten = seq,
                    "a claimed ledger entry never arrived; the entries after it were not written"
                )
            });
        }
        if self.uncovered() > 0 && self.out_of_order.is_empty() {
            self.push_checkpoint()?;
        }
        self.commit(true);
        if self.outage.is_some() {
            // One last attempt; a shutdown does not wait for the disk to come back.
            self.heal_once()?;
        }
        if let Some(outage) = &self.outage {
            let reason = format!(
                "the ledger writer stopped while it could not write ({}): seqs {} to {} were not made durable",
                outage.last_error,
                self.durable_seq + 1,
                self.next_seq - 1
            );
            for ack in waiters.flushes.into_iter().chain(waiters.shutdowns) {
                let _ = ack.send(Err(reason.clone()));
            }
            return Err(LedgerError::WriterFailed { reason });
        }
        // Nothing more is written: let a successor (a restart in this process) take the directory
        // before anyone learns that the shutdown finished.
        self.lock = None;
        let result = if self.out_of_order.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "seq {} never arrived; {} later entries were not written",
                self.next_seq,
                self.out_of_order.len()
            ))
        };
        for ack in waiters.flushes {
            let _ = ack.send(result.clone());
        }
        for (ack, _resume) in waiters.pauses {
            let _ = ack.send(());
        }
        for ack in waiters.shutdowns {
            let _ = ack.send(result.clone());
        }
        Ok(())
    }

    /// Serializes a handed-over decision, claims its place and takes its line. Its strings are
    /// dropped here, off the request thread.
    fn accept_decision(
        &mut self,
        entry: DecisionEntry,
        ack: Option<oneshot::Sender<AckResult>>,
    ) -> Result<(), LedgerError> {
        let serialized = match &entry.context {
            EntryContext::Whole { context, redaction } => {
                EntryBody::of_decision(&entry.decision, context, redaction)
            }
            EntryContext::Digested { digest, kept } => {
                EntryBody::of_decision_redacted(&entry.decision, digest, kept.as_ref())
            }
        };
        let body = match serialized {
            Ok(body) => body,
            Err(e) => {
                // Nothing was claimed, so the chain has no gap; the caller (`sync`) learns it.
                let reason = format!("cannot serialize the ledger entry: {e}");
                log(
                    || tracing::error!(target: "lexecon::ledger", decision_id = %entry.decision.decision_id, error = %reason, "decision not recorded"),
                );
                if let Some(ack) = ack {
                    let _ = ack.send(Err(reason));
                }
                return Ok(());
            }
        };
        let claimed = claim_body(&self.chain, &body);
        self.accept(claimed.seq, claimed.line, ack)
    }

    /// Takes a claimed line: written now if it is the next in seq order (with every waiting line it
    /// lets through), else kept until the lines before it arrive.
    fn accept(
        &mut self,
        seq: u64,
        line: Vec<u8>,
        ack: Option<oneshot::Sender<AckResult>>,
    ) -> Result<(), LedgerError> {
        self.accept_line(seq, line, ack, false)
    }

    fn accept_line(
        &mut self,
        seq: u64,
        line: Vec<u8>,
        ack: Option<oneshot::Sender<AckResult>>,
        checkpoint: bool,
    ) -> Result<(), LedgerError> {
        let waiting = Waiting {
            line,
            ack,
            checkpoint,
        };
        if seq != self.next_seq {
            if seq < self.next_seq {
                // Unreachable while claims come from this ledger's own chain head.
                log(
                    || tracing::error!(target: "lexecon::ledger", seq, next = self.next_seq, "a ledger line claimed a written seq; dropped"),
                );
                return Ok(());
            }
            self.out_of_order.insert(seq, waiting);
            return Ok(());
        }
        let mut next = Some(waiting);
        while let Some(w) = next {
            self.place(w)?;
            if self.cfg.checkpoint_every > 0 && self.uncovered() >= self.cfg.checkpoint_every {
                // Signs the chain head as claimed now, which may be past lines still on their way:
                // the checkpoint then waits for them like any other line.
                if let Some(c) = self.claim_checkpoint()? {
                    self.out_of_order.insert(
                        c.seq,
                        Waiting {
                            line: c.line,
                            ack: None,
                            checkpoint: true,
                        },
                    );
                }
            }
            next = self.out_of_order.remove(&self.next_seq);
        }
        Ok(())
    }

    /// Appends the line with seq `next_seq` to the batch buffer.
    fn place(&mut self, w: Waiting) -> Result<(), LedgerError> {
        if self.durable_len + self.buf.len() as u64 >= self.cfg.segment_max_bytes {
            // Fails into an outage, never drops the line: it goes on in this segment until the
            // writer heals and rotates.
            self.rotate();
        }
        self.buf.extend_from_slice(&w.line);
        self.next_seq += 1;
        self.shared.appended.fetch_add(1, Ordering::Relaxed);
        if let Some(ack) = w.ack {
            match &mut self.outage {
                // Never told "durable" for what is not: the caller fails closed now; the entry
                // is written all the same once the writer heals (it holds a place in the chain).
                Some(outage) => {
                    outage.refused += 1;
                    let _ = ack.send(Err(outage.last_error.clone()));
                }
                None => self.pending.push(ack),
            }
        }
        if w.checkpoint {
            self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Written entries after the last claimed checkpoint.
    fn uncovered(&self) -> u64 {
        (self.next_seq - 1).saturating_sub(self.checkpoint_seq)
    }

    /// Claims a signed checkpoint after the current chain head; `None` without a signer. The
    /// signature covers the head it follows, so when a request claims first the checkpoint is signed
    /// again after the new head (one Ed25519 signature, ~25 µs here, per attempt; at 50,000 claims/s
    /// an attempt succeeds with probability ~e^-1.25, about 3.5 attempts on average).
    fn claim_checkpoint(&mut self) -> Result<Option<Claimed>, LedgerError> {
        self.last_checkpoint = Instant::now();
        let Some(signer) = &self.signer else {
            // Nothing to sign with: count the entries as covered so they do not ask again.
            self.checkpoint_seq = self.next_seq - 1;
            return Ok(None);
        };
        let claimed = self.chain.claim(1024, |seq, head, out| {
            let signature = signer.sign(&checkpoint_message(seq, head));
            let draft = EntryDraft::event(
                EventType::Checkpoint,
                format!("signed chain head after seq {}", seq - 1),
            );
            let signature =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.to_bytes());
            let body = EntryBody::of_checkpoint(&draft, signer.key_id(), &signature)?;
            Ok::<_, LedgerError>(write_body_line(seq, &body, head, out))
        });
        match claimed {
            Ok(claimed) => {
                self.checkpoint_seq = claimed.seq;
                Ok(Some(claimed))
            }
            // Nothing was claimed (the chain has no gap); the next checkpoint covers these entries.
            Err(e) => {
                log(
                    || tracing::error!(target: "lexecon::ledger", error = %e, "a checkpoint could not be serialized; skipped"),
                );
                Ok(None)
            }
        }
    }

    fn push_checkpoint(&mut self) -> Result<(), LedgerError> {
        if let Some(claimed) = self.claim_checkpoint()? {
            self.accept_line(claimed.seq, claimed.line, None, true)?;
        }
        Ok(())
    }
}

/// Emits a log line from the writer thread. INVARIANT: logging never ends the writer. A
/// subscriber may panic when its output cannot be written: `tracing_subscriber::fmt()` (what
/// `lexecon serve` installs) reports a failed write with `eprintln!`, which panics when stderr is
/// on the disk that just filled up — the disk this writer is failing on. Such a panic is caught
/// here and the line is lost; shared state is always updated before the line is logged.
fn log(line: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(line));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::segment_path;
    use crate::{verify_dir, LedgerEntry};
    use std::path::Path;
    use std::time::Duration;

    fn event(reason: &str) -> EntryBody {
        EntryBody::of_draft(&EntryDraft::event(EventType::Approval, reason)).unwrap()
    }

    /// Hands a claimed line to the writer, as `append_body` does after its claim.
    async fn enqueue(handle: &LedgerHandle, claimed: Claimed) {
        let msg = Msg::Append {
            seq: claimed.seq,
            line: claimed.line,
            ack: None,
            enqueued: Instant::now(),
        };
        handle.tx.send(msg).await.unwrap();
    }

    fn lines(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(segment_path(dir, 1))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn a_directory_is_locked_while_its_writer_runs_and_free_once_it_shut_down() {
        let dir = tempfile::tempdir().unwrap();
        let handle = LedgerWriter::start(LedgerConfig::new(dir.path()), None).unwrap();
        handle.append_body(event("one")).await.unwrap();
        match lock_dir(dir.path(), Duration::ZERO) {
            Err(e @ LedgerError::InUse { .. }) => {
                let text = e.to_string();
                assert!(text.contains("in use by another writer"), "{text}");
                assert!(text.contains(&dir.path().display().to_string()), "{text}");
            }
            other => panic!("a second writer must be refused, got {other:?}"),
        }
        handle.shutdown().await.unwrap();
        // Released before the shutdown is acknowledged: a restart needs no wait.
        assert!(lock_dir(dir.path(), Duration::ZERO).is_ok());
    }

    #[tokio::test]
    async fn lines_enqueued_against_their_claim_order_are_written_in_seq_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LedgerConfig::new(dir.path());
        config.checkpoint_every = 0;
        let handle = LedgerWriter::start(config, None).unwrap();
        // Two callers claim seq 1 and 2; the second enqueues first.
        let first = claim_body(&handle.chain, &event("first"));
        let second = claim_body(&handle.chain, &event("second"));
        let (first_hash, second_hash) = (first.entry_hash.clone(), second.entry_hash.clone());
        for claimed in [second, first] {
            enqueue(&handle, claimed).await;
        }
        // A flush waits for the gap to close, then for the disk.
        handle.flush().await.unwrap();
        assert_eq!(handle.stats().durable_seq, 2);
        let written = lines(dir.path());
        assert_eq!(written.len(), 2);
        assert!(
            written[0].contains("\"reason\":\"first\""),
            "{}",
            written[0]
        );
        assert!(written[0].ends_with(&format!("\"entry_hash\":\"{first_hash}\"}}")));
        assert!(written[1].ends_with(&format!("\"entry_hash\":\"{second_hash}\"}}")));
        // The next append continues the chain after both.
        assert_eq!(handle.append_body(event("third")).await.unwrap().seq, 3);
        handle.shutdown().await.unwrap();
        let report = verify_dir(dir.path(), None).unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.entries_checked, 3);
    }

    #[tokio::test]
    async fn a_checkpoint_due_while_a_claimed_line_is_missing_waits_for_it_and_signs_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let keys = lexecon_keys::KeyRing::generate();
        let mut config = LedgerConfig::new(dir.path());
        config.checkpoint_every = 2;
        let handle = LedgerWriter::start(config, Some(CheckpointSigner::of(&keys))).unwrap();
        // Seq 1 and 2 arrive; seq 3 is claimed but still on its way when the checkpoint is due.
        let one = claim_body(&handle.chain, &event("one"));
        let two = claim_body(&handle.chain, &event("two"));
        let three = claim_body(&handle.chain, &event("three"));
        for claimed in [one, two] {
            enqueue(&handle, claimed).await;
        }
        handle.writer.unpark();
        // The writer placed 1 and 2 and claimed a checkpoint after the head (3): seq 4.
        for _ in 0..1000 {
            if handle.stats().head_seq == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(handle.stats().head_seq, 2);
        enqueue(&handle, three).await;
        handle.flush().await.unwrap();
        handle.shutdown().await.unwrap();
        let written = lines(dir.path());
        assert_eq!(written.len(), 4, "{written:?}");
        let checkpoint: LedgerEntry = serde_json::from_str(&written[3]).unwrap();
        assert_eq!(checkpoint.event_type, EventType::Checkpoint);
        assert_eq!(checkpoint.seq, 4);
        let public = keys.signer().verifying_key();
        let report = verify_dir(dir.path(), Some(&public)).unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.checkpoints_verified, 1);
    }
}
