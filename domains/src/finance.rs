//! The `finance` domain (feature `finance`): algorithmic and human trading under MiFID II, SEC 15c3-5
//! and the CAT.
//!
//! Owns the seed's finance types (as data: `finance.yaml`, embedded and parsed when the plugin is
//! built; only the settings-dependent parts are added in Rust), order-value enrichment, the
//! order-value limit (escalate), the venue's regular trading session (deny outside it, evaluated in
//! the venue's time zone from the request time — never the local clock), and the templates
//! `prevent_flash_crash` (a per-actor rolling 60 s notional window with bounded memory) and
//! `position_limits`. It does no I/O and never blocks: the window's per-actor mutex is held only for
//! a few arithmetic operations.
//!
//! The window is checked in [`DomainPlugin::check_template`] and filled in
//! [`DomainPlugin::on_decision`]; two orders of one actor decided concurrently may both see the window
//! before either is recorded (the overshoot is at most one order). A full window cache evicts its least
//! recently used actors beyond 20,000, which forgets their recent notional.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde_json::{json, Value};

use crate::build::http_request_action;
use crate::error::DomainError;
use crate::model::DomainConfig;
use crate::outcome::{DecisionOutcome, Finding, FindingEffect, Verdict};
use crate::plugin::{number_param, DomainPlugin};
use crate::request::Request;
pub use crate::settings::{FinanceSettings, VenueSettings};

/// Template name: per-actor notional per rolling minute.
pub const PREVENT_FLASH_CRASH: &str = "prevent_flash_crash";
/// Template name: position after the order as a share of the portfolio.
pub const POSITION_LIMITS: &str = "position_limits";

const PLACE_ORDER: &str = "axn_place_order";
/// Actions that enter or change an order: checked against the limit and the session.
const ORDER_ENTRY: &[&str] = &[PLACE_ORDER, "axn_modify_order"];

/// Length of the flash-crash window in seconds (one bucket per second).
const WINDOW_SECS: usize = 60;
/// Most actors whose windows are kept; beyond this the least recently used are evicted.
const MAX_TRACKED_ACTORS: u64 = 20_000;
/// A window untouched this long is dropped (its orders are older than the window anyway).
const WINDOW_IDLE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Venue {
    time_zone: TimeZone,
    time_zone_name: String,
    open: Time,
    close: Time,
    holidays: BTreeSet<Date>,
    early_closes: BTreeMap<Date, Time>,
}

/// Per-actor ring of 60 one-second buckets of permitted notional.
#[derive(Debug)]
struct Ring {
    /// (unix second, notional) per slot `second % 60`.
    buckets: [(i64, f64); WINDOW_SECS],
}

impl Ring {
    fn new() -> Self {
        Self {
            buckets: [(i64::MIN, 0.0); WINDOW_SECS],
        }
    }

    /// Notional recorded in the 60 s ending at `now` (inclusive).
    fn sum(&self, now: i64) -> f64 {
        let oldest = now.saturating_sub(WINDOW_SECS as i64);
        self.buckets
            .iter()
            .filter(|(second, _)| *second > oldest && *second <= now)
            .map(|(_, v)| v)
            .sum()
    }

    fn add(&mut self, second: i64, notional: f64) {
        let slot = second.rem_euclid(WINDOW_SECS as i64) as usize;
        let Some(bucket) = self.buckets.get_mut(slot) else {
            return;
        };
        if bucket.0 == second {
            bucket.1 += notional;
        } else if bucket.0 < second {
            *bucket = (second, notional);
        }
        // else: the slot holds a newer second, so `second` is already outside any live window.
    }
}

/// Bounded per-actor windows: a moka cache (max capacity, idle expiry) of small rings.
#[derive(Debug)]
struct NotionalWindows {
    cache: moka::sync::Cache<String, Arc<Mutex<Ring>>>,
}

impl NotionalWindows {
    fn new() -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(MAX_TRACKED_ACTORS)
                .time_to_idle(WINDOW_IDLE)
                .build(),
        }
    }

    fn sum(&self, actor: &str, now: i64) -> f64 {
        self.cache.get(actor).map_or(0.0, |ring| {
            ring.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .sum(now)
        })
    }

    fn record(&self, actor: &str, second: i64, notional: f64) {
        let ring = match self.cache.get(actor) {
            Some(ring) => ring,
            None => self
                .cache
                .get_with(actor.to_string(), || Arc::new(Mutex::new(Ring::new()))),
        };
        ring.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add(second, notional);
    }
}

