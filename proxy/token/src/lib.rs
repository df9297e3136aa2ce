//! Capability tokens: short-lived EdDSA (Ed25519) JWTs minted on permit so that the upstream can check
//! on its own that Lexecon allowed this actor this action on this resource under this policy, with a
//! link (`led`) to the ledger entry, bound to the decided context (`ctx`) and, on the proxy, to the
//! request it travels with (`htm`, `htu`, `bdh`; docs/tokens.md says how an upstream checks them). Owns minting with a reuse cache ([`TokenMinter`]) and
//! verification ([`verify_token`]); the signing keys and their ids are `lexecon-keys`'.
//!
//! Never mints for a decision that is not a permit, never writes a private key with permissions wider
//! than 0600, and never accepts a token whose key, signature, audience or expiry does not check out.

pub mod mint;
pub mod verify;

pub use lexecon_keys::{KeyError, KeyRing};
pub use mint::{
    Claims, Grant, Issued, MintMode, Minted, RequestBinding, TokenConfig, TokenMinter,
    TokenSettings,
};
pub use verify::{parse_jwks, verify_token, LEEWAY_SECS};

/// The request header the proxy forwards the capability token in.
pub const CAPABILITY_HEADER: &str = "x-lexecon-capability";

/// Everything that can go wrong with keys and tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Keys(#[from] KeyError),
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
