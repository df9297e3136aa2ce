//! The typed schemas of the subsystem sections of the configuration file — `ledger`, `tokens`,
//! `api`, `limits` and `domain_settings` — with their one set of defaults and their checks.
//!
//! The runtime types stay in their crates and are built from these (`lexecon_ledger::LedgerConfig::
//! from_settings`, `lexecon_token::TokenMinter::new`, the approval store's `ApprovalConfig`); a
//! runtime guard that must re-check a value calls the check defined here, so every rule has one
//! owner. [`crate::Config::validate`] reports each problem with its place in the document
//! (`ledger.linger: 5ms is above flush_interval (1ms)`). Nothing here reads a file, starts a thread
//! or runs on the request path.

pub mod api;
pub mod control_plane;
pub mod ledger;
pub mod limits;
pub mod tokens;

use lexecon_domains::{DomainError, DomainSettings};
use serde::{Deserialize, Deserializer};

pub use api::{ApiSettings, ApprovalSettings};
pub use control_plane::ControlPlaneSettings;
pub use ledger::{Durability, FieldRule, LedgerSection, LedgerSettings, WhenFull};
pub use limits::RequestLimits;
pub use tokens::{MintMode, TokenSettings};

/// One setting out of range: where it is in the configuration file (`ledger.queue`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub field: &'static str,
    pub reason: String,
}

impl SettingError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// `humantime` text of a duration, as a user writes it (`5ms`, `1m 30s`).
pub(crate) fn show(d: std::time::Duration) -> String {
    humantime_serde::re::humantime::format_duration(d).to_string()
}

/// Reads an absent or `null` section as its defaults (`tokens:` with nothing after it).
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The problems of `domain_settings`, located under `domain_settings.` (the plugins' own check).
pub(crate) fn domain_settings_problem(settings: &DomainSettings) -> Option<(String, String)> {
    match settings.validate() {
        Ok(()) => None,
        Err(DomainError::InvalidSettings { field, reason }) => {
            Some((format!("domain_settings.{field}"), reason))
        }
        Err(other) => Some(("domain_settings".to_owned(), other.to_string())),
    }
}

/// A `snake_case` string enum whose parse error lists the choices: `expected async or sync, got
/// "sometimes"`.
macro_rules! string_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The word the configuration file uses for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                match text.as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(serde::de::Error::custom(format!(
                        "expected {}, got {text:?}",
                        $crate::sections::choices(&[$($text),+])
                    ))),
                }
            }
        }
    };
}
pub(crate) use string_enum;

