//! The FHIR classifier and SMART scope checks. A request under the FHIR base becomes one FHIR REST
//! interaction (read, vread, update, patch, delete, history, create, search, capabilities,
//! batch/transaction, operation) on a resource type and id; the interaction gives the action,
//! patient-compartment types give a `res_phi:<Type>/<id>` resource, and consent, purpose of use,
//! break-glass and physician come from headers. The `smart` submodule ([`scope_permits_item`],
//! [`scope_grant`]) says whether a token's SMART scopes (v1 `patient/*.read`, v2
//! `user/Observation.rs`) allow the interaction. Pure: no I/O, and the body is never read unless
//! a configured context field needs it or the request is a search by `POST`, whose parameters are
//! in a form body (read together with the query, as the upstream reads them).
//!
//! Closed by default: path segments are percent-decoded before they are read (the upstream decodes
//! them too, so `%24expunge` is `$expunge`); a `$operation` gets the action of what it does
//! ([`OperationKind`]), and one Lexecon does not know is refused unless the route's `actions` map it
//! with a glob that names operations (contains `$`); a search parameter the classifier reads
//! (`patient`, `subject`, `_id`) sent twice — in the query, the form body, or across both — is
//! refused, since upstreams disagree on which copy counts; and a request must name at most one
//! patient (no comma list of patients, no second patient elsewhere, no patient parameter with a
//! modifier or chain Lexecon does not read), since the SMART patient check, the consent lookup and
//! the policy all see one `patient_id`.

use std::borrow::Cow;

use lexecon_config::classifier::{is_fhir_type, FhirClassifier};
use serde_json::{Map, Value};

use super::value::{self, Request};
use super::{Classified, ClassifiedItem, ClassifyError, RequestParts};

mod search;
mod smart;

pub(crate) use search::is_post_search;
use search::{form_body, patient_id};

pub use smart::{scope_grant, scope_permits, scope_permits_item, ScopeGrant};

/// A FHIR REST interaction (codes as in the FHIR `TypeRestfulInteraction` value sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    Read,
    Vread,
    Update,
    Patch,
    Delete,
    HistoryInstance,
    HistoryType,
    HistorySystem,
    Create,
    SearchType,
    SearchSystem,
    Capabilities,
    /// `POST [base]` with a Bundle: batch or transaction (the body says which).
    Batch,
    /// `$operation` on the system, a type or an instance.
    Operation,
}

impl Interaction {
    const ALL: [Interaction; 14] = [
        Interaction::Read,
        Interaction::Vread,
        Interaction::Update,
        Interaction::Patch,
        Interaction::Delete,
        Interaction::HistoryInstance,
        Interaction::HistoryType,
        Interaction::HistorySystem,
        Interaction::Create,
        Interaction::SearchType,
        Interaction::SearchSystem,
        Interaction::Capabilities,
        Interaction::Batch,
        Interaction::Operation,
    ];

    /// The code used in `context.interaction` and in action globs (`Patient.read`).
    pub fn code(self) -> &'static str {
        match self {
            Interaction::Read => "read",
            Interaction::Vread => "vread",
            Interaction::Update => "update",
            Interaction::Patch => "patch",
            Interaction::Delete => "delete",
            Interaction::HistoryInstance => "history-instance",
            Interaction::HistoryType => "history-type",
            Interaction::HistorySystem => "history-system",
            Interaction::Create => "create",
            Interaction::SearchType => "search-type",
            Interaction::SearchSystem => "search-system",
            Interaction::Capabilities => "capabilities",
            Interaction::Batch => "batch",
            Interaction::Operation => "operation",
        }
    }

    /// The interaction with this [`code`](Interaction::code).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.code() == code)
    }

    /// The SMART v2 permission letter the interaction needs (`c r u d s`); `None` when it needs
    /// no scope (capabilities), cannot be checked from the request line (batch), or depends on
    /// the operation (see [`OperationKind`]; an operation Lexecon does not know needs full access).
    pub fn scope_letter(self) -> Option<char> {
        match self {
            Interaction::Create => Some('c'),
            Interaction::Read | Interaction::Vread | Interaction::HistoryInstance => Some('r'),
            Interaction::Update | Interaction::Patch => Some('u'),
            Interaction::Delete => Some('d'),
            Interaction::SearchType
            | Interaction::SearchSystem
            | Interaction::HistoryType
            | Interaction::HistorySystem => Some('s'),
            Interaction::Capabilities | Interaction::Batch | Interaction::Operation => None,
        }
    }
}

