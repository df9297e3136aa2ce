//! Upstream faults end to end (issue 18): a real upstream on loopback is killed, hung and restarted
//! on the same port while a client sends requests through the product (real engine and policy).
//! Every answer while it is down is a clear JSON refusal naming the route, the upstream and the
//! reason (502 refused, 504 timed out, 503 circuit open); no request outlives its timeout; the
//! circuit breaker opens after `failures` failures, refuses without contacting the upstream for
//! `open_for`, then closes on the first success; `/health`, `/metrics` and the log say so.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lexecon_tests as support;
use support::api_harness::{AGENT, AI_POLICY};
use support::{get, EngineServer, Reply};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const READ_TIMEOUT: Duration = Duration::from_millis(400);
const FAILURES: usize = 3;
const OPEN_FOR: Duration = Duration::from_millis(1500);
/// Slack for a loaded 2-core CI machine on top of a timeout: a request must end within its
/// timeout plus this, never hang.
const MARGIN: Duration = Duration::from_millis(1000);

/// What the upstream does with a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `200 {"upstream":"ok"}`, keep-alive.
    Answer,
    /// Reads the request and never answers (a frozen process).
    Hang,
}

/// The open connections of an upstream (a handle to shut each down) and their threads.
type Conns = Arc<Mutex<Vec<(TcpStream, JoinHandle<()>)>>>;

/// A raw HTTP/1.1 upstream on a fixed loopback port that can be killed (listener closed, every
/// connection shut down, all threads joined) and started again on the same port.
struct Upstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections accepted by this instance: the upstream was contacted.
    accepted: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    conns: Conns,
    acceptor: Option<JoinHandle<()>>,
}

impl Upstream {
    fn start(mode: Mode) -> Self {
        Self::bind(TcpListener::bind("127.0.0.1:0").unwrap(), mode)
    }

    /// Starts again on `addr` (retrying the bind for a moment, should the port linger).
    fn restart(addr: SocketAddr, mode: Mode) -> Self {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(addr) {
                Ok(l) => return Self::bind(l, mode),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {addr}: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot rebind the upstream on {addr}: {e}"),
            }
        }
    }

    fn bind(listener: TcpListener, mode: Mode) -> Self {
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let conns: Conns = Arc::default();
        let (st, acc, ans, cs) = (
            stop.clone(),
            accepted.clone(),
            answered.clone(),
            conns.clone(),
        );
        let acceptor = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                let handle = conn.try_clone().unwrap();
                let ans = ans.clone();
                let t = std::thread::spawn(move || serve(conn, mode, &ans));
                cs.lock().unwrap().push((handle, t));
            }
            // The listener is dropped here: the port refuses connections from now on.
        });
        Self {
            addr,
            stop,
            accepted,
            answered,
            conns,
            acceptor: Some(acceptor),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Kills it: the port is closed and every open connection reset when this returns.
    fn kill(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = TcpStream::connect(self.addr);
            t.join().unwrap();
        }
        for (conn, t) in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
            t.join().unwrap();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shut();
    }
}

