//! Compliance frameworks as data: each framework's real control references, and the default mapping
//! from a decision to the controls it evidences.

use crate::model::DomainConfig;
use crate::plugin::{ComplianceMapping, ComplianceStatus, DecisionOutcome, Verdict};
use crate::request::Request;

/// One mapping per framework of the domain; placeholder until the control table lands.
pub fn default_mappings(
    config: &DomainConfig,
    _request: &Request,
    outcome: &DecisionOutcome<'_>,
) -> Vec<ComplianceMapping> {
    let status = match outcome.verdict {
        Verdict::Permit => ComplianceStatus::Compliant,
        Verdict::Escalate => ComplianceStatus::ReviewRequired,
        Verdict::Deny => ComplianceStatus::ViolationPrevented,
    };
    config
        .compliance_frameworks
        .iter()
        .map(|f| ComplianceMapping {
            framework: f.clone(),
            controls: Vec::new(),
            status,
        })
        .collect()
}
