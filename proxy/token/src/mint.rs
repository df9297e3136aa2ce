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

/// The binding claims of one token, computed once, as raw digests: base64url only when a token is
/// signed (a reused one needs them only for its key). `ctx` is the decided context's digest,
/// `bdh` the read body's.
struct Bound<'a> {
    ctx: [u8; 32],
    htm: Option<&'a str>,
    htu: Option<&'a str>,
    bdh: Option<[u8; 32]>,
}

impl<'a> Bound<'a> {
    fn of(grant: &Grant<'a>, context_digest: &[u8; 32]) -> Self {
        let request = grant.request.as_ref();
        Bound {
            ctx: *context_digest,
            htm: request.map(|r| r.method),
            htu: request.map(|r| r.target),
            bdh: request
                .and_then(|r| r.body)
                .map(|body| Sha256::digest(body).into()),
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

/// A minted token as the proxy forwards it: [`Issued`] and its header value, built once when it
/// is signed, so that a reused token costs a reference count, not a copy of its 700 bytes and a
/// header validation per request.
#[derive(Debug, PartialEq, Eq)]
pub struct Minted {
    pub issued: Issued,
    pub header: http::HeaderValue,
}

impl Minted {
    fn of(issued: Issued) -> Result<Self, TokenError> {
        // A compact JWS is base64url and dots: always a valid header value.
        let header = http::HeaderValue::try_from(issued.token.as_str())
            .map_err(|e| TokenError::Encode(format!("token is not a header value: {e}")))?;
        Ok(Minted { issued, header })
    }
}

/// Mints capability tokens. Share it (`Arc`) between request threads.
#[derive(Debug)]
pub struct TokenMinter {
    keys: Arc<KeyRing>,
    issuer: String,
    ttl_secs: i64,
    cache: Option<ReuseCache>,
}

/// Tokens kept for reuse, by the digest of what they were minted for. Bounded by
/// `reuse_capacity`; a lookup is a shard's read lock and one hash probe, never housekeeping. A
/// token past half its life is never served ([`TokenMinter::cached`]) and is dropped by
/// [`TokenMinter::sweep_expired`], which a background service calls.
type ReuseCache = quick_cache::sync::Cache<
    [u8; 32],
    Arc<Minted>,
    quick_cache::UnitWeighter,
    foldhash::fast::RandomState,
>;

impl TokenMinter {
    pub fn new(keys: Arc<KeyRing>, config: &TokenSettings) -> Result<Self, TokenError> {
        validate(config)?;
        let ttl_secs = i64::try_from(config.ttl.as_secs()).unwrap_or(i64::MAX);
        let cache = (config.mode == MintMode::Reuse).then(|| {
            ReuseCache::with(
                // Only the initial sizing: the shards grow as tokens arrive.
                usize::try_from(config.reuse_capacity.min(4_096)).unwrap_or(4_096),
                config.reuse_capacity,
                quick_cache::UnitWeighter,
                foldhash::fast::RandomState::default(),
                Default::default(),
            )
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
            .map(|minted| minted.issued.clone())
    }

    fn issue_bound(
        &self,
        decision: &Decision,
        audience: &str,
        bound: Option<&Bound<'_>>,
        ledger_entry_hash: &str,
        now: jiff::Timestamp,
    ) -> Result<Arc<Minted>, TokenError> {
        if decision.decision != Verdict::Permit {
            return Err(TokenError::NotPermitted {
                decision_id: decision.decision_id.clone(),
                verdict: decision.decision.as_str(),
            });
        }
        let now_secs = now.as_second();
        let Some(cache) = &self.cache else {
            let issued = self.sign(decision, audience, bound, ledger_entry_hash, now_secs)?;
            return Minted::of(issued).map(Arc::new);
        };
        let key = reuse_key(decision, audience, bound);
        if let Some(minted) = self.cached(&key, now_secs) {
            return Ok(minted);
        }
        let issued = self.sign(decision, audience, bound, ledger_entry_hash, now_secs)?;
        let minted = Arc::new(Minted::of(issued)?);
        cache.insert(key, Arc::clone(&minted));
        Ok(minted)
    }

    /// A token for a permitted `decision` for `grant.audience`, bound to the decided context — by
    /// its digest, [`lexecon_config::canonical::map_digest`] of the context, which the caller
    /// computes once for the ledger entry too (`ctx`) — and, on the proxy, to the forwarded
    /// request (`htm`, `htu`, `bdh`). Reused (`mode: reuse`) only for the same binding; answered
    /// as [`Minted`], shared with the reuse cache.
    pub fn issue_for_digest(
        &self,
        decision: &Decision,
        grant: Grant<'_>,
        context_digest: &[u8; 32],
        ledger_entry_hash: &str,
    ) -> Result<Arc<Minted>, TokenError> {
        let bound = Bound::of(&grant, context_digest);
        self.issue_bound(
            decision,
            grant.audience,
            Some(&bound),
            ledger_entry_hash,
            jiff::Timestamp::now(),
        )
    }

    /// The token [`Self::issue_for_digest`] would return now without signing, or `None`: the
    /// request path's lookup (a digest of the binding and a cache hit; nothing copied).
    pub fn reusable_for_digest(
        &self,
        decision: &Decision,
        grant: Grant<'_>,
        context_digest: &[u8; 32],
    ) -> Option<Arc<Minted>> {
        if decision.decision != Verdict::Permit || self.cache.is_none() {
            return None;
        }
        let bound = Bound::of(&grant, context_digest);
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
            .map(|minted| minted.issued.clone())
    }

    /// A cached token while more than half its lifetime remains.
    fn cached(&self, key: &[u8; 32], now_secs: i64) -> Option<Arc<Minted>> {
        let hit = self.cache.as_ref()?.get(key)?;
        self.reusable_now(&hit, now_secs).then_some(hit)
    }

    /// Whether `minted` may still be handed out at `now_secs`: issued, and more than half its
    /// lifetime left.
    fn reusable_now(&self, minted: &Minted, now_secs: i64) -> bool {
        let iat = minted.issued.iat;
        now_secs >= iat && (now_secs - iat).saturating_mul(2) < self.ttl_secs
    }

    /// Drops the cached tokens that can no longer be reused (past half their life), so that a
    /// burst of distinct permits does not keep its tokens' memory until capacity evicts them.
    /// Takes each shard's write lock in turn: call it off the request path (the proxy's cache
    /// sweeper does, every few seconds). Returns how many were dropped.
    pub fn sweep_expired(&self) -> usize {
        let Some(cache) = &self.cache else { return 0 };
        let now_secs = jiff::Timestamp::now().as_second();
        let before = cache.len();
        cache.retain(|_, minted| self.reusable_now(minted, now_secs));
        before.saturating_sub(cache.len())
    }

    /// How many tokens the reuse cache holds now.
    pub fn reusable_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, ReuseCache::len)
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
        let ctx = bound.map(|b| B64.encode(b.ctx));
        let bdh = bound.and_then(|b| b.bdh.map(|d| B64.encode(d)));
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
            ctx: ctx.as_deref(),
            htm: bound.and_then(|b| b.htm),
            htu: bound.and_then(|b| b.htu),
            bdh: bdh.as_deref(),
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
/// the binding claims — the context's and the body's digests raw, as they would be encoded): no
/// ambiguity between fields, and a token is reused only for the same decided context and request.
fn reuse_key(decision: &Decision, audience: &str, bound: Option<&Bound<'_>>) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        Some(decision.domain.as_bytes()),
        Some(decision.actor.as_bytes()),
        Some(decision.action.as_bytes()),
        decision.resource.as_deref().map(str::as_bytes),
        Some(decision.policy_version_hash.as_bytes()),
        Some(audience.as_bytes()),
        bound.map(|b| &b.ctx[..]),
        bound.and_then(|b| b.htm).map(str::as_bytes),
        bound.and_then(|b| b.htu).map(str::as_bytes),
        bound.and_then(|b| b.bdh.as_ref()).map(|d| &d[..]),
    ] {
        match part {
            Some(p) => {
                h.update([1]);
                h.update((p.len() as u64).to_le_bytes());
                h.update(p);
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
    /// and cached. The cache keeps at most `reuse_capacity` of them (its eviction decides which).
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
        let kept = minter.reusable_tokens() as u64;
        assert!(
            kept <= CAPACITY,
            "{kept} tokens cached after {FLOOD} distinct permits (capacity {CAPACITY})"
        );
        assert!(kept > 0, "the reuse cache keeps tokens at all");
    }

    /// The reuse cache's size is the operator's (`tokens.reuse_capacity`, unbounded by the schema):
    /// 0 keeps nothing and every permit is signed anew; a huge one allocates only as tokens arrive.
    #[test]
    fn a_reuse_capacity_of_zero_or_of_u64_max_mints_without_panicking() {
        let led = "ef".repeat(32);
        let decision = permit("act_ai_agent:a", "res_file:1");
        for capacity in [0, u64::MAX] {
            let config = TokenSettings {
                reuse_capacity: capacity,
                ..TokenSettings::default()
            };
            let minter = TokenMinter::new(Arc::new(KeyRing::generate()), &config).unwrap();
            let first = minter.issue(&decision, "app", &led).unwrap();
            let second = minter.issue(&decision, "app", &led).unwrap();
            if capacity == 0 {
                assert_eq!(minter.reusable_tokens(), 0);
                assert_ne!(first.jti, second.jti, "nothing kept, so a new token");
            } else {
                assert_eq!(first.jti, second.jti, "reused");
            }
        }
    }

    /// A token past half its life is never reused, and the sweeper drops it from the cache (its
    /// memory does not wait for capacity eviction); a fresh one stays and is still reused.
    #[test]
    fn the_sweep_drops_tokens_that_can_no_longer_be_reused_and_keeps_fresh_ones() {
        let minter =
            TokenMinter::new(Arc::new(KeyRing::generate()), &TokenSettings::default()).unwrap();
        let led = "ef".repeat(32);
        let old = permit("act_ai_agent:old", "res_file:1");
        let fresh = permit("act_ai_agent:fresh", "res_file:2");
        let an_hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3600);
        minter.issue_at(&old, "app", &led, an_hour_ago).unwrap();
        let fresh_token = minter.issue(&fresh, "app", &led).unwrap();
        assert_eq!(minter.reusable_tokens(), 2);
        assert!(minter.reusable(&old, "app").is_none(), "stale token served");

        assert_eq!(minter.sweep_expired(), 1);
        assert_eq!(minter.reusable_tokens(), 1);
        assert_eq!(
            minter.reusable(&fresh, "app").map(|t| t.token),
            Some(fresh_token.token),
            "the fresh token is still reused after the sweep"
        );
    }

    /// A proxied token names the decided context's digest (`ctx`) and the read body's (`bdh`) in
    /// base64url; the same binding gets the same token back from the reuse cache — the very
    /// `Minted` (a reference, not a copy) with its header value — and any other context or body
    /// does not.
    #[test]
    fn a_bound_token_names_its_digests_and_is_reused_by_reference_for_that_binding_only() {
        let minter =
            TokenMinter::new(Arc::new(KeyRing::generate()), &TokenSettings::default()).unwrap();
        let decision = permit("act_ai_agent:a", "res_file:1");
        let context = serde_json::json!({"b": [1, 2], "a": "x"});
        let context = context.as_object().unwrap();
        let digest = lexecon_config::canonical::map_digest(context);
        let grant = |body: &'static [u8]| Grant {
            audience: "app",
            request: Some(RequestBinding {
                method: "POST",
                target: "/v1/files?x=1",
                body: Some(body),
            }),
        };
        let led = "ef".repeat(32);
        let minted = minter
            .issue_for_digest(&decision, grant(b"{}"), &digest, &led)
            .unwrap();
        assert_eq!(minted.header.as_bytes(), minted.issued.token.as_bytes());
        let jwks = crate::parse_jwks(&minter.key_ring().jwks_json()).unwrap();
        let claims = crate::verify_token(&minted.issued.token, &jwks, Some("app")).unwrap();
        assert_eq!(claims.ctx.as_deref(), Some(B64.encode(digest).as_str()));
        assert_eq!(
            claims.bdh.as_deref(),
            Some(B64.encode(Sha256::digest(b"{}")).as_str())
        );
        assert_eq!(
            (claims.htm.as_deref(), claims.htu.as_deref()),
            (Some("POST"), Some("/v1/files?x=1"))
        );
        let again = minter
            .reusable_for_digest(&decision, grant(b"{}"), &digest)
            .expect("the same binding reuses the token");
        assert!(Arc::ptr_eq(&again, &minted), "reused by reference");
        assert!(minter
            .reusable_for_digest(&decision, grant(b"{ }"), &digest)
            .is_none());
        // Another path, another method, or no body read: another binding, no reuse.
        for request in [
            RequestBinding {
                method: "POST",
                target: "/v1/files?x=2",
                body: Some(b"{}"),
            },
            RequestBinding {
                method: "PUT",
                target: "/v1/files?x=1",
                body: Some(b"{}"),
            },
            RequestBinding {
                method: "POST",
                target: "/v1/files?x=1",
                body: None,
            },
        ] {
            let grant = Grant {
                audience: "app",
                request: Some(request),
            };
            assert!(minter
                .reusable_for_digest(&decision, grant, &digest)
                .is_none());
        }
        let mut other = digest;
        other[0] ^= 1;
        assert!(minter
            .reusable_for_digest(&decision, grant(b"{}"), &other)
            .is_none());
    }
}
