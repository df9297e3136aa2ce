//! Classifiers: turn one HTTP request (method, path, headers, and the body when the route needs it)
//! into the actor-independent parts of a decision input — action, resource, context — per the route's
//! [`ClassifierConfig`]. Pure functions: no I/O, no decisions. They close by default: what an
//! upstream could read differently (an unknown FHIR operation, a query parameter they read sent
//! twice, a JSON key sent twice — `json` parses bodies strictly —, a look-alike MCP tool name) is
//! refused, never guessed at (docs/classifiers.md, "Closed by default").
//!
//! One module per kind: [`mcp`] (JSON-RPC over Streamable HTTP, plus the MCP answer builders the
//! server sends), `rest` (method + path template), [`fhir`] (FHIR interactions, plus SMART scope
//! checks). `value` evaluates the configured value sources shared by REST and FHIR. [`target`]
//! checks the request target and [`head`] the framing and headers before any route or classifier
//! reads them.

pub mod fhir;
pub mod head;
mod json;
pub mod mcp;
mod rest;
pub mod target;
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

impl<'a> RequestParts<'a> {
    /// The path without a query, and the query (`query`, else one carried in `path`); an empty
    /// query is none.
    pub fn path_and_query(&self) -> (&'a str, Option<&'a str>) {
        let (path, query_in_path) = match self.path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (self.path, None),
        };
        (path, self.query.or(query_in_path).filter(|q| !q.is_empty()))
    }
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
    #[error(
        "FHIR operation {operation} is not one Lexecon knows, so it cannot tell what it does; \
         map it in the route's classifier actions (key {key:?}, e.g. \"*.{operation}\": <action>)"
    )]
    UnknownOperation { operation: String, key: String },
    #[error(
        "query parameter {name:?} appears more than once; Lexecon reads it, and upstreams \
         disagree on which copy counts (the first or the last): send it once"
    )]
    RepeatedParameter { name: String },
    #[error(
        "the JSON body has the key {key:?} twice in one object (line {line}, column {column}); \
         upstreams disagree on which copy counts (Python and Go take the last): send each key once"
    )]
    DuplicateKey {
        key: String,
        line: usize,
        column: usize,
    },
    #[error(
        "tool name {name:?} is not an MCP tool name (1-128 characters of A-Z a-z 0-9 _ - .); \
         a look-alike of a real name could pass a rule written for it"
    )]
    InvalidToolName { name: String },
    #[error(
        "parameter {name:?} names more than one patient ({value:?}); Lexecon decides one patient \
         per request: send one request per patient"
    )]
    SeveralPatients { name: String, value: String },
    #[error(
        "parameter {name:?} has {value:?}, which is not a patient Lexecon can read (a FHIR id, or \
         Patient/<id>); the upstream could serve another patient than the one decided"
    )]
    UnreadablePatient { name: String, value: String },
    #[error(
        "search parameter {name:?} selects patients by a modifier or a chain Lexecon does not \
         read, so it cannot tell which patient the request is about; name the patient with \
         patient=<id> (or subject=Patient/<id>)"
    )]
    PatientParameterForm { name: String },
    #[error("FHIR search by POST: {reason}")]
    SearchForm { reason: String },
}

/// Whether the classifier needs the request body before deciding: always for MCP; for REST and
/// FHIR only when a configured resource or context field reads `body.…` (the answer does not
/// change per request, so the server may cache it per route).
pub fn needs_body(config: &ClassifierConfig) -> bool {
    match config {
        ClassifierConfig::Mcp(_) => true,
        ClassifierConfig::Rest(rest) => rest.uses_body(),
        ClassifierConfig::Fhir(fhir) => fhir.uses_body(),
        ClassifierConfig::None { .. } => false,
    }
}

/// Whether this one request's body must be read before deciding although [`needs_body`] says the
/// route's classifier does not read bodies: a FHIR `POST [base]/[type]/_search`, whose search
/// parameters are in its form body. Cheap: looks at the method and the path only.
pub fn needs_body_of(config: &ClassifierConfig, method: &str, path: &str) -> bool {
    match config {
        ClassifierConfig::Fhir(fhir) => fhir::is_post_search(fhir, method, path),
        _ => false,
    }
}

