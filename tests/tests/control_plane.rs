//! The control plane end to end (issue 16), against the real `lexecon` binary: signed bundles
//! built, signed, inspected and verified with the CLI; pushed to a sidecar's admin listener and
//! swapped in as one snapshot; every bad bundle refused with its reason while the previous
//! revision keeps deciding; the last good bundle persisted and loaded at restart; a sidecar with
//! no bundle failing closed; pulls from a real nginx (200, then 304, store down, restart with the
//! store down); a fleet push to three sidecars with one stopped; and a client hammering the proxy
//! while bundles with opposite decisions flip under it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{free_addr, get, TestUpstream};

/// A sidecar process, killed when dropped.
struct Sidecar {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sidecar {
    /// Starts `lexecon serve` with a node configuration in `dir` (data in `dir/data`).
    fn start(dir: &Path, control_plane: &str) -> Sidecar {
        let (proxy, admin) = (free_addr(), free_addr());
        let config = dir.join("node.yaml");
        std::fs::write(
            &config,
            format!(
                "node_id: cp-test\ndata_dir: data\nlisteners: {{proxy: \"{proxy}\", admin: \"{admin}\"}}\n\
                 server: {{grace_period: 0s, graceful_shutdown_timeout: 1s}}\n\
                 control_plane:\n  trusted_keys: [\"{}\"]\n{control_plane}",
                dir.join("cp.pub").display()
            ),
        )
        .unwrap();
        let log = dir.join(format!("sidecar-{}.log", proxy.port()));
        let child = Command::new(support::lexecon_binary())
            .args(["serve", "--config", config.to_str().unwrap()])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut sidecar = Sidecar {
            child,
            proxy,
            admin,
            log,
        };
        let start = Instant::now();
        let listening = |addr: &SocketAddr| {
            TcpStream::connect_timeout(addr, Duration::from_millis(100)).is_ok()
        };
        while !(listening(&admin) && listening(&proxy)) {
            if let Some(status) = sidecar.child.try_wait().unwrap() {
                panic!(
                    "lexecon serve exited early: {status}\n{}",
                    std::fs::read_to_string(&sidecar.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no admin listener"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sidecar
    }

    fn call(&self) -> support::Reply {
        get(
            &format!("http://{}/v1/doc", self.proxy),
            &[("x-agent-id", "act_ai_agent:a")],
        )
    }

    fn status(&self) -> Value {
        get(&format!("http://{}/admin/v1/status", self.admin), &[]).json()
    }

    fn push(&self, bundle: &[u8], token: Option<&str>) -> support::Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        support::reply(
            support::client()
                .put(&format!("http://{}/admin/v1/bundle", self.admin))
                .header("authorization", bearer.as_deref().unwrap_or(""))
                .send(bundle),
        )
    }
}

/// Runs the `lexecon` CLI in `dir`; returns (exit code, stdout).
fn cli(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(support::lexecon_binary())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

const PERMIT: &str = "id: cp\ndomain: ai\nmode: strict\nrules:\n  - {id: reads-on, effect: permit, actor: \"act_ai_agent:*\", action: axn_read_data, reason: reads are on}\n";
const FORBID: &str = "id: cp\ndomain: ai\nmode: strict\nrules:\n  - {id: reads-off, effect: forbid, actor: \"act_ai_agent:*\", action: axn_read_data, reason: reads are off}\n";

/// A bundle source directory: a route to `upstream` and the ai policy `policy`.
fn source_dir(dir: &Path, name: &str, upstream: SocketAddr, policy: &str) -> PathBuf {
    let src = dir.join(name);
    std::fs::create_dir_all(src.join("policies")).unwrap();
    std::fs::write(
        src.join("config.yaml"),
        format!(
            "upstreams:\n  app: {{addrs: [\"{upstream}\"]}}\nidentity: {{trusted_actor_header: x-agent-id}}\n\
             routes:\n  - name: read\n    match: {{path_prefix: /v1}}\n    domain: ai\n    classifier: {{kind: none, action: axn_read_data}}\n    upstream: app\n\
             policies:\n  ai: policies/ai.yaml\n"
        ),
    )
    .unwrap();
    std::fs::write(src.join("policies/ai.yaml"), policy).unwrap();
    src
}

/// Builds and signs (with `key`, when given) a bundle of `src` at `revision`; returns its path.
fn bundle(dir: &Path, src: &Path, revision: u64, key: Option<&str>, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!(
        "r{revision}-{}.tar.gz",
        src.file_name().unwrap().to_string_lossy()
    ));
    let rev = revision.to_string();
    let mut args = vec![
        "bundle",
        "build",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--revision",
        &rev,
    ];
    args.extend_from_slice(extra);
    let (code, text) = cli(dir, &args);
    assert_eq!(code, 0, "{text}");
    if let Some(key) = key {
        let (code, text) = cli(
            dir,
            &["bundle", "sign", out.to_str().unwrap(), "--key", key],
        );
        assert_eq!(code, 0, "{text}");
    }
    out
}

/// A bundle of `src` signed with cp.pem without the CLI's check that it loads: what a control
/// plane that skips `lexecon bundle build` could send.
fn unchecked_bundle(dir: &Path, src: &Path, revision: u64) -> PathBuf {
    let key = lexecon_keys::read_signing_key(&dir.join("cp.pem")).unwrap();
    let mut b = lexecon_config::Bundle::from_dir(
        src,
        &lexecon_config::BuildOptions {
            revision,
            ..Default::default()
        },
    )
    .unwrap();
    b.sign(&key, &lexecon_keys::key_id(&key.verifying_key()));
    let out = dir.join(format!("unchecked-r{revision}.tar.gz"));
    std::fs::write(&out, b.to_bytes().unwrap()).unwrap();
    out
}

fn push_token(dir: &Path, key: &str) -> String {
    let key = lexecon_keys::read_signing_key(&dir.join(key)).unwrap();
    lexecon::control::push::push_token(&key, Duration::from_secs(60)).unwrap()
}

/// A control-plane key pair `cp.pem`/`cp.pub` and an untrusted `evil.pem`, made with the CLI.
fn keys(dir: &Path) {
    for name in ["cp.pem", "evil.pem"] {
        let (code, text) = cli(dir, &["bundle", "keygen", name]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("key id"), "{text}");
    }
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ledger_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir.join("data/ledger")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            text.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    text
}

#[test]
fn pushed_bundles_swap_in_and_every_bad_bundle_is_refused_with_its_reason() {
    let upstream = TestUpstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    keys(dir);
    let permit = source_dir(dir, "permit", upstream.addr, PERMIT);
    let forbid = source_dir(dir, "forbid", upstream.addr, FORBID);

    // No bundle yet, one required: every request refused, and /health says why.
    let sidecar = Sidecar::start(dir, "  require_bundle: true\n");
    let r = sidecar.call();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("no policy bundle"), "{}", r.body);
    let health = get(&format!("http://{}/health", sidecar.admin), &[]);
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body.contains("no policy bundle"), "{}", health.body);
    assert!(upstream.requests().is_empty());

    // The CLI checks a bundle as the sidecar will.
    let r1 = bundle(dir, &permit, 1, Some("cp.pem"), &[]);
    let (code, text) = cli(
        dir,
        &[
            "bundle",
            "verify",
            r1.to_str().unwrap(),
            "--trusted",
            "cp.pub",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("policies compiled: ai"), "{text}");
    let (code, text) = cli(dir, &["bundle", "inspect", r1.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{text}");
    let inspected: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(inspected["revision"], 1);
    assert!(inspected["parts"]["policies/ai.yaml"].is_string(), "{text}");
    let (code, text) = cli(
        dir,
        &[
            "bundle",
            "verify",
            r1.to_str().unwrap(),
            "--trusted",
            "evil.pub",
        ],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("none of which this node trusts"), "{text}");

    // Revision 1 (permit) pushed: 200 with before/after, and the proxy permits.
    let token = push_token(dir, "cp.pem");
    let r = sidecar.push(&std::fs::read(&r1).unwrap(), Some(&token));
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["revision"], 1);
    assert_eq!(answer["revision_before"], Value::Null);
    assert!(answer["policy_hashes"]["ai"].is_string(), "{}", r.body);
    assert_eq!(sidecar.call().status, 200);

    // Each bad bundle or push: its status and reason, and revision 1 keeps deciding.
    let unsigned = bundle(dir, &forbid, 5, None, &[]);
    let evil = bundle(dir, &forbid, 6, Some("evil.pem"), &[]);
    let expired = bundle(
        dir,
        &forbid,
        7,
        Some("cp.pem"),
        &["--expires-at", "2020-01-01T00:00:00Z"],
    );
    let broken_src = source_dir(
        dir,
        "broken",
        upstream.addr,
        "id: cp\ndomain: ai\nrules:\n  - {id: x, effect: maybe}\n",
    );
    // `lexecon bundle build` refuses to write a bundle that would not load, with the place...
    let out = dir.join("invalid.tar.gz");
    let (code, text) = cli(
        dir,
        &[
            "bundle",
            "build",
            broken_src.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--revision",
            "8",
        ],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("rules[0].effect"), "{text}");
    assert!(!out.exists());
    // ...so a control plane that skips the check gets it from the sidecar.
    let invalid = unchecked_bundle(dir, &broken_src, 8);
    // Tampered: a signed bundle whose policy is changed after signing.
    let signed = bundle(dir, &forbid, 9, Some("cp.pem"), &[]);
    let unpacked = dir.join("tampered");
    std::fs::create_dir_all(&unpacked).unwrap();
    assert!(Command::new("tar")
        .arg("-xzf")
        .arg(&signed)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap()
        .success());
    std::fs::write(unpacked.join("policies/ai.yaml"), PERMIT).unwrap();
    let tampered = dir.join("tampered.tar.gz");
    assert!(Command::new("tar")
        .arg("-czf")
        .arg(&tampered)
        .arg("-C")
        .arg(&unpacked)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let evil_token = push_token(dir, "evil.pem");
    // (case, body, push token, status, words of the reason)
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no token",
            std::fs::read(&signed).unwrap(),
            None,
            401,
            "Authorization: Bearer",
        ),
        (
            "untrusted token",
            std::fs::read(&signed).unwrap(),
            Some(&evil_token),
            401,
            "does not trust",
        ),
        (
            "unsigned",
            std::fs::read(&unsigned).unwrap(),
            Some(&token),
            403,
            "not signed",
        ),
        (
            "wrongly signed",
            std::fs::read(&evil).unwrap(),
            Some(&token),
            403,
            "none of which this node trusts",
        ),
        (
            "tampered part",
            std::fs::read(&tampered).unwrap(),
            Some(&token),
            400,
            "tampered",
        ),
        (
            "older revision",
            std::fs::read(&r1).unwrap(),
            Some(&token),
            409,
            "not newer",
        ),
        (
            "expired",
            std::fs::read(&expired).unwrap(),
            Some(&token),
            422,
            "expired",
        ),
        (
            "invalid policy",
            std::fs::read(&invalid).unwrap(),
            Some(&token),
            422,
            "effect",
        ),
        (
            "not a bundle",
            b"hello".to_vec(),
            Some(&token),
            400,
            "not a bundle",
        ),
    ];
    for (name, body, token, status, reason) in cases {
        let r = sidecar.push(&body, token);
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert!(r.body.contains(reason), "{name}: {}", r.body);
        assert_eq!(
            sidecar.call().status,
            200,
            "{name}: revision 1 no longer decides"
        );
    }
    // Hostile pushes that never reach the bundle parser: a body above the 32 MiB bundle limit
    // (413, connection closed) and a method the endpoint does not take (405).
    // The head alone: the answer comes before any of the body is read.
    let mut conn = TcpStream::connect(sidecar.admin).unwrap();
    let (status, body) = support::exchange(
        &mut conn,
        &format!(
            "PUT /admin/v1/bundle HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
            lexecon_config::bundle::MAX_BUNDLE_BYTES + 1
        ),
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("above the bundle limit"), "{body}");
    let r = get(&format!("http://{}/admin/v1/bundle", sidecar.admin), &[]);
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(sidecar.call().status, 200, "revision 1 no longer decides");
    let status = sidecar.status();
    assert_eq!(status["revision"], 1, "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("not a bundle"),
        "{status}"
    );

    // Revision 10 (forbid): denied from now on; status and metrics say so.
    let r10 = bundle(dir, &forbid, 10, Some("cp.pem"), &[]);
    let r = sidecar.push(&std::fs::read(&r10).unwrap(), Some(&token));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["revision_before"], 1);
    assert_ne!(
        r.json()["policy_hashes"]["ai"],
        answer["policy_hashes"]["ai"]
    );
    let denied = sidecar.call();
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.body.contains("reads-off"), "{}", denied.body);
    let status = sidecar.status();
    assert_eq!(status["revision"], 10, "{status}");
    assert_eq!(status["source"], "push", "{status}");
    let metrics = get(&format!("http://{}/metrics", sidecar.admin), &[]).body;
    assert!(metrics.contains("lexecon_bundle_revision 10"), "{metrics}");
    assert!(
        metrics.contains("lexecon_bundle_rejections_total{reason=\"rollback\"} 1"),
        "{metrics}"
    );