/// What a FHIR `$operation` Lexecon knows by name does: it gives the operation's default action
/// and the SMART permission it needs. Operations not listed here are refused unless the route maps
/// them ([`ClassifyError::UnknownOperation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// Removes data for good (`$expunge`, `$purge`, `$purge-history`, `$bulk-delete`):
    /// `axn_delete_phi`, SMART `d`.
    Delete,
    /// Changes stored data (`$merge`, `$meta-add`, `$meta-delete`, `$import`): `axn_update_phi`,
    /// SMART `u`.
    Write,
    /// Reads many resources at once: a patient's whole compartment (`$everything`) or the server
    /// (`$export`, `$export-poll-status`): `axn_export_phi`, SMART `rs` on every type (`*.rs`).
    BulkRead,
    /// Reads one resource's data or checks a resource against it (`$meta`, `$validate`):
    /// `axn_access_phi`, SMART `r`.
    Read,
    /// Terminology on reference data (`$lookup`, `$translate`, `$expand`, `$validate-code`,
    /// `$subsumes`): `axn_read_guideline`, SMART `r`.
    Terminology,
    /// Says what the server supports (`$versions`, `$capabilities`): `axn_read_metadata`, no scope.
    ServerInfo,
}

/// The operations Lexecon knows, by their canonical (lower-case) name.
const KNOWN_OPERATIONS: &[(&str, OperationKind)] = &[
    ("$expunge", OperationKind::Delete),
    ("$purge", OperationKind::Delete),
    ("$purge-history", OperationKind::Delete),
    ("$bulk-delete", OperationKind::Delete),
    ("$merge", OperationKind::Write),
    ("$meta-add", OperationKind::Write),
    ("$meta-delete", OperationKind::Write),
    ("$import", OperationKind::Write),
    ("$everything", OperationKind::BulkRead),
    ("$export", OperationKind::BulkRead),
    ("$export-poll-status", OperationKind::BulkRead),
    ("$meta", OperationKind::Read),
    ("$validate", OperationKind::Read),
    ("$lookup", OperationKind::Terminology),
    ("$translate", OperationKind::Terminology),
    ("$expand", OperationKind::Terminology),
    ("$validate-code", OperationKind::Terminology),
    ("$subsumes", OperationKind::Terminology),
    ("$versions", OperationKind::ServerInfo),
    ("$capabilities", OperationKind::ServerInfo),
];

impl OperationKind {
    /// Every kind, for tests and catalogues.
    pub const ALL: [OperationKind; 6] = [
        OperationKind::Delete,
        OperationKind::Write,
        OperationKind::BulkRead,
        OperationKind::Read,
        OperationKind::Terminology,
        OperationKind::ServerInfo,
    ];

    /// The kind and canonical name of a known operation. Names are compared ignoring ASCII case:
    /// servers built on case-insensitive routers (ASP.NET) run `$EXPUNGE` as `$expunge`.
    pub fn of(operation: &str) -> Option<(&'static str, OperationKind)> {
        KNOWN_OPERATIONS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(operation))
            .copied()
    }

    /// The healthcare action an operation of this kind gets when no configured glob maps it.
    pub fn default_action(self) -> &'static str {
        match self {
            OperationKind::Delete => "axn_delete_phi",
            OperationKind::Write => "axn_update_phi",
            OperationKind::BulkRead => "axn_export_phi",
            OperationKind::Read => "axn_access_phi",
            OperationKind::Terminology => "axn_read_guideline",
            OperationKind::ServerInfo => "axn_read_metadata",
        }
    }
}

/// True for an operation name: `$`, then 1-64 ASCII letters, digits, `-`, `_` and `.`.
fn is_operation_name(name: &str) -> bool {
    name.strip_prefix('$').is_some_and(|rest| {
        (1..=64).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    })
}

/// The type used for system-level interactions in action globs (`_system.batch`).
pub const SYSTEM_TYPE: &str = "_system";

/// What the request line says.
struct Parsed<'p> {
    interaction: Interaction,
    resource_type: Option<&'p str>,
    id: Option<&'p str>,
    version_id: Option<&'p str>,
    operation: Option<&'p str>,
    /// `Patient/123` of a compartment search (`GET Patient/123/Observation`).
    compartment: Option<(&'p str, &'p str)>,
}

fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn check_id<'p>(id: &'p str, what: &str) -> Result<&'p str, ClassifyError> {
    if is_fhir_id(id) {
        Ok(id)
    } else {
        Err(ClassifyError::Malformed(format!(
            "{what} {id:?} is not a FHIR id (1-64 letters, digits, '-' and '.')"
        )))
    }
}

