//! `loadgen`: an open-loop, constant-rate HTTP/1.1 load generator for `benches/load.sh`, in the
//! manner of wrk2. N keep-alive connections share one schedule (request k is due at
//! `start + k / rate`); latency runs from a request's due time to the end of its response, so a
//! target that stalls is charged for every request it delayed (no coordinated omission).
//!
//! It owns the schedule, the workloads of `benches/load/wrk.lua`, an HTTP/1.1 response framer and
//! the send loop. It must never send to anything but loopback (`127.0.0.0/8`, `::1`), and every run
//! is bounded in time.

pub mod error;
pub mod pacer;
pub mod response;
pub mod run;
pub mod schedule;
pub mod target;
pub mod workload;

pub use error::LoadgenError;
pub use run::{run, Report, RunConfig};
pub use schedule::Schedule;
pub use target::loopback_target;
pub use workload::{requests, Workload};
