//! The request a domain plugin sees: who (actor) wants to do what (action) to what (resource), with
//! which context, at which instant. The instant is always injected, never read from a clock here.

use serde::{Deserialize, Serialize};

use crate::ident::{DomainId, EntityRef};

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
    /// The decision time. Time-dependent rules (trading sessions, windows) use this, never a clock.
    pub time: jiff::Timestamp,
}
