//! Minting capability tokens: compact JWS (EdDSA) over [`Claims`], signed with the key ring's first
//! key, with an optional reuse cache so that one actor repeating one call under one policy does not pay
//! an Ed25519 signature per request (see PINGORA-NOTES, "the per-request budget").
//!
//! The JWS is assembled here and signed directly with `ed25519-dalek`: `jsonwebtoken::encode` re-parses
//! the PKCS#8 key (one extra scalar multiplication) on every call, which doubles the cost (measured in
//! `benches/ledger.rs`). Tokens verify with `jsonwebtoken` ([`super::verify_token`]). Never mints for
//! anything but a permit.

use std::sync::Arc;

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use lexecon_domains::Verdict;
use lexecon_policy_cache::Decision;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::TokenError;
use lexecon_keys::KeyRing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The `tokens:` section, as the minter takes it (the schema, defaults and checks are the
/// configuration's: [`lexecon_config::sections::tokens`]).
pub use lexecon_config::sections::{MintMode, TokenSettings};
/// The name the minter's settings had before the schema moved to `lexecon-config`.
pub type TokenConfig = TokenSettings;

/// The configuration's check ([`TokenSettings::problems`]) for settings built by hand; the first
/// problem, if any.
pub fn validate(config: &TokenSettings) -> Result<(), TokenError> {
    match config.problems().into_iter().next() {
        None => Ok(()),
        Some(p) => Err(TokenError::InvalidConfig {
            field: p.field,
            reason: p.reason,
        }),
    }
}

/// Whom a token is for and what it is bound to: the audience (the upstream), and, on the proxy,
/// the request the upstream will receive. The decided context is bound too ([`Claims::ctx`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant<'a> {
    pub audience: &'a str,
    pub request: Option<RequestBinding<'a>>,
}

impl<'a> Grant<'a> {
    /// A token for `audience`, bound to no HTTP request (the decision API).
    pub fn to(audience: &'a str) -> Self {
        Grant {
            audience,
            request: None,
        }
    }
}

/// The request a proxied token travels with, as the upstream receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBinding<'a> {
    pub method: &'a str,
    /// Path and query, exactly as forwarded.
    pub target: &'a str,
    /// The body, when Lexecon read it before deciding (it is forwarded byte for byte); `None`
    /// when the route's body streams after the decision.
    pub body: Option<&'a [u8]>,
}

/// The binding claims of one token, computed once: `ctx` over the decided context, and the
/// request's `htm`, `htu`, `bdh`.
struct Bound<'a> {
    ctx: String,
    htm: Option<&'a str>,
    htu: Option<&'a str>,
    bdh: Option<String>,
}

impl<'a> Bound<'a> {
    fn of(grant: &Grant<'a>, context: &serde_json::Map<String, serde_json::Value>) -> Self {
        let mut canonical = Vec::with_capacity(128);
        lexecon_config::canonical::write_canonical_map(context, &mut canonical);
        let request = grant.request.as_ref();
        Bound {
            ctx: B64.encode(Sha256::digest(&canonical)),
            htm: request.map(|r| r.method),
            htu: request.map(|r| r.target),
            bdh: request
                .and_then(|r| r.body)
                .map(|body| B64.encode(Sha256::digest(body))),
        }
    }
}

/// The claims of a capability token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The actor.
    pub sub: String,
    /// The upstream the token is for.
    pub aud: String,
    /// Domain.
    pub dom: String,
    /// Action.
    pub act: String,
    /// Resource, when the request named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub res: Option<String>,
    /// Decision id.
    pub dec: String,
    /// Policy version hash.
    pub pol: String,
    /// Ledger entry hash of the decision.
    pub led: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// base64url SHA-256 of the canonical JSON (sorted keys, no spaces) of the decided context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<String>,
    /// The HTTP method of the request the token travels with (proxy only; as in RFC 9449).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub htm: Option<String>,
    /// Its path and query, as forwarded (proxy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub htu: Option<String>,
    /// base64url SHA-256 of its body, when Lexecon read the body before deciding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bdh: Option<String>,
}

/// A minted capability token with the claims a caller reports beside it, so that nobody decodes
/// the token again to learn them (the decision API did, for every permit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The compact EdDSA JWT.
    pub token: String,
    pub jti: uuid::Uuid,
    pub iat: i64,
    pub exp: i64,
}

/// Mints capability tokens. Share it (`Arc`) between request threads.
#[derive(Debug)]
pub struct TokenMinter {
    keys: Arc<KeyRing>,
    issuer: String,
    ttl_secs: i64,
    cache: Option<moka::sync::Cache<[u8; 32], Arc<Issued>>>,
}

