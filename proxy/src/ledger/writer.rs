//! The ledger writer: [`LedgerWriter::start`] recovers the directory and spawns one dedicated OS thread
//! that owns the files; [`LedgerHandle`] (cheap to clone) is what the request path holds.
//!
//! The request path serializes its entry ([`EntryBody`], from an [`EntryDraft`] or straight from a
//! decision), enqueues it on a bounded `tokio::sync::mpsc` channel and returns
//! (`durability: async`) or waits until the entry is on disk (`sync`). The thread takes whatever is
//! queued (up to `batch_max`), assigns seq and hashes, writes the batch with one `write`, and calls
//! `fdatasync` once per batch in `sync` mode, or at most every `flush_interval` (and at the latest
//! `flush_interval` after the last sync once it goes idle) in `async` mode — group commit. In
//! `async` mode it then lingers (`linger`, 1 ms by default) before taking the next batch, so that under
//! load the request path only queues entries and never pays for waking the thread; a caller that
//! waits for its receipt unparks it. It must never block the async runtime (it uses
//! `blocking_recv` on its own thread), never drop an entry without telling the caller (every entry's
//! receipt resolves with its seq and hash or with an error), and never extend a chain whose tail does
//! not verify.
//!
//! Durability, precisely: in `async` mode a receipt resolves once the entry was written to the file
//! (it survives a crash of the process, not of the machine); an OS crash loses at most the entries of
//! the last `flush_interval`. In `sync` mode a receipt (and `append`) resolves only after `fdatasync`.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::entry::{
    checkpoint_message, split_hash, write_body_line, EntryBody, EntryDraft, EventType, LedgerEntry,
    GENESIS_HASH,
};
use super::segment::{list_segments, segment_path, SegmentBytes};
use super::verify::ChainCursor;
use super::LedgerError;

/// When `append` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// After the entry is queued; it is written within microseconds and fsynced within
    /// `flush_interval`.
    #[default]
    Async,
    /// After the entry is fsynced.
    Sync,
}

/// What `append` does when the queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room (back-pressure on the request).
    #[default]
    Block,
    /// Return [`LedgerError::QueueFull`] at once; the caller denies with 503.
    FailClosed,
}

/// The `ledger:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// Directory of the segment files (created if missing).
    pub dir: PathBuf,
    #[serde(default)]
    pub durability: Durability,
    /// `async` mode: the longest time written entries stay without `fdatasync`.
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Capacity of the queue between the request path and the writer.
    #[serde(default = "default_queue")]
    pub queue: usize,
    #[serde(default)]
    pub when_full: WhenFull,
    /// A signed checkpoint after this many entries (0: never by count).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// A signed checkpoint at least this often while entries arrive (0s: never by time).
    #[serde(default = "default_checkpoint_interval", with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// A new segment starts once the current one reaches this size.
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// Most entries written per batch (per `write` call).
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// `async` mode: after writing a batch, the writer waits this long before it takes the next
    /// one, so that a busy request path hands entries over without waking the writer thread for
    /// each (0s: take entries as they arrive). A caller that waits for its entry's receipt cuts
    /// the wait short. Unset: 1 ms, or `flush_interval` when that is shorter (see [`Self::linger`]).
    #[serde(default, with = "humantime_serde::option")]
    pub linger: Option<Duration>,
}

fn default_flush_interval() -> Duration {
    Duration::from_millis(5)
}
fn default_queue() -> usize {
    65_536
}
fn default_checkpoint_every() -> u64 {
    1000
}
fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_segment_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_batch_max() -> usize {
    4096
}
/// The linger when none is configured (capped at `flush_interval`).
const DEFAULT_LINGER: Duration = Duration::from_millis(1);

