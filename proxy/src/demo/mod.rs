//! The built-in demo: an embedded upstream served inside the same pingora server (a small MCP tool
//! server, an order endpoint, FHIR-style Patient and MedicationRequest endpoints) and the demo
//! configuration embedded in the binary (`deploy/demo.yaml`).
//!
//! The demo upstream is a stand-in for real tool servers and APIs so that `lexecon serve` works with
//! no setup; it performs no real action (nothing is deleted, sent or ordered) and keeps no state.

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

/// The demo configuration, as shipped in `deploy/demo.yaml`.
pub const DEMO_CONFIG: &str = include_str!("demo.yaml");

/// The demo's policy documents, embedded: `(domain, path in demo.yaml, text)`.
pub const DEMO_POLICIES: [(&str, &str, &str); 3] = [
    ("ai", "policies/ai.yaml", include_str!("policies/ai.yaml")),
    (
        "finance",
        "policies/finance.yaml",
        include_str!("policies/finance.yaml"),
    ),
    (
        "healthcare",
        "policies/healthcare.yaml",
        include_str!("policies/healthcare.yaml"),
    ),
];

/// The name the demo configuration is reported under in errors.
pub const DEMO_CONFIG_NAME: &str = "<built-in demo>/deploy/demo.yaml";

/// Parses the embedded demo configuration.
pub fn demo_config() -> Result<lexecon_config::Config, lexecon_config::ConfigError> {
    lexecon_config::Config::from_yaml(DEMO_CONFIG_NAME, DEMO_CONFIG)
}

/// The most request body the demo reads.
const MAX_BODY: usize = 1024 * 1024;

/// The MCP protocol version the demo answers `initialize` with when the client names none.
const MCP_VERSION: &str = "2025-11-25";

/// The embedded demo upstream.
#[derive(Debug, Default)]
pub struct DemoUpstream;

impl DemoUpstream {
    pub fn new() -> Self {
        Self
    }

    /// Answers one request; `body` is the request body.
    pub fn handle(
        &self,
        method: &http::Method,
        path: &str,
        query: Option<&str>,
        decision_id: Option<&str>,
        body: &[u8],
    ) -> (u16, Option<Value>) {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method.as_str(), segments.as_slice()) {
            ("POST", ["mcp"]) => mcp(body),
            ("POST", ["v1", "orders"]) => match parse(body) {
                Ok(order) => (
                    201,
                    Some(json!({
                        "order_id": uuid::Uuid::new_v4().to_string(),
                        "status": "accepted",
                        "order": order,
                        "lexecon_decision_id": decision_id,
                    })),
                ),
                Err(e) => (400, Some(json!({"error": e}))),
            },
            ("DELETE", ["v1", "orders", id]) => (
                200,
                Some(
                    json!({"order_id": id, "status": "cancelled", "lexecon_decision_id": decision_id}),
                ),
            ),
            ("GET", ["fhir", "Consent"]) => (200, Some(consents(query))),
            ("GET", ["fhir", "Patient", id]) => (
                200,
                Some(json!({
                    "resourceType": "Patient",
                    "id": id,
                    "name": [{"family": "Example", "given": ["Demo"]}],
                    "birthDate": "1970-01-01",
                    "meta": {"tag": [{"code": "demo", "display": "synthetic demo record"}]},
                })),
            ),
            ("POST", ["fhir", "MedicationRequest"]) => match parse(body) {
                Ok(mut resource) => {
                    if let Some(obj) = resource.as_object_mut() {
                        obj.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
                        obj.entry("resourceType")
                            .or_insert(json!("MedicationRequest"));
                    }
                    (201, Some(resource))
                }
                Err(e) => (
                    400,
                    Some(
                        json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": e}]}),
                    ),
                ),
            },
            _ => (
                404,
                Some(
                    json!({"error": "not_found", "reason": format!("the demo upstream has no {method} {path}")}),
                ),
            ),
        }
    }
}

/// The demo's `Consent` search: patient 123 has an active consent to access, with one exception
/// — the patient withholds their prescriptions (a nested deny provision for the data class
/// `MedicationRequest`); every other patient has none (so the README tour shows each answer).
fn consents(query: Option<&str>) -> Value {
    let patient = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("patient="));
    let entries = match patient {
        Some("123") => vec![json!({
            "fullUrl": "Consent/consent-123",
            "resource": {
                "resourceType": "Consent",
                "id": "consent-123",
                "status": "active",
                "subject": {"reference": "Patient/123"},
                "provision": {
                    "type": "permit",
                    "period": {"start": "2020-01-01"},
                    "provision": [{
                        "type": "deny",
                        "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "MedicationRequest"}],
                    }],
                },
            },
        })],
        _ => Vec::new(),
    };
    json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries})
}

fn parse(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))
}

