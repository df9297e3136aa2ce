//! What goes into a decision and what comes out: [`DecisionInput`] and [`Decision`].

use lexecon_domains::{ComplianceMapping, Finding, Verdict};
use serde::{Deserialize, Serialize};

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
}

/// The rule (or default) that decided, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// Ids of every policy rule that matched, in document order.
    pub matched_rules: Vec<String>,
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
    pub reasoning: String,
    /// The deciding rule's id, `finding:<code>` for a plugin finding, or `default:<mode>`.
    pub rule_id: String,
    pub policy_version_hash: String,
    pub compliance_mappings: Vec<ComplianceMapping>,
    /// The action type's risk level (1..=5).
    pub risk_level: u8,
    pub requires_human_approval: bool,
    /// Permitted but flagged for after-the-fact review (e.g. break-glass).
    pub review_required: bool,
    pub explanation: Explanation,
    /// RFC 3339 UTC.
    pub timestamp: jiff::Timestamp,
}
