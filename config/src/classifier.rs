//! How a route turns an HTTP request into actor, action, resource and context: the classifier
//! configuration (`mcp`, `rest`, `fhir`, `none`). The classifiers themselves live in the proxy.
//!
//! Everything a classifier needs per request — globs, path templates, JSON pointers, computed
//! expressions — is parsed once, when the configuration is deserialized, into a [`Checked`] value
//! that keeps both the source text and the compiled form. Deserializing never fails on a bad
//! pattern: [`ClassifierConfig::validate`] reports every bad one with its location, as a compiler
//! does, and a pattern that did not compile never matches. This module must never do I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Located;

mod compiled;

use compiled::is_header_name;
pub use compiled::{
    ArgumentPath, Checked, Compile, Func, Glob, JsonPointer, OrderedMap, PathTemplate,
    ResourceTemplate, Segment, TemplatePart, ValueExpr,
};

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

impl ClassifierConfig {
    /// Every problem in this classifier, located under `path` (e.g. `routes[2].classifier`) in
    /// `file`. Empty when the classifier is usable.
    pub fn validate(&self, file: &str, path: &str) -> Vec<Located> {
        let mut errors = Errors {
            file,
            out: Vec::new(),
        };
        match self {
            ClassifierConfig::Mcp(mcp) => mcp.check(&mut errors, path),
            ClassifierConfig::Rest(rest) => rest.check(&mut errors, path),
            ClassifierConfig::Fhir(fhir) => fhir.check(&mut errors, path),
            ClassifierConfig::None { action } => {
                if let Some(action) = action {
                    check_type_id(&mut errors, &join(path, "action"), action, "axn_");
                }
            }
        }
        errors.out
    }
}

// ---------------------------------------------------------------------------------------------
// MCP
// ---------------------------------------------------------------------------------------------

/// How a denied MCP call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialStyle {
    /// A normal JSON-RPC result with `isError: true` and a text the model can act on (for
    /// `tools/call`; other methods get a JSON-RPC error, as a tool result would not fit them).
    #[default]
    ToolError,
    /// A JSON-RPC error object (code -32001, `data` with decision id, reason, rule).
    JsonrpcError,
}

/// MCP over Streamable HTTP: JSON-RPC 2.0, protocol generations 2025-11-25 and 2026-07-28.
///
/// ```yaml
/// kind: mcp
/// tools: {"delete_*": axn_delete_data, "read_*": axn_read_data}
/// resource_from_argument: {"read_*": {argument: path, type: res_file}}
/// denial: tool_error
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpClassifier {
    /// Tool-name glob → action, first match wins.
    #[serde(default)]
    pub tools: OrderedMap<Checked<Glob>, String>,
    /// Action of a `tools/call` no glob matches.
    #[serde(default = "default_tool_action")]
    pub default_tool_action: String,
    /// Action of `initialize`, `ping`, the `*/list` methods, reads and notifications.
    #[serde(default = "default_read_action")]
    pub read_action: String,
    /// JSON-RPC method glob → action for methods other than `tools/call` (first match wins;
    /// checked before the built-in read methods). Methods neither here nor built in get
    /// `default_tool_action`.
    #[serde(default)]
    pub methods: OrderedMap<Checked<Glob>, String>,
    /// Tool-name glob → the argument that names the resource (first match wins).
    #[serde(default)]
    pub resource_from_argument: OrderedMap<Checked<Glob>, ArgumentResource>,
    /// Resource type of tools (`res_api:<tool>`) and of protocol methods (`res_api:mcp`).
    #[serde(default = "default_mcp_resource_type")]
    pub resource_type: String,
    /// How denials are answered.
    #[serde(default)]
    pub denial: DenialStyle,
    /// Remove tools the actor may never call from `tools/list` results.
    #[serde(default)]
    pub filter_tools_list: bool,
    /// Most calls in one JSON-RPC batch; 0 (the default) refuses batches: MCP dropped them in
    /// protocol 2025-06-18, and a batch turns one request into many decisions. When on, every call
    /// of a batch counts against the route's rate limit.
    #[serde(default)]
    pub batch_limit: usize,
    /// Tool pinning: only tools whose definition (name, description, input schema) matches the
    /// approved one are listed and callable (docs/classifiers.md, "Tool pinning").
    #[serde(default)]
    pub pin_tools: Option<PinTools>,
}

