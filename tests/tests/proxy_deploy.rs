//! The shipped configurations work as written: `deploy/demo.yaml` (embedded in the binary) and
//! every `deploy/examples/*.yaml` parse, validate, reference files that exist, and build a running
//! snapshot; the demo serves its embedded upstream through the proxy's server.

use lexecon_tests as support;

use std::path::{Path, PathBuf};

use lexecon::server::ProxySnapshot;
use lexecon_config::Config;
use support::{free_addr, post, RuleTable};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

#[expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test helper: a broken shipped file must fail the test with its error"
)]
fn check(config: &Config) {
    for (domain, path) in &config.policies {
        assert!(
            path.is_file(),
            "policy for {domain} missing: {}",
            path.display()
        );
        let text = std::fs::read_to_string(path).unwrap();
        let doc: lexecon_config::PolicyDocument =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(doc.domain.as_str(), domain.as_str());
    }
    ProxySnapshot::build(config, RuleTable::new(&[], &[])).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn every_example_config_loads_validates_and_builds() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(deploy().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            check(&config);
            seen.push(path.file_name().unwrap().to_string_lossy().to_string());
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        ["ai-agent-mcp.yaml", "ehr-fhir.yaml", "trading-gateway.yaml"]
    );
}

#[test]
fn embedded_demo_config_is_the_deploy_file_and_builds() {
    let on_disk = std::fs::read_to_string(deploy().join("demo.yaml")).unwrap();
    assert_eq!(on_disk, lexecon::demo::DEMO_CONFIG);
    let mut config = lexecon::demo::demo_config().unwrap();
    config.resolve_paths(&deploy());
    assert_eq!(config.listeners.proxy.to_string(), "127.0.0.1:8080");
    assert_eq!(config.listeners.admin.to_string(), "127.0.0.1:9901");
    // The local issuer keeps its key in the data directory: not in the source tree.
    let data = tempfile::tempdir().unwrap();
    config.data_dir = data.path().to_path_buf();
    check(&config);
    assert!(data
        .path()
        .join("keys/identity-issuer-ed25519.pem")
        .is_file());
}

#[test]
fn demo_upstream_serves_mcp_tools_inside_the_server() {
    let mut config = lexecon::demo::demo_config().unwrap();
    config.listeners.proxy = free_addr();
    config.listeners.admin = free_addr();
    let data = tempfile::tempdir().unwrap();
    config.data_dir = data.path().to_path_buf();
    let demo = free_addr();
    config.upstreams.get_mut("demo").unwrap().addrs = vec![demo.to_string()];
    let server = lexecon::server::ServerHandle::start(
        config,
        lexecon::server::ServeOptions::new(RuleTable::new(&[], &[])),
    )
    .unwrap();
    let r = post(
        &format!("http://{demo}/mcp"),
        &[("content-type", "application/json")],
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["tools"].as_array().unwrap().len(), 4);
    // Requests no demo route takes are denied by the proxy.
    let r = post(
        &format!("http://{}/admin", server.proxy_addr),
        &[("x-agent-id", "act_ai_agent:demo")],
        b"{}",
    );
    assert_eq!(r.status, 403);
    server.shutdown();
}
