//! Classifiers: turn one HTTP request (method, path, headers, and the body when the route needs it)
//! into the actor-independent parts of a decision input — action, resource, context — per the route's
//! [`ClassifierConfig`]. Pure functions: no I/O, no decisions.

pub mod fhir;
pub mod mcp;
mod rest;
mod value;

use lexecon_config::classifier::ClassifierConfig;

/// The parts of an HTTP request a classifier reads.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
}

/// One decidable call. A plain HTTP request yields one; an MCP JSON-RPC batch yields one per element.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifiedItem {
    pub action: String,
    pub resource: Option<String>,
    pub context: serde_json::Map<String, serde_json::Value>,
    /// The JSON-RPC id of an MCP call (absent for notifications and non-MCP requests).
    pub jsonrpc_id: Option<serde_json::Value>,
    /// The JSON-RPC method (`tools/call`, `initialize`, …) for MCP.
    pub rpc_method: Option<String>,
    /// The tool name of an MCP `tools/call`.
    pub tool: Option<String>,
}

/// The result of classifying a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub items: Vec<ClassifiedItem>,
    /// True when the body was a JSON-RPC batch (answers must be a batch too).
    pub batch: bool,
}

/// Why a request could not be classified; the proxy answers 400 with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("header {header} says {header_value:?} but the body says {body_value:?}")]
    HeaderMismatch {
        header: &'static str,
        header_value: String,
        body_value: String,
    },
    #[error("no operation matches {method} {path}")]
    NoOperation { method: String, path: String },
}

/// Whether the classifier needs the request body before deciding.
pub fn needs_body(config: &ClassifierConfig) -> bool {
    match config {
        ClassifierConfig::Mcp(_) => true,
        ClassifierConfig::Rest(rest) => rest.uses_body(),
        ClassifierConfig::Fhir(fhir) => fhir.uses_body(),
        ClassifierConfig::None { .. } => false,
    }
}

/// Classifies one request. `body` is `Some` when [`needs_body`] said so.
pub fn classify(
    config: &ClassifierConfig,
    parts: &RequestParts<'_>,
    body: Option<&[u8]>,
) -> Result<Classified, ClassifyError> {
    match config {
        ClassifierConfig::Mcp(mcp) => mcp::classify(mcp, parts, body),
        ClassifierConfig::None { action } => Ok(Classified {
            items: vec![ClassifiedItem {
                action: action
                    .clone()
                    .unwrap_or_else(|| "axn_http_request".to_string()),
                resource: None,
                context: serde_json::Map::new(),
                jsonrpc_id: None,
                rpc_method: None,
                tool: None,
            }],
            batch: false,
        }),
        ClassifierConfig::Rest(rest) => rest::classify(rest, parts, body),
        ClassifierConfig::Fhir(fhir) => fhir::classify(fhir, parts, body),
    }
}
