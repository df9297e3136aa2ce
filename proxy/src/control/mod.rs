//! The control plane's side in a sidecar: which bundle is in force, and how a new one gets in.
//!
//! A bundle (`lexecon_config::bundle`) arrives by push (`PUT /admin/v1/bundle`, [`endpoints`]),
//! by pull ([`pull`]), or from the data directory at start (the last good one, persisted). Each
//! goes through one [`Runtime::apply`]: parse, verify the signature against the keys of the
//! node's own `control_plane.trusted_keys`, check validity window and revision (rollback guard),
//! unpack into the data directory, merge with the node-local settings, build the policies and the
//! proxy snapshot, and only then swap — one store, one swap; on any error nothing changes and the
//! reason is returned, recorded and shown in `/admin/v1/status`.
//!
//! Owns the active bundle's record, the status and the control-plane metrics. Never runs on the
//! request path; an apply holds its lock (a std mutex) only on a blocking thread, never across an
//! await.

pub mod endpoints;
pub mod pull;
pub mod push;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ed25519_dalek::VerifyingKey;
use jiff::Timestamp;
use lexecon_config::file::Config;
use lexecon_config::sections::ControlPlaneSettings;
use lexecon_config::{Bundle, BundleError};
use lexecon_ledger::EventType;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use serde_json::{json, Value};

use crate::engine::Engine;
use crate::run::Source;
use crate::server::{ProxySnapshot, ProxyState};

/// The persisted last good bundle, under `<data_dir>/bundles/`.
const ACTIVE_FILE: &str = "active.tar.gz";

/// Settings read from the node's own file only; a bundle that sets one is told so.
const NODE_LOCAL: &[&str] = &["node_id", "data_dir", "listeners", "server", "telemetry"];

/// How a bundle arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Push,
    Pull,
    /// The last good bundle, loaded from the data directory at start.
    Persisted,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Push => "push",
            Via::Pull => "pull",
            Via::Persisted => "persisted",
        }
    }
}

/// A bundle refused, with the status a push answers and a reason a person can act on.
#[derive(Debug, Clone)]
pub struct Refused {
    pub status: u16,
    pub code: &'static str,
    pub reason: String,
}

impl Refused {
    fn new(status: u16, code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            code,
            reason: reason.into(),
        }
    }
}

impl From<BundleError> for Refused {
    fn from(e: BundleError) -> Self {
        Refused::new(e.status(), e.code(), e.to_string())
    }
}

/// The bundle in force.
#[derive(Debug, Clone)]
pub struct Active {
    pub revision: u64,
    pub hash: String,
    pub kid: String,
    pub created_at: Timestamp,
    pub via: Via,
    pub loaded_at: Timestamp,
    /// Where its parts were unpacked (its config's relative paths point here).
    pub dir: PathBuf,
    /// `policy_version_hash` of each domain's policy.
    pub policy_hashes: BTreeMap<String, String>,
    /// Settings this bundle changes that take effect only after a restart.
    pub needs_restart: Vec<String>,
    /// Node-local settings the bundle named; the node's own file decides them.
    pub ignored: Vec<String>,
}

/// What an apply changed: the answer of a push.
#[derive(Debug, Clone)]
pub struct Applied {
    pub before: Option<u64>,
    pub before_hashes: BTreeMap<String, String>,
    pub active: Active,
}

