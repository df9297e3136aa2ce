//! The `tokens:` section: capability-token lifetime, issuer, signing keys and reuse. Owns the
//! defaults and the checks (`tokens.ttl` from 2 s to 24 h); `lexecon_token::TokenMinter` takes
//! [`TokenSettings`] as they are and re-runs [`TokenSettings::problems`] for callers that build
//! them by hand. Never reads the key files it names.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{show, string_enum, SettingError};

string_enum! {
    /// Whether a permit always gets a fresh token.
    #[derive(Default)]
    pub enum MintMode {
        /// A new token (new `jti`, `dec`, `led`) for every permit.
        PerRequest = "per_request",
        /// The same token for the same actor, action, resource, policy and audience while more
        /// than half its life remains. Its `dec` and `led` name the decision that first minted it.
        #[default]
        Reuse = "reuse",
    }
}

/// The shortest token lifetime.
pub const MIN_TTL: Duration = Duration::from_secs(2);
/// The longest token lifetime.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The `tokens:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Token lifetime (whole seconds, at least 2 s).
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub ttl: Duration,
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// PKCS#8 PEM private keys, the first signs; empty: generate one in the data directory.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    #[serde(default)]
    pub mode: MintMode,
    /// Most tokens kept for reuse.
    #[serde(default = "default_reuse_capacity")]
    pub reuse_capacity: u64,
}

fn default_ttl() -> Duration {
    Duration::from_secs(60)
}
fn default_issuer() -> String {
    "lexecon".to_owned()
}
fn default_reuse_capacity() -> u64 {
    100_000
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            ttl: default_ttl(),
            issuer: default_issuer(),
            keys: Vec::new(),
            mode: MintMode::default(),
            reuse_capacity: default_reuse_capacity(),
        }
    }
}

impl TokenSettings {
    /// Every out-of-range setting (the minter refuses to start on the first).
    pub fn problems(&self) -> Vec<SettingError> {
        let mut problems = Vec::new();
        if self.ttl < MIN_TTL {
            problems.push(SettingError::new(
                "tokens.ttl",
                format!(
                    "{} is below the minimum of {}",
                    show(self.ttl),
                    show(MIN_TTL)
                ),
            ));
        }
        if self.ttl > MAX_TTL {
            problems.push(SettingError::new(
                "tokens.ttl",
                format!(
                    "{} is above the maximum of {}",
                    show(self.ttl),
                    show(MAX_TTL)
                ),
            ));
        }
        if self.issuer.is_empty() {
            problems.push(SettingError::new("tokens.issuer", "must not be empty"));
        }
        problems
    }
}
