//! Bounded memory under hostile keys, with the real binary (issue 18): `lexecon serve` configured
//! with small bounds — `rate_limit.max_actors`, `identity.jwt.cache_capacity` and
//! `tokens.reuse_capacity` all [`CAPACITY`] — is flooded with two thousand distinct valid bearer
//! JWTs (each a new actor, each permitted request a new resource: new verified-token, limiter,
//! decision-cache and token-reuse keys), tokens of unknown `kid`s and garbage tokens. Every answer
//! is the right one (200 within an actor's budget, 429 `rate_limited` once the limiter is full of
//! actors still spending theirs, 401 for an unknown kid or garbage), and the child's `VmRSS` grows
//! after warm-up by less than what the caches' bounds allow ([`bound`]), far below what keeping
//! every key of the flood would take ([`unbounded`]).
//!
//! Each valid token carries a `note` claim of [`NOTE_ITEMS`] zeros (`[0,0,…]`, 2 bytes each on the
//! wire) mapped into the actor's context, where each is a `serde_json::Value` (32 bytes): a cached
//! verified token costs a known ~64 KiB for a ~5.5 KiB token. The flood's unbounded cost then
//! stands far above allocator noise, the bound is dominated by a term this test can estimate, and
//! the test stays fast in a debug build. What bounds the counts is verification: a debug build's
//! Ed25519 check takes ~8 ms, and every distinct valid token is checked once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::process::serve;
use support::{free_addr, now, TestUpstream, ED_JWKS, ED_PRIVATE_PEM};

/// `rate_limit.max_actors`, `identity.jwt.cache_capacity` and `tokens.reuse_capacity`.
const CAPACITY: usize = 200;
/// Requests an actor may send at once (`per_actor: 2/h`: nothing refills during the test, so every
/// admitted actor keeps spending its budget and is never forgotten).
const BURST: usize = 2;
/// Actors (each sending [`BURST`] permitted requests) before the first RSS sample.
const WARM_ACTORS: usize = 20;
/// New actors after the limiter is full: each refused with 429, its token verified and cached.
const REFUSED_ACTORS: usize = 1800;
/// Tokens of unknown kids, and garbage tokens, each (a tenth of them in the warm-up).
const BAD_TOKENS: usize = 500;
/// Elements of the `note` claim (an array of zeros) of every valid token, mapped into the actor's
/// context.
const NOTE_ITEMS: usize = 2048;
/// Concurrent client connections.
const CLIENTS: usize = 4;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The most the child's RSS may grow after warm-up: twice what every bounded map can hold, at an
/// estimate of each entry's size (generous: moka keeps per entry an `Arc`'d entry, a deque node, a
/// hash-table slot and its frequency sketch share, ~300 bytes), plus 8 MiB of slack:
///
/// - verified-JWT cache: `cache_capacity` × (the note: `NOTE_ITEMS` × `size_of::<Value>()`, + 1 KiB:
///   actor id, context map, SHA-256 key, moka's entry);
/// - limiter: `max_actors` × 256 B (the id `Arc<str>`, a governor state, the table slot);
/// - decision cache: its bound is 100,000 entries, but only `CAPACITY × BURST` distinct keys are
///   decided (the note is not a field the policy reads, so not part of a key), so
///   `CAPACITY × BURST` × 2 KiB (key, the decision's strings, moka's entry);
/// - token reuse: `reuse_capacity` × 2 KiB (a ~900-byte token, its jti, moka's entry);
/// - × 2 for fragmentation: mimalloc keeps a page while any block on it lives, and the cached notes
///   share pages with the per-request copies of the note and with the entries moka evicted or did
///   not admit (measured: the anonymous RSS grows by ~1.9× the cached notes here);
/// - + 8 MiB for the ledger's buffers, connection pools and per-thread heaps.
fn bound() -> u64 {
    let capacity = CAPACITY as u64;
    let jwt = capacity * (note_bytes() + KIB);
    let limiter = capacity * 256;
    let decisions = capacity * BURST as u64 * 2 * KIB;
    let reuse = capacity * 2 * KIB;
    2 * (jwt + limiter + decisions + reuse) + 8 * MIB
}

/// The note in a cached actor's context: its array's elements.
fn note_bytes() -> u64 {
    (NOTE_ITEMS * std::mem::size_of::<serde_json::Value>()) as u64
}

/// What keeping every verified token of the flood after warm-up would take, counting only the
/// note each one's cached actor context carries.
fn unbounded() -> u64 {
    (CAPACITY - WARM_ACTORS + REFUSED_ACTORS) as u64 * note_bytes()
}

