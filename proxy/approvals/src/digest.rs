//! What an approval is bound to: [`RequestDigest`], a SHA-256 over the request as sent or over the
//! decided call ([`Call`]), so that only the very same request can redeem it. Pure; no I/O.

use lexecon_policy_cache::{Decision, DecisionInput};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// SHA-256 over a request's method, path and body, binding an approval to that exact request.
/// Serialized as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestDigest([u8; 32]);

impl RequestDigest {
    /// Digest of a raw HTTP request, as the proxy sees it: each of method, path and body is
    /// length-prefixed (8 bytes, big-endian), so no two different requests share an input.
    pub fn of_http(method: &str, path: &str, body: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"lexecon-approval-digest-v1\0http\0");
        for part in [method.as_bytes(), path.as_bytes(), body] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Self(h.finalize().into())
    }

    /// Digest of a decided call: method, path and the canonical JSON (keys sorted, no whitespace)
    /// of its domain, actor, action, resource and context. The request id and the approval id are
    /// left out, so the retry that carries the approval id digests the same (and so does an MCP
    /// retry, whose JSON-RPC id changes every time).
    pub fn of_call(method: &str, path: &str, call: Call<'_>) -> Self {
        let mut doc = serde_json::Map::new();
        doc.insert("domain".into(), call.domain.into());
        doc.insert("actor".into(), call.actor.into());
        doc.insert("action".into(), call.action.into());
        doc.insert(
            "resource".into(),
            call.resource.map_or(serde_json::Value::Null, Into::into),
        );
        doc.insert(
            "context".into(),
            serde_json::Value::Object(call.context.clone()),
        );
        let mut canonical = Vec::with_capacity(256);
        lexecon_config::canonical::write_canonical_map(&doc, &mut canonical);
        let mut h = Sha256::new();
        h.update(b"lexecon-approval-digest-v1\0decision\0");
        for part in [method.as_bytes(), path.as_bytes(), canonical.as_slice()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Self(h.finalize().into())
    }

    /// [`Self::of_call`] of a decision request.
    pub fn of_input(method: &str, path: &str, input: &DecisionInput) -> Self {
        Self::of_call(method, path, Call::of_input(input))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl TryFrom<String> for RequestDigest {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&value, &mut out)
            .map_err(|e| format!("request digest {value:?} is not 64 hex digits: {e}"))?;
        Ok(Self(out))
    }
}

impl From<RequestDigest> for String {
    fn from(value: RequestDigest) -> Self {
        value.to_hex()
    }
}

/// The parts of a decided call an approval is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub domain: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub resource: Option<&'a str>,
    pub context: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> Call<'a> {
    /// The call `decision` decided, on `context` (as the decision saw it).
    pub fn of_decision(
        decision: &'a Decision,
        context: &'a serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Call {
            domain: &decision.domain,
            actor: &decision.actor,
            action: &decision.action,
            resource: decision.resource.as_deref(),
            context,
        }
    }

    pub fn of_input(input: &'a DecisionInput) -> Self {
        Call {
            domain: &input.domain,
            actor: &input.actor,
            action: &input.action,
            resource: input.resource.as_deref(),
            context: &input.context,
        }
    }
}