    // A bundle naming node-local settings: they stay the node's (listed as ignored); a restart-only
    // section it changes is named as needing a restart. One setting control_plane is refused.
    let local = source_dir(dir, "node-local", upstream.addr, FORBID);
    let config = local.join("config.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "listeners: {proxy: \"127.0.0.1:1\", admin: \"127.0.0.1:2\"}\nledger: {durability: sync}\n",
    );
    std::fs::write(&config, &text).unwrap();
    let r11 = bundle(dir, &local, 11, Some("cp.pem"), &[]);
    let r = sidecar.push(&std::fs::read(&r11).unwrap(), Some(&token));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["needs_restart"],
        serde_json::json!(["ledger"]),
        "{}",
        r.body
    );
    assert_eq!(
        r.json()["ignored_node_local"],
        serde_json::json!(["listeners"]),
        "{}",
        r.body
    );
    assert_eq!(
        sidecar.call().status,
        403,
        "the node's own listeners still serve"
    );
    assert_eq!(
        sidecar.status()["needs_restart"],
        serde_json::json!(["ledger"])
    );
    text.push_str("control_plane: {trusted_keys: [evil.pub]}\n");
    std::fs::write(&config, &text).unwrap();
    let r12 = unchecked_bundle(dir, &local, 12);
    let r = sidecar.push(&std::fs::read(&r12).unwrap(), Some(&token));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("control_plane: a bundle cannot set it"),
        "{}",
        r.body
    );
    assert_eq!(sidecar.status()["revision"], 11);