impl LedgerConfig {
    /// Defaults for everything but the directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LedgerConfig {
            dir: dir.into(),
            durability: Durability::default(),
            flush_interval: default_flush_interval(),
            queue: default_queue(),
            when_full: WhenFull::default(),
            checkpoint_every: default_checkpoint_every(),
            checkpoint_interval: default_checkpoint_interval(),
            segment_max_bytes: default_segment_max_bytes(),
            batch_max: default_batch_max(),
            linger: None,
        }
    }

    /// The linger in force: the configured one, else 1 ms capped at `flush_interval`.
    pub fn linger(&self) -> Duration {
        self.linger
            .unwrap_or_else(|| DEFAULT_LINGER.min(self.flush_interval))
    }

    pub fn validate(&self) -> Result<(), LedgerError> {
        if self.queue == 0 {
            return Err(LedgerError::InvalidConfig {
                field: "ledger.queue",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.queue > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(LedgerError::InvalidConfig {
                field: "ledger.queue",
                reason: format!("must be at most {}", tokio::sync::Semaphore::MAX_PERMITS),
            });
        }
        if self.batch_max == 0 {
            return Err(LedgerError::InvalidConfig {
                field: "ledger.batch_max",
                reason: "must be at least 1".to_owned(),
            });
        }
        if let Some(linger) = self.linger.filter(|l| *l > self.flush_interval) {
            // The crash bound of `async` is flush_interval + linger; keep the linger the smaller part.
            return Err(LedgerError::InvalidConfig {
                field: "ledger.linger",
                reason: format!(
                    "{} is above flush_interval ({})",
                    humantime::format_duration(linger),
                    humantime::format_duration(self.flush_interval)
                ),
            });
        }
        if self.segment_max_bytes < 4096 {
            return Err(LedgerError::InvalidConfig {
                field: "ledger.segment_max_bytes",
                reason: format!("{} is below the minimum of 4096", self.segment_max_bytes),
            });
        }
        Ok(())
    }
}

/// The key that signs checkpoints, with its id (see [`crate::token::key_id`]).
#[derive(Clone)]
pub struct CheckpointSigner {
    key_id: String,
    key: SigningKey,
}

impl CheckpointSigner {
    pub fn new(key: SigningKey) -> Self {
        CheckpointSigner {
            key_id: crate::token::key_id(&key.verifying_key()),
            key,
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Where an entry landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub entry_hash: String,
}

type AckResult = Result<Appended, String>;

/// What `append` returns: the entry's seq and hash, now (`sync`) or once written (`async`).
/// Dropping it is fine: the entry is written all the same.
#[derive(Debug)]
pub struct AppendReceipt(Receipt);

#[derive(Debug)]
enum Receipt {
    Ready(Appended),
    /// The writer thread, to cut its linger short when the caller waits.
    Pending(oneshot::Receiver<AckResult>, std::thread::Thread),
}

impl AppendReceipt {
    /// The seq and hash, if already known (always in `sync` mode).
    pub fn ready(&self) -> Option<&Appended> {
        match &self.0 {
            Receipt::Ready(a) => Some(a),
            Receipt::Pending(..) => None,
        }
    }

    /// Waits until the writer has written the entry.
    pub async fn appended(self) -> Result<Appended, LedgerError> {
        match self.0 {
            Receipt::Ready(a) => Ok(a),
            Receipt::Pending(rx, writer) => {
                writer.unpark();
                resolve(rx).await
            }
        }
    }
}

async fn resolve(rx: oneshot::Receiver<AckResult>) -> Result<Appended, LedgerError> {
    match rx.await {
        Ok(Ok(a)) => Ok(a),
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
    /// Time the oldest entry of the last batch spent between `append` and its receipt, in µs.
    pub lag_micros: u64,
    pub checkpoints: u64,
    /// The writer stopped after an I/O error; appends fail.
    pub failed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    appended: AtomicU64,
    durable_seq: AtomicU64,
    head_seq: AtomicU64,
    lag_micros: AtomicU64,
    checkpoints: AtomicU64,
    failed: AtomicBool,
}

enum Msg {
    Append {
        body: EntryBody,
        ack: oneshot::Sender<AckResult>,
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

/// The request path's side of the ledger. Clone it freely.
#[derive(Clone, Debug)]
pub struct LedgerHandle {
    tx: mpsc::Sender<Msg>,
    /// The writer thread: unparked by callers that wait, so its linger never delays them.
    writer: std::thread::Thread,
    shared: Arc<Shared>,
    durability: Durability,
    when_full: WhenFull,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Append { .. } => "Append",
            Msg::Tick => "Tick",
            Msg::Flush(_) => "Flush",
            Msg::Pause { .. } => "Pause",
            Msg::Shutdown(_) => "Shutdown",
        })
    }
}

impl LedgerHandle {
    /// Hands `draft` to the writer. `async`: returns once queued; `sync`: once fsynced. A full queue
    /// waits (`block`) or fails at once with [`LedgerError::QueueFull`] (`fail_closed`).
    pub async fn append(&self, draft: EntryDraft) -> Result<AppendReceipt, LedgerError> {
        self.append_body(EntryBody::of_draft(&draft)?).await
    }

    /// [`Self::append`] of an entry already serialized on the caller's thread (see [`EntryBody`]).
    pub async fn append_body(&self, body: EntryBody) -> Result<AppendReceipt, LedgerError> {
        let (ack, rx) = oneshot::channel();
        let msg = Msg::Append {
            body,
            ack,
            enqueued: Instant::now(),
        };
        match self.when_full {
            WhenFull::Block => self.tx.send(msg).await.map_err(|_| LedgerError::Closed)?,
            WhenFull::FailClosed => self.tx.try_send(msg).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => LedgerError::QueueFull {
                    capacity: self.tx.max_capacity(),
                },
                mpsc::error::TrySendError::Closed(_) => LedgerError::Closed,
            })?,
        }
        match self.durability {
            Durability::Async => Ok(AppendReceipt(Receipt::Pending(rx, self.writer.clone()))),
            Durability::Sync => Ok(AppendReceipt(Receipt::Ready(resolve(rx).await?))),
        }
    }

    /// Waits until everything queued before this call is written and fsynced.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(ack))
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
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Msg::Shutdown(ack))
            .await
            .map_err(|_| LedgerError::Closed)?;
        self.writer.unpark();
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(LedgerError::WriterFailed { reason }),
            Err(_) => Err(LedgerError::Closed),
        }
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
            failed: self.shared.failed.load(Ordering::Relaxed),
        }
    }
}

