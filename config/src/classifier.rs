//! How a route turns an HTTP request into actor, action, resource and context: the classifier
//! configuration (`mcp`, `rest`, `fhir`, `none`). The classifiers themselves live in the proxy.

use serde::{Deserialize, Serialize};

/// A route's classifier, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClassifierConfig {
    /// MCP over Streamable HTTP (JSON-RPC 2.0).
    Mcp(McpClassifier),
    /// REST: method + path template → action; resource and context from the request.
    Rest(RestClassifier),
    /// FHIR REST interactions.
    Fhir(FhirClassifier),
    /// No classification: every request is one fixed action (`axn_http_request` unless set).
    None {
        #[serde(default)]
        action: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpClassifier {}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestClassifier {}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirClassifier {}
