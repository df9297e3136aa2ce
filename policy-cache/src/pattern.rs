//! Id patterns of a rule's `actor`, `action` and `resource`: globs (globset syntax) over the full
//! reference string `type_id:instance`. A pattern without `:` also matches on the type id alone, so
//! `axn_place_order` covers `axn_place_order:v2` and `act_trading_algo` covers every trading algo.
//! Patterns of literals, `*`, `?` and `{a,b}` groups are matched without the regex engine; classes
//! and escapes use globset. Compiled once at load; matching never
//! allocates.

use globset::{GlobBuilder, GlobMatcher};
use lexecon_domains::EntityRef;

#[derive(Debug, Clone)]
enum Kind {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// Only `*` (any run of bytes) and `?` (one byte, as in globset): matched without the regex engine.
    Wild(String),
    /// `{a,b,…}` expanded into simple alternatives.
    OneOf(Vec<Kind>),
    /// Character classes and escapes: globset.
    Glob(GlobMatcher),
}

/// A compiled id pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    kind: Kind,
    /// True when the pattern has no `:`: it then also matches the bare type id.
    type_level: bool,
}

/// Most alternatives a brace expansion may produce before globset takes over.
const MAX_ALTERNATIVES: usize = 64;

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

/// A pattern of only literals, `*` and `?`.
fn simple(pattern: &str) -> Kind {
    if pattern == "*" {
        Kind::Any
    } else if !has_meta(pattern) {
        Kind::Exact(pattern.to_owned())
    } else if let Some(prefix) = pattern.strip_suffix('*').filter(|p| !has_meta(p)) {
        Kind::Prefix(prefix.to_owned())
    } else if let Some(suffix) = pattern.strip_prefix('*').filter(|s| !has_meta(s)) {
        Kind::Suffix(suffix.to_owned())
    } else {
        Kind::Wild(pattern.to_owned())
    }
}

/// Expands one level of non-nested `{a,b}` groups into plain alternatives, if that is all the
/// pattern uses besides `*` and `?`.
fn expand_braces(pattern: &str) -> Option<Vec<String>> {
    if pattern.contains(['[', ']', '\\']) {
        return None;
    }
    let mut alternatives = vec![String::new()];
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let literal = &rest[..open];
        if literal.contains('}') {
            return None;
        }
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let group = &after[..close];
        if group.contains('{') {
            return None;
        }
        let options: Vec<&str> = group.split(',').collect();
        // globset gives empty alternatives its own meaning; leave those to it.
        if options.iter().any(|o| o.is_empty()) {
            return None;
        }
        if alternatives.len() * options.len() > MAX_ALTERNATIVES {
            return None;
        }
        alternatives = alternatives
            .iter()
            .flat_map(|a| options.iter().map(move |o| format!("{a}{literal}{o}")))
            .collect();
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return None;
    }
    for a in &mut alternatives {
        a.push_str(rest);
    }
    Some(alternatives)
}

/// `*`/`?` wildcard match over whole strings, bytewise as globset does (`?` is one byte) (greedy with single backtrack point: linear in
/// practice, O(n·m) worst case).
fn wild_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match pattern.get(pi) {
            Some(b'?') => {
                si += 1;
                pi += 1;
            }
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    let next = ss + 1;
                    star = Some((sp, next));
                    pi = sp + 1;
                    si = next;
                }
                None => return false,
            },
        }
    }
    pattern[pi.min(pattern.len())..].iter().all(|&c| c == b'*')
}

impl Kind {
    fn matches(&self, s: &str) -> bool {
        match self {
            Kind::Any => true,
            Kind::Exact(p) => s == p,
            Kind::Prefix(p) => s.starts_with(p.as_str()),
            Kind::Suffix(p) => s.ends_with(p.as_str()),
            Kind::Wild(p) => wild_match(p.as_bytes(), s.as_bytes()),
            Kind::OneOf(alternatives) => alternatives.iter().any(|k| k.matches(s)),
            Kind::Glob(g) => g.is_match(s),
        }
    }
}