/// The percent-decoded segments after the FHIR base, or `None` when the path is not under it.
/// Decoded because the upstream decodes them: `Patient/%31` is `Patient/1` and `%24expunge` is
/// `$expunge` to a FHIR server. (Encoded `/`, `\` and dot segments never get here: the request
/// target check refuses them before routing.)
fn interaction_segments<'p>(
    config: &FhirClassifier,
    path: &'p str,
) -> Result<Option<Vec<Cow<'p, str>>>, ClassifyError> {
    let rest = match &config.base_path {
        Some(base) => {
            let base = base.strip_suffix('/').unwrap_or(base);
            let Some(rest) = path.strip_prefix(base) else {
                return Ok(None);
            };
            if !(rest.is_empty() || rest.starts_with('/')) {
                return Ok(None);
            }
            rest
        }
        None => path,
    };
    let segments = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| value::decode(s, false))
        .collect::<Result<Vec<_>, _>>()?;
    if config.base_path.is_some() {
        return Ok(Some(segments));
    }
    let start = segments
        .iter()
        .position(|s| {
            is_fhir_type(s)
                || s.starts_with('$')
                || matches!(s.as_ref(), "metadata" | "_history" | "_search")
        })
        .unwrap_or(segments.len());
    Ok(Some(segments.into_iter().skip(start).collect()))
}

fn check_operation(name: &str) -> Result<&str, ClassifyError> {
    if is_operation_name(name) {
        Ok(name)
    } else {
        Err(ClassifyError::Malformed(format!(
            "{name:?} is not a FHIR operation name ('$', then 1-64 letters, digits, '-', '_' and '.')"
        )))
    }
}

fn parse<'p>(
    method: &str,
    segments: &[&'p str],
    has_query: bool,
) -> Result<Option<Parsed<'p>>, ClassifyError> {
    use Interaction as I;
    let plain = |interaction, resource_type, id| Parsed {
        interaction,
        resource_type,
        id,
        version_id: None,
        operation: None,
        compartment: None,
    };
    let operation = |name: &'p str, resource_type, id| -> Result<Parsed<'p>, ClassifyError> {
        Ok(Parsed {
            interaction: I::Operation,
            resource_type,
            id,
            version_id: None,
            operation: Some(check_operation(name)?),
            compartment: None,
        })
    };
    let parsed = match (method, segments) {
        ("GET", []) if has_query => plain(I::SearchSystem, None, None),
        ("POST", []) => plain(I::Batch, None, None),
        ("GET", ["metadata"]) => plain(I::Capabilities, None, None),
        ("GET", ["_history"]) => plain(I::HistorySystem, None, None),
        ("GET" | "POST", ["_search"]) => plain(I::SearchSystem, None, None),
        ("GET" | "POST", [op]) if op.starts_with('$') => operation(op, None, None)?,
        (_, [t, ..]) if !is_fhir_type(t) => return Ok(None),
        ("GET", [t]) => plain(I::SearchType, Some(*t), None),
        ("POST", [t]) => plain(I::Create, Some(*t), None),
        // Conditional update, patch and delete: the query selects the instance.
        ("PUT", [t]) if has_query => plain(I::Update, Some(*t), None),
        ("PATCH", [t]) if has_query => plain(I::Patch, Some(*t), None),
        ("DELETE", [t]) if has_query => plain(I::Delete, Some(*t), None),
        ("GET" | "POST", [t, "_search"]) => plain(I::SearchType, Some(*t), None),
        ("GET", [t, "_history"]) => plain(I::HistoryType, Some(*t), None),
        ("GET" | "POST", [t, op]) if op.starts_with('$') => operation(op, Some(*t), None)?,
        ("GET", [t, id]) => plain(I::Read, Some(*t), Some(check_id(id, "id")?)),
        ("PUT", [t, id]) => plain(I::Update, Some(*t), Some(check_id(id, "id")?)),
        ("PATCH", [t, id]) => plain(I::Patch, Some(*t), Some(check_id(id, "id")?)),
        ("DELETE", [t, id]) => plain(I::Delete, Some(*t), Some(check_id(id, "id")?)),
        ("GET", [t, id, "_history"]) => {
            plain(I::HistoryInstance, Some(*t), Some(check_id(id, "id")?))
        }
        ("GET" | "POST", [t, id, op]) if op.starts_with('$') => {
            operation(op, Some(*t), Some(check_id(id, "id")?))?
        }
        ("GET", [t, id, target]) if is_fhir_type(target) => Parsed {
            interaction: I::SearchType,
            resource_type: Some(*target),
            id: None,
            version_id: None,
            operation: None,
            compartment: Some((*t, check_id(id, "compartment id")?)),
        },
        ("GET", [t, id, "_history", vid]) => Parsed {
            interaction: I::Vread,
            resource_type: Some(*t),
            id: Some(check_id(id, "id")?),
            version_id: Some(check_id(vid, "version id")?),
            operation: None,
            compartment: None,
        },
        _ => return Ok(None),
    };
    Ok(Some(parsed))
}

