//! The request path's side of the ledger: [`LedgerHandle`] (cheap to clone) serializes an entry or
//! takes a decision, reserves room in the writer's bounded queue, claims the entry's place in the
//! chain itself ([`ChainHead`], lock-free) and enqueues the finished line; flush, pause, shutdown
//! and stats talk to the writer thread through the same queue.
//!
//! It never waits for the writer nor the disk unless `durability: sync` was chosen, and it never
//! claims a place in the chain before it holds room in the queue (a claimed line must always
//! reach the writer, or the chain would have a gap).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use lexecon_policy_cache::Decision;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::config::{Durability, WhenFull};
use super::entry::{write_body_line, EntryBody, EntryDraft, RedactionConfig};
use super::head::{ChainHead, Claimed};
use super::LedgerError;

/// Where an entry landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub entry_hash: String,
}

/// A `sync` caller's acknowledgement: its entry is durable, or why it never will be.
pub(crate) type AckResult = Result<(), String>;

async fn resolve(rx: oneshot::Receiver<AckResult>) -> Result<(), LedgerError> {
    match rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(LedgerError::WriterFailed { reason }),
        Err(_) => Err(LedgerError::WriterFailed {
            reason: "the writer stopped before recording the entry".to_owned(),
        }),
    }
}

/// Counters for metrics, readable from any thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerStats {
    /// Entries waiting in the queue.
    pub queue_depth: usize,
    pub queue_capacity: usize,
    /// Entries written since start (checkpoints included).
    pub appended: u64,
    /// Highest seq known to be fsynced.
    pub durable_seq: u64,
    /// Highest seq written.
    pub head_seq: u64,
    /// Time the oldest entry of the last batch spent between `append` and being written, in µs.
    pub lag_micros: u64,
    pub checkpoints: u64,
    /// `write` calls (batches) since start: `appended / writes` is the mean batch.
    pub writes: u64,
    /// `fdatasync` calls since start.
    pub syncs: u64,
    /// The writer cannot write (an I/O error it is retrying, or it stopped); appends fail until it
    /// heals (see [`LedgerHandle::last_error`]).
    pub failed: bool,
    /// Times the writer healed from an I/O error since start (each a `ledger_recovered` entry).
    pub recoveries: u64,
}

/// What the writer thread reports to every handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) appended: AtomicU64,
    pub(crate) durable_seq: AtomicU64,
    pub(crate) head_seq: AtomicU64,
    pub(crate) lag_micros: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) failed: AtomicBool,
    /// Why the writer is down (set with `failed`; kept after it healed, for the record).
    pub(crate) last_error: ArcSwapOption<String>,
    /// Outages the writer healed from since start.
    pub(crate) recoveries: AtomicU64,
    /// Why the writer stopped for good (a chain it cannot verify, a panic), if it did: unlike an
    /// outage it does not heal; a restart (after `lexecon ledger verify`) is needed.
    pub(crate) stopped: ArcSwapOption<String>,
}

/// One message from a handle to the writer thread.
pub(crate) enum Msg {
    /// A claimed line (`seq` and its bytes); `ack` only in `sync` mode.
    Append {
        seq: u64,
        line: Vec<u8>,
        ack: Option<oneshot::Sender<AckResult>>,
        enqueued: Instant,
    },
    /// A decision whose entry the writer serializes and claims itself: the caller needed no hash,
    /// so the request thread neither builds, hashes nor drops the entry. `ack` only in `sync` mode.
    Decision {
        entry: Box<DecisionEntry>,
        ack: Option<oneshot::Sender<AckResult>>,
        enqueued: Instant,
    },
    Tick,
    Flush(oneshot::Sender<Result<(), String>>),
    Pause {
        ack: oneshot::Sender<()>,
        resume: std::sync::mpsc::Receiver<()>,
    },
    Shutdown(oneshot::Sender<Result<(), String>>),
}

/// What [`LedgerHandle::append_decision`] hands to the writer.
pub(crate) struct DecisionEntry {
    pub(crate) decision: Decision,
    pub(crate) context: EntryContext,
}

/// The decision's context as the writer gets it.
pub(crate) enum EntryContext {
    /// The whole context: the writer digests and redacts it (the caller computed nothing).
    Whole {
        context: Map<String, Value>,
        redaction: Arc<RedactionConfig>,
    },
    /// The caller digested the context already and applied the redaction: only the fields the
    /// entry shows cross to the writer thread, and the caller frees the rest on its own thread
    /// (cheaper than freeing another thread's allocations, and the raw context never leaves it).
    Digested {
        digest: [u8; 32],
        kept: Option<Map<String, Value>>,
    },
}

