//! The `lexecon` binary's library: everything at the edge. The pingora proxy (route → identify →
//! limit → classify → decide → forward or block), the ledger writer, capability-token minting, the
//! admin and decision API, and the CLI. Decision logic lives in `lexecon-policy-cache`; this crate
//! only wires I/O around it.

pub mod api;
pub mod cli;
pub mod control;
pub mod demo;
pub mod enforce;
pub mod engine;
pub mod headers;
pub mod identity;
pub mod limit;
pub mod run;
pub mod server;
