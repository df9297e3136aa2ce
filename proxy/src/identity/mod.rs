//! Who is calling: turns a request's credentials into an actor id (`act_<type>:<instance>`) and the
//! claims copied into the decision context.
//!
//! Sources, in order: a bearer JWT (verified against the configured JWKS, or signed by the local
//! issuer — `lexecon token issue` —, cached by token hash until its `exp`), a trusted actor header
//! (only from a loopback peer), the configured anonymous actor. A request with none of them, or
//! with a token that does not verify, is refused (401): this module never guesses an actor and
//! never lets an unverified token through.
//!
//! Trust: only a verified credential can carry roles ([`Source::Credential`]). A header-named
//! actor is what a client on loopback says it is — in a pod, loopback is the agent — so it names an
//! actor for policy and nothing more: no roles, and one shared rate-limit key ([`Actor::limit_key`])
//! so that naming another actor buys no fresh budget.

pub mod jwks;
pub mod jwt;
pub mod local;

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;
use lexecon_config::file::IdentityConfig;

pub use jwks::{JwksRefresher, KeySet};
pub use jwt::JwtVerifier;
pub use local::LocalIssuer;

/// Where an actor's identity came from, which bounds what it may assert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A verified bearer JWT: the only source of roles.
    Credential,
    /// The trusted actor header from a loopback peer: an actor for policy, never roles.
    Header,
    /// The configured anonymous actor.
    Anonymous,
}

/// The rate-limit key every header-named actor shares.
pub const HEADER_LIMIT_KEY: &str = "(trusted actor header)";

static HEADER_KEY: std::sync::LazyLock<Arc<str>> =
    std::sync::LazyLock::new(|| Arc::from(HEADER_LIMIT_KEY));

/// A verified actor.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    /// `act_<type>:<instance>`.
    pub id: Arc<str>,
    /// Claims mapped into the decision context (`claims_to_context`).
    pub context: serde_json::Map<String, serde_json::Value>,
    pub source: Source,
}

impl Actor {
    /// The provenance of the context keys this actor brings: its claims are a verified
    /// credential's (`credential`); a header-named or anonymous actor brings none.
    pub fn claim_provenance(&self) -> lexecon_domains::Provenances {
        match self.source {
            Source::Credential => self
                .context
                .keys()
                .map(|k| (k.clone(), lexecon_domains::Provenance::Credential))
                .collect(),
            Source::Header | Source::Anonymous => lexecon_domains::Provenances::new(),
        }
    }

    /// The key rate limits count this actor under: its id when a credential proves it, one key
    /// shared by every header-named actor (a client that can name any actor must not get a new
    /// budget per name).
    pub fn limit_key(&self) -> &Arc<str> {
        match self.source {
            Source::Header => &HEADER_KEY,
            Source::Credential | Source::Anonymous => &self.id,
        }
    }
}

/// Why a request has no actor; every variant is answered 401 with `WWW-Authenticate: Bearer`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no credentials: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("invalid bearer token: {0}")]
    InvalidToken(String),
    #[error("bearer tokens are not accepted: no `identity.jwt` is configured")]
    JwtNotConfigured,
    #[error("{0}")]
    BadActorId(String),
}

impl IdentityError {
    /// The `error` parameter of `WWW-Authenticate` (RFC 6750).
    pub fn www_authenticate(&self) -> &'static str {
        match self {
            IdentityError::Missing => "Bearer realm=\"lexecon\"",
            _ => "Bearer realm=\"lexecon\", error=\"invalid_token\"",
        }
    }
}

/// The identity settings of a running proxy.
pub struct Identity {
    jwt: Option<Arc<JwtVerifier>>,
    local: Option<Arc<LocalIssuer>>,
    trusted_header: Option<http::HeaderName>,
    anonymous: Option<Arc<Actor>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("jwt", &self.jwt.is_some())
            .field("local_issuer", &self.local.is_some())
            .field("trusted_header", &self.trusted_header)
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

impl Identity {
    /// Builds the identity settings; `jwt` is the verifier when `identity.jwt` is configured,
    /// `local` the local issuer's when `identity.local_issuer` is.
    pub fn new(
        config: &IdentityConfig,
        jwt: Option<Arc<JwtVerifier>>,
        local: Option<Arc<LocalIssuer>>,
    ) -> Result<Self, String> {
        let trusted_header = match &config.trusted_actor_header {
            Some(h) => Some(http::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                format!("identity.trusted_actor_header: {h:?} is not a header name")
            })?),
            None => None,
        };
        let anonymous = match &config.anonymous_actor {
            Some(a) => Some(Arc::new(Actor {
                id: actor_id(a, None).map_err(|e| format!("identity.anonymous_actor: {e}"))?,
                context: serde_json::Map::new(),
                source: Source::Anonymous,
            })),
            None => None,
        };
        Ok(Self {
            jwt,
            local,
            trusted_header,
            anonymous,
        })
    }

    /// The JWT verifier, when one is configured.
    pub fn jwt(&self) -> Option<&Arc<JwtVerifier>> {
        self.jwt.as_ref()
    }

    /// Drops the verified tokens past their `exp` from the JWT verifier's and the local issuer's
    /// caches (see [`JwtVerifier::sweep_expired`]); for the cache sweeper, off the request path.
    pub fn sweep_expired(&self) -> usize {
        self.jwt.as_ref().map_or(0, |v| v.sweep_expired())
            + self.local.as_ref().map_or(0, |l| l.sweep_expired())
    }

    /// Finds the actor of a request. `peer` is the downstream address: the trusted header counts
    /// only from a loopback peer.
    pub fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Arc<Actor>, IdentityError> {
        if let Some(auth) = headers.get(http::header::AUTHORIZATION) {
            let token = bearer_token(auth.as_bytes()).ok_or_else(|| {
                IdentityError::InvalidToken(
                    "the Authorization header is not `Bearer <token>`".into(),
                )
            })?;
            if let Some(local) = &self.local {
                let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
                if kid.as_deref() == Some(local.kid()) {
                    return local.verify(token);
                }
            }
            let jwt = self.jwt.as_ref().ok_or(IdentityError::JwtNotConfigured)?;
            return jwt.verify(token);
        }
        if let Some(name) = &self.trusted_header {
            if let Some(value) = headers.get(name) {
                if peer.is_some_and(|ip| ip.is_loopback()) {
                    let text = value.to_str().map_err(|_| {
                        IdentityError::BadActorId(format!("header {name} is not text"))
                    })?;
                    return Ok(Arc::new(Actor {
                        id: actor_id(text, None).map_err(IdentityError::BadActorId)?,
                        context: serde_json::Map::new(),
                        source: Source::Header,
                    }));
                }
            }
        }
        self.anonymous.clone().ok_or(IdentityError::Missing)
    }
}