/// The built-in action of an interaction, used when no configured glob matches; `None` for an
/// operation, whose action depends on which operation it is ([`OperationKind`]).
fn default_action(resource_type: &str, interaction: Interaction) -> Option<&'static str> {
    use Interaction as I;
    Some(match interaction {
        I::Create | I::Update | I::Patch if resource_type == "MedicationRequest" => {
            "axn_prescribe_medication"
        }
        I::Delete => "axn_delete_phi",
        I::Create | I::Update | I::Patch | I::Batch => "axn_update_phi",
        I::Capabilities => "axn_read_metadata",
        I::Operation => return None,
        _ => "axn_access_phi",
    })
}

/// The action of the request: the first configured glob that matches `<Type>.<interaction>` (or
/// `<Type>.$op`), else the built-in default. An operation is matched only by globs that name
/// operations (their text contains `$`), so a catch-all such as `Patient.*` written for the
/// interactions never turns `$expunge` into a read; an operation no glob maps and Lexecon does not
/// know is refused.
fn action_of<'c>(
    config: &'c FhirClassifier,
    type_for_action: &str,
    parsed: &Parsed<'_>,
) -> Result<(&'c str, Option<OperationKind>), ClassifyError> {
    let Some(operation) = parsed.operation else {
        let key = format!("{type_for_action}.{}", parsed.interaction.code());
        let action = match config.actions.first_match(&key) {
            Some(action) => action.as_str(),
            None => default_action(type_for_action, parsed.interaction).unwrap_or("axn_access_phi"),
        };
        return Ok((action, None));
    };
    let known = OperationKind::of(operation);
    let name = known.map_or(operation, |(canonical, _)| canonical);
    let key = format!("{type_for_action}.{name}");
    let configured = config
        .actions
        .iter()
        .find(|(glob, _)| glob.source().contains('$') && glob.is_match(&key))
        .map(|(_, action)| action.as_str());
    match (configured, known) {
        (Some(action), kind) => Ok((action, kind.map(|(_, kind)| kind))),
        (None, Some((_, kind))) => Ok((kind.default_action(), Some(kind))),
        (None, None) => Err(ClassifyError::UnknownOperation {
            operation: operation.to_string(),
            key,
        }),
    }
}

fn parse_consent(value: &str, header: &str) -> Result<bool, ClassifyError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "granted" | "permit" => Ok(true),
        "false" | "no" | "0" | "denied" | "deny" => Ok(false),
        _ => Err(ClassifyError::Malformed(format!(
            "header {header} must be true or false, got {value:?}"
        ))),
    }
}

fn header_text<'h, 'n>(
    headers: &'h http::HeaderMap,
    name: Option<&'n String>,
) -> Result<Option<(&'n str, &'h str)>, ClassifyError> {
    let Some(name) = name else {
        return Ok(None);
    };
    match headers.get(name.as_str()) {
        Some(value) => value
            .to_str()
            .map(|v| Some((name.as_str(), v.trim())))
            .map_err(|_| ClassifyError::Malformed(format!("header {name} is not valid text"))),
        None => Ok(None),
    }
}

