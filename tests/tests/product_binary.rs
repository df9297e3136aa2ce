//! The shipped binary end to end: `lexecon serve --config FILE` as a child process in front of a
//! real upstream; a policy change picked up on SIGHUP; SIGTERM ends it with exit code 0; and
//! `lexecon ledger verify` accepts the ledger it wrote, which holds every decision it made.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::process::{exit_status, serve, signal, Served};
use support::{deploy_dir, free_addr, post, TestUpstream};

fn search(url: &str, id: u64) -> support::Reply {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "search_docs", "arguments": {"query": "refunds"}}});
    post(
        url,
        &[
            ("x-agent-id", "act_ai_agent:tester"),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

fn is_tool_error(reply: &support::Reply) -> bool {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["result"]["isError"] == json!(true)
}

/// Writes a configuration serving the MCP route in front of `tools`, with data under `<dir>/data`.
fn write_config(
    dir: &std::path::Path,
    name: &str,
    proxy: SocketAddr,
    admin: SocketAddr,
    tools: SocketAddr,
) -> std::path::PathBuf {
    let config = dir.join(name);
    std::fs::write(
        &config,
        format!(
            r#"
node_id: binary-test
data_dir: data
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
server: {{grace_period: 0s, graceful_shutdown_timeout: 1s}}
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

#[test]
fn served_binary_reloads_policy_on_sighup_stops_on_sigterm_and_its_ledger_verifies() {
    let tools = TestUpstream::answering(
        br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"found"}],"isError":false}}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("ai.yaml");
    let shipped = std::fs::read_to_string(deploy_dir().join("policies/ai.yaml")).unwrap();
    std::fs::write(&policy, &shipped).unwrap();
    let (proxy, admin) = (free_addr(), free_addr());
    let config = write_config(dir.path(), "lexecon.yaml", proxy, admin, tools.addr);

    let mut served = serve(dir.path(), &config, proxy);
    let url = format!("http://{proxy}/mcp");

    let mut ids = Vec::new();
    let before = search(&url, 1);
    assert!(!is_tool_error(&before), "{}", before.body);
    ids.push(before.header("x-lexecon-decision-id").unwrap().to_string());

    // A node configured by its file alone reports its status, and takes no bundles.
    let status = support::get(&format!("http://{admin}/admin/v1/status"), &[]);
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.json()["source"], "file", "{}", status.body);
    assert_eq!(status.json()["control_plane"], false, "{}", status.body);
    let push = support::reply(
        support::client()
            .put(&format!("http://{admin}/admin/v1/bundle"))
            .send(&b"not a bundle"[..]),
    );
    assert_eq!(push.status, 409, "{}", push.body);
    assert!(push.body.contains("no_control_plane"), "{}", push.body);

    // Forbid reads and signal; the running process picks the new policy up.
    let forbid = shipped.replace(
        "  - id: agents-may-read\n    effect: permit",
        "  - id: agents-may-read\n    effect: forbid",
    );
    assert_ne!(forbid, shipped);
    std::fs::write(&policy, forbid).unwrap();
    signal(&served.0, "HUP");
    let start = Instant::now();
    let mut n = 1;
    loop {
        n += 1;
        let r = search(&url, n);
        ids.push(r.header("x-lexecon-decision-id").unwrap().to_string());
        if is_tool_error(&r) {
            assert!(r.body.contains("agents-may-read"), "{}", r.body);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the new policy never applied"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(tools.requests().len(), n as usize - 1);

    signal(&served.0, "TERM");
    let status = exit_status(&mut served.0, "lexecon serve did not stop on SIGTERM");
    assert_eq!(status.code(), Some(0));

    let ledger = dir.path().join("data/ledger");
    let entries = lexecon_tests::verified_ledger_entries(&ledger);
    for id in &ids {
        assert!(
            entries.iter().any(|e| e["decision_id"] == json!(id)),
            "decision {id} not in the ledger"
        );
    }
    let events: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert!(events.contains(&"system_startup"), "{events:?}");
}

#[test]
fn a_second_process_on_the_same_data_directory_is_refused_and_the_ledger_stays_one_chain() {
    let tools = TestUpstream::answering(
        br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"found"}],"isError":false}}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        deploy_dir().join("policies/ai.yaml"),
        dir.path().join("ai.yaml"),
    )
    .unwrap();
    let (proxy, admin) = (free_addr(), free_addr());
    let first = write_config(dir.path(), "first.yaml", proxy, admin, tools.addr);
    let second = write_config(
        dir.path(),
        "second.yaml",
        free_addr(),
        free_addr(),
        tools.addr,
    );
    let mut served = serve(dir.path(), &first, proxy);
    let url = format!("http://{proxy}/mcp");
    assert!(!is_tool_error(&search(&url, 1)));

    // Same data_dir, other ports: the second process must not write into the first one's ledger.
    let log = dir.path().join("second.log");
    let mut second = Served(
        Command::new(lexecon_tests::lexecon_binary())
            .args(["serve", "--config", second.to_str().unwrap()])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let status = exit_status(
        &mut second.0,
        "a second `lexecon serve` on the same data directory kept running",
    );
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_ne!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("is in use by another lexecon"), "{stderr}");

    // The first one still serves and records; its ledger is one unbroken chain.
    assert!(!is_tool_error(&search(&url, 2)));
    signal(&served.0, "TERM");
    exit_status(&mut served.0, "lexecon serve did not stop on SIGTERM");
    let report = lexecon_ledger::verify_dir(&dir.path().join("data/ledger"), None).unwrap();
    assert!(report.is_ok(), "{report:?}");
}