impl TokenMinter {
    pub fn new(keys: Arc<KeyRing>, config: &TokenSettings) -> Result<Self, TokenError> {
        validate(config)?;
        let ttl_secs = i64::try_from(config.ttl.as_secs()).unwrap_or(i64::MAX);
        let cache = (config.mode == MintMode::Reuse).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.reuse_capacity)
                .time_to_live(config.ttl)
                .build()
        });
        Ok(TokenMinter {
            keys,
            issuer: config.issuer.clone(),
            ttl_secs,
            cache,
        })
    }

    pub fn key_ring(&self) -> &KeyRing {
        &self.keys
    }

    /// A token for a permitted `decision`, for `audience` (the upstream), linking the ledger entry.
    pub fn mint(
        &self,
        decision: &Decision,
        audience: &str,
        ledger_entry_hash: &str,
    ) -> Result<String, TokenError> {
        self.issue(decision, audience, ledger_entry_hash)
            .map(|issued| issued.token)
    }

    /// [`Self::mint`] as of `now`.
    pub fn mint_at(
        &self,
        decision: &Decision,
        audience: &str,
        ledger_entry_hash: &str,
        now: jiff::Timestamp,
    ) -> Result<String, TokenError> {
        self.issue_at(decision, audience, ledger_entry_hash, now)
            .map(|issued| issued.token)
    }

    /// [`Self::mint`], with the token's `jti`, `iat` and `exp`.
    pub fn issue(
        &self,
        decision: &Decision,
        audience: &str,
        ledger_entry_hash: &str,
    ) -> Result<Issued, TokenError> {
        self.issue_at(
            decision,
            audience,
            ledger_entry_hash,
            jiff::Timestamp::now(),
        )
    }

    /// [`Self::issue`] as of `now`.
    pub fn issue_at(
        &self,
        decision: &Decision,
        audience: &str,
        ledger_entry_hash: &str,
        now: jiff::Timestamp,
    ) -> Result<Issued, TokenError> {
        self.issue_bound(decision, audience, None, ledger_entry_hash, now)
    }

    fn issue_bound(
        &self,
        decision: &Decision,
        audience: &str,
        bound: Option<&Bound<'_>>,
        ledger_entry_hash: &str,
        now: jiff::Timestamp,
    ) -> Result<Issued, TokenError> {
        if decision.decision != Verdict::Permit {
            return Err(TokenError::NotPermitted {
                decision_id: decision.decision_id.clone(),
                verdict: decision.decision.as_str(),
            });
        }
        let now_secs = now.as_second();
        let Some(cache) = &self.cache else {
            return self.sign(decision, audience, bound, ledger_entry_hash, now_secs);
        };
        let key = reuse_key(decision, audience, bound);
        if let Some(issued) = self.cached(&key, now_secs) {
            return Ok(issued);
        }
        let issued = self.sign(decision, audience, bound, ledger_entry_hash, now_secs)?;
        cache.insert(key, Arc::new(issued.clone()));
        Ok(issued)
    }

    /// A token for a permitted `decision` taken on `context`, for `grant.audience`, bound to the
    /// decided context (`ctx`) and, on the proxy, to the forwarded request (`htm`, `htu`, `bdh`).
    /// Reused (`mode: reuse`) only for the same binding.
    pub fn issue_for(
        &self,
        decision: &Decision,
        grant: Grant<'_>,
        context: &serde_json::Map<String, serde_json::Value>,
        ledger_entry_hash: &str,
    ) -> Result<Issued, TokenError> {
        let bound = Bound::of(&grant, context);
        self.issue_bound(
            decision,
            grant.audience,
            Some(&bound),
            ledger_entry_hash,
            jiff::Timestamp::now(),
        )
    }

    /// The token [`Self::issue_for`] would return now without signing, or `None`.
    pub fn reusable_for(
        &self,
        decision: &Decision,
        grant: Grant<'_>,
        context: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Issued> {
        if decision.decision != Verdict::Permit || self.cache.is_none() {
            return None;
        }
        let bound = Bound::of(&grant, context);
        self.cached(
            &reuse_key(decision, grant.audience, Some(&bound)),
            jiff::Timestamp::now().as_second(),
        )
    }

    /// The token [`Self::mint`] would return now without signing (`mode: reuse` and a token for
    /// this actor, action, resource, policy and audience with more than half its life left), or
    /// `None` when minting would sign a new one.
    pub fn reusable(&self, decision: &Decision, audience: &str) -> Option<Issued> {
        self.reusable_at(decision, audience, jiff::Timestamp::now())
    }

    /// [`Self::reusable`] as of `now`.
    pub fn reusable_at(
        &self,
        decision: &Decision,
        audience: &str,
        now: jiff::Timestamp,
    ) -> Option<Issued> {
        if decision.decision != Verdict::Permit || self.cache.is_none() {
            return None;
        }
        self.cached(&reuse_key(decision, audience, None), now.as_second())
    }

    /// A cached token while more than half its lifetime remains.
    fn cached(&self, key: &[u8; 32], now_secs: i64) -> Option<Issued> {
        let hit = self.cache.as_ref()?.get(key)?;
        (now_secs >= hit.iat && (now_secs - hit.iat) * 2 < self.ttl_secs).then(|| (*hit).clone())
    }

    fn sign(
        &self,
        decision: &Decision,
        audience: &str,
        bound: Option<&Bound<'_>>,
        ledger_entry_hash: &str,
        now_secs: i64,
    ) -> Result<Issued, TokenError> {
        let jti = lexecon_policy_cache::new_uuid_v7(jiff::Timestamp::now());
        let exp = now_secs.saturating_add(self.ttl_secs);
        let claims = ClaimsRef {
            iss: &self.issuer,
            sub: &decision.actor,
            aud: audience,
            dom: &decision.domain,
            act: &decision.action,
            res: decision.resource.as_deref(),
            dec: &decision.decision_id,
            pol: &decision.policy_version_hash,
            led: ledger_entry_hash,
            iat: now_secs,
            exp,
            jti,
            ctx: bound.map(|b| b.ctx.as_str()),
            htm: bound.and_then(|b| b.htm),
            htu: bound.and_then(|b| b.htu),
            bdh: bound.and_then(|b| b.bdh.as_deref()),
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| TokenError::Encode(e.to_string()))?;
        let key = self.keys.signer();
        let header = key.header_b64();
        let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 100);
        token.push_str(header);
        token.push('.');
        B64.encode_string(&payload, &mut token);
        let signature = key.signing_key().sign(token.as_bytes());
        token.push('.');
        B64.encode_string(signature.to_bytes(), &mut token);
        Ok(Issued {
            token,
            jti,
            iat: now_secs,
            exp,
        })
    }
}

