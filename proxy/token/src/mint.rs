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
        if decision.decision != Verdict::Permit {
            return Err(TokenError::NotPermitted {
                decision_id: decision.decision_id.clone(),
                verdict: decision.decision.as_str(),
            });
        }
        let now_secs = now.as_second();
        let Some(cache) = &self.cache else {
            return self.sign(decision, audience, ledger_entry_hash, now_secs);
        };
        let key = reuse_key(decision, audience);
        if let Some(issued) = self.cached(&key, now_secs) {
            return Ok(issued);
        }
        let issued = self.sign(decision, audience, ledger_entry_hash, now_secs)?;
        cache.insert(key, Arc::new(issued.clone()));
        Ok(issued)
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
        self.cached(&reuse_key(decision, audience), now.as_second())
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
}

/// SHA-256 over the length-prefixed (actor, action, resource, policy hash, audience, domain): no
/// allocation, no ambiguity between fields.
fn reuse_key(decision: &Decision, audience: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        Some(decision.domain.as_str()),
        Some(decision.actor.as_str()),
        Some(decision.action.as_str()),
        decision.resource.as_deref(),
        Some(decision.policy_version_hash.as_str()),
        Some(audience),
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
