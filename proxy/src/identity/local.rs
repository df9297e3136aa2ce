//! The local issuer: bearer tokens Lexecon signs itself, for approvers and deciders where no IdP
//! is at hand (the demo, a single node). `lexecon token issue --subject act_human_user:alice --role
//! approver` signs one with `<data_dir>/keys/identity-issuer-ed25519.pem` (generated at first use,
//! mode 0600); the proxy verifies it like any bearer JWT — EdDSA, `iss` [`LOCAL_ISSUER`], `aud`
//! [`LOCAL_AUDIENCE`], `exp` required — and refuses one that names a role outside
//! `identity.local_issuer.roles`.
//!
//! The key is not the capability-token key: a capability token handed to an agent must never pass
//! as an identity. Whoever can read the data directory can mint identities; in a pod, the agent's
//! container must not mount it. Never logs or prints the private key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lexecon_config::file::{JwtAlgorithm, JwtConfig, LocalIssuerConfig};
use lexecon_keys::{generate_key_file, key_id, read_signing_key, KeyError, KeyRing};

use super::jwks::KeySet;
use super::{Actor, IdentityError, JwtVerifier};

/// The `iss` of local identity tokens.
pub const LOCAL_ISSUER: &str = "lexecon-local";
/// The `aud` of local identity tokens (no capability token carries it).
pub const LOCAL_AUDIENCE: &str = "lexecon-identity";
/// The key file, under `<data_dir>/keys/`.
pub const KEY_FILE: &str = "identity-issuer-ed25519.pem";
/// The claim (and context key) that carries the roles.
const ROLES: &str = "roles";

/// Where the local issuer's key lives for a data directory.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join(KEY_FILE)
}

/// Reads the local issuer's key, generating it (mode 0600) the first time.
pub fn load_or_generate_key(data_dir: &Path) -> Result<SigningKey, KeyError> {
    let path = key_path(data_dir);
    if path.exists() {
        return read_signing_key(&path);
    }
    let dir = data_dir.join("keys");
    std::fs::create_dir_all(&dir).map_err(|error| KeyError::Io {
        op: "create directory",
        path: dir,
        error,
    })?;
    let key = generate_key_file(&path)?;
    tracing::info!(target: "lexecon::identity", path = %path.display(), kid = %key_id(&key.verifying_key()), "generated the local issuer key");
    Ok(key)
}

/// Verifies local identity tokens.
#[derive(Debug)]
pub struct LocalIssuer {
    kid: String,
    roles: Vec<String>,
    verifier: JwtVerifier,
}

impl LocalIssuer {
    /// The verifier for `config`, trusting the key of `data_dir` (generated if missing). Blocking.
    pub fn load(config: &LocalIssuerConfig, data_dir: &Path) -> Result<Self, String> {
        let key =
            load_or_generate_key(data_dir).map_err(|e| format!("identity.local_issuer: {e}"))?;
        let ring = KeyRing::from_keys([key]).map_err(|e| e.to_string())?;
        let keys = KeySet::parse(&ring.jwks_json(), &[Algorithm::EdDSA])?;
        let jwt = JwtConfig {
            issuer: LOCAL_ISSUER.to_owned(),
            audience: vec![LOCAL_AUDIENCE.to_owned()],
            leeway: Duration::from_secs(5),
            jwks: String::new(),
            algorithms: vec![JwtAlgorithm::EdDsa],
            actor_claim: "sub".to_owned(),
            actor_prefix: None,
            claims_to_context: [(ROLES.to_owned(), ROLES.to_owned())].into(),
            refresh: Duration::from_secs(3600),
            insecure_jwks_http: false,
            cache_capacity: lexecon_config::file::DEFAULT_JWT_CACHE,
        };
        Ok(Self {
            kid: ring.signer().kid().to_owned(),
            roles: config.roles.clone(),
            verifier: JwtVerifier::new(jwt, keys),
        })
    }

    /// The key id its tokens carry in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Drops its cached tokens past their `exp` (see [`JwtVerifier::sweep_expired`]).
    pub fn sweep_expired(&self) -> usize {
        self.verifier.sweep_expired()
    }

    /// Verifies a token and checks that every role it names is one this issuer may grant.
    pub fn verify(&self, token: &str) -> Result<Arc<Actor>, IdentityError> {
        let actor = self.verifier.verify(token)?;
        let roles = match actor.context.get(ROLES) {
            None => Vec::new(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|r| r.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    IdentityError::InvalidToken("the roles claim must list strings".into())
                })?,
            Some(_) => {
                return Err(IdentityError::InvalidToken(
                    "the roles claim must be an array of strings".into(),
                ))
            }
        };
        if let Some(role) = roles.iter().find(|r| !self.roles.contains(r)) {
            return Err(IdentityError::InvalidToken(format!(
                "the local issuer may not grant role {role:?} (identity.local_issuer.roles: {:?})",
                self.roles
            )));
        }
        Ok(actor)
    }
}

/// Signs a local identity token for `subject` (an actor id) with `roles`, valid for `ttl`.
pub fn issue(
    key: &SigningKey,
    subject: &str,
    roles: &[String],
    ttl: Duration,
) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = serde_json::json!({
        "iss": LOCAL_ISSUER,
        "aud": LOCAL_AUDIENCE,
        "sub": subject,
        "roles": roles,
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs(),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key_id(&key.verifying_key()));
    let pem = {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        key.to_pkcs8_pem(Default::default())
            .map_err(|e| format!("cannot encode the issuer key: {e}"))?
    };
    let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    jsonwebtoken::encode(&header, &claims, &encoding).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(dir: &Path) -> LocalIssuer {
        let config = LocalIssuerConfig {
            roles: vec!["approver".into()],
            max_ttl: Duration::from_secs(3600),
        };
        LocalIssuer::load(&config, dir).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_with_its_subject_and_roles() {
        let dir = tempfile::tempdir().unwrap();
        let local = issuer(dir.path());
        let key = load_or_generate_key(dir.path()).unwrap();
        let token = issue(
            &key,
            "act_human_user:alice",
            &["approver".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        let actor = local.verify(&token).unwrap();
        assert_eq!(&*actor.id, "act_human_user:alice");
        assert_eq!(actor.context["roles"], serde_json::json!(["approver"]));
        assert_eq!(actor.source, super::super::Source::Credential);
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(),
            Some(local.kid())
        );
    }

    #[test]
    fn a_role_outside_the_configured_ones_or_another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let local = issuer(dir.path());
        let key = load_or_generate_key(dir.path()).unwrap();
        let admin = issue(
            &key,
            "act_human_user:mallory",
            &["admin".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        let err = local.verify(&admin).unwrap_err().to_string();
        assert!(err.contains("\"admin\""), "{err}");
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        let forged = issue(
            &other,
            "act_human_user:alice",
            &["approver".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(local.verify(&forged).is_err());
    }
}
