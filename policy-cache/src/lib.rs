//! Lexecon's pure decision logic: compiled policies, evaluation with an explanation of the deciding
//! rule, the snapshot store swapped atomically with `arc-swap`, the decision cache and the decision
//! service that runs the whole pipeline. No network, no disk, no async runtime; nothing here may
//! block a request thread or fail open.

mod condition;
mod pattern;
mod template;

pub mod cache;
pub mod compile;
pub mod decision;
pub mod error;
pub mod evaluate;
pub mod service;
pub mod store;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod testing;

pub use cache::DecisionCache;
pub use compile::{policy_version_hash, CompiledPolicy, TemplateCheck};
pub use decision::{Decision, DecisionInput, Explanation, RuleId, SharedStr};
pub use error::{DecideError, PolicyError};
pub use evaluate::{DecidedBy, EvalOutcome};
pub use service::{new_uuid_v7, uuid_v7, DecisionService, ServiceConfig};
pub use store::{PolicySnapshot, PolicyStore};
