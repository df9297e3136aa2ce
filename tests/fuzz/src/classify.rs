//! The classifier targets: [`lexecon_classify::classify`] on any request (see [`crate::request`])
//! against fixed, realistic configurations of each kind — the classifiers of
//! `deploy/examples/*.yaml` and a richer one per kind that turns on what those leave off (batches,
//! argument resources, computed fields, FHIR context from the body) — plus the cheap helpers the
//! server runs on a classified request: MCP denial answers and `tools/list` filtering, FHIR SMART
//! scope checks.
//!
//! Besides "never panics", each target asserts the documented properties of an accepted request
//! (docs/classifiers.md): an MCP batch only where the route allows batches and never above its
//! `batch_limit`, `mcp_session` never taken from the arguments, a routing header never disagreeing
//! with the body, a denial answer for exactly the calls that can be answered; a REST request gets
//! one configured operation's action; a FHIR request gets a known interaction, and SMART scopes
//! grant monotonically, `patient/` scopes only for the launch patient.

use std::sync::LazyLock;

use lexecon_classify::fhir::{scope_grant, scope_permits_item, Interaction, ScopeGrant};
use lexecon_classify::mcp::{
    denial_answer, denial_answer_at, filter_tools_list, tool_action, tool_resource, DenialInfo,
    DenialStyle,
};
use lexecon_classify::{
    classify, needs_body, needs_body_of, Classified, ClassifiedItem, RequestParts,
};
use lexecon_config::classifier::{ClassifierConfig, FhirClassifier, McpClassifier};
use serde_json::Value;

use crate::request::{self, FuzzRequest};

/// The classifier of `deploy/examples/ai-agent-mcp.yaml`: batches off (the default).
pub const MCP_AGENT: &str = r#"
kind: mcp
tools: {"delete_*": axn_delete_data, "send_*": axn_send_message, "read_*": axn_read_data, "search_*": axn_read_data, "run_*": axn_execute_code}
denial: tool_error
filter_tools_list: true
"#;

/// Everything `deploy/` leaves at its default turned on: batches of up to 4, argument resources
/// (a name and two pointers), method globs, JSON-RPC error denials.
pub const MCP_RICH: &str = r#"
kind: mcp
tools: {"delete_*": axn_delete_data, "read_*": axn_read_data, "[a-c]?_file": axn_write_data}
default_tool_action: axn_execute_tool
read_action: axn_read_data
methods: {"prompts/get": axn_use_prompt, "sampling/*": axn_sample}
resource_from_argument:
  "read_*": {argument: path, type: res_file}
  "delete_*": {argument: /target/file, type: res_file}
  "send_*": {argument: /to/0, type: res_contact}
resource_type: res_api
denial: jsonrpc_error
filter_tools_list: true
batch_limit: 4
"#;

/// The classifier of `deploy/examples/trading-gateway.yaml`, plus an operation that reads every
/// kind of value source and each arithmetic function.
pub const REST_TRADING: &str = r#"
kind: rest
operations:
  - method: POST
    path: /v1/orders
    action: axn_place_order
    resource: "res_security:{body./symbol}"
    context:
      symbol: body./symbol
      side: body./side
      quantity: body./quantity
      limit_price: body./limit_price
      order_value: "mul(body./quantity, body./limit_price)"
      venue: header.x-venue
  - method: PUT
    path: "/v1/orders/{id}"
    action: axn_modify_order
    resource: "res_order:{id}"
    context:
      quantity: body./quantity
      limit_price: body./limit_price
      order_value: "mul(body./quantity, body./limit_price)"
  - method: DELETE
    path: "/v1/orders/{id}"
    action: axn_cancel_order
    resource: "res_order:{id}"
  - method: GET
    path: "/v1/accounts/{account}/orders/{id}/"
    action: axn_view_order
    resource: "res_order:{account}/{id}"
    context:
      reason: query.reason
      account: path.account
      fee: "sub(query.amount, 0.5)"
      ratio: "div(query.a, query.b)"
      total: "add(query.a, body./x, 2)"
      agent: header.x-agent-id
"#;

/// The classifier of `deploy/examples/ehr-fhir.yaml`, plus action globs.
pub const FHIR_EHR: &str = r#"
kind: fhir
base_path: /fhir
consent_header: x-patient-consent
purpose_of_use_header: x-purpose-of-use
break_glass_header: x-break-glass
physician_header: x-physician-id
actions: {"Observation.create": axn_record_observation, "Patient.$everything": axn_export_record, "_system.batch": axn_update_phi}
"#;