    // The ledger has the swaps and the refusals.
    drop(sidecar);
    let ledger = ledger_text(dir);
    assert!(ledger.contains("bundle revision 10"), "{ledger}");
    assert_eq!(ledger.matches("\"bundle_rejected\"").count(), 8, "{ledger}");

    // Restarted: the persisted revision 11 is in force at once.
    let sidecar = Sidecar::start(dir, "  require_bundle: true\n");
    assert_eq!(sidecar.call().status, 403);
    let status = sidecar.status();
    assert_eq!(status["revision"], 11, "{status}");
    assert_eq!(status["source"], "persisted", "{status}");
}

/// nginx serving `root` on a loopback port, with its access log; stopped when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, root: &Path, addr: SocketAddr) -> Nginx {
        let conf_dir = dir.join(format!("nginx-{}", addr.port()));
        std::fs::create_dir_all(conf_dir.join("tmp")).unwrap();
        let conf = conf_dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
                 server {{ listen {addr}; root {root}; }}\n}}\n",
                d = conf_dir.display(),
                root = root.display()
            ),
        )
        .unwrap();
        let nginx = if Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        };
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&conf_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (Debian nginx-light; .ci/deps installs it)");
        wait_for("nginx to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        });
        Nginx {
            child,
            dir: conf_dir,
        }
    }

    /// The statuses nginx answered, in order.
    fn statuses(&self) -> Vec<u16> {
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split("\" ").nth(1)?.split(' ').next()?.parse().ok())
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pull_from_nginx_uses_etags_keeps_the_last_good_bundle_and_fails_closed_with_nothing() {
    let upstream = TestUpstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    keys(dir);
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let permit = source_dir(dir, "permit", upstream.addr, PERMIT);
    let forbid = source_dir(dir, "forbid", upstream.addr, FORBID);
    std::fs::copy(
        bundle(dir, &permit, 1, Some("cp.pem"), &[]),
        store.join("sidecar.tar.gz"),
    )
    .unwrap();

    let store_addr = free_addr();
    let nginx = Nginx::start(dir, &store, store_addr);
    let pull = format!(
        "  bundle_url: http://{store_addr}/sidecar.tar.gz\n  poll_interval: 1s\n  poll_jitter: 0s\n  max_backoff: 2s\n"
    );
    let sidecar = Sidecar::start(dir, &pull);
    wait_for("revision 1 pulled", || sidecar.status()["revision"] == 1);
    assert_eq!(sidecar.call().status, 200);
    // Unchanged file: nginx answers 304 to the sidecar's If-None-Match.
    wait_for("a 304", || nginx.statuses().contains(&304));
    assert_eq!(nginx.statuses().first(), Some(&200));

    // A new revision on the store is picked up; refresh polls now.
    std::fs::copy(
        bundle(dir, &forbid, 2, Some("cp.pem"), &[]),
        store.join("sidecar.tar.gz"),
    )
    .unwrap();
    // A push token from the CLI, for curl-like callers.
    let (code, token) = cli(dir, &["bundle", "token", "--key", "cp.pem", "--ttl", "1m"]);
    assert_eq!(code, 0, "{token}");
    let token = token.trim().to_owned();
    let refresh = support::reply(
        support::client()
            .post(&format!("http://{}/admin/v1/bundle/refresh", sidecar.admin))
            .header("authorization", &format!("Bearer {token}"))
            .send(&[][..]),
    );
    assert_eq!(refresh.status, 200, "{}", refresh.body);
    wait_for("revision 2 pulled", || sidecar.status()["revision"] == 2);
    assert_eq!(sidecar.call().status, 403);
    assert_eq!(sidecar.status()["source"], "pull");

    // The store goes away: the last good bundle keeps deciding, and status says why.
    drop(nginx);
    wait_for("a failed poll", || {
        sidecar.status()["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach"))
    });
    assert_eq!(sidecar.call().status, 403);

    // Restarted with the store down: the persisted bundle loads.
    drop(sidecar);
    let sidecar = Sidecar::start(dir, &pull);
    assert_eq!(sidecar.status()["revision"], 2);
    assert_eq!(sidecar.call().status, 403);
    drop(sidecar);

    // A new sidecar with nothing persisted and nothing reachable fails closed.
    let fresh = dir.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::copy(dir.join("cp.pub"), fresh.join("cp.pub")).unwrap();
    let sidecar = Sidecar::start(&fresh, &pull);
    let r = sidecar.call();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("no policy bundle"), "{}", r.body);
    assert_eq!(
        get(&format!("http://{}/health", sidecar.admin), &[]).status,
        503
    );
}

