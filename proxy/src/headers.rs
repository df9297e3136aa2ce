//! The HTTP headers Lexecon adds to what it forwards and reads from callers, in one place: the
//! proxy, the decision API and the demo upstream all name them from here. Constants only.

/// The request header that carries the decision id(s) to the upstream.
pub const DECISION_ID_HEADER: &str = "x-lexecon-decision-id";
/// The header carrying the capability token of a permitted request to the upstream.
pub const CAPABILITY_HEADER: &str = lexecon_token::CAPABILITY_HEADER;

/// The request header a retried request redeems a human approval with.
pub const APPROVAL_HEADER: &str = "x-lexecon-approval";

/// The request header a caller may set to correlate its request with the decision.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The header a decision API caller names the capability token's audience with.
pub const AUDIENCE_HEADER: &str = "x-lexecon-audience";