/// docs/classifiers.md's example: a context field read from the (then always required) body.
pub const FHIR_BODY: &str = r#"
kind: fhir
base_path: /fhir
phi_types: [Patient, Observation, MedicationRequest]
context: {medication: body./medicationCodeableConcept/text}
"#;

/// A FHIR classifier without a base path (the base is everything before the first resource type).
pub const FHIR_BARE: &str = "kind: fhir\n";

/// A configuration of this file, parsed once.
pub fn config(yaml: &str) -> ClassifierConfig {
    match serde_norway::from_str(yaml) {
        Ok(config) => config,
        Err(e) => panic!("fixed classifier configuration does not parse: {e}\n{yaml}"),
    }
}

fn mcp(yaml: &str) -> (ClassifierConfig, McpClassifier) {
    match config(yaml) {
        ClassifierConfig::Mcp(mcp) => (ClassifierConfig::Mcp(mcp.clone()), mcp),
        other => panic!("not an MCP classifier: {other:?}"),
    }
}

fn fhir(yaml: &str) -> (ClassifierConfig, FhirClassifier) {
    match config(yaml) {
        ClassifierConfig::Fhir(fhir) => (ClassifierConfig::Fhir(fhir.clone()), fhir),
        other => panic!("not a FHIR classifier: {other:?}"),
    }
}

static MCP_CONFIGS: LazyLock<[(ClassifierConfig, McpClassifier); 2]> =
    LazyLock::new(|| [mcp(MCP_AGENT), mcp(MCP_RICH)]);
static REST_CONFIG: LazyLock<ClassifierConfig> = LazyLock::new(|| config(REST_TRADING));
static FHIR_CONFIGS: LazyLock<[(ClassifierConfig, FhirClassifier); 3]> =
    LazyLock::new(|| [fhir(FHIR_EHR), fhir(FHIR_BODY), fhir(FHIR_BARE)]);

/// Classifies `request` as the server does: the body only when the classifier needs it.
fn run(config: &ClassifierConfig, request: &FuzzRequest) -> Option<Classified> {
    let (path, query) = request.path_and_query();
    let parts = RequestParts {
        method: &request.method,
        path,
        query,
        headers: &request.headers,
    };
    let body = (needs_body(config) || needs_body_of(config, &request.method, path))
        .then_some(request.body.as_slice());
    let classified = classify(config, &parts, body).ok()?;
    assert!(
        !classified.items.is_empty(),
        "an accepted request yields at least one call"
    );
    Some(classified)
}

const DENY: DenialInfo<'static> = DenialInfo {
    decision: "deny",
    reason: "denied by the fuzz harness",
    rule_id: Some("fuzz-rule"),
    decision_id: "dec-fuzz",
};

/// Fuzz target `classify_mcp`.
pub fn classify_mcp(data: &[u8]) {
    let request = request::parse(data);
    for (config, mcp) in MCP_CONFIGS.iter() {
        if let Some(classified) = run(config, &request) {
            check_mcp(mcp, &request, &classified);
        }
        check_tools_list(mcp, &request);
    }
}

fn check_mcp(config: &McpClassifier, request: &FuzzRequest, classified: &Classified) {
    if classified.batch {
        assert!(
            config.batch_limit > 0,
            "a batch was accepted on a route with batches off"
        );
        assert!(
            classified.items.len() <= config.batch_limit,
            "a batch of {} calls passed batch_limit {}",
            classified.items.len(),
            config.batch_limit
        );
    } else {
        assert_eq!(classified.items.len(), 1, "one message, one call");
    }
    let session = request.headers.contains_key("mcp-session-id");
    let mut methods = request.headers.get_all("mcp-method").iter();
    let method_header = match (methods.next(), methods.next()) {
        (Some(one), None) => one.to_str().ok().map(str::trim),
        _ => None,
    };
    for item in &classified.items {
        assert_eq!(
            item.context.get("mcp_session"),
            Some(&Value::Bool(session)),
            "mcp_session must say whether Mcp-Session-Id was sent, whatever the arguments say"
        );
        assert!(item.resource.is_some(), "every MCP call has a resource");
        if let (Some(header), Some(method)) = (method_header, &item.rpc_method) {
            assert_eq!(header, method, "Mcp-Method disagrees with the body");
        }
        if let Some(tool) = &item.tool {
            assert_eq!(item.rpc_method.as_deref(), Some("tools/call"));
            assert!(item.jsonrpc_id.is_some(), "a tools/call is a request");
            assert_eq!(item.action, tool_action(config, tool));
            assert_eq!(
                item.context.get("mcp_tool").and_then(Value::as_str),
                Some(tool.as_str())
            );
            let _ = tool_resource(config, tool);
        }
    }
    check_denials(classified);
}

