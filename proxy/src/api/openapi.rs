//! The checked-in OpenAPI 3.1 document of the API listener (`proxy/openapi.json`), served as is at
//! `GET /openapi.json`. Its tests check that it parses, that every route of the router appears in
//! it, and that the bodies the response builders produce validate against its schemas, so the
//! document cannot drift from the code. It never builds the document at run time.

/// The OpenAPI document, verbatim.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// `GET /openapi.json`.
pub fn response() -> http::Response<Vec<u8>> {
    crate::api::responses::raw_json_response(http::StatusCode::OK, OPENAPI_JSON.as_bytes().to_vec())
}