/// The request path's side of the ledger. Clone it freely.
#[derive(Clone, Debug)]
pub struct LedgerHandle {
    pub(crate) tx: mpsc::Sender<Msg>,
    /// The writer thread: unparked by flush, pause and shutdown, so its linger never delays them.
    pub(crate) writer: std::thread::Thread,
    pub(crate) chain: Arc<ChainHead>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) durability: Durability,
    pub(crate) when_full: WhenFull,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Append { .. } => "Append",
            Msg::Decision { .. } => "Decision",
            Msg::Tick => "Tick",
            Msg::Flush(_) => "Flush",
            Msg::Pause { .. } => "Pause",
            Msg::Shutdown(_) => "Shutdown",
        })
    }
}

impl LedgerHandle {
    /// Records `draft`: returns its seq and entry hash once queued (`async`) or fsynced (`sync`).
    /// A full queue waits (`block`) or fails at once with [`LedgerError::QueueFull`]
    /// (`fail_closed`).
    pub async fn append(&self, draft: EntryDraft) -> Result<Appended, LedgerError> {
        self.append_body(EntryBody::of_draft(&draft)?).await
    }

    /// [`Self::append`] of an entry already serialized on the caller's thread (see [`EntryBody`]).
    pub async fn append_body(&self, body: EntryBody) -> Result<Appended, LedgerError> {
        // Room first: a claimed place must always reach the writer, or the chain would have a gap.
        let permit = self.room().await?;
        // INVARIANT: nothing between the claim and `send` can fail or yield.
        let Claimed {
            seq,
            line,
            entry_hash,
        } = claim_body(&self.chain, &body);
        let (ack, rx) = self.ack_channel();
        permit.send(Msg::Append {
            seq,
            line,
            ack,
            enqueued: Instant::now(),
        });
        if let Some(rx) = rx {
            resolve(rx).await?;
        }
        Ok(Appended { seq, entry_hash })
    }

    /// Records the `decision` entry of `decision` taken on `context` (see [`EntryBody::of_decision`])
    /// without learning its seq or hash: the writer thread serializes it, claims its place in the
    /// chain and drops it, so the caller only queues it. For callers that name no entry (a proxied
    /// request whose capability token is reused or not needed); [`Self::append_body`] when the
    /// answer must carry the hash. Same queue, durability and `when_full` behaviour as
    /// [`Self::append`]: `async` returns once queued, `sync` once fsynced.
    pub async fn append_decision(
        &self,
        decision: Decision,
        context: Map<String, Value>,
        redaction: Arc<RedactionConfig>,
    ) -> Result<(), LedgerError> {
        self.queue_decision(decision, EntryContext::Whole { context, redaction })
            .await
    }

