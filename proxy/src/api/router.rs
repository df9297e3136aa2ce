//! Routing of the API listener's paths to [`Endpoint`]s: method + path (with an optional query) in,
//! the endpoint and its path parameters out, or a [`RouteError`] that tells 404 (no such path) from
//! 405 (path exists, method does not) and 400 (a malformed path parameter or query).
//!
//! Pure and allocation-free on success: path parameters borrow from the path. It never looks at
//! headers or bodies, and never decides whether a domain is *supported* (that needs the snapshot);
//! it only checks that a domain name is well formed.
//!
//! The literal segments `approvals` and `domains` under `/api/v1/` take precedence over a domain of
//! that name, so `/api/v1/approvals/{id}` is always an approval.

use lexecon_approvals::ApprovalStatus;

/// One endpoint of the API listener, with its path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `GET /health`
    Health,
    /// `POST /api/v1/{domain}/decisions/request`
    DomainDecision { domain: &'a str },
    /// `POST /decisions/request`: the v1 body, routed to the `ai` domain (Lexecon 1.x clients).
    LegacyDecisionRequest,
    /// `POST /decide`: the Lexecon 1.x body and answer, routed to the `ai` domain.
    LegacyDecide,
    /// `GET /api/v1/domains`
    ListDomains,
    /// `GET /api/v1/{domain}/config`
    DomainConfig { domain: &'a str },
    /// `GET /api/v1/{domain}/policy-templates`
    PolicyTemplates { domain: &'a str },
    /// `GET /api/v1/approvals[?status=pending|approved|denied|consumed|expired]`
    ListApprovals { status: Option<ApprovalStatus> },
    /// `GET /api/v1/approvals/{id}`
    GetApproval { id: &'a str },
    /// `POST /api/v1/approvals/{id}/approve`
    ApproveApproval { id: &'a str },
    /// `POST /api/v1/approvals/{id}/deny`
    DenyApproval { id: &'a str },
    /// `GET /.well-known/jwks.json`
    Jwks,
    /// `GET /openapi.json`
    OpenApi,
}

/// The domain the Lexecon 1.x endpoints decide in.
pub const LEGACY_DOMAIN: &str = "ai";

/// Every route: method, OpenAPI path template. The OpenAPI test checks each appears in the document.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("POST", "/api/v1/{domain}/decisions/request"),
    ("POST", "/decisions/request"),
    ("POST", "/decide"),
    ("GET", "/api/v1/domains"),
    ("GET", "/api/v1/{domain}/config"),
    ("GET", "/api/v1/{domain}/policy-templates"),
    ("GET", "/api/v1/approvals"),
    ("GET", "/api/v1/approvals/{id}"),
    ("POST", "/api/v1/approvals/{id}/approve"),
    ("POST", "/api/v1/approvals/{id}/deny"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/openapi.json"),
];

impl Endpoint<'_> {
    /// The HTTP method this endpoint answers.
    pub fn method(&self) -> &'static str {
        match self {
            Endpoint::Health
            | Endpoint::ListDomains
            | Endpoint::DomainConfig { .. }
            | Endpoint::PolicyTemplates { .. }
            | Endpoint::ListApprovals { .. }
            | Endpoint::GetApproval { .. }
            | Endpoint::Jwks
            | Endpoint::OpenApi => "GET",
            Endpoint::DomainDecision { .. }
            | Endpoint::LegacyDecisionRequest
            | Endpoint::LegacyDecide
            | Endpoint::ApproveApproval { .. }
            | Endpoint::DenyApproval { .. } => "POST",
        }
    }

    /// The OpenAPI path template of this endpoint (`/api/v1/{domain}/config`).
    pub fn template(&self) -> &'static str {
        match self {
            Endpoint::Health => "/health",
            Endpoint::DomainDecision { .. } => "/api/v1/{domain}/decisions/request",
            Endpoint::LegacyDecisionRequest => "/decisions/request",
            Endpoint::LegacyDecide => "/decide",
            Endpoint::ListDomains => "/api/v1/domains",
            Endpoint::DomainConfig { .. } => "/api/v1/{domain}/config",
            Endpoint::PolicyTemplates { .. } => "/api/v1/{domain}/policy-templates",
            Endpoint::ListApprovals { .. } => "/api/v1/approvals",
            Endpoint::GetApproval { .. } => "/api/v1/approvals/{id}",
            Endpoint::ApproveApproval { .. } => "/api/v1/approvals/{id}/approve",
            Endpoint::DenyApproval { .. } => "/api/v1/approvals/{id}/deny",
            Endpoint::Jwks => "/.well-known/jwks.json",
            Endpoint::OpenApi => "/openapi.json",
        }
    }

    /// The domain a decision endpoint decides in (`ai` for the 1.x endpoints).
    pub fn decision_domain(&self) -> Option<&str> {
        match self {
            Endpoint::DomainDecision { domain } => Some(domain),
            Endpoint::LegacyDecisionRequest | Endpoint::LegacyDecide => Some(LEGACY_DOMAIN),
            _ => None,
        }
    }
}

/// Why a method + path does not name an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// 404: no endpoint has this path.
    #[error("no endpoint at {path}")]
    NotFound { path: String },
    /// 405: the path exists but not for this method; `allowed` goes in the `Allow` header.
    #[error("method {method} is not allowed on {path} (allowed: {allowed})")]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: &'static str,
    },
    /// 400: the domain segment is not `[a-z][a-z0-9_]*` (at most 64 characters).
    #[error("Invalid domain: {domain}")]
    InvalidDomain { domain: String },
    /// 400: the approval id segment is not 1..=64 of `[A-Za-z0-9_-]`.
    #[error("invalid approval id {id:?}: expected 1 to 64 of A-Z, a-z, 0-9, '_' or '-'")]
    InvalidApprovalId { id: String },
    /// 400: a query parameter has a value the endpoint does not accept.
    #[error("invalid query parameter {name}={value:?}: expected {expected}")]
    InvalidQuery {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Maximum number of path segments any endpoint has.
const MAX_SEGMENTS: usize = 5;

/// Routes `method` + `path` (which may carry a `?query`) to its endpoint.
///
/// ```
/// use lexecon::api::router::{route, Endpoint};
/// let endpoint = route("POST", "/api/v1/finance/decisions/request").unwrap();
/// assert_eq!(endpoint, Endpoint::DomainDecision { domain: "finance" });
/// ```
pub fn route<'a>(method: &str, path: &'a str) -> Result<Endpoint<'a>, RouteError> {
    let (path_only, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let not_found = || RouteError::NotFound {
        path: path_only.to_owned(),
    };
    let Some(rest) = path_only.strip_prefix('/') else {
        return Err(not_found());
    };
    let mut segs = [""; MAX_SEGMENTS];
    let mut count = 0;
    for seg in rest.split('/') {
        if seg.is_empty() || count == MAX_SEGMENTS {
            return Err(not_found());
        }
        segs[count] = seg;
        count += 1;
    }

    // Shape first (404), then method (405), then parameters (400).
    let (endpoint, allowed): (Pending<'a>, &'static str) = match &segs[..count] {
        ["health"] => (Pending::Ready(Endpoint::Health), "GET"),
        ["decide"] => (Pending::Ready(Endpoint::LegacyDecide), "POST"),
        ["decisions", "request"] => (Pending::Ready(Endpoint::LegacyDecisionRequest), "POST"),
        ["openapi.json"] => (Pending::Ready(Endpoint::OpenApi), "GET"),
        [".well-known", "jwks.json"] => (Pending::Ready(Endpoint::Jwks), "GET"),
        ["api", "v1", "domains"] => (Pending::Ready(Endpoint::ListDomains), "GET"),
        ["api", "v1", "approvals"] => (Pending::ApprovalList, "GET"),
        ["api", "v1", "approvals", id] => (Pending::Approval(ApprovalOp::Get, id), "GET"),
        ["api", "v1", "approvals", id, "approve"] => {
            (Pending::Approval(ApprovalOp::Approve, id), "POST")
        }
        ["api", "v1", "approvals", id, "deny"] => (Pending::Approval(ApprovalOp::Deny, id), "POST"),
        ["api", "v1", domain, "decisions", "request"] => {
            (Pending::Domain(DomainOp::Decide, domain), "POST")
        }
        ["api", "v1", domain, "config"] => (Pending::Domain(DomainOp::Config, domain), "GET"),
        ["api", "v1", domain, "policy-templates"] => {
            (Pending::Domain(DomainOp::Templates, domain), "GET")
        }
        _ => return Err(not_found()),
    };
    if method != allowed {
        return Err(RouteError::MethodNotAllowed {
            method: method.to_owned(),
            path: path_only.to_owned(),
            allowed,
        });
    }
    match endpoint {
        Pending::Ready(e) => Ok(e),
        Pending::ApprovalList => Ok(Endpoint::ListApprovals {
            status: approval_status_query(query)?,
        }),
        Pending::Approval(op, id) => {
            check_approval_id(id)?;
            Ok(match op {
                ApprovalOp::Get => Endpoint::GetApproval { id },
                ApprovalOp::Approve => Endpoint::ApproveApproval { id },
                ApprovalOp::Deny => Endpoint::DenyApproval { id },
            })
        }
        Pending::Domain(op, domain) => {
            if !is_valid_domain(domain) {
                return Err(RouteError::InvalidDomain {
                    domain: domain.to_owned(),
                });
            }
            Ok(match op {
                DomainOp::Decide => Endpoint::DomainDecision { domain },
                DomainOp::Config => Endpoint::DomainConfig { domain },
                DomainOp::Templates => Endpoint::PolicyTemplates { domain },
            })
        }
    }
}

enum Pending<'a> {
    Ready(Endpoint<'a>),
    ApprovalList,
    Approval(ApprovalOp, &'a str),
    Domain(DomainOp, &'a str),
}

enum ApprovalOp {
    Get,
    Approve,
    Deny,
}

enum DomainOp {
    Decide,
    Config,
    Templates,
}

/// `[a-z][a-z0-9_]*`, at most 64 characters: the same rule as `lexecon_domains::DomainId`.
pub fn is_valid_domain(domain: &str) -> bool {
    let bytes = domain.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z'))
        && bytes.len() <= 64
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

pub use lexecon_approvals::is_valid_approval_id;

fn check_approval_id(id: &str) -> Result<(), RouteError> {
    if is_valid_approval_id(id) {
        Ok(())
    } else {
        Err(RouteError::InvalidApprovalId { id: id.to_owned() })
    }
}

/// Reads `status=` from the approvals list query; other parameters are ignored.
fn approval_status_query(query: Option<&str>) -> Result<Option<ApprovalStatus>, RouteError> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut status = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "status" {
            continue;
        }
        status = Some(
            ApprovalStatus::parse(value).ok_or_else(|| RouteError::InvalidQuery {
                name: "status",
                value: value.to_owned(),
                expected: "one of pending, approved, denied, consumed, expired",
            })?,
        );
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_routes_from_its_method_and_path() {
        let cases: &[(&str, &str, Endpoint<'static>)] = &[
            ("GET", "/health", Endpoint::Health),
            (
                "POST",
                "/api/v1/finance/decisions/request",
                Endpoint::DomainDecision { domain: "finance" },
            ),
            (
                "POST",
                "/decisions/request",
                Endpoint::LegacyDecisionRequest,
            ),
            ("POST", "/decide", Endpoint::LegacyDecide),
            ("GET", "/api/v1/domains", Endpoint::ListDomains),
            (
                "GET",
                "/api/v1/supply_chain/config",
                Endpoint::DomainConfig {
                    domain: "supply_chain",
                },
            ),
            (
                "GET",
                "/api/v1/healthcare/policy-templates",
                Endpoint::PolicyTemplates {
                    domain: "healthcare",
                },
            ),
            (
                "GET",
                "/api/v1/approvals",
                Endpoint::ListApprovals { status: None },
            ),
            (
                "GET",
                "/api/v1/approvals?status=pending",
                Endpoint::ListApprovals {
                    status: Some(ApprovalStatus::Pending),
                },
            ),
            (
                "GET",
                "/api/v1/approvals?limit=3&status=expired",
                Endpoint::ListApprovals {
                    status: Some(ApprovalStatus::Expired),
                },
            ),
            (
                "GET",
                "/api/v1/approvals/apr_01-x",
                Endpoint::GetApproval { id: "apr_01-x" },
            ),
            (
                "POST",
                "/api/v1/approvals/abc/approve",
                Endpoint::ApproveApproval { id: "abc" },
            ),
            (
                "POST",
                "/api/v1/approvals/abc/deny",
                Endpoint::DenyApproval { id: "abc" },
            ),
            ("GET", "/.well-known/jwks.json", Endpoint::Jwks),
            ("GET", "/openapi.json", Endpoint::OpenApi),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                route(method, path).as_ref(),
                Ok(expected),
                "{method} {path}"
            );
            assert_eq!(expected.method(), *method);
            assert!(
                ROUTES.contains(&(*method, expected.template())),
                "{} missing from ROUTES",
                expected.template()
            );
        }
        assert_eq!(
            cases.len(),
            ROUTES.len() + 2,
            "ROUTES lists every route once"
        );
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/",
            "",
            "health",
            "/healthz",
            "/health/",
            "//health",
            "/api/v1",
            "/api/v1/finance",
            "/api/v1/finance/decisions",
            "/api/v2/finance/decisions/request",
            "/api/v1/finance/decisions/request/extra",
            "/api/v1/approvals/a/b/c",
            "/api/v1/approvals/abc/cancel",
        ] {
            assert!(
                matches!(route("GET", path), Err(RouteError::NotFound { .. })),
                "{path:?} should be 404, got {:?}",
                route("GET", path)
            );
        }
    }

    #[test]
    fn known_path_with_wrong_method_is_method_not_allowed_with_allow_list() {
        let cases = [
            ("GET", "/decide", "POST"),
            ("PUT", "/api/v1/finance/decisions/request", "POST"),
            ("POST", "/health", "GET"),
            ("DELETE", "/api/v1/approvals/abc", "GET"),
            ("GET", "/api/v1/approvals/abc/approve", "POST"),
            ("post", "/decide", "POST"),
        ];
        for (method, path, allowed) in cases {
            assert_eq!(
                route(method, path),
                Err(RouteError::MethodNotAllowed {
                    method: method.into(),
                    path: path.into(),
                    allowed
                })
            );
        }
    }

    #[test]
    fn malformed_domain_is_invalid_domain_naming_it() {
        for domain in ["Finance", "1abc", "fin-ance", "_x", "%66inance"] {
            let path = format!("/api/v1/{domain}/decisions/request");
            let err = route("POST", &path).unwrap_err();
            assert_eq!(err.to_string(), format!("Invalid domain: {domain}"));
        }
        let long = "a".repeat(65);
        assert!(matches!(
            route("GET", &format!("/api/v1/{long}/config")),
            Err(RouteError::InvalidDomain { .. })
        ));
    }

    #[test]
    fn malformed_approval_id_and_status_are_rejected() {
        assert!(matches!(
            route("GET", "/api/v1/approvals/a.b"),
            Err(RouteError::InvalidApprovalId { .. })
        ));
        let long = "a".repeat(65);
        assert!(matches!(
            route("POST", &format!("/api/v1/approvals/{long}/deny")),
            Err(RouteError::InvalidApprovalId { .. })
        ));
        let err = route("GET", "/api/v1/approvals?status=open").unwrap_err();
        assert!(err.to_string().contains("status=\"open\""), "{err}");
    }

    #[test]
    fn approvals_literal_wins_over_a_domain_named_approvals() {
        assert_eq!(
            route("GET", "/api/v1/approvals/config"),
            Ok(Endpoint::GetApproval { id: "config" })
        );
        assert_eq!(
            route("GET", "/api/v1/domains/config"),
            Ok(Endpoint::DomainConfig { domain: "domains" })
        );
    }

    #[test]
    fn legacy_endpoints_decide_in_the_ai_domain() {
        assert_eq!(
            route("POST", "/decide").unwrap().decision_domain(),
            Some("ai")
        );
        assert_eq!(
            route("POST", "/decisions/request")
                .unwrap()
                .decision_domain(),
            Some("ai")
        );
        assert_eq!(
            route("POST", "/api/v1/finance/decisions/request")
                .unwrap()
                .decision_domain(),
            Some("finance")
        );
        assert_eq!(route("GET", "/health").unwrap().decision_domain(), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_method_and_path_routes_or_errors_without_panicking(
            method in "[A-Za-z]{0,8}",
            path in "(/[a-z0-9._{}?=&%-]{0,12}){0,7}",
        ) {
            if let Ok(endpoint) = route(&method, &path) {
                prop_assert_eq!(endpoint.method(), method.as_str());
                prop_assert!(ROUTES.contains(&(endpoint.method(), endpoint.template())));
            }
        }
    }
}
