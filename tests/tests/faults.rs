//! Faults, with the real binary (issue 18): `lexecon serve` whose ledger fills its filesystem
//! answers 503 and reports itself unhealthy while the disk is full, then heals by itself once
//! space is freed — `/health` back to ok, requests answered, a `ledger_recovered` entry, and
//! `lexecon ledger verify` passes after it stops.
//!
//! Start-up faults — a ledger directory on a read-only filesystem or that cannot be created, a key
//! file missing or unreadable, a port in use — stop `lexecon serve` with one `error:` line and a
//! non-zero exit, before anything is recorded or listens.
//!
//! The disk-full and read-only cases mount a 3 MiB tmpfs and so needs root (CI runs as root); elsewhere it says
//! so and passes without checking anything (proxy/ledger/tests/ledger_heal.rs checks the writer's
//! side through its I/O seam everywhere).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::process::{exit_status, signal, Served};
use support::{deploy_dir, free_addr, get, post, TestUpstream};

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`; `None`, with the reason printed, where this machine does
    /// not allow it.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a {size} tmpfs on {} ({}): the disk-full test needs root",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount ({e}): the disk-full test needs it");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Waits (up to 30 s) for `what`, failing if the child exits meanwhile.
fn wait_for(child: &mut Child, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("lexecon serve exited ({status}) while waiting until {what}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A configuration serving the MCP route in front of `tools`, data under `<dir>/data`, with the
/// top-level `extra` YAML (`ledger:`, `tokens:`).
fn write_config(
    dir: &Path,
    proxy: SocketAddr,
    admin: SocketAddr,
    tools: SocketAddr,
    extra: &str,
) -> PathBuf {
    let policy = std::fs::read_to_string(deploy_dir().join("policies/ai.yaml")).unwrap();
    std::fs::write(dir.join("ai.yaml"), policy).unwrap();
    let config = dir.join("lexecon.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
node_id: faults-test
data_dir: data
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
server: {{grace_period: 0s, graceful_shutdown_timeout: 1s}}
{extra}
upstreams:
  tools: {{addrs: ["{tools}"]}}
identity: {{trusted_actor_header: x-agent-id}}
routes:
  - name: mcp
    match: {{path_prefix: /mcp, methods: [POST]}}
    domain: ai
    classifier: {{kind: mcp, tools: {{"search_*": axn_read_data, "delete_*": axn_delete_data}}}}
    upstream: tools
policies: {{ai: ai.yaml}}
"#
        ),
    )
    .unwrap();
    config
}

/// A tool call the shipped AI policy denies: decided and recorded, never sent upstream.
fn delete(url: &str, id: u64) -> support::Reply {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "delete_records", "arguments": {"table": "users", "note": "x".repeat(400)}}});
    post(
        url,
        &[
            ("x-agent-id", "act_ai_agent:tester"),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// Writes zeros to `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
}

fn health(admin: SocketAddr) -> (u16, Value) {
    let r = get(&format!("http://{admin}/health"), &[]);
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

#[test]
fn a_served_binary_fails_closed_while_its_disk_is_full_and_heals_without_a_restart() {
    let base = tempfile::tempdir().unwrap();
    let fs = base.path().join("fs");
    std::fs::create_dir(&fs).unwrap();
    let Some(_mounted) = Tmpfs::mount(&fs, "3m") else {
        return;
    };
    let ledger = fs.join("ledger");
    let tools = TestUpstream::start();
    let (proxy, admin) = (free_addr(), free_addr());
    let extra = format!("ledger: {{dir: \"{}\"}}", ledger.display());
    let config = write_config(base.path(), proxy, admin, tools.addr, &extra);
    let child = Command::new(support::lexecon_binary())
        .args(["serve", "--config", config.to_str().unwrap()])
        .current_dir(base.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut served = Served(child);
    wait_for(&mut served.0, "the proxy listens", || {
        TcpStream::connect_timeout(&proxy, Duration::from_millis(100)).is_ok()
    });
    let url = format!("http://{proxy}/mcp");
    let mut id = 0;
    for _ in 0..20 {
        id += 1;
        let r = delete(&url, id);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["result"]["isError"], json!(true), "{}", r.body);
    }
    assert_eq!(health(admin).0, 200);

    let filler = fs.join("filler");
    fill(&filler);
    let mut refused = None;
    wait_for(
        &mut served.0,
        "a request is refused for the full disk",
        || {
            id += 1;
            let r = delete(&url, id);
            if r.status == 503 {
                refused = Some(r.body);
                return true;
            }
            assert_eq!(r.status, 200, "{}", r.body);
            false
        },
    );
    let refused = refused.unwrap();
    assert!(refused.contains("audit ledger unavailable"), "{refused}");
    let (status, body) = health(admin);
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["checks"]["ledger_writer"]["status"], "failed",
        "{body}"
    );
    // Healing, not stopped: /health names the I/O error it retries, and does not ask for a restart.
    let last_error = body["checks"]["ledger_writer"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        last_error.contains("No space left on device") && last_error.contains("until it recovers"),
        "{body}"
    );
    assert!(!last_error.contains("needs a restart"), "{body}");
    assert_eq!(
        tools.requests().len(),
        0,
        "a denied call never reaches the upstream"
    );

    std::fs::remove_file(&filler).unwrap();
    wait_for(&mut served.0, "/health is ok again", || {
        health(admin).0 == 200
    });
    id += 1;
    let r = delete(&url, id);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["result"]["isError"], json!(true), "{}", r.body);
    let metrics = get(&format!("http://{admin}/metrics"), &[]).body;
    assert!(
        metrics
            .lines()
            .any(|l| l == "lexecon_ledger_recoveries_total 1")
            && metrics.lines().any(|l| l == "lexecon_ledger_failed 0"),
        "{metrics}"
    );

    signal(&served.0, "TERM");
    assert_eq!(
        exit_status(&mut served.0, "lexecon serve did not exit").code(),
        Some(0)
    );
    let recovered: Vec<Value> = support::verified_ledger_entries(&ledger)
        .into_iter()
        .filter(|e| e["event_type"] == "ledger_recovered")
        .collect();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let reason = recovered[0]["reason"].as_str().unwrap();
    assert!(reason.contains("No space left on device"), "{reason}");
    assert!(reason.contains("last durable seq before it"), "{reason}");
}