fn serve(mut conn: TcpStream, mode: Mode, answered: &AtomicUsize) {
    conn.set_nodelay(true).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // One request: its head, then its content-length body.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + len);
        if mode == Mode::Hang {
            // Never answer; return when the proxy gives up or the upstream is killed.
            while matches!(conn.read(&mut chunk), Ok(n) if n > 0) {}
            return;
        }
        let body = br#"{"upstream":"ok"}"#;
        let mut out = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        if conn.write_all(&out).is_err() {
            return;
        }
        answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// Every log line the process writes (the proxy runs in this process), for asserting on.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(logs))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

struct LogWriter(&'static Mutex<Vec<u8>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines mentioning `needle` and `upstream=<name>`.
fn log_lines(upstream: &str, needle: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains(needle) && l.contains(&format!("upstream={upstream}")))
        .map(str::to_owned)
        .collect()
}

/// The product with the `ai` test policy, route `items` (GET /v1/items, a permitted read) to
/// upstream `name` at `up`.
fn server(name: &'static str, up: SocketAddr) -> EngineServer {
    logs();
    EngineServer::start(move |proxy, admin, dir| {
        let policy = dir.join("ai.yaml");
        std::fs::write(&policy, AI_POLICY).unwrap();
        format!(
            r#"
data_dir: "{data}"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  {name}:
    addrs: ["{up}"]
    connect_timeout: {connect}ms
    read_timeout: {read}ms
    circuit_breaker: {{failures: {FAILURES}, open_for: {open_for}ms}}
identity: {{trusted_actor_header: x-agent-id}}
routes:
  - name: items
    match: {{path_prefix: /v1}}
    domain: ai
    classifier:
      kind: rest
      operations:
        - {{method: GET, path: /v1/items, action: axn_read_data}}
    upstream: {name}
policies:
  ai: "{policy}"
"#,
            data = dir.join("data").display(),
            policy = policy.display(),
            connect = CONNECT_TIMEOUT.as_millis(),
            read = READ_TIMEOUT.as_millis(),
            open_for = OPEN_FOR.as_millis(),
        )
    })
}

/// One request through the proxy, with when it started and how long it took.
struct Sent {
    start: Instant,
    took: Duration,
    reply: Reply,
}

impl Sent {
    fn end(&self) -> Instant {
        self.start + self.took
    }
    fn error(&self) -> String {
        if self.reply.status == 200 {
            return String::new();
        }
        self.reply.json()["error"].as_str().unwrap_or("").to_owned()
    }
}

fn send(server: &EngineServer) -> Sent {
    let start = Instant::now();
    let reply = get(&server.url("/v1/items"), &[("x-agent-id", AGENT)]);
    Sent {
        start,
        took: start.elapsed(),
        reply,
    }
}

/// A refusal is a JSON deny naming the route, the upstream and `reason`, with `status`/`error`.
fn assert_refusal(s: &Sent, status: u16, error: &str, upstream: &str, reason: &str) {
    assert_eq!(s.reply.status, status, "{}", s.reply.body);
    let body = s.reply.json();
    assert_eq!(body["decision"], "deny", "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["domain"], "ai", "{body}");
    let text = body["reason"].as_str().unwrap_or("");
    for part in ["route items", &format!("upstream {upstream}"), reason] {
        assert!(text.contains(part), "reason lacks {part:?}: {body}");
    }
}

fn admin_json(server: &EngineServer, path: &str) -> serde_json::Value {
    let r = get(&format!("http://{}{path}", server.handle().admin_addr), &[]);
    r.json()
}

fn metrics(server: &EngineServer) -> String {
    get(
        &format!("http://{}/metrics", server.handle().admin_addr),
        &[],
    )
    .body
}

fn transitions(metrics: &str, upstream: &str, state: &str) -> u64 {
    let prefix = format!(
        "lexecon_circuit_breaker_transitions_total{{state=\"{state}\",upstream=\"{upstream}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.parse().unwrap())
}

#[test]
fn killed_upstream_gets_clear_refusals_the_breaker_opens_then_closes_when_it_returns() {
    let up = Upstream::start(Mode::Answer);
    let addr = up.addr;
    let server = server("app", addr);

    // Up: forwarded.
    for _ in 0..3 {
        let s = send(&server);
        assert_eq!(s.reply.status, 200, "{}", s.reply.body);
    }
    assert_eq!(up.answered(), 3);
    let health = admin_json(&server, "/health");
    assert_eq!(health["checks"]["upstreams"]["breakers"]["app"], "closed");

    // Killed: each request is refused 502 quickly, until `failures` of them open the breaker.
    up.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = Vec::new();
    let open = loop {
        assert!(Instant::now() < deadline, "the breaker never opened");
        let s = send(&server);
        assert!(
            s.took < CONNECT_TIMEOUT + MARGIN,
            "a request to the dead upstream took {:?}",
            s.took
        );
        if s.error() == "upstream_circuit_open" {
            break s;
        }
        assert_refusal(&s, 502, "upstream_unavailable", "app", "failed");
        refused.push(s);
    };
    assert_eq!(refused.len(), FAILURES, "502s before the breaker opened");
    assert_refusal(
        &open,
        503,
        "upstream_circuit_open",
        "app",
        "circuit breaker is open",
    );
    // INVARIANT of the checks below: the breaker opened during the last refused request, so it
    // refuses at least until `window` (it may have opened a little later, never earlier).
    let window = refused.last().unwrap().start + OPEN_FOR;

    // Open, and the upstream back on its port: still refused, and never contacted.
    let up = Upstream::restart(addr, Mode::Answer);
    let health = admin_json(&server, "/health");
    let metrics_open = metrics(&server);
    assert!(
        Instant::now() < window,
        "too slow to observe the open breaker within open_for ({OPEN_FOR:?})"
    );
    assert_eq!(
        health["checks"]["upstreams"]["breakers"]["app"], "open",
        "{health}"
    );
    assert_eq!(health["checks"]["upstreams"]["status"], "degraded");
    assert_eq!(
        transitions(&metrics_open, "app", "open"),
        1,
        "{metrics_open}"
    );
    assert_eq!(transitions(&metrics_open, "app", "closed"), 0);
    for _ in 0..3 {
        let s = send(&server);
        if s.end() >= window {
            break;
        }
        assert_refusal(
            &s,
            503,
            "upstream_circuit_open",
            "app",
            "circuit breaker is open",
        );
        assert!(
            s.took < MARGIN,
            "a refusal of the open breaker took {:?}",
            s.took
        );
        assert_eq!(up.accepted(), 0, "the open breaker let a request through");
    }

    // After open_for the next request probes, succeeds and closes it: forwarded again.
    let deadline = window + Duration::from_secs(5);
    let closed = loop {
        assert!(Instant::now() < deadline, "the breaker never closed");
        let s = send(&server);
        if s.reply.status == 200 {
            break s;
        }
        assert_refusal(
            &s,
            503,
            "upstream_circuit_open",
            "app",
            "circuit breaker is open",
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(closed.end() >= window, "forwarded before open_for elapsed");
    assert_eq!(closed.reply.json()["upstream"], "ok");
    for _ in 0..3 {
        let s = send(&server);
        assert_eq!(s.reply.status, 200, "{}", s.reply.body);
    }
    assert_eq!(up.answered(), 4);

    let health = admin_json(&server, "/health");
    assert_eq!(health["checks"]["upstreams"]["breakers"]["app"], "closed");
    assert_eq!(health["checks"]["upstreams"]["status"], "ok");
    let m = metrics(&server);
    assert_eq!(transitions(&m, "app", "open"), 1, "{m}");
    assert_eq!(transitions(&m, "app", "closed"), 1, "{m}");
    assert!(
        m.contains("lexecon_requests_total{outcome=\"circuit_open\",route=\"items\"}"),
        "{m}"
    );
    // And the log says so, once each.
    assert_eq!(
        log_lines("app", "upstream circuit breaker opened").len(),
        1,
        "{:?}",
        log_lines("app", "circuit breaker")
    );
    assert_eq!(
        log_lines("app", "upstream circuit breaker closed").len(),
        1,
        "{:?}",
        log_lines("app", "circuit breaker")
    );
    drop(up);
}

#[test]
fn hung_upstream_is_answered_504_within_the_read_timeout_by_every_client() {
    let up = Upstream::start(Mode::Hang);
    let server = Arc::new(server("frozen", up.addr));

    // Four clients at once, twice each: no request outlives the read timeout; the first answers
    // are 504 timeouts, and once `failures` of them opened the breaker the rest are 503.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let server = server.clone();
            std::thread::spawn(move || (0..2).map(|_| send(&server)).collect::<Vec<_>>())
        })
        .collect();
    let sent: Vec<Sent> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let mut timeouts = 0;
    for s in &sent {
        assert!(
            s.took < READ_TIMEOUT + MARGIN,
            "a request to the hung upstream took {:?}",
            s.took
        );
        match s.error().as_str() {
            "upstream_timeout" => {
                assert_refusal(s, 504, "upstream_timeout", "frozen", "timed out");
                assert!(s.took >= READ_TIMEOUT, "timed out early: {:?}", s.took);
                timeouts += 1;
            }
            _ => assert_refusal(
                s,
                503,
                "upstream_circuit_open",
                "frozen",
                "circuit breaker is open",
            ),
        }
    }
    assert!(timeouts >= FAILURES, "{timeouts} timeouts");
    assert_eq!(up.answered(), 0);
    let m = metrics(&server);
    assert!(transitions(&m, "frozen", "open") >= 1, "{m}");
    assert!(!log_lines("frozen", "upstream circuit breaker opened").is_empty());
}
