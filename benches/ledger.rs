//! Ledger and token benchmarks: append throughput with group commit (async and sync durability),
//! the request-path cost of building an entry, token minting (direct Ed25519 vs `jsonwebtoken::encode`)
//! and a reuse-cache hit, and the decision API's answer (hand-written JSON against serde's derive).
//! Run: see benches/RESULTS.md, section "Ledger and tokens".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup: a failure aborts the benchmark"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use lexecon::api::responses::{DecisionResponse, IssuedToken};
use lexecon_domains::{ComplianceMapping, ComplianceStatus, Verdict};
use lexecon_ledger::{
    entry::write_body_line, Durability, EntryBody, EntryDraft, LedgerConfig, LedgerEntry,
    LedgerHandle, LedgerWriter, RedactionConfig,
};
use lexecon_policy_cache::{Decision, Explanation};
use lexecon_token::{Claims, KeyRing, MintMode, TokenConfig, TokenMinter};
use serde_json::json;

fn decision() -> Decision {
    Decision {
        request_id: "0193a5c2-7e4b-7c1d-9a7e-3f1b2c4d5e6f".to_owned(),
        decision_id: "0193a5c2-7e4b-7c1d-9a7e-3f1b2c4d5e70".to_owned(),
        domain: "finance".to_owned(),
        actor: "agent-trading-7".to_owned(),
        action: "axn_place_order".to_owned(),
        resource: Some("account/42".to_owned()),
        decision: Verdict::Permit,
        reasoning: "rule allow-small-orders matched: order value 900 <= limit 1000"
            .to_owned()
            .into(),
        rule_id: "allow-small-orders".to_owned().into(),
        policy_version_hash: "ab".repeat(32).into(),
        compliance_mappings: vec![ComplianceMapping {
            framework: "sox".into(),
            controls: vec!["404".into()],
            status: ComplianceStatus::Compliant,
        }]
        .into(),
        risk_level: 3,
        requires_human_approval: false,
        review_required: false,
        explanation: Explanation {
            matched_rules: vec!["allow-small-orders".into()].into(),
            findings: vec![],
            would_have: None,
            cached: false,
        },
        timestamp: jiff::Timestamp::now(),
    }
}

fn context() -> serde_json::Map<String, serde_json::Value> {
    json!({"order_value": 900, "currency": "EUR", "symbol": "ACME", "side": "buy"})
        .as_object()
        .cloned()
        .unwrap()
}

fn draft() -> EntryDraft {
    LedgerEntry::from_decision(&decision(), &context(), &RedactionConfig::default())
}

/// Appends `n` entries from `tasks` concurrent callers, then waits until every entry is written and
/// fsynced (`flush`; under `sync` each append already waited for its fdatasync).
async fn append_n(handle: &LedgerHandle, template: &EntryDraft, n: u64, tasks: u64) {
    let mut joins = Vec::new();
    for t in 0..tasks {
        let h = handle.clone();
        let d = template.clone();
        let share = n / tasks + u64::from(t < n % tasks);
        joins.push(tokio::spawn(async move {
            for _ in 0..share {
                h.append(d.clone()).await.unwrap();
            }
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    handle.flush().await.unwrap();
}

fn ledger_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let keys = KeyRing::generate();
    let template = draft();
    let mut group = c.benchmark_group("ledger_append");
    group.throughput(Throughput::Elements(1));
    for (name, durability, tasks) in [
        ("async_group_commit_4_callers", Durability::Async, 4),
        ("sync_group_commit_64_callers", Durability::Sync, 64),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LedgerConfig::new(dir.path());
        config.durability = durability;
        let handle = rt
            .block_on(async {
                LedgerWriter::start(config, Some(lexecon_ledger::CheckpointSigner::of(&keys)))
            })
            .unwrap();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                rt.block_on(append_n(&handle, &template, iters, tasks));
                start.elapsed()
            });
        });
        rt.block_on(handle.shutdown()).unwrap();
    }
    group.finish();

    c.bench_function("ledger_entry_draft_from_decision", |b| {
        let d = decision();
        let ctx = context();
        let redaction = RedactionConfig::default();
        b.iter(|| LedgerEntry::from_decision(black_box(&d), black_box(&ctx), &redaction));
    });

    // One decision entry end to end, request side and writer side together (no channel): the
    // draft path (clone the decision's strings, then build and serialize a LedgerEntry on the
    // writer) against the body path (serialize from the borrowed decision, then chain the bytes).
    let prev = "cd".repeat(32);
    c.bench_function("ledger_entry_line_via_draft", |b| {
        let d = decision();
        let ctx = context();
        let redaction = RedactionConfig::default();
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            let draft = LedgerEntry::from_decision(black_box(&d), black_box(&ctx), &redaction);
            let mut entry = LedgerEntry::from_draft(draft, 7, prev.clone());
            entry.write_line(&mut out).unwrap();
            black_box(&out);
        });
    });
    c.bench_function("ledger_entry_line_via_body", |b| {
        let d = decision();
        let ctx = context();
        let redaction = RedactionConfig::default();
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            let body = EntryBody::of_decision(black_box(&d), black_box(&ctx), &redaction).unwrap();
            black_box(write_body_line(7, &body, &prev, &mut out));
        });
    });
}

