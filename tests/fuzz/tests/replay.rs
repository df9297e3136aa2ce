//! Stable CI for the fuzz targets (no nightly, no libFuzzer): every file of each target's
//! checked-in corpus (`corpus/<target>/`) goes through the target function, then a fixed number of
//! inputs derived from the corpus by a seeded generator (byte flips, cuts, copies, splices of two
//! files, random bytes), the same on every run. A panic fails the test and prints the input to
//! reproduce with `cargo +nightly fuzz run --features libfuzzer <target> <file>`.
//!
//! The known crashing inputs in `artifacts/<target>/` are replayed only by the ignored
//! `known_crashes_are_fixed` (run it with `--ignored` after a fix, then move the file into the
//! corpus).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use lexecon_fuzz::{Target, TARGETS};

/// Derived inputs per target.
const DERIVED: usize = 1500;
/// Fewest seed files a target's corpus may have.
const MIN_SEEDS: usize = 10;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

fn target(name: &str) -> Target {
    *TARGETS.iter().find(|(n, _)| *n == name).unwrap()
}

/// Runs `f` on `input`; on a panic, writes the input next to the test output and fails naming it.
fn run_one((name, f): Target, input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        let dir = std::env::temp_dir().join("lexecon-fuzz-replay");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}-{}", input.len()));
        std::fs::write(&file, input).unwrap();
        panic!(
            "{name} panicked on {what}; input saved as {} (reproduce: cargo +nightly fuzz run \
             --fuzz-dir tests/fuzz --features libfuzzer {name} {})",
            file.display(),
            file.display()
        );
    }
}

/// splitmix64: a small, fixed pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One input derived from the seeds.
fn derive(rng: &mut Rng, seeds: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    if rng.below(10) == 0 {
        let len = rng.below(256);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut input = seeds[rng.below(seeds.len())].1.clone();
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                input.drain(start..end);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                let copy = input[start..end].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, copy);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())].1;
                let from = rng.below(other.len() + 1);
                let at = rng.below(len + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => input.truncate(rng.below(len + 1)),
        }
    }
    input
}

/// The corpus of `name`, then [`DERIVED`] inputs derived from it.
fn replay(name: &str) {
    let target = target(name);
    let seeds = files(&fuzz_dir().join("corpus").join(name));
    assert!(
        seeds.len() >= MIN_SEEDS,
        "corpus/{name} has {} files; the seed corpus is missing",
        seeds.len()
    );
    for (path, bytes) in &seeds {
        run_one(target, bytes, &path.display().to_string());
    }
    let mut rng = Rng(name.bytes().fold(0x5eed, |h: u64, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    }));
    for n in 0..DERIVED {
        let input = derive(&mut rng, &seeds);
        run_one(target, &input, &format!("derived input {n}"));
    }
}

#[test]
fn classify_mcp_replays_its_corpus_without_a_panic() {
    replay("classify_mcp");
}

#[test]
fn classify_rest_replays_its_corpus_without_a_panic() {
    replay("classify_rest");
}

#[test]
fn classify_fhir_replays_its_corpus_without_a_panic() {
    replay("classify_fhir");
}

#[test]
fn target_replays_its_corpus_without_a_panic() {
    replay("target");
}

#[test]
fn policy_replays_its_corpus_without_a_panic() {
    replay("policy");
}

#[test]
fn ledger_line_replays_its_corpus_without_a_panic() {
    replay("ledger_line");
}

#[test]
fn differential_replays_its_corpus_without_a_panic() {
    replay("differential");
}

#[test]
fn every_target_has_a_binary_and_a_test_here() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let this = include_str!("replay.rs");
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "no [[bin]] {name} in Cargo.toml"
        );
        assert!(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "no fuzz_targets/{name}.rs"
        );
        assert!(
            this.contains(&format!("replay(\"{name}\")")),
            "no replay test of {name}"
        );
    }
}

#[test]
#[ignore = "replays the known crashing inputs in artifacts/; run after fixing one"]
fn known_crashes_are_fixed() {
    for (name, f) in TARGETS {
        for (path, bytes) in files(&fuzz_dir().join("artifacts").join(name)) {
            run_one((name, f), &bytes, &path.display().to_string());
        }
    }
}
