//! Reloading is all or nothing (issue 16, "one snapshot, one swap"): the policy snapshot and the
//! proxy snapshot (routes, identity, limits) are both built before either is swapped, so a
//! configuration whose identity does not build (a missing JWKS file) leaves the policies in force
//! too — new policies never run with old routes — and the error says why.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use support::{get, EngineServer};

const PERMIT: &str = r#"
id: reload-test
domain: ai
mode: strict
rules:
  - {id: agents-read, effect: permit, actor: "act_ai_agent:*", action: axn_read_data, reason: reads are fine}
"#;

const FORBID: &str = r#"
id: reload-test
domain: ai
mode: strict
rules:
  - {id: no-reads, effect: forbid, actor: "act_ai_agent:*", action: axn_read_data, reason: reads are off}
"#;

fn config(
    proxy: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    dir: &std::path::Path,
    upstream: std::net::SocketAddr,
    identity: &str,
) -> String {
    format!(
        r#"
data_dir: "{data}"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  app: {{addrs: ["{upstream}"]}}
identity:
  trusted_actor_header: x-agent-id
{identity}
routes:
  - name: read
    match: {{path_prefix: /v1}}
    domain: ai
    classifier: {{kind: none, action: axn_read_data}}
    upstream: app
policies:
  ai: "{policy}"
"#,
        data = dir.join("data").display(),
        policy = dir.join("ai.yaml").display(),
    )
}

#[test]
fn a_reload_that_fails_to_build_anything_changes_nothing() {
    let upstream = support::TestUpstream::start();
    let up = upstream.addr;
    let server = EngineServer::start(move |proxy, admin, dir| {
        std::fs::write(dir.join("ai.yaml"), PERMIT).unwrap();
        config(proxy, admin, dir, up, "")
    });
    let (proxy, admin) = (server.handle().proxy_addr, server.handle().admin_addr);
    let url = format!("http://{proxy}/v1/doc");
    let agent = [("x-agent-id", "act_ai_agent:a")];
    assert_eq!(get(&url, &agent).status, 200);

    // New policies, and a configuration whose identity cannot be built: the reload fails...
    let dir = server.dir.path().to_path_buf();
    std::fs::write(dir.join("ai.yaml"), FORBID).unwrap();
    let missing = dir.join("no-such-jwks.json");
    let broken_identity = format!(
        "  jwt: {{issuer: https://idp.test, audience: lexecon, jwks: \"{}\"}}",
        missing.display()
    );
    std::fs::write(
        &server.config_path,
        config(proxy, admin, &dir, up, &broken_identity),
    )
    .unwrap();
    let err = server.reload().unwrap_err().to_string();
    assert!(err.contains("jwks"), "{err}");
    // ...and the old policies are still the ones in force, with the old routes.
    let r = get(&url, &agent);
    assert_eq!(
        r.status, 200,
        "new policies ran after a failed reload: {}",
        r.body
    );

    // Fixed, the same reload goes through as a whole.
    std::fs::write(&server.config_path, config(proxy, admin, &dir, up, "")).unwrap();
    server.reload().unwrap();
    let r = get(&url, &agent);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("no-reads"), "{}", r.body);
}
