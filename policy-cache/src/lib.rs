//! Lexecon's pure decision logic: compiled policies, evaluation with an explanation of the deciding
//! rule, the snapshot store swapped atomically with `arc-swap`, and the decision cache. No network,
//! no disk, no async runtime.

pub mod decision;

pub use decision::{Decision, DecisionInput, Explanation};
