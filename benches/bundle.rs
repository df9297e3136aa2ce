//! Control-plane benchmark (issue 16): a signed bundle holding a 10,000-rule policy taken the whole
//! way in by a sidecar — parse, signature, validity, unpack, merge, compile, build the proxy
//! snapshot, swap, persist (`control::Runtime::apply`) — as `lexecon bundle build` stores it (the
//! policy as JSON) and as written (YAML); apart, the parse + signature check and the policy load in
//! each format. The target: apply ≤ 50 ms. Run: see benches/RESULTS.md, section "Control plane".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup: a failure aborts the benchmark"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lexecon::control::{Runtime, Via};
use lexecon::engine::Engine;
use lexecon::run::Source;
use lexecon::server::{ProxySnapshot, ProxyState};
use lexecon_config::{BuildOptions, Bundle, Config};

/// The binary's allocator (proxy/src/main.rs): allocation-heavy loading is measured as it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RULES: usize = 10_000;

/// A policy of `n` rules for the ai domain: actor instances, conditions, both effects.
fn policy(n: usize) -> String {
    let mut out = String::from("id: bench\ndomain: ai\nmode: strict\nrules:\n");
    for i in 0..n {
        let effect = if i % 10 == 0 { "forbid" } else { "permit" };
        let actor = match i % 3 {
            0 => format!("act_ai_agent:agent-{i}"),
            1 => "act_ai_agent:*".to_owned(),
            _ => format!("act_ai_agent:team-{}*", i % 17),
        };
        out.push_str(&format!(
            "  - {{id: rule-{i}, effect: {effect}, actor: \"{actor}\", action: axn_read_data, reason: rule {i}, when: [{{field: context.n, op: le, value: {i}}}]}}\n"
        ));
    }
    out
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let key = lexecon_keys::generate_key_file(&dir.path().join("cp.pem")).unwrap();
    lexecon_keys::write_public_key_file(&dir.path().join("cp.pub"), &key.verifying_key()).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("policies")).unwrap();
    std::fs::write(
        src.join("config.yaml"),
        "upstreams:\n  app: {addrs: [\"127.0.0.1:9\"]}\nidentity: {trusted_actor_header: x-agent-id}\n\
         routes:\n  - name: read\n    match: {path_prefix: /v1}\n    domain: ai\n    classifier: {kind: none, action: axn_read_data}\n    upstream: app\n\
         policies:\n  ai: policies/ai.yaml\n",
    )
    .unwrap();
    std::fs::write(src.join("policies/ai.yaml"), policy(RULES)).unwrap();
    let mut bundle = Bundle::from_dir(
        &src,
        &BuildOptions {
            revision: 1,
            // The same bundle is applied again and again.
            allow_rollback: true,
            ..BuildOptions::default()
        },
    )
    .unwrap();
    let kid = lexecon_keys::key_id(&key.verifying_key());
    bundle.sign(&key, &kid);
    // As written (YAML), and as `lexecon bundle build` stores it (the policy as JSON).
    let yaml_bytes = bundle.to_bytes().unwrap();
    let out = dir.path().join("b.tar.gz");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_lexecon"))
        .args(["bundle", "build"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--revision", "1", "--allow-rollback"])
        .status()
        .unwrap();
    assert!(status.success());
    let mut built = Bundle::parse(&std::fs::read(&out).unwrap()).unwrap();
    built.sign(&key, &kid);
    let bytes = built.to_bytes().unwrap();

    let node = dir.path().join("node.yaml");
    std::fs::write(
        &node,
        "data_dir: data\nledger: off\nlisteners: {proxy: \"127.0.0.1:1\", admin: \"127.0.0.1:2\"}\ncontrol_plane: {trusted_keys: [cp.pub]}\n",
    )
    .unwrap();
    let local = Config::load(&node).unwrap();
    let boot = Runtime::boot(Source::File(node.clone()), local).unwrap();
    let engine = Arc::new(Engine::from_config(&boot.config).unwrap());
    let state = Arc::new(
        ProxyState::new(ProxySnapshot::build(&boot.config, engine.clone()).unwrap()).unwrap(),
    );
    let runtime = boot.runtime;
    runtime.attach(engine, state.clone());

    let mut group = c.benchmark_group("bundle");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("parse_verify_rules_10000", |b| {
        b.iter(|| {
            let parsed = Bundle::parse(black_box(&bytes)).unwrap();
            parsed.verify(runtime.trusted()).unwrap();
            parsed
        })
    });
    let policy_file = src.join("policies/ai.yaml");
    group.bench_function("load_policy_yaml_rules_10000", |b| {
        b.iter(|| lexecon_config::load_policy_file(black_box(&policy_file), None).unwrap())
    });
    let json_file = dir.path().join("ai.json");
    let doc = lexecon_config::load_policy_file(&policy_file, None).unwrap();
    std::fs::write(&json_file, serde_json::to_vec(&doc).unwrap()).unwrap();
    group.bench_function("load_policy_json_rules_10000", |b| {
        b.iter(|| lexecon_config::load_policy_file(black_box(&json_file), None).unwrap())
    });
    group.bench_function("apply_yaml_rules_10000", |b| {
        b.iter(|| runtime.apply(black_box(&yaml_bytes), Via::Push).unwrap())
    });
    group.bench_function("apply_rules_10000", |b| {
        b.iter(|| runtime.apply(black_box(&bytes), Via::Push).unwrap())
    });
    group.finish();
    assert_eq!(state.load().routes.routes.len(), 1);
}

criterion_group!(benches, bench);
criterion_main!(benches);