/// `pin_tools:` of an MCP route.
///
/// ```yaml
/// pin_tools: {file: pins/tools.json, trust_on_first_use: false, on_change: deny}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinTools {
    /// The pin file (JSON: tool name → approved digest); relative to the configuration file.
    pub file: std::path::PathBuf,
    /// Pin a tool the first time a `tools/list` shows it (and write it to the file) instead of
    /// hiding it as not approved.
    #[serde(default)]
    pub trust_on_first_use: bool,
    /// What happens to a call of a tool whose definition changed since it was approved.
    #[serde(default)]
    pub on_change: PinChange,
}

/// How a call of a changed (or unpinned) tool is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinChange {
    /// Refused before the policy is asked.
    #[default]
    Deny,
    /// Decided by the policy; a permit becomes an escalation (a human approves the call).
    Escalate,
}

impl Default for McpClassifier {
    fn default() -> Self {
        Self {
            tools: OrderedMap::default(),
            default_tool_action: default_tool_action(),
            read_action: default_read_action(),
            methods: OrderedMap::default(),
            resource_from_argument: OrderedMap::default(),
            resource_type: default_mcp_resource_type(),
            denial: DenialStyle::default(),
            filter_tools_list: false,
            batch_limit: 0,
            pin_tools: None,
        }
    }
}

/// The resource of a tool call taken from one of its arguments: `<type>:<argument value>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentResource {
    pub argument: Checked<ArgumentPath>,
    #[serde(rename = "type")]
    pub resource_type: String,
}

fn default_tool_action() -> String {
    "axn_execute_tool".to_string()
}
fn default_read_action() -> String {
    "axn_read_data".to_string()
}
fn default_mcp_resource_type() -> String {
    "res_api".to_string()
}

