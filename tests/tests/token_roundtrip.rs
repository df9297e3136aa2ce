//! Capability tokens end to end: mint with a key ring, verify against its JWKS, and fail with the
//! right reason when expired, for another audience, from another key, or altered.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration-test helpers: a failed unwrap is a failed test"
)]

use lexecon_tests as support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use lexecon::cli::token::{run_keys, run_token, KeysCommand, TokenCommand};
use lexecon_domains::Verdict;
use lexecon_policy_cache::{Decision, Explanation};
use lexecon_token::{
    parse_jwks, verify_token, KeyRing, MintMode, TokenConfig, TokenError, TokenMinter,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn decision(action: &str) -> Decision {
    Decision {
        request_id: "req-1".to_owned(),
        decision_id: "dec-1".to_owned(),
        domain: "finance".to_owned(),
        actor: "agent-7".to_owned(),
        action: action.to_owned(),
        resource: Some("account/42".to_owned()),
        decision: Verdict::Permit,
        reasoning: "rule allow-small-orders matched".to_owned().into(),
        rule_id: "allow-small-orders".to_owned().into(),
        policy_version_hash: "cd".repeat(32).into(),
        compliance_mappings: vec![].into(),
        risk_level: 3,
        requires_human_approval: false,
        review_required: false,
        explanation: Explanation {
            matched_rules: vec![].into(),
            findings: vec![],
            would_have: None,
            cached: false,
        },
        timestamp: jiff::Timestamp::now(),
    }
}

fn minter(ring: KeyRing, mode: MintMode) -> TokenMinter {
    let config = TokenConfig {
        mode,
        ..TokenConfig::default()
    };
    TokenMinter::new(Arc::new(ring), &config).unwrap()
}

#[test]
fn minted_token_verifies_against_the_jwks_with_every_claim() {
    let m = minter(KeyRing::generate(), MintMode::PerRequest);
    let led = "ef".repeat(32);
    let token = m
        .mint(&decision("axn_place_order"), "orders", &led)
        .unwrap();
    let jwks = parse_jwks(&m.key_ring().jwks_json()).unwrap();
    let claims = verify_token(&token, &jwks, Some("orders")).unwrap();
    assert_eq!(claims.iss, "lexecon");
    assert_eq!(claims.sub, "agent-7");
    assert_eq!(claims.aud, "orders");
    assert_eq!(claims.dom, "finance");
    assert_eq!(claims.act, "axn_place_order");
    assert_eq!(claims.res.as_deref(), Some("account/42"));
    assert_eq!(claims.dec, "dec-1");
    assert_eq!(claims.pol, "cd".repeat(32));
    assert_eq!(claims.led, led);
    assert_eq!(claims.exp - claims.iat, 60);
    assert!(!claims.jti.is_empty());
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(m.key_ring().signer().kid()));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    // No audience required: still verifies.
    assert!(verify_token(&token, &jwks, None).is_ok());
}

#[test]
fn expired_token_fails_as_expired() {
    let m = minter(KeyRing::generate(), MintMode::PerRequest);
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(120);
    let token = m
        .mint_at(&decision("axn_place_order"), "orders", "led", past)
        .unwrap();
    let jwks = parse_jwks(&m.key_ring().jwks_json()).unwrap();
    match verify_token(&token, &jwks, Some("orders")) {
        Err(TokenError::Expired { exp }) => assert_eq!(exp, past.as_second() + 60),
        other => panic!("expected Expired, got {other:?}"),
    }
}

#[test]
fn token_for_another_audience_fails_as_wrong_audience() {
    let m = minter(KeyRing::generate(), MintMode::PerRequest);
    let token = m
        .mint(&decision("axn_place_order"), "orders", "led")
        .unwrap();
    let jwks = parse_jwks(&m.key_ring().jwks_json()).unwrap();
    match verify_token(&token, &jwks, Some("payments")) {
        Err(TokenError::WrongAudience { expected, found }) => {
            assert_eq!((expected.as_str(), found.as_str()), ("payments", "orders"));
        }
        other => panic!("expected WrongAudience, got {other:?}"),
    }
}

