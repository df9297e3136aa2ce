//! `when` conditions, compiled once: the field path resolved to an enum, numbers as `f64`, `in` sets
//! sorted for binary search, `matches` regexes compiled. Evaluation borrows from the request and never
//! allocates. Semantics: a missing field makes every operator false except `exists` (`value: false`
//! is true exactly when the field is missing); numbers compare numerically (also across integer and
//! float), strings lexicographically for `lt`/`le`/`gt`/`ge`, values of different kinds are unequal.

use std::cmp::Ordering;
use std::collections::HashMap;

use lexecon_config::policy::{ConditionField, RequestField};
use lexecon_config::{Condition, Op};
use lexecon_domains::{EntityRef, Request};
use regex::Regex;
use serde_json::Value;

/// Largest compiled size of one `matches` regex.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A field a condition reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Field {
    Domain,
    Actor,
    ActorType,
    ActorInstance,
    Action,
    ActionType,
    ActionInstance,
    Resource,
    ResourceType,
    ResourceInstance,
    /// `context.a.b` as `["a", "b"]`.
    Context(Box<[String]>),
    /// `provenance.a`: where the top-level context key `a` comes from.
    Provenance(Box<str>),
}

impl Field {
    /// The field `path` names; the list of fields is `lexecon_config`'s [`ConditionField`].
    pub(crate) fn parse(path: &str) -> Result<Self, String> {
        Ok(match ConditionField::parse(path) {
            Some(ConditionField::Request(field)) => match field {
                RequestField::Domain => Field::Domain,
                RequestField::Actor => Field::Actor,
                RequestField::ActorType => Field::ActorType,
                RequestField::ActorInstance => Field::ActorInstance,
                RequestField::Action => Field::Action,
                RequestField::ActionType => Field::ActionType,
                RequestField::ActionInstance => Field::ActionInstance,
                RequestField::Resource => Field::Resource,
                RequestField::ResourceType => Field::ResourceType,
                RequestField::ResourceInstance => Field::ResourceInstance,
            },
            Some(ConditionField::Context(keys)) => {
                Field::Context(keys.split('.').map(str::to_owned).collect())
            }
            Some(ConditionField::Provenance(key)) => Field::Provenance(key.into()),
            None => return Err(ConditionField::unknown(path)),
        })
    }
}

/// A resolved field value, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldValue<'a> {
    Str(&'a str),
    Json(&'a Value),
}

/// Looks `path` up in a JSON object tree.
pub(crate) fn context_value<'a>(
    context: &'a serde_json::Map<String, Value>,
    path: &[String],
) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut current = context.get(first)?;
    for key in rest {
        current = current.as_object()?.get(key)?;
    }
    Some(current)
}

