//! The enforcement pipeline's own cost, in process (issue 17): one permitted request of
//! benches/load.sh's `enforce-async` GET — identify (a cached EdDSA JWT), classify (REST), decide
//! (the load policy, decision cache on), record (ledger `async`) and capability token (`reuse`) —
//! on the bench thread, without the network or pingora. It prints, per request: wall time and the
//! bench thread's CPU; the whole process's CPU (the ledger writer included); allocations (and
//! reallocations) and bytes allocated, all threads (a counting allocator). The stages are added
//! one at a time, so each stage's share is the difference of two rows. The last rows run the whole
//! pipeline paced at fixed rates, where the ledger writer's own cadence (a write every `linger`,
//! an fdatasync every `flush_interval`) is a fixed cost per second.
//!
//! Run: `cargo bench -p lexecon --bench enforce` (benches/RESULTS.md, "Enforcement cost").
//! `ENFORCE_LEDGER_LINGER` / `ENFORCE_LEDGER_FLUSH_INTERVAL` set the writer's cadence.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "benchmark setup: a failure aborts the benchmark"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use lexecon::enforce::{self, Binding};
use lexecon::engine::Engine;
use lexecon::server::state::ProxySnapshot;
use lexecon_classify::RequestParts;
use lexecon_policy_cache::DecisionInput;
use lexecon_token::{Grant, RequestBinding};
use stats_alloc::StatsAlloc;

// ---------------------------------------------------------------------------------------------
// A counting allocator (stats_alloc, process-wide) over mimalloc, the allocator the binary uses
// (glibc malloc, the default, adds arena-lock wake-ups and page faults of its own when the request
// thread allocates what the ledger writer frees).

#[global_allocator]
static GLOBAL: StatsAlloc<mimalloc::MiMalloc> = StatsAlloc::new(mimalloc::MiMalloc);

// ---------------------------------------------------------------------------------------------
// CPU time from /proc (clock ticks): the bench thread's and the process's.

fn ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name and state.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Microseconds per clock tick of /proc's `stat` (USER_HZ, 100 on Linux whatever the kernel's HZ).
const TICK_US: f64 = 10_000.0;

struct Sample {
    wall: Instant,
    thread: u64,
    process: u64,
    allocs: stats_alloc::Stats,
}

fn sample() -> Sample {
    Sample {
        wall: Instant::now(),
        thread: ticks("/proc/thread-self/stat"),
        process: ticks("/proc/self/stat"),
        allocs: GLOBAL.stats(),
    }
}

fn report(name: &str, n: u64, a: &Sample, b: &Sample) {
    let n_f = n as f64;
    let allocs = (b.allocs.allocations + b.allocs.reallocations
        - a.allocs.allocations
        - a.allocs.reallocations) as f64
        / n_f;
    let bytes = (b.allocs.bytes_allocated - a.allocs.bytes_allocated) as f64 / n_f;
    println!(
        "| {name} | {n} | {:.2} | {:.2} | {:.2} | {allocs:.1} | {bytes:.0} |",
        (b.wall - a.wall).as_secs_f64() * 1e6 / n_f,
        (b.thread - a.thread) as f64 * TICK_US / n_f,
        (b.process - a.process) as f64 * TICK_US / n_f,
    );
}

// ---------------------------------------------------------------------------------------------
// The setup of benches/load.sh's enforce-async variant, in a temporary directory.

struct Setup {
    _dir: tempfile::TempDir,
    snap: ProxySnapshot,
    /// 1,000 requests: the headers (with the bearer token) and the path.
    requests: Vec<(http::HeaderMap, String)>,
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// `async`, with `ENFORCE_LEDGER_FLUSH_INTERVAL` / `ENFORCE_LEDGER_LINGER` (e.g. `50ms`, `5ms`)
/// when set: the writer's cadence, whose fixed cost per second the paced rows show.
fn ledger_settings() -> String {
    let mut settings = "async".to_owned();
    for (var, key) in [
        ("ENFORCE_LEDGER_FLUSH_INTERVAL", "flush_interval"),
        ("ENFORCE_LEDGER_LINGER", "linger"),
    ] {
        if let Ok(value) = std::env::var(var) {
            settings.push_str(&format!("\n  {key}: {value}"));
        }
    }
    settings
}

fn setup() -> Setup {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let idp = SigningKey::from_bytes(&[7u8; 32]);
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"load-idp-1","x":"{}"}}]}}"#,
            b64(idp.verifying_key().as_bytes())
        ),
    )
    .unwrap();
    let now = jiff::Timestamp::now().as_second();
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"load-idp-1"}"#),
        b64(format!(
            r#"{{"iss":"https://idp.load.test","aud":"lexecon-load","sub":"load-agent","tenant":"acme","iat":{now},"exp":{}}}"#,
            now + 3600
        )
        .as_bytes())
    );
    let token = format!(
        "{signing_input}.{}",
        b64(&idp.sign(signing_input.as_bytes()).to_bytes())
    );
    let template = std::fs::read_to_string(root.join("benches/load/lexecon.yaml.in")).unwrap();
    let yaml = template
        .replace("@DATA_DIR@", &dir.path().join("data").display().to_string())
        .replace("@PROXY_PORT@", "18691")
        .replace("@ADMIN_PORT@", "18692")
        .replace("@THREADS@", "1")
        .replace("@UPSTREAM_PORT@", "18690")
        .replace("@JWKS@", &jwks.display().to_string())
        .replace("@MODE@", "enforce")
        .replace("@DURABILITY@", &ledger_settings())
        .replace(
            "@POLICY@",
            &root
                .join("benches/load/policies/ai.yaml")
                .display()
                .to_string(),
        );
    let config_path = dir.path().join("lexecon.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let config = lexecon::run::load(&lexecon::run::Source::File(config_path)).unwrap();
    let engine = Arc::new(Engine::from_config(&config).unwrap());
    let snap = ProxySnapshot::build(&config, engine).unwrap();
    let requests = (0..1000)
        .map(|i| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
            headers.insert(http::header::HOST, "load.test".parse().unwrap());
            (headers, format!("/v1/files/f{i}"))
        })
        .collect();
    Setup {
        _dir: dir,
        snap,
        requests,
    }
}

