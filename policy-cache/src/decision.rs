//! What goes into a decision and what comes out: [`DecisionInput`], [`Decision`] and the shared
//! string ([`SharedStr`], [`RuleId`]) its rule ids, reason and policy hash are held in.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use lexecon_domains::{ComplianceMapping, Finding, Verdict};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable string shared by the compiled policy, the decision cache and every decision that
/// names it (rule ids, reasons, the policy hash): cloning it is a reference-count increment, not a
/// string copy. Reads, compares and serializes as the plain string (`"algos-may-trade"`), so a
/// decision's JSON is the same as with a `String`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedStr(Arc<str>);

/// A policy rule's id.
pub type RuleId = SharedStr;

impl SharedStr {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedStr {
    fn from(value: &str) -> Self {
        Self(Arc::from(value))
    }
}

impl From<String> for SharedStr {
    fn from(value: String) -> Self {
        Self(Arc::from(value))
    }
}

impl From<std::borrow::Cow<'_, str>> for SharedStr {
    fn from(value: std::borrow::Cow<'_, str>) -> Self {
        Self(Arc::from(value))
    }
}

impl From<SharedStr> for String {
    fn from(value: SharedStr) -> Self {
        value.0.as_ref().to_owned()
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        self == &*other.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

/// A request for a decision, as the proxy's classifiers, the decision API and the CLI build it.
/// Ids are strings here; the service parses and type-checks them against the domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInput {
    /// Caller-supplied correlation id; one is generated when absent.
    #[serde(default)]
    pub request_id: Option<String>,
    pub domain: String,
    pub actor: String,
    pub action: String,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Decision time; `None` means now.
    #[serde(default)]
    pub at: Option<jiff::Timestamp>,
    /// Where the context's facts come from, by top-level key (a key not listed is the request's).
    /// Set by the code that gathered them, never read from or written to a serialized input: a
    /// caller cannot claim a provenance for what it sends.
    #[serde(skip)]
    pub provenance: lexecon_domains::Provenances,
}

/// The rule (or default) that decided, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// Ids of every policy rule that matched, in document order (shared with the decision cache).
    pub matched_rules: Arc<[RuleId]>,
    /// Plugin findings (domain constraints, template checks) that applied.
    pub findings: Vec<Finding>,
    /// For `dry_run` policies: what would have been decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_have: Option<Verdict>,
    /// Whether the decision came from the decision cache.
    #[serde(default)]
    pub cached: bool,
}

/// A decision with everything the caller, the ledger and the token minter need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub request_id: String,
    pub decision_id: String,
    pub domain: String,
    pub actor: String,
    pub action: String,
    #[serde(default)]
    pub resource: Option<String>,
    pub decision: Verdict,
    /// Human-readable reason naming the deciding rule or constraint.
    pub reasoning: SharedStr,
    /// The deciding rule's id, `finding:<code>` for a plugin finding, or `default:<mode>`.
    pub rule_id: SharedStr,
    pub policy_version_hash: SharedStr,
    /// Shared by every decision of the policy with the same outcome (see `ComplianceTable`).
    pub compliance_mappings: Arc<[ComplianceMapping]>,
    /// The action type's risk level (1..=5).
    pub risk_level: u8,
    pub requires_human_approval: bool,
    /// Permitted but flagged for after-the-fact review (e.g. break-glass).
    pub review_required: bool,
    pub explanation: Explanation,
    /// RFC 3339 UTC.
    pub timestamp: jiff::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rule_ids_serialize_and_compare_as_plain_strings() {
        let e = Explanation {
            matched_rules: vec!["a".into(), RuleId::from(String::from("b.c"))].into(),
            findings: vec![],
            would_have: None,
            cached: true,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"matched_rules":["a","b.c"],"findings":[],"cached":true}"#
        );
        let back: Explanation = serde_json::from_value(json!({
            "matched_rules": ["a", "b.c"], "findings": [], "cached": true
        }))
        .unwrap();
        assert_eq!(back, e);
        assert_eq!(&e.matched_rules[..], ["a", "b.c"]);
        assert_eq!(e.matched_rules[1], String::from("b.c"));
        assert_eq!(format!("{:?}", e.matched_rules[0]), r#""a""#);
    }
}