fn tools() -> Value {
    let tool = |name: &str, description: &str, props: Value, required: &[&str]| {
        json!({
            "name": name,
            "description": description,
            "inputSchema": {"type": "object", "properties": props, "required": required},
        })
    };
    json!([
        tool(
            "search_docs",
            "Search the documentation",
            json!({"query": {"type": "string"}}),
            &["query"]
        ),
        tool(
            "read_file",
            "Read a file",
            json!({"path": {"type": "string"}}),
            &["path"]
        ),
        tool(
            "delete_file",
            "Delete a file",
            json!({"path": {"type": "string"}}),
            &["path"]
        ),
        tool(
            "send_email",
            "Send an email",
            json!({"to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}}),
            &["to", "subject"],
        ),
    ])
}

fn mcp(body: &[u8]) -> (u16, Option<Value>) {
    let request = match parse(body) {
        Ok(v) => v,
        Err(e) => {
            return (
                400,
                Some(
                    json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": e}}),
                ),
            )
        }
    };
    match request {
        Value::Array(calls) => {
            let answers: Vec<Value> = calls.iter().filter_map(mcp_call).collect();
            if answers.is_empty() {
                (202, None)
            } else {
                (200, Some(Value::Array(answers)))
            }
        }
        call => match mcp_call(&call) {
            Some(answer) => (200, Some(answer)),
            None => (202, None),
        },
    }
}

/// One JSON-RPC call; `None` for notifications.
fn mcp_call(call: &Value) -> Option<Value> {
    let id = call.get("id").cloned()?;
    let method = call.get("method").and_then(Value::as_str).unwrap_or("");
    let params = call.get("params").cloned().unwrap_or(Value::Null);
    let result = match method {
        "initialize" => json!({
            "protocolVersion": params.get("protocolVersion").and_then(Value::as_str).unwrap_or(MCP_VERSION),
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": "lexecon-demo", "version": env!("CARGO_PKG_VERSION")},
        }),
        "ping" => json!({}),
        "tools/list" => json!({"tools": tools()}),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            let known = tools()
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == name));
            if !known {
                return Some(
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": format!("unknown tool {name:?}")}}),
                );
            }
            let args = params.get("arguments").cloned().unwrap_or(json!({}));
            json!({
                "content": [{"type": "text", "text": format!("demo {name} ran with {args}")}],
                "isError": false,
            })
        }
        other => {
            return Some(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("method {other:?} not found")}}),
            );
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn response(status: u16, body: Option<Value>) -> http::Response<Vec<u8>> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let mut resp = http::Response::new(Vec::new());
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    let headers = resp.headers_mut();
    if !bytes.is_empty() {
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(bytes.len()),
    );
    *resp.body_mut() = bytes;
    resp
}

#[async_trait]
impl ServeHttp for DemoUpstream {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return response(413, Some(json!({"error": "body too large"})));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return response(400, Some(json!({"error": e.to_string()}))),
            }
        }
        let req = session.req_header();
        let decision_id = req
            .headers
            .get(crate::headers::DECISION_ID_HEADER)
            .and_then(|v| v.to_str().ok());
        let (status, answer) = self.handle(
            &req.method,
            req.uri.path(),
            req.uri.query(),
            decision_id,
            &body,
        );
        response(status, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, path: &str, body: &str) -> (u16, Value) {
        let m = http::Method::from_bytes(method.as_bytes()).unwrap();
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let (s, v) = DemoUpstream::new().handle(&m, path, query, Some("dec-1"), body.as_bytes());
        (s, v.unwrap_or(Value::Null))
    }

    #[test]
    fn mcp_lists_the_four_demo_tools_and_echoes_calls() {
        let (s, v) = call(
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        );
        assert_eq!(s, 200);
        let names: Vec<&str> = v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["search_docs", "read_file", "delete_file", "send_email"]
        );
        let (_, v) = call(
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"q"}}}"#,
        );
        assert_eq!(v["id"], 2);
        assert_eq!(v["result"]["isError"], false);
        assert!(v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("search_docs"));
    }

    #[test]
    fn mcp_notifications_get_202_and_unknown_methods_an_error() {
        let (s, _) = call(
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        );
        assert_eq!(s, 202);
        let (_, v) = call(
            "POST",
            "/mcp",
            r#"{"jsonrpc":"2.0","id":3,"method":"resources/list"}"#,
        );
        assert_eq!(v["error"]["code"], -32601);
        let (s, v) = call("POST", "/mcp", "{");
        assert_eq!((s, v["error"]["code"].as_i64()), (400, Some(-32700)));
    }

    #[test]
    fn orders_and_fhir_endpoints_answer() {
        let (s, v) = call("POST", "/v1/orders", r#"{"symbol":"ACME","quantity":10}"#);
        assert_eq!(s, 201);
        assert_eq!(v["order"]["symbol"], "ACME");
        assert_eq!(v["lexecon_decision_id"], "dec-1");
        let (s, v) = call("DELETE", "/v1/orders/o-9", "");
        assert_eq!((s, v["status"].as_str()), (200, Some("cancelled")));
        let (s, v) = call("GET", "/fhir/Patient/p-1", "");
        assert_eq!((s, v["id"].as_str()), (200, Some("p-1")));
        let (s, v) = call("POST", "/fhir/MedicationRequest", r#"{"status":"active"}"#);
        assert_eq!(
            (s, v["resourceType"].as_str()),
            (201, Some("MedicationRequest"))
        );
        let (s, _) = call("GET", "/nothing", "");
        assert_eq!(s, 404);
    }

    #[test]
    fn embedded_demo_config_is_valid() {
        let c = demo_config().unwrap();
        assert_eq!(
            c.identity.trusted_actor_header.as_deref(),
            Some("x-agent-id")
        );
        assert!(c.upstreams.values().any(|u| u.embedded));
        // Every policy the demo names is embedded, under the same path.
        assert_eq!(c.policies.len(), DEMO_POLICIES.len());
        for (domain, path, text) in DEMO_POLICIES {
            assert_eq!(c.policies[domain], std::path::PathBuf::from(path));
            let doc: lexecon_config::PolicyDocument = serde_norway::from_str(text).unwrap();
            assert_eq!(doc.domain.as_str(), domain);
        }
    }
}