/// How far one request goes.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Stage {
    Identify,
    Classify,
    Decide,
    Record,
}

/// One request through `stage`, as the proxy's `check` and `record` do it for a single permitted
/// call (route `files`, GET, no body).
async fn one(setup: &Setup, i: usize, stage: Stage) {
    let snap = &setup.snap;
    let (headers, path) = &setup.requests[i % setup.requests.len()];
    let actor = snap
        .identity
        .identify(headers, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        .unwrap();
    if stage == Stage::Identify {
        std::hint::black_box(actor);
        return;
    }
    let route = &snap.routes.routes[0];
    let parts = RequestParts {
        method: "GET",
        path,
        query: None,
        headers,
    };
    let classified = lexecon_classify::classify(&route.classifier, &parts, None).unwrap();
    if stage == Stage::Classify {
        std::hint::black_box(classified);
        return;
    }
    let item = &classified.items[0];
    let mut context = item.context.clone();
    context.extend(actor.context.iter().map(|(k, v)| (k.clone(), v.clone())));
    let input = DecisionInput {
        request_id: None,
        domain: route.domain.clone(),
        actor: actor.id.to_string(),
        action: item.action.clone(),
        resource: item.resource.clone(),
        context,
        at: None,
        provenance: actor.claim_provenance(),
    };
    let binding = Binding::Http {
        method: "GET",
        path_and_query: path,
        body: &[],
    };
    let decided = enforce::decide_held(&*snap.decider, &snap.policies, input, None, binding, None)
        .await
        .unwrap();
    assert!(
        decided.is_permit(),
        "the load policy permits every file read"
    );
    if stage == Stage::Decide {
        std::hint::black_box(decided);
        return;
    }
    let grant = Grant {
        audience: route.upstream.name.as_str(),
        request: Some(RequestBinding {
            method: "GET",
            target: path,
            body: None,
        }),
    };
    let recorded = snap
        .decider
        .record_owned(decided.decision, decided.context, Some(grant))
        .await
        .unwrap();
    assert!(
        recorded.capability_token.is_some(),
        "a permitted request gets its capability token"
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored: this bench runs as a whole.
    let n: u64 = std::env::var("ENFORCE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let setup = setup();
    rt.block_on(async {
        // Warm-up: the JWT, the decisions and the tokens of all 1,000 requests are cached.
        for i in 0..20_000 {
            one(&setup, i, Stage::Record).await;
        }
        println!(
            "| stages (one permitted GET) | requests | wall µs/req | bench thread CPU µs/req | process CPU µs/req | allocations/req (all threads) | bytes allocated/req |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (name, stage) in [
            ("identify (cached JWT)", Stage::Identify),
            ("+ classify (REST)", Stage::Classify),
            ("+ decide (decision cache)", Stage::Decide),
            ("+ record (ledger async) + token (reuse)", Stage::Record),
        ] {
            let a = sample();
            for i in 0..n as usize {
                one(&setup, i, stage).await;
            }
            let b = sample();
            report(name, n, &a, &b);
        }
        // Paced: the whole pipeline at fixed rates; the process's CPU includes the writer's own
        // cadence, a fixed cost per second that a low rate spreads over fewer requests.
        for rate in [1_000u64, 5_000] {
            let seconds = 4;
            let total = rate * seconds;
            let per_tick = (rate / 1_000) as usize;
            let mut interval = tokio::time::interval(Duration::from_millis(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let a = sample();
            let mut i = 0usize;
            while (i as u64) < total {
                interval.tick().await;
                // A millisecond's requests at each tick (tokio's timer counts milliseconds).
                for _ in 0..per_tick {
                    one(&setup, i, Stage::Record).await;
                    i += 1;
                }
            }
            let b = sample();
            report(
                &format!("whole pipeline paced at {rate} req/s"),
                total,
                &a,
                &b,
            );
        }
        // Idle for 2 s, as a reference for the paced rows: what the process spends (CPU,
        // allocations) per millisecond with no request at all ("requests" counts milliseconds).
        let a = sample();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let b = sample();
        report("idle, per millisecond (no requests)", 2_000, &a, &b);
    });
    // The ledger writer flushes and stops with the engine when the setup drops.
    drop(setup);
}
