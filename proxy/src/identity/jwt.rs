//! Bearer JWT verification: signature against the current key set, `iss`, `aud`, `exp`/`nbf` with
//! leeway, then the actor claim and the claims copied into the context.
//!
//! Verified tokens are cached by the SHA-256 of the token until their `exp`, so a signature is
//! checked once per token rather than once per request. The cache never holds a token that failed,
//! never answers for one past its `exp` (a hit checks it; the full verification, with its leeway,
//! decides after that), and holds at most `identity.jwt.cache_capacity` tokens (beyond it the
//! cache evicts, scan-resistant: a flood of distinct valid tokens costs their signature checks, not
//! memory, nor the tokens in use). A lookup never does housekeeping; expired entries are dropped by
//! [`JwtVerifier::sweep_expired`], off the request path.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, Validation};
use lexecon_config::file::{JwksSource, JwtAlgorithm, JwtConfig};
use sha2::{Digest, Sha256};

use super::jwks::{self, KeySet};
use super::{actor_id, Actor, IdentityError};

/// How long a JWKS fetch may take.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Cached {
    actor: Arc<Actor>,
    /// `exp` as seconds since the epoch.
    exp: u64,
}

/// Verified tokens by the SHA-256 of the token.
type Cache = quick_cache::sync::Cache<
    [u8; 32],
    Cached,
    quick_cache::UnitWeighter,
    foldhash::fast::RandomState,
>;

/// Seconds since the epoch; a clock before 1970 reads as the end of time, so nothing cached is
/// served.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX)
}

/// Verifies bearer tokens for one `identity.jwt` configuration.
pub struct JwtVerifier {
    config: JwtConfig,
    accepted: Vec<Algorithm>,
    validations: Vec<(Algorithm, Validation)>,
    keys: ArcSwap<KeySet>,
    cache: Cache,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer)
            .field("keys", &self.keys.load())
            .finish_non_exhaustive()
    }
}

fn to_algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Es256 => Algorithm::ES256,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// The algorithms `identity.jwt.algorithms` accepts.
fn accepted_algorithms(config: &JwtConfig) -> Vec<Algorithm> {
    config
        .algorithms
        .iter()
        .copied()
        .map(to_algorithm)
        .collect()
}

impl JwtVerifier {
    /// A verifier with the given keys (see [`JwtVerifier::load`] to read them from the source).
    pub fn new(config: JwtConfig, keys: KeySet) -> Self {
        let accepted = accepted_algorithms(&config);
        let validations = accepted
            .iter()
            .map(|alg| {
                let mut v = Validation::new(*alg);
                v.set_issuer(&[config.issuer.as_str()]);
                v.set_audience(&config.audience);
                v.leeway = config.leeway.as_secs();
                v.validate_nbf = true;
                // INVARIANT: a configured issuer and audience are required, not just checked
                // when present (validation insists both are configured).
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                (*alg, v)
            })
            .collect();
        let capacity = config.cache_capacity;
        Self {
            config,
            accepted,
            validations,
            keys: ArcSwap::from_pointee(keys),
            cache: Cache::with(
                // Only the initial sizing: the shards grow as tokens arrive.
                usize::try_from(capacity.min(4_096)).unwrap_or(4_096),
                capacity,
                quick_cache::UnitWeighter,
                foldhash::fast::RandomState::default(),
                Default::default(),
            ),
        }
    }

    /// Reads the key set from the configured file or URL and builds the verifier.
    pub fn load(config: JwtConfig) -> Result<Self, String> {
        let text = jwks::load(&config.jwks_source(), JWKS_FETCH_TIMEOUT)?;
        let keys = KeySet::parse(&text, &accepted_algorithms(&config))?;
        Ok(Self::new(config, keys))
    }

    /// The configured JWKS source.
    pub fn source(&self) -> JwksSource {
        self.config.jwks_source()
    }

    /// The configured refresh interval.
    pub fn refresh(&self) -> Duration {
        self.config.refresh
    }