/// Holds the writer paused (see [`LedgerHandle::pause`]); dropping it resumes writing.
#[derive(Debug)]
pub struct PauseGuard {
    _resume: std::sync::mpsc::Sender<()>,
}

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
        config.validate()?;
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| LedgerError::io("create directory", &config.dir, e))?;
        let recovered = recover(&config.dir)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&recovered.path)
            .map_err(|e| LedgerError::io("open segment", &recovered.path, e))?;
        let shared = Arc::new(Shared::default());
        let head_seq = recovered.next_seq - 1;
        shared.head_seq.store(head_seq, Ordering::Relaxed);
        shared.durable_seq.store(head_seq, Ordering::Relaxed);
        let now = Instant::now();
        let mut writer = Writer {
            buf: Vec::with_capacity(1 << 20),
            pending: Vec::with_capacity(config.batch_max),
            cfg: config,
            signer,
            shared: Arc::clone(&shared),
            file,
            segment_path: recovered.path,
            segment_len: recovered.len,
            next_seq: recovered.next_seq,
            head: recovered.head,
            since_checkpoint: 0,
            last_checkpoint: now,
            oldest_enqueued: None,
            dirty: false,
            last_sync: now,
        };
        if let Some(reason) = recovered.torn {
            tracing::warn!(target: "lexecon::ledger", %reason, "ledger recovered");
            writer.push(EntryBody::of_draft(&EntryDraft::event(
                EventType::LedgerRecovered,
                reason,
            ))?)?;
            writer.commit(true)?;
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

struct Recovered {
    path: PathBuf,
    len: u64,
    next_seq: u64,
    head: String,
    /// What was truncated, if anything.
    torn: Option<String>,
}

fn recover(dir: &Path) -> Result<Recovered, LedgerError> {
    let segments = list_segments(dir)?;
    let Some(last) = segments.last() else {
        let path = segment_path(dir, 1);
        create_segment(dir, &path)?;
        return Ok(Recovered {
            path,
            len: 0,
            next_seq: 1,
            head: GENESIS_HASH.to_owned(),
            torn: None,
        });
    };
    let bytes = SegmentBytes::read(&last.path)?;
    let mut cursor = ChainCursor::new(None);
    cursor.next_seq = last.first_seq;
    let mut trust_first_link = false;
    if segments.len() > 1 {
        let prev = &segments[segments.len() - 2];
        let prev_bytes = SegmentBytes::read(&prev.path)?;
        let head = prev_bytes
            .lines()
            .last()
            .and_then(split_hash)
            .map(|(_, h)| String::from_utf8_lossy(h).into_owned());
        match head {
            Some(h) => cursor.head = h,
            None => {
                return Err(LedgerError::Corrupt {
                    path: prev.path.clone(),
                    seq: last.first_seq.saturating_sub(1),
                    reason: "the previous segment has no readable final entry".to_owned(),
                })
            }
        }
    } else if last.first_seq != 1 {
        // Older segments were archived: the first entry's link cannot be checked here.
        trust_first_link = true;
    }
    for line in bytes.lines() {
        if trust_first_link {
            if let Ok(entry) = serde_json::from_slice::<LedgerEntry>(line) {
                cursor.head = entry.previous_hash;
            }
            trust_first_link = false;
        }
        if let Err((reason, detail)) = cursor.check(line) {
            return Err(LedgerError::Corrupt {
                path: last.path.clone(),
                seq: cursor.next_seq,
                reason: format!("{reason:?}: {detail}"),
            });
        }
    }
    let mut torn = None;
    if bytes.torn_len() > 0 {
        let file = OpenOptions::new()
            .write(true)
            .open(&last.path)
            .map_err(|e| LedgerError::io("open segment", &last.path, e))?;
        file.set_len(bytes.complete_len as u64)
            .map_err(|e| LedgerError::io("truncate torn line of", &last.path, e))?;
        file.sync_all()
            .map_err(|e| LedgerError::io("fsync", &last.path, e))?;
        torn = Some(format!(
            "truncated a torn final line of {} bytes at byte {} of {} (seq {} was never completed)",
            bytes.torn_len(),
            bytes.complete_len,
            last.path.display(),
            cursor.next_seq
        ));
    }
    Ok(Recovered {
        path: last.path.clone(),
        len: bytes.complete_len as u64,
        next_seq: cursor.next_seq,
        head: cursor.head,
        torn,
    })
}

fn create_segment(dir: &Path, path: &Path) -> Result<File, LedgerError> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .map_err(|e| LedgerError::io("create segment", path, e))?;
    // The new file's directory entry must be durable too.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LedgerError::io("fsync directory", dir, e))?;
    Ok(file)
}

