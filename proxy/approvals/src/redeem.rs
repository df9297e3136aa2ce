//! Redeeming an approval: how a retried request's fresh `escalate` decision becomes a permit
//! exactly once, or a deny that says why. Never touches a decision that is not an escalation.

use jiff::Timestamp;
use lexecon_domains::Verdict;
use lexecon_policy_cache::Decision;

use crate::{ApprovalError, ApprovalEvent, ApprovalStore, RequestDigest};

/// What redeeming an approval did to a retried request's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Redemption {
    /// The decision was not `escalate` (a permit or deny stands as decided); nothing was consumed.
    NotApplicable,
    /// The approval was consumed and the escalation became a permit.
    Permitted(ApprovalEvent),
    /// The approval could not be used; the decision became a deny with this reason.
    Refused(ApprovalError),
}

/// Applies a caller's `approval_id` (or `x-lexecon-approval`) to the fresh `decision` of the
/// retried request. Only an `escalate` is affected, so an approval can never override a deny (a
/// policy that now forbids the request wins) and is not used up by a request that is permitted
/// anyway. An escalation whose approval is consumed becomes `permit` (rule `approval:<id>`, the
/// approver named in the reasoning); any failure becomes `deny` with the precise reason, and its
/// compliance mappings `violation_prevented`. Does blocking file I/O on success: async callers run
/// it through [`ApprovalStore::run_blocking`].
pub fn redeem(
    store: &ApprovalStore,
    decision: &mut Decision,
    approval_id: &str,
    digest: &RequestDigest,
    now: Timestamp,
) -> Redemption {
    if decision.decision != Verdict::Escalate {
        return Redemption::NotApplicable;
    }
    let result = store.consume(
        approval_id,
        &decision.actor,
        &decision.action,
        decision.resource.as_deref(),
        digest,
        now,
    );
    decision.rule_id = format!("approval:{approval_id}").into();
    match result {
        Ok(event) => {
            let approver = store
                .get(approval_id, now)
                .ok()
                .and_then(|a| a.decided_by)
                .unwrap_or_else(|| "an approver".to_owned());
            decision.decision = Verdict::Permit;
            decision.reasoning = format!(
                "escalation approved by {approver} (approval {approval_id}): {}",
                decision.reasoning
            )
            .into();
            Redemption::Permitted(event)
        }
        Err(e) => {
            decision.decision = Verdict::Deny;
            decision.reasoning = e.to_string().into();
            decision.compliance_mappings = decision
                .compliance_mappings
                .iter()
                .map(|m| lexecon_domains::ComplianceMapping {
                    status: lexecon_domains::ComplianceStatus::ViolationPrevented,
                    ..m.clone()
                })
                .collect();
            Redemption::Refused(e)
        }
    }
}
