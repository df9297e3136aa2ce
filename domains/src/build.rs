//! Constructors the built-in Rust plugins use to declare their types tersely. Load-time only; never
//! used on a request path and never exposed outside the crate.

use std::collections::BTreeMap;

use crate::error::DomainError;
use crate::model::{
    ActionCategory, ActionType, ActorCategory, ActorType, ResourceType, RiskLevel, RiskModel,
    Sensitivity,
};

pub(crate) fn actor(
    type_id: &str,
    category: ActorCategory,
    label: &str,
    description: &str,
) -> ActorType {
    ActorType {
        type_id: type_id.into(),
        category,
        label: label.into(),
        description: description.into(),
        metadata: BTreeMap::new(),
    }
}

pub(crate) fn action(
    type_id: &str,
    category: ActionCategory,
    label: &str,
    description: &str,
    risk: u8,
    requires_human_approval: bool,
) -> Result<ActionType, DomainError> {
    Ok(ActionType {
        type_id: type_id.into(),
        category,
        label: label.into(),
        description: description.into(),
        risk_level: RiskLevel::new(risk)?,
        requires_human_approval,
        metadata: BTreeMap::new(),
    })
}

pub(crate) fn resource(
    type_id: &str,
    category: &str,
    label: &str,
    description: &str,
    sensitivity: Sensitivity,
) -> ResourceType {
    ResourceType {
        type_id: type_id.into(),
        category: category.into(),
        label: label.into(),
        description: description.into(),
        sensitivity,
        metadata: BTreeMap::new(),
    }
}

/// The generic action every built-in domain declares, used by routes that do not classify.
pub(crate) fn http_request_action() -> Result<ActionType, DomainError> {
    action(
        "axn_http_request",
        ActionCategory::Execute,
        "HTTP Request",
        "An unclassified HTTP request forwarded by the proxy",
        2,
        false,
    )
}

pub(crate) fn risk_model(id: &str, description: &str, factors: &[(&str, f64)]) -> RiskModel {
    RiskModel {
        id: id.into(),
        description: description.into(),
        factors: factors.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
    }
}
