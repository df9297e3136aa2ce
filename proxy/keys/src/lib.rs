//! Lexecon's signing keys, in one home: Ed25519 keys read from PKCS#8 PEM files or generated at
//! first start (written with mode 0600), kept in a [`KeyRing`] whose first key signs (capability
//! tokens, ledger checkpoints) and all of whose keys are published in the JWKS (rotation). Key ids
//! ([`key_id`]) are short RFC 7638 thumbprints; the ledger and the tokens name keys the same way.
//!
//! Never logs or prints private keys, never writes a private key with permissions wider than 0600.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// What can go wrong reading, writing or generating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no signing key configured")]
    NoKeys,
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// The I/O error is part of the message and not a `source()`: a caller printing the chain
    /// would show it twice.
    #[error("I/O error: {op} {}: {error}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
}

/// File name of the key generated in a data directory.
pub const DEFAULT_KEY_FILE: &str = "token-ed25519.pem";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Key id: the first 16 characters of the key's RFC 7638 JWK thumbprint (base64url SHA-256 of
/// `{"crv":"Ed25519","kty":"OKP","x":"…"}`).
pub fn key_id(key: &VerifyingKey) -> String {
    let x = B64.encode(key.as_bytes());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let mut kid = B64.encode(Sha256::digest(canonical.as_bytes()));
    kid.truncate(16);
    kid
}

/// One signing key with what minting needs precomputed.
#[derive(Clone)]
pub struct TokenKey {
    kid: String,
    signing: SigningKey,
    /// base64url of the JWS header `{"alg":"EdDSA","typ":"JWT","kid":"…"}`.
    header_b64: String,
}

impl TokenKey {
    pub fn new(signing: SigningKey) -> Self {
        let kid = key_id(&signing.verifying_key());
        let header = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#);
        TokenKey {
            header_b64: B64.encode(header.as_bytes()),
            kid,
            signing,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn header_b64(&self) -> &str {
        &self.header_b64
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64.encode(self.verifying_key().as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The active signing keys. The first one signs; all are published.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<TokenKey>,
}

impl KeyRing {
    pub fn from_keys(keys: impl IntoIterator<Item = SigningKey>) -> Result<Self, KeyError> {
        let keys: Vec<TokenKey> = keys.into_iter().map(TokenKey::new).collect();
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(KeyRing { keys })
    }

    /// Reads PKCS#8 PEM private keys; the first file's key signs.
    pub fn from_pem_files(paths: &[PathBuf]) -> Result<Self, KeyError> {
        Self::from_keys(
            paths
                .iter()
                .map(|p| read_signing_key(p))
                .collect::<Result<Vec<_>, _>>()?,
        )
    }

    /// Reads `dir/token-ed25519.pem`, generating it (mode 0600) if it does not exist.
    pub fn load_or_generate(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join(DEFAULT_KEY_FILE);
        if path.exists() {
            return Self::from_keys([read_signing_key(&path)?]);
        }
        std::fs::create_dir_all(dir).map_err(|error| KeyError::Io {
            op: "create directory",
            path: dir.to_owned(),
            error,
        })?;
        let key = generate_key_file(&path)?;
        tracing::info!(target: "lexecon::keys", path = %path.display(), kid = %key_id(&key.verifying_key()), "generated token signing key");
        Self::from_keys([key])
    }

    /// The ring a `tokens:` section asks for: its `keys` (relative paths resolved against `base_dir`),
    /// or, when it lists none, the key in `base_dir/keys/` (generated at first start).
    pub fn from_config(keys: &[PathBuf], base_dir: &Path) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Self::load_or_generate(&base_dir.join("keys"));
        }
        let paths: Vec<PathBuf> = keys.iter().map(|p| base_dir.join(p)).collect();
        Self::from_pem_files(&paths)
    }

    /// A fresh in-memory key (tests, ephemeral deployments).
    pub fn generate() -> Self {
        KeyRing {
            keys: vec![TokenKey::new(SigningKey::generate(&mut rand::rngs::OsRng))],
        }
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> &TokenKey {
        // INVARIANT: constructors reject an empty ring.
        &self.keys[0]
    }

    pub fn keys(&self) -> &[TokenKey] {
        &self.keys
    }

    /// `{"keys":[…]}` with one OKP/Ed25519 JWK per active key.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.keys.iter().map(TokenKey::jwk).collect::<Vec<_>>() })
    }

    pub fn jwks_json(&self) -> String {
        self.jwks().to_string()
    }
}

/// Generates a key and writes it as PKCS#8 PEM to `path` with mode 0600. Never overwrites a file.
pub fn generate_key_file(path: &Path) -> Result<SigningKey, KeyError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| KeyError::KeyFile {
            path: path.to_owned(),
            reason: format!("cannot encode key: {e}"),
        })?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let io = |op, error| KeyError::Io {
        op,
        path: path.to_owned(),
        error,
    };
    let mut file = options.open(path).map_err(|e| io("create key file", e))?;
    file.write_all(pem.as_bytes())
        .map_err(|e| io("write key file", e))?;
    file.sync_all().map_err(|e| io("fsync key file", e))?;
    Ok(key)
}

/// Writes the public half of `key` as SPKI PEM (what `ledger verify --public-key` takes).
pub fn write_public_key_file(path: &Path, key: &VerifyingKey) -> Result<(), KeyError> {
    let pem = key
        .to_public_key_pem(Default::default())
        .map_err(|e| KeyError::KeyFile {
            path: path.to_owned(),
            reason: format!("cannot encode public key: {e}"),
        })?;
    std::fs::write(path, pem).map_err(|error| KeyError::Io {
        op: "write public key file",
        path: path.to_owned(),
        error,
    })
}