/// The `finance` domain plugin.
#[derive(Debug)]
pub struct FinancePlugin {
    config: DomainConfig,
    max_order_value: f64,
    venues: BTreeMap<String, Venue>,
    default_venue: String,
    windows: NotionalWindows,
}

impl FinancePlugin {
    /// Builds the plugin; the settings are validated first (time zones, sessions, default venue).
    pub fn new(settings: FinanceSettings) -> Result<Self, DomainError> {
        settings.validate()?;
        let mut venues = BTreeMap::new();
        for (id, v) in &settings.venues {
            let time_zone =
                TimeZone::get(&v.time_zone).map_err(|e| DomainError::InvalidSettings {
                    field: format!("finance.venues.{id}.time_zone"),
                    reason: e.to_string(),
                })?;
            venues.insert(
                id.clone(),
                Venue {
                    time_zone,
                    time_zone_name: v.time_zone.clone(),
                    open: v.open,
                    close: v.close,
                    holidays: v.holidays.clone(),
                    early_closes: v.early_closes.clone(),
                },
            );
        }
        Ok(Self {
            config: config(&settings)?,
            max_order_value: settings.max_order_value,
            venues,
            default_venue: settings.default_venue,
            windows: NotionalWindows::new(),
        })
    }

    fn venue(&self, id: &str) -> Option<(&str, &Venue)> {
        self.venues
            .get_key_value(id)
            .or_else(|| self.venues.iter().find(|(k, _)| k.eq_ignore_ascii_case(id)))
            .map(|(k, v)| (k.as_str(), v))
    }

    fn session_finding(&self, request: &Request) -> Option<Finding> {
        const CODE: &str = "finance.trading_session";
        let deny = |reason: String| Some(Finding::new(CODE, FindingEffect::Deny, reason));
        let requested = match request.context.get("venue") {
            None | Some(Value::Null) => self.default_venue.as_str(),
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return deny(format!(
                    "context.venue must be a venue id string, got {other}"
                ))
            }
        };
        let Some((id, venue)) = self.venue(requested) else {
            return deny(format!(
                "unknown venue {requested:?}: no trading session is configured for it (configured: {})",
                self.venues.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        };
        let local = venue.time_zone.to_datetime(request.time);
        let (date, time) = (local.date(), local.time());
        // Built only when a finding is returned: the in-session path allocates nothing.
        let at = || format!("{date} {} {}", hhmm(time), venue.time_zone_name);
        if matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
            return deny(format!(
                "order at {} is outside the {id} regular session: the venue is closed on {:?}s",
                at(),
                date.weekday()
            ));
        }
        if venue.holidays.contains(&date) {
            return deny(format!(
                "order at {} is outside the {id} regular session: {date} is a venue holiday",
                at()
            ));
        }
        let close = venue
            .early_closes
            .get(&date)
            .copied()
            .unwrap_or(venue.close);
        if time < venue.open || time >= close {
            return deny(format!(
                "order at {} is outside the {id} regular session {}–{} {}",
                at(),
                hhmm(venue.open),
                hhmm(close),
                venue.time_zone_name
            ));
        }
        None
    }

    fn flash_crash(
        &self,
        params: &serde_json::Map<String, Value>,
        request: &Request,
    ) -> Option<Finding> {
        const CODE: &str = "finance.prevent_flash_crash";
        if request.action.type_id() != PLACE_ORDER {
            return None;
        }
        let deny = |reason: String| Some(Finding::new(CODE, FindingEffect::Deny, reason));
        let max = match number_param(params, "max_notional_per_minute", 10_000_000.0) {
            Ok(max) => max,
            Err(reason) => return deny(reason),
        };
        let value = match order_value(&request.context) {
            Ok(Some(v)) => v,
            Ok(None) => return deny(missing_order_value()),
            Err(reason) => return deny(reason),
        };
        let window = self
            .windows
            .sum(request.actor.as_str(), request.time.as_second());
        if window + value > max {
            return deny(format!(
                "order of {} would bring {}'s notional in the last 60 s to {}, above the max {} per minute (window sum {})",
                amount(value),
                request.actor,
                amount(window + value),
                amount(max),
                amount(window)
            ));
        }
        None
    }

