//! The sidecar configuration file: listeners, upstreams, identity, routes, policies and the settings
//! of every subsystem, with explicit defaults and a [`Config::validate`] that collects every located
//! problem of the document before anything starts.
//!
//! One struct per subsystem, `deny_unknown_fields` everywhere, durations as humantime strings
//! (`"250ms"`, `"30s"`), rate limits as `"50/s"`, byte sizes as `1048576` or `"1MiB"`. This module
//! reads a file only when asked ([`Config::load`]); it never runs on the request path.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use lexecon_domains::DomainSettings;

use crate::classifier::ClassifierConfig;
use crate::error::{ConfigError, Located};
use crate::sections::{
    domain_settings_problem, null_as_default, ApiSettings, LedgerSection, RequestLimits,
    TokenSettings,
};

/// The whole sidecar configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's name in the ledger and in metrics.
    #[serde(default = "default_node_id")]
    pub node_id: String,
    /// Keys, ledger, last good bundle, pending approvals.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub listeners: Listeners,
    /// pingora server settings: worker threads and shutdown.
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// What happens to a request no route matches (default: deny, fail closed).
    #[serde(default)]
    pub unmatched: Unmatched,
    /// Global enforcement mode; `passthrough` turns every check off.
    #[serde(default)]
    pub mode: EnforceMode,
    /// One policy file per domain.
    #[serde(default)]
    pub policies: BTreeMap<String, PathBuf>,
    /// Data-only domain packs added by the user.
    #[serde(default)]
    pub domain_packs: Vec<PathBuf>,
    /// Settings of the built-in domain plugins (their schema and checks are `lexecon-domains'`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub domain_settings: DomainSettings,
    /// The audit ledger: `off`, or the writer's settings and redaction rules.
    #[serde(default)]
    pub ledger: LedgerSection,
    /// Capability tokens.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tokens: TokenSettings,
    /// The decision API and its approvals.
    #[serde(default, deserialize_with = "null_as_default")]
    pub api: ApiSettings,
    /// Request header and body-time limits the proxy enforces before routing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub limits: RequestLimits,
    #[serde(default)]
    pub telemetry: Telemetry,
    /// The control-plane keys this node trusts and where it pulls bundles from (node-local: a
    /// bundle never sets it).
    #[serde(default)]
    pub control_plane: Option<crate::sections::ControlPlaneSettings>,
    /// The file this configuration came from (for error messages); not part of the document.
    #[serde(skip)]
    pub source: String,
}

fn default_node_id() -> String {
    "lexecon".to_string()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("lexecon-data")
}

/// Where the proxy and the admin/API listener bind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    #[serde(default = "default_proxy_listener")]
    pub proxy: SocketAddr,
    #[serde(default = "default_admin_listener")]
    pub admin: SocketAddr,
}

impl Default for Listeners {
    fn default() -> Self {
        Self {
            proxy: default_proxy_listener(),
            admin: default_admin_listener(),
        }
    }
}

fn default_proxy_listener() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_admin_listener() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}

/// pingora server settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Worker threads of the proxy service.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// How long listeners keep accepting after SIGTERM before shutting down.
    #[serde(default, with = "humantime_serde")]
    pub grace_period: Duration,
    /// How long in-flight requests get to finish once shutdown starts.
    #[serde(default = "default_graceful_timeout", with = "humantime_serde")]
    pub graceful_shutdown_timeout: Duration,
    /// CA bundle (PEM) that upstream TLS certificates must chain to; `None` uses the platform's
    /// roots (and `SSL_CERT_FILE`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            threads: default_threads(),
            grace_period: Duration::ZERO,
            graceful_shutdown_timeout: default_graceful_timeout(),
            ca_file: None,
        }
    }
}

fn default_threads() -> usize {
    1
}

fn default_graceful_timeout() -> Duration {
    Duration::from_secs(1)
}

/// One named upstream: a set of addresses (round robin) or the embedded demo upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `host:port` addresses, used round robin.
    #[serde(default)]
    pub addrs: Vec<String>,
    /// The embedded demo upstream served inside the same process (`demo: {embedded: true}`); it
    /// listens on its one address, or on [`DEFAULT_DEMO_ADDR`] when none is given.
    #[serde(default)]
    pub embedded: bool,
    /// TLS to the upstream.
    #[serde(default)]
    pub tls: bool,
    /// TLS server name; defaults to the host of the address.
    #[serde(default)]
    pub sni: Option<String>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_read_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Opens after `failures` consecutive upstream failures and answers 503 for `open_for`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    #[serde(default = "default_cb_failures")]
    pub failures: u32,
    #[serde(default = "default_cb_open_for", with = "humantime_serde")]
    pub open_for: Duration,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failures: default_cb_failures(),
            open_for: default_cb_open_for(),
        }
    }
}

fn default_cb_failures() -> u32 {
    5
}

fn default_cb_open_for() -> Duration {
    Duration::from_secs(10)
}

/// How the proxy learns who the actor is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Bearer JWT verification.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// A header that names the actor directly (e.g. `x-agent-id`); only for loopback sidecars.
    #[serde(default)]
    pub trusted_actor_header: Option<String>,
    /// The actor of requests without credentials; `None` answers them 401.
    #[serde(default)]
    pub anonymous_actor: Option<String>,
    /// Identity tokens Lexecon signs itself (`lexecon token issue`), for approvers and deciders
    /// without an IdP; off when absent.
    #[serde(default)]
    pub local_issuer: Option<LocalIssuerConfig>,
}

