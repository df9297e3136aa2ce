//! What `lexecon serve` does: load the configuration (a file, or the built-in demo), build the
//! engine, start the pingora server, and keep the configuration current — re-read on SIGHUP and
//! whenever the configuration or a policy file changes; a file that does not load is logged and the
//! snapshot in force stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use lexecon_config::file::{Config, LogFormat};

use crate::engine::Engine;
use crate::server::{ProxySnapshot, ProxyState, ServeOptions};
use lexecon_ledger::EventType;

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// The embedded demo; its policies are written under `data_dir/demo-policies`.
    Demo,
}

/// Loads the configuration from `source`, resolving relative paths. For the demo the embedded
/// policies are written to the data directory (so they can be edited and hot-reloaded).
pub fn load(source: &Source) -> anyhow::Result<Config> {
    match source {
        Source::File(path) => Ok(Config::load(path)?),
        Source::Demo => {
            let mut config = crate::demo::demo_config()?;
            let dir = config.data_dir.join("demo-policies");
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (domain, _, text) in crate::demo::DEMO_POLICIES {
                let path = dir.join(format!("{domain}.yaml"));
                if !path.exists() {
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                config.policies.insert(domain.to_string(), path);
            }
            Ok(config)
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr on a full disk) is dropped: by default the
        // subscriber reports it with `eprintln!`, which panics the thread that logged — a request
        // thread, or the ledger writer in the middle of healing from that very disk (issue 18).
        .log_internal_errors(false);
    // A second initialisation (tests) is not an error worth failing for.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs `lexecon serve` until SIGTERM/SIGINT. Returns the exit code.
pub fn serve_command(config_path: Option<&Path>) -> anyhow::Result<i32> {
    let source = match config_path {
        Some(p) => Source::File(p.to_path_buf()),
        None => Source::Demo,
    };
    let local = load(&source)?;
    init_tracing(local.telemetry.log_format);
    // The node's file merged with the persisted bundle (when a control plane is configured), and
    // whether to start closed: decided before anything serves.
    let boot = crate::control::Runtime::boot(source, local)?;
    let config = boot.config;
    // A port in use stops it here, before the ledger starts or records a start-up.
    crate::server::check_free(&config)?;
    let engine = Arc::new(Engine::from_config(&config)?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(engine.record_event(
        EventType::SystemStartup,
        format!(
            "lexecon {} started on node {}",
            env!("CARGO_PKG_VERSION"),
            config.node_id
        ),
    ))?;
    let policies = engine.snapshot().policies.len();
    rt.block_on(engine.record_event(
        EventType::PolicyLoaded,
        format!("{policies} policies loaded at start"),
    ))?;
    for (event, text) in boot.events {
        rt.block_on(engine.record_event(event, text))?;
    }
    if let Some(reason) = &boot.closed {
        tracing::warn!(%reason, "every request is refused until a bundle is loaded");
    }
    if config.policies.is_empty() && config.routes.is_empty() && boot.closed.is_none() {
        tracing::warn!("no routes and no policies: every request is refused (unmatched)");
    }
    let runtime = boot.runtime;
    let mut options = ServeOptions::with_engine(engine.clone());
    options.closed = boot.closed;
    // `/admin/v1/status` answers on every node (source `file` without a control plane); pushes and
    // refreshes need `control_plane` and are refused without it.
    options.control = Some(Arc::new(crate::control::endpoints::Endpoints(
        runtime.clone(),
    )));
    let for_watch = engine.clone();
    let watched_config = config.clone();
    let served = crate::server::serve_with(config.clone(), options, move |state| {
        runtime.attach(for_watch, state);
        crate::control::pull::spawn(runtime.clone());
        spawn_watcher(runtime, watched_config);
    });
    // Served or not (a port taken since the check), what was recorded is made durable.
    if let Some(ledger) = engine.ledger() {
        if let Err(e) = rt.block_on(ledger.shutdown()) {
            tracing::warn!(error = %e, "ledger did not shut down cleanly");
        }
    }
    served?;
    Ok(0)
}

/// Reloads `source` into `engine` and `state` (a server without a control plane, as the tests
/// run it): builds the policy snapshot and the proxy snapshot first, then swaps once. On any error
/// nothing changes and the error says why.
pub fn reload(source: &Source, engine: &Arc<Engine>, state: &ProxyState) -> anyhow::Result<Config> {
    let config = load(source)?;
    swap_in(&config, None, engine, state)?;
    tracing::info!("configuration and policies reloaded");
    Ok(config)
}

/// Builds the policies and the proxy snapshot of `config` (closed with `closed`, if given), then
/// publishes the policies and swaps the snapshot carrying them: requests read only the snapshot,
/// so routes and policies change in one step.
pub fn swap_in(
    config: &Config,
    closed: Option<String>,
    engine: &Arc<Engine>,
    state: &ProxyState,
) -> anyhow::Result<()> {
    // INVARIANT: everything is built and validated before anything is swapped: a configuration
    // whose routes or identity do not build (a missing JWKS file) leaves the policies in force
    // too, so new policies never run with old routes.
    let policies = engine.build_policies(config)?;
    let mut proxy = ProxySnapshot::build(config, engine.clone())?;
    if let Some(reason) = closed {
        proxy = proxy.closed_because(reason);
    }
    engine.publish_policies(policies);
    state.swap(proxy.with_policies(engine.pin_policies()));
    Ok(())
}

/// The files whose change triggers a reload, with their modification times.
fn watched(source: &Source, config: &Config) -> Vec<(PathBuf, Option<SystemTime>)> {
    let mut files: Vec<PathBuf> = config.policies.values().cloned().collect();
    files.extend(config.domain_packs.iter().cloned());
    if let Source::File(p) = source {
        files.push(p.clone());
    }
    files
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, m)
        })
        .collect()
}

/// The files of the node's own configuration to watch (a bundle's files never change in place).
fn watched_local(source: &Source, fallback: &Config) -> Vec<(PathBuf, Option<SystemTime>)> {
    match load(source) {
        Ok(local) => watched(source, &local),
        Err(_) => watched(source, fallback),
    }
}

fn spawn_watcher(runtime: Arc<crate::control::Runtime>, config: Config) {
    let source = runtime.source().clone();
    let spawned = std::thread::Builder::new().name("lexecon-reload".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "reload watcher not started");
                return;
            }
        };
        rt.block_on(async move {
            let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "SIGHUP reload unavailable; file changes still reload");
                    None
                }
            };
            let mut seen = watched_local(&source, &config);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                let by_signal = tokio::select! {
                    Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                    _ = tick.tick() => false,
                };
                if !by_signal {
                    let now: Vec<_> = seen.iter().map(|(p, _)| (p.clone(), std::fs::metadata(p).and_then(|m| m.modified()).ok())).collect();
                    if now == seen {
                        continue;
                    }
                }
                match runtime.reload_local() {
                    Ok(()) => {
                        seen = watched_local(&source, &config);
                        let why = if by_signal { "SIGHUP" } else { "file change" };
                        runtime.record(EventType::PolicyLoaded, format!("reloaded on {why}")).await;
                    }
                    Err(e) => {
                        // Keep the old snapshot; do not retry the same broken files every second.
                        seen = seen.iter().map(|(p, _)| (p.clone(), std::fs::metadata(p).and_then(|m| m.modified()).ok())).collect();
                        tracing::error!(error = %format!("{e:#}"), "reload rejected; the configuration in force stays");
                    }
                }
            }
        });
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "reload watcher not started");
    }
}
