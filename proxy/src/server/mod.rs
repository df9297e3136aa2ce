//! The enforcement server: one pingora `Server` holding the proxy listener, the admin listener
//! (`/health`, `/metrics`), the embedded demo upstream when configured, and the JWKS refresher.
//!
//! [`serve`] runs it until a Unix signal (SIGTERM graceful, SIGINT fast) and is what `lexecon
//! serve` calls; [`ServerHandle::start`] runs it on a thread for tests and embedding and stops it on
//! [`ServerHandle::shutdown`]. Nothing here decides: decisions come from the [`DecisionPoint`] given in
//! [`ServeOptions`].

pub mod admin;
pub mod answer;
pub mod break_glass;
mod check;
pub mod consent;
mod downstream;
pub mod held;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod state;
pub mod sweeper;
pub mod tool_pins;
pub mod tools_filter;
pub mod upstream;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lexecon_config::file::{Config, DEFAULT_DEMO_ADDR};
use lexecon_config::ConfigError;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;

use crate::server::break_glass::{BreakGlass, BreakGlassSweeper};
use pingora::services::listening::Service;

use crate::demo::DemoUpstream;
use crate::enforce::DecisionPoint;
use crate::identity::JwksRefresher;

pub use crate::headers::{DECISION_ID_HEADER, REQUEST_ID_HEADER};
pub use proxy::LexeconProxy;
pub use state::{ProxySnapshot, ProxyState};

/// Why the server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Route(String),
    #[error("{0}")]
    Identity(String),
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
    /// The I/O error is part of the message and not a `source()`: `lexecon serve` prints the
    /// chain (`{:#}`) and would show it twice.
    #[error("cannot listen on {addr} ({what}): {error}")]
    Listen {
        addr: SocketAddr,
        what: &'static str,
        error: std::io::Error,
    },
    #[error("the server did not accept connections on {addr} within {waited:?}")]
    NotReady { addr: SocketAddr, waited: Duration },
    #[error("cannot start the server thread: {0}")]
    Thread(std::io::Error),
}

/// What the server needs besides the configuration.
#[derive(Clone)]
pub struct ServeOptions {
    /// The decision engine as the proxy listener sees it.
    pub decider: Arc<dyn DecisionPoint>,
    /// The full engine, when there is one: the admin listener serves the decision API, the
    /// approvals and the JWKS from it.
    pub engine: Option<Arc<crate::engine::Engine>>,
    /// Refuse every request from the start, with this reason (a control plane is configured and
    /// no bundle is loaded yet).
    pub closed: Option<String>,
    /// The control plane's endpoints on the admin listener (`/admin/v1/…`).
    pub control: Option<Arc<dyn admin::ControlEndpoints>>,
}

impl ServeOptions {
    /// Options for a proxy deciding with `decider` and no decision API.
    pub fn new(decider: Arc<dyn DecisionPoint>) -> Self {
        Self {
            decider,
            engine: None,
            closed: None,
            control: None,
        }
    }

    /// Options for the full product: the proxy and the decision API share `engine`.
    pub fn with_engine(engine: Arc<crate::engine::Engine>) -> Self {
        Self {
            decider: engine.clone(),
            engine: Some(engine),
            closed: None,
            control: None,
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions").finish_non_exhaustive()
    }
}

/// The per-connection write buffer of every listener. Pingora's default (1,460 bytes, one TCP
/// segment) splits any answer whose header and body exceed it into two `send`s and so two segments
/// and two wake-ups of the client: a permitted decision-API answer (about 1.5 KB with its token and
/// ledger hash) cost a second `sendto` per request (strace) and a third of the API's throughput.
/// Pingora only buffers bodies of known length and flushes when they are complete; chunked and
/// close-delimited bodies (SSE) are still flushed per chunk, so streaming is unaffected.
const LISTENER_WRITE_BUFFER: usize = 16 * 1024;

fn listener(addr: SocketAddr) -> ListenerConfig {
    ListenerConfig::tcp(addr.to_string())
        .l4_buffer(L4BufferSettings::default().write(LISTENER_WRITE_BUFFER))
}

/// The listeners the server binds: proxy, admin, and the demo upstream if any.
fn listeners(config: &Config) -> Vec<(SocketAddr, &'static str)> {
    let mut out = vec![
        (config.listeners.proxy, "proxy listener"),
        (config.listeners.admin, "admin listener"),
    ];
    for up in config.upstreams.values().filter(|u| u.embedded) {
        let addr = up
            .addrs
            .first()
            .map_or(DEFAULT_DEMO_ADDR, String::as_str)
            .parse::<SocketAddr>();
        if let Ok(addr) = addr {
            out.push((addr, "embedded demo upstream"));
        }
    }
    out
}

/// Builds the pingora server and the shared state.
fn build(config: &Config, opts: ServeOptions) -> Result<(Server, Arc<ProxyState>), SetupError> {
    let mut snapshot = ProxySnapshot::build(config, opts.decider)?;
    if let Some(reason) = opts.closed {
        snapshot = snapshot.closed_because(reason);
    }
    let state = Arc::new(ProxyState::new(snapshot)?);

    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(
            config.server.graceful_shutdown_timeout.as_secs().max(1),
        ),
        ca_file: config
            .server
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let conf = server.configuration.clone();

    let break_glass = Arc::new(BreakGlass::new(
        state.metrics.break_glass_started.clone(),
        state.metrics.break_glass_active.clone(),
    ));
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &conf,
        LexeconProxy::new(state.clone(), break_glass.clone()),
        "lexecon proxy",
    );
    proxy.add_listener(listener(config.listeners.proxy));
    proxy.threads = Some(config.server.threads);
    server.add_service(proxy);

