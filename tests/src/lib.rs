//! Lexecon's end-to-end suites (`tests/tests/*.rs`, one test binary each) and what they share:
//! free ports, a recording HTTP upstream, a rule-table stand-in for the decision engine (tests only —
//! not the product's engine), an HTTP client, starting the server in-process, and the path of the
//! real `lexecon` binary ([`lexecon_binary`]) for the suites that run it as a process.
//!
//! Never used by the product: this crate exists only to test it.

// Test helpers: a failed setup step should fail the test loudly, so unwrap and panic are fine here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod api_harness;
pub mod process;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use lexecon::enforce::{DecisionPoint, EnforceError, Refused};
use lexecon::server::{ServeOptions, ServerHandle, SetupError};
use lexecon_domains::Verdict;
use lexecon_policy_cache::{Decision, DecisionInput, Explanation};

/// A port that was free a moment ago on 127.0.0.1, for the server's listeners.
///
/// Chosen at random below Linux's ephemeral range (32768+), so that sockets other tests bind to
/// port 0 (upstreams, clients) can never take it between this check and the server's bind.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::AtomicU32;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // One seed per process: recomputed per call (it once was), two calls could land on the same
    // port (the second call's seed a stride behind the first's), and a test got its proxy and
    // admin listeners on one address.
    static SEED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::process::id().wrapping_mul(2_654_435_761).wrapping_add(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        )
    });
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        // A stride coprime to the range walks every port once before repeating.
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7919)) % 12_000) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().unwrap();
        }
    }
}

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 upstream on 127.0.0.1 that records every request and answers
/// `200 {"upstream":"ok"}`, keeping connections alive. It notes each request line the moment
/// the request's headers arrive ([`TestUpstream::heads`]), before it reads any body, so a test
/// can tell "the upstream saw nothing" from "the upstream saw headers whose body never came".
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub answer: Arc<Vec<u8>>,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// `METHOD target` of every request whose headers arrived, complete or not.
    pub heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestUpstream {
    pub fn start() -> Self {
        Self::answering(br#"{"upstream":"ok"}"#)
    }

    /// An upstream that answers every request with `answer` (JSON).
    pub fn answering(answer: &[u8]) -> Self {
        let answer = Arc::new(answer.to_vec());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rec, hd, st, ans) = (
            received.clone(),
            heads.clone(),
            stop.clone(),
            answer.clone(),
        );
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (rec, hd, ans) = (rec.clone(), hd.clone(), ans.clone());
                std::thread::spawn(move || serve_connection(conn, rec, hd, ans));
            }
        });
        Self {
            addr,
            answer,
            received,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// `METHOD target` of every request whose headers reached the upstream, body read or not.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_connection(
    conn: TcpStream,
    received: Arc<Mutex<Vec<Received>>>,
    heads: Arc<Mutex<Vec<String>>>,
    answer: Arc<Vec<u8>>,
) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    conn.set_nodelay(true).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        heads.lock().unwrap().push(format!("{method} {path}"));
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if chunked {
            body = read_chunked(&mut reader);
        }
        received.lock().unwrap().push(Received {
            method,
            path,
            headers,
            body,
        });
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        // One write: a head and body written separately wait on Nagle + delayed ACK (~40 ms).
        let mut out = head.into_bytes();
        out.extend_from_slice(&answer);
        if writer.write_all(&out).is_err() {
            return;
        }
    }
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return body;
        }
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let mut chunk = vec![0; n + 2];
        if reader.read_exact(&mut chunk).is_err() {
            return body;
        }
        if n == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

/// A rule table standing in for the decision engine in tests of the proxy plumbing: deny the
/// actions in `deny`, escalate those in `escalate`, fail with 404 for domain `nowhere`, permit the
/// rest. Records every input, and every refusal made before a decision as (by, reason).
/// With `redeem_fails`, redeeming an approval fails as an unavailable approval store would (503).
#[derive(Default)]
pub struct RuleTable {
    pub deny: Vec<String>,
    pub escalate: Vec<String>,
    pub calls: AtomicUsize,
    pub seen: Mutex<Vec<DecisionInput>>,
    pub refused: Mutex<Vec<(String, String)>>,
    pub redeem_fails: bool,
}

