//! Break-glass is caller-declared by design, and therefore accountable (issue 15): an actor's
//! first break-glass request opens a session of the route's `break_glass_ttl`, whose start and end
//! (with the number of requests it covered) are ledger entries, counted in the metrics. The
//! policy still decides each request; an unrecognised reason is still refused by the plugin.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use support::{get, EngineServer};

/// Physicians may read PHI with consent, or under break-glass (which the plugin accepts only with
/// a recognised reason).
const POLICY: &str = r#"
id: break-glass-test
domain: healthcare
mode: strict
rules:
  - {id: phi-with-consent, effect: permit, action: axn_access_phi, when: [{field: context.patient_consent, op: eq, value: true}], reason: consent}
  - {id: break-glass, effect: permit, actor: "act_physician:*", action: axn_access_phi, when: [{field: context.break_glass, op: exists}], reason: emergency access}
"#;

#[test]
fn a_break_glass_session_is_recorded_when_it_starts_and_when_it_ends() {
    let upstream = support::TestUpstream::start();
    let up = upstream.addr;
    let mut server = EngineServer::start(move |proxy, admin, dir| {
        let policy = dir.join("healthcare.yaml");
        std::fs::write(&policy, POLICY).unwrap();
        format!(
            r#"
data_dir: "{data}"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
upstreams:
  ehr: {{addrs: ["{up}"]}}
identity: {{trusted_actor_header: x-agent-id}}
routes:
  - name: fhir
    match: {{path_prefix: /fhir}}
    domain: healthcare
    classifier: {{kind: fhir, base_path: /fhir, break_glass_ttl: 1s}}
    upstream: ehr
policies:
  healthcare: "{policy}"
"#,
            data = dir.join("data").display(),
            policy = policy.display(),
        )
    });
    let url = server.url("/fhir/Patient/123");
    let admin = server.handle().admin_addr;
    let doctor = ("x-agent-id", "act_physician:dr_lee");

    // Without consent or break-glass the read is denied; an unrecognised reason does not help.
    assert_eq!(get(&url, &[doctor]).status, 403);
    assert_eq!(
        get(&url, &[doctor, ("x-break-glass", "curiosity")]).status,
        403
    );
    assert_eq!(upstream.requests().len(), 0);

    // Two break-glass reads within the session, then the session ends by itself.
    for _ in 0..2 {
        let r = get(&url, &[doctor, ("x-break-glass", "ETREAT")]);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let metrics = get(&format!("http://{admin}/metrics"), &[]).body;
    assert!(
        metrics.contains("lexecon_break_glass_sessions_total 1"),
        "{metrics}"
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let metrics = get(&format!("http://{admin}/metrics"), &[]).body;
    assert!(
        metrics.contains("lexecon_break_glass_active 0"),
        "{metrics}"
    );

    let entries = server.stop_and_read_ledger();
    let glass: Vec<&str> = entries
        .iter()
        .filter(|e| e["event_type"] == "break_glass")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(glass.len(), 2, "{glass:?}");
    assert!(
        glass[0].contains("started by act_physician:dr_lee") && glass[0].contains("ETREAT"),
        "{glass:?}"
    );
    assert!(
        glass[1].contains("ended for act_physician:dr_lee") && glass[1].contains("2 requests"),
        "{glass:?}"
    );
    let by: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["event_type"] == "break_glass")
        .map(|e| &e["actor"])
        .collect();
    assert!(by.iter().all(|a| *a == "act_physician:dr_lee"), "{by:?}");
}
