//! The decision API's end-to-end harness: the real [`Engine`] (policies written to a temp
//! directory, ledger and keys in a temp data dir) behind a running server, a recording upstream,
//! and helpers to call the proxy and the API listener with a trusted header or a JWT.
//!
//! Identity in these tests: agents call with the trusted `x-agent-id` header (loopback); people
//! (approvers, deciders) call with a bearer JWT signed by the test key whose `roles` claim is
//! mapped into the identity context (`claims_to_context: {roles: roles}`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use lexecon::engine::Engine;
use lexecon::server::{ServeOptions, ServerHandle, SetupError};
use serde_json::{json, Value};

use crate::{free_addr, get, now, post, token, Reply, TestUpstream, ED_JWKS};

/// The `ai` policy of the tests: read and search are permitted, deletes forbidden, messages
/// escalated, everything else denied by strict mode.
pub const AI_POLICY: &str = r#"
id: api-test
domain: ai
mode: strict
description: decision API tests
rules:
  - id: agents-may-read
    effect: permit
    actor: "act_ai_agent:*"
    action: axn_read_data
    reason: Agents may read data
  - id: agents-may-search
    effect: permit
    actor: "act_ai_agent:*"
    action: axn_search
    reason: Agents may search
  - id: no-deletes
    effect: forbid
    actor: "act_ai_agent:*"
    action: axn_delete_data
    reason: AI agents may not delete data
  - id: messages-need-approval
    effect: escalate
    actor: "act_ai_agent:*"
    action: axn_send_message
    reason: Outgoing messages from an agent need a human's approval
"#;

/// The agent most tests act as (trusted header).
pub const AGENT: &str = "act_ai_agent:bot";

pub struct ApiHarness {
    pub server: ServerHandle,
    pub engine: Arc<Engine>,
    pub upstream: TestUpstream,
    pub dir: tempfile::TempDir,
}

impl ApiHarness {
    /// Starts the product with the test policy; `extra` is appended to the YAML (e.g. an `api:`
    /// section).
    pub fn start(extra: &str) -> Self {
        Self::start_with_policy(Some(AI_POLICY), extra)
    }

    /// [`ApiHarness::start`] with `policy` as the `ai` policy, or no policy loaded at all.
    pub fn start_with_policy(policy_text: Option<&str>, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("ai.yaml");
        let policies = match policy_text {
            Some(text) => {
                std::fs::write(&policy, text).unwrap();
                format!("policies:\n  ai: \"{}\"", policy.display())
            }
            None => String::new(),
        };
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, ED_JWKS).unwrap();
        let upstream = TestUpstream::start();
        let yaml = |proxy: std::net::SocketAddr, admin: std::net::SocketAddr| {
            format!(
                r#"
node_id: api-test-node
data_dir: "{data}"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  app: {{addrs: ["{up}"]}}
identity:
  trusted_actor_header: x-agent-id
  jwt:
    issuer: https://idp.test
    audience: lexecon
    leeway: 0s
    jwks: "{jwks}"
    algorithms: [EdDSA]
    claims_to_context: {{roles: roles}}
routes:
  - name: app
    match: {{path_prefix: /v1, methods: [POST]}}
    domain: ai
    classifier:
      kind: rest
      operations:
        - {{method: POST, path: /v1/messages, action: axn_send_message, context: {{to: body./to}}}}
        - {{method: POST, path: /v1/files/delete, action: axn_delete_data}}
        - {{method: POST, path: /v1/search, action: axn_read_data}}
        - {{method: POST, path: /v1/notes, action: axn_read_data, context: {{topic: body./topic}}}}
    upstream: app
  - name: mcp
    match: {{path_prefix: /mcp, methods: [POST]}}
    domain: ai
    classifier:
      kind: mcp
      tools: {{"send_*": axn_send_message, "search_*": axn_read_data}}
    upstream: app
{policies}
{extra}
"#,
                data = dir.path().join("data").display(),
                up = upstream.addr,
                jwks = jwks.display(),
            )
        };
        let first =
            lexecon_config::Config::from_yaml("api-test.yaml", &yaml(free_addr(), free_addr()))
                .unwrap_or_else(|e| panic!("test config invalid: {e}"));
        let engine = Arc::new(Engine::from_config(&first).unwrap());
        let mut last = None;
        for attempt in 0..5 {
            let config = if attempt == 0 {
                first.clone()
            } else {
                lexecon_config::Config::from_yaml("api-test.yaml", &yaml(free_addr(), free_addr()))
                    .unwrap()
            };
            match ServerHandle::start(config, ServeOptions::with_engine(engine.clone())) {
                Ok(server) => {
                    return Self {
                        server,
                        engine,
                        upstream,
                        dir,
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

    /// Waits until every ledger entry appended so far is written (appends answer once queued).
    pub fn flush_ledger(&self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(self.engine.ledger().unwrap().flush()).unwrap();
    }

    /// `http://admin/<path>`.
    pub fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.admin_addr)
    }

    /// `http://proxy/<path>`.
    pub fn proxy(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.proxy_addr)
    }

    /// POST JSON to the API as the trusted-header actor `actor`.
    pub fn post_as(&self, actor: &str, path: &str, body: &Value) -> Reply {
        post(
            &self.api(path),
            &[("x-agent-id", actor), ("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    /// POST JSON to the API with a bearer token.
    pub fn post_bearer(&self, jwt: &str, path: &str, body: &Value) -> Reply {
        let auth = format!("Bearer {jwt}");
        post(
            &self.api(path),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    /// GET from the API as the trusted-header agent.
    pub fn get_as(&self, actor: &str, path: &str) -> Reply {
        get(&self.api(path), &[("x-agent-id", actor)])
    }

    /// The served OpenAPI document.
    pub fn openapi(&self) -> Value {
        get(&self.api("/openapi.json"), &[]).json()
    }
}

/// A JWT for `sub` with `roles`, from the test identity provider.
pub fn person(sub: &str, roles: &[&str]) -> String {
    token(json!({
        "iss": "https://idp.test",
        "aud": "lexecon",
        "sub": sub,
        "roles": roles,
        "iat": now(),
        "exp": now() + 600,
    }))
}

/// Every violation of `instance` against `#/components/schemas/{name}` of the served document.
pub fn schema_violations(openapi: &Value, name: &str, instance: &Value) -> Vec<String> {
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": openapi["components"].clone(),
    });
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

pub fn assert_schema(openapi: &Value, name: &str, instance: &Value) {
    let v = schema_violations(openapi, name, instance);
    assert!(v.is_empty(), "{name} rejects {instance}: {v:?}");
}