#[test]
fn fleet_push_reports_one_row_per_sidecar_and_fails_if_any_failed() {
    let upstream = TestUpstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    keys(dir);
    let permit = source_dir(dir, "permit", upstream.addr, PERMIT);
    let r3 = bundle(dir, &permit, 3, Some("cp.pem"), &[]);
    let mut sidecars = Vec::new();
    for i in 0..2 {
        let node = dir.join(format!("node{i}"));
        std::fs::create_dir_all(&node).unwrap();
        std::fs::copy(dir.join("cp.pub"), node.join("cp.pub")).unwrap();
        sidecars.push(Sidecar::start(&node, ""));
    }
    let stopped = free_addr();
    let targets = format!("{},{},{stopped}", sidecars[0].admin, sidecars[1].admin);
    let (code, text) = cli(
        dir,
        &[
            "bundle",
            "push",
            r3.to_str().unwrap(),
            "--to",
            &targets,
            "--key",
            "cp.pem",
            "--timeout",
            "3s",
        ],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("2 of 3 sidecars updated"), "{text}");
    for s in &sidecars {
        let row = text
            .lines()
            .find(|l| l.starts_with(&s.admin.to_string()))
            .unwrap();
        assert!(row.contains(" 3 "), "{row}");
        assert_eq!(s.status()["revision"], 3);
        assert_eq!(s.call().status, 200);
    }
    let row = text
        .lines()
        .find(|l| l.starts_with(&stopped.to_string()))
        .unwrap();
    assert!(row.contains("cannot reach"), "{row}");
}

