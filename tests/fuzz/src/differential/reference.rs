//! The reference evaluator: the policy language as docs/configuration.md, config/README.md and
//! the `lexecon-policy-cache` module documentation describe it, written the plain way — no index,
//! no fast paths, no cache, each pattern a whole `globset` glob and each regex a `regex::Regex`. It
//! shares no code with the engine but the two libraries the documentation names as the spec of
//! their part: `globset` (patterns are "globs (globset syntax)", `*` crossing `/`, `\` escaping)
//! and `regex` (`matches`). Never used outside the differential target.
//!
//! The rules it implements:
//! - A document compiles when every rule id is non-empty and unique, every pattern is a non-empty
//!   valid glob, every condition names a known field and has the value its operator takes
//!   (`eq`/`ne`: any; `lt`/`le`/`gt`/`ge`: a number or a string; `in`/`not_in`: a list; `exists`:
//!   none, `true` or `false`; `matches`: a valid regex), and every template is the domain's with
//!   only declared parameters.
//! - A pattern matches a reference `type:instance` when the glob matches the whole reference, or,
//!   for a pattern without `:`, the type id alone. An absent pattern matches anything; a resource
//!   pattern never matches a request without a resource.
//! - A condition on a missing field is false, except `exists: false`, which is true exactly then.
//!   Numbers compare as numbers (exactly: `9007199254740993` is not `9007199254740992`, and `1` is
//!   `1.0`), strings by code point for `lt`/`le`/`gt`/`ge`; values of different kinds are unequal
//!   and unordered. `matches` searches strings only.
//! - Template data rules follow the document's rules, their ids `template.rule`.
//! - Forbid beats escalate beats permit beats the default; among rules of the deciding effect the
//!   first in document order decides; every matching rule is listed, in order. The default is the
//!   most restrictive template fallback (`default:template:<name>`), else the mode's
//!   (`default:<mode>`): permissive permits, strict and dry_run deny.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use lexecon_config::{Condition, Effect, Mode, Op, PolicyDocument, Rule};
use lexecon_domains::Verdict;
use serde_json::{Map, Value};

/// A request as the reference reads it: the raw reference strings.
#[derive(Debug, Clone, PartialEq)]
pub struct RefRequest {
    pub domain: String,
    pub actor: String,
    pub action: String,
    pub resource: Option<String>,
    pub context: Map<String, Value>,
}

/// What the reference decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub verdict: Verdict,
    /// The deciding rule's id, or `default:…`.
    pub rule_id: String,
    /// Every matching rule's id, in order.
    pub matched: Vec<String>,
}

/// A declared template parameter: its name and default.
pub type RefParam = (&'static str, fn() -> Value);

/// A template of the differential's domain, as its declaration says.
pub struct RefTemplate {
    pub name: &'static str,
    pub fallback: Option<Verdict>,
    /// Declared parameters and their defaults.
    pub params: &'static [RefParam],
    /// The template's data rules for the filled parameters.
    pub rules: fn(&Map<String, Value>) -> Vec<Rule>,
}

/// A policy the reference can decide with: its rules in order and its default.
#[derive(Debug, Clone)]
pub struct RefPolicy {
    mode: Mode,
    rules: Vec<Rule>,
    /// The deciding template fallback and its template's name.
    fallback: Option<(Verdict, String)>,
    /// Every pattern and regex of the rules, built once (building them is the slow part).
    globs: HashMap<String, globset::GlobMatcher>,
    regexes: HashMap<String, regex::Regex>,
}

const REQUEST_FIELDS: [&str; 10] = [
    "actor",
    "actor.type",
    "actor.instance",
    "action",
    "action.type",
    "action.instance",
    "resource",
    "resource.type",
    "resource.instance",
    "domain",
];

fn glob(pattern: &str) -> Option<globset::GlobMatcher> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}

fn regex(pattern: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .ok()
}

fn field_is_known(field: &str) -> bool {
    match field.strip_prefix("context.") {
        Some(keys) => keys.split('.').all(|k| !k.is_empty()),
        None => REQUEST_FIELDS.contains(&field),
    }
}

/// Whether `c` is valid; its regex is kept in `regexes`.
fn condition_is_valid(c: &Condition, regexes: &mut HashMap<String, regex::Regex>) -> bool {
    if !field_is_known(&c.field) {
        return false;
    }
    match (c.op, &c.value) {
        (Op::Exists, None | Some(Value::Bool(_))) => true,
        (Op::Exists, Some(_)) | (_, None) => false,
        (Op::Eq | Op::Ne, Some(_)) => true,
        (Op::Lt | Op::Le | Op::Gt | Op::Ge, Some(v)) => v.is_number() || v.is_string(),
        (Op::In | Op::NotIn, Some(v)) => v.is_array(),
        (Op::Matches, Some(Value::String(re))) => match regex(re) {
            Some(built) => {
                regexes.insert(re.clone(), built);
                true
            }
            None => false,
        },
        (Op::Matches, Some(_)) => false,
    }
}