impl RuleTable {
    pub fn new(deny: &[&str], escalate: &[&str]) -> Arc<Self> {
        Arc::new(Self {
            deny: deny.iter().map(|s| s.to_string()).collect(),
            escalate: escalate.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> Option<DecisionInput> {
        self.seen.lock().unwrap().last().cloned()
    }

    /// The refusals recorded so far, as (by, reason).
    pub fn refusals(&self) -> Vec<(String, String)> {
        self.refused.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl DecisionPoint for RuleTable {
    async fn record_refusal(&self, refused: &Refused<'_>) -> Result<(), EnforceError> {
        self.refused
            .lock()
            .unwrap()
            .push((refused.by.to_owned(), refused.reason.to_owned()));
        Ok(())
    }

    async fn redeem(
        &self,
        decision: Decision,
        _approval_id: &str,
        _digest: lexecon_approvals::RequestDigest,
    ) -> Result<Decision, EnforceError> {
        if self.redeem_fails {
            return Err(EnforceError::new(503, "approval store unavailable"));
        }
        Ok(decision)
    }

    fn decide(&self, input: DecisionInput) -> Result<Decision, EnforceError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.seen.lock().unwrap().push(input.clone());
        if input.domain == "nowhere" {
            return Err(EnforceError::new(404, "unknown domain \"nowhere\""));
        }
        let (verdict, rule, reason) = if self.deny.contains(&input.action) {
            (
                Verdict::Deny,
                "test-deny",
                format!("{} is forbidden", input.action),
            )
        } else if self.escalate.contains(&input.action) {
            (
                Verdict::Escalate,
                "test-escalate",
                format!("{} needs approval", input.action),
            )
        } else {
            (Verdict::Permit, "test-permit", "permitted".to_string())
        };
        Ok(Decision {
            request_id: input
                .request_id
                .clone()
                .unwrap_or_else(|| format!("req-{n}")),
            decision_id: format!("dec-{n}"),
            domain: input.domain.clone(),
            actor: input.actor.clone(),
            action: input.action.clone(),
            resource: input.resource.clone(),
            decision: verdict,
            reasoning: reason.into(),
            rule_id: rule.to_string().into(),
            policy_version_hash: "test".into(),
            compliance_mappings: vec![].into(),
            risk_level: 1,
            requires_human_approval: verdict == Verdict::Escalate,
            review_required: false,
            explanation: Explanation {
                matched_rules: vec![rule.into()].into(),
                findings: vec![],
                would_have: None,
                cached: false,
            },
            timestamp: jiff::Timestamp::now(),
        })
    }
}

/// Starts the server with the YAML made by `yaml(proxy_addr, admin_addr)`, retrying with new ports
/// if one was taken meanwhile.
pub fn start(
    yaml: impl Fn(SocketAddr, SocketAddr) -> String,
    decider: Arc<dyn DecisionPoint>,
) -> ServerHandle {
    let mut last = None;
    for _ in 0..5 {
        let text = yaml(free_addr(), free_addr());
        let config = lexecon_config::Config::from_yaml("test.yaml", &text)
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"));
        match ServerHandle::start(config, ServeOptions::new(decider.clone())) {
            Ok(h) => return h,
            Err(e @ (SetupError::Listen { .. } | SetupError::NotReady { .. })) => last = Some(e),
            Err(e) => panic!("server did not start: {e}"),
        }
    }
    panic!("server did not start: {last:?}");
}

/// A blocking HTTP client that reports every status instead of failing on 4xx/5xx.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// A response as status, headers and body text.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn reply(r: Result<http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut r = r.unwrap();
    Reply {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.call())
}

pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut req = client().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.send(body))
}

/// Sends one HTTP/1.1 request on `conn` and reads one response (status, body).
pub fn exchange(conn: &mut std::net::TcpStream, request: &str) -> (u16, String) {
    conn.write_all(request.as_bytes()).unwrap();
    read_response(conn)
}

/// Reads one HTTP/1.1 response (status, body by content-length) from `conn`.
pub fn read_response(conn: &mut std::net::TcpStream) -> (u16, String) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let code: u16 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    (code, String::from_utf8(body).unwrap())
}

