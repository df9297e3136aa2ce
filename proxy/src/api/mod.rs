//! The decision API over HTTP: routing of the API paths ([`router`]), parsing and validating
//! request bodies into [`lexecon_policy_cache::DecisionInput`] ([`validate`], including the Lexecon
//! 1.x `/decide` body), the JSON response and error bodies ([`responses`]), the handler that runs
//! the enforcement pipeline for each request ([`http`]) and the checked-in OpenAPI document
//! ([`openapi`]). The approvals state machine is `lexecon-approvals`'.
//!
//! This module never decides (that is `lexecon-policy-cache`, through [`crate::enforce`]), and never
//! does blocking I/O on the request path: approval store writes run through
//! [`lexecon_approvals::ApprovalStore::run_blocking`].

pub mod error;
pub mod expiry;
pub mod http;
pub mod openapi;
pub mod responses;
pub mod router;
pub mod validate;

pub use error::ApiError;
pub use responses::IssuedToken;
pub use router::{route, Endpoint, RouteError};
pub use validate::{DecisionRequest, FieldError, LegacyDecideRequest, RequestError};
