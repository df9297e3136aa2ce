//! Errors with a location: file, path inside the document, and what was wrong.
//!
//! Owns [`ConfigError`], the one error type of this crate, and [`Located`], one problem in a document.
//! Validation collects every problem of a document into [`ConfigError::Invalid`] before failing; it
//! never stops at the first one and never panics on bad input.

use std::fmt;

use thiserror::Error;

/// One problem in a document: where it is and why it is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file (or `<inline>`, `<bundle>/policies/ai.yaml`).
    pub file: String,
    /// The path inside the document, e.g. `rules[3].when[0].op` (empty for the whole document).
    pub path: String,
    pub reason: String,
}

impl Located {
    pub fn new(
        file: impl Into<String>,
        path: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.reason)
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    /// Every problem found in one or more documents, in document order.
    #[error("{}", display_all(.0))]
    Invalid(Vec<Located>),
    /// The I/O error is part of the message and not a `source()`: a caller printing the chain
    /// (`lexecon`'s `{:#}`) would show it twice.
    #[error("cannot read {file}: {error}")]
    Io { file: String, error: std::io::Error },
    /// `lexecon policy load --template NAME` (or a bundle) named a template the domain does not have.
    #[error("unknown template {name:?} in domain {domain} (available: {})", available.join(", "))]
    UnknownTemplate {
        domain: String,
        name: String,
        available: Vec<String>,
    },
}

impl ConfigError {
    /// The located problems, when this is [`ConfigError::Invalid`].
    pub fn located(&self) -> &[Located] {
        match self {
            ConfigError::Invalid(errors) => errors,
            _ => &[],
        }
    }
}

fn display_all(errors: &[Located]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}