    fn position_limit(
        &self,
        params: &serde_json::Map<String, Value>,
        request: &Request,
    ) -> Option<Finding> {
        const CODE: &str = "finance.position_limits";
        if request.action.type_id() != PLACE_ORDER {
            return None;
        }
        let deny = |reason: String| Some(Finding::new(CODE, FindingEffect::Deny, reason));
        let max_pct = match number_param(params, "max_position_pct", 5.0) {
            Ok(v) => v,
            Err(reason) => return deny(reason),
        };
        let value = match order_value(&request.context) {
            Ok(Some(v)) => v,
            Ok(None) => return deny(missing_order_value()),
            Err(reason) => return deny(reason),
        };
        let portfolio =
            match request.context.get("portfolio_value") {
                None | Some(Value::Null) => return deny(
                    "context.portfolio_value is missing, so the position limit cannot be checked"
                        .into(),
                ),
                Some(v) => match v.as_f64() {
                    Some(p) if p.is_finite() && p > 0.0 => p,
                    _ => {
                        return deny(format!(
                            "context.portfolio_value must be a positive number, got {v}"
                        ))
                    }
                },
            };
        let position = match request.context.get("position_value") {
            None | Some(Value::Null) => 0.0,
            Some(v) => match v.as_f64() {
                Some(p) if p.is_finite() => p,
                _ => return deny(format!("context.position_value must be a number, got {v}")),
            },
        };
        let sell = request
            .context
            .get("side")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("sell"));
        let after = if sell {
            (position - value).abs()
        } else {
            position + value
        };
        let pct = after / portfolio * 100.0;
        if pct > max_pct {
            return deny(format!(
                "position after the order would be {} of portfolio {} = {pct:.2}%, above the {max_pct}% limit",
                amount(after),
                amount(portfolio)
            ));
        }
        None
    }
}

impl DomainPlugin for FinancePlugin {
    fn config(&self) -> &DomainConfig {
        &self.config
    }

    fn enrich(&self, request: &mut Request) {
        if request.context.contains_key("order_value") {
            return;
        }
        if let Some(v) = derived_order_value(&request.context) {
            if let Some(n) = serde_json::Number::from_f64(v) {
                request
                    .context
                    .insert("order_value".into(), Value::Number(n));
            }
        }
    }

    fn validate(&self, request: &Request) -> Vec<Finding> {
        let action = request.action.type_id();
        if !ORDER_ENTRY.contains(&action) {
            return Vec::new();
        }
        let mut findings = Vec::new();
        match order_value(&request.context) {
            Err(reason) => findings.push(Finding::new(
                "finance.order_value",
                FindingEffect::Deny,
                reason,
            )),
            Ok(None) if action == PLACE_ORDER => findings.push(Finding::new(
                "finance.order_value",
                FindingEffect::Deny,
                missing_order_value(),
            )),
            Ok(Some(v)) if v > self.max_order_value => findings.push(Finding::new(
                "finance.order_value_limit",
                FindingEffect::Escalate,
                format!(
                    "order value {} exceeds the limit of {} per order; human approval required",
                    amount(v),
                    amount(self.max_order_value)
                ),
            )),
            Ok(_) => {}
        }
        if let Some(f) = self.session_finding(request) {
            findings.push(f);
        }
        findings
    }

    fn validate_is_time_dependent(&self) -> bool {
        true
    }

    fn check_template(
        &self,
        name: &str,
        params: &serde_json::Map<String, Value>,
        request: &Request,
    ) -> Option<Finding> {
        match name {
            PREVENT_FLASH_CRASH => self.flash_crash(params, request),
            POSITION_LIMITS => self.position_limit(params, request),
            _ => None,
        }
    }

    fn template_is_stateful(&self, name: &str) -> bool {
        name == PREVENT_FLASH_CRASH
    }

