//! Graceful stop under load (issue 18): SIGTERM while clients keep sending requests. The binary exits
//! 0 within its grace, `lexecon ledger verify` passes on what it wrote, and every request that was
//! answered with a decision has its decision in the ledger — with `durability: sync` (each answer
//! waited for its entry) and with `async` (the shutdown flushes what was accepted).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::process::{serve, Served};
use support::{free_addr, TestUpstream};

const POLICY: &str = "id: stop\ndomain: ai\nmode: strict\nrules:\n  - {id: reads-on, effect: permit, actor: \"act_ai_agent:*\", action: axn_read_data, resource: \"res_file:f[0-4]*\", reason: fine}\n  - {id: reads-off, effect: forbid, actor: \"act_ai_agent:*\", action: axn_read_data, resource: \"res_file:f[5-9]*\", reason: not these}\n";

fn start(dir: &std::path::Path, durability: &str, upstream: SocketAddr) -> (Served, SocketAddr) {
    let (proxy, admin) = (free_addr(), free_addr());
    std::fs::write(dir.join("ai.yaml"), POLICY).unwrap();
    std::fs::write(
        dir.join("lexecon.yaml"),
        format!(
            "data_dir: data\nlisteners: {{proxy: \"{proxy}\", admin: \"{admin}\"}}\n\
             server: {{grace_period: 0s, graceful_shutdown_timeout: 5s}}\n\
             upstreams:\n  app: {{addrs: [\"{upstream}\"]}}\n\
             identity: {{trusted_actor_header: x-agent-id}}\n\
             routes:\n  - name: files\n    match: {{path_prefix: /v1/files}}\n    domain: ai\n\
             \x20   classifier: {{kind: rest, operations: [{{method: GET, path: \"/v1/files/{{id}}\", action: axn_read_data, resource: \"res_file:{{id}}\"}}]}}\n\
             \x20   upstream: app\n\
             policies: {{ai: ai.yaml}}\nledger: {{durability: {durability}}}\n"
        ),
    )
    .unwrap();
    (serve(dir, Path::new("lexecon.yaml"), proxy), proxy)
}

fn stop_under_load(durability: &str) {
    let upstream = TestUpstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut served, proxy) = start(dir, durability, upstream.addr);

    // Four clients send requests until the proxy stops answering; each decision id answered is kept.
    let answered = Mutex::new(BTreeSet::new());
    let (permits, denies) = (Mutex::new(0u32), Mutex::new(0u32));
    let sent_some = AtomicBool::new(false);
    std::thread::scope(|s| {
        for c in 0..4u32 {
            let (answered, permits, denies, sent_some) = (&answered, &permits, &denies, &sent_some);
            s.spawn(move || {
                let agent = support::client();
                for i in 0u32.. {
                    let url = format!("http://{proxy}/v1/files/f{}", (i + c) % 10);
                    let Ok(r) = agent
                        .get(&url)
                        .header("x-agent-id", "act_ai_agent:stopper")
                        .call()
                    else {
                        break; // the listener is gone: stopped
                    };
                    let status = r.status().as_u16();
                    let id = r
                        .headers()
                        .get("x-lexecon-decision-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    match (status, id) {
                        (200, Some(id)) => {
                            *permits.lock().unwrap() += 1;
                            answered.lock().unwrap().insert(id);
                        }
                        (403, Some(id)) => {
                            *denies.lock().unwrap() += 1;
                            answered.lock().unwrap().insert(id);
                        }
                        // An answer without a decision (e.g. a 503 while shutting down) is no
                        // decision to account for.
                        _ => {}
                    }
                    sent_some.store(true, Ordering::Relaxed);
                }
            });
        }
        // Let the clients run, then stop the server under them.
        let start = Instant::now();
        while !sent_some.load(Ordering::Relaxed) || start.elapsed() < Duration::from_millis(700) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let ok = Command::new("kill")
            .args(["-TERM", &served.0.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = served.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "lexecon did not stop within its grace"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    });
    let answered = answered.into_inner().unwrap();
    let (permits, denies) = (permits.into_inner().unwrap(), denies.into_inner().unwrap());
    assert!(
        permits > 0 && denies > 0,
        "{permits} permits, {denies} denies"
    );

    // The ledger verifies, and holds every decision that was answered.
    let ledger = dir.join("data/ledger");
    let recorded: BTreeSet<String> = support::verified_ledger_entries(&ledger)
        .iter()
        .filter_map(|e| e["decision_id"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = answered.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered decisions are not in the ledger ({durability}): {:?}",
        missing.len(),
        answered.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
}

#[test]
fn sigterm_under_load_with_sync_durability_loses_no_answered_decision() {
    stop_under_load("sync");
}

#[test]
fn sigterm_under_load_with_async_durability_flushes_every_answered_decision() {
    stop_under_load("async");
}
