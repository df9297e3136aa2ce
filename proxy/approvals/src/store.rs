//! The persisted store of approvals: a SQLite database (`approvals.sqlite3`, WAL, `synchronous =
//! FULL`) with one row per approval, each state change committed in one transaction before it is
//! acknowledged — only the rows that changed, not the whole set — and rolled back in memory when
//! it cannot be. A store still in the old `approvals.json` is imported on open (then renamed
//! `approvals.json.migrated`). Blocking I/O: async callers use [`ApprovalStore::run_blocking`].
//! Never reads a clock (`now` is passed in) and never decides anything but an approval's own state.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use lexecon_domains::Verdict;
use lexecon_policy_cache::Decision;
use serde::Deserialize;

use crate::{
    Approval, ApprovalError, ApprovalEvent, ApprovalEventKind, ApprovalSettings, ApprovalStatus,
    Approver, RequestDigest, APPROVER_ROLE, LEGACY_STORE_FILE, STORE_FILE,
};

/// The version of the legacy `approvals.json`.
const STORE_VERSION: u32 = 1;
/// The schema version of the database (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;
/// How long a write waits for another connection's lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    approvals: Vec<Approval>,
}

/// The approvals of one node, persisted in its data directory. Share it as `Arc<ApprovalStore>`.
#[derive(Debug)]
pub struct ApprovalStore {
    path: PathBuf,
    ttl: SignedDuration,
    retention: SignedDuration,
    max_pending: usize,
    max_pending_per_actor: usize,
    max_stored: usize,
    approvals: Mutex<BTreeMap<String, Approval>>,
    /// Locked only inside `mutate`, after `approvals` (one order: no deadlock).
    db: Mutex<rusqlite::Connection>,
}