/// The child's resident set, in bytes (`VmRSS` of `/proc/<pid>/status`).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

const POLICY: &str = "id: flood\ndomain: ai\nmode: strict\nrules:\n  - {id: reads, effect: permit, actor: \"act_ai_agent:*\", action: axn_read_data, reason: agents may read}\n";

fn write_config(dir: &Path, proxy: SocketAddr, admin: SocketAddr, upstream: SocketAddr) {
    std::fs::write(dir.join("ai.yaml"), POLICY).unwrap();
    std::fs::write(dir.join("jwks.json"), ED_JWKS).unwrap();
    std::fs::write(
        dir.join("lexecon.yaml"),
        format!(
            r#"
data_dir: data
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
server: {{grace_period: 0s, graceful_shutdown_timeout: 1s}}
upstreams:
  app: {{addrs: ["{upstream}"]}}
identity:
  jwt:
    issuer: https://idp.test
    audience: lexecon
    jwks: jwks.json
    algorithms: [EdDSA]
    actor_prefix: "act_ai_agent:"
    claims_to_context: {{note: note}}
    cache_capacity: {CAPACITY}
tokens: {{reuse_capacity: {CAPACITY}}}
routes:
  - name: files
    match: {{path_prefix: /v1/files}}
    domain: ai
    classifier: {{kind: rest, operations: [{{method: GET, path: "/v1/files/{{id}}", action: axn_read_data, resource: "res_file:{{id}}"}}]}}
    upstream: app
    rate_limit: {{per_actor: {BURST}/h, max_actors: {CAPACITY}}}
policies: {{ai: ai.yaml}}
"#
        ),
    )
    .unwrap();
}

/// Signs bearer tokens with the test key (or as if with a key of another `kid`).
struct Signer(jsonwebtoken::EncodingKey);

impl Signer {
    fn new() -> Self {
        Signer(jsonwebtoken::EncodingKey::from_ed_pem(ED_PRIVATE_PEM.as_bytes()).unwrap())
    }

    /// A valid token for actor `act_ai_agent:flood-<i>`, with the note.
    fn valid(&self, i: usize) -> String {
        self.signed("test-key", i)
    }

    /// A well-signed token whose `kid` the JWKS does not have.
    fn unknown_kid(&self, i: usize) -> String {
        self.signed(&format!("ghost-{i}"), i)
    }

    fn signed(&self, kid: &str, i: usize) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let note = vec![0u8; NOTE_ITEMS];
        let claims = json!({"iss": "https://idp.test", "aud": "lexecon", "sub": format!("flood-{i}"),
            "exp": now() + 600, "note": note});
        jsonwebtoken::encode(&header, &claims, &self.0).unwrap()
    }
}

/// Garbage in the shape of a token: three base64url-ish segments that are not a JWT.
fn garbage(i: usize) -> String {
    format!("eyJ{i:x}.not-a-token-{i}.{}", "A".repeat(64))
}

/// `GET /v1/files/<file>` with `token`: (status, `error` of the answer, if any).
fn call(agent: &ureq::Agent, proxy: SocketAddr, file: &str, token: &str) -> (u16, String) {
    let r = support::reply(
        agent
            .get(format!("http://{proxy}/v1/files/{file}"))
            .header("authorization", format!("Bearer {token}"))
            .call(),
    );
    let error = serde_json::from_str::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (r.status, error)
}

/// Runs `each(agent, k)` for every `k` in `range`, spread over [`CLIENTS`] connections.
fn spread(range: std::ops::Range<usize>, each: impl Fn(&ureq::Agent, usize) + Sync) {
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let (each, range) = (&each, range.clone());
            s.spawn(move || {
                let agent = support::client();
                for k in range.skip(c).step_by(CLIENTS) {
                    each(&agent, k);
                }
            });
        }
    });
}

/// Actors `range` each spend their whole budget on distinct files (200 each), then one more (429).
fn spend_budgets(proxy: SocketAddr, signer: &Signer, range: std::ops::Range<usize>) {
    spread(range, |agent, i| {
        let token = signer.valid(i);
        for b in 0..BURST {
            let (status, error) = call(agent, proxy, &format!("f{i}-{b}"), &token);
            assert_eq!(
                (status, error.as_str()),
                (200, ""),
                "actor {i}, request {b}"
            );
        }
        let (status, error) = call(agent, proxy, &format!("f{i}-{BURST}"), &token);
        assert_eq!(
            (status, error.as_str()),
            (429, "rate_limited"),
            "actor {i} over budget"
        );
    });
}

