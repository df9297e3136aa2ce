//! Verifying a capability token against a JWKS with `jsonwebtoken`: the key by `kid`, the EdDSA
//! signature, expiry (with [`LEEWAY_SECS`] of clock skew) and audience, each failure with its own
//! [`TokenError`] variant. Never trusts a claim before the signature has verified.

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::mint::Claims;
use super::TokenError;

/// Clock skew tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 5;

/// Parses a JWKS document (`{"keys":[…]}`).
pub fn parse_jwks(json: &str) -> Result<JwkSet, TokenError> {
    serde_json::from_str(json).map_err(|e| TokenError::Jwks {
        reason: e.to_string(),
    })
}

/// Verifies `token` against `jwks`; with `expected_audience`, `aud` must equal it.
pub fn verify_token(
    token: &str,
    jwks: &JwkSet,
    expected_audience: Option<&str>,
) -> Result<Claims, TokenError> {
    let malformed = |reason: String| TokenError::Malformed { reason };
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| malformed(format!("header: {e}")))?;
    if header.alg != Algorithm::EdDSA {
        return Err(malformed(format!(
            "algorithm is {:?}, expected EdDSA",
            header.alg
        )));
    }
    let kid = header
        .kid
        .ok_or_else(|| malformed("header has no kid".to_owned()))?;
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| TokenError::UnknownKid { kid: kid.clone() })?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| TokenError::Jwks {
        reason: format!("key {kid}: {e}"),
    })?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp", "iat", "sub"]);
    match expected_audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired {
                exp: unverified_claim(token, "exp")
                    .and_then(|v| v.as_i64())
                    .unwrap_or_default(),
            },
            ErrorKind::InvalidAudience => TokenError::WrongAudience {
                expected: expected_audience.unwrap_or_default().to_owned(),
                found: unverified_claim(token, "aud")
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .unwrap_or_default(),
            },
            ErrorKind::InvalidEddsaKey | ErrorKind::InvalidKeyFormat => TokenError::Jwks {
                reason: format!("key {kid}: {e}"),
            },
            _ => malformed(e.to_string()),
        }),
    }
}

/// A claim read without verification, for error messages only (the signature already verified when
/// this is called for `exp`/`aud` failures).
fn unverified_claim(token: &str, name: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get_mut(name).map(serde_json::Value::take)
}
