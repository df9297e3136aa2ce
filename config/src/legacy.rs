//! Lexecon 1.x policy format (converted on load); filled in next.
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::policy::PolicyDocument;

pub(crate) fn is_legacy(map: &Map<String, Value>) -> bool {
    !map.contains_key("rules") && (map.contains_key("terms") || map.contains_key("relations"))
}

pub(crate) fn convert(
    file: &str,
    _map: &Map<String, Value>,
) -> Result<PolicyDocument, ConfigError> {
    Err(crate::policy_load::invalid(
        file,
        "",
        "1.x format not yet supported",
    ))
}