/// Unknown kids and garbage tokens `range`: 401 each, nothing decided.
fn bad_tokens(proxy: SocketAddr, signer: &Signer, range: std::ops::Range<usize>) {
    spread(range, |agent, i| {
        let (status, error) = call(agent, proxy, "f0", &signer.unknown_kid(i));
        assert_eq!(
            (status, error.as_str()),
            (401, "unauthenticated"),
            "kid ghost-{i}"
        );
        let (status, error) = call(agent, proxy, "f0", &garbage(i));
        assert_eq!(
            (status, error.as_str()),
            (401, "unauthenticated"),
            "garbage {i}"
        );
    });
}

/// Lets the caches finish their pending work before a sample: moka applies evictions in batches,
/// on later reads and writes, so a few requests with a token that was cached, then a pause.
fn settle(proxy: SocketAddr, signer: &Signer) {
    let agent = support::client();
    let token = signer.valid(0);
    for _ in 0..100 {
        let (status, _) = call(&agent, proxy, "settle", &token);
        assert_eq!(status, 429, "actor 0 spent its budget in the warm-up");
    }
    std::thread::sleep(Duration::from_millis(500));
}

/// How it can fail (checked by hand, writing the value into the configuration above): with
/// `cache_capacity: 10000000` (the verified-JWT cache's bound removed in effect) the flood's tokens
/// stay cached and the RSS assertion fails (it grew 172 MiB against a bound of 36 MiB; bounded, it
/// grew 26 MiB); with `max_actors: 10000000` the refused actors get 200 and the answer assertions
/// fail.
#[test]
fn a_flood_of_distinct_tokens_actors_and_resources_keeps_the_served_binarys_rss_within_the_caches_bounds(
) {
    assert!(
        bound() * 2 < unbounded(),
        "the test must tell bounded from unbounded: bound {} B, unbounded {} B",
        bound(),
        unbounded()
    );
    let upstream = TestUpstream::start();
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, admin) = (free_addr(), free_addr());
    write_config(tmp.path(), proxy, admin, upstream.addr);
    let mut served = serve(tmp.path(), Path::new("lexecon.yaml"), proxy);
    let pid = served.0.id();
    let signer = Signer::new();
    let started = Instant::now();

    // Warm-up: threads, connection pools, the ledger and every cache in use.
    spend_budgets(proxy, &signer, 0..WARM_ACTORS);
    bad_tokens(proxy, &signer, 0..BAD_TOKENS / 10);
    settle(proxy, &signer);
    let warm = rss(pid);

    // The flood: the limiter fills with actors spending their budgets (every permit a new decision
    // and a new token: CAPACITY × BURST of each, twice the reuse cache), then new actors are
    // refused while their tokens are verified and cached; unknown kids and garbage throughout.
    spend_budgets(proxy, &signer, WARM_ACTORS..CAPACITY);
    std::thread::scope(|s| {
        s.spawn(|| bad_tokens(proxy, &signer, BAD_TOKENS / 10..BAD_TOKENS));
        spread(CAPACITY..CAPACITY + REFUSED_ACTORS, |agent, i| {
            let (status, error) = call(agent, proxy, &format!("f{i}"), &signer.valid(i));
            assert_eq!(
                (status, error.as_str()),
                (429, "rate_limited"),
                "actor {i}: the limiter is full of actors spending their budgets"
            );
        });
    });
    // A flood of new actors reset no one's budget.
    let (status, error) = call(&support::client(), proxy, "again", &signer.valid(0));
    assert_eq!((status, error.as_str()), (429, "rate_limited"));
    settle(proxy, &signer);
    let flooded = rss(pid);
    let grown = flooded.saturating_sub(warm);
    eprintln!(
        "RSS {} KiB after warm-up, {} KiB after the flood: grew {} KiB (bound {} KiB, unbounded >= {} KiB); {:.1} s",
        warm / KIB,
        flooded / KIB,
        grown / KIB,
        bound() / KIB,
        unbounded() / KIB,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        upstream.requests().len(),
        CAPACITY * BURST,
        "only permits reach the upstream"
    );
    assert!(
        grown < bound(),
        "RSS grew {grown} bytes after warm-up, above the caches' bound {} (keeping every token: >= {})",
        bound(),
        unbounded()
    );
    assert!(
        served.0.try_wait().unwrap().is_none(),
        "lexecon still serves"
    );
}