    /// Counts a permitted order's notional in its actor's window (whether or not the policy enables
    /// `prevent_flash_crash`, so enabling it later starts from the true recent notional).
    fn on_decision(&self, request: &Request, outcome: &DecisionOutcome<'_>) {
        if outcome.verdict != Verdict::Permit || request.action.type_id() != PLACE_ORDER {
            return;
        }
        if let Ok(Some(v)) = order_value(&request.context) {
            self.windows
                .record(request.actor.as_str(), request.time.as_second(), v);
        }
    }
}

fn missing_order_value() -> String {
    "order value unknown: set context.order_value, or quantity and limit_price (or price)".into()
}

/// `quantity * limit_price` (or `* price`) when both are numbers.
fn derived_order_value(context: &serde_json::Map<String, Value>) -> Option<f64> {
    let quantity = context.get("quantity")?.as_f64()?;
    let price = context
        .get("limit_price")
        .or_else(|| context.get("price"))?
        .as_f64()?;
    let v = quantity * price;
    v.is_finite().then_some(v)
}

/// The order's value: `context.order_value`, else derived. A present non-numeric value is an error.
fn order_value(context: &serde_json::Map<String, Value>) -> Result<Option<f64>, String> {
    match context.get("order_value") {
        None | Some(Value::Null) => Ok(derived_order_value(context)),
        Some(v) => match v.as_f64() {
            Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
            _ => Err(format!(
                "context.order_value must be a non-negative number, got {v}"
            )),
        },
    }
}

