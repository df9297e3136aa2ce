//! The crate's error type: what went wrong before or around a run. Failures of single requests are
//! counted in the report, not returned.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("target `{target}` is not a loopback address ({found}); loadgen only sends to 127.0.0.0/8 or ::1")]
    NotLoopback { target: String, found: String },
    #[error("target `{target}`: {reason}")]
    BadTarget {
        target: String,
        reason: &'static str,
    },
    #[error("bearer token contains a character that cannot go into an HTTP header (only visible ASCII is allowed)")]
    BadToken,
    #[error("unknown workload `{0}`, expected `get` or `post`")]
    UnknownWorkload(String),
    #[error("{what} is {value}, expected {expected}")]
    OutOfRange {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connection task failed: {0}")]
    Task(String),
    #[error("latency histogram: {0}")]
    Histogram(String),
}