    server.add_service(background_service(
        "break-glass sweeper",
        BreakGlassSweeper {
            sessions: break_glass,
            state: state.clone(),
        },
    ));
    server.add_service(background_service(
        "cache sweeper",
        sweeper::CacheSweeper {
            engine: opts.engine.clone(),
            state: state.clone(),
        },
    ));
    if let Some(engine) = &opts.engine {
        server.add_service(background_service(
            "approval expiry",
            crate::api::expiry::ApprovalExpiry::new(engine.clone()),
        ));
    }
    let has_api = opts.engine.is_some();
    let api = opts
        .engine
        .map(|engine| Arc::new(crate::api::http::DecisionApi::new(engine)));
    let mut admin = Service::new(
        "lexecon admin".to_string(),
        admin::Admin::new(state.clone(), api, opts.control),
    );
    admin.add_listener(listener(config.listeners.admin));
    // The decision API answers on this listener: give it the proxy's threads when it is served.
    admin.threads = Some(if has_api { config.server.threads } else { 1 });
    server.add_service(admin);

    for (addr, what) in listeners(config).into_iter().skip(2) {
        debug_assert_eq!(what, "embedded demo upstream");
        let mut demo = Service::new("lexecon demo upstream".to_string(), DemoUpstream::new());
        demo.add_listener(listener(addr));
        demo.threads = Some(1);
        server.add_service(demo);
    }

    if config.identity.jwt.is_some() {
        let for_refresher = state.clone();
        server.add_service(background_service(
            "jwks refresher",
            JwksRefresher::new(move || for_refresher.current_jwt()),
        ));
    }
    Ok((server, state))
}

/// Runs the server until SIGTERM (graceful: the configured grace period and shutdown timeout) or
/// SIGINT (fast). Blocks; call it outside any async runtime.
pub fn serve(config: Config, opts: ServeOptions) -> anyhow::Result<()> {
    serve_with(config, opts, |_| {})
}

/// [`serve`], handing the shared state to `started` before the server runs (for a reload watcher).
pub fn serve_with(
    config: Config,
    opts: ServeOptions,
    started: impl FnOnce(Arc<ProxyState>),
) -> anyhow::Result<()> {
    check_free(&config)?;
    let (server, state) = build(&config, opts)?;
    started(state);
    tracing::info!(
        proxy = %config.listeners.proxy,
        admin = %config.listeners.admin,
        routes = config.routes.len(),
        "lexecon serving"
    );
    server.run(RunArgs::default());
    Ok(())
}

/// Fails when a listener's address (or an embedded demo upstream's) cannot be bound now: `lexecon
/// serve` checks it before it starts the ledger or records anything, so a port in use stops it
/// with nothing half-started.
pub fn check_free(config: &Config) -> Result<(), SetupError> {
    for (addr, what) in listeners(config) {
        TcpListener::bind(addr).map_err(|error| SetupError::Listen { addr, what, error })?;
    }
    Ok(())
}

/// Stops the server when notified.
struct NotifyShutdown(Arc<tokio::sync::Notify>);

#[async_trait]
impl ShutdownSignalWatch for NotifyShutdown {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// A server running on its own thread; [`ServerHandle::shutdown`] (or drop) stops it.
pub struct ServerHandle {
    thread: Option<JoinHandle<()>>,
    stop: Arc<tokio::sync::Notify>,
    state: Arc<ProxyState>,
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("proxy_addr", &self.proxy_addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

/// How long [`ServerHandle::start`] waits for the listeners to accept.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

impl ServerHandle {
    /// Starts the server on its listeners and returns once every listener accepts connections.
    pub fn start(config: Config, opts: ServeOptions) -> Result<ServerHandle, SetupError> {
        check_free(&config)?;
        let (server, state) = build(&config, opts)?;
        let stop = Arc::new(tokio::sync::Notify::new());
        let signal = NotifyShutdown(stop.clone());
        let thread = std::thread::Builder::new()
            .name("lexecon-server".into())
            .spawn(move || {
                server.run(RunArgs {
                    shutdown_signal: Box::new(signal),
                })
            })
            .map_err(SetupError::Thread)?;
        let handle = ServerHandle {
            thread: Some(thread),
            stop,
            state,
            proxy_addr: config.listeners.proxy,
            admin_addr: config.listeners.admin,
        };
        for (addr, _) in listeners(&config) {
            wait_until_accepting(addr)?;
        }
        Ok(handle)
    }

    /// The shared state: current snapshot, metrics, and the [`ProxyState::reload`] hook.
    pub fn state(&self) -> &Arc<ProxyState> {
        &self.state
    }

    /// Stops the server and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.notify_one();
            if thread.join().is_err() {
                tracing::warn!("the server thread panicked");
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn wait_until_accepting(addr: SocketAddr) -> Result<(), SetupError> {
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(SetupError::NotReady {
                addr,
                waited: READY_TIMEOUT,
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