/// Reads a PKCS#8 PEM Ed25519 private key. Refuses a file group or others may read (or write):
/// whoever can read a signing key can sign as Lexecon, so the check is an error, not a warning.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(path).map_err(|error| KeyError::Io {
            op: "read key file",
            path: path.to_owned(),
            error,
        })?;
        if !meta.is_file() {
            return Err(KeyError::KeyFile {
                path: path.to_owned(),
                reason: "not a regular file".to_owned(),
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::KeyFile {
                path: path.to_owned(),
                reason: format!(
                    "mode {mode:o} lets group or others read a private key; chmod 600 {}",
                    path.display()
                ),
            });
        }
    }
    let pem = std::fs::read_to_string(path).map_err(|error| KeyError::Io {
        op: "read key file",
        path: path.to_owned(),
        error,
    })?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::KeyFile {
        path: path.to_owned(),
        reason: format!("not a PKCS#8 PEM Ed25519 private key: {e}"),
    })
}

/// Reads an Ed25519 public key from a PEM file (`PUBLIC KEY`, or a `PRIVATE KEY` whose public half is
/// taken) or a JWKS JSON file (its only OKP key).
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|error| KeyError::Io {
        op: "read key file",
        path: path.to_owned(),
        error,
    })?;
    let bad = |reason: String| KeyError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with("-----BEGIN PUBLIC KEY") {
        return VerifyingKey::from_public_key_pem(&text)
            .map_err(|e| bad(format!("not an Ed25519 SPKI public key: {e}")));
    }
    if trimmed.starts_with("-----BEGIN PRIVATE KEY") {
        return SigningKey::from_pkcs8_pem(&text)
            .map(|k| k.verifying_key())
            .map_err(|e| bad(format!("not a PKCS#8 Ed25519 private key: {e}")));
    }
    if trimmed.starts_with('{') {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a JWKS: {e}")))?;
        let okp: Vec<_> = set
            .keys
            .iter()
            .filter_map(|k| match &k.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => Some(p.x.clone()),
                _ => None,
            })
            .collect();
        let [x] = okp.as_slice() else {
            return Err(bad(format!(
                "JWKS holds {} Ed25519 keys; give a file with exactly one",
                okp.len()
            )));
        };
        let bytes = B64
            .decode(x)
            .map_err(|e| bad(format!("JWK x is not base64url: {e}")))?;
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| bad(format!("JWK x has {} bytes, expected 32", bytes.len())))?;
        return VerifyingKey::from_bytes(&arr).map_err(|e| bad(format!("JWK x: {e}")));
    }
    Err(bad(
        "expected a PEM public or private key, or a JWKS JSON file".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_file_is_private_and_reloads_to_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_generate(dir.path()).unwrap();
        let path = dir.path().join(DEFAULT_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let again = KeyRing::load_or_generate(dir.path()).unwrap();
        assert_eq!(ring.signer().kid(), again.signer().kid());
        assert!(generate_key_file(&path).is_err(), "must not overwrite");
    }

    #[cfg(unix)]
    #[test]
    fn a_private_key_others_may_read_is_refused_not_warned_about() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_KEY_FILE);
        generate_key_file(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_signing_key(&path).unwrap_err().to_string();
            assert!(
                err.contains(&format!("mode {mode:o}")) && err.contains("chmod 600"),
                "{err}"
            );
            assert!(KeyRing::load_or_generate(dir.path()).is_err());
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read_signing_key(&path).is_ok());
    }

    #[test]
    fn ring_from_config_uses_listed_keys_or_generates_one_under_keys() {
        let dir = tempfile::tempdir().unwrap();
        let generated = KeyRing::from_config(&[], dir.path()).unwrap();
        assert!(dir.path().join("keys").join(DEFAULT_KEY_FILE).exists());
        let listed = [PathBuf::from("keys").join(DEFAULT_KEY_FILE)];
        let ring = KeyRing::from_config(&listed, dir.path()).unwrap();
        assert_eq!(ring.signer().kid(), generated.signer().kid());
        let missing = [PathBuf::from("nope.pem")];
        assert!(matches!(
            KeyRing::from_config(&missing, dir.path()),
            Err(KeyError::Io { .. })
        ));
    }

    #[test]
    fn jwks_lists_every_key_with_its_kid() {
        let a = SigningKey::generate(&mut rand::rngs::OsRng);
        let b = SigningKey::generate(&mut rand::rngs::OsRng);
        let ring = KeyRing::from_keys([a.clone(), b.clone()]).unwrap();
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0]["kid"], key_id(&a.verifying_key()));
        assert_eq!(keys[1]["kid"], key_id(&b.verifying_key()));
        assert_eq!(keys[0]["kty"], "OKP");
        assert_eq!(keys[0]["crv"], "Ed25519");
        assert_eq!(ring.signer().kid(), key_id(&a.verifying_key()));
        assert_eq!(key_id(&a.verifying_key()).len(), 16);
    }

    #[test]
    fn public_key_reads_from_pem_and_jwks() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_generate(dir.path()).unwrap();
        let public = ring.signer().verifying_key();
        let pem = dir.path().join("pub.pem");
        write_public_key_file(&pem, &public).unwrap();
        assert_eq!(read_verifying_key(&pem).unwrap(), public);
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, ring.jwks_json()).unwrap();
        assert_eq!(read_verifying_key(&jwks).unwrap(), public);
        assert_eq!(
            read_verifying_key(&dir.path().join(DEFAULT_KEY_FILE)).unwrap(),
            public
        );
        std::fs::write(&pem, "garbage").unwrap();
        assert!(matches!(
            read_verifying_key(&pem),
            Err(KeyError::KeyFile { .. })
        ));
    }
}