/// Orders two keys as `str` does, deciding on the first bytes when they differ (most keys do)
/// without a call into `memcmp`.
fn cmp_keys(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Calls `found` with the value of each of `paths`, in order: the same values as
/// [`context_value`] per path. `paths` must be sorted (as a policy's read fields are); then one
/// pass over the context's top-level entries, which a `serde_json::Map` keeps in key order, finds
/// them all instead of one search per path. A path the pass does not find is looked up directly,
/// so the result does not depend on the map's order.
pub(crate) fn context_values<'a>(
    context: &'a serde_json::Map<String, Value>,
    paths: &[Box<[String]>],
    mut found: impl FnMut(Option<&'a Value>),
) {
    let mut entries = context.iter().peekable();
    for path in paths {
        let Some((first, rest)) = path.split_first() else {
            found(None);
            continue;
        };
        let mut top = None;
        while let Some((key, value)) = entries.peek() {
            match cmp_keys(key, first) {
                std::cmp::Ordering::Less => {
                    entries.next();
                }
                std::cmp::Ordering::Equal => {
                    top = Some(*value);
                    break;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        let top = top.or_else(|| context.get(first.as_str()));
        found(top.and_then(|mut current| {
            for key in rest {
                current = current.as_object()?.get(key)?;
            }
            Some(current)
        }));
    }
}

fn type_of(r: &EntityRef) -> FieldValue<'_> {
    FieldValue::Str(r.type_id())
}

pub(crate) fn resolve<'a>(field: &Field, request: &'a Request) -> Option<FieldValue<'a>> {
    match field {
        Field::Domain => Some(FieldValue::Str(request.domain.as_str())),
        Field::Actor => Some(FieldValue::Str(request.actor.as_str())),
        Field::ActorType => Some(type_of(&request.actor)),
        Field::ActorInstance => request.actor.instance().map(FieldValue::Str),
        Field::Action => Some(FieldValue::Str(request.action.as_str())),
        Field::ActionType => Some(type_of(&request.action)),
        Field::ActionInstance => request.action.instance().map(FieldValue::Str),
        Field::Resource => request
            .resource
            .as_ref()
            .map(|r| FieldValue::Str(r.as_str())),
        Field::ResourceType => request.resource.as_ref().map(type_of),
        Field::ResourceInstance => request
            .resource
            .as_ref()
            .and_then(EntityRef::instance)
            .map(FieldValue::Str),
        Field::Context(path) => context_value(&request.context, path).map(FieldValue::Json),
        Field::Provenance(key) => request
            .provenance_of(key)
            .map(|p| FieldValue::Str(p.as_str())),
    }
}

/// Orders two JSON numbers exactly: integers as integers (so `9007199254740993` is not
/// `9007199254740992`, as it would be through `f64`), an integer against a float without rounding
/// the integer. JSON numbers are finite, so the order is total. (Found by the differential fuzz
/// target: the documented "numbers compare numerically" must hold beyond 2^53.)
fn num_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
    fn int(n: &serde_json::Number) -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    }
    /// `i` against the finite float `f`, exactly.
    fn int_float(i: i128, f: f64) -> Ordering {
        // Every i128 that an i64/u64 can hold lies strictly inside ±2^127.
        const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
        if f >= LIMIT {
            return Ordering::Less;
        }
        if f < -LIMIT {
            return Ordering::Greater;
        }
        let floor = f.floor();
        // `floor` is an integer-valued float inside the i128 range: the cast is exact.
        #[allow(clippy::cast_possible_truncation, reason = "exact: floor is in range")]
        let whole = floor as i128;
        match i.cmp(&whole) {
            Ordering::Equal if f > floor => Ordering::Less,
            other => other,
        }
    }
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(x), None) => int_float(x, b.as_f64().unwrap_or(0.0)),
        (None, Some(y)) => int_float(y, a.as_f64().unwrap_or(0.0)).reverse(),
        // Finite floats: `partial_cmp` is total on them, and -0.0 equals 0.0.
        (None, None) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

/// JSON equality with numbers compared numerically at any depth (`[1]` equals `[1.0]`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A literal compared with `eq`/`ne`.
#[derive(Debug, Clone)]
enum Scalar {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    /// Arrays and objects: equal when they are (numbers compared numerically at any depth).
    Other(Value),
}

impl Scalar {
    fn from_json(v: &Value) -> Self {
        match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Num(n.clone()),
            Value::String(s) => Scalar::Str(s.clone()),
            other => Scalar::Other(other.clone()),
        }
    }

    fn equals(&self, value: FieldValue<'_>) -> bool {
        match (self, value) {
            (Scalar::Str(s), FieldValue::Str(v)) => s == v,
            (_, FieldValue::Str(_)) => false,
            (Scalar::Null, FieldValue::Json(v)) => v.is_null(),
            (Scalar::Bool(b), FieldValue::Json(v)) => v.as_bool() == Some(*b),
            (Scalar::Num(n), FieldValue::Json(Value::Number(v))) => {
                num_cmp(v, n) == Ordering::Equal
            }
            (Scalar::Num(_), FieldValue::Json(_)) => false,
            (Scalar::Str(s), FieldValue::Json(v)) => v.as_str() == Some(s.as_str()),
            (Scalar::Other(o), FieldValue::Json(v)) => json_eq(o, v),
        }
    }
}

