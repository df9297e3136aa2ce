//! The request a domain plugin sees: who (actor) wants to do what (action) to what (resource), with
//! which context, at which instant. The instant is always injected, never read from a clock here.

use serde::{Deserialize, Serialize};

use crate::ident::{DomainId, EntityRef};

/// Where a fact of the decision context comes from (docs/trust.md): a policy condition on
/// `provenance.<key>` reads it, so a policy can trust a fact only when it was looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// Derived from the request the caller sent (classifier output, a decision API body): the
    /// caller's own assertion. Every key no one else vouches for.
    Request,
    /// A claim of a credential Lexecon verified (a JWT's claims mapped by `claims_to_context`).
    Credential,
    /// Looked up from an authority the configuration names (a FHIR server's `Consent`).
    Authority,
    /// Added by the domain plugin while enriching the request.
    Plugin,
}

impl Provenance {
    /// Every provenance, in the order messages list them.
    pub const ALL: [Provenance; 4] = [
        Provenance::Request,
        Provenance::Credential,
        Provenance::Authority,
        Provenance::Plugin,
    ];

    /// The name a policy writes (`authority`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Request => "request",
            Provenance::Credential => "credential",
            Provenance::Authority => "authority",
            Provenance::Plugin => "plugin",
        }
    }

    /// The provenance written `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// The provenance of context keys (top-level keys only; a nested value shares its key's).
pub type Provenances = std::collections::BTreeMap<String, Provenance>;

/// A classified request, as the decision pipeline hands it to a domain plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub domain: DomainId,
    pub actor: EntityRef,
    pub action: EntityRef,
    #[serde(default)]
    pub resource: Option<EntityRef>,
    #[serde(default)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Where the context's facts come from, by top-level key; a key not listed is the request's
    /// ([`Request::provenance_of`]).
    #[serde(default, skip_serializing_if = "Provenances::is_empty")]
    pub provenance: Provenances,
    /// The decision time. Time-dependent rules (trading sessions, windows) use this, never a clock.
    pub time: jiff::Timestamp,
}

impl Request {
    /// The provenance of the top-level context key `key`: as labelled, [`Provenance::Request`]
    /// when no one labelled it (a fact no one vouches for is the caller's), `None` when the
    /// context has no such key.
    pub fn provenance_of(&self, key: &str) -> Option<Provenance> {
        self.context.contains_key(key).then(|| {
            self.provenance
                .get(key)
                .copied()
                .unwrap_or(Provenance::Request)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlabelled_key_is_the_requests_and_a_missing_key_has_no_provenance() {
        let mut request = Request {
            domain: DomainId::new("ai").unwrap(),
            actor: EntityRef::parse("act_ai_agent:a").unwrap(),
            action: EntityRef::parse("axn_read_data").unwrap(),
            resource: None,
            context: serde_json::json!({"said": 1, "looked_up": true})
                .as_object()
                .cloned()
                .unwrap(),
            provenance: Provenances::from([
                ("looked_up".to_owned(), Provenance::Authority),
                ("gone".to_owned(), Provenance::Authority),
            ]),
            time: jiff::Timestamp::UNIX_EPOCH,
        };
        assert_eq!(request.provenance_of("said"), Some(Provenance::Request));
        assert_eq!(
            request.provenance_of("looked_up"),
            Some(Provenance::Authority)
        );
        assert_eq!(request.provenance_of("gone"), None);
        for p in Provenance::ALL {
            assert_eq!(Provenance::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        // Serialized without labels, a request reads as before.
        request.provenance.clear();
        let json = serde_json::to_value(&request).unwrap();
        assert!(json.get("provenance").is_none());
    }
}
