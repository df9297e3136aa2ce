//! Lexecon's fuzz targets as library functions, one per target: each takes the fuzzer's bytes,
//! runs one parser or decision path of the product on them, and panics when the code under test
//! panics or breaks a property its documentation promises. The libFuzzer binaries
//! (`fuzz_targets/`, `cargo +nightly fuzz run --features libfuzzer <target>`) are one-line calls of
//! these; `tests/replay.rs` runs them on stable over the checked-in corpora and a few thousand
//! derived inputs. See README.md.
//!
//! | target | under test |
//! |---|---|
//! | [`classify_mcp`], [`classify_rest`], [`classify_fhir`] | `lexecon_classify::classify` on any request ([`request`] format), MCP denial answers and `tools/list` filtering, SMART scope checks |
//! | [`target`] | `lexecon_classify::target::{check, check_path}`, against a plain re-statement of their rules |
//! | [`policy`] | `parse_policy` → `validate_policy` → `CompiledPolicy::compile` → one evaluation |
//! | [`ledger_line`] | ledger lines: parse, both line writers, `verify_dir`, `tail`, `export` |
//! | [`differential`] | the compiled engine and the decision service against [`differential::reference`] |
//!
//! This crate must never be a dependency of the product; it reads and writes files only in a
//! per-thread scratch directory (`ledger_line`).

mod classify;
pub mod differential;
mod ledger;
mod policy;
pub mod request;
mod target;

pub use classify::{classify_fhir, classify_mcp, classify_rest};
pub use differential::differential;
pub use ledger::ledger_line;
pub use policy::policy;
pub use target::{ambiguity, target};

/// A fuzz target: its name (the `fuzz_targets/` binary and the `corpus/` directory) and function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 7] = [
    ("classify_mcp", classify_mcp),
    ("classify_rest", classify_rest),
    ("classify_fhir", classify_fhir),
    ("target", target),
    ("policy", policy),
    ("ledger_line", ledger_line),
    ("differential", differential),
];