impl ApprovalStore {
    /// Opens (creating if needed) the store in `data_dir`, reloading `approvals.json` if present.
    /// A file that cannot be read or parsed is an error, never silently an empty store.
    pub fn open(data_dir: &Path, config: ApprovalSettings) -> Result<Self, ApprovalError> {
        let to_signed = |d: Duration, name: &str| {
            SignedDuration::try_from(d).map_err(|e| ApprovalError::InvalidConfig {
                reason: format!("{name} {d:?} is out of range: {e}"),
            })
        };
        let ttl = to_signed(config.ttl, "ttl")?;
        if ttl.is_zero() {
            return Err(ApprovalError::InvalidConfig {
                reason: "ttl must be greater than zero".into(),
            });
        }
        let retention = to_signed(config.retention, "retention")?;
        let path = data_dir.join(STORE_FILE);
        fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, e))?;
        let db = open_db(&path)?;
        let mut approvals = load(&db, &path)?;
        let legacy = data_dir.join(LEGACY_STORE_FILE);
        if approvals.is_empty() {
            if let Some(imported) = read_legacy(&legacy)? {
                write_rows(&db, &path, imported.values(), std::iter::empty())?;
                let done = legacy.with_extension("json.migrated");
                fs::rename(&legacy, &done).map_err(|e| io_error(&legacy, e))?;
                tracing::info!(target: "lexecon::approvals", from = %legacy.display(), to = %path.display(), approvals = imported.len(), "imported the approvals of the old JSON store");
                approvals = imported;
            }
        }
        Ok(Self {
            path,
            ttl,
            retention,
            max_pending: config.max_pending,
            max_pending_per_actor: config.max_pending_per_actor,
            max_stored: config.max_stored.max(1),
            approvals: Mutex::new(approvals),
            db: Mutex::new(db),
        })
    }

    /// The file the store persists to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a pending approval for an escalated `decision` of the request with `digest`.
    pub fn create(
        &self,
        decision: &Decision,
        digest: RequestDigest,
        now: Timestamp,
    ) -> Result<(Approval, ApprovalEvent), ApprovalError> {
        if decision.decision != Verdict::Escalate {
            return Err(ApprovalError::NotEscalated {
                decision_id: decision.decision_id.clone(),
                verdict: decision.decision.as_str(),
            });
        }
        let expires = now
            .checked_add(self.ttl)
            .map_err(|e| ApprovalError::InvalidConfig {
                reason: format!("ttl pushes the expiry past the supported range: {e}"),
            })?;
        self.mutate(now, |map| {
            let (mut pending, mut mine) = (0, 0);
            for a in map.values() {
                if a.status_at(now) == ApprovalStatus::Pending {
                    pending += 1;
                    mine += usize::from(a.actor == decision.actor);
                }
            }
            // One actor's flood must not use up everyone's budget: its own cap comes first.
            if mine >= self.max_pending_per_actor {
                return Err(ApprovalError::ActorLimit {
                    actor: decision.actor.clone(),
                    limit: self.max_pending_per_actor,
                });
            }
            if pending >= self.max_pending {
                return Err(ApprovalError::TooManyPending {
                    limit: self.max_pending,
                });
            }
            make_room(map, self.max_stored, now)?;
            let approval = Approval {
                id: format!("apr_{}", uuid::Uuid::new_v4().simple()),
                domain: decision.domain.clone(),
                actor: decision.actor.clone(),
                action: decision.action.clone(),
                resource: decision.resource.clone(),
                reason: decision.reasoning.to_string(),
                rule_id: decision.rule_id.to_string(),
                decision_id: decision.decision_id.clone(),
                request_digest: digest,
                created: now,
                expires,
                status: ApprovalStatus::Pending,
                decided_by: None,
                decided_at: None,
                comment: None,
                consumed_at: None,
            };
            let event = ApprovalEvent::new(ApprovalEventKind::Created, &approval, None, now);
            map.insert(approval.id.clone(), approval.clone());
            Ok((approval, event))
        })
    }

    /// The approval `id` as of `now`.
    pub fn get(&self, id: &str, now: Timestamp) -> Result<Approval, ApprovalError> {
        self.lock()
            .get(id)
            .map(|a| a.view(now))
            .ok_or_else(|| ApprovalError::NotFound { id: id.to_owned() })
    }

    /// All approvals (or those with `status` as of `now`), oldest first.
    pub fn list(&self, status: Option<ApprovalStatus>, now: Timestamp) -> Vec<Approval> {
        let mut out: Vec<Approval> = self
            .lock()
            .values()
            .map(|a| a.view(now))
            .filter(|a| status.is_none_or(|s| a.status == s))
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Approves a pending approval. The approver must carry the `approver` role and must not be the
    /// approval's actor (neither its full reference nor its instance part).
    pub fn approve(
        &self,
        id: &str,
        approver: Approver<'_>,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<(Approval, ApprovalEvent), ApprovalError> {
        self.decide(id, approver, comment, now, ApprovalStatus::Approved)
    }

    /// Denies a pending approval; same rules as [`ApprovalStore::approve`].
    pub fn deny(
        &self,
        id: &str,
        approver: Approver<'_>,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<(Approval, ApprovalEvent), ApprovalError> {
        self.decide(id, approver, comment, now, ApprovalStatus::Denied)
    }

    fn decide(
        &self,
        id: &str,
        approver: Approver<'_>,
        comment: Option<String>,
        now: Timestamp,
        to: ApprovalStatus,
    ) -> Result<(Approval, ApprovalEvent), ApprovalError> {
        if !approver.roles.iter().any(|r| r == APPROVER_ROLE) {
            return Err(ApprovalError::NotApprover {
                approver: approver.id.to_owned(),
            });
        }
        self.mutate(now, |map| {
            let a = map
                .get_mut(id)
                .ok_or_else(|| ApprovalError::NotFound { id: id.to_owned() })?;
            if is_same_principal(approver.id, &a.actor) {
                return Err(ApprovalError::SelfApproval {
                    id: id.to_owned(),
                    approver: approver.id.to_owned(),
                    actor: a.actor.clone(),
                });
            }
            let status = a.status_at(now);
            if status != ApprovalStatus::Pending {
                return Err(ApprovalError::NotPending {
                    id: id.to_owned(),
                    status,
                });
            }
            a.status = to;
            a.decided_by = Some(approver.id.to_owned());
            a.decided_at = Some(now);
            a.comment = comment;
            let kind = if to == ApprovalStatus::Approved {
                ApprovalEventKind::Approved
            } else {
                ApprovalEventKind::Denied
            };
            Ok((
                a.clone(),
                ApprovalEvent::new(kind, a, Some(approver.id), now),
            ))
        })
    }

    /// Redeems an approved approval for the retried request: only for the same actor, action,
    /// resource and request digest, before expiry, and only once. Every other case is an error
    /// whose message is the reason to deny the retry.
    pub fn consume(
        &self,
        id: &str,
        actor: &str,
        action: &str,
        resource: Option<&str>,
        digest: &RequestDigest,
        now: Timestamp,
    ) -> Result<ApprovalEvent, ApprovalError> {
        self.mutate(now, |map| {
            let a = map
                .get_mut(id)
                .ok_or_else(|| ApprovalError::NotFound { id: id.to_owned() })?;
            let mismatch = |field| ApprovalError::Mismatch {
                id: id.to_owned(),
                field,
            };
            if a.actor != actor {
                return Err(mismatch("actor"));
            }
            if a.action != action {
                return Err(mismatch("action"));
            }
            if a.resource.as_deref() != resource {
                return Err(mismatch("resource"));
            }
            if a.request_digest != *digest {
                return Err(mismatch("request (its method, path or body differ)"));
            }
            match a.status_at(now) {
                ApprovalStatus::Approved => {}
                ApprovalStatus::Pending => {
                    return Err(ApprovalError::StillPending { id: id.to_owned() })
                }
                ApprovalStatus::Denied => {
                    return Err(ApprovalError::WasDenied {
                        id: id.to_owned(),
                        by: a.decided_by.clone().unwrap_or_default(),
                        comment: a.comment.clone(),
                    })
                }
                ApprovalStatus::Consumed => {
                    return Err(ApprovalError::AlreadyConsumed {
                        id: id.to_owned(),
                        at: a.consumed_at.unwrap_or(a.created),
                    })
                }
                ApprovalStatus::Expired => {
                    return Err(ApprovalError::Expired {
                        id: id.to_owned(),
                        expired_at: a.expires,
                    })
                }
            }
            a.status = ApprovalStatus::Consumed;
            a.consumed_at = Some(now);
            Ok(ApprovalEvent::new(
                ApprovalEventKind::Consumed,
                a,
                Some(actor),
                now,
            ))
        })
    }

    /// Marks every pending or approved approval past its expiry as expired (persisted), returning
    /// one `expired` event each. Call it periodically; reads report expiry even before it runs.
    pub fn expire_due(&self, now: Timestamp) -> Result<Vec<ApprovalEvent>, ApprovalError> {
        self.mutate(now, |map| {
            let mut events = Vec::new();
            for a in map.values_mut() {
                if matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved)
                    && a.status_at(now) == ApprovalStatus::Expired
                {
                    a.status = ApprovalStatus::Expired;
                    events.push(ApprovalEvent::new(
                        ApprovalEventKind::Expired,
                        a,
                        None,
                        a.expires,
                    ));
                }
            }
            Ok(events)
        })
    }

    /// Runs `f` on a blocking thread: use it from async code for the calls that write to disk.
    pub async fn run_blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApprovalError>
    where
        T: Send + 'static,
        F: FnOnce(&ApprovalStore) -> Result<T, ApprovalError> + Send + 'static,
    {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApprovalError::Internal {
                reason: e.to_string(),
            })?
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Approval>> {
        // No code path panics while holding the lock; if one ever did, the map is still whole.
        self.approvals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `f`, drops finished approvals past retention, commits the rows that changed in one
    /// transaction; restores the previous state if `f` fails or the commit fails.
    fn mutate<T>(
        &self,
        now: Timestamp,
        f: impl FnOnce(&mut BTreeMap<String, Approval>) -> Result<T, ApprovalError>,
    ) -> Result<T, ApprovalError> {
        let mut map = self.lock();
        let before = map.clone();
        let result = f(&mut map).and_then(|out| {
            let retention = self.retention;
            map.retain(|_, a| {
                !finished(a, now) || a.expires.checked_add(retention).is_ok_and(|t| t > now)
            });
            let changed = map
                .iter()
                .filter(|(id, a)| before.get(*id) != Some(*a))
                .map(|(_, a)| a);
            let removed = before.keys().filter(|id| !map.contains_key(*id));
            let db = self.db.lock().unwrap_or_else(PoisonError::into_inner);
            write_rows(&db, &self.path, changed, removed)?;
            Ok(out)
        });
        if result.is_err() {
            *map = before;
        }
        result
    }
}