/// Runs `lexecon serve --config CONFIG` in `dir`, expecting it to refuse to start: returns its exit
/// code and standard error; fails if it is still running after 30 s.
fn serve_refused(dir: &Path, config: &Path) -> (Option<i32>, String) {
    let child = Command::new(support::lexecon_binary())
        .args(["serve", "--config", config.to_str().unwrap()])
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut served = Served(child);
    let status = exit_status(&mut served.0, "lexecon serve did not exit");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut served.0.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

/// The one `error:` line of a refused start (log lines aside), checked to hold every `expected`
/// text and to name the OS error once.
fn one_error_line(code: Option<i32>, stderr: &str, expected: &[&str]) {
    assert!(
        matches!(code, Some(c) if c != 0),
        "must exit non-zero: {code:?}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{stderr}");
    let line = errors[0];
    for text in expected {
        assert!(line.contains(text), "{line:?} lacks {text:?}");
    }
    assert!(
        line.matches("os error").count() <= 1,
        "repeats itself: {line}"
    );
}

/// A start that was refused left no ledger behind (nothing recorded a start that did not happen).
fn no_ledger(dir: &Path) {
    let ledger = dir.join("data/ledger");
    assert!(!ledger.exists(), "{} was created", ledger.display());
}

#[test]
fn a_port_in_use_stops_serve_with_one_error_line_before_the_ledger_starts() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = taken.local_addr().unwrap();
    let config = write_config(dir.path(), proxy, free_addr(), free_addr(), "");
    let (code, stderr) = serve_refused(dir.path(), &config);
    one_error_line(
        code,
        &stderr,
        &[
            "cannot listen on",
            &proxy.to_string(),
            "proxy listener",
            "Address already in use",
        ],
    );
    no_ledger(dir.path());
}

#[test]
fn a_missing_or_unreadable_key_file_stops_serve_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_file = dir.path().join("dir.pem");
    std::fs::create_dir(&not_a_file).unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    std::fs::set_permissions(
        &garbage,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let cases = [
        (dir.path().join("missing.pem"), "No such file or directory"),
        (not_a_file, "not a regular file"),
        (garbage, "not a PKCS#8 PEM Ed25519 private key"),
    ];
    for (key, expected) in cases {
        let extra = format!("tokens: {{keys: [\"{}\"]}}", key.display());
        let config = write_config(dir.path(), free_addr(), free_addr(), free_addr(), &extra);
        let (code, stderr) = serve_refused(dir.path(), &config);
        one_error_line(
            code,
            &stderr,
            &[
                "cannot load the signing keys",
                &key.display().to_string(),
                expected,
            ],
        );
        no_ledger(dir.path());
    }
}

#[test]
fn a_ledger_directory_that_cannot_be_created_stops_serve_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let ledger = file.join("ledger");
    let proxy = free_addr();
    let extra = format!("ledger: {{dir: \"{}\"}}", ledger.display());
    let config = write_config(dir.path(), proxy, free_addr(), free_addr(), &extra);
    let (code, stderr) = serve_refused(dir.path(), &config);
    one_error_line(
        code,
        &stderr,
        &[
            "cannot start the audit ledger",
            &ledger.display().to_string(),
            "Not a directory",
        ],
    );
    assert!(
        TcpStream::connect_timeout(&proxy, Duration::from_millis(200)).is_err(),
        "nothing listens"
    );
}

#[test]
fn a_ledger_directory_on_a_read_only_filesystem_stops_serve_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let fs = dir.path().join("fs");
    std::fs::create_dir(&fs).unwrap();
    let Some(_mounted) = Tmpfs::mount(&fs, "1m") else {
        return;
    };
    // A ledger that exists, with a segment, on a filesystem remounted read-only; and one that
    // does not exist yet.
    let existing = fs.join("ledger");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("ledger-00000000000000000001.jsonl"), "").unwrap();
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&fs)
        .status()
        .unwrap();
    assert!(remount.success(), "remount read-only failed");
    for (ledger, expected) in [
        (existing, "Read-only file system"),
        (fs.join("new"), "Read-only file system"),
    ] {
        let extra = format!("ledger: {{dir: \"{}\"}}", ledger.display());
        let config = write_config(dir.path(), free_addr(), free_addr(), free_addr(), &extra);
        let (code, stderr) = serve_refused(dir.path(), &config);
        one_error_line(
            code,
            &stderr,
            &[
                "cannot start the audit ledger",
                &ledger.display().to_string(),
                expected,
            ],
        );
    }
}