#[test]
fn token_from_a_key_outside_the_jwks_fails_as_unknown_kid() {
    let m = minter(KeyRing::generate(), MintMode::PerRequest);
    let other = KeyRing::generate();
    let token = m
        .mint(&decision("axn_place_order"), "orders", "led")
        .unwrap();
    let jwks = parse_jwks(&other.jwks_json()).unwrap();
    match verify_token(&token, &jwks, Some("orders")) {
        Err(TokenError::UnknownKid { kid }) => assert_eq!(kid, m.key_ring().signer().kid()),
        other => panic!("expected UnknownKid, got {other:?}"),
    }
}

#[test]
fn token_signed_by_another_key_under_a_known_kid_fails_as_bad_signature() {
    let trusted = minter(KeyRing::generate(), MintMode::PerRequest);
    let attacker = minter(KeyRing::generate(), MintMode::PerRequest);
    let good = trusted.mint(&decision("a"), "orders", "led").unwrap();
    let evil = attacker.mint(&decision("a"), "orders", "led").unwrap();
    // The trusted header (kid), the attacker's payload and signature.
    let header = good.split('.').next().unwrap();
    let rest: Vec<&str> = evil.split('.').skip(1).collect();
    let forged = format!("{header}.{}.{}", rest[0], rest[1]);
    let jwks = parse_jwks(&trusted.key_ring().jwks_json()).unwrap();
    assert!(matches!(
        verify_token(&forged, &jwks, Some("orders")),
        Err(TokenError::BadSignature)
    ));
}

#[test]
fn altered_claim_fails_as_bad_signature() {
    let m = minter(KeyRing::generate(), MintMode::PerRequest);
    let token = m.mint(&decision("axn_read"), "orders", "led").unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["act"] = serde_json::json!("axn_delete_everything");
    let altered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    let jwks = parse_jwks(&m.key_ring().jwks_json()).unwrap();
    assert!(matches!(
        verify_token(&altered, &jwks, Some("orders")),
        Err(TokenError::BadSignature)
    ));
}