/// Whether `rule` is valid; its globs and regexes are kept.
fn rule_is_valid(
    rule: &Rule,
    globs: &mut HashMap<String, globset::GlobMatcher>,
    regexes: &mut HashMap<String, regex::Regex>,
) -> bool {
    for pattern in [&rule.actor, &rule.action, &rule.resource]
        .into_iter()
        .flatten()
    {
        match glob(pattern).filter(|_| !pattern.is_empty()) {
            Some(built) => {
                globs.insert(pattern.clone(), built);
            }
            None => return false,
        }
    }
    rule.when.iter().all(|c| condition_is_valid(c, regexes))
}

fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Permit => 0,
        Verdict::Escalate => 1,
        Verdict::Deny => 2,
    }
}

impl RefPolicy {
    /// The policy `doc` is, or `None` when it does not compile.
    pub fn new(doc: &PolicyDocument, templates: &[RefTemplate]) -> Option<Self> {
        let mut rules = doc.rules.clone();
        let mut fallback: Option<(Verdict, String)> = None;
        for used in &doc.templates {
            let template = templates.iter().find(|t| t.name == used.name)?;
            if used
                .params
                .keys()
                .any(|k| !template.params.iter().any(|(name, _)| name == k))
            {
                return None;
            }
            let params: Map<String, Value> = template
                .params
                .iter()
                .map(|(name, default)| {
                    let value = used.params.get(*name).cloned().unwrap_or_else(default);
                    ((*name).to_owned(), value)
                })
                .collect();
            for mut rule in (template.rules)(&params) {
                rule.id = format!("{}.{}", template.name, rule.id);
                rules.push(rule);
            }
            if let Some(v) = template.fallback {
                if fallback
                    .as_ref()
                    .is_none_or(|(current, _)| severity(v) > severity(*current))
                {
                    fallback = Some((v, template.name.to_owned()));
                }
            }
        }
        let mut ids = BTreeSet::new();
        let (mut globs, mut regexes) = (HashMap::new(), HashMap::new());
        for rule in &rules {
            if rule.id.is_empty()
                || !ids.insert(rule.id.as_str())
                || !rule_is_valid(rule, &mut globs, &mut regexes)
            {
                return None;
            }
        }
        Some(Self {
            mode: doc.mode,
            rules,
            fallback,
            globs,
            regexes,
        })
    }

    /// The decision for `request`.
    pub fn decide(&self, request: &RefRequest) -> Expected {
        let matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| self.rule_matches(r, request))
            .collect();
        let first = |effect| matching.iter().find(|r| r.effect == effect);
        let (verdict, rule_id) = if let Some(r) = first(Effect::Forbid) {
            (Verdict::Deny, r.id.clone())
        } else if let Some(r) = first(Effect::Escalate) {
            (Verdict::Escalate, r.id.clone())
        } else if let Some(r) = first(Effect::Permit) {
            (Verdict::Permit, r.id.clone())
        } else if let Some((v, name)) = &self.fallback {
            (*v, format!("default:template:{name}"))
        } else {
            match self.mode {
                Mode::Permissive => (Verdict::Permit, "default:permissive".to_owned()),
                Mode::Strict => (Verdict::Deny, "default:strict".to_owned()),
                Mode::DryRun => (Verdict::Deny, "default:dry_run".to_owned()),
            }
        };
        Expected {
            verdict,
            rule_id,
            matched: matching.iter().map(|r| r.id.clone()).collect(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
}

fn type_of(reference: &str) -> &str {
    reference.split_once(':').map_or(reference, |(t, _)| t)
}

fn instance_of(reference: &str) -> Option<&str> {
    reference.split_once(':').map(|(_, i)| i)
}

impl RefPolicy {
    fn pattern_matches(&self, pattern: &str, reference: &str) -> bool {
        let Some(glob) = self.globs.get(pattern) else {
            return false;
        };
        glob.is_match(reference) || (!pattern.contains(':') && glob.is_match(type_of(reference)))
    }

    fn rule_matches(&self, rule: &Rule, request: &RefRequest) -> bool {
        rule.actor
            .as_ref()
            .is_none_or(|p| self.pattern_matches(p, &request.actor))
            && rule
                .action
                .as_ref()
                .is_none_or(|p| self.pattern_matches(p, &request.action))
            && rule.resource.as_ref().is_none_or(|p| {
                request
                    .resource
                    .as_ref()
                    .is_some_and(|r| self.pattern_matches(p, r))
            })
            && rule.when.iter().all(|c| self.holds(c, request))
    }

    fn holds(&self, c: &Condition, request: &RefRequest) -> bool {
        let value = field_value(&c.field, request);
        if c.op == Op::Exists {
            let want = !matches!(c.value, Some(Value::Bool(false)));
            return value.is_some() == want;
        }
        let (Some(value), Some(operand)) = (value, &c.value) else {
            return false;
        };
        let ordered = |test: fn(Ordering) -> bool| order(&value, operand).is_some_and(test);
        let member = || {
            operand
                .as_array()
                .is_some_and(|list| list.iter().any(|m| equal(&value, m)))
        };
        match c.op {
            Op::Eq => equal(&value, operand),
            Op::Ne => !equal(&value, operand),
            Op::Lt => ordered(Ordering::is_lt),
            Op::Le => ordered(Ordering::is_le),
            Op::Gt => ordered(Ordering::is_gt),
            Op::Ge => ordered(Ordering::is_ge),
            Op::In => member(),
            Op::NotIn => !member(),
            Op::Matches => match (&value, operand.as_str().and_then(|re| self.regexes.get(re))) {
                (Value::String(s), Some(re)) => re.is_match(s),
                _ => false,
            },
            Op::Exists => false,
        }
    }
}

/// The value of `field` in `request`, `None` when the request has none.
fn field_value(field: &str, request: &RefRequest) -> Option<Value> {
    let text = |s: &str| Some(Value::from(s));
    let resource = request.resource.as_deref();
    match field {
        "domain" => text(&request.domain),
        "actor" => text(&request.actor),
        "actor.type" => text(type_of(&request.actor)),
        "actor.instance" => instance_of(&request.actor).map(Value::from),
        "action" => text(&request.action),
        "action.type" => text(type_of(&request.action)),
        "action.instance" => instance_of(&request.action).map(Value::from),
        "resource" => resource.map(Value::from),
        "resource.type" => resource.map(type_of).map(Value::from),
        "resource.instance" => resource.and_then(instance_of).map(Value::from),
        _ => {
            let mut keys = field.strip_prefix("context.")?.split('.');
            let mut value = request.context.get(keys.next()?)?;
            for key in keys {
                value = value.as_object()?.get(key)?;
            }
            Some(value.clone())
        }
    }
}

/// An exact number: an integer (every JSON integer fits) or a finite float.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn num(n: &serde_json::Number) -> Option<Num> {
    if let Some(i) = n.as_i64() {
        Some(Num::Int(i.into()))
    } else if let Some(u) = n.as_u64() {
        Some(Num::Int(u.into()))
    } else {
        n.as_f64().map(Num::Float)
    }
}

/// `i` compared with the finite float `f`, exactly.
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    // Every JSON integer is inside ±2^64; floats outside ±2^100 are beyond any of them.
    if f >= 1e30 {
        return Ordering::Less;
    }
    if f <= -1e30 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // INVARIANT: `whole` is an integer inside ±1e30, which i128 holds exactly.
    match i.cmp(&(whole as i128)) {
        // The fraction `f - whole` is exact; above zero, `f` is the larger.
        Ordering::Equal => 0.0f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
        other => other,
    }
}