/// The decision API's permit answer (~1.5 KB with a ~700-byte token): written by hand
/// (`DecisionResponse::to_json`, what the API sends) against serde's derived serializer.
fn decision_answer(c: &mut Criterion) {
    let d = decision();
    let minter = TokenMinter::new(Arc::new(KeyRing::generate()), &TokenConfig::default()).unwrap();
    let issued = minter.issue(&d, "lexecon-api", &"ef".repeat(32)).unwrap();
    let token = IssuedToken {
        token: issued.token,
        token_id: issued.jti.to_string(),
        issued_at: jiff::Timestamp::from_second(issued.iat).unwrap(),
        expires_at: jiff::Timestamp::from_second(issued.exp).unwrap(),
    };
    let hash = "cd".repeat(32);
    let answer = DecisionResponse::new(&d, Some(&token), Some(&hash), None);
    assert_eq!(answer.to_json(), serde_json::to_vec(&answer).unwrap());
    c.bench_function("decision_answer_json_hand_written", |b| {
        b.iter(|| black_box(black_box(&answer).to_json()))
    });
    c.bench_function("decision_answer_json_serde_derive", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&answer)).unwrap()))
    });
}

fn token_mint(c: &mut Criterion) {
    let d = decision();
    let led = "ef".repeat(32);
    let per_request = TokenMinter::new(
        Arc::new(KeyRing::generate()),
        &TokenConfig {
            mode: MintMode::PerRequest,
            ..TokenConfig::default()
        },
    )
    .unwrap();
    c.bench_function("token_mint_per_request", |b| {
        b.iter(|| per_request.mint(black_box(&d), "orders", &led).unwrap());
    });

    let reuse = TokenMinter::new(Arc::new(KeyRing::generate()), &TokenConfig::default()).unwrap();
    reuse.mint(&d, "orders", &led).unwrap();
    c.bench_function("token_mint_reuse_hit", |b| {
        b.iter(|| reuse.mint(black_box(&d), "orders", &led).unwrap());
    });

    // The floor: one Ed25519 signature over a token-sized message.
    let raw = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let message = vec![b'x'; 420];
    c.bench_function("ed25519_sign_raw_420_bytes", |b| {
        use ed25519_dalek::Signer as _;
        b.iter(|| raw.sign(black_box(&message)));
    });

    // For comparison: the same claims through jsonwebtoken::encode, which re-parses the PKCS#8 key
    // on every call.
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let ring = KeyRing::from_keys([key.clone()]).unwrap();
    let encoding = jsonwebtoken::EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(ring.signer().kid().to_owned());
    c.bench_function("token_mint_via_jsonwebtoken_encode", |b| {
        b.iter(|| {
            let now = jiff::Timestamp::now().as_second();
            let claims = Claims {
                iss: "lexecon".to_owned(),
                sub: d.actor.clone(),
                aud: "orders".to_owned(),
                dom: d.domain.clone(),
                act: d.action.clone(),
                res: d.resource.clone(),
                dec: d.decision_id.clone(),
                pol: d.policy_version_hash.to_string(),
                led: led.clone(),
                iat: now,
                exp: now + 60,
                jti: uuid::Uuid::now_v7().to_string(),
                ctx: None,
                htm: None,
                htu: None,
                bdh: None,
            };
            jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = ledger_append, decision_answer, token_mint
}
criterion_main!(benches);