/// The calls a denial answer names: those with a JSON-RPC id and method.
fn answerable(classified: &Classified) -> Vec<&ClassifiedItem> {
    classified
        .items
        .iter()
        .filter(|i| i.jsonrpc_id.is_some() && i.rpc_method.is_some())
        .collect()
}

fn check_denials(classified: &Classified) {
    let answerable = answerable(classified);
    for style in [DenialStyle::ToolError, DenialStyle::JsonrpcError] {
        let all_denied = vec![Some(DENY); classified.items.len()];
        let answers = [
            denial_answer(style, classified, &all_denied),
            denial_answer_at(style, classified, 0, &DENY),
            denial_answer_at(style, classified, classified.items.len() - 1, &DENY),
        ];
        for answer in answers {
            let Some(bytes) = answer else {
                assert!(
                    answerable.is_empty(),
                    "no denial answer although {} calls can be answered",
                    answerable.len()
                );
                continue;
            };
            let value: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => panic!("denial answer is not JSON ({e}): {bytes:?}"),
            };
            let answers: Vec<&Value> = match (&value, classified.batch) {
                (Value::Array(list), true) => list.iter().collect(),
                (Value::Object(_), false) => vec![&value],
                _ => panic!(
                    "denial answer has the wrong shape for batch={}: {value}",
                    classified.batch
                ),
            };
            assert_eq!(answers.len(), answerable.len(), "{value}");
            for (answer, item) in answers.iter().zip(&answerable) {
                match (answer.get("id"), item.jsonrpc_id.as_ref()) {
                    // A float id is compared as a float only: this build's serde_json parses
                    // without `float_roundtrip`, so reading the answer may move its last digit.
                    (Some(Value::Number(got)), Some(Value::Number(id))) if id.is_f64() => {
                        assert!(got.is_f64(), "{value}");
                    }
                    (got, id) => assert_eq!(got, id, "{value}"),
                }
                assert_eq!(answer.get("jsonrpc"), Some(&Value::from("2.0")));
                assert!(
                    answer.get("result").is_some() != answer.get("error").is_some(),
                    "a JSON-RPC answer has a result or an error: {answer}"
                );
            }
        }
    }
}

/// The body as a server's `tools/list` answer, filtered as for an actor who may not delete.
fn check_tools_list(config: &McpClassifier, request: &FuzzRequest) {
    let allowed = |tool: &str| tool_action(config, tool) != "axn_delete_data";
    let mut content_types = vec!["application/json", "text/event-stream"];
    content_types.extend(request.header("content-type"));
    for content_type in content_types {
        let Some(filtered) = filter_tools_list(&request.body, content_type, &allowed) else {
            continue;
        };
        if content_type == "application/json" {
            let value: Value = match serde_json::from_slice(&filtered) {
                Ok(v) => v,
                Err(e) => panic!("filtered tools/list is not JSON ({e})"),
            };
            let responses = match &value {
                Value::Array(list) => list.iter().collect(),
                other => vec![other],
            };
            for response in responses {
                let tools = response
                    .get("result")
                    .and_then(|r| r.get("tools"))
                    .and_then(Value::as_array);
                for tool in tools.into_iter().flatten() {
                    let name = tool.get("name").and_then(Value::as_str);
                    assert!(
                        name.is_some_and(allowed),
                        "a tool the actor may not call is still listed: {tool}"
                    );
                }
            }
        }
    }
}

/// Fuzz target `classify_rest`.
pub fn classify_rest(data: &[u8]) {
    let request = request::parse(data);
    let Some(classified) = run(&REST_CONFIG, &request) else {
        return;
    };
    let ClassifierConfig::Rest(rest) = &*REST_CONFIG else {
        return;
    };
    assert!(!classified.batch);
    assert_eq!(classified.items.len(), 1, "one REST request, one call");
    let item = &classified.items[0];
    let operation = rest
        .operations
        .iter()
        .find(|op| op.method == request.method && op.action == item.action);
    assert!(
        operation.is_some(),
        "action {} is no operation's for {}",
        item.action,
        request.method
    );
    if let Some(op) = operation {
        assert_eq!(op.resource.is_some(), item.resource.is_some());
    }
    for (name, value) in &item.context {
        assert!(
            rest.operations
                .iter()
                .any(|op| op.context.contains_key(name)),
            "context field {name} = {value} is not configured"
        );
    }
}