/// Whether `a` is over as of `now` (denied, consumed or expired): nothing can redeem it.
fn finished(a: &Approval, now: Timestamp) -> bool {
    !matches!(
        a.status_at(now),
        ApprovalStatus::Pending | ApprovalStatus::Approved
    )
}

/// Makes room for one more approval within `max_stored`: drops the oldest finished approvals
/// (their retention cut short; an id dropped is answered `approval_not_found`, never a permit),
/// and refuses ([`ApprovalError::StoreFull`]) when there are not enough of them. A pending or
/// approved approval is never dropped.
fn make_room(
    map: &mut BTreeMap<String, Approval>,
    max_stored: usize,
    now: Timestamp,
) -> Result<(), ApprovalError> {
    let Some(excess) = (map.len() + 1).checked_sub(max_stored).filter(|n| *n > 0) else {
        return Ok(());
    };
    let mut done: Vec<(Timestamp, String)> = map
        .iter()
        .filter(|(_, a)| finished(a, now))
        .map(|(id, a)| (a.created, id.clone()))
        .collect();
    if done.len() < excess {
        return Err(ApprovalError::StoreFull { limit: max_stored });
    }
    if excess < done.len() {
        done.select_nth_unstable(excess);
    }
    for (_, id) in done.iter().take(excess) {
        map.remove(id);
    }
    Ok(())
}

