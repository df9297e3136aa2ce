//! [`ApiError`]: every way an API request can fail, with its HTTP status and the one error body shape
//! all of them share: `{"error": {"code", "message", "fields"?}}` (`fields` only for 422).
//!
//! It owns the mapping from the routing, validation and approval errors to status codes; it never
//! decides, and it never leaks internals beyond the message of the underlying error.

use serde::Serialize;

use crate::api::responses::raw_json_response;
use crate::api::router::RouteError;
use crate::api::validate::{FieldError, RequestError};
use lexecon_approvals::ApprovalError;

/// Why the API answers with an error instead of a result.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// 401: no or an invalid bearer token.
    #[error("authentication required: {reason}")]
    Unauthorized { reason: String },
    /// 403: authenticated, but not allowed (e.g. approving without the `approver` role).
    #[error("forbidden: {reason}")]
    Forbidden { reason: String },
    /// 429, with `retry-after`.
    #[error("rate limit exceeded for {caller}; retry after {retry_after_secs} s")]
    RateLimited {
        caller: String,
        retry_after_secs: u64,
    },
    /// 503: no policy loaded, ledger writer stuck, approval store unwritable.
    #[error("service unavailable: {reason}")]
    Unavailable { reason: String },
    /// 500.
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

/// `{"error": {...}}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`validation_failed`, `invalid_domain`, …).
    pub code: &'static str,
    /// Human-readable message naming what was wrong.
    pub message: String,
    /// 422 only: each invalid field and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
}