struct Writer {
    cfg: LedgerConfig,
    signer: Option<CheckpointSigner>,
    shared: Arc<Shared>,
    file: File,
    segment_path: PathBuf,
    segment_len: u64,
    next_seq: u64,
    head: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Lines not yet written to the file.
    buf: Vec<u8>,
    /// Receipts to resolve once the batch is written (`async`) or fsynced (`sync`).
    pending: Vec<(oneshot::Sender<AckResult>, Appended)>,
    oldest_enqueued: Option<Instant>,
    /// Written but not fsynced.
    dirty: bool,
    last_sync: Instant,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        if let Err(err) = self.run_inner(&mut rx) {
            let reason = err.to_string();
            tracing::error!(target: "lexecon::ledger", error = %reason, "ledger writer failed; appends now fail");
            self.shared.failed.store(true, Ordering::Relaxed);
            for (ack, _) in self.pending.drain(..) {
                let _ = ack.send(Err(reason.clone()));
            }
            rx.close();
            let mut rejected = 0u64;
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Msg::Append { ack, .. } => {
                        rejected += 1;
                        let _ = ack.send(Err(reason.clone()));
                    }
                    Msg::Flush(ack) | Msg::Shutdown(ack) => {
                        let _ = ack.send(Err(reason.clone()));
                    }
                    Msg::Pause { .. } | Msg::Tick => {}
                }
            }
            if rejected > 0 {
                tracing::error!(target: "lexecon::ledger", rejected, "queued ledger entries were not recorded");
            }
        }
    }

    fn run_inner(&mut self, rx: &mut mpsc::Receiver<Msg>) -> Result<(), LedgerError> {
        let mut batch = Vec::with_capacity(self.cfg.batch_max);
        let mut shutdown_acks = Vec::new();
        // Only to wait for the queue with a timeout; this thread runs no other task on it.
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| LedgerError::io("start the writer's timer", PathBuf::new(), e))?;
        loop {
            let first = if self.dirty {
                match rx.try_recv() {
                    Ok(m) => m,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // Idle with unsynced entries (`async`): take entries as they arrive until
                        // `flush_interval` has passed since the last sync, then sync. Syncing at every
                        // idle moment cost an fdatasync every few requests at moderate load (about
                        // 900/s measured with benches/load.sh).
                        let wait = self
                            .cfg
                            .flush_interval
                            .saturating_sub(self.last_sync.elapsed());
                        if wait.is_zero() {
                            self.commit(true)?;
                            continue;
                        }
                        match timer.block_on(async { tokio::time::timeout(wait, rx.recv()).await })
                        {
                            Ok(Some(m)) => m,
                            Ok(None) => break,
                            Err(_elapsed) => {
                                self.commit(true)?;
                                continue;
                            }
                        }
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.blocking_recv() {
                    Some(m) => m,
                    None => break,
                }
            };
            batch.push(first);
            while batch.len() < self.cfg.batch_max {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let linger = self.cfg.durability == Durability::Async
                && !self.cfg.linger().is_zero()
                && shutdown_acks.is_empty()
                && batch.iter().any(|m| matches!(m, Msg::Append { .. }));
            for msg in batch.drain(..) {
                match msg {
                    Msg::Append {
                        body,
                        ack,
                        enqueued,
                    } => {
                        self.oldest_enqueued.get_or_insert(enqueued);
                        match self.push(body) {
                            Ok(appended) => self.pending.push((ack, appended)),
                            Err(LedgerError::Serialize(e)) => {
                                let _ = ack.send(Err(format!("cannot serialize entry: {e}")));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    Msg::Tick => {
                        if !self.cfg.checkpoint_interval.is_zero()
                            && self.since_checkpoint > 0
                            && self.last_checkpoint.elapsed() >= self.cfg.checkpoint_interval
                        {
                            self.push_checkpoint()?;
                        }
                    }
                    Msg::Flush(ack) => {
                        self.commit(true)?;
                        let _ = ack.send(Ok(()));
                    }
                    Msg::Pause { ack, resume } => {
                        self.commit(true)?;
                        let _ = ack.send(());
                        // Returns when the guard is dropped.
                        let _ = resume.recv();
                    }
                    Msg::Shutdown(ack) => {
                        // Take what is already queued, accept nothing new.
                        rx.close();
                        shutdown_acks.push(ack);
                    }
                }
            }
            let sync_now = self.cfg.durability == Durability::Sync
                || self.last_sync.elapsed() >= self.cfg.flush_interval;
            self.commit(sync_now)?;
            if linger && shutdown_acks.is_empty() {
                // Let entries gather: senders meanwhile only queue (the receiver is not waiting,
                // so nothing wakes this thread), instead of a thread wake-up per entry. A caller
                // that waits for a receipt, a flush or a shutdown unparks it at once.
                std::thread::park_timeout(self.cfg.linger());
            }
        }
        if self.since_checkpoint > 0 {
            self.push_checkpoint()?;
        }
        self.commit(true)?;
        for ack in shutdown_acks {
            let _ = ack.send(Ok(()));
        }
        Ok(())
    }

    /// Chains one entry into the batch buffer.
    fn push(&mut self, body: EntryBody) -> Result<Appended, LedgerError> {
        let appended = self.push_body(&body)?;
        self.since_checkpoint += 1;
        if self.cfg.checkpoint_every > 0 && self.since_checkpoint >= self.cfg.checkpoint_every {
            self.push_checkpoint()?;
        }
        Ok(appended)
    }

    fn push_body(&mut self, body: &EntryBody) -> Result<Appended, LedgerError> {
        if self.segment_len + self.buf.len() as u64 >= self.cfg.segment_max_bytes {
            self.rotate()?;
        }
        let seq = self.next_seq;
        let entry_hash = write_body_line(seq, body, &self.head, &mut self.buf);
        self.next_seq += 1;
        self.head.clone_from(&entry_hash);
        self.shared.appended.fetch_add(1, Ordering::Relaxed);
        Ok(Appended { seq, entry_hash })
    }

    fn push_checkpoint(&mut self) -> Result<(), LedgerError> {
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        let seq = self.next_seq;
        let signature = signer.key.sign(&checkpoint_message(seq, &self.head));
        let draft = EntryDraft::event(
            EventType::Checkpoint,
            format!("signed chain head after seq {}", seq - 1),
        );
        let signature =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.to_bytes());
        let body = EntryBody::of_checkpoint(&draft, &signer.key_id, &signature)?;
        self.push_body(&body)?;
        self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the buffered lines, fsyncs the current segment, and continues in a new one.
    fn rotate(&mut self) -> Result<(), LedgerError> {
        self.commit(true)?;
        let path = segment_path(&self.cfg.dir, self.next_seq);
        self.file = create_segment(&self.cfg.dir, &path)?;
        self.segment_path = path;
        self.segment_len = 0;
        Ok(())
    }

    /// Writes the buffer; fsyncs when `sync`; resolves the receipts the durability mode allows.
    fn commit(&mut self, sync: bool) -> Result<(), LedgerError> {
        if !self.buf.is_empty() {
            self.file
                .write_all(&self.buf)
                .map_err(|e| LedgerError::io("write", &self.segment_path, e))?;
            self.segment_len += self.buf.len() as u64;
            self.buf.clear();
            self.dirty = true;
            self.shared
                .head_seq
                .store(self.next_seq - 1, Ordering::Relaxed);
        }
        // `async`: an entry is acknowledged once it is in the file, before the fdatasync below, so
        // no request waits for the disk. `sync`: only once it is durable.
        if self.cfg.durability == Durability::Async {
            self.acknowledge();
        }
        if sync && self.dirty {
            self.file
                .sync_data()
                .map_err(|e| LedgerError::io("fdatasync", &self.segment_path, e))?;
            self.dirty = false;
            self.last_sync = Instant::now();
            self.shared
                .durable_seq
                .store(self.next_seq - 1, Ordering::Relaxed);
        }
        if !self.dirty {
            self.acknowledge();
        }
        Ok(())
    }

    /// Resolves the receipts of every entry written so far.
    fn acknowledge(&mut self) {
        if let Some(t) = self.oldest_enqueued.take() {
            let micros = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.shared.lag_micros.store(micros, Ordering::Relaxed);
        }
        for (ack, appended) in self.pending.drain(..) {
            let _ = ack.send(Ok(appended));
        }
    }
}