#[test]
fn garbage_fails_as_malformed() {
    let jwks = parse_jwks(&KeyRing::generate().jwks_json()).unwrap();
    for bad in ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.sig"] {
        assert!(
            matches!(
                verify_token(bad, &jwks, None),
                Err(TokenError::Malformed { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn reuse_mode_returns_the_same_token_while_more_than_half_its_life_remains() {
    let m = minter(KeyRing::generate(), MintMode::Reuse);
    let t0 = jiff::Timestamp::now();
    let d = decision("axn_place_order");
    let first = m.mint_at(&d, "orders", "led-1", t0).unwrap();
    let at = |s| t0 + jiff::SignedDuration::from_secs(s);
    assert_eq!(m.mint_at(&d, "orders", "led-2", at(29)).unwrap(), first);
    // Another action, audience or actor gets its own token.
    assert_ne!(
        m.mint_at(&decision("axn_cancel"), "orders", "led", at(1))
            .unwrap(),
        first
    );
    assert_ne!(m.mint_at(&d, "payments", "led", at(1)).unwrap(), first);
    // Half the life used: a fresh token.
    let later = m.mint_at(&d, "orders", "led-3", at(30)).unwrap();
    assert_ne!(later, first);
    let jwks = parse_jwks(&m.key_ring().jwks_json()).unwrap();
    assert_eq!(verify_token(&later, &jwks, None).unwrap().led, "led-3");
}

#[test]
fn per_request_mode_mints_a_fresh_token_every_time() {
    let m = minter(KeyRing::generate(), MintMode::PerRequest);
    let d = decision("axn_place_order");
    let a = m.mint(&d, "orders", "led").unwrap();
    let b = m.mint(&d, "orders", "led").unwrap();
    assert_ne!(a, b);
}

#[test]
fn non_permit_decisions_get_no_token() {
    let m = minter(KeyRing::generate(), MintMode::Reuse);
    let mut d = decision("axn_place_order");
    d.decision = Verdict::Escalate;
    assert!(matches!(
        m.mint(&d, "orders", "led"),
        Err(TokenError::NotPermitted {
            verdict: "escalate",
            ..
        })
    ));
}

#[test]
fn tokens_of_a_retired_signing_key_verify_while_it_stays_in_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let old_path = dir.path().join("old.pem");
    let new_path = dir.path().join("new.pem");
    lexecon_keys::generate_key_file(&old_path).unwrap();
    lexecon_keys::generate_key_file(&new_path).unwrap();
    let old = minter(
        KeyRing::from_pem_files(std::slice::from_ref(&old_path)).unwrap(),
        MintMode::PerRequest,
    );
    let rotated = minter(
        KeyRing::from_pem_files(&[new_path, old_path]).unwrap(),
        MintMode::PerRequest,
    );
    let old_token = old.mint(&decision("a"), "orders", "led").unwrap();
    let new_token = rotated.mint(&decision("a"), "orders", "led").unwrap();
    let jwks = parse_jwks(&rotated.key_ring().jwks_json()).unwrap();
    assert!(verify_token(&old_token, &jwks, Some("orders")).is_ok());
    assert!(verify_token(&new_token, &jwks, Some("orders")).is_ok());
    assert_ne!(
        jsonwebtoken::decode_header(&old_token).unwrap().kid,
        jsonwebtoken::decode_header(&new_token).unwrap().kid
    );
}

#[test]
fn invalid_token_config_is_rejected() {
    let config = TokenConfig {
        ttl: Duration::from_millis(500),
        ..TokenConfig::default()
    };
    assert!(matches!(
        TokenMinter::new(Arc::new(KeyRing::generate()), &config),
        Err(TokenError::InvalidConfig {
            field: "tokens.ttl",
            ..
        })
    ));
}

#[test]
fn keys_generate_and_token_verify_commands_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let code = run_keys(
        KeysCommand::Generate {
            out_dir: dir.path().to_owned(),
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(code, 0);
    // A second run must not overwrite the key.
    assert!(run_keys(
        KeysCommand::Generate {
            out_dir: dir.path().to_owned()
        },
        &mut Vec::new()
    )
    .is_err());
    let ring = KeyRing::load_or_generate(dir.path()).unwrap();
    let m = minter(ring, MintMode::PerRequest);
    let token = m
        .mint(&decision("axn_place_order"), "orders", "led")
        .unwrap();

    let verify = |audience: &str| {
        let mut out = Vec::new();
        let code = run_token(
            TokenCommand::Verify {
                token: token.clone(),
                jwks: dir.path().join("jwks.json").display().to_string(),
                audience: Some(audience.to_owned()),
            },
            &mut out,
        )
        .unwrap();
        (code, String::from_utf8(out).unwrap())
    };
    let (code, text) = verify("orders");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("\"sub\": \"agent-7\""));
    let (code, text) = verify("payments");
    assert_eq!(code, 1);
    assert!(text.contains("audience"), "{text}");

    // The JWKS may also come from a URL, as the admin listener serves it.
    let jwks = std::fs::read(dir.path().join("jwks.json")).unwrap();
    let server = support::TestUpstream::answering(&jwks);
    let mut out = Vec::new();
    let code = run_token(
        TokenCommand::Verify {
            token: token.clone(),
            jwks: format!("http://{}/.well-known/jwks.json", server.addr),
            audience: Some("orders".to_owned()),
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out));
}

// ---------------------------------------------------------------------------------------------
// `TokenMinter::reusable` and `issue`: the token mint would reuse, with its id and lifetime.

#[test]
fn reusable_returns_the_token_mint_would_reuse_and_none_when_mint_would_sign() {
    let m = minter(KeyRing::generate(), MintMode::Reuse);
    let t0 = jiff::Timestamp::now();
    let at = |s| t0 + jiff::SignedDuration::from_secs(s);
    let d = decision("axn_place_order");
    assert_eq!(m.reusable_at(&d, "orders", t0), None, "nothing minted yet");
    let first = m.issue_at(&d, "orders", "led-1", t0).unwrap();
    assert_eq!(m.reusable_at(&d, "orders", at(29)), Some(first.clone()));
    assert_eq!(
        m.mint_at(&d, "orders", "led-2", at(29)).unwrap(),
        first.token
    );
    assert_eq!(m.reusable_at(&d, "payments", at(1)), None);
    // Half the life used: `mint` would sign again, so nothing is reusable.
    assert_eq!(m.reusable_at(&d, "orders", at(30)), None);
    let mut denied = d.clone();
    denied.decision = Verdict::Deny;
    assert_eq!(m.reusable_at(&denied, "orders", at(1)), None);
}

#[test]
fn reusable_is_always_none_in_per_request_mode() {
    let m = minter(KeyRing::generate(), MintMode::PerRequest);
    let d = decision("axn_place_order");
    m.mint(&d, "orders", "led").unwrap();
    assert_eq!(m.reusable(&d, "orders"), None);
}

#[test]
fn issued_jti_and_lifetime_are_the_signed_tokens_own_claims() {
    let keys = KeyRing::generate();
    let jwks = parse_jwks(&keys.jwks_json()).unwrap();
    for mode in [MintMode::Reuse, MintMode::PerRequest] {
        let m = minter(keys.clone(), mode);
        let issued = m
            .issue(&decision("axn_place_order"), "orders", "led")
            .unwrap();
        let claims = verify_token(&issued.token, &jwks, Some("orders")).unwrap();
        assert_eq!(claims.jti, issued.jti.to_string(), "{mode:?}");
        assert_eq!(
            (claims.iat, claims.exp),
            (issued.iat, issued.exp),
            "{mode:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens bound to what was decided (issue 15), checked by the documented upstream verifier.

/// Runs docs/examples/verify_capability.py as an upstream would; (exit code, output).
fn python_verify(
    jwks: &std::path::Path,
    token: &str,
    method: &str,
    target: &str,
    body: &[u8],
) -> (i32, String) {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, body).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples/verify_capability.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(jwks)
        .args(["app", method, target])
        .arg(&body_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the documented verifier");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_proxied_token_is_bound_to_its_request_and_body_and_the_documented_check_holds() {
    let h = support::api_harness::ApiHarness::start("");
    let jwks = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        jwks.path(),
        support::get(&h.api("/.well-known/jwks.json"), &[]).body,
    )
    .unwrap();
    let body = br#"{"topic":"refunds"}"#;
    let r = support::post(
        &h.proxy("/v1/notes?lang=en"),
        &[
            ("x-agent-id", support::api_harness::AGENT),
            ("content-type", "application/json"),
        ],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let got = h.upstream.requests();
    let token = got[0].header("x-lexecon-capability").unwrap().to_owned();

    let (code, out) = python_verify(jwks.path(), &token, "POST", "/v1/notes?lang=en", body);
    assert_eq!(code, 0, "{out}");
    let claims: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(claims["htm"], "POST");
    assert_eq!(claims["htu"], "/v1/notes?lang=en");
    assert!(
        claims["ctx"].is_string() && claims["bdh"].is_string(),
        "{claims}"
    );

    // The same token presented with another body, target or method is refused.
    for (method, target, other) in [
        ("POST", "/v1/notes?lang=en", &br#"{"topic":"payroll"}"#[..]),
        ("POST", "/v1/files/delete", &body[..]),
        ("DELETE", "/v1/notes?lang=en", &body[..]),
    ] {
        let (code, out) = python_verify(jwks.path(), &token, method, target, other);
        assert_eq!(code, 1, "{method} {target}: {out}");
        assert!(out.contains("refused"), "{out}");
    }

    // Another body, decided again, gets another token (reuse never crosses a binding).
    let r = support::post(
        &h.proxy("/v1/notes?lang=en"),
        &[
            ("x-agent-id", support::api_harness::AGENT),
            ("content-type", "application/json"),
        ],
        br#"{"topic":"payroll"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let second = h.upstream.requests()[1]
        .header("x-lexecon-capability")
        .unwrap()
        .to_owned();
    assert_ne!(second, token);
}