#[test]
fn answers_match_exactly_one_revision_while_bundles_flip_under_load() {
    let upstream = TestUpstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    keys(dir);
    let permit = source_dir(dir, "permit", upstream.addr, PERMIT);
    let forbid = source_dir(dir, "forbid", upstream.addr, FORBID);
    let key = lexecon_keys::read_signing_key(&dir.join("cp.pem")).unwrap();
    let kid = lexecon_keys::key_id(&key.verifying_key());
    let sidecar = Sidecar::start(dir, "");
    let token = push_token(dir, "cp.pem");
    let signed = |revision: u64| {
        let src = if revision % 2 == 1 { &permit } else { &forbid };
        let mut b = lexecon_config::Bundle::from_dir(
            src,
            &lexecon_config::BuildOptions {
                revision,
                ..Default::default()
            },
        )
        .unwrap();
        b.sign(&key, &kid);
        b.to_bytes().unwrap()
    };
    assert_eq!(sidecar.push(&signed(1), Some(&token)).status, 200);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let flips = 40u64;
    std::thread::scope(|s| {
        let hammer = s.spawn(|| {
            let (mut permits, mut denies) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = sidecar.call();
                match r.status {
                    200 => permits += 1,
                    403 if r.body.contains("reads-off") => denies += 1,
                    other => panic!("an answer of neither revision: {other}: {}", r.body),
                }
            }
            (permits, denies)
        });
        let watcher = s.spawn(|| {
            let mut last = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let rev = sidecar.status()["revision"].as_u64().unwrap_or(0);
                assert!(rev >= last, "revision went back from {last} to {rev}");
                last = rev;
            }
        });
        for revision in 2..=flips {
            let r = sidecar.push(&signed(revision), Some(&token));
            assert_eq!(r.status, 200, "revision {revision}: {}", r.body);
            // Right after the answer, the new revision decides.
            let expect = if revision % 2 == 1 { 200 } else { 403 };
            assert_eq!(sidecar.call().status, expect, "revision {revision}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (permits, denies) = hammer.join().unwrap();
        watcher.join().unwrap();
        assert!(
            permits > 0 && denies > 0,
            "{permits} permits, {denies} denies"
        );
    });
    assert_eq!(sidecar.status()["revision"], flips);
}