/// An Ed25519 key pair for test tokens (RFC 8037, appendix A.1) and its JWKS.
pub const ED_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";
pub const ED_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"test-key","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed with the test key (kid `test-key`).
pub fn token(claims: serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("test-key".into());
    let key = jsonwebtoken::EncodingKey::from_ed_pem(ED_PRIVATE_PEM.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

// --- engine-backed servers ---
// The product as shipped: `Engine::from_config` on a temporary data directory with real policy
// files, started in-process with `ServeOptions::with_engine`; plus scripted upstreams that stream.

/// The repository's `deploy/` directory (real policy files live in `deploy/policies/`).
pub fn deploy_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// A running server with the real engine, its configuration file and data directory.
pub struct EngineServer {
    pub handle: Option<ServerHandle>,
    pub engine: Arc<lexecon::engine::Engine>,
    pub dir: tempfile::TempDir,
    pub config_path: std::path::PathBuf,
}

impl EngineServer {
    /// Starts the product with the YAML made by `yaml(proxy_addr, admin_addr, dir)`; it should set
    /// `data_dir` below `dir`. Retries with new ports if one was taken meanwhile.
    pub fn start(yaml: impl Fn(SocketAddr, SocketAddr, &std::path::Path) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("lexecon.yaml");
        let mut engine: Option<Arc<lexecon::engine::Engine>> = None;
        let mut last = None;
        for _ in 0..5 {
            std::fs::write(&config_path, yaml(free_addr(), free_addr(), dir.path())).unwrap();
            let config = lexecon_config::Config::load(&config_path)
                .unwrap_or_else(|e| panic!("test config invalid: {e}"));
            let engine = engine
                .get_or_insert_with(|| {
                    Arc::new(
                        lexecon::engine::Engine::from_config(&config)
                            .unwrap_or_else(|e| panic!("engine did not build: {e}")),
                    )
                })
                .clone();
            match ServerHandle::start(config, ServeOptions::with_engine(engine.clone())) {
                Ok(h) => {
                    return Self {
                        handle: Some(h),
                        engine,
                        dir,
                        config_path,
                    }
                }
                Err(e @ (SetupError::Listen { .. } | SetupError::NotReady { .. })) => {
                    last = Some(e)
                }
                Err(e) => panic!("server did not start: {e}"),
            }
        }
        panic!("server did not start: {last:?}");
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().unwrap()
    }

    /// `http://<proxy><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.handle().proxy_addr)
    }

    /// Re-reads the configuration file and its policies (`run::reload`), as SIGHUP does.
    pub fn reload(&self) -> anyhow::Result<()> {
        let source = lexecon::run::Source::File(self.config_path.clone());
        lexecon::run::reload(&source, &self.engine, self.handle().state()).map(|_| ())
    }

    /// The ledger directory (`<data_dir>/ledger`).
    pub fn ledger_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data").join("ledger")
    }

    /// Stops the server, flushes the ledger, and returns every ledger entry (as JSON) after
    /// checking that the chain verifies with the engine's key.
    pub fn stop_and_read_ledger(&mut self) -> Vec<serde_json::Value> {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
        if let Some(ledger) = self.engine.ledger() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(ledger.shutdown()).unwrap();
        }
        let key = self.engine.keys().signer().verifying_key();
        let report = lexecon_ledger::verify_dir(&self.ledger_dir(), Some(&key)).unwrap();
        assert!(
            report.first_error.is_none(),
            "ledger does not verify: {:?}",
            report.first_error
        );
        let mut out = Vec::new();
        lexecon_ledger::export(
            &self.ledger_dir(),
            None,
            None,
            lexecon_ledger::ExportFormat::Jsonl,
            &mut out,
        )
        .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Reads one HTTP/1.1 request (headers, and a body by content-length) from `reader`.
fn read_one_request(reader: &mut BufReader<TcpStream>) -> Option<Received> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}