/// A bound of `lt`/`le`/`gt`/`ge`.
#[derive(Debug, Clone)]
enum Bound {
    Num(serde_json::Number),
    Str(String),
}

impl Bound {
    /// `field.cmp(bound)`, or `None` when the kinds differ.
    fn compare(&self, value: FieldValue<'_>) -> Option<Ordering> {
        match (self, value) {
            (Bound::Str(b), FieldValue::Str(v)) => Some(v.cmp(b.as_str())),
            (Bound::Str(b), FieldValue::Json(Value::String(v))) => Some(v.as_str().cmp(b.as_str())),
            (Bound::Num(b), FieldValue::Json(Value::Number(n))) => Some(num_cmp(n, b)),
            _ => None,
        }
    }
}

/// The members of an `in`/`not_in` list.
#[derive(Debug, Clone, Default)]
struct Set {
    /// Sorted ([`num_cmp`], a total order) for binary search.
    nums: Vec<serde_json::Number>,
    /// Sorted for binary search.
    strs: Vec<String>,
    bools: [bool; 2],
    null: bool,
    others: Vec<Value>,
}

impl Set {
    fn from_json(items: &[Value]) -> Self {
        let mut set = Set::default();
        for item in items {
            match Scalar::from_json(item) {
                Scalar::Null => set.null = true,
                Scalar::Bool(b) => set.bools[usize::from(b)] = true,
                Scalar::Num(n) => set.nums.push(n),
                Scalar::Str(s) => set.strs.push(s),
                Scalar::Other(o) => set.others.push(o),
            }
        }
        set.nums.sort_by(num_cmp);
        set.nums.dedup_by(|a, b| num_cmp(a, b) == Ordering::Equal);
        set.strs.sort();
        set.strs.dedup();
        set
    }

    fn has_str(&self, s: &str) -> bool {
        self.strs.binary_search_by(|m| m.as_str().cmp(s)).is_ok()
    }

    fn contains(&self, value: FieldValue<'_>) -> bool {
        match value {
            FieldValue::Str(s) => self.has_str(s),
            FieldValue::Json(v) => match v {
                Value::Null => self.null,
                Value::Bool(b) => self.bools[usize::from(*b)],
                Value::Number(n) => self.nums.binary_search_by(|m| num_cmp(m, n)).is_ok(),
                Value::String(s) => self.has_str(s),
                other => self.others.iter().any(|o| json_eq(o, other)),
            },
        }
    }
}

#[derive(Debug, Clone)]
enum Test {
    Eq(Scalar),
    Ne(Scalar),
    Cmp(Op, Bound),
    In(Set),
    NotIn(Set),
    Exists(bool),
    Matches(Regex),
}

/// One compiled `when` condition.
#[derive(Debug, Clone)]
pub(crate) struct CompiledCondition {
    pub(crate) field: Field,
    /// For a context field: its position in the policy's sorted read fields, set once the policy
    /// is compiled, so evaluation reads the value looked up once per request ([`ResolvedContext`]).
    pub(crate) slot: Option<u32>,
    test: Test,
}

/// How many read context fields an evaluation looks up up front (on the stack); fields beyond
/// this are looked up per condition.
const RESOLVED_SLOTS: usize = 16;

/// The values of a policy's read context fields for one request, looked up once per evaluation
/// instead of once per condition. Borrowed from the request; no allocation.
pub(crate) struct ResolvedContext<'a> {
    values: [Option<&'a Value>; RESOLVED_SLOTS],
    len: usize,
}

