//! Errors with a location: file, path inside the document, and what was wrong.

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
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

fn display_all(errors: &[Located]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}