/// The local issuer: bearer tokens signed with `<data_dir>/keys/identity-issuer-ed25519.pem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalIssuerConfig {
    /// The roles its tokens may carry; a token naming any other is refused (401).
    pub roles: Vec<String>,
    /// The longest lifetime `lexecon token issue` grants.
    #[serde(default = "default_local_max_ttl", with = "humantime_serde")]
    pub max_ttl: Duration,
}

fn default_local_max_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// Bearer-token verification settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Accepted `aud` values (one string or a list).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp`/`nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Where the keys come from: a file path, `file://…` or `http(s)://…`.
    pub jwks: String,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// The claim that names the actor.
    #[serde(default = "default_actor_claim")]
    pub actor_claim: String,
    /// Prefix put before every actor claim (e.g. `act_ai_agent:`); without one the claim must be
    /// a whole `act_<type>:<instance>` id.
    #[serde(default)]
    pub actor_prefix: Option<String>,
    /// Claims copied into the decision context: `{claim: context_field}`.
    #[serde(default)]
    pub claims_to_context: BTreeMap<String, String>,
    /// How often a JWKS URL is fetched again.
    #[serde(default = "default_jwks_refresh", with = "humantime_serde")]
    pub refresh: Duration,
    /// Accept an `http://` JWKS URL (a test IdP on loopback); anyone on the path of a plain-http
    /// fetch can swap the keys, so this is an explicit exception, off by default.
    #[serde(default)]
    pub insecure_jwks_http: bool,
    /// The most verified tokens cached (by SHA-256, until their `exp`; default
    /// [`DEFAULT_JWT_CACHE`]). Past it the least used are evicted: they are verified again.
    #[serde(default = "default_jwt_cache")]
    pub cache_capacity: u64,
}

/// The default `identity.jwt.cache_capacity`.
pub const DEFAULT_JWT_CACHE: u64 = 100_000;
/// The largest `identity.jwt.cache_capacity` (an entry is about 300 bytes plus its claims).
pub const MAX_JWT_CACHE: u64 = 10_000_000;

fn default_jwt_cache() -> u64 {
    DEFAULT_JWT_CACHE
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_algorithms() -> Vec<JwtAlgorithm> {
    vec![
        JwtAlgorithm::Rs256,
        JwtAlgorithm::Es256,
        JwtAlgorithm::EdDsa,
    ]
}

fn default_actor_claim() -> String {
    "sub".to_string()
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

/// Signature algorithms accepted for incoming tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

/// Where a JWKS comes from, as [`JwtConfig::jwks_source`] reads `jwks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    Url(String),
}

impl JwtConfig {
    /// `http://` and `https://` are URLs; `file://…` and anything else is a file path.
    pub fn jwks_source(&self) -> JwksSource {
        let jwks = self.jwks.trim();
        if jwks.starts_with("http://") || jwks.starts_with("https://") {
            JwksSource::Url(jwks.to_string())
        } else {
            JwksSource::File(PathBuf::from(jwks.strip_prefix("file://").unwrap_or(jwks)))
        }
    }
}

/// One route: which requests it takes, how to classify them, and where permitted ones go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(default, rename = "match")]
    pub matcher: RouteMatch,
    /// The governance domain (`ai`, `finance`, `healthcare`, or a pack's).
    pub domain: String,
    #[serde(default = "default_classifier")]
    pub classifier: ClassifierConfig,
    /// The name of an entry in `upstreams`.
    pub upstream: String,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// The largest request body read for classification.
    #[serde(default = "default_body_limit")]
    pub body_limit: ByteSize,
    /// `None` follows the global mode.
    #[serde(default)]
    pub mode: Option<EnforceMode>,
    /// Protocol upgrades the route takes (`[websocket]`); none by default: every `Upgrade` is
    /// refused (400). A WebSocket handshake is decided as the route's classification of its `GET`
    /// with `context.upgrade: websocket`; the frames after it are not inspected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrade: Vec<UpgradeProtocol>,
}

/// A protocol a route may be upgraded to. Only WebSocket: `h2c` and the rest stay refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpgradeProtocol {
    Websocket,
}

fn default_classifier() -> ClassifierConfig {
    ClassifierConfig::None { action: None }
}

fn default_body_limit() -> ByteSize {
    ByteSize(1024 * 1024)
}

/// Which requests a route takes. All given parts must match; empty `methods` means any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// `Host` header without port; `None` matches any host.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    #[serde(default)]
    pub methods: Vec<String>,
}

impl Default for RouteMatch {
    fn default() -> Self {
        Self {
            host: None,
            path_prefix: default_path_prefix(),
            methods: Vec::new(),
        }
    }
}

fn default_path_prefix() -> String {
    "/".to_string()
}

/// A per-actor rate limit on one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_actor: RateLimit,
    /// Requests allowed at once; defaults to the rate's count.
    #[serde(default)]
    pub burst: Option<u32>,
    /// The most actors the limiter tracks at once (default [`DEFAULT_MAX_ACTORS`]). An actor whose
    /// budget is back to full is forgotten when room is needed; while every tracked actor is still
    /// spending its budget, a new actor is refused (429) rather than anyone's budget reset.
    #[serde(default = "default_max_actors")]
    pub max_actors: usize,
}

/// The default `rate_limit.max_actors`.
pub const DEFAULT_MAX_ACTORS: usize = 100_000;
/// The largest `rate_limit.max_actors` (about 100 bytes each: 1 GB).
pub const MAX_MAX_ACTORS: usize = 10_000_000;

fn default_max_actors() -> usize {
    DEFAULT_MAX_ACTORS
}

