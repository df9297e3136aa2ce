//! JSON Web Key Sets: parsing a JWKS document into decoding keys, reading it from a file or fetching
//! it from a URL, and the background service that fetches a URL again every `refresh`.
//!
//! Fetching happens only at start-up, on reload and in the background task, never on the request
//! path. A fetch or parse failure keeps the keys already loaded and is logged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use lexecon_config::file::JwksSource;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::jwt::JwtVerifier;

/// One usable key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The keys of one JWKS document, restricted to the algorithms the proxy accepts.
#[derive(Clone, Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.kid, k.algorithm)))
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS document. Keys of other algorithms are skipped; a document with no usable key
    /// is an error.
    pub fn parse(text: &str, accepted: &[Algorithm]) -> Result<KeySet, String> {
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let Some(algorithm) = algorithm_of(jwk) else {
                skipped.push(format!("keys[{i}]: unsupported key type or curve"));
                continue;
            };
            if !accepted.contains(&algorithm) {
                skipped.push(format!(
                    "keys[{i}]: {algorithm:?} is not an accepted algorithm"
                ));
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    algorithm,
                    key,
                }),
                Err(e) => skipped.push(format!("keys[{i}]: {e}")),
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "no usable key in the JWKS ({})",
                if skipped.is_empty() {
                    "it has no keys".to_string()
                } else {
                    skipped.join("; ")
                }
            ));
        }
        Ok(KeySet { keys })
    }

    /// The key for a token header: by `kid`, or the only key of the algorithm when there is no kid.
    pub fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<&Key> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid) && k.algorithm == algorithm),
            None => {
                let mut of_alg = self.keys.iter().filter(|k| k.algorithm == algorithm);
                let first = of_alg.next();
                if of_alg.next().is_some() {
                    None
                } else {
                    first
                }
            }
        }
    }
}

/// The algorithm a JWK is for: its `alg`, or what its key type implies.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(alg) = jwk.common.key_algorithm {
        return match alg {
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            _ => None,
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }
}

/// Reads a JWKS document from its source (blocking: start-up, reload and background only).
pub fn load(source: &JwksSource, timeout: Duration) -> Result<String, String> {
    match source {
        JwksSource::File(path) => read_file(path),
        JwksSource::Url(url) => fetch(url, timeout),
    }
}

fn read_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read JWKS file {}: {e}", path.display()))
}

/// Fetches a JWKS document over HTTP(S), at most 1 MiB, within `timeout`.
pub fn fetch(url: &str, timeout: Duration) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .header("accept", "application/json")
        .call()
        .map_err(|e| format!("cannot fetch JWKS from {url}: {e}"))?;
    response
        .body_mut()
        .with_config()
        .limit(1024 * 1024)
        .read_to_string()
        .map_err(|e| format!("cannot read JWKS from {url}: {e}"))
}

/// Fetches the current verifier's JWKS URL again every `refresh` and swaps its keys. `current`
/// returns the verifier in force (it changes when the configuration is reloaded).
pub struct JwksRefresher {
    current: Box<dyn Fn() -> Option<Arc<JwtVerifier>> + Send + Sync>,
}

/// How often to look again when no JWT verifier is configured.
const IDLE_INTERVAL: Duration = Duration::from_secs(60);

impl JwksRefresher {
    pub fn new(current: impl Fn() -> Option<Arc<JwtVerifier>> + Send + Sync + 'static) -> Self {
        Self {
            current: Box::new(current),
        }
    }
}

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let interval = (self.current)().map_or(IDLE_INTERVAL, |v| v.refresh());
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let Some(verifier) = (self.current)() else {
                continue;
            };
            let source = verifier.source();
            if !matches!(source, JwksSource::Url(_)) {
                continue;
            }
            let result = tokio::task::spawn_blocking(move || verifier.reload_keys(&source)).await;
            match result {
                Ok(Ok(n)) => tracing::debug!(keys = n, "JWKS refreshed"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the old keys")
                }
                Err(e) => tracing::warn!(error = %e, "JWKS refresh task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_JWK: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    #[test]
    fn ed25519_key_is_found_by_kid_and_by_algorithm() {
        let set = KeySet::parse(ED_JWK, &[Algorithm::EdDSA]).unwrap();
        assert!(set.find(Some("k1"), Algorithm::EdDSA).is_some());
        assert!(set.find(Some("k2"), Algorithm::EdDSA).is_none());
        assert!(set.find(None, Algorithm::EdDSA).is_some());
        assert!(set.find(None, Algorithm::RS256).is_none());
    }

    #[test]
    fn keys_of_unaccepted_algorithms_are_skipped_with_a_reason() {
        let err = KeySet::parse(ED_JWK, &[Algorithm::RS256]).unwrap_err();
        assert!(err.contains("EdDSA is not an accepted algorithm"), "{err}");
        assert!(KeySet::parse("{", &[Algorithm::EdDSA])
            .unwrap_err()
            .contains("not a JWKS"));
    }
}