fn bearer_token(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
        Some(token.trim())
    } else {
        None
    }
}

/// `act_<type>:<instance>` as given, or, when a prefix is configured, always `prefix + value`: a
/// credential whose claim is already shaped `act_<type>:…` must not pick its own actor type (and
/// with it the roles and rules of that type).
pub fn actor_id(value: &str, prefix: Option<&str>) -> Result<Arc<str>, String> {
    let value = value.trim();
    match prefix {
        None if is_actor_id(value) => Ok(Arc::from(value)),
        Some(p) if !value.is_empty() => {
            let id = format!("{p}{value}");
            if is_actor_id(&id) {
                Ok(Arc::from(id))
            } else {
                Err(format!(
                    "{id:?} is not an actor id of the form act_<type>:<instance>"
                ))
            }
        }
        _ => Err(format!(
            "{value:?} is not an actor id of the form act_<type>:<instance> (configure identity.jwt.actor_prefix to map plain ids)"
        )),
    }
}

fn is_actor_id(s: &str) -> bool {
    match s.split_once(':') {
        Some((ty, inst)) => {
            ty.len() > 4
                && ty.starts_with("act_")
                && ty[4..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !inst.is_empty()
                && !inst
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(header: Option<&str>, anonymous: Option<&str>) -> Identity {
        Identity::new(
            &IdentityConfig {
                jwt: None,
                trusted_actor_header: header.map(String::from),
                anonymous_actor: anonymous.map(String::from),
                local_issuer: None,
            },
            None,
            None,
        )
        .unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn trusted_header_names_the_actor_from_loopback_only() {
        let id = identity(Some("x-agent-id"), None);
        let h = headers(&[("x-agent-id", "act_ai_agent:bot-1")]);
        assert_eq!(
            &*id.identify(&h, LOOPBACK).unwrap().id,
            "act_ai_agent:bot-1"
        );
        let remote = Some("10.1.2.3".parse().unwrap());
        assert_eq!(id.identify(&h, remote), Err(IdentityError::Missing));
    }

    #[test]
    fn no_credentials_is_missing_unless_anonymous_is_configured() {
        assert_eq!(
            identity(None, None).identify(&HeaderMap::new(), LOOPBACK),
            Err(IdentityError::Missing)
        );
        let anon = identity(None, Some("act_ai_agent:anonymous"));
        assert_eq!(
            &*anon.identify(&HeaderMap::new(), LOOPBACK).unwrap().id,
            "act_ai_agent:anonymous"
        );
    }

    #[test]
    fn bearer_token_without_jwt_config_is_rejected_not_ignored() {
        let id = identity(Some("x-agent-id"), Some("act_ai_agent:anonymous"));
        let h = headers(&[
            ("authorization", "Bearer abc"),
            ("x-agent-id", "act_ai_agent:x"),
        ]);
        assert_eq!(
            id.identify(&h, LOOPBACK),
            Err(IdentityError::JwtNotConfigured)
        );
        let h = headers(&[("authorization", "Basic abc")]);
        assert!(matches!(
            id.identify(&h, LOOPBACK),
            Err(IdentityError::InvalidToken(_))
        ));
    }

    #[test]
    fn actor_ids_are_taken_as_given_or_prefixed() {
        assert_eq!(
            &*actor_id("act_ai_agent:a", None).unwrap(),
            "act_ai_agent:a"
        );
        assert_eq!(
            &*actor_id("bot-7", Some("act_ai_agent:")).unwrap(),
            "act_ai_agent:bot-7"
        );
        assert!(actor_id("bot-7", None)
            .unwrap_err()
            .contains("actor_prefix"));
        assert!(actor_id("act_:x", None).is_err());
        assert!(actor_id("act_ai_agent:", None).is_err());
    }
}