/// Fuzz target `classify_fhir`.
pub fn classify_fhir(data: &[u8]) {
    let request = request::parse(data);
    // Scopes as a token would carry them: every `x-fuzz-scope` header, space-separated.
    let extra: Vec<&str> = request
        .headers
        .get_all("x-fuzz-scope")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for (config, _) in FHIR_CONFIGS.iter() {
        if let Some(classified) = run(config, &request) {
            assert!(!classified.batch);
            assert_eq!(classified.items.len(), 1, "one FHIR request, one call");
            check_smart(&classified.items[0], &extra);
        }
    }
}

fn rank(grant: ScopeGrant) -> u8 {
    match grant {
        ScopeGrant::Denied => 0,
        ScopeGrant::LaunchPatientOnly => 1,
        ScopeGrant::Granted => 2,
    }
}

fn check_smart(item: &ClassifiedItem, extra: &[&str]) {
    let code = item.context.get("interaction").and_then(Value::as_str);
    let Some(interaction) = code.and_then(Interaction::from_code) else {
        panic!(
            "a FHIR call without a known interaction: {:?}",
            item.context
        );
    };
    let capabilities = interaction == Interaction::Capabilities;
    let resource_type = item
        .context
        .get("resource_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let patient = item.context.get("patient_id").and_then(Value::as_str);

    assert!(
        scope_permits_item(&["system/*.*"], item, None),
        "full system access must grant {code:?}"
    );
    assert_eq!(
        scope_permits_item(&[], item, None),
        capabilities,
        "no scope grants only capabilities"
    );
    // `patient/` scopes hold the request to the token's launch patient.
    let patient_scopes = ["launch/patient patient/*.*"];
    assert_eq!(
        scope_permits_item(&patient_scopes, item, Some("launch-patient-zz")),
        capabilities || patient == Some("launch-patient-zz"),
        "patient scopes granted {code:?} on patient {patient:?}"
    );
    if let Some(patient) = patient {
        assert!(scope_permits_item(&patient_scopes, item, Some(patient)));
    }
    // Arbitrary scopes: never panic, and more scopes never grant less.
    let grant = scope_grant(extra, resource_type, interaction);
    let mut more = extra.to_vec();
    more.push("user/Observation.rs");
    assert!(rank(scope_grant(&more, resource_type, interaction)) >= rank(grant));
    more.push("system/*.cruds");
    assert_eq!(
        scope_grant(&more, resource_type, interaction),
        ScopeGrant::Granted
    );
    let _ = scope_permits_item(extra, item, patient);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_configurations_are_valid() {
        for yaml in [
            MCP_AGENT,
            MCP_RICH,
            REST_TRADING,
            FHIR_EHR,
            FHIR_BODY,
            FHIR_BARE,
        ] {
            let errors = config(yaml).validate("fuzz.yaml", "classifier");
            assert!(errors.is_empty(), "{yaml}: {errors:?}");
        }
    }

    #[test]
    fn a_real_request_of_each_kind_is_classified_and_checked() {
        let mcp = b"POST /mcp\ncontent-type: application/json\nmcp-method: tools/call\nmcp-session-id: s1\n\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"read_file\",\"arguments\":{\"path\":\"a.txt\",\"mcp_session\":false}}}";
        let request = request::parse(mcp);
        for (config, mcp) in MCP_CONFIGS.iter() {
            let classified = run(config, &request).unwrap();
            check_mcp(mcp, &request, &classified);
        }
        let rest = b"POST /v1/orders\nx-venue: XNYS\n\n{\"symbol\":\"AAPL\",\"quantity\":10,\"limit_price\":2.5}";
        let classified = run(&REST_CONFIG, &request::parse(rest)).unwrap();
        assert_eq!(classified.items[0].context["order_value"], 25.0);
        classify_rest(rest);
        let fhir =
            b"GET /fhir/Patient/123/Observation?code=x\nx-fuzz-scope: patient/Observation.rs\n\n";
        let classified = run(&FHIR_CONFIGS[0].0, &request::parse(fhir)).unwrap();
        check_smart(&classified.items[0], &["patient/Observation.rs"]);
        classify_fhir(fhir);
    }
}
