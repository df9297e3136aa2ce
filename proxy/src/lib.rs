//! The `lexecon` binary's library: everything at the edge. The pingora proxy (route → identify →
//! limit → classify → decide → forward or block), the ledger writer, capability-token minting, the
//! admin and decision API, and the CLI. Decision logic lives in `lexecon-policy-cache`; this crate
//! only wires I/O around it.

pub mod api;
pub mod classify;
pub mod cli;
pub mod decide;
pub mod demo;
mod dirlock;
pub mod engine;
pub mod identity;
pub mod json;
pub mod ledger;
pub mod limit;
pub mod run;
pub mod server;
pub mod token;
