//! Lexecon's configuration and policy schema.
//!
//! Owns the shape of every document a user writes — the sidecar configuration file, policy documents
//! (and the Lexecon 1.x policy format, converted on load), signed bundles — their defaults, and their
//! validation with errors that name the file, the path inside the document and the reason. It reads
//! files only when asked to load one (start-up, reload, CLI); nothing here runs on the request path.

pub mod classifier;
pub mod error;
pub mod file;
pub mod policy;

pub use error::{ConfigError, Located};
pub use file::Config;
pub use policy::{Condition, Effect, Mode, Op, PolicyDocument, Rule, TemplateUse};