impl Applied {
    pub fn to_json(&self) -> Value {
        json!({
            "status": "applied",
            "revision_before": self.before,
            "revision": self.active.revision,
            "bundle_hash": self.active.hash,
            "signed_by": self.active.kid,
            "policy_hashes_before": self.before_hashes,
            "policy_hashes": self.active.policy_hashes,
            "needs_restart": self.active.needs_restart,
            "ignored_node_local": self.active.ignored,
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    active: Option<Active>,
    /// The last refusal or failed poll, and when.
    last_error: Option<(String, Timestamp)>,
    last_poll_ok: Option<Timestamp>,
    next_poll: Option<Timestamp>,
    /// The ETag of the last bundle pulled (a 304 costs nothing).
    etag: Option<String>,
    /// Settings of the configuration in force that differ from the running process's and wait
    /// for a restart (listeners, data_dir, ledger, …).
    needs_restart: Vec<String>,
}

/// The control-plane metrics.
struct Counters {
    revision: IntGauge,
    swaps: IntCounter,
    rejections: IntCounterVec,
    last_poll_ok: IntGauge,
}

impl Counters {
    fn new() -> prometheus::Result<Self> {
        Ok(Self {
            revision: IntGauge::new(
                "lexecon_bundle_revision",
                "Revision of the bundle in force (0: none)",
            )?,
            swaps: IntCounter::new(
                "lexecon_bundle_swaps_total",
                "Bundles applied (snapshot swapped)",
            )?,
            rejections: IntCounterVec::new(
                Opts::new(
                    "lexecon_bundle_rejections_total",
                    "Bundles refused, by reason",
                ),
                &["reason"],
            )?,
            last_poll_ok: IntGauge::new(
                "lexecon_bundle_last_successful_poll_timestamp_seconds",
                "Unix time of the last poll that reached the bundle store (seconds since: time() - this)",
            )?,
        })
    }
}

/// The control plane of one running sidecar.
pub struct Runtime {
    source: Source,
    settings: Option<ControlPlaneSettings>,
    trusted: BTreeMap<String, VerifyingKey>,
    data_dir: PathBuf,
    /// The configuration the process started with: restart-only settings are compared with it.
    started_with: Config,
    engine: OnceLock<Arc<Engine>>,
    state: OnceLock<Arc<ProxyState>>,
    inner: Mutex<Inner>,
    counters: Option<Counters>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("trusted", &self.trusted.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What [`Runtime::boot`] settled on before anything starts.
pub struct Boot {
    pub runtime: Arc<Runtime>,
    /// The configuration to start with: the node's file merged with the persisted bundle.
    pub config: Config,
    /// Why every request is refused, when a bundle is required and none could be loaded.
    pub closed: Option<String>,
    /// Ledger events to record once the engine runs (the persisted bundle's load or refusal).
    pub events: Vec<(EventType, String)>,
}

/// The control-plane public keys of `settings`, by key id.
pub fn trusted_keys(
    settings: &ControlPlaneSettings,
) -> anyhow::Result<BTreeMap<String, VerifyingKey>> {
    let mut keys = BTreeMap::new();
    for path in &settings.trusted_keys {
        let key = lexecon_keys::read_verifying_key(path)
            .map_err(|e| anyhow::anyhow!("control_plane.trusted_keys: {e}"))?;
        keys.insert(lexecon_keys::key_id(&key), key);
    }
    Ok(keys)
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A poisoned lock only means a panic elsewhere mid-update; the record is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A path a bundle's configuration names must stay inside the bundle.
fn inside_bundle(path: &Path) -> bool {
    path.is_relative()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The node's file merged with a bundle unpacked in `dir`: the bundle decides routes, upstreams,
/// identity, limits, policies and packs (and restart-only sections when it sets them); the node's
/// file decides `node_id`, `data_dir`, `listeners`, `server`, `telemetry` and `control_plane`.
/// Returns the merged configuration and the node-local keys the bundle named.
pub fn merge(local: &Config, dir: &Path, revision: u64) -> Result<(Config, Vec<String>), Refused> {
    let file = format!("<bundle r{revision}>/config.yaml");
    let path = dir.join(lexecon_config::bundle::CONFIG_PART);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Refused::new(400, "malformed", format!("{file}: {e}")))?;
    let invalid = |reason: String| Refused::new(422, "invalid_config", reason);
    let document: Value =
        serde_norway::from_str(&text).map_err(|e| invalid(format!("{file}: not YAML: {e}")))?;
    let keys: Vec<String> = document
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if keys.iter().any(|k| k == "control_plane") {
        return Err(invalid(format!(
            "{file}: control_plane: a bundle cannot set it (which keys are trusted is the node's own setting)"
        )));
    }
    let mut config = Config::from_yaml(&file, &text).map_err(|e| invalid(e.to_string()))?;
    let escaping: Vec<String> = config
        .policies
        .iter()
        .map(|(d, p)| (format!("policies.{d}"), p))
        .chain(
            config
                .domain_packs
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("domain_packs[{i}]"), p)),
        )
        .filter(|(_, p)| !inside_bundle(p))
        .map(|(field, p)| {
            format!(
                "{file}: {field}: {} is not a path inside the bundle",
                p.display()
            )
        })
        .collect();
    if !escaping.is_empty() {
        return Err(invalid(escaping.join("\n")));
    }
    config.resolve_paths(dir);
    let ignored: Vec<String> = keys
        .iter()
        .filter(|k| NODE_LOCAL.contains(&k.as_str()))
        .cloned()
        .collect();
    config.node_id.clone_from(&local.node_id);
    config.data_dir.clone_from(&local.data_dir);
    config.listeners = local.listeners.clone();
    config.server = local.server.clone();
    config.telemetry = local.telemetry.clone();
    config.control_plane = local.control_plane.clone();
    if !keys.iter().any(|k| k == "ledger") {
        config.ledger = local.ledger.clone();
    }
    if !keys.iter().any(|k| k == "tokens") {
        config.tokens = local.tokens.clone();
    }
    if !keys.iter().any(|k| k == "api") {
        config.api = local.api.clone();
    }
    config.validate().map_err(|e| invalid(e.to_string()))?;
    Ok((config, ignored))
}

/// The settings in which `next` differs from `running` that only a restart applies: the node's
/// listeners, data directory, server and telemetry, and the ledger, tokens and API sections.
fn needs_restart(running: &Config, next: &Config) -> Vec<String> {
    let differs = [
        ("node_id", running.node_id != next.node_id),
        ("data_dir", running.data_dir != next.data_dir),
        ("listeners", running.listeners != next.listeners),
        ("server", running.server != next.server),
        ("telemetry", running.telemetry != next.telemetry),
        ("ledger", running.ledger != next.ledger),
        ("tokens", running.tokens != next.tokens),
        ("api", running.api != next.api),
    ];
    differs
        .into_iter()
        .filter(|(_, d)| *d)
        .map(|(k, _)| k.to_owned())
        .collect()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Runtime {
    fn bundles_dir(&self) -> PathBuf {
        self.data_dir.join("bundles")
    }

    /// Reads the node's configuration and, when it names a control plane, its trusted keys and
    /// the persisted last good bundle: the configuration to start with, and whether to start
    /// closed. Blocking; call before the engine starts.
    pub fn boot(source: Source, local: Config) -> anyhow::Result<Boot> {
        let trusted = match &local.control_plane {
            Some(cp) => trusted_keys(cp)?,
            None => BTreeMap::new(),
        };
        let counters = match &local.control_plane {
            Some(_) => Some(Counters::new()?),
            None => None,
        };
        let mut runtime = Runtime {
            source,
            settings: local.control_plane.clone(),
            trusted,
            data_dir: local.data_dir.clone(),
            started_with: local.clone(),
            engine: OnceLock::new(),
            state: OnceLock::new(),
            inner: Mutex::new(Inner::default()),
            counters,
        };
        let mut events = Vec::new();
        let mut config = local.clone();
        let mut closed = None;
        if let Some(settings) = runtime.settings.clone() {
            let persisted = runtime.bundles_dir().join(ACTIVE_FILE);
            match std::fs::read(&persisted) {
                Ok(bytes) => match runtime.prepare(&bytes, &local, None) {
                    Ok((bundle, merged, ignored, dir)) => {
                        let m = bundle.manifest();
                        events.push((
                            EventType::PolicyLoaded,
                            format!(
                                "bundle revision {} ({}) loaded from {} at start",
                                m.revision,
                                bundle.hash(),
                                persisted.display()
                            ),
                        ));
                        lock(&runtime.inner).active = Some(Active {
                            revision: m.revision,
                            hash: bundle.hash(),
                            kid: bundle
                                .verify(&runtime.trusted)
                                .unwrap_or_default()
                                .to_owned(),
                            created_at: m.created_at,
                            via: Via::Persisted,
                            loaded_at: Timestamp::now(),
                            dir,
                            policy_hashes: BTreeMap::new(),
                            needs_restart: Vec::new(),
                            ignored,
                        });
                        config = merged;
                    }
                    Err(refused) => {
                        tracing::error!(reason = %refused.reason, "the persisted bundle is not loaded");
                        events.push((
                            EventType::BundleRejected,
                            format!("persisted bundle refused at start: {}", refused.reason),
                        ));
                        lock(&runtime.inner).last_error =
                            Some((refused.reason.clone(), Timestamp::now()));
                        if settings.requires_bundle() {
                            closed = Some(format!(
                                "no policy bundle in force: the persisted bundle was refused ({}); waiting for the control plane",
                                refused.reason
                            ));
                        }
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if settings.requires_bundle() {
                        closed = Some(
                            "no policy bundle in force yet: waiting for the control plane (push or pull)"
                                .to_owned(),
                        );
                    }
                }
                Err(e) => anyhow::bail!("cannot read {}: {e}", persisted.display()),
            }
        }
        runtime.started_with = config.clone();
        Ok(Boot {
            runtime: Arc::new(runtime),
            config,
            closed,
            events,
        })
    }

    /// Where the node's own configuration comes from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Whether the node has a control plane (trusted keys).
    pub fn enabled(&self) -> bool {
        self.settings.is_some()
    }

    pub fn settings(&self) -> Option<&ControlPlaneSettings> {
        self.settings.as_ref()
    }

    pub fn trusted(&self) -> &BTreeMap<String, VerifyingKey> {
        &self.trusted
    }

    /// Hands the runtime the engine and the server state it swaps (once, at start).
    pub fn attach(&self, engine: Arc<Engine>, state: Arc<ProxyState>) {
        if let Some(c) = &self.counters {
            let active = lock(&self.inner).active.as_ref().map_or(0, |a| a.revision);
            c.revision.set(i64::try_from(active).unwrap_or(i64::MAX));
            let collectors: [Box<dyn prometheus::core::Collector>; 4] = [
                Box::new(c.revision.clone()),
                Box::new(c.swaps.clone()),
                Box::new(c.rejections.clone()),
                Box::new(c.last_poll_ok.clone()),
            ];
            for collector in collectors {
                if let Err(e) = state.metrics.register(collector) {
                    tracing::warn!(error = %e, "control-plane metric not registered");
                }
            }
        }
        if let Some(active) = lock(&self.inner).active.as_mut() {
            active.policy_hashes = policy_hashes(&engine);
        }
        let _ = self.engine.set(engine);
        let _ = self.state.set(state);
    }

    /// Parses, verifies and unpacks a bundle and merges it with `local`, refusing a revision not
    /// newer than `active` (unless it allows a rollback). Builds nothing yet.
    fn prepare(
        &self,
        bytes: &[u8],
        local: &Config,
        active: Option<u64>,
    ) -> Result<(Bundle, Config, Vec<String>, PathBuf), Refused> {
        let bundle = Bundle::parse(bytes)?;
        bundle.verify(&self.trusted)?;
        bundle.check_validity(Timestamp::now())?;
        bundle.check_revision(active)?;
        let m = bundle.manifest();
        let hash = bundle.hash();
        let short = hash.get(..16).unwrap_or(&hash);
        let dir = self.bundles_dir().join(format!("r{}-{short}", m.revision));
        let io = |e: std::io::Error| {
            Refused::new(
                500,
                "io",
                format!("cannot unpack the bundle in {}: {e}", dir.display()),
            )
        };
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io)?;
        }
        std::fs::create_dir_all(&dir).map_err(io)?;
        bundle.extract_to(&dir)?;
        let (merged, ignored) = merge(local, &dir, m.revision)?;
        Ok((bundle, merged, ignored, dir))
    }

    /// The whole way in for a bundle: verify, check, build everything, then swap once. On any
    /// error nothing changes. Blocking (file I/O, compile): call from a blocking thread.
    pub fn apply(&self, bytes: &[u8], via: Via) -> Result<Applied, Refused> {
        let (Some(engine), Some(state)) = (self.engine.get(), self.state.get()) else {
            return Err(Refused::new(
                503,
                "starting",
                "the sidecar is still starting",
            ));
        };
        // INVARIANT: applies are serialised; the lock is held on this blocking thread only.
        let mut inner = lock(&self.inner);
        let result = self.apply_locked(&mut inner, engine, state, bytes, via);
        match &result {
            Ok(applied) => {
                if let Some(c) = &self.counters {
                    c.swaps.inc();
                    c.revision
                        .set(i64::try_from(applied.active.revision).unwrap_or(i64::MAX));
                }
            }
            Err(refused) => {
                inner.last_error = Some((refused.reason.clone(), Timestamp::now()));
                if let Some(c) = &self.counters {
                    c.rejections.with_label_values(&[refused.code]).inc();
                }
            }
        }
        result
    }

    fn apply_locked(
        &self,
        inner: &mut Inner,
        engine: &Arc<Engine>,
        state: &Arc<ProxyState>,
        bytes: &[u8],
        via: Via,
    ) -> Result<Applied, Refused> {
        let local = crate::run::load(&self.source)
            .map_err(|e| Refused::new(500, "local_config", format!("{e:#}")))?;
        let before = inner.active.as_ref().map(|a| a.revision);
        let (bundle, config, ignored, dir) = self.prepare(bytes, &local, before)?;
        let invalid = |e: String| Refused::new(422, "invalid_config", e);
        // INVARIANT: everything is built before anything is swapped.
        let policies = engine
            .build_policies(&config)
            .map_err(|e| invalid(format!("{:#}", anyhow::Error::new(e))))?;
        let proxy =
            ProxySnapshot::build(&config, engine.clone()).map_err(|e| invalid(e.to_string()))?;
        let before_hashes = policy_hashes(engine);
        engine.publish_policies(policies);
        state.swap(proxy.with_policies(engine.pin_policies()));
        let persisted = self.bundles_dir().join(ACTIVE_FILE);
        if let Err(e) = write_atomically(&persisted, bytes) {
            // The bundle is in force; only a restart without the store would miss it.
            tracing::error!(error = %e, file = %persisted.display(), "bundle applied but not persisted");
        }
        let m = bundle.manifest();
        let active = Active {
            revision: m.revision,
            hash: bundle.hash(),
            kid: bundle
                .verify(&self.trusted)
                .map(str::to_owned)
                .unwrap_or_default(),
            created_at: m.created_at,
            via,
            loaded_at: Timestamp::now(),
            dir: dir.clone(),
            policy_hashes: policy_hashes(engine),
            needs_restart: needs_restart(&self.started_with, &config),
            ignored,
        };
        inner.needs_restart.clone_from(&active.needs_restart);
        if let Some(old) = inner.active.replace(active.clone()) {
            if old.dir != dir {
                if let Err(e) = std::fs::remove_dir_all(&old.dir) {
                    tracing::warn!(error = %e, dir = %old.dir.display(), "old bundle files not removed");
                }
            }
        }
        tracing::info!(revision = m.revision, via = via.as_str(), hash = %active.hash, "bundle applied");
        Ok(Applied {
            before,
            before_hashes,
            active,
        })
    }

    /// Re-reads the node's file (SIGHUP, file change) and applies it with the bundle in force, if
    /// any; without one, as the file says (or closed, when a bundle is required).
    pub fn reload_local(&self) -> anyhow::Result<()> {
        let (Some(engine), Some(state)) = (self.engine.get(), self.state.get()) else {
            anyhow::bail!("the sidecar is still starting");
        };
        let inner = lock(&self.inner);
        let local = crate::run::load(&self.source)?;
        let (config, closed) = match &inner.active {
            Some(active) => {
                let (merged, _) = merge(&local, &active.dir, active.revision)
                    .map_err(|r| anyhow::anyhow!(r.reason))?;
                (merged, None)
            }
            None => {
                let closed = state.load().closed.clone();
                (local, closed)
            }
        };
        crate::run::swap_in(&config, closed, engine, state)?;
        let later = needs_restart(&self.started_with, &config);
        if later.is_empty() {
            tracing::info!("configuration and policies reloaded");
        } else {
            tracing::warn!(needs_restart = ?later, "configuration and policies reloaded; these settings change only at a restart");
        }
        drop(inner);
        lock(&self.inner).needs_restart = later;
        Ok(())
    }

    /// Records an event in the ledger (when there is one).
    pub async fn record(&self, event: EventType, text: String) {
        if let Some(engine) = self.engine.get() {
            if let Err(e) = engine.record_event(event, text).await {
                tracing::warn!(error = %e, "control-plane event not recorded in the ledger");
            }
        }
    }

    /// The ledger text of an applied bundle.
    pub fn applied_text(applied: &Applied) -> String {
        let a = &applied.active;
        format!(
            "bundle revision {} ({}) applied via {}, signed by {}; was {}; policies {}",
            a.revision,
            a.hash,
            a.via.as_str(),
            a.kid,
            applied
                .before
                .map_or_else(|| "none".to_owned(), |r| format!("revision {r}")),
            serde_json::to_string(&a.policy_hashes).unwrap_or_default()
        )
    }

    /// Whether `bytes` are the bundle in force (a store without ETags serving the same file).
    pub(crate) fn is_active(&self, bytes: &[u8]) -> bool {
        let Ok(bundle) = Bundle::parse(bytes) else {
            return false;
        };
        lock(&self.inner)
            .active
            .as_ref()
            .is_some_and(|a| a.hash == bundle.hash())
    }

    pub(crate) fn poll_state(&self) -> (Option<String>, Option<u64>) {
        let inner = lock(&self.inner);
        (
            inner.etag.clone(),
            inner.active.as_ref().map(|a| a.revision),
        )
    }

    pub(crate) fn polled(&self, ok: bool, etag: Option<String>, error: Option<String>) {
        let mut inner = lock(&self.inner);
        let now = Timestamp::now();
        if ok {
            inner.last_poll_ok = Some(now);
            if etag.is_some() {
                inner.etag = etag;
            }
            if let Some(c) = &self.counters {
                c.last_poll_ok.set(now.as_second());
            }
        }
        if let Some(e) = error {
            inner.last_error = Some((e, now));
        }
    }

    pub(crate) fn set_next_poll(&self, at: Timestamp) {
        lock(&self.inner).next_poll = Some(at);
    }

    /// `GET /admin/v1/status`.
    pub fn status(&self) -> Value {
        let inner = lock(&self.inner);
        let closed = self.state.get().and_then(|s| s.load().closed.clone());
        let active = inner.active.as_ref().map(|a| {
            json!({
                "revision": a.revision,
                "bundle_hash": a.hash,
                "signed_by": a.kid,
                "created_at": a.created_at,
                "loaded_at": a.loaded_at,
                "source": a.via.as_str(),
                "policy_hashes": a.policy_hashes,
                "needs_restart": a.needs_restart,
                "ignored_node_local": a.ignored,
            })
        });
        let policies = self.engine.get().map(|e| policy_hashes(e));
        json!({
            "control_plane": self.enabled(),
            "revision": inner.active.as_ref().map(|a| a.revision),
            "bundle": active,
            "source": inner.active.as_ref().map_or("file", |a| a.via.as_str()),
            "policy_hashes": policies,
            "closed": closed,
            "needs_restart": inner.needs_restart,
            "last_error": inner.last_error.as_ref().map(|(e, _)| e),
            "last_error_at": inner.last_error.as_ref().map(|(_, t)| t),
            "last_successful_poll": inner.last_poll_ok,
            "next_poll": inner.next_poll,
            "bundle_url": self.settings.as_ref().and_then(|s| s.bundle_url.clone()),
        })
    }
}

/// The `policy_version_hash` of each domain's policy in force.
fn policy_hashes(engine: &Engine) -> BTreeMap<String, String> {
    engine
        .snapshot()
        .policies
        .iter()
        .map(|(domain, policy)| (domain.clone(), policy.version_hash().to_owned()))
        .collect()
}