/// An upstream that answers every request with `200`, the given content type and a chunked body
/// written part by part. With `gated`, each part after the first waits for [`Self::release`]
/// (at most 10 s), so a test can prove the first part went through before the rest exists.
pub struct StreamingUpstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    gate: Mutex<std::sync::mpsc::Sender<()>>,
}

impl StreamingUpstream {
    pub fn start(content_type: &str, parts: Vec<Vec<u8>>, gated: bool) -> Self {
        Self::with_headers(&format!("content-type: {content_type}\r\n"), parts, gated)
    }

    /// [`Self::start`] with the response header lines `head` (each ending in CRLF).
    pub fn with_headers(head: &str, parts: Vec<Vec<u8>>, gated: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let (rec, ct) = (received.clone(), head.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (rec, ct, parts, rx) = (rec.clone(), ct.clone(), parts.clone(), rx.clone());
                std::thread::spawn(move || {
                    conn.set_nodelay(true).ok();
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut writer = conn;
                    while let Some(req) = read_one_request(&mut reader) {
                        rec.lock().unwrap().push(req);
                        let head =
                            format!("HTTP/1.1 200 OK\r\n{ct}transfer-encoding: chunked\r\n\r\n");
                        if writer.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        for (i, part) in parts.iter().enumerate() {
                            if gated && i > 0 {
                                let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
                            }
                            let chunk = format!("{:X}\r\n", part.len());
                            let mut out = chunk.into_bytes();
                            out.extend_from_slice(part);
                            out.extend_from_slice(b"\r\n");
                            if writer
                                .write_all(&out)
                                .and_then(|()| writer.flush())
                                .is_err()
                            {
                                return;
                            }
                        }
                        if writer.write_all(b"0\r\n\r\n").is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            received,
            gate: Mutex::new(tx),
        }
    }

    /// Lets the next gated part go.
    pub fn release(&self) {
        let _ = self.gate.lock().unwrap().send(());
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// The real `lexecon` binary, built once per test process with the same cargo and profile that
/// built this test (`cargo build -p lexecon --bin lexecon`; a no-op when it is up to date). A test
/// crate cannot name another package's binary (`CARGO_BIN_EXE_*` is set only for the package's
/// own), so the suites that run the binary as a process find it here.
pub fn lexecon_binary() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // target/<profile>/deps/<test binary> → target/<profile>
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_owned();
            let target_dir = profile_dir.parent().unwrap();
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let mut build = std::process::Command::new(cargo);
            build
                .args(["build", "--quiet", "-p", "lexecon", "--bin", "lexecon"])
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if release {
                build.arg("--release");
            }
            let status = build.status().unwrap();
            assert!(status.success(), "building the lexecon binary failed");
            profile_dir.join("lexecon")
        })
        .clone()
}

/// The entries of the ledger in `dir`, once `lexecon ledger verify` (the real binary, as an
/// operator runs it) says its hash chain holds: a suite that stopped a sidecar reads what it
/// recorded from here. Panics, with the verifier's report, when the chain does not verify.
pub fn verified_ledger_entries(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let verify = std::process::Command::new(lexecon_binary())
        .args(["ledger", "verify", dir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "the ledger does not verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let mut exported = Vec::new();
    lexecon_ledger::export(
        dir,
        None,
        None,
        lexecon_ledger::ExportFormat::Jsonl,
        &mut exported,
    )
    .unwrap();
    String::from_utf8(exported)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
