//! Capability tokens: short-lived EdDSA (Ed25519) JWTs minted on permit so that the upstream can check
//! on its own that Lexecon allowed this actor this action on this resource under this policy, with a
//! link (`led`) to the ledger entry. Owns the signing keys ([`KeyRing`]), minting with a reuse cache
//! ([`TokenMinter`]), the public JWKS, and verification ([`verify_token`]).
//!
//! Never mints for a decision that is not a permit, never writes a private key with permissions wider
//! than 0600, and never accepts a token whose key, signature, audience or expiry does not check out.

pub mod cli;
pub mod keys;
pub mod mint;
pub mod verify;

use std::path::PathBuf;

pub use keys::{
    generate_key_file, key_id, read_signing_key, read_verifying_key, KeyRing, DEFAULT_KEY_FILE,
};
pub use mint::{Claims, Issued, MintMode, TokenConfig, TokenMinter};
pub use verify::{parse_jwks, verify_token, LEEWAY_SECS};

/// The request header the proxy forwards the capability token in.
pub const CAPABILITY_HEADER: &str = "x-lexecon-capability";

/// Everything that can go wrong with keys and tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no token signing key configured")]
    NoKeys,
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("I/O error: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid token configuration: {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// Tokens are minted only for permits.
    #[error("decision {decision_id} is {verdict}, not permit: no capability token")]
    NotPermitted {
        decision_id: String,
        verdict: &'static str,
    },
    #[error("cannot encode token: {0}")]
    Encode(String),
    #[error("token expired at {exp} (unix seconds)")]
    Expired { exp: i64 },
    #[error("token audience is {found:?}, expected {expected:?}")]
    WrongAudience { expected: String, found: String },
    #[error("token key id {kid:?} is not in the JWKS")]
    UnknownKid { kid: String },
    #[error("token signature does not verify")]
    BadSignature,
    #[error("malformed token: {reason}")]
    Malformed { reason: String },
    #[error("invalid JWKS: {reason}")]
    Jwks { reason: String },
}
