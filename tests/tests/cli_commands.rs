//! The `lexecon` binary as a user runs it: `init`, `domains`, `policy validate|load`, `decide` on
//! the seed cases, `ledger verify`, and one-line errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn lexecon(args: &[&str]) -> Output {
    Command::new(lexecon_tests::lexecon_binary())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Asserts a failed run: exit code 1 and exactly one line on stderr, without a backtrace.
fn assert_one_line_error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(o));
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    assert!(
        !err.contains("backtrace") && !err.contains("panicked"),
        "{err:?}"
    );
    err
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn init_finance_writes_a_policy_that_validates_and_a_config_that_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("desk");
    let o = lexecon(&["init", "--domain", "finance", "--dir", path(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let policy = dir.join("policies/finance.yaml");
    let config_file = dir.join("lexecon.yaml");
    assert!(stdout(&o).contains(path(&policy)), "{}", stdout(&o));

    let o = lexecon(&["policy", "validate", "--domain", "finance", path(&policy)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("valid finance policy"),
        "{}",
        stdout(&o)
    );

    let config = lexecon_config::Config::load(&config_file).unwrap();
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.routes[0].domain, "finance");
    assert!(config.policies.contains_key("finance"));

    // A second init does not overwrite what the first wrote.
    let o = lexecon(&["init", "--domain", "finance", "--dir", path(&dir)]);
    let err = assert_one_line_error(&o);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn domains_list_names_all_eight_domains() {
    let o = lexecon(&["domains", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 8, "{text}");
    for domain in ["ai", "finance", "healthcare"] {
        assert!(
            rows.iter()
                .any(|r| r.split_whitespace().next() == Some(domain)),
            "{domain} missing: {text}"
        );
    }

    let o = lexecon(&["domains", "list", "--json"]);
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 8);
}

#[test]
fn domains_info_finance_json_parses_with_its_types_and_templates() {
    let o = lexecon(&["domains", "info", "finance", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["domain"], json!("finance"));
    let frameworks = info["compliance_frameworks"].to_string();
    assert!(frameworks.contains("MIFID_II"), "{frameworks}");
    let templates = info["policy_templates"].to_string();
    assert!(templates.contains("prevent_flash_crash"), "{templates}");
}

#[test]
fn unknown_domain_is_a_one_line_error_naming_the_known_ones() {
    let o = lexecon(&["domains", "info", "astrology"]);
    let err = assert_one_line_error(&o);
    assert!(
        err.contains("astrology") && err.contains("finance"),
        "{err}"
    );
}

#[test]
fn broken_policy_fails_validation_listing_every_error_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("broken.yaml");
    std::fs::write(
        &file,
        r#"id: broken
domain: finance
rules:
  - id: first
    effect: permit
    actor: "act_nobody_knows:*"
    action: axn_place_order
  - id: second
    effect: permit
    action: axn_teleport
"#,
    )
    .unwrap();
    let o = lexecon(&["policy", "validate", "--domain", "finance", path(&file)]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let report = stdout(&o) + &stderr(&o);
    assert!(report.contains("broken.yaml"), "{report}");
    assert!(
        report.contains("rules[0]"),
        "the first rule's error has its path: {report}"
    );
    assert!(
        report.contains("rules[1]"),
        "the second rule's error has its path: {report}"
    );
    assert!(report.contains("act_nobody_knows"), "{report}");
    assert!(report.contains("axn_teleport"), "{report}");
}

#[test]
fn policy_load_prints_a_policy_enabling_the_template() {
    let o = lexecon(&[
        "policy",
        "load",
        "--domain",
        "finance",
        "--template",
        "prevent_flash_crash",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["domain"], json!("finance"));
    assert_eq!(doc["templates"][0]["name"], json!("prevent_flash_crash"));

    let o = lexecon(&[
        "policy",
        "load",
        "--domain",
        "finance",
        "--template",
        "prevent_flash_crash",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("prevent_flash_crash"));

    let o = lexecon(&[
        "policy",
        "load",
        "--domain",
        "finance",
        "--template",
        "no_such_template",
    ]);
    let err = assert_one_line_error(&o);
    assert!(err.contains("no_such_template"), "{err}");
}

/// `lexecon decide` with the policy `init --domain finance` writes (or, with `shipped`, the
/// demo's `deploy/policies/finance.yaml`), for an order of `value` at `at`.
fn decide_order(value: u64, at: &str, shipped: bool) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let o = lexecon(&["init", "--domain", "finance", "--dir", path(tmp.path())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let request = tmp.path().join("request.json");
    std::fs::write(
        &request,
        json!({
            "actor": "act_trading_algo:momentum",
            "action": "axn_place_order",
            "resource": "res_security:AAPL",
            "context": {"symbol": "AAPL", "order_value": value, "venue": "XNYS"},
        })
        .to_string(),
    )
    .unwrap();
    let policy = if shipped {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies/finance.yaml")
    } else {
        tmp.path().join("policies/finance.yaml")
    };
    let o = lexecon(&[
        "decide",
        "--domain",
        "finance",
        "--policy",
        path(&policy),
        "--request",
        path(&request),
        "--at",
        at,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

// Tuesday 2026-11-24, New York (EST, UTC-5).
const AT_1500_NEW_YORK: &str = "2026-11-24T15:00:00-05:00";
const AT_0800_NEW_YORK: &str = "2026-11-24T08:00:00-05:00";

#[test]
fn decide_permits_a_500k_order_at_1500_new_york_with_mifid_ii() {
    let d = decide_order(500_000, AT_1500_NEW_YORK, false);
    assert_eq!(d["decision"], json!("permit"), "{d}");
    assert!(
        d["compliance_mappings"].to_string().contains("MIFID_II"),
        "{d}"
    );
    assert!(d["explanation"].is_object(), "{d}");
}

#[test]
fn decide_escalates_a_20m_order_naming_the_limit() {
    let d = decide_order(20_000_000, AT_1500_NEW_YORK, true);
    assert_eq!(d["decision"], json!("escalate"), "{d}");
    let reason = d["reasoning"].as_str().unwrap();
    assert!(reason.contains("10,000,000"), "{reason}");
    assert!(reason.contains("20,000,000"), "{reason}");
}

#[test]
fn decide_denies_a_20m_order_under_the_starter_policys_flash_crash_template() {
    // `init --domain finance` enables prevent_flash_crash at 10M per minute: one 20M order alone
    // breaks it, and the deny wins over the per-order escalation (both are reported).
    let d = decide_order(20_000_000, AT_1500_NEW_YORK, false);
    assert_eq!(d["decision"], json!("deny"), "{d}");
    assert_eq!(
        d["rule_id"],
        json!("finding:finance.prevent_flash_crash"),
        "{d}"
    );
    let reason = d["reasoning"].as_str().unwrap();
    assert!(reason.contains("limit of 10,000,000 per order"), "{reason}");
}

#[test]
fn decide_denies_an_order_at_0800_new_york_outside_the_session() {
    let d = decide_order(500_000, AT_0800_NEW_YORK, false);
    assert_eq!(d["decision"], json!("deny"), "{d}");
    let reason = d["reasoning"].as_str().unwrap();
    assert!(reason.contains("08:00"), "{reason}");
}

#[test]
fn decide_with_a_bad_time_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = lexecon(&["init", "--domain", "finance", "--dir", path(tmp.path())]);
    assert!(o.status.success());
    let request = tmp.path().join("request.json");
    std::fs::write(
        &request,
        r#"{"actor":"act_trading_algo:a","action":"axn_place_order"}"#,
    )
    .unwrap();
    let policy = tmp.path().join("policies/finance.yaml");
    let o = lexecon(&[
        "decide",
        "--domain",
        "finance",
        "--policy",
        path(&policy),
        "--request",
        path(&request),
        "--at",
        "yesterday",
    ]);
    let err = assert_one_line_error(&o);
    assert!(err.contains("--at"), "{err}");
}

/// Writes a small signed ledger into `dir` with the library writer; returns the key ring.
fn write_ledger(dir: &Path) -> lexecon_keys::KeyRing {
    use lexecon_ledger::{EntryDraft, EventType, LedgerConfig, LedgerWriter};
    let keys = lexecon_keys::KeyRing::generate();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut config = LedgerConfig::new(dir);
        config.checkpoint_every = 3;
        let h =
            LedgerWriter::start(config, Some(lexecon_ledger::CheckpointSigner::of(&keys))).unwrap();
        for i in 0..7 {
            h.append(EntryDraft::event(
                EventType::Approval,
                format!("approved change {i}"),
            ))
            .await
            .unwrap();
        }
        h.shutdown().await.unwrap();
    });
    keys
}

#[test]
fn ledger_verify_passes_on_an_intact_ledger_and_exits_1_on_a_tampered_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    write_ledger(&dir);

    let o = lexecon(&["ledger", "verify", path(&dir), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report["first_error"].is_null(), "{report}");

    let segment = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    let tampered = text.replacen("approved change 4", "approved change 9", 1);
    assert_ne!(tampered, text);
    std::fs::write(&segment, tampered).unwrap();

    let o = lexecon(&["ledger", "verify", path(&dir)]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let report = stdout(&o) + &stderr(&o);
    assert!(report.contains("FAILED at seq"), "names the seq: {report}");
    assert!(report.contains("hash_mismatch"), "{report}");
}
