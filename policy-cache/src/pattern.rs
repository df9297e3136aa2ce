//! Id patterns of a rule's `actor`, `action` and `resource`: globs (globset syntax) over the full
//! reference string `type_id:instance`. A pattern without `:` also matches on the type id alone, so
//! `axn_place_order` covers `axn_place_order:v2` and `act_trading_algo` covers every trading algo.
//! Plain, prefix and suffix patterns skip the glob engine. Compiled once at load; matching never
//! allocates.

use globset::{GlobBuilder, GlobMatcher};
use lexecon_domains::EntityRef;

#[derive(Debug, Clone)]
enum Kind {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    Glob(GlobMatcher),
}

/// A compiled id pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    kind: Kind,
    /// True when the pattern has no `:`: it then also matches the bare type id.
    type_level: bool,
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

impl Pattern {
    /// Compiles `pattern`, or says why it is not a valid glob.
    pub(crate) fn compile(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("empty pattern (omit the field to match anything)".into());
        }
        let type_level = !pattern.contains(':');
        let kind = if pattern == "*" {
            Kind::Any
        } else if !has_meta(pattern) {
            Kind::Exact(pattern.to_owned())
        } else if let Some(prefix) = pattern.strip_suffix('*').filter(|p| !has_meta(p)) {
            Kind::Prefix(prefix.to_owned())
        } else if let Some(suffix) = pattern.strip_prefix('*').filter(|s| !has_meta(s)) {
            Kind::Suffix(suffix.to_owned())
        } else {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("invalid glob {pattern:?}: {}", e.kind()))?;
            Kind::Glob(glob.compile_matcher())
        };
        Ok(Self { kind, type_level })
    }

    /// The exact type id this pattern pins, if it pins exactly one (used to index rules by action).
    pub(crate) fn exact_type(&self) -> Option<&str> {
        match &self.kind {
            Kind::Exact(p) => Some(p.split_once(':').map_or(p.as_str(), |(t, _)| t)),
            _ => None,
        }
    }

    /// Whether a plain type-id pattern (no `:`, no glob) — matched by the index alone.
    pub(crate) fn is_plain_type(&self) -> bool {
        self.type_level && matches!(self.kind, Kind::Exact(_))
    }

    fn matches_str(&self, s: &str) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::Exact(p) => s == p,
            Kind::Prefix(p) => s.starts_with(p.as_str()),
            Kind::Suffix(p) => s.ends_with(p.as_str()),
            Kind::Glob(g) => g.is_match(s),
        }
    }

    /// Whether the reference matches: on its full string, or (pattern without `:`) on its type id.
    pub(crate) fn matches(&self, r: &EntityRef) -> bool {
        self.matches_str(r.as_str()) || (self.type_level && self.matches_str(r.type_id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> EntityRef {
        EntityRef::parse(s).unwrap()
    }

    #[test]
    fn star_after_type_matches_every_instance_of_that_type_only() {
        let p = Pattern::compile("act_trading_algo:*").unwrap();
        assert!(p.matches(&r("act_trading_algo:momentum_v3")));
        assert!(!p.matches(&r("act_trading_algo_x:momentum_v3")));
        assert!(!p.matches(&r("act_human_trader:bob")));
    }

    #[test]
    fn pattern_without_colon_matches_type_id_of_instances() {
        let p = Pattern::compile("axn_place_order").unwrap();
        assert!(p.matches(&r("axn_place_order")));
        assert!(p.matches(&r("axn_place_order:v2")));
        assert!(!p.matches(&r("axn_place_order_bulk")));
        assert_eq!(p.exact_type(), Some("axn_place_order"));
        assert!(p.is_plain_type());
    }

    #[test]
    fn exact_full_reference_matches_only_that_instance() {
        let p = Pattern::compile("res_security:AAPL").unwrap();
        assert!(p.matches(&r("res_security:AAPL")));
        assert!(!p.matches(&r("res_security:AAPL2")));
        assert!(!p.matches(&r("res_security")));
        assert_eq!(p.exact_type(), Some("res_security"));
        assert!(!p.is_plain_type());
    }

    #[test]
    fn star_crosses_slashes_in_instances() {
        let p = Pattern::compile("res_phi:Patient/*").unwrap();
        assert!(p.matches(&r("res_phi:Patient/123")));
        assert!(p.matches(&r("res_phi:Patient/123/_history/2")));
        assert!(!p.matches(&r("res_phi:Observation/1")));
    }

    #[test]
    fn full_globs_with_classes_and_alternation_match() {
        let p = Pattern::compile("res_security:{AAPL,MSFT}").unwrap();
        assert!(p.matches(&r("res_security:MSFT")));
        assert!(!p.matches(&r("res_security:GOOG")));
        let q = Pattern::compile("act_?i_*:[a-m]*").unwrap();
        assert!(q.matches(&r("act_ai_agent:claude")));
        assert!(!q.matches(&r("act_ai_agent:zed")));
        let s = Pattern::compile("*:AAPL").unwrap();
        assert!(s.matches(&r("res_security:AAPL")));
        assert!(!s.matches(&r("res_security:MSFT")));
        assert_eq!(s.exact_type(), None);
    }

    #[test]
    fn type_level_prefix_glob_matches_instances() {
        let p = Pattern::compile("axn_read_*").unwrap();
        assert!(p.matches(&r("axn_read_record:42")));
        assert!(!p.matches(&r("axn_write_record:42")));
    }

    #[test]
    fn invalid_or_empty_globs_are_rejected_with_reason() {
        let err = Pattern::compile("res_x:[abc").unwrap_err();
        assert!(err.contains("invalid glob"), "{err}");
        assert!(Pattern::compile("").is_err());
    }
}