    /// Reads the keys again from `source` and swaps them in; returns the number of keys. Blocking.
    pub fn reload_keys(&self, source: &JwksSource) -> Result<usize, String> {
        let text = jwks::load(source, JWKS_FETCH_TIMEOUT)?;
        let keys = KeySet::parse(&text, &self.accepted)?;
        let n = keys.keys.len();
        self.keys.store(Arc::new(keys));
        self.cache.clear();
        Ok(n)
    }

    /// Verifies a token and maps it to an actor.
    pub fn verify(&self, token: &str) -> Result<Arc<Actor>, IdentityError> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cache.get(&hash) {
            if now_secs() < hit.exp {
                return Ok(hit.actor);
            }
        }
        let invalid = |m: String| IdentityError::InvalidToken(m);
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        let (_, validation) = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .ok_or_else(|| invalid(format!("algorithm {:?} is not accepted", header.alg)))?;
        let keys = self.keys.load();
        let key = keys
            .find(header.kid.as_deref(), header.alg)
            .ok_or_else(|| {
                invalid(match &header.kid {
                    Some(kid) => format!("no {:?} key with kid {kid:?} in the JWKS", header.alg),
                    None => format!(
                        "the token has no kid and the JWKS has no single {:?} key",
                        header.alg
                    ),
                })
            })?;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token, &key.key, validation,
        )
        .map_err(|e| invalid(e.to_string()))?;
        let claims = data.claims;
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| invalid("the token has no numeric exp".into()))?;
        let actor = self.actor_from_claims(&claims)?;
        let actor = Arc::new(actor);
        if now_secs() < exp {
            self.cache.insert(
                hash,
                Cached {
                    actor: actor.clone(),
                    exp,
                },
            );
        } else {
            // Accepted within the leeway only: verified again next time, never served cached.
            self.cache.remove(&hash);
        }
        Ok(actor)
    }

    /// How many verified tokens are cached now.
    pub fn cached_tokens(&self) -> u64 {
        self.cache.len() as u64
    }

    /// Drops the cached tokens past their `exp` (a hit would not serve them anyway), so that
    /// their memory does not wait for capacity eviction. Takes each shard's write lock in turn:
    /// call it off the request path (the proxy's cache sweeper does). Returns how many were
    /// dropped.
    pub fn sweep_expired(&self) -> usize {
        let now = now_secs();
        let before = self.cache.len();
        self.cache.retain(|_, cached| now < cached.exp);
        before.saturating_sub(self.cache.len())
    }

    fn actor_from_claims(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Actor, IdentityError> {
        let claim = &self.config.actor_claim;
        let value = claims
            .get(claim)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                IdentityError::InvalidToken(format!("the token has no string claim {claim:?}"))
            })?;
        let id = actor_id(value, self.config.actor_prefix.as_deref())
            .map_err(|e| IdentityError::BadActorId(format!("claim {claim:?}: {e}")))?;
        let mut context = serde_json::Map::new();
        for (claim, field) in &self.config.claims_to_context {
            if let Some(v) = claims.get(claim) {
                context.insert(field.clone(), v.clone());
            }
        }
        Ok(Actor {
            id,
            context,
            source: super::Source::Credential,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use std::collections::BTreeMap;

    // An Ed25519 test key pair (RFC 8037 A.1).
    const ED_PRIV_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";
    const ED_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn config() -> JwtConfig {
        JwtConfig {
            issuer: "https://idp.example".into(),
            audience: vec!["lexecon".into()],
            leeway: Duration::from_secs(0),
            jwks: "unused".into(),
            algorithms: vec![JwtAlgorithm::EdDsa],
            actor_claim: "sub".into(),
            actor_prefix: Some("act_ai_agent:".into()),
            claims_to_context: BTreeMap::from([("tenant".to_string(), "tenant_id".to_string())]),
            refresh: Duration::from_secs(60),
            insecure_jwks_http: false,
            cache_capacity: 100,
        }
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(
            config(),
            KeySet::parse(ED_JWKS, &[Algorithm::EdDSA]).unwrap(),
        )
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        let key = EncodingKey::from_ed_pem(ED_PRIV_PEM.as_bytes()).unwrap();
        encode(&header, &claims, &key).unwrap()
    }

    #[test]
    fn valid_token_maps_subject_and_claims() {
        let t = token(serde_json::json!({
            "iss": "https://idp.example", "aud": "lexecon", "sub": "bot-1",
            "tenant": "acme", "exp": now() + 300
        }));
        let actor = verifier().verify(&t).unwrap();
        assert_eq!(&*actor.id, "act_ai_agent:bot-1");
        assert_eq!(actor.context["tenant_id"], "acme");
    }

    /// A hostile agent keeps presenting a token that was verified (and cached) while valid: once
    /// its `exp` passes, the cache no longer answers for it and the full verification refuses it;
    /// the sweeper drops it. A token accepted only within the leeway is never cached.
    #[test]
    fn a_cached_token_is_refused_once_it_expires_and_the_sweep_drops_it() {
        let v = verifier();
        let soon = token(serde_json::json!({
            "iss": "https://idp.example", "aud": "lexecon", "sub": "b", "exp": now() + 1
        }));
        v.verify(&soon).unwrap();
        assert_eq!(v.cached_tokens(), 1);
        assert_eq!(v.sweep_expired(), 0, "a token before its exp stays");
        std::thread::sleep(Duration::from_millis(2_100));
        assert!(
            matches!(v.verify(&soon), Err(IdentityError::InvalidToken(_))),
            "an expired token was served from the cache"
        );
        assert_eq!(v.sweep_expired(), 1);
        assert_eq!(v.cached_tokens(), 0);

        let mut lenient = config();
        lenient.leeway = Duration::from_secs(60);
        let v = JwtVerifier::new(
            lenient,
            KeySet::parse(ED_JWKS, &[Algorithm::EdDSA]).unwrap(),
        );
        let late = token(serde_json::json!({
            "iss": "https://idp.example", "aud": "lexecon", "sub": "b", "exp": now() - 5
        }));
        assert!(v.verify(&late).is_ok(), "within the leeway");
        assert_eq!(v.cached_tokens(), 0, "a token past its exp is not cached");
    }

    #[test]
    fn expired_wrong_issuer_or_audience_or_tampered_tokens_fail() {
        let v = verifier();
        let base = serde_json::json!({"iss": "https://idp.example", "aud": "lexecon", "sub": "b", "exp": now() + 300});
        let mut expired = base.clone();
        expired["exp"] = serde_json::json!(now() - 10);
        let mut issuer = base.clone();
        issuer["iss"] = serde_json::json!("https://evil.example");
        let mut audience = base.clone();
        audience["aud"] = serde_json::json!("other");
        for claims in [expired, issuer, audience] {
            assert!(matches!(
                v.verify(&token(claims)),
                Err(IdentityError::InvalidToken(_))
            ));
        }
        let good = token(base);
        let mut tampered = good.clone();
        tampered.pop();
        tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
        assert!(matches!(
            v.verify(&tampered),
            Err(IdentityError::InvalidToken(_))
        ));
        assert!(matches!(
            v.verify("not.a.jwt"),
            Err(IdentityError::InvalidToken(_))
        ));
    }

    #[test]
    fn verified_token_is_served_from_cache_after_key_removal() {
        let v = verifier();
        let t = token(
            serde_json::json!({"iss": "https://idp.example", "aud": "lexecon", "sub": "b", "exp": now() + 300}),
        );
        let first = v.verify(&t).unwrap();
        // Swap in an empty key set without clearing the cache: a cached token still verifies...
        v.keys.store(Arc::new(KeySet::default()));
        assert!(Arc::ptr_eq(&first, &v.verify(&t).unwrap()));
        // ...while a new token cannot.
        let other = token(
            serde_json::json!({"iss": "https://idp.example", "aud": "lexecon", "sub": "c", "exp": now() + 300}),
        );
        assert!(v.verify(&other).is_err());
    }

    #[test]
    fn a_flood_of_distinct_valid_tokens_keeps_the_cache_within_its_capacity() {
        let v = verifier();
        let exp = now() + 300;
        let key = EncodingKey::from_ed_pem(ED_PRIV_PEM.as_bytes()).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        for i in 0..1_000 {
            let t = encode(
                &header,
                &serde_json::json!({"iss": "https://idp.example", "aud": "lexecon", "sub": format!("bot-{i}"), "exp": exp}),
                &key,
            )
            .unwrap();
            assert_eq!(&*v.verify(&t).unwrap().id, format!("act_ai_agent:bot-{i}"));
            if i % 250 == 249 {
                let n = v.cached_tokens();
                assert!(n <= 100, "{n} tokens cached after {} (capacity 100)", i + 1);
            }
        }
        assert!(v.cached_tokens() <= 100);
    }

    #[test]
    fn a_flood_of_unknown_kids_and_bad_tokens_caches_nothing_and_fetches_nothing() {
        // A JWKS "server" that counts connections: an unknown kid must never trigger a fetch.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut c = config();
        c.jwks = format!("http://{}/jwks", listener.local_addr().unwrap());
        c.insecure_jwks_http = true;
        let v = JwtVerifier::new(c, KeySet::parse(ED_JWKS, &[Algorithm::EdDSA]).unwrap());
        let key = EncodingKey::from_ed_pem(ED_PRIV_PEM.as_bytes()).unwrap();
        let claims = serde_json::json!({"iss": "https://idp.example", "aud": "lexecon", "sub": "b", "exp": now() + 300});
        for i in 0..300 {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(format!("unknown-{i}"));
            let t = encode(&header, &claims, &key).unwrap();
            let err = v.verify(&t).unwrap_err();
            assert!(err.to_string().contains("no EdDSA key with kid"), "{err}");
        }
        for i in 0..50_000 {
            assert!(v.verify(&format!("garbage.{i}.token")).is_err());
        }
        assert_eq!(v.cached_tokens(), 0, "a token that failed is never cached");
        assert_eq!(
            v.keys.load().keys.len(),
            1,
            "the key set is what was loaded"
        );
        assert!(
            matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "no JWKS fetch was attempted"
        );
    }

    #[test]
    fn tokens_without_iss_or_aud_fail_and_nbf_is_honoured() {
        let v = verifier();
        let no_iss = serde_json::json!({"aud": "lexecon", "sub": "b", "exp": now() + 300});
        let no_aud =
            serde_json::json!({"iss": "https://idp.example", "sub": "b", "exp": now() + 300});
        let early = serde_json::json!({"iss": "https://idp.example", "aud": "lexecon", "sub": "b",
            "exp": now() + 300, "nbf": now() + 120});
        for claims in [no_iss, no_aud, early] {
            let err = v.verify(&token(claims.clone())).unwrap_err();
            assert!(
                matches!(err, IdentityError::InvalidToken(_)),
                "{claims}: {err}"
            );
        }
    }

    #[test]
    fn the_actor_prefix_is_always_applied_so_a_token_cannot_pick_its_actor_type() {
        let t = token(
            serde_json::json!({"iss": "https://idp.example", "aud": "lexecon",
            "sub": "act_human_user:alice", "exp": now() + 300}),
        );
        let actor = verifier().verify(&t).unwrap();
        assert_eq!(&*actor.id, "act_ai_agent:act_human_user:alice");
    }

    #[test]
    fn missing_actor_claim_is_an_invalid_token() {
        let t = token(
            serde_json::json!({"iss": "https://idp.example", "aud": "lexecon", "exp": now() + 300}),
        );
        let err = verifier().verify(&t).unwrap_err();
        assert!(err.to_string().contains("\"sub\""), "{err}");
    }
}