/// Classifies one request. `body` is `Some` when [`needs_body`] or [`needs_body_of`] said so.
///
/// ```
/// use lexecon_classify::{classify, needs_body, RequestParts};
/// use lexecon_config::classifier::ClassifierConfig;
///
/// let config: ClassifierConfig =
///     serde_norway::from_str("kind: mcp\ntools: {\"delete_*\": axn_delete_data}").unwrap();
/// assert!(needs_body(&config));
/// let headers = http::HeaderMap::new();
/// let parts = RequestParts { method: "POST", path: "/mcp", query: None, headers: &headers };
/// let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"a.txt"}}}"#;
/// let classified = classify(&config, &parts, Some(body)).unwrap();
/// assert_eq!(classified.items[0].action, "axn_delete_data");
/// assert_eq!(classified.items[0].resource.as_deref(), Some("res_api:delete_file"));
/// assert_eq!(classified.items[0].context["args"]["path"], "a.txt");
/// ```
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> ClassifierConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn body_is_needed_for_mcp_and_for_operations_that_read_it() {
        assert!(needs_body(&config("kind: mcp")));
        assert!(!needs_body(&config("kind: fhir")));
        assert!(!needs_body(&config("kind: none")));
        assert!(!needs_body(&config(
            "kind: rest\noperations: [{method: GET, path: \"/v1/orders/{id}\", action: axn_view_order}]"
        )));
        assert!(needs_body(&config(
            "kind: rest\noperations: [{method: POST, path: /v1/orders, action: axn_place_order, resource: \"res_security:{body./symbol}\"}]"
        )));
    }

    #[test]
    fn none_classifier_yields_its_fixed_action() {
        let headers = http::HeaderMap::new();
        let parts = RequestParts {
            method: "GET",
            path: "/anything",
            query: None,
            headers: &headers,
        };
        let fixed = classify(&config("kind: none\naction: axn_browse"), &parts, None).unwrap();
        assert_eq!(fixed.items[0].action, "axn_browse");
        let default = classify(&config("kind: none"), &parts, None).unwrap();
        assert_eq!(default.items[0].action, "axn_http_request");
    }

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        fn any_config() -> Vec<ClassifierConfig> {
            vec![
                config("kind: mcp\ntools: {\"delete_*\": axn_delete_data}\nresource_from_argument: {\"*\": {argument: /a/0, type: res_x}}"),
                config("kind: rest\noperations: [{method: POST, path: \"/v1/{a}/x/{b}\", action: axn_x, resource: \"res_x:{a}{body./k}\", context: {v: \"div(body./q, query.p)\", h: header.x-h}}]"),
                config("kind: fhir\ncontext: {m: body./x}"),
                config("kind: fhir\nbase_path: /fhir"),
            ]
        }

        proptest! {
            #[test]
            fn classifiers_return_errors_not_panics(
                method in prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "get"]),
                path in "(/[a-zA-Z0-9_$%.~-]{0,6}){0,5}",
                query in proptest::option::of("[a-z_=&%+0-9A-F]{0,20}"),
                body in proptest::collection::vec(any::<u8>(), 0..64),
                json_body in r#"[\[\]{}":,0-9a-z/._ -]{0,60}"#,
            ) {
                let headers = http::HeaderMap::new();
                let parts = RequestParts { method, path: &path, query: query.as_deref(), headers: &headers };
                for config in any_config() {
                    let _ = classify(&config, &parts, Some(&body));
                    let _ = classify(&config, &parts, Some(json_body.as_bytes()));
                    let _ = classify(&config, &parts, None);
                }
            }

            #[test]
            fn tools_list_filter_returns_none_or_bytes_not_panics(
                body in r#"(data: |event: |\r?\n|[\[\]{}":,a-z_ ]){0,40}"#,
                sse in any::<bool>(),
            ) {
                let content_type = if sse { "text/event-stream" } else { "application/json" };
                let _ = mcp::filter_tools_list(body.as_bytes(), content_type, &|name| name.len() % 2 == 0);
            }
        }
    }
}