impl ApiError {
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            ApiError::Route(e) => match e {
                RouteError::NotFound { .. } => S::NOT_FOUND,
                RouteError::MethodNotAllowed { .. } => S::METHOD_NOT_ALLOWED,
                RouteError::InvalidDomain { .. }
                | RouteError::InvalidApprovalId { .. }
                | RouteError::InvalidQuery { .. } => S::BAD_REQUEST,
            },
            ApiError::Request(e) => match e {
                RequestError::BodyTooLarge { .. } => S::PAYLOAD_TOO_LARGE,
                RequestError::Syntax { .. } | RequestError::InvalidFields { .. } => {
                    S::UNPROCESSABLE_ENTITY
                }
                RequestError::InvalidDomain { .. } => S::BAD_REQUEST,
                RequestError::DomainNotSupported { .. } => S::NOT_FOUND,
            },
            ApiError::Approval(e) => e.status(),
            ApiError::Unauthorized { .. } => S::UNAUTHORIZED,
            ApiError::Forbidden { .. } => S::FORBIDDEN,
            ApiError::RateLimited { .. } => S::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => S::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => S::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Route(e) => match e {
                RouteError::NotFound { .. } => "not_found",
                RouteError::MethodNotAllowed { .. } => "method_not_allowed",
                RouteError::InvalidDomain { .. } => "invalid_domain",
                RouteError::InvalidApprovalId { .. } => "invalid_approval_id",
                RouteError::InvalidQuery { .. } => "invalid_query",
            },
            ApiError::Request(e) => match e {
                RequestError::BodyTooLarge { .. } => "payload_too_large",
                RequestError::Syntax { .. } => "invalid_json",
                RequestError::InvalidFields { .. } => "validation_failed",
                RequestError::InvalidDomain { .. } => "invalid_domain",
                RequestError::DomainNotSupported { .. } => "domain_not_supported",
            },
            ApiError::Approval(e) => e.code(),
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal { .. } => "internal",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let fields = match self {
            ApiError::Request(
                e @ (RequestError::Syntax { .. } | RequestError::InvalidFields { .. }),
            ) => Some(e.fields()),
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                fields,
            },
        }
    }

    /// The full HTTP answer: status, JSON body, `content-length`, and `allow` (405) or
    /// `retry-after` (429) / `www-authenticate` (401) where they apply.
    pub fn to_response(&self) -> http::Response<Vec<u8>> {
        let body = serde_json::to_vec(&self.body()).unwrap_or_else(|_| {
            br#"{"error":{"code":"internal","message":"error body serialization failed"}}"#.to_vec()
        });
        let mut response = raw_json_response(self.status(), body);
        let headers = response.headers_mut();
        match self {
            ApiError::Route(RouteError::MethodNotAllowed { allowed, .. }) => {
                headers.insert(http::header::ALLOW, http::HeaderValue::from_static(allowed));
            }
            ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                headers.insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(*retry_after_secs),
                );
            }
            ApiError::Unauthorized { .. } => {
                headers.insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode as S;
    use serde_json::{json, Value};

    fn body_json(e: &ApiError) -> Value {
        serde_json::from_slice(e.to_response().body()).unwrap()
    }

    #[test]
    fn each_error_maps_to_its_status_and_code() {
        let cases: Vec<(ApiError, S, &str)> = vec![
            (
                crate::api::router::route("GET", "/nope")
                    .unwrap_err()
                    .into(),
                S::NOT_FOUND,
                "not_found",
            ),
            (
                crate::api::router::route("GET", "/decide")
                    .unwrap_err()
                    .into(),
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            ),
            (
                crate::api::router::route("GET", "/api/v1/X/config")
                    .unwrap_err()
                    .into(),
                S::BAD_REQUEST,
                "invalid_domain",
            ),
            (
                RequestError::BodyTooLarge {
                    size: 70_000,
                    limit: 65_536,
                }
                .into(),
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
            ),
            (
                crate::api::validate::parse_decision_request("ai", b"{")
                    .unwrap_err()
                    .into(),
                S::UNPROCESSABLE_ENTITY,
                "invalid_json",
            ),
            (
                crate::api::validate::domain_not_supported("energy").into(),
                S::NOT_FOUND,
                "domain_not_supported",
            ),
            (
                ApiError::Unauthorized {
                    reason: "missing bearer token".into(),
                },
                S::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                ApiError::RateLimited {
                    caller: "alice".into(),
                    retry_after_secs: 2,
                },
                S::TOO_MANY_REQUESTS,
                "rate_limited",
            ),
            (
                ApiError::Unavailable {
                    reason: "no policy loaded".into(),
                },
                S::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
        ];
        for (err, status, code) in cases {
            let response = err.to_response();
            assert_eq!(response.status(), status, "{err}");
            let body = body_json(&err);
            assert_eq!(body["error"]["code"], code);
            assert_eq!(body["error"]["message"], err.to_string());
            assert_eq!(
                response.headers()["content-length"],
                response.body().len().to_string().as_str()
            );
        }
    }

    #[test]
    fn validation_error_body_lists_each_field() {
        let err: ApiError = crate::api::validate::parse_decision_request("ai", br#"{"actor": 1}"#)
            .unwrap_err()
            .into();
        assert_eq!(err.status(), S::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body_json(&err)["error"]["fields"],
            json!([
                {"field": "actor", "reason": "expected a string, found a number"},
                {"field": "action", "reason": "is required"}
            ])
        );
    }

    #[test]
    fn non_validation_errors_have_no_fields_member() {
        let err: ApiError = crate::api::validate::domain_not_supported("energy").into();
        let body = body_json(&err);
        assert_eq!(body["error"]["message"], "Domain not supported: energy");
        assert!(body["error"].get("fields").is_none());
    }

    #[test]
    fn protocol_headers_accompany_405_429_and_401() {
        let not_allowed: ApiError = crate::api::router::route("DELETE", "/health")
            .unwrap_err()
            .into();
        assert_eq!(not_allowed.to_response().headers()["allow"], "GET");
        let limited = ApiError::RateLimited {
            caller: "a".into(),
            retry_after_secs: 3,
        };
        assert_eq!(limited.to_response().headers()["retry-after"], "3");
        let unauth = ApiError::Unauthorized {
            reason: "expired token".into(),
        };
        assert_eq!(unauth.to_response().headers()["www-authenticate"], "Bearer");
    }
}