fn hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// `20000000` → `20,000,000`; fractions keep two decimals.
fn amount(v: f64) -> String {
    let negative = v < 0.0;
    let v = v.abs();
    let whole = v.trunc();
    let cents = ((v - whole) * 100.0).round();
    let digits = format!("{whole:.0}");
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 4);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if cents > 0.0 {
        grouped.push_str(&format!(".{cents:02.0}"));
    }
    if negative {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// The finance catalogue (types, frameworks, risk models, templates) as data; [`config`] parses it
/// and adds what the settings decide.
const CATALOGUE: &str = include_str!("finance.yaml");

/// The domain's configuration: [`CATALOGUE`], plus `axn_place_order`'s `max_order_value`, the
/// generic `axn_http_request` action and the constraints, from `settings`.
fn config(settings: &FinanceSettings) -> Result<DomainConfig, DomainError> {
    let invalid = |reason: String| DomainError::InvalidCatalogue {
        domain: "finance",
        reason,
    };
    // INVARIANT: the embedded catalogue parses (`catalogue_is_pinned` builds it); an error here is
    // still returned, not a panic.
    let mut config: DomainConfig =
        serde_norway::from_str(CATALOGUE).map_err(|e| invalid(format!("finance.yaml: {e}")))?;
    let place = config
        .action_types
        .iter_mut()
        .find(|t| t.type_id == PLACE_ORDER)
        .ok_or_else(|| invalid(format!("finance.yaml declares no {PLACE_ORDER}")))?;
    place
        .metadata
        .insert("max_order_value".into(), json!(settings.max_order_value));
    config.action_types.push(http_request_action()?);
    config.constraints = BTreeMap::from([
        (
            "max_order_value".to_string(),
            json!(settings.max_order_value),
        ),
        ("default_venue".to_string(), json!(settings.default_venue)),
        (
            "venues".to_string(),
            json!(settings.venues.keys().collect::<Vec<_>>()),
        ),
    ]);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::{DomainId, EntityRef};
    use crate::model::{ActionCategory, ActorCategory, Sensitivity};

    /// Every type of the catalogue with its risk level and approval flag (actions), category
    /// (actors) or sensitivity (resources), as the Rust table had them before they moved to
    /// finance.yaml (commit 6a2386f compared the whole `DomainConfig` with that table).
    #[test]
    fn catalogue_is_pinned() {
        let c = plugin().config().clone();
        let actions: Vec<(&str, ActionCategory, u8, bool)> = c
            .action_types
            .iter()
            .map(|t| {
                (
                    t.type_id.as_str(),
                    t.category,
                    t.risk_level.get(),
                    t.requires_human_approval,
                )
            })
            .collect();
        use ActionCategory as A;
        assert_eq!(
            actions,
            [
                ("axn_place_order", A::Execute, 3, false),
                ("axn_cancel_order", A::Delete, 2, false),
                ("axn_modify_order", A::Write, 3, false),
                ("axn_rebalance_portfolio", A::Execute, 4, true),
                ("axn_transfer_funds", A::Transmit, 4, false),
                ("axn_view_positions", A::Read, 1, false),
                ("axn_read_market_data", A::Read, 1, false),
                ("axn_override_risk_limit", A::Write, 5, true),
                ("axn_http_request", A::Execute, 2, false),
            ]
        );
        let actors: Vec<(&str, ActorCategory)> = c
            .actor_types
            .iter()
            .map(|t| (t.type_id.as_str(), t.category))
            .collect();
        use ActorCategory as C;
        assert_eq!(
            actors,
            [
                ("act_trading_algo", C::Ai),
                ("act_human_trader", C::Human),
                ("act_portfolio_manager", C::Human),
                ("act_risk_system", C::System),
                ("act_compliance_officer", C::Human),
                ("act_robo_advisor", C::Ai),
                ("act_oms", C::System),
            ]
        );
        let resources: Vec<(&str, &str, Sensitivity)> = c
            .resource_types
            .iter()
            .map(|t| (t.type_id.as_str(), t.category.as_str(), t.sensitivity))
            .collect();
        use Sensitivity as S;
        assert_eq!(
            resources,
            [
                ("res_security", "financial_instrument", S::Confidential),
                ("res_account", "financial_account", S::Secret),
                ("res_portfolio", "financial_account", S::Confidential),
                ("res_order", "order", S::Confidential),
                ("res_market_data", "data", S::Internal),
                ("res_risk_limit", "control", S::Internal),
            ]
        );
        assert_eq!(
            c.compliance_frameworks,
            [
                "MIFID_II",
                "SEC_RULE_613",
                "SEC_15C3_5",
                "DODD_FRANK",
                "BASEL_III",
                "SOC2"
            ]
        );
        let templates: Vec<(&str, Vec<(&str, &Value)>)> = c
            .policy_templates
            .iter()
            .map(|t| {
                let params = t
                    .params
                    .iter()
                    .map(|(k, p)| (k.as_str(), &p.default))
                    .collect();
                (t.name.as_str(), params)
            })
            .collect();
        assert_eq!(
            templates,
            [
                (
                    PREVENT_FLASH_CRASH,
                    vec![("max_notional_per_minute", &json!(10_000_000))]
                ),
                (POSITION_LIMITS, vec![("max_position_pct", &json!(5.0))]),
            ]
        );
        assert!(c.policy_templates.iter().all(|t| t.rules.is_empty()));
        let risk_models: Vec<&str> = c.risk_models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            risk_models,
            [
                "market_risk",
                "credit_risk",
                "operational_risk",
                "liquidity_risk",
                "flash_crash_prevention"
            ]
        );
        assert_eq!(
            c.actor_types[0].metadata.get("requires_risk_checks"),
            Some(&json!(true))
        );
        assert_eq!(c.display_name, "Financial Services Governance");
    }

    #[test]
    fn settings_reach_the_place_order_metadata_and_the_constraints() {
        let p = FinancePlugin::new(FinanceSettings {
            max_order_value: 1_234.5,
            ..FinanceSettings::default()
        })
        .unwrap();
        let place = p.config().action_type(PLACE_ORDER).unwrap();
        assert_eq!(place.metadata.get("max_order_value"), Some(&json!(1_234.5)));
        assert_eq!(p.config().constraints["max_order_value"], json!(1_234.5));
        assert_eq!(p.config().constraints["default_venue"], json!("XNYS"));
        assert_eq!(
            p.config().constraints["venues"],
            json!(["XLON", "XNAS", "XNYS"])
        );
    }

    fn plugin() -> FinancePlugin {
        FinancePlugin::new(FinanceSettings::default()).unwrap()
    }

    fn order(actor: &str, at: &str, context: Value) -> Request {
        Request {
            domain: DomainId::new("finance").unwrap(),
            actor: EntityRef::parse(actor).unwrap(),
            action: EntityRef::parse(PLACE_ORDER).unwrap(),
            resource: Some(EntityRef::parse("res_security:AAPL").unwrap()),
            context: context.as_object().cloned().unwrap(),
            provenance: Default::default(),
            time: at.parse().unwrap(),
        }
    }

    /// Tuesday 2026-11-24, 10:00 New York (EST, UTC-5).
    const IN_SESSION: &str = "2026-11-24T15:00:00Z";

    fn permitted(verdict: Verdict) -> DecisionOutcome<'static> {
        DecisionOutcome {
            verdict,
            findings: &[],
            dry_run: false,
        }
    }

    #[test]
    fn order_in_session_below_limit_has_no_findings() {
        let f = plugin().validate(&order(
            "act_trading_algo:momentum_v3",
            IN_SESSION,
            json!({"order_value": 500_000}),
        ));
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn order_above_limit_is_escalated_with_reason_naming_limit_and_value() {
        let f = plugin().validate(&order(
            "act_trading_algo:momentum_v3",
            IN_SESSION,
            json!({"order_value": 20_000_000}),
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].effect, FindingEffect::Escalate);
        assert!(
            f[0].reason.contains("limit of 10,000,000"),
            "{}",
            f[0].reason
        );
        assert!(f[0].reason.contains("20,000,000"), "{}", f[0].reason);
    }

    #[test]
    fn order_limit_is_configurable() {
        let p = FinancePlugin::new(FinanceSettings {
            max_order_value: 1_000_000.0,
            ..FinanceSettings::default()
        })
        .unwrap();
        let f = p.validate(&order(
            "act_human_trader:ann",
            IN_SESSION,
            json!({"order_value": 2_000_000}),
        ));
        assert_eq!(f[0].effect, FindingEffect::Escalate);
        assert!(f[0].reason.contains("1,000,000"), "{}", f[0].reason);
    }

    #[test]
    fn order_at_0800_new_york_is_denied_as_outside_session() {
        // 13:00 UTC on Tuesday 2026-11-24 is 08:00 EST.
        let f = plugin().validate(&order(
            "act_trading_algo:m",
            "2026-11-24T13:00:00Z",
            json!({"order_value": 1000}),
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].effect, FindingEffect::Deny);
        assert!(
            f[0].reason.contains("08:00 America/New_York"),
            "{}",
            f[0].reason
        );
        assert!(f[0].reason.contains("09:30–16:00"), "{}", f[0].reason);
    }

    #[test]
    fn session_follows_daylight_saving_time_of_the_venue() {
        // 13:45 UTC on Tuesday 2026-07-14 is 09:45 EDT: open.
        let f = plugin().validate(&order(
            "act_trading_algo:m",
            "2026-07-14T13:45:00Z",
            json!({"order_value": 1000}),
        ));
        assert!(f.is_empty(), "{f:?}");
        // 20:00 UTC the same day is 16:00 EDT: closed.
        let f = plugin().validate(&order(
            "act_trading_algo:m",
            "2026-07-14T20:00:00Z",
            json!({"order_value": 1000}),
        ));
        assert_eq!(f[0].effect, FindingEffect::Deny);
    }

    #[test]
    fn order_on_holiday_weekend_or_after_early_close_is_denied() {
        let p = plugin();
        // Thanksgiving 2026-11-26, 10:00 EST.
        let f = p.validate(&order(
            "act_trading_algo:m",
            "2026-11-26T15:00:00Z",
            json!({"order_value": 1000}),
        ));
        assert_eq!(f[0].effect, FindingEffect::Deny);
        assert!(f[0].reason.contains("holiday"), "{}", f[0].reason);
        // Saturday 2026-11-28.
        let f = p.validate(&order(
            "act_trading_algo:m",
            "2026-11-28T15:00:00Z",
            json!({"order_value": 1000}),
        ));
        assert!(f[0].reason.contains("Saturday"), "{}", f[0].reason);
        // 2026-11-27 closes at 13:00; 13:30 EST is out.
        let f = p.validate(&order(
            "act_trading_algo:m",
            "2026-11-27T18:30:00Z",
            json!({"order_value": 1000}),
        ));
        assert!(f[0].reason.contains("09:30–13:00"), "{}", f[0].reason);
    }

    #[test]
    fn configured_holiday_list_denies_that_date() {
        let mut settings = FinanceSettings::default();
        if let Some(v) = settings.venues.get_mut("XNYS") {
            v.holidays.insert(Date::constant(2026, 11, 24));
        }
        let p = FinancePlugin::new(settings).unwrap();
        let f = p.validate(&order(
            "act_trading_algo:m",
            IN_SESSION,
            json!({"order_value": 1000}),
        ));
        assert!(f[0].reason.contains("holiday"), "{}", f[0].reason);
    }

    #[test]
    fn venue_is_selected_from_context_and_unknown_venue_is_denied() {
        let p = plugin();
        // 09:00 London on Tuesday 2026-11-24 (GMT): XLON open, XNYS closed.
        let london = order(
            "act_trading_algo:m",
            "2026-11-24T09:00:00Z",
            json!({"order_value": 1000, "venue": "XLON"}),
        );
        assert!(p.validate(&london).is_empty());
        let f = p.validate(&order(
            "act_trading_algo:m",
            IN_SESSION,
            json!({"order_value": 1000, "venue": "XMARS"}),
        ));
        assert_eq!(f[0].effect, FindingEffect::Deny);
        assert!(
            f[0].reason.contains("unknown venue \"XMARS\""),
            "{}",
            f[0].reason
        );
    }

    #[test]
    fn enrich_derives_order_value_from_quantity_and_price() {
        let p = plugin();
        let mut r = order(
            "act_trading_algo:m",
            IN_SESSION,
            json!({"quantity": 1000, "limit_price": 150.5}),
        );
        p.enrich(&mut r);
        assert_eq!(r.context["order_value"].as_f64(), Some(150_500.0));
        let mut r = order(
            "act_trading_algo:m",
            IN_SESSION,
            json!({"quantity": 10, "price": 3, "order_value": 7}),
        );
        p.enrich(&mut r);
        assert_eq!(
            r.context["order_value"].as_f64(),
            Some(7.0),
            "an explicit order_value wins"
        );
        let mut r = order(
            "act_trading_algo:m",
            IN_SESSION,
            json!({"quantity": "10", "price": 3}),
        );
        p.enrich(&mut r);
        assert!(!r.context.contains_key("order_value"));
    }

    #[test]
    fn order_without_value_or_with_non_numeric_value_is_denied() {
        let p = plugin();
        let f = p.validate(&order("act_trading_algo:m", IN_SESSION, json!({})));
        assert!(f
            .iter()
            .any(|f| f.effect == FindingEffect::Deny && f.reason.contains("order value unknown")));
        let f = p.validate(&order(
            "act_trading_algo:m",
            IN_SESSION,
            json!({"order_value": "lots"}),
        ));
        assert!(f
            .iter()
            .any(|f| f.reason.contains("must be a non-negative number")));
    }

    #[test]
    fn flash_crash_window_denies_the_crossing_order_and_forgets_after_60s() {
        let p = plugin();
        let params = serde_json::Map::new();
        let a = "act_trading_algo:momentum_v3";
        let first = order(a, "2026-11-24T15:00:00Z", json!({"order_value": 6_000_000}));
        assert!(p
            .check_template(PREVENT_FLASH_CRASH, &params, &first)
            .is_none());
        p.on_decision(&first, &permitted(Verdict::Permit));

        let crossing = order(a, "2026-11-24T15:00:30Z", json!({"order_value": 5_000_000}));
        let f = p
            .check_template(PREVENT_FLASH_CRASH, &params, &crossing)
            .unwrap();
        assert_eq!(f.effect, FindingEffect::Deny);
        assert!(f.reason.contains("max 10,000,000"), "{}", f.reason);
        assert!(f.reason.contains("window sum 6,000,000"), "{}", f.reason);

        let fits = order(a, "2026-11-24T15:00:30Z", json!({"order_value": 4_000_000}));
        assert!(p
            .check_template(PREVENT_FLASH_CRASH, &params, &fits)
            .is_none());

        let other_actor = order(
            "act_trading_algo:other",
            "2026-11-24T15:00:30Z",
            json!({"order_value": 5_000_000}),
        );
        assert!(p
            .check_template(PREVENT_FLASH_CRASH, &params, &other_actor)
            .is_none());

        let later = order(a, "2026-11-24T15:01:00Z", json!({"order_value": 5_000_000}));
        assert!(
            p.check_template(PREVENT_FLASH_CRASH, &params, &later)
                .is_none(),
            "the 6M order is 60 s old and forgotten"
        );
        assert!(p.template_is_stateful(PREVENT_FLASH_CRASH));
        assert!(!p.template_is_stateful(POSITION_LIMITS));
    }

    #[test]
    fn flash_crash_counts_only_permitted_orders_and_honours_max_param() {
        let p = plugin();
        let a = "act_trading_algo:x";
        let denied = order(a, IN_SESSION, json!({"order_value": 9_000_000}));
        p.on_decision(&denied, &permitted(Verdict::Deny));
        p.on_decision(&denied, &permitted(Verdict::Escalate));
        let next = order(a, "2026-11-24T15:00:10Z", json!({"order_value": 9_000_000}));
        assert!(p
            .check_template(PREVENT_FLASH_CRASH, &serde_json::Map::new(), &next)
            .is_none());
        let small = json!({"max_notional_per_minute": 1_000_000})
            .as_object()
            .cloned()
            .unwrap();
        let f = p
            .check_template(PREVENT_FLASH_CRASH, &small, &next)
            .unwrap();
        assert!(f.reason.contains("max 1,000,000"), "{}", f.reason);
    }

    #[test]
    fn position_limit_denies_above_max_and_fails_closed_without_portfolio_value() {
        let p = plugin();
        let params = serde_json::Map::new();
        let ok = order(
            "act_portfolio_manager:pm",
            IN_SESSION,
            json!({"order_value": 100_000, "position_value": 300_000, "portfolio_value": 10_000_000}),
        );
        assert!(p.check_template(POSITION_LIMITS, &params, &ok).is_none());
        let big = order(
            "act_portfolio_manager:pm",
            IN_SESSION,
            json!({"order_value": 300_000, "position_value": 300_000, "portfolio_value": 10_000_000}),
        );
        let f = p.check_template(POSITION_LIMITS, &params, &big).unwrap();
        assert_eq!(f.effect, FindingEffect::Deny);
        assert!(
            f.reason.contains("6.00%") && f.reason.contains("5% limit"),
            "{}",
            f.reason
        );
        let missing = order(
            "act_portfolio_manager:pm",
            IN_SESSION,
            json!({"order_value": 1}),
        );
        let f = p
            .check_template(POSITION_LIMITS, &params, &missing)
            .unwrap();
        assert!(
            f.reason.contains("portfolio_value is missing"),
            "{}",
            f.reason
        );
        let sell = order(
            "act_portfolio_manager:pm",
            IN_SESSION,
            json!({"order_value": 300_000, "position_value": 600_000, "portfolio_value": 10_000_000, "side": "sell"}),
        );
        assert!(
            p.check_template(POSITION_LIMITS, &params, &sell).is_none(),
            "a sell reduces the position"
        );
    }

    #[test]
    fn validate_is_time_dependent_and_cancels_are_not_session_checked() {
        let p = plugin();
        assert!(p.validate_is_time_dependent());
        let mut r = order("act_trading_algo:m", "2026-11-28T15:00:00Z", json!({}));
        r.action = EntityRef::parse("axn_cancel_order").unwrap();
        assert!(p.validate(&r).is_empty());
    }

    proptest::proptest! {
        /// The ring's sum equals the brute-force sum of records in (now - 60 s, now], whatever the
        /// spacing of the orders (including gaps longer than the window and repeated seconds).
        #[test]
        fn ring_sum_matches_brute_force_window(steps in proptest::collection::vec((0i64..90, 1u32..1_000_000), 1..200)) {
            let mut ring = Ring::new();
            let mut records: Vec<(i64, f64)> = Vec::new();
            let mut now = 1_800_000_000i64;
            for (dt, value) in steps {
                now += dt;
                let value = f64::from(value);
                ring.add(now, value);
                records.push((now, value));
                let expected: f64 = records
                    .iter()
                    .filter(|(t, _)| *t > now - 60 && *t <= now)
                    .map(|(_, v)| v)
                    .sum();
                proptest::prop_assert!((ring.sum(now) - expected).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn amounts_are_grouped_by_thousands() {
        assert_eq!(amount(10_000_000.0), "10,000,000");
        assert_eq!(amount(999.0), "999");
        assert_eq!(amount(1234.5), "1,234.50");
    }
}
