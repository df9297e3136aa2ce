//! Lexecon's configuration and policy schema.
//!
//! Owns the shape of every document a user writes — the sidecar configuration file, policy documents
//! (and the Lexecon 1.x policy format, converted on load), signed bundles — their defaults, and their
//! validation with errors that name the file, the path inside the document and the reason. It reads
//! files only when asked to load one (start-up, reload, CLI); nothing here runs on the request path.

pub mod bundle;
pub mod canonical;
pub mod classifier;
pub mod error;
pub mod legacy;
pub mod policy;
pub mod policy_load;
pub mod policy_validate;
pub mod strict_value;
pub mod template;

pub use bundle::{Bundle, BundleSignature, VerifiedBundle, BUNDLE_FORMAT};
pub use error::{ConfigError, Located};
pub use policy::{Condition, Effect, Mode, Op, PolicyDocument, Rule, TemplateUse};
pub use policy_load::{load_policy_file, parse_policy, policy_from_value};
pub use policy_validate::{policy_errors, validate_policy};
pub use template::instantiate_template;
