//! The decision API and human approvals, independent of the transport: routing of the API paths
//! ([`router`]), parsing and validating request bodies into [`lexecon_policy_cache::DecisionInput`]
//! ([`validate`], including the Lexecon 1.x `/decide` body), the JSON response and error bodies
//! ([`responses`]), the persisted store of pending human approvals ([`approvals`]) and the checked-in
//! OpenAPI document ([`openapi`]).
//!
//! This module never decides (that is `lexecon-policy-cache`), never reads a clock on its own (time is
//! passed in), and never does blocking I/O on the request path: only [`approvals::ApprovalStore`]
//! touches disk, for rare state changes, and async callers run those through
//! [`approvals::ApprovalStore::run_blocking`].

pub mod approvals;
pub mod error;
pub mod http;
pub mod openapi;
pub mod responses;
pub mod router;
pub mod validate;

pub use approvals::{
    redeem, Approval, ApprovalConfig, ApprovalError, ApprovalEvent, ApprovalEventKind,
    ApprovalStatus, ApprovalStore, Approver, Redemption, RequestDigest,
};
pub use error::ApiError;
pub use responses::IssuedToken;
pub use router::{route, Endpoint, RouteError};
pub use validate::{DecisionRequest, FieldError, LegacyDecideRequest, RequestError};
