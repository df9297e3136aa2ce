//! Lexecon's configuration and policy schema.
//!
//! Owns the shape of every document a user writes — the sidecar configuration file, policy documents
//! (and the Lexecon 1.x policy format, converted on load), signed bundles — their defaults, and their
//! validation with errors that name the file, the path inside the document and the reason. It reads
//! files only when asked to load one (start-up, reload, CLI); nothing here runs on the request path.
//!
//! ```
//! use lexecon_config::{parse_policy, validate_policy, Effect};
//!
//! let doc = parse_policy("desk.yaml", r#"
//! id: trading-desk
//! domain: finance
//! rules:
//!   - {id: algos-may-trade, effect: permit, actor: "act_trading_algo:*", action: axn_place_order,
//!      when: [{field: context.order_value, op: le, value: 5000000}]}
//! "#)?;
//! validate_policy("desk.yaml", &doc, None)?;
//! assert_eq!(doc.rules[0].effect, Effect::Permit);
//! assert_eq!(doc.policy_version_hash().len(), 64);
//!
//! let bad = parse_policy("bad.yaml", "id: x\ndomain: finance\nrules: [{id: r, effect: permit, when: [{field: context.a, op: in, value: 5}]}]\n")?;
//! let err = validate_policy("bad.yaml", &bad, None).unwrap_err();
//! assert_eq!(err.to_string(), "bad.yaml: rules[0].when[0].value: in needs a list of values, found a number");
//! # Ok::<(), lexecon_config::ConfigError>(())
//! ```

pub mod classifier;
pub mod error;
pub mod examples;
pub mod file;
pub mod policy;
pub mod sections;

pub mod bundle;
pub mod canonical;
pub mod legacy;
pub mod policy_load;
pub mod policy_validate;
pub mod strict_value;
pub mod template;
pub mod tool_pins;

pub use error::{ConfigError, Located};
pub use file::Config;
pub use policy::{Condition, Effect, Mode, Op, PolicyDocument, Rule, TemplateUse};
pub use sections::{ApiSettings, ApprovalSettings, LedgerSection, LedgerSettings, TokenSettings};

pub use bundle::{BuildOptions, Bundle, BundleError, BundleSignature, Manifest, BUNDLE_FORMAT};
pub use policy_load::{json_type_name, load_policy_file, parse_policy, policy_from_value};
pub use policy_validate::{policy_errors, validate_policy};
pub use template::instantiate_template;