/// Opens (creating) the database: WAL, full sync, the schema, a busy timeout.
fn open_db(path: &Path) -> Result<rusqlite::Connection, ApprovalError> {
    let db = rusqlite::Connection::open(path).map_err(|e| db_error(path, &e))?;
    let setup = || -> rusqlite::Result<i64> {
        db.busy_timeout(BUSY_TIMEOUT)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS approvals (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL)",
        )?;
        db.pragma_query_value(None, "user_version", |row| row.get(0))
    };
    let version = setup().map_err(|e| corrupt(path, e.to_string()))?;
    match version {
        0 => db
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| db_error(path, &e))?,
        SCHEMA_VERSION => {}
        other => {
            return Err(corrupt(
                path,
                format!("schema version {other} is not supported (expected {SCHEMA_VERSION})"),
            ))
        }
    }
    Ok(db)
}

/// Every approval in the database; a row that does not parse is an error naming it.
fn load(
    db: &rusqlite::Connection,
    path: &Path,
) -> Result<BTreeMap<String, Approval>, ApprovalError> {
    let mut statement = db
        .prepare("SELECT id, body FROM approvals")
        .map_err(|e| corrupt(path, e.to_string()))?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(|e| corrupt(path, e.to_string()))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (id, body) = row.map_err(|e| corrupt(path, e.to_string()))?;
        let approval: Approval = serde_json::from_str(&body)
            .map_err(|e| corrupt(path, format!("approval {id}: {e}")))?;
        out.insert(id, approval);
    }
    Ok(out)
}

/// Upserts `changed` and deletes `removed` in one transaction.
fn write_rows<'a>(
    db: &rusqlite::Connection,
    path: &Path,
    changed: impl Iterator<Item = &'a Approval>,
    removed: impl Iterator<Item = &'a String>,
) -> Result<(), ApprovalError> {
    let write = || -> Result<(), ApprovalError> {
        let tx = db.unchecked_transaction().map_err(|e| db_error(path, &e))?;
        for approval in changed {
            let body = serde_json::to_string(approval).map_err(|e| ApprovalError::Io {
                path: path.display().to_string(),
                message: format!("serialization failed: {e}"),
            })?;
            tx.execute(
                "INSERT INTO approvals (id, body) VALUES (?1, ?2) \
                 ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                (&approval.id, &body),
            )
            .map_err(|e| db_error(path, &e))?;
        }
        for id in removed {
            tx.execute("DELETE FROM approvals WHERE id = ?1", [id])
                .map_err(|e| db_error(path, &e))?;
        }
        tx.commit().map_err(|e| db_error(path, &e))
    };
    write()
}

/// The approvals of a legacy `approvals.json`, if there is one.
fn read_legacy(path: &Path) -> Result<Option<BTreeMap<String, Approval>>, ApprovalError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, e)),
    };
    let file: StoreFile =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(path, e.to_string()))?;
    if file.version != STORE_VERSION {
        return Err(corrupt(
            path,
            format!(
                "version {} is not supported (expected {STORE_VERSION})",
                file.version
            ),
        ));
    }
    Ok(Some(
        file.approvals
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect(),
    ))
}

fn corrupt(path: &Path, message: String) -> ApprovalError {
    ApprovalError::Corrupt {
        path: path.display().to_string(),
        message,
    }
}

fn db_error(path: &Path, e: &rusqlite::Error) -> ApprovalError {
    ApprovalError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> ApprovalError {
    ApprovalError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Whether `principal` (a JWT subject) is the approval's `actor`: the same reference, or the
/// instance part of `type:instance`.
fn is_same_principal(principal: &str, actor: &str) -> bool {
    principal == actor
        || actor
            .split_once(':')
            .is_some_and(|(_, inst)| inst == principal)
}