impl Pattern {
    /// Compiles `pattern`, or says why it is not a valid glob.
    pub(crate) fn compile(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("empty pattern (omit the field to match anything)".into());
        }
        let type_level = !pattern.contains(':');
        // Literals, `*` and `?` are always a valid glob; anything else is parsed (and so validated)
        // by globset, which also matches what the fast paths cannot.
        // `**` beside `/` is globset's recursive wildcard (`a/**/b` also matches `a/b`, `**/x`
        // matches `x`): not what the `*` fast path does, so globset takes those (a forbid on
        // `a/**/b` must not let `a/b` through; found by the differential fuzz target).
        let recursive = pattern.contains("**/") || pattern.contains("/**");
        let kind = if !recursive && !pattern.contains(['[', ']', '{', '}', '\\']) {
            simple(pattern)
        } else {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("invalid glob {pattern:?}: {}", e.kind()))?;
            match expand_braces(pattern).filter(|_| !recursive) {
                Some(alternatives) => Kind::OneOf(alternatives.iter().map(|a| simple(a)).collect()),
                None => Kind::Glob(glob.compile_matcher()),
            }
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

    /// Whether the reference matches: on its full string, or (pattern without `:`) on its type id.
    pub(crate) fn matches(&self, r: &EntityRef) -> bool {
        self.kind.matches(r.as_str()) || (self.type_level && self.kind.matches(r.type_id()))
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
    fn fast_paths_agree_with_globset_on_tricky_inputs() {
        let patterns = [
            "*",
            "a*",
            "*a",
            "a*b",
            "*a*",
            "a?c",
            "??",
            "*:*",
            "a*b*c",
            "*ab*ab",
            "a**b",
            "é?x",
            "x{a,b*}y",
            "{a,b}{c,d}",
            "res_*:item4*",
        ];
        let inputs = [
            "",
            "a",
            "ab",
            "abc",
            "aXbYc",
            "abab",
            "aab",
            "xay",
            "xbzzy",
            "ac",
            "bd",
            "b",
            "ab:cd",
            "éüx",
            "éx",
            "res_kind_3:item42",
            "res_kind_3:item3",
            "a:b",
        ];
        for p in patterns {
            let ours = Pattern::compile(p).unwrap();
            assert!(
                !matches!(ours.kind, Kind::Glob(_)),
                "{p} should take a fast path"
            );
            let reference = GlobBuilder::new(p)
                .literal_separator(false)
                .build()
                .unwrap()
                .compile_matcher();
            for s in inputs {
                assert_eq!(
                    ours.kind.matches(s),
                    reference.is_match(s),
                    "pattern {p:?} on {s:?}"
                );
            }
        }
    }

    #[test]
    fn a_recursive_double_star_matches_as_globset_does() {
        // Found by the differential fuzz target: the `*` fast path read `**` as `*`, so a forbid on
        // `a/**/b` did not cover `a/b`.
        for (p, s, expected) in [
            ("res_r:a/**/b", "res_r:a/b", true),
            ("res_r:a/**/b", "res_r:a/x/y/b", true),
            ("**/x", "x", true),
            ("**/", "anything", true),
            ("res_r:a/**", "res_r:a/deep/er", true),
            ("res_r:{a,c}/**/b", "res_r:c/b", true),
            ("res_r:a/**/b", "res_r:ab", false),
        ] {
            let ours = Pattern::compile(p).unwrap();
            let reference = GlobBuilder::new(p)
                .literal_separator(false)
                .build()
                .unwrap()
                .compile_matcher();
            assert_eq!(reference.is_match(s), expected, "globset on {p:?} {s:?}");
            assert_eq!(ours.kind.matches(s), expected, "{p:?} on {s:?}");
        }
    }

    #[test]
    fn empty_brace_alternatives_fall_back_to_globset() {
        let p = Pattern::compile("{,a}b").unwrap();
        assert!(matches!(p.kind, Kind::Glob(_)));
    }

    #[test]
    fn invalid_or_empty_globs_are_rejected_with_reason() {
        let err = Pattern::compile("res_x:[abc").unwrap_err();
        assert!(err.contains("invalid glob"), "{err}");
        assert!(Pattern::compile("").is_err());
    }
}