impl RateLimitConfig {
    /// The burst in effect: `burst`, or the rate's count.
    pub fn effective_burst(&self) -> u32 {
        self.burst.unwrap_or(self.per_actor.count)
    }

    /// Every problem of this limit as `(field, reason)`, the field relative to the `rate_limit`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.burst == Some(0) {
            problems.push(("burst", "must be at least 1".to_owned()));
        }
        if !(1..=MAX_MAX_ACTORS).contains(&self.max_actors) {
            problems.push((
                "max_actors",
                format!("{} is outside 1..={MAX_MAX_ACTORS}", self.max_actors),
            ));
        }
        problems
    }
}

/// `count` requests per `per`, written `50/s`, `600/m`, `1000/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

impl RateLimit {
    /// Parses `N/s`, `N/m`, `N/h` (also `N/sec`, `N/min`, `N/hour`, `N/second`, `N/minute`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (count, unit) = text.trim().split_once('/').ok_or_else(|| {
            format!("rate limit {text:?} is not of the form N/s, N/m or N/h (e.g. \"50/s\")")
        })?;
        let count: u32 = count.trim().parse().map_err(|_| {
            format!("rate limit {text:?}: {count:?} is not a whole number of requests")
        })?;
        if count == 0 {
            return Err(format!(
                "rate limit {text:?}: the count must be at least 1 (remove the limit instead)"
            ));
        }
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => {
                return Err(format!(
                    "rate limit {text:?}: unknown unit {other:?}, expected s, m or h"
                ))
            }
        };
        Ok(Self { count, per })
    }

    /// The time between two replenished requests.
    pub fn period(&self) -> Duration {
        self.per / self.count
    }

    /// The count as a non-zero number (the parser never yields zero).
    pub fn count_nonzero(&self) -> NonZeroU32 {
        NonZeroU32::new(self.count).unwrap_or(NonZeroU32::MIN)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            3600 => "h",
            60 => "m",
            _ => "s",
        };
        write!(f, "{}/{}", self.count, unit)
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        RateLimit::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A size in bytes, written as a number or as `"64KiB"`, `"1MiB"`, `"1MB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("size {text:?} does not start with a number of bytes"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1024,
            "m" | "mb" => 1000 * 1000,
            "mib" => 1024 * 1024,
            "g" | "gb" => 1000 * 1000 * 1000,
            "gib" => 1024 * 1024 * 1024,
            other => {
                return Err(format!(
                    "size {text:?}: unknown unit {other:?}, expected B, KiB, MiB, GiB, KB, MB or GB"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size {text:?} is too large"))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(deserializer)? {
        Raw::One(s) => vec![s],
        Raw::Many(v) => v,
    })
}

/// Enforce every check, or forward untouched (the benchmark baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforceMode {
    #[default]
    Enforce,
    Passthrough,
}

/// What to do with a request that no route matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// Answer 403 (fail closed).
    #[default]
    Deny,
    /// Forward to the upstream named `default` without deciding.
    Passthrough,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    #[serde(default)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where the embedded demo upstream listens when its entry names no address.
pub const DEFAULT_DEMO_ADDR: &str = "127.0.0.1:9902";

/// The upstream `unmatched: passthrough` forwards to.
pub const DEFAULT_UPSTREAM: &str = "default";

impl Config {
    /// Parses and validates a YAML (or JSON) document; `file` names it in errors.
    pub fn from_yaml(file: &str, text: &str) -> Result<Config, ConfigError> {
        let document = serde_norway::Deserializer::from_str(text);
        let mut config: Config = serde_path_to_error::deserialize(document).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let reason = e.into_inner().to_string();
            let reason = without_yaml_path(&path, &reason).to_owned();
            ConfigError::Invalid(vec![Located::new(file, path, reason)])
        })?;
        config.source = file.to_string();
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file, and resolves its relative paths against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            file: file.clone(),
            error,
        })?;
        let mut config = Config::from_yaml(&file, &text)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Makes relative paths (data dir, policies, packs, a JWKS file) relative to `base_dir`.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        if let Some(ca) = self.server.ca_file.as_mut() {
            resolve(ca);
        }
        self.policies.values_mut().for_each(resolve);
        if let Some(cp) = self.control_plane.as_mut() {
            cp.trusted_keys.iter_mut().for_each(resolve);
        }
        self.domain_packs.iter_mut().for_each(resolve);
        if let Some(jwt) = self.identity.jwt.as_mut() {
            if let JwksSource::File(mut path) = jwt.jwks_source() {
                resolve(&mut path);
                jwt.jwks = path.display().to_string();
            }
        }
        for route in &mut self.routes {
            if let crate::classifier::ClassifierConfig::Mcp(mcp) = &mut route.classifier {
                if let Some(pins) = mcp.pin_tools.as_mut() {
                    resolve(&mut pins.file);
                }
            }
        }
    }

    /// Checks everything serde cannot: references between sections, addresses, limits. Returns
    /// every problem found, each with its place in the document.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let mut err = |path: String, reason: String| {
            errors.push(Located {
                file: self.source.clone(),
                path,
                reason,
            })
        };

        if self.node_id.trim().is_empty() {
            err("node_id".into(), "must not be empty".into());
        }
        if self.listeners.proxy == self.listeners.admin {
            err(
                "listeners.admin".into(),
                format!(
                    "the admin listener {} must differ from the proxy listener",
                    self.listeners.admin
                ),
            );
        }
        if self.server.threads == 0 {
            err("server.threads".into(), "must be at least 1".into());
        }

        for (name, up) in &self.upstreams {
            let at = format!("upstreams.{name}");
            if up.embedded {
                if up.addrs.len() > 1 {
                    err(
                        format!("{at}.addrs"),
                        "an embedded upstream listens on at most one ip:port address".into(),
                    );
                }
                for (i, addr) in up.addrs.iter().enumerate() {
                    if addr.parse::<SocketAddr>().is_err() {
                        err(
                            format!("{at}.addrs[{i}]"),
                            format!("{addr:?} is not an ip:port address to listen on"),
                        );
                    }
                }
                continue;
            }
            if up.addrs.is_empty() {
                err(
                    format!("{at}.addrs"),
                    "needs at least one host:port address (or `embedded: true` for the demo)"
                        .into(),
                );
            }
            for (i, addr) in up.addrs.iter().enumerate() {
                if let Err(reason) = check_host_port(addr) {
                    err(format!("{at}.addrs[{i}]"), reason);
                }
            }
            if up.connect_timeout.is_zero() {
                err(format!("{at}.connect_timeout"), "must be above 0".into());
            }
            if up.read_timeout.is_zero() {
                err(format!("{at}.read_timeout"), "must be above 0".into());
            }
            if up.circuit_breaker.failures == 0 {
                err(
                    format!("{at}.circuit_breaker.failures"),
                    "must be at least 1".into(),
                );
            }
            if let Some(sni) = &up.sni {
                if !up.tls {
                    err(format!("{at}.sni"), "is set but `tls` is false".into());
                }
                if sni.trim().is_empty() {
                    err(format!("{at}.sni"), "must not be empty".into());
                }
            }
        }

        if let Some(jwt) = &self.identity.jwt {
            if jwt.issuer.trim().is_empty() {
                err("identity.jwt.issuer".into(), "must not be empty".into());
            }
            if jwt.audience.is_empty() {
                err(
                    "identity.jwt.audience".into(),
                    "needs at least one audience".into(),
                );
            }
            if jwt.algorithms.is_empty() {
                err(
                    "identity.jwt.algorithms".into(),
                    "needs at least one of RS256, ES256, EdDSA".into(),
                );
            }
            if jwt.jwks.trim().is_empty() {
                err(
                    "identity.jwt.jwks".into(),
                    "must name a JWKS file or URL".into(),
                );
            }
            let plain_http = jwt
                .jwks
                .trim()
                .get(..7)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
            if plain_http && !jwt.insecure_jwks_http {
                err(
                    "identity.jwt.jwks".into(),
                    format!(
                        "{:?} is fetched over plain http, where anyone on the path can swap the keys; \
                         use https:// (or set identity.jwt.insecure_jwks_http: true for a test IdP)",
                        jwt.jwks
                    ),
                );
            }
            if jwt.actor_claim.trim().is_empty() {
                err(
                    "identity.jwt.actor_claim".into(),
                    "must not be empty".into(),
                );
            }
            if jwt.refresh.is_zero() {
                err("identity.jwt.refresh".into(), "must be above 0".into());
            }
            if !(1..=MAX_JWT_CACHE).contains(&jwt.cache_capacity) {
                err(
                    "identity.jwt.cache_capacity".into(),
                    format!("{} is outside 1..={MAX_JWT_CACHE}", jwt.cache_capacity),
                );
            }
            // A FHIR route's SMART check reads `context.scope`: a token whose scopes are mapped
            // elsewhere (or not at all) would be refused on every FHIR request.
            let maps_scope = jwt.claims_to_context.values().any(|field| field == "scope");
            let fhir = self
                .routes
                .iter()
                .find(|r| matches!(r.classifier, ClassifierConfig::Fhir(_)));
            if let (false, Some(route)) = (maps_scope, fhir) {
                err(
                    "identity.jwt.claims_to_context".into(),
                    format!(
                        "route {} checks SMART scopes in context.scope, and no claim is mapped there; \
                         add `scope: scope` (and `patient: launch_patient` for patient/ scopes)",
                        route.name
                    ),
                );
            }
        }
        if let Some(local) = &self.identity.local_issuer {
            if local.roles.is_empty() || local.roles.iter().any(|r| r.trim().is_empty()) {
                err(
                    "identity.local_issuer.roles".into(),
                    "needs at least one role, none empty (e.g. [approver])".into(),
                );
            }
            if local.max_ttl < Duration::from_secs(60) || local.max_ttl > Duration::from_secs(86400)
            {
                err(
                    "identity.local_issuer.max_ttl".into(),
                    "must be from 1m to 24h".into(),
                );
            }
        }
        if let Some(h) = &self.identity.trusted_actor_header {
            if http_header_name_invalid(h) {
                err(
                    "identity.trusted_actor_header".into(),
                    format!("{h:?} is not a valid HTTP header name"),
                );
            }
        }

        let mut seen = BTreeMap::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            if route.name.trim().is_empty() {
                err(format!("{at}.name"), "must not be empty".into());
            } else if let Some(first) = seen.insert(route.name.as_str(), i) {
                err(
                    format!("{at}.name"),
                    format!(
                        "duplicate route name {:?} (first used by routes[{first}])",
                        route.name
                    ),
                );
            }
            if route.domain.trim().is_empty() {
                err(format!("{at}.domain"), "must not be empty".into());
            }
            if !self.upstreams.contains_key(&route.upstream) {
                err(
                    format!("{at}.upstream"),
                    format!(
                        "unknown upstream {:?}; defined upstreams: [{}]",
                        route.upstream,
                        self.upstreams
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            if let ClassifierConfig::Fhir(fhir) = &route.classifier {
                let service = fhir
                    .consent_lookup
                    .as_ref()
                    .and_then(|c| c.upstream.as_ref());
                if let Some(name) = service.filter(|n| !self.upstreams.contains_key(*n)) {
                    err(
                        format!("{at}.classifier.consent_lookup.upstream"),
                        format!(
                            "unknown upstream {name:?} for the consent service; defined upstreams: [{}]",
                            self.upstreams
                                .keys()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
            }
            if !route.matcher.path_prefix.starts_with('/') {
                err(
                    format!("{at}.match.path_prefix"),
                    format!("{:?} must start with '/'", route.matcher.path_prefix),
                );
            }
            for (j, m) in route.matcher.methods.iter().enumerate() {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    err(
                        format!("{at}.match.methods[{j}]"),
                        format!("{m:?} is not an HTTP method"),
                    );
                }
            }
            if let Some(host) = &route.matcher.host {
                if host.trim().is_empty() || host.contains('/') {
                    err(
                        format!("{at}.match.host"),
                        format!("{host:?} is not a host name"),
                    );
                }
            }
            if let Some(rl) = &route.rate_limit {
                for (field, reason) in rl.problems() {
                    err(format!("{at}.rate_limit.{field}"), reason);
                }
            }
            if !route.upgrade.is_empty() {
                if matches!(route.classifier, ClassifierConfig::Mcp(_)) {
                    err(
                        format!("{at}.upgrade"),
                        "an MCP route cannot take WebSockets: its classifier reads a JSON-RPC body, a handshake has none".into(),
                    );
                } else if !route.matcher.methods.is_empty()
                    && !route
                        .matcher
                        .methods
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case("GET"))
                {
                    err(
                        format!("{at}.upgrade"),
                        "a WebSocket handshake is a GET, which match.methods leaves out".into(),
                    );
                }
            }
            if route.body_limit.0 == 0 {
                err(
                    format!("{at}.body_limit"),
                    "must be above 0 bytes (the default is 1MiB)".into(),
                );
            } else if route.body_limit.0 > crate::sections::limits::MAX_BODY_LIMIT {
                err(
                    format!("{at}.body_limit"),
                    format!(
                        "{} bytes is above the most a route may hold in memory until its decision (64MiB)",
                        route.body_limit.0
                    ),
                );
            } else if route.body_limit.0 > self.limits.held_bodies.0 {
                err(
                    format!("{at}.body_limit"),
                    format!(
                        "{} bytes is above limits.held_bodies ({} bytes), the most all held bodies may take together: such a body could never be held",
                        route.body_limit.0, self.limits.held_bodies.0
                    ),
                );
            }
        }

        if self.unmatched == Unmatched::Passthrough
            && !self.upstreams.contains_key(DEFAULT_UPSTREAM)
        {
            err(
                "unmatched".into(),
                format!("`passthrough` needs an upstream named {DEFAULT_UPSTREAM:?}"),
            );
        }

        for domain in self.policies.keys() {
            if domain.trim().is_empty() {
                err("policies".into(), "a domain name must not be empty".into());
            }
        }
        self.validate_sections(&mut err);
        for (i, route) in self.routes.iter().enumerate() {
            errors.extend(
                route
                    .classifier
                    .validate(&self.source, &format!("routes[{i}].classifier")),
            );
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    /// The subsystem sections' own checks (`ledger`, `tokens`, `api`, `domain_settings`).
    fn validate_sections(&self, err: &mut impl FnMut(String, String)) {
        if let Some((path, reason)) = domain_settings_problem(&self.domain_settings) {
            err(path, reason);
        }
        if let Some(ledger) = self.ledger.settings() {
            for p in ledger.problems() {
                err(p.field.to_owned(), p.reason);
            }
        }
        for p in self.tokens.problems() {
            err(p.field.to_owned(), p.reason);
        }
        for (path, reason) in self.api.problems() {
            err(path, reason);
        }
        for p in self.limits.problems() {
            err(p.field.to_owned(), p.reason);
        }
        if let Some(cp) = &self.control_plane {
            for p in cp.problems() {
                err(p.field.to_owned(), p.reason);
            }
        }
    }

    /// The upstream a route sends to (validated to exist).
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.get(name)
    }
}

/// A YAML error's message without the path the YAML reader puts in front of it (the mapping that
/// holds the bad value): the error is located by `path` already.
fn without_yaml_path<'a>(path: &str, message: &'a str) -> &'a str {
    let mut end = path.len();
    while end > 0 {
        if let Some(rest) = message
            .strip_prefix(&path[..end])
            .and_then(|r| r.strip_prefix(": "))
        {
            return rest;
        }
        end = path[..end].rfind(['.', '[']).unwrap_or(0);
    }
    message
}

/// Checks `host:port` (host a name, IPv4, or `[IPv6]`).
fn check_host_port(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not host:port"))?;
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{addr:?}: port {port:?} is not a number from 1 to 65535"))?;
    if host.is_empty() {
        return Err(format!("{addr:?}: the host is empty"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok());
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "{addr:?}: {host:?} is not a bracketed IPv6 address"
            ))
        };
    }
    let valid_name = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    if valid_name {
        Ok(())
    } else {
        Err(format!("{addr:?}: {host:?} is not a host name or address"))
    }
}

fn http_header_name_invalid(name: &str) -> bool {
    name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
upstreams:
  tools: {addrs: ["127.0.0.1:7000"]}
routes:
  - name: mcp
    match: {path_prefix: /mcp, methods: [POST]}
    domain: ai
    upstream: tools
"#;

    fn invalid(text: &str) -> Vec<Located> {
        match Config::from_yaml("test.yaml", text) {
            Err(ConfigError::Invalid(errors)) => errors,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn upgrades_are_websocket_only_and_only_where_a_handshake_can_be_decided() {
        let route = |extra: &str| {
            format!("{MINIMAL}  - {{name: ws, domain: ai, upstream: tools{extra}}}\n")
        };
        let ok = Config::from_yaml("t.yaml", &route(", upgrade: [websocket]")).unwrap();
        assert_eq!(ok.routes[1].upgrade, vec![UpgradeProtocol::Websocket]);
        let h2c = Config::from_yaml("t.yaml", &route(", upgrade: [h2c]")).unwrap_err();
        assert!(h2c.to_string().contains("routes[1].upgrade"), "{h2c}");
        let mcp = invalid(&route(", classifier: {kind: mcp}, upgrade: [websocket]"));
        assert_eq!(mcp[0].path, "routes[1].upgrade", "{mcp:?}");
        let post = invalid(&route(", match: {methods: [POST]}, upgrade: [websocket]"));
        assert!(post[0].reason.contains("GET"), "{post:?}");
    }

    #[test]
    fn a_body_limit_above_the_budget_of_held_bodies_is_refused_where_it_is_set() {
        let text = |held: &str| {
            format!(
                "{MINIMAL}  - {{name: big, domain: ai, upstream: tools, body_limit: 2MiB}}\n\
                 limits: {{held_bodies: {held}}}\n"
            )
        };
        let errors = invalid(&text("1MiB"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "routes[1].body_limit");
        assert!(
            errors[0].reason.contains("limits.held_bodies"),
            "{errors:?}"
        );
        assert!(Config::from_yaml("t.yaml", &text("2MiB")).is_ok());
        let errors = invalid(&text("1KiB"));
        assert!(
            errors.iter().any(|e| e.path == "limits.held_bodies"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_fhir_route_behind_jwt_needs_the_scope_claim_mapped_for_its_smart_check() {
        let text = |mapping: &str| {
            format!(
                "{MINIMAL}  - {{name: ehr, domain: healthcare, upstream: tools, classifier: {{kind: fhir}}}}\n\
                 identity:\n  jwt: {{issuer: i, audience: a, jwks: j.json, claims_to_context: {mapping}}}\n"
            )
        };
        let errors = invalid(&text("{scope: smart_scopes}"));
        assert_eq!(
            errors[0].path, "identity.jwt.claims_to_context",
            "{errors:?}"
        );
        assert!(errors[0].reason.contains("route ehr"), "{errors:?}");
        assert!(Config::from_yaml("t.yaml", &text("{scope: scope}")).is_ok());
    }

    #[test]
    fn a_consent_service_must_be_a_defined_upstream_and_its_settings_well_formed() {
        let text = |lookup: &str| {
            let minimal = MINIMAL.replace(
                "  tools: {addrs: [\"127.0.0.1:7000\"]}\n",
                "  tools: {addrs: [\"127.0.0.1:7000\"]}\n  consent: {addrs: [\"127.0.0.1:7001\"]}\n",
            );
            format!(
                "{minimal}  - {{name: ehr, domain: healthcare, upstream: tools, classifier: {{kind: fhir, consent_lookup: {lookup}}}}}\n"
            )
        };
        let errors = invalid(&text("{upstream: consents}"));
        assert_eq!(
            errors[0].path, "routes[1].classifier.consent_lookup.upstream",
            "{errors:?}"
        );
        assert!(
            errors[0].reason.contains("\"consents\"")
                && errors[0].reason.contains("consent, tools"),
            "{errors:?}"
        );
        let errors = invalid(&text(
            "{upstream: consent, base_path: fhir, purpose: \"a b\", actor_claim: \"\"}",
        ));
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "routes[1].classifier.consent_lookup.actor_claim",
                "routes[1].classifier.consent_lookup.purpose",
                "routes[1].classifier.consent_lookup.base_path",
            ],
            "{errors:?}"
        );
        let c = Config::from_yaml(
            "t.yaml",
            &text("{upstream: consent, base_path: /r4, purpose: TREAT}"),
        )
        .unwrap();
        let ClassifierConfig::Fhir(fhir) = &c.routes[1].classifier else {
            panic!("a fhir route")
        };
        let lookup = fhir.consent_lookup.as_ref().unwrap();
        assert_eq!(lookup.upstream.as_deref(), Some("consent"));
        assert_eq!(lookup.actor_claim, "fhir_user");
        assert_eq!(lookup.purpose_claim, "purpose_of_use");
    }

    #[test]
    fn a_plain_http_jwks_url_needs_the_named_exception() {
        let jwt = |extra: &str| {
            format!(
                "{MINIMAL}identity:\n  jwt: {{issuer: i, audience: a, jwks: \"http://idp.test/jwks\"{extra}}}\n"
            )
        };
        let errors = invalid(&jwt(""));
        assert_eq!(errors[0].path, "identity.jwt.jwks", "{errors:?}");
        assert!(
            errors[0].reason.contains("insecure_jwks_http"),
            "{errors:?}"
        );
        assert!(Config::from_yaml("t.yaml", &jwt(", insecure_jwks_http: true")).is_ok());
    }

    #[test]
    fn minimal_file_gets_documented_defaults() {
        let c = Config::from_yaml("test.yaml", MINIMAL).unwrap();
        assert_eq!(c.listeners.proxy, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.listeners.admin, "127.0.0.1:9901".parse().unwrap());
        assert_eq!(c.unmatched, Unmatched::Deny);
        assert_eq!(c.mode, EnforceMode::Enforce);
        let r = &c.routes[0];
        assert_eq!(r.body_limit, ByteSize(1024 * 1024));
        assert_eq!(r.classifier, ClassifierConfig::None { action: None });
        assert_eq!(r.mode, None);
        let up = &c.upstreams["tools"];
        assert_eq!(up.connect_timeout, Duration::from_secs(1));
        assert_eq!(up.read_timeout, Duration::from_secs(30));
        assert_eq!(up.circuit_breaker, CircuitBreakerConfig::default());
        assert_eq!(c.identity.anonymous_actor, None);
        assert_eq!(c.server.grace_period, Duration::ZERO);
    }

    #[test]
    fn full_file_parses_every_section() {
        let text = r#"
node_id: sidecar-a1
data_dir: data
listeners: {proxy: "127.0.0.1:18080", admin: "127.0.0.1:19901"}
server: {threads: 2, grace_period: 0s, graceful_shutdown_timeout: 2s}
upstreams:
  tools:
    addrs: ["10.0.0.1:7000", "tools.internal:7001"]
    tls: true
    sni: tools.internal
    connect_timeout: 250ms
    read_timeout: 5s
    circuit_breaker: {failures: 3, open_for: 30s}
  demo: {embedded: true}
identity:
  jwt:
    issuer: https://idp.example
    audience: [lexecon, tools]
    leeway: 10s
    jwks: keys/jwks.json
    algorithms: [RS256, EdDSA]
    actor_claim: agent_id
    actor_prefix: "act_ai_agent:"
    claims_to_context: {tenant: tenant_id}
    refresh: 1m
  trusted_actor_header: x-agent-id
  anonymous_actor: "act_ai_agent:anonymous"
routes:
  - name: mcp
    match: {host: tools.example, path_prefix: /mcp, methods: [POST]}
    domain: ai
    classifier: {kind: none, action: axn_execute_tool}
    upstream: tools
    rate_limit: {per_actor: 600/m, burst: 20}
    body_limit: 64KiB
    mode: passthrough
unmatched: deny
mode: enforce
policies: {ai: policies/ai.yaml}
domain_packs: [packs/logistics.yaml]
ledger: {dir: ledger}
tokens: {ttl: 60s}
telemetry: {log_format: json}
"#;
        let mut c = Config::from_yaml("full.yaml", text).unwrap();
        assert_eq!(c.node_id, "sidecar-a1");
        let up = &c.upstreams["tools"];
        assert_eq!(up.addrs.len(), 2);
        assert_eq!(up.connect_timeout, Duration::from_millis(250));
        assert_eq!(up.circuit_breaker.failures, 3);
        assert!(c.upstreams["demo"].embedded);
        let jwt = c.identity.jwt.as_ref().unwrap();
        assert_eq!(jwt.audience, vec!["lexecon", "tools"]);
        assert_eq!(
            jwt.algorithms,
            vec![JwtAlgorithm::Rs256, JwtAlgorithm::EdDsa]
        );
        assert_eq!(jwt.claims_to_context["tenant"], "tenant_id");
        let r = &c.routes[0];
        assert_eq!(r.body_limit, ByteSize(64 * 1024));
        let rl = r.rate_limit.unwrap();
        assert_eq!(rl.per_actor.count, 600);
        assert_eq!(rl.per_actor.per, Duration::from_secs(60));
        assert_eq!(rl.effective_burst(), 20);
        assert_eq!(rl.max_actors, DEFAULT_MAX_ACTORS, "absent: the default");
        assert_eq!(r.mode, Some(EnforceMode::Passthrough));
        assert_eq!(c.telemetry.log_format, LogFormat::Json);

        c.resolve_paths(Path::new("/etc/lexecon"));
        assert_eq!(c.data_dir, PathBuf::from("/etc/lexecon/data"));
        assert_eq!(
            c.policies["ai"],
            PathBuf::from("/etc/lexecon/policies/ai.yaml")
        );
        assert_eq!(
            c.identity.jwt.unwrap().jwks_source(),
            JwksSource::File(PathBuf::from("/etc/lexecon/keys/jwks.json"))
        );
    }

    #[test]
    fn pin_file_of_an_mcp_route_resolves_against_the_config_directory() {
        let text = r#"
upstreams: {tools: {addrs: ["127.0.0.1:3"]}}
routes:
  - {name: a, match: {path_prefix: /a}, domain: ai, upstream: tools,
     classifier: {kind: mcp, pin_tools: {file: pins/tools.json}}}
  - {name: b, match: {path_prefix: /b}, domain: ai, upstream: tools,
     classifier: {kind: mcp, pin_tools: {file: /abs/tools.json, trust_on_first_use: true}}}
"#;
        let mut c = Config::from_yaml("pins.yaml", text).unwrap();
        c.resolve_paths(Path::new("/etc/lexecon"));
        let file = |i: usize| match &c.routes[i].classifier {
            crate::classifier::ClassifierConfig::Mcp(m) => {
                m.pin_tools.as_ref().unwrap().file.clone()
            }
            _ => panic!("not mcp"),
        };
        assert_eq!(file(0), PathBuf::from("/etc/lexecon/pins/tools.json"));
        assert_eq!(file(1), PathBuf::from("/abs/tools.json"));
    }

    #[test]
    fn single_audience_string_is_accepted() {
        let text = format!(
            "{MINIMAL}identity:\n  jwt: {{issuer: i, audience: lexecon, jwks: 'https://idp.example/jwks'}}\n"
        );
        let c = Config::from_yaml("t.yaml", &text).unwrap();
        let jwt = c.identity.jwt.unwrap();
        assert_eq!(jwt.audience, vec!["lexecon"]);
        assert_eq!(
            jwt.jwks_source(),
            JwksSource::Url("https://idp.example/jwks".into())
        );
    }

    #[test]
    fn unknown_field_is_rejected_with_its_name() {
        let errors = invalid("listeners: {proxy: '127.0.0.1:1', admn: '127.0.0.1:2'}\n");
        assert!(errors[0].reason.contains("admn"), "{:?}", errors);
        assert_eq!(errors[0].file, "test.yaml");
    }

    #[test]
    fn every_semantic_problem_is_reported_at_its_place() {
        let text = r#"
upstreams:
  tools: {addrs: ["127.0.0.1", "host:0", "bad host:80"], circuit_breaker: {failures: 0}}
routes:
  - name: a
    domain: ai
    upstream: nowhere
    body_limit: 0
  - name: a
    match: {path_prefix: mcp, methods: ["PO ST"]}
    domain: ai
    upstream: tools
    rate_limit: {per_actor: 5/s, burst: 0}
  - name: huge
    domain: ai
    upstream: tools
    body_limit: 65MiB
unmatched: passthrough
limits: {header_count: 1000}
"#;
        let errors = invalid(text);
        let at: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "upstreams.tools.addrs[0]",
            "upstreams.tools.addrs[1]",
            "upstreams.tools.addrs[2]",
            "upstreams.tools.circuit_breaker.failures",
            "routes[0].upstream",
            "routes[0].body_limit",
            "routes[1].name",
            "routes[1].match.path_prefix",
            "routes[1].match.methods[0]",
            "routes[1].rate_limit.burst",
            "routes[2].body_limit",
            "limits.header_count",
            "unmatched",
        ] {
            assert!(at.contains(&expected), "missing {expected} in {at:?}");
        }
        let unknown = errors
            .iter()
            .find(|e| e.path == "routes[0].upstream")
            .unwrap();
        assert!(unknown.reason.contains("nowhere") && unknown.reason.contains("tools"));
        let dup = errors.iter().find(|e| e.path == "routes[1].name").unwrap();
        assert!(dup.reason.contains("routes[0]"));
    }

    #[test]
    fn bad_classifier_patterns_are_reported_at_their_route() {
        let text = r#"
upstreams:
  tools: {addrs: ["127.0.0.1:7000"]}
routes:
  - name: mcp
    domain: ai
    upstream: tools
    classifier: {kind: mcp, tools: {"delete_[": axn_delete_data}}
"#;
        let errors = invalid(text);
        assert!(
            errors
                .iter()
                .any(|e| e.path.starts_with("routes[0].classifier.tools")),
            "{errors:?}"
        );
    }

    #[test]
    fn rate_limit_syntax_is_typed_and_checked() {
        let r = RateLimit::parse("50/s").unwrap();
        assert_eq!((r.count, r.per), (50, Duration::from_secs(1)));
        assert_eq!(r.period(), Duration::from_millis(20));
        assert_eq!(
            RateLimit::parse("600/m").unwrap().per,
            Duration::from_secs(60)
        );
        assert_eq!(RateLimit::parse("10/hour").unwrap().to_string(), "10/h");
        assert!(RateLimit::parse("50").unwrap_err().contains("N/s"));
        assert!(RateLimit::parse("0/s").unwrap_err().contains("at least 1"));
        assert!(RateLimit::parse("5/d")
            .unwrap_err()
            .contains("unknown unit"));
        let text = MINIMAL.replace(
            "upstream: tools",
            "upstream: tools\n    rate_limit: {per_actor: fast}",
        );
        let errors = invalid(&text);
        assert!(errors[0].reason.contains("fast"), "{errors:?}");
    }

    #[test]
    fn byte_sizes_accept_numbers_and_units() {
        assert_eq!(ByteSize::parse("1MiB").unwrap(), ByteSize(1 << 20));
        assert_eq!(ByteSize::parse("64 KiB").unwrap(), ByteSize(65536));
        assert_eq!(ByteSize::parse("2MB").unwrap(), ByteSize(2_000_000));
        assert!(ByteSize::parse("lots").is_err());
        assert!(ByteSize::parse("5 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
    }

    #[test]
    fn embedded_upstream_needs_no_addresses_but_others_do() {
        let text = "upstreams:\n  demo: {embedded: true}\n  empty: {}\n  demo2: {embedded: true, addrs: [localhost:1]}\n";
        let errors = invalid(text);
        let at: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            at,
            vec!["upstreams.demo2.addrs[0]", "upstreams.empty.addrs"]
        );
    }

    #[test]
    fn ipv6_and_host_names_are_valid_upstream_addresses() {
        assert!(check_host_port("[::1]:8080").is_ok());
        assert!(check_host_port("tools.internal:443").is_ok());
        assert!(check_host_port("[::1:8080").is_err());
    }

    #[test]
    fn load_reads_file_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lexecon.yaml");
        std::fs::write(&path, format!("{MINIMAL}policies: {{ai: ai.yaml}}\n")).unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.policies["ai"], dir.path().join("ai.yaml"));
        assert_eq!(c.source, path.display().to_string());
        let missing = Config::load(&dir.path().join("nope.yaml")).unwrap_err();
        assert!(matches!(missing, ConfigError::Io { .. }));
    }
}
