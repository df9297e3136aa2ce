//! Human approvals end to end (filled in below).

#[path = "support/mod.rs"]
mod support;

#[path = "support/api_harness.rs"]
mod api_harness;