    /// [`Self::append_decision`] with the context's digest already computed by the caller
    /// ([`lexecon_config::canonical::map_digest`] of `context`, which the request path needs for the
    /// capability token anyway): the writer does not canonicalize and hash the context again, and
    /// gets only the fields `redaction` shows (applied here, before queueing).
    ///
    /// Not an `async fn`: the context is redacted and freed before the returned future exists, so
    /// that future (boxed on the request path) carries none of it.
    pub fn append_decision_digested(
        &self,
        decision: Decision,
        context: Map<String, Value>,
        context_digest: [u8; 32],
        redaction: Arc<RedactionConfig>,
    ) -> impl std::future::Future<Output = Result<(), LedgerError>> + Send + '_ {
        // Redacted here (an unconfigured domain keeps nothing: one map lookup), and the raw
        // context freed on this thread (see `EntryContext::Digested`).
        let kept = redaction.apply(&decision.domain, &context);
        drop(context);
        let context = EntryContext::Digested {
            digest: context_digest,
            kept,
        };
        self.queue_decision(decision, context)
    }

    async fn queue_decision(
        &self,
        decision: Decision,
        context: EntryContext,
    ) -> Result<(), LedgerError> {
        let permit = self.room().await?;
        let (ack, rx) = self.ack_channel();
        permit.send(Msg::Decision {
            entry: Box::new(DecisionEntry { decision, context }),
            ack,
            enqueued: Instant::now(),
        });
        if let Some(rx) = rx {
            resolve(rx).await?;
        }
        Ok(())
    }

    /// The writer's acknowledgement of one entry: only `sync` callers wait for it.
    fn ack_channel(
        &self,
    ) -> (
        Option<oneshot::Sender<AckResult>>,
        Option<oneshot::Receiver<AckResult>>,
    ) {
        match self.durability {
            Durability::Async => (None, None),
            Durability::Sync => {
                let (ack, rx) = oneshot::channel();
                (Some(ack), Some(rx))
            }
        }
    }

    /// One place in the queue: waits for it (`block`) or fails at once (`fail_closed`).
    async fn room(&self) -> Result<mpsc::Permit<'_, Msg>, LedgerError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            let error = self.shared.last_error.load_full();
            let error = error.as_deref().map_or("an error", String::as_str);
            let reason = if let Some(stopped) = self.shared.stopped.load_full() {
                format!("the ledger writer stopped after {stopped}; it needs a restart")
            } else if self.tx.is_closed() {
                format!("the ledger writer stopped after {error}")
            } else {
                format!("the ledger writer cannot write ({error}); appends fail until it recovers")
            };
            return Err(LedgerError::WriterFailed { reason });
        }
        match self.when_full {
            WhenFull::Block => self.tx.reserve().await.map_err(|_| LedgerError::Closed),
            WhenFull::FailClosed => self.tx.try_reserve().map_err(|e| match e {
                mpsc::error::TrySendError::Full(()) => LedgerError::QueueFull {
                    capacity: self.tx.max_capacity(),
                },
                mpsc::error::TrySendError::Closed(()) => LedgerError::Closed,
            }),
        }
    }

    /// Waits until everything queued before this call is written and fsynced.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        self.ask(Msg::Flush).await
    }

    /// Sends `msg` (built around its acknowledgement channel), wakes the writer and waits for the
    /// answer: the writer's failure, or `Closed` when it is gone.
    async fn ask(
        &self,
        msg: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Msg,
    ) -> Result<(), LedgerError> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(msg(ack))
            .await
            .map_err(|_| LedgerError::Closed)?;
        self.writer.unpark();
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(LedgerError::WriterFailed { reason }),
            Err(_) => Err(LedgerError::Closed),
        }
    }

    /// Makes everything queued so far durable, then holds the writer until the guard is dropped (for
    /// a consistent copy of the directory). Appends queue up meanwhile, up to the queue capacity.
    pub async fn pause(&self) -> Result<PauseGuard, LedgerError> {
        let (ack, rx) = oneshot::channel();
        let (resume_tx, resume) = std::sync::mpsc::channel();
        self.tx
            .send(Msg::Pause { ack, resume })
            .await
            .map_err(|_| LedgerError::Closed)?;
        self.writer.unpark();
        rx.await.map_err(|_| LedgerError::Closed)?;
        Ok(PauseGuard { _resume: resume_tx })
    }

    /// Stops accepting entries, writes everything queued, a final checkpoint, fsyncs, and stops the
    /// writer. Other handles' later appends fail with [`LedgerError::Closed`].
    pub async fn shutdown(&self) -> Result<(), LedgerError> {
        self.ask(Msg::Shutdown).await
    }

    pub fn stats(&self) -> LedgerStats {
        LedgerStats {
            queue_depth: self.tx.max_capacity() - self.tx.capacity(),
            queue_capacity: self.tx.max_capacity(),
            appended: self.shared.appended.load(Ordering::Relaxed),
            durable_seq: self.shared.durable_seq.load(Ordering::Relaxed),
            head_seq: self.shared.head_seq.load(Ordering::Relaxed),
            lag_micros: self.shared.lag_micros.load(Ordering::Relaxed),
            checkpoints: self.shared.checkpoints.load(Ordering::Relaxed),
            writes: self.shared.writes.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            recoveries: self.shared.recoveries.load(Ordering::Relaxed),
        }
    }

    /// The writer's most recent I/O error, if it ever had one (it stays after the writer healed;
    /// [`LedgerStats::failed`] says whether it is down now).
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.load_full().map(|e| (*e).clone())
    }

    /// Why the writer stopped for good, if it did: a tail it could not verify or a panic of its
    /// thread. Unlike [`LedgerStats::failed`] during an outage, this does not clear by itself; a
    /// health check should report it as such (it needs a restart, not patience).
    pub fn stopped(&self) -> Option<String> {
        self.shared.stopped.load_full().map(|e| (*e).clone())
    }

    /// How many times the writer healed from an I/O error since it started (each recorded by a
    /// `ledger_recovered` entry).
    pub fn recoveries(&self) -> u64 {
        self.shared.recoveries.load(Ordering::Relaxed)
    }
}

/// Holds the writer paused (see [`LedgerHandle::pause`]); dropping it resumes writing.
#[derive(Debug)]
pub struct PauseGuard {
    pub(crate) _resume: std::sync::mpsc::Sender<()>,
}

/// Claims the next place in `chain` for `body` (see [`ChainHead`]).
pub(crate) fn claim_body(chain: &ChainHead, body: &EntryBody) -> Claimed {
    let claimed: Result<Claimed, std::convert::Infallible> = chain
        .claim(body.len() + 192, |seq, previous_hash, out| {
            Ok(write_body_line(seq, body, previous_hash, out))
        });
    match claimed {
        Ok(c) => c,
        Err(never) => match never {},
    }
}