impl McpClassifier {
    fn check(&self, errors: &mut Errors<'_>, path: &str) {
        check_glob_map(errors, &join(path, "tools"), &self.tools);
        check_glob_map(errors, &join(path, "methods"), &self.methods);
        check_type_id(
            errors,
            &join(path, "default_tool_action"),
            &self.default_tool_action,
            "axn_",
        );
        check_type_id(
            errors,
            &join(path, "read_action"),
            &self.read_action,
            "axn_",
        );
        check_type_id(
            errors,
            &join(path, "resource_type"),
            &self.resource_type,
            "res_",
        );
        let base = join(path, "resource_from_argument");
        for (glob, mapping) in self.resource_from_argument.iter() {
            let at = format!("{base}.{:?}", glob.source());
            glob.check(errors, &at);
            mapping.argument.check(errors, &join(&at, "argument"));
            check_type_id(errors, &join(&at, "type"), &mapping.resource_type, "res_");
        }
        if let Some(pins) = &self.pin_tools {
            if pins.file.as_os_str().is_empty() {
                errors.push(
                    &join(&join(path, "pin_tools"), "file"),
                    "must name the pin file (e.g. pins/tools.json)".into(),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------

/// REST: a list of operations, the first whose method and path template match wins.
///
/// ```yaml
/// kind: rest
/// operations:
///   - {method: POST, path: /v1/orders, action: axn_place_order,
///      resource: "res_security:{body./symbol}",
///      context: {quantity: body./quantity, order_value: "mul(body./quantity, body./limit_price)"}}
///   - {method: DELETE, path: "/v1/orders/{id}", action: axn_cancel_order, resource: "res_order:{id}"}
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestClassifier {
    pub operations: Vec<RestOperation>,
}

/// One REST operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestOperation {
    /// HTTP method (`GET`, `POST`, …), upper case.
    pub method: String,
    pub path: Checked<PathTemplate>,
    pub action: String,
    #[serde(default)]
    pub resource: Option<Checked<ResourceTemplate>>,
    /// Context field → value source.
    #[serde(default)]
    pub context: BTreeMap<String, Checked<ValueExpr>>,
}

impl RestOperation {
    /// True when the resource or a context field reads the body.
    pub fn uses_body(&self) -> bool {
        self.resource
            .as_ref()
            .and_then(Checked::get)
            .is_some_and(|r| r.exprs().any(ValueExpr::uses_body))
            || self
                .context
                .values()
                .filter_map(Checked::get)
                .any(ValueExpr::uses_body)
    }
}

impl RestClassifier {
    /// True when any operation reads the body.
    pub fn uses_body(&self) -> bool {
        self.operations.iter().any(RestOperation::uses_body)
    }

    fn check(&self, errors: &mut Errors<'_>, path: &str) {
        let base = join(path, "operations");
        if self.operations.is_empty() {
            errors.push(
                &base,
                "a rest classifier needs at least one operation".into(),
            );
        }
        for (i, op) in self.operations.iter().enumerate() {
            let at = format!("{base}[{i}]");
            if !is_method(&op.method) {
                errors.push(
                    &join(&at, "method"),
                    format!(
                        "{:?} is not an HTTP method; expected upper case like GET or POST",
                        op.method
                    ),
                );
            }
            op.path.check(errors, &join(&at, "path"));
            check_type_id(errors, &join(&at, "action"), &op.action, "axn_");
            let template = op.path.get();
            let check_params = |expr: &ValueExpr, where_: &str, errors: &mut Errors<'_>| {
                let Some(template) = template else { return };
                expr.for_each_path_param(&mut |name| {
                    if !template.params().any(|p| p == name) {
                        errors.push(
                            where_,
                            format!(
                                "path parameter {{{name}}} is not in the path template {:?}",
                                op.path.source()
                            ),
                        );
                    }
                });
            };
            if let Some(resource) = &op.resource {
                let where_ = join(&at, "resource");
                resource.check(errors, &where_);
                if let Some(compiled) = resource.get() {
                    for expr in compiled.exprs() {
                        check_params(expr, &where_, errors);
                    }
                }
            }
            for (name, source) in &op.context {
                let where_ = format!("{at}.context.{name}");
                if name.is_empty() {
                    errors.push(&where_, "a context field needs a name".into());
                }
                source.check(errors, &where_);
                if let Some(expr) = source.get() {
                    check_params(expr, &where_, errors);
                }
            }
            for (j, earlier) in self.operations[..i].iter().enumerate() {
                if earlier.method == op.method && earlier.path == op.path {
                    errors.push(
                        &at,
                        format!(
                            "{} {} is already handled by {base}[{j}]; this operation never matches",
                            op.method,
                            op.path.source()
                        ),
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// FHIR
// ---------------------------------------------------------------------------------------------

/// FHIR REST interactions (read, vread, search, create, update, patch, delete, history,
/// capabilities, batch/transaction, operations).
///
/// ```yaml
/// kind: fhir
/// base_path: /fhir
/// actions: {"Observation.create": axn_record_observation}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirClassifier {
    /// The FHIR base under the route (`/fhir`, `/fhir/r4`). `None`: everything before the first
    /// segment that looks like a resource type (`Patient`) or `metadata`/`_history`/`_search`.
    #[serde(default)]
    pub base_path: Option<String>,
    /// `<Type>.<interaction>` glob → action, first match wins, checked before the built-in
    /// defaults (`MedicationRequest.create` → `axn_prescribe_medication`, `*.delete` →
    /// `axn_delete_phi`, `*.create|update|patch` → `axn_update_phi`, anything else →
    /// `axn_access_phi`). System-level interactions use the type `_system`. Operations are keyed
    /// `<Type>.$op` and matched only by globs containing `$`; known ones default to the action of
    /// what they do (`$expunge` → `axn_delete_phi`, `$everything` → `axn_export_phi`), and an
    /// operation neither mapped nor known is refused (docs/classifiers.md).
    #[serde(default)]
    pub actions: OrderedMap<Checked<Glob>, String>,
    /// Resource types in the patient compartment: their resource is `<phi_resource_type>:<Type>/<id>`.
    #[serde(default = "default_phi_types")]
    pub phi_types: Vec<String>,
    #[serde(default = "default_phi_resource_type")]
    pub phi_resource_type: String,
    /// Resource type of everything else (`res_fhir:Practitioner/7`).
    #[serde(default = "default_other_resource_type")]
    pub other_resource_type: String,
    /// Header with the patient's consent (`true`/`false`) → `context.patient_consent`. Off by
    /// default: it is the caller's own assertion (docs/trust.md); a route that trusts it names it.
    #[serde(default)]
    pub consent_header: Option<String>,
    /// Header with the purpose of use (`TREAT`, `ETREAT`, …) → `context.purpose_of_use`.
    #[serde(default = "default_purpose_header")]
    pub purpose_of_use_header: Option<String>,
    /// Header with a break-glass reason → `context.break_glass`. Caller-declared by design, but
    /// each actor's break-glass is a session of `break_glass_ttl` with a ledger entry when it
    /// starts and when it ends (docs/trust.md).
    #[serde(default = "default_break_glass_header")]
    pub break_glass_header: Option<String>,
    /// Look consent up as the FHIR server's own `Consent` resources instead of taking it from a
    /// header: `{ttl, timeout}` (docs/trust.md). Exclusive with `consent_header`.
    #[serde(default)]
    pub consent_lookup: Option<Box<ConsentLookupConfig>>,
    /// How long one break-glass session lasts from its first request (default 15m).
    #[serde(default = "default_break_glass_ttl", with = "humantime_serde")]
    pub break_glass_ttl: std::time::Duration,
    /// Header with the treating physician's id → `context.physician_id`. Off by default, like
    /// `consent_header`.
    #[serde(default)]
    pub physician_header: Option<String>,
    /// Extra context fields → value source (`header.x`, `query.x`, `body./pointer`).
    #[serde(default)]
    pub context: BTreeMap<String, Checked<ValueExpr>>,
}

impl Default for FhirClassifier {
    fn default() -> Self {
        Self {
            base_path: None,
            actions: OrderedMap::default(),
            phi_types: default_phi_types(),
            phi_resource_type: default_phi_resource_type(),
            other_resource_type: default_other_resource_type(),
            consent_header: None,
            purpose_of_use_header: default_purpose_header(),
            break_glass_header: default_break_glass_header(),
            break_glass_ttl: default_break_glass_ttl(),
            consent_lookup: None,
            physician_header: None,
            context: BTreeMap::new(),
        }
    }
}

fn default_phi_types() -> Vec<String> {
    [
        "Patient",
        "AllergyIntolerance",
        "Appointment",
        "CarePlan",
        "CareTeam",
        "Claim",
        "ClinicalImpression",
        "Communication",
        "Composition",
        "Condition",
        "Consent",
        "Coverage",
        "DetectedIssue",
        "DeviceRequest",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "EpisodeOfCare",
        "ExplanationOfBenefit",
        "FamilyMemberHistory",
        "Flag",
        "Goal",
        "ImagingStudy",
        "Immunization",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationRequest",
        "MedicationStatement",
        "NutritionOrder",
        "Observation",
        "Procedure",
        "QuestionnaireResponse",
        "RiskAssessment",
        "ServiceRequest",
        "Specimen",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}
fn default_phi_resource_type() -> String {
    "res_phi".to_string()
}
fn default_other_resource_type() -> String {
    "res_fhir".to_string()
}
fn default_purpose_header() -> Option<String> {
    Some("x-purpose-of-use".to_string())
}
fn default_break_glass_header() -> Option<String> {
    Some("x-break-glass".to_string())
}
/// `consent_lookup` of a FHIR route: `GET <base>/Consent?patient=<id>&status=active` on the
/// route's upstream (or the consent service named by `upstream`), the patient's Consent resources
/// cached per patient and their provisions evaluated for every request (docs/trust.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentLookupConfig {
    /// How long a patient's Consent resources are cached (default 30s).
    #[serde(default = "default_consent_ttl", with = "humantime_serde")]
    pub ttl: std::time::Duration,
    /// How long one lookup may take; past it the request has no consent (default 2s).
    #[serde(default = "default_consent_timeout", with = "humantime_serde")]
    pub timeout: std::time::Duration,
    /// The consent service: an entry of `upstreams:` asked instead of the route's own upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The FHIR base path on the consent service (`/consent/fhir`). Default: the route's
    /// `base_path` when the route's own upstream is asked, none on a named consent service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
    /// The context key holding the caller's FHIR identity, which `identity.jwt.claims_to_context`
    /// maps from a verified token (SMART's `fhirUser`: `Practitioner/p1`, or a list of references).
    /// Read from the credential only, never from the request. Default `fhir_user`.
    #[serde(default = "default_consent_actor_claim")]
    pub actor_claim: String,
    /// The context key holding the purpose of use from a verified token (`TREAT`, or
    /// `<system>|<code>`; a list). Read from the credential only. Default `purpose_of_use`.
    #[serde(default = "default_consent_purpose_claim")]
    pub purpose_claim: String,
    /// The purpose of use when the token names none (`TREAT`, or `<system>|<code>`; a bare code is
    /// of `http://terminology.hl7.org/CodeSystem/v3-ActReason`). Default: none known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

impl Default for ConsentLookupConfig {
    fn default() -> Self {
        Self {
            ttl: default_consent_ttl(),
            timeout: default_consent_timeout(),
            upstream: None,
            base_path: None,
            actor_claim: default_consent_actor_claim(),
            purpose_claim: default_consent_purpose_claim(),
            purpose: None,
        }
    }
}

/// The code system of a bare purpose-of-use code (`TREAT`).
pub const PURPOSE_OF_USE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// A purpose of use as written in the configuration or a claim: `<code>` (of
/// [`PURPOSE_OF_USE_SYSTEM`]) or `<system>|<code>`, as (system, code); `None` when it is not one.
pub fn parse_purpose(text: &str) -> Option<(&str, &str)> {
    let text = text.trim();
    let (system, code) = match text.rsplit_once('|') {
        Some((system, code)) => (system, code),
        None => (PURPOSE_OF_USE_SYSTEM, text),
    };
    let plain = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '|');
    (plain(system) && plain(code)).then_some((system, code))
}

fn default_consent_actor_claim() -> String {
    "fhir_user".to_string()
}
fn default_consent_purpose_claim() -> String {
    "purpose_of_use".to_string()
}

fn default_consent_ttl() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}
fn default_consent_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(2)
}

fn default_break_glass_ttl() -> std::time::Duration {
    std::time::Duration::from_secs(15 * 60)
}

impl FhirClassifier {
    /// True when a context field reads the body.
    pub fn uses_body(&self) -> bool {
        self.context
            .values()
            .filter_map(Checked::get)
            .any(ValueExpr::uses_body)
    }

    fn check(&self, errors: &mut Errors<'_>, path: &str) {
        if let Some(base) = &self.base_path {
            if !base.starts_with('/') {
                errors.push(
                    &join(path, "base_path"),
                    format!("{base:?} must start with '/', e.g. /fhir"),
                );
            }
        }
        check_glob_map(errors, &join(path, "actions"), &self.actions);
        for (i, t) in self.phi_types.iter().enumerate() {
            if !is_fhir_type(t) {
                errors.push(
                    &format!("{path}.phi_types[{i}]"),
                    format!("{t:?} is not a FHIR resource type name (like Patient)"),
                );
            }
        }
        check_type_id(
            errors,
            &join(path, "phi_resource_type"),
            &self.phi_resource_type,
            "res_",
        );
        check_type_id(
            errors,
            &join(path, "other_resource_type"),
            &self.other_resource_type,
            "res_",
        );
        for (field, value) in [
            ("consent_header", &self.consent_header),
            ("purpose_of_use_header", &self.purpose_of_use_header),
            ("break_glass_header", &self.break_glass_header),
            ("physician_header", &self.physician_header),
        ] {
            if let Some(name) = value {
                if !is_header_name(name) {
                    errors.push(
                        &join(path, field),
                        format!("{name:?} is not a valid header name"),
                    );
                }
            }
        }
        if let Some(lookup) = &self.consent_lookup {
            if self.consent_header.is_some() {
                errors.push(
                    &join(path, "consent_lookup"),
                    "consent comes from a lookup or from consent_header, not both".into(),
                );
            }
            if lookup.timeout.is_zero() || lookup.ttl.is_zero() {
                errors.push(
                    &join(path, "consent_lookup"),
                    "ttl and timeout must be above 0".into(),
                );
            }
            let at = join(path, "consent_lookup");
            for (field, key) in [
                ("actor_claim", &lookup.actor_claim),
                ("purpose_claim", &lookup.purpose_claim),
            ] {
                if key.trim().is_empty() || key.contains('.') {
                    errors.push(
                        &join(&at, field),
                        format!("{key:?} must name a top-level context key (like fhir_user)"),
                    );
                }
            }
            if let Some(purpose) = &lookup.purpose {
                if parse_purpose(purpose).is_none() {
                    errors.push(
                        &join(&at, "purpose"),
                        format!("{purpose:?} is not a purpose of use: expected a code (TREAT) or <system>|<code>"),
                    );
                }
            }
            if let Some(base) = &lookup.base_path {
                if !base.starts_with('/') {
                    errors.push(
                        &join(&at, "base_path"),
                        format!("{base:?} must start with '/', e.g. /fhir"),
                    );
                }
            }
        }
        for (name, source) in &self.context {
            let at = format!("{path}.context.{name}");
            source.check(errors, &at);
            if let Some(expr) = source.get() {
                expr.for_each_path_param(&mut |param| {
                    errors.push(
                        &at,
                        format!(
                            "path.{param}: FHIR routes have no path template; use the built-in id"
                        ),
                    );
                });
            }
        }
    }
}

/// True for a FHIR resource type name: an upper-case ASCII letter, then letters and digits.
pub fn is_fhir_type(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------------------------
// Validation helpers
// ---------------------------------------------------------------------------------------------

impl<T: Compile> Checked<T> {
    fn check(&self, errors: &mut Errors<'_>, path: &str) {
        if let Some(reason) = self.error() {
            errors.push(
                path,
                format!("invalid {} {:?}: {reason}", T::WHAT, self.source()),
            );
        }
    }
}

struct Errors<'f> {
    file: &'f str,
    out: Vec<Located>,
}

impl Errors<'_> {
    fn push(&mut self, path: &str, reason: String) {
        self.out.push(Located {
            file: self.file.to_string(),
            path: path.to_string(),
            reason,
        });
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn check_glob_map(errors: &mut Errors<'_>, path: &str, map: &OrderedMap<Checked<Glob>, String>) {
    for (glob, action) in map.iter() {
        let at = format!("{path}.{:?}", glob.source());
        glob.check(errors, &at);
        check_type_id(errors, &at, action, "axn_");
    }
}

fn check_type_id(errors: &mut Errors<'_>, path: &str, id: &str, prefix: &str) {
    let ok = id.strip_prefix(prefix).is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    });
    if !ok {
        errors.push(
            path,
            format!("{id:?} is not a type id; expected {prefix} followed by lower-case letters, digits and '_'"),
        );
    }
}

fn is_method(method: &str) -> bool {
    !method.is_empty() && method.chars().all(|c| c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> ClassifierConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    fn reasons(config: &ClassifierConfig) -> Vec<String> {
        config
            .validate("lexecon.yaml", "routes[0].classifier")
            .into_iter()
            .map(|l| format!("{}: {}", l.path, l.reason))
            .collect()
    }

    #[test]
    fn mcp_defaults_apply_when_fields_are_omitted() {
        let ClassifierConfig::Mcp(mcp) = parse("kind: mcp") else {
            panic!("not mcp")
        };
        assert_eq!(mcp, McpClassifier::default());
        assert_eq!(mcp.default_tool_action, "axn_execute_tool");
        assert_eq!(mcp.read_action, "axn_read_data");
        assert_eq!(mcp.denial, DenialStyle::ToolError);
    }

    #[test]
    fn pin_tools_parse_with_defaults_and_an_empty_file_is_located() {
        let ClassifierConfig::Mcp(mcp) = parse("kind: mcp\npin_tools: {file: pins/tools.json}")
        else {
            panic!("not mcp")
        };
        let pins = mcp.pin_tools.unwrap();
        assert_eq!(pins.file, std::path::PathBuf::from("pins/tools.json"));
        assert!(!pins.trust_on_first_use);
        assert_eq!(pins.on_change, PinChange::Deny);
        let config = parse("kind: mcp\npin_tools: {file: '', on_change: escalate}");
        assert_eq!(
            reasons(&config),
            ["routes[0].classifier.pin_tools.file: must name the pin file (e.g. pins/tools.json)"]
        );
        assert!(serde_norway::from_str::<ClassifierConfig>(
            "kind: mcp\npin_tools: {file: a.json, on_change: allow}"
        )
        .is_err());
    }

    #[test]
    fn mcp_tool_globs_keep_declaration_order_and_first_match_wins() {
        let ClassifierConfig::Mcp(mcp) = parse(
            "kind: mcp\ntools: {\"delete_all\": axn_purge, \"delete_*\": axn_delete_data, \"*\": axn_run}",
        ) else {
            panic!("not mcp")
        };
        assert_eq!(
            mcp.tools.first_match("delete_all").map(String::as_str),
            Some("axn_purge")
        );
        assert_eq!(
            mcp.tools.first_match("delete_file").map(String::as_str),
            Some("axn_delete_data")
        );
        assert_eq!(
            mcp.tools.first_match("search").map(String::as_str),
            Some("axn_run")
        );
    }

    #[test]
    fn unknown_mcp_field_is_rejected() {
        let err = serde_norway::from_str::<ClassifierConfig>("kind: mcp\ntool: {}").unwrap_err();
        assert!(err.to_string().contains("unknown field `tool`"), "{err}");
    }

    #[test]
    fn every_bad_pattern_is_reported_with_its_location() {
        let config = parse(
            r#"
kind: mcp
tools: {"delete_[": axn_delete_data, "ok_*": "Delete"}
resource_from_argument: {"read_*": {argument: "/a~2b", type: file}}
"#,
        );
        let errors = reasons(&config);
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with("routes[0].classifier.tools.\"delete_[\": invalid glob"));
        assert!(errors[1].contains("\"Delete\" is not a type id"));
        assert!(errors[2].contains("argument: invalid argument \"/a~2b\""));
        assert!(errors[3].contains("\"file\" is not a type id; expected res_"));
    }

    #[test]
    fn rest_validation_collects_all_errors() {
        let config = parse(
            r#"
kind: rest
operations:
  - {method: post, path: "v1/orders", action: axn_place_order}
  - method: DELETE
    path: "/v1/orders/{id}"
    action: axn_cancel_order
    resource: "res_order:{order_id}"
    context: {value: "mul(body./q)", who: header.x-user}
  - {method: DELETE, path: "/v1/orders/{id}", action: axn_cancel_order}
"#,
        );
        let errors = reasons(&config);
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].starts_with("routes[0].classifier.operations[0].method:"));
        assert!(
            errors[1].starts_with("routes[0].classifier.operations[0].path: invalid path template")
        );
        assert!(errors[2].contains("operations[1].resource: path parameter {order_id} is not in"));
        assert!(errors[3].contains("operations[1].context.value: invalid value source"));
        assert!(errors[4].contains("already handled by routes[0].classifier.operations[1]"));
    }

    #[test]
    fn rest_needs_body_only_when_an_operation_reads_it() {
        let ClassifierConfig::Rest(rest) = parse(
            "kind: rest\noperations: [{method: GET, path: \"/v1/orders/{id}\", action: axn_read_order, resource: \"res_order:{id}\"}]",
        ) else {
            panic!("not rest")
        };
        assert!(!rest.uses_body());
        let ClassifierConfig::Rest(rest) = parse(
            "kind: rest\noperations: [{method: POST, path: /v1/orders, action: axn_place_order, context: {v: \"mul(2, body./q)\"}}]",
        ) else {
            panic!("not rest")
        };
        assert!(rest.uses_body());
        assert!(reasons(&ClassifierConfig::Rest(rest)).is_empty());
    }

    #[test]
    fn empty_rest_classifier_is_an_error() {
        let errors = reasons(&parse("kind: rest\noperations: []"));
        assert_eq!(
            errors,
            vec!["routes[0].classifier.operations: a rest classifier needs at least one operation"]
        );
    }

    #[test]
    fn fhir_defaults_and_validation() {
        let config = parse("kind: fhir");
        assert!(reasons(&config).is_empty());
        let ClassifierConfig::Fhir(fhir) = &config else {
            panic!("not fhir")
        };
        assert!(fhir.phi_types.iter().any(|t| t == "Observation"));
        assert_eq!(
            fhir.consent_header, None,
            "a caller's consent header is read only where named"
        );
        let bad = parse(
            r#"
kind: fhir
base_path: fhir
phi_types: [Patient, observation]
consent_header: "x consent"
purpose_of_use_header: null
actions: {"*.{read": axn_access_phi}
"#,
        );
        let errors = reasons(&bad);
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].contains("base_path: \"fhir\" must start with '/'"));
        assert!(errors[1].contains("actions.\"*.{read\": invalid glob"));
        assert!(errors[2].contains("phi_types[1]: \"observation\" is not a FHIR resource type"));
        assert!(errors[3].contains("consent_header: \"x consent\" is not a valid header name"));
    }

    #[test]
    fn config_round_trips_through_yaml() {
        let config = parse(
            r#"
kind: rest
operations:
  - method: POST
    path: /v1/orders
    action: axn_place_order
    resource: "res_security:{body./symbol}"
    context: {order_value: "mul(body./quantity, body./limit_price)"}
"#,
        );
        let text = serde_norway::to_string(&config).unwrap();
        assert_eq!(parse(&text), config);
    }

    #[test]
    fn every_example_in_the_classifier_docs_parses_and_validates() {
        let doc = include_str!("../../docs/classifiers.md");
        let mut examples = 0;
        for block in doc.split("```yaml\n").skip(1) {
            let yaml = block.split("```").next().unwrap();
            let value: serde_norway::Value = serde_norway::from_str(yaml).unwrap();
            let classifier = value.get("classifier").unwrap().clone();
            let config: ClassifierConfig = serde_norway::from_value(classifier).unwrap();
            assert_eq!(reasons(&config), Vec::<String>::new(), "{yaml}");
            examples += 1;
        }
        assert_eq!(examples, 4);
    }
}
