//! Human approvals of escalated decisions: the [`ApprovalStore`].
//!
//! An `escalate` decision creates a pending [`Approval`] bound to the actor, action, resource and a
//! [`RequestDigest`] of the request. A caller with the `approver` role who is not the actor approves or
//! denies it; the original caller then redeems it exactly once ([`ApprovalStore::consume`]) for the
//! very same request before it expires. Every state change returns an [`ApprovalEvent`] for the
//! ledger.
//!
//! The store keeps everything in memory behind a `Mutex` (approvals are rare; the lock is never held
//! across an await) and persists every change to `approvals.sqlite3` (SQLite, WAL, full sync) in the
//! data directory, one transaction per change, reloaded on start, so pending approvals survive a
//! restart; an `approvals.json` of earlier versions is imported once. A change that cannot be persisted is rolled back and reported: an
//! approval is never consumable twice because a write failed. Mutating calls do blocking file I/O;
//! async callers use [`ApprovalStore::run_blocking`]. Time is always passed in (`now`); the store
//! never reads a clock, so tests need no sleeps. It never decides anything but the approval's own
//! state.

mod digest;
mod error;
mod model;
mod redeem;
mod store;

pub use digest::{Call, RequestDigest};
pub use error::ApprovalError;
/// The store's settings are the configuration's `api.approvals` section (one owner of the defaults).
pub use lexecon_config::sections::ApprovalSettings;
pub use model::{
    is_valid_approval_id, Approval, ApprovalEvent, ApprovalEventKind, ApprovalStatus, Approver,
};
pub use redeem::{redeem, Redemption};
pub use store::ApprovalStore;

/// The JWT role that may approve or deny.
pub const APPROVER_ROLE: &str = "approver";
/// File name of the store (SQLite) inside the data directory.
pub const STORE_FILE: &str = "approvals.sqlite3";
/// File name of the JSON store of earlier versions, imported on open.
pub const LEGACY_STORE_FILE: &str = "approvals.json";

#[cfg(test)]
mod tests;