/// Serialized like [`Claims`] without copying the decision's strings.
#[derive(Serialize)]
struct ClaimsRef<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    dom: &'a str,
    act: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    res: Option<&'a str>,
    dec: &'a str,
    pol: &'a str,
    led: &'a str,
    iat: i64,
    exp: i64,
    jti: uuid::Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    ctx: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    htm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    htu: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bdh: Option<&'a str>,
}

/// SHA-256 over the length-prefixed (domain, actor, action, resource, policy hash, audience, and
/// the binding claims): no ambiguity between fields, and a token is reused only for the same
/// decided context and request.
fn reuse_key(decision: &Decision, audience: &str, bound: Option<&Bound<'_>>) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        Some(decision.domain.as_str()),
        Some(decision.actor.as_str()),
        Some(decision.action.as_str()),
        decision.resource.as_deref(),
        Some(decision.policy_version_hash.as_str()),
        Some(audience),
        bound.map(|b| b.ctx.as_str()),
        bound.and_then(|b| b.htm),
        bound.and_then(|b| b.htu),
        bound.and_then(|b| b.bdh.as_deref()),
    ] {
        match part {
            Some(p) => {
                h.update([1]);
                h.update((p.len() as u64).to_le_bytes());
                h.update(p.as_bytes());
            }
            None => h.update([0]),
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lexecon_policy_cache::Explanation;

    fn permit(actor: &str, resource: &str) -> Decision {
        Decision {
            request_id: "req-1".to_owned(),
            decision_id: "dec-1".to_owned(),
            domain: "ai".to_owned(),
            actor: actor.to_owned(),
            action: "axn_read_data".to_owned(),
            resource: Some(resource.to_owned()),
            decision: Verdict::Permit,
            reasoning: "agents may read".to_owned().into(),
            rule_id: "agents-may-read".to_owned().into(),
            policy_version_hash: "cd".repeat(32).into(),
            compliance_mappings: vec![].into(),
            risk_level: 1,
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

    /// Every permit of the flood is for a new (actor, resource): a new reuse key, a new token signed
    /// and cached. The cache keeps at most `reuse_capacity` of them (moka's admission decides which).
    #[test]
    fn a_flood_of_distinct_permits_keeps_the_reuse_cache_within_its_capacity() {
        const CAPACITY: u64 = 64;
        const FLOOD: usize = 640;
        let config = TokenSettings {
            reuse_capacity: CAPACITY,
            ..TokenSettings::default()
        };
        let minter = TokenMinter::new(Arc::new(KeyRing::generate()), &config).unwrap();
        let led = "ef".repeat(32);
        for i in 0..FLOOD {
            let decision = permit(&format!("act_ai_agent:flood-{i}"), &format!("res_file:{i}"));
            minter.issue(&decision, "app", &led).unwrap();
        }
        let cache = minter.cache.as_ref().unwrap();
        cache.run_pending_tasks();
        let kept = cache.entry_count();
        assert!(
            kept <= CAPACITY,
            "{kept} tokens cached after {FLOOD} distinct permits (capacity {CAPACITY})"
        );
        assert!(kept > 0, "the reuse cache keeps tokens at all");
    }
}