pub(super) fn classify(
    config: &FhirClassifier,
    parts: &RequestParts<'_>,
    body: Option<&[u8]>,
) -> Result<Classified, ClassifyError> {
    let (path, query) = parts.path_and_query();
    let no_operation = || ClassifyError::NoOperation {
        method: parts.method.to_string(),
        path: path.to_string(),
    };
    let segments = interaction_segments(config, path)?.ok_or_else(no_operation)?;
    let segments: Vec<&str> = segments.iter().map(Cow::as_ref).collect();
    let parsed = parse(parts.method, &segments, query.is_some())?.ok_or_else(no_operation)?;

    let type_for_action = parsed.resource_type.unwrap_or(SYSTEM_TYPE);
    let (action, operation_kind) = action_of(config, type_for_action, &parsed)?;
    let action = action.to_string();

    let mut context = Map::new();
    context.insert("interaction".into(), Value::from(parsed.interaction.code()));
    if let Some(t) = parsed.resource_type {
        context.insert("resource_type".into(), Value::from(t));
    }
    if let Some(id) = parsed.id {
        context.insert("id".into(), Value::from(id));
    }
    if let Some(vid) = parsed.version_id {
        context.insert("version_id".into(), Value::from(vid));
    }
    if let Some(op) = parsed.operation {
        let canonical = OperationKind::of(op).map_or(op, |(name, _)| name);
        context.insert("operation".into(), Value::from(canonical));
    }
    if let Some((t, id)) = parsed.compartment {
        context.insert("compartment".into(), Value::from(format!("{t}/{id}")));
    }
    if let Some(scope) =
        smart::needed_scope(parsed.resource_type, parsed.interaction, operation_kind)
    {
        context.insert("smart_scope".into(), Value::from(scope));
    }

    // A search by POST carries its parameters in a form body, the query string may hold more:
    // the upstream reads both as one search (as a GET with all of them in the query), so does
    // Lexecon — a parameter it reads may appear once in all of them together.
    let form = if parts.method == "POST"
        && matches!(
            parsed.interaction,
            Interaction::SearchType | Interaction::SearchSystem
        ) {
        Some(form_body(parts.headers, body)?).filter(|f| !f.is_empty())
    } else {
        None
    };
    let joined;
    let params = match (query, form) {
        (Some(query), Some(form)) => {
            joined = format!("{query}&{form}");
            Some(joined.as_str())
        }
        (query, form) => query.or(form),
    };

    let mut search = Map::new();
    if let Some(query) = params {
        for pair in value::query_pairs(query) {
            let (name, value) = pair?;
            let value = Value::from(value.into_owned());
            match search.get_mut(name.as_ref()) {
                Some(Value::Array(values)) => values.push(value),
                Some(first) => *first = Value::Array(vec![first.take(), value]),
                None => {
                    search.insert(name.into_owned(), value);
                }
            }
        }
    }

    let patient_id = patient_id(&parsed, &search)?;
    if let Some(patient) = &patient_id {
        context.insert("patient_id".into(), Value::from(patient.as_str()));
    }
    if !search.is_empty() {
        context.insert("search_params".into(), Value::Object(search));
    }

    if let Some((header, value)) = header_text(parts.headers, config.consent_header.as_ref())? {
        context.insert(
            "patient_consent".into(),
            Value::Bool(parse_consent(value, header)?),
        );
    }
    for (field, header) in [
        ("purpose_of_use", &config.purpose_of_use_header),
        ("break_glass", &config.break_glass_header),
        ("physician_id", &config.physician_header),
    ] {
        if let Some((_, value)) = header_text(parts.headers, header.as_ref())? {
            if !value.is_empty() {
                context.insert(field.into(), Value::from(value));
            }
        }
    }

    if !config.context.is_empty() {
        let parsed_body = if config.uses_body() {
            Some(value::parse_body(
                body,
                &format!("{} {path}", parts.method),
            )?)
        } else {
            None
        };
        let request = Request {
            template: None,
            path_values: &[],
            query: params,
            headers: parts.headers,
            body: parsed_body.as_ref(),
        };
        for (name, source) in &config.context {
            let expr = source.get().ok_or_else(|| {
                ClassifyError::Malformed(format!(
                    "context.{name}: the source {:?} is invalid in the configuration",
                    source.source()
                ))
            })?;
            if let Some(value) = request.eval(expr)? {
                context.insert(name.clone(), value);
            }
        }
    }

    let resource = resource(config, &parsed);
    Ok(Classified {
        items: vec![ClassifiedItem {
            action,
            resource: Some(resource),
            context,
            jsonrpc_id: None,
            rpc_method: None,
            tool: None,
        }],
        batch: false,
    })
}

fn resource(config: &FhirClassifier, parsed: &Parsed<'_>) -> String {
    let is_phi = |t: &str| config.phi_types.iter().any(|p| p == t);
    if let Some((t, id)) = parsed.compartment {
        let kind = if is_phi(t) {
            &config.phi_resource_type
        } else {
            &config.other_resource_type
        };
        return format!("{kind}:{t}/{id}");
    }
    match parsed.resource_type {
        Some(t) => {
            let kind = if is_phi(t) {
                &config.phi_resource_type
            } else {
                &config.other_resource_type
            };
            match parsed.id {
                Some(id) => format!("{kind}:{t}/{id}"),
                None => format!("{kind}:{t}"),
            }
        }
        None if parsed.interaction == Interaction::Capabilities => {
            format!("{}:metadata", config.other_resource_type)
        }
        None => format!("{}:{SYSTEM_TYPE}", config.other_resource_type),
    }
}

#[cfg(test)]
pub(super) mod tests;