impl<'a> ResolvedContext<'a> {
    /// Looks up the first [`RESOLVED_SLOTS`] of `paths` (the policy's sorted read fields).
    pub(crate) fn new(
        paths: &[Box<[String]>],
        context: &'a serde_json::Map<String, Value>,
    ) -> Self {
        let mut values = [None; RESOLVED_SLOTS];
        let len = paths.len().min(RESOLVED_SLOTS);
        let mut slots = values.iter_mut();
        context_values(context, paths.get(..len).unwrap_or_default(), |value| {
            if let Some(slot) = slots.next() {
                *slot = value;
            }
        });
        Self { values, len }
    }

    /// The value in `slot`: `None` when the slot was not looked up, `Some(None)` when the request
    /// lacks the field.
    fn get(&self, slot: u32) -> Option<Option<&'a Value>> {
        let slot = slot as usize;
        if slot < self.len {
            self.values.get(slot).copied()
        } else {
            None
        }
    }
}

impl CompiledCondition {
    /// Compiles a condition; the error names the part (`field`, `value`) and the reason.
    ///
    /// `regexes` interns compiled `matches` patterns so a policy compiles each distinct regex once.
    pub(crate) fn compile(
        c: &Condition,
        regexes: &mut HashMap<String, Regex>,
    ) -> Result<Self, (&'static str, String)> {
        let field = Field::parse(&c.field).map_err(|e| ("field", e))?;
        if let Some(problem) = ConditionField::parse(&c.field)
            .and_then(|f| f.provenance_problem(c.op, c.value.as_ref()))
        {
            return Err(problem);
        }
        let op_name = match c.op {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Exists => "exists",
            Op::Matches => "matches",
        };
        let need_value = || {
            c.value
                .as_ref()
                .ok_or_else(|| ("value", format!("operator {op_name} needs a value")))
        };
        let test = match c.op {
            Op::Eq => Test::Eq(Scalar::from_json(need_value()?)),
            Op::Ne => Test::Ne(Scalar::from_json(need_value()?)),
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let bound = match need_value()? {
                    Value::Number(n) => Some(Bound::Num(n.clone())),
                    Value::String(s) => Some(Bound::Str(s.clone())),
                    _ => None,
                }
                .ok_or_else(|| {
                    (
                        "value",
                        format!("operator {op_name} compares with a number or a string"),
                    )
                })?;
                Test::Cmp(c.op, bound)
            }
            Op::In | Op::NotIn => {
                let items = need_value()?.as_array().ok_or_else(|| {
                    (
                        "value",
                        format!("operator {op_name} needs a list of values"),
                    )
                })?;
                let set = Set::from_json(items);
                if c.op == Op::In {
                    Test::In(set)
                } else {
                    Test::NotIn(set)
                }
            }
            Op::Exists => match &c.value {
                None => Test::Exists(true),
                Some(Value::Bool(b)) => Test::Exists(*b),
                Some(_) => {
                    return Err((
                        "value",
                        "operator exists takes true or false (default true)".into(),
                    ))
                }
            },
            Op::Matches => {
                let pattern = need_value()?
                    .as_str()
                    .ok_or_else(|| ("value", "operator matches needs a regex string".to_owned()))?;
                let regex = match regexes.get(pattern) {
                    // Cloning a compiled regex shares it.
                    Some(r) => r.clone(),
                    None => {
                        let r = regex::RegexBuilder::new(pattern)
                            .size_limit(REGEX_SIZE_LIMIT)
                            .build()
                            .map_err(|e| ("value", format!("invalid regex: {e}")))?;
                        regexes.insert(pattern.to_owned(), r.clone());
                        r
                    }
                };
                Test::Matches(regex)
            }
        };
        Ok(Self {
            field,
            slot: None,
            test,
        })
    }

    /// Whether the condition holds for the request.
    #[cfg(test)]
    pub(crate) fn holds(&self, request: &Request) -> bool {
        self.test(resolve(&self.field, request))
    }

    /// [`CompiledCondition::holds`], reading a context field from `resolved` when it was looked up
    /// there (the same value `resolve` finds).
    pub(crate) fn holds_resolved(&self, request: &Request, resolved: &ResolvedContext<'_>) -> bool {
        let value = match self.slot.and_then(|slot| resolved.get(slot)) {
            Some(value) => value.map(FieldValue::Json),
            None => resolve(&self.field, request),
        };
        self.test(value)
    }

    fn test(&self, value: Option<FieldValue<'_>>) -> bool {
        match (&self.test, value) {
            (Test::Exists(want), v) => v.is_some() == *want,
            (_, None) => false,
            (Test::Eq(s), Some(v)) => s.equals(v),
            (Test::Ne(s), Some(v)) => !s.equals(v),
            (Test::Cmp(op, bound), Some(v)) => match bound.compare(v) {
                None => false,
                Some(ord) => match op {
                    Op::Lt => ord == Ordering::Less,
                    Op::Le => ord != Ordering::Greater,
                    Op::Gt => ord == Ordering::Greater,
                    _ => ord != Ordering::Less,
                },
            },
            (Test::In(set), Some(v)) => set.contains(v),
            (Test::NotIn(set), Some(v)) => !set.contains(v),
            (Test::Matches(re), Some(FieldValue::Str(s))) => re.is_match(s),
            (Test::Matches(re), Some(FieldValue::Json(Value::String(s)))) => re.is_match(s),
            (Test::Matches(_), Some(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ]
    }

    /// Short keys from a small alphabet, so paths often hit, miss and share prefixes.
    fn key() -> impl Strategy<Value = String> {
        "[a-d]{0,2}"
    }

    fn context() -> impl Strategy<Value = serde_json::Map<String, Value>> {
        let nested = prop::collection::btree_map(key(), json_leaf(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()));
        prop::collection::btree_map(key(), prop_oneof![json_leaf(), nested], 0..8)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn one_pass_lookup_finds_what_a_search_per_path_finds(
            context in context(),
            paths in prop::collection::btree_set(prop::collection::vec(key(), 0..3), 0..10),
        ) {
            let paths: Vec<Box<[String]>> = paths.into_iter().map(Vec::into_boxed_slice).collect();
            let mut got = Vec::new();
            context_values(&context, &paths, |v| got.push(v));
            let expected: Vec<Option<&Value>> =
                paths.iter().map(|p| context_value(&context, p)).collect();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn first_byte_key_order_is_str_order(a in "[a-c\\x{e9}]{0,3}", b in "[a-c\\x{e9}]{0,3}") {
            prop_assert_eq!(cmp_keys(&a, &b), a.cmp(&b));
        }
    }

    fn request(context: Value) -> Request {
        Request {
            domain: lexecon_domains::DomainId::new("finance").unwrap(),
            actor: EntityRef::parse("act_trading_algo:momentum_v3").unwrap(),
            action: EntityRef::parse("axn_place_order").unwrap(),
            resource: Some(EntityRef::parse("res_security:AAPL").unwrap()),
            context: context.as_object().unwrap().clone(),
            provenance: Default::default(),
            time: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn cond(field: &str, op: &str, value: Option<Value>) -> CompiledCondition {
        let mut c = json!({"field": field, "op": op});
        if let Some(v) = value {
            c["value"] = v;
        }
        CompiledCondition::compile(&serde_json::from_value(c).unwrap(), &mut HashMap::new())
            .unwrap()
    }

    fn holds(field: &str, op: &str, value: Value, ctx: Value) -> bool {
        cond(field, op, Some(value)).holds(&request(ctx))
    }

    #[test]
    fn a_provenance_condition_reads_where_a_key_comes_from() {
        use lexecon_domains::Provenance;
        let mut r = request(json!({"patient_consent": true, "said": 1}));
        r.provenance
            .insert("patient_consent".into(), Provenance::Authority);
        let looked_up = cond("provenance.patient_consent", "eq", Some(json!("authority")));
        assert!(looked_up.holds(&r));
        // An unlabelled key is the request's; a missing key has no provenance at all.
        assert!(cond("provenance.said", "eq", Some(json!("request"))).holds(&r));
        assert!(!cond("provenance.gone", "ne", Some(json!("authority"))).holds(&r));
        assert!(cond("provenance.gone", "exists", Some(json!(false))).holds(&r));
        assert!(cond(
            "provenance.patient_consent",
            "in",
            Some(json!(["authority", "credential"]))
        )
        .holds(&r));
        r.provenance
            .insert("patient_consent".into(), Provenance::Request);
        assert!(!looked_up.holds(&r));
        // A value that names no provenance, or an ordering, does not compile.
        for (op, value) in [
            ("eq", json!("authorty")),
            ("gt", json!("a")),
            ("in", json!([1])),
        ] {
            let c: Condition =
                serde_json::from_value(json!({"field": "provenance.x", "op": op, "value": value}))
                    .unwrap();
            assert!(
                CompiledCondition::compile(&c, &mut HashMap::new()).is_err(),
                "{op} {value}"
            );
        }
    }

    #[test]
    fn eq_compares_numbers_across_integer_and_float() {
        assert!(holds("context.n", "eq", json!(5), json!({"n": 5.0})));
        assert!(holds("context.n", "eq", json!(5.0), json!({"n": 5})));
        assert!(!holds("context.n", "eq", json!(5), json!({"n": 6})));
        assert!(!holds("context.n", "eq", json!(5), json!({"n": "5"})));
        assert!(holds(
            "context.flag",
            "eq",
            json!(true),
            json!({"flag": true})
        ));
        assert!(holds(
            "context.l",
            "eq",
            json!([1, "a"]),
            json!({"l": [1, "a"]})
        ));
    }

    #[test]
    fn ne_is_false_when_field_missing_and_true_when_different() {
        assert!(holds("context.s", "ne", json!("a"), json!({"s": "b"})));
        assert!(!holds("context.s", "ne", json!("a"), json!({"s": "a"})));
        assert!(!holds("context.s", "ne", json!("a"), json!({})));
    }

    #[test]
    fn ordering_operators_compare_numbers_numerically() {
        let ctx = json!({"order_value": 5_000_000});
        assert!(holds(
            "context.order_value",
            "le",
            json!(5_000_000),
            ctx.clone()
        ));
        assert!(!holds(
            "context.order_value",
            "lt",
            json!(5_000_000),
            ctx.clone()
        ));
        assert!(holds(
            "context.order_value",
            "ge",
            json!(4_999_999.5),
            ctx.clone()
        ));
        assert!(holds("context.order_value", "gt", json!(100), ctx.clone()));
        assert!(!holds("context.order_value", "gt", json!(5e6), ctx));
        // 10 > 9 numerically although "10" < "9" as text
        assert!(holds("context.n", "gt", json!(9), json!({"n": 10})));
    }

    #[test]
    fn ordering_operators_compare_strings_lexicographically_and_kinds_never_mix() {
        assert!(holds("context.v", "lt", json!("b"), json!({"v": "abc"})));
        assert!(holds(
            "context.v",
            "ge",
            json!("2024-01-01"),
            json!({"v": "2024-06-30"})
        ));
        assert!(!holds("context.v", "lt", json!(10), json!({"v": "5"})));
        assert!(!holds("context.v", "gt", json!("a"), json!({"v": 5})));
        assert!(holds("actor.instance", "ge", json!("m"), json!({})));
    }

    #[test]
    fn in_and_not_in_check_membership_of_mixed_lists() {
        let list = json!(["AAPL", "MSFT", 7, true]);
        assert!(holds("resource.instance", "in", list.clone(), json!({})));
        assert!(holds("context.n", "in", list.clone(), json!({"n": 7.0})));
        assert!(holds("context.b", "in", list.clone(), json!({"b": true})));
        assert!(!holds("context.b", "in", list.clone(), json!({"b": false})));
        assert!(holds(
            "context.s",
            "not_in",
            list.clone(),
            json!({"s": "GOOG"})
        ));
        assert!(!holds(
            "context.s",
            "not_in",
            list.clone(),
            json!({"s": "MSFT"})
        ));
        assert!(!holds("context.s", "not_in", list.clone(), json!({})));
        assert!(!holds("context.s", "in", list, json!({})));
    }

    #[test]
    fn exists_checks_presence_and_false_means_missing() {
        let present = cond("context.physician_id", "exists", None);
        let absent = cond("context.physician_id", "exists", Some(json!(false)));
        let with = request(json!({"physician_id": "dr-1"}));
        let without = request(json!({}));
        assert!(present.holds(&with));
        assert!(!present.holds(&without));
        assert!(absent.holds(&without));
        assert!(!absent.holds(&with));
        assert!(!cond("resource.instance", "exists", Some(json!(false))).holds(&with));
    }

    #[test]
    fn matches_uses_precompiled_regex_on_strings_only() {
        assert!(holds(
            "actor",
            "matches",
            json!("^act_trading_algo:mom"),
            json!({})
        ));
        assert!(!holds("actor", "matches", json!("^act_human"), json!({})));
        assert!(holds(
            "context.venue",
            "matches",
            json!("^X[A-Z]{3}$"),
            json!({"venue": "XNYS"})
        ));
        assert!(!holds(
            "context.venue",
            "matches",
            json!("1"),
            json!({"venue": 1})
        ));
    }

    #[test]
    fn nested_context_paths_and_missing_fields_are_false() {
        let ctx = json!({"order": {"limits": {"max": 10}}});
        assert!(holds(
            "context.order.limits.max",
            "eq",
            json!(10),
            ctx.clone()
        ));
        assert!(!holds(
            "context.order.limits.min",
            "eq",
            json!(10),
            ctx.clone()
        ));
        assert!(!holds(
            "context.order.limits.max.deeper",
            "eq",
            json!(10),
            ctx
        ));
        assert!(!holds("context.absent", "lt", json!(10), json!({})));
    }

    #[test]
    fn entity_fields_resolve_type_instance_and_domain() {
        let ctx = json!({});
        assert!(holds(
            "actor.type",
            "eq",
            json!("act_trading_algo"),
            ctx.clone()
        ));
        assert!(holds("action", "eq", json!("axn_place_order"), ctx.clone()));
        assert!(holds(
            "action.type",
            "eq",
            json!("axn_place_order"),
            ctx.clone()
        ));
        assert!(!holds("action.instance", "eq", json!(""), ctx.clone()));
        assert!(holds(
            "resource",
            "eq",
            json!("res_security:AAPL"),
            ctx.clone()
        ));
        assert!(holds(
            "resource.type",
            "eq",
            json!("res_security"),
            ctx.clone()
        ));
        assert!(holds("domain", "eq", json!("finance"), ctx));
    }

    #[test]
    fn malformed_conditions_are_rejected_naming_the_part() {
        let bad = [
            (json!({"field": "ctx.x", "op": "eq", "value": 1}), "field"),
            (
                json!({"field": "context.", "op": "eq", "value": 1}),
                "field",
            ),
            (json!({"field": "context.x", "op": "eq"}), "value"),
            (
                json!({"field": "context.x", "op": "lt", "value": true}),
                "value",
            ),
            (
                json!({"field": "context.x", "op": "in", "value": "a"}),
                "value",
            ),
            (
                json!({"field": "context.x", "op": "exists", "value": 1}),
                "value",
            ),
            (
                json!({"field": "context.x", "op": "matches", "value": "("}),
                "value",
            ),
        ];
        for (c, part) in bad {
            let c: Condition = serde_json::from_value(c).unwrap();
            let err = CompiledCondition::compile(&c, &mut HashMap::new()).unwrap_err();
            assert_eq!(err.0, part, "{c:?}: {}", err.1);
        }
    }
}