/// `a`, `a or b`, `a, b or c`.
pub(crate) fn choices(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, ConfigError, Located};
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    fn invalid(text: &str) -> Vec<Located> {
        match Config::from_yaml("t.yaml", text) {
            Err(ConfigError::Invalid(errors)) => errors,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    fn one(text: &str) -> String {
        let errors = invalid(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors[0].to_string()
    }

    #[test]
    fn section_defaults_are_the_documented_ones() {
        let c = Config::from_yaml("t.yaml", "data_dir: /d\n").unwrap();
        let ledger = c.ledger.settings().unwrap();
        assert_eq!(
            ledger.resolved_dir(Path::new("/d")),
            PathBuf::from("/d/ledger")
        );
        assert_eq!(ledger.durability, Durability::Async);
        assert_eq!(ledger.flush_interval, Duration::from_millis(5));
        assert_eq!(ledger.queue, 65_536);
        assert_eq!(ledger.when_full, WhenFull::Block);
        assert_eq!(ledger.checkpoint_every, 1000);
        assert_eq!(ledger.checkpoint_interval, Duration::from_secs(10));
        assert_eq!(ledger.segment_max_bytes, 64 * 1024 * 1024);
        assert_eq!(ledger.batch_max, 4096);
        assert_eq!(ledger.linger, None);
        assert_eq!(
            ledger::effective_linger(ledger.linger, ledger.flush_interval),
            Duration::from_millis(1)
        );
        assert!(ledger.redact.is_empty());
        assert_eq!(c.tokens.ttl, Duration::from_secs(60));
        assert_eq!(c.tokens.issuer, "lexecon");
        assert!(c.tokens.keys.is_empty());
        assert_eq!(c.tokens.mode, MintMode::Reuse);
        assert_eq!(c.tokens.reuse_capacity, 100_000);
        assert_eq!(c.api.rate_limit, None);
        assert_eq!(c.api.approvals.ttl, Duration::from_secs(15 * 60));
        assert_eq!(c.api.approvals.retention, Duration::from_secs(24 * 3600));
        assert_eq!(c.api.approvals.max_pending, 10_000);
        assert_eq!(c.api.approvals.max_stored, 50_000);
        assert!(c.api.roles.is_empty());
        assert_eq!(c.domain_settings, DomainSettings::default());
    }

    #[test]
    fn every_accepted_ledger_form_still_parses() {
        let ledger = |text: &str| {
            Config::from_yaml("t.yaml", &format!("data_dir: /d\nledger: {text}\n"))
                .unwrap()
                .ledger
        };
        assert_eq!(ledger("off"), LedgerSection::Off);
        assert_eq!(ledger("false"), LedgerSection::Off);
        assert_eq!(ledger("null"), LedgerSection::default());
        assert_eq!(ledger(""), LedgerSection::default());
        let on = ledger("{dir: audit, durability: sync}");
        let s = on.settings().unwrap();
        assert_eq!(s.resolved_dir(Path::new("/d")), PathBuf::from("/d/audit"));
        assert_eq!(s.durability, Durability::Sync);
        let abs = ledger("{dir: /var/audit}");
        assert_eq!(
            abs.settings().unwrap().resolved_dir(Path::new("/d")),
            PathBuf::from("/var/audit")
        );
        let redact =
            ledger("{redact: {healthcare: {patient_id: hash, purpose: keep, card: mask}}}");
        let rules = &redact.settings().unwrap().redact["healthcare"];
        let expected: BTreeMap<String, FieldRule> = [
            ("card".to_owned(), FieldRule::Mask),
            ("patient_id".to_owned(), FieldRule::Hash),
            ("purpose".to_owned(), FieldRule::Keep),
        ]
        .into();
        assert_eq!(rules, &expected);
        let tokens = Config::from_yaml("t.yaml", "tokens:\napi: null\ndomain_settings:\n").unwrap();
        assert_eq!(tokens.tokens, TokenSettings::default());
        assert_eq!(tokens.api, ApiSettings::default());
    }

    #[test]
    fn a_bad_ledger_value_is_reported_at_its_place() {
        assert_eq!(
            one("ledger: {durability: sometimes}\n")
                .split(" at line")
                .next()
                .unwrap(),
            "t.yaml: ledger.durability: expected async or sync, got \"sometimes\""
        );
        assert_eq!(
            one("ledger: {flush_interval: 1ms, linger: 5ms}\n"),
            "t.yaml: ledger.linger: 5ms is above flush_interval (1ms)"
        );
        let errors = invalid("ledger: {queue: 0, batch_max: 0, segment_max_bytes: 100}\n");
        let at: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            at,
            [
                "ledger.queue",
                "ledger.batch_max",
                "ledger.segment_max_bytes"
            ]
        );
        let unknown = invalid("ledger: {durabilty: sync}\n");
        assert!(unknown[0].reason.contains("durabilty"), "{unknown:?}");
        let rule = one("ledger: {redact: {healthcare: {patient_id: shred}}}\n");
        assert!(
            rule.starts_with("t.yaml: ledger.redact.healthcare.patient_id: expected keep, mask or hash, got \"shred\""),
            "{rule}"
        );
        assert!(one("ledger: on\n").contains("expected a mapping of ledger settings or `off`"));
    }

    #[test]
    fn a_bad_token_api_or_domain_setting_is_reported_at_its_place() {
        assert_eq!(
            one("tokens: {ttl: 1s}\n"),
            "t.yaml: tokens.ttl: 1s is below the minimum of 2s"
        );
        assert_eq!(
            one("tokens: {issuer: ''}\n"),
            "t.yaml: tokens.issuer: must not be empty"
        );
        assert!(one("tokens: {mode: always}\n")
            .starts_with("t.yaml: tokens.mode: expected per_request or reuse, got \"always\""));
        assert_eq!(
            one("api: {approvals: {ttl: 0s}}\n"),
            "t.yaml: api.approvals.ttl: must be above 0"
        );
        assert_eq!(
            one("api: {rate_limit: {per_actor: 5/s, burst: 0}}\n"),
            "t.yaml: api.rate_limit.burst: must be at least 1"
        );
        assert_eq!(
            one("api: {rate_limit: {per_actor: 5/s, max_actors: 0}}\n"),
            "t.yaml: api.rate_limit.max_actors: 0 is outside 1..=10000000"
        );
        assert_eq!(
            one("api: {approvals: {max_pending: 100, max_stored: 99}}\n"),
            "t.yaml: api.approvals.max_stored: 99 is outside max_pending (100)..=10000000"
        );
        let unknown = invalid("api: {rate: 1}\n");
        assert_eq!(unknown[0].path, "api.rate");
        assert!(unknown[0].reason.contains("rate"), "{unknown:?}");
        let domain = invalid("domain_settings: {finance: {max_order_value: -1}}\n");
        assert_eq!(domain[0].path, "domain_settings.finance.max_order_value");
    }

    #[test]
    fn choices_read_as_a_sentence() {
        assert_eq!(choices(&["async", "sync"]), "async or sync");
        assert_eq!(choices(&["keep", "mask", "hash"]), "keep, mask or hash");
    }
}