fn cmp_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    Some(match (num(a)?, num(b)?) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y)?,
        (Num::Int(x), Num::Float(y)) => cmp_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(y, x).reverse(),
    })
}

/// JSON equality with numbers compared as numbers, at every depth.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn order(value: &Value, bound: &Value) -> Option<Ordering> {
    match (value, bound) {
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(v: Value) -> serde_json::Number {
        match v {
            Value::Number(n) => n,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn numbers_compare_exactly_across_integers_and_floats() {
        let cmp = |a: Value, b: Value| cmp_numbers(&n(a), &n(b));
        assert_eq!(cmp(json!(1), json!(1.0)), Some(Ordering::Equal));
        assert_eq!(cmp(json!(-0.0), json!(0)), Some(Ordering::Equal));
        assert_eq!(cmp(json!(2), json!(1.5)), Some(Ordering::Greater));
        assert_eq!(cmp(json!(-2), json!(-1.5)), Some(Ordering::Less));
        assert_eq!(cmp(json!(1.5), json!(2)), Some(Ordering::Less));
        assert_eq!(
            cmp(
                json!(9_007_199_254_740_993u64),
                json!(9_007_199_254_740_992.0)
            ),
            Some(Ordering::Greater)
        );
        assert_eq!(
            cmp(json!(u64::MAX), json!(i64::MIN)),
            Some(Ordering::Greater)
        );
        assert_eq!(cmp(json!(u64::MAX), json!(1e300)), Some(Ordering::Less));
        assert!(equal(&json!([1, {"a": 2.0}]), &json!([1.0, {"a": 2}])));
        assert!(!equal(&json!("1"), &json!(1)));
    }

    #[test]
    fn patterns_match_the_reference_or_a_colon_free_pattern_the_type() {
        let mut globs = HashMap::new();
        for p in ["axn_x", "axn_x:v1", "res_r:*", "act_{a,b}"] {
            globs.insert(p.to_owned(), glob(p).unwrap());
        }
        let policy = RefPolicy {
            mode: Mode::Strict,
            rules: Vec::new(),
            fallback: None,
            globs,
            regexes: HashMap::new(),
        };
        assert!(policy.pattern_matches("axn_x", "axn_x:v2"));
        assert!(!policy.pattern_matches("axn_x:v1", "axn_x:v2"));
        assert!(policy.pattern_matches("res_r:*", "res_r:x/y"));
        assert!(policy.pattern_matches("act_{a,b}", "act_b:1"));
        assert!(glob("[").is_none());
    }
}
