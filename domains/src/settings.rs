//! Plugin settings the configuration file may carry (`domains: {finance: {max_order_value: …}}`).
//!
//! Plain serde data with explicit defaults, compiled in whatever Cargo features are on, so the config
//! crate can parse and validate a file for any build. [`DomainSettings::validate`] checks everything
//! a plugin would otherwise reject at start (time zones exist, sessions are well formed); it never
//! reads a clock or the file system.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, Time};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// Settings of the built-in domain plugins.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainSettings {
    pub finance: FinanceSettings,
    pub healthcare: HealthcareSettings,
}

impl DomainSettings {
    /// Checks every plugin's settings; the first problem is returned with the field it concerns.
    pub fn validate(&self) -> Result<(), DomainError> {
        self.finance.validate()?;
        self.healthcare.validate()
    }
}

/// Settings of the `healthcare` plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthcareSettings {
    /// Break-glass reason codes that permit PHI access without consent (marked for review),
    /// compared case-insensitively. Default: HL7 v3 ETREAT, BTG, PATSFTY and `EMERGENCY`.
    pub break_glass_reasons: Vec<String>,
}

impl Default for HealthcareSettings {
    fn default() -> Self {
        Self {
            break_glass_reasons: ["ETREAT", "BTG", "EMERGENCY", "PATSFTY"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl HealthcareSettings {
    /// Reason codes must be non-empty single tokens.
    pub fn validate(&self) -> Result<(), DomainError> {
        for (i, r) in self.break_glass_reasons.iter().enumerate() {
            if r.is_empty() || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(DomainError::InvalidSettings {
                    field: format!("healthcare.break_glass_reasons[{i}]"),
                    reason: format!("{r:?} is not a reason code (a non-empty word such as ETREAT)"),
                });
            }
        }
        Ok(())
    }
}

/// Settings of the `finance` plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinanceSettings {
    /// `axn_place_order` above this order value is escalated for human approval.
    pub max_order_value: f64,
    /// Trading venues by MIC (`XNYS`), selected by `context.venue`.
    pub venues: BTreeMap<String, VenueSettings>,
    /// The venue used when a request names none.
    pub default_venue: String,
}

impl Default for FinanceSettings {
    fn default() -> Self {
        Self {
            max_order_value: 10_000_000.0,
            venues: default_venues(),
            default_venue: "XNYS".to_string(),
        }
    }
}

/// One venue's regular session, evaluated in the venue's own time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VenueSettings {
    /// IANA time zone (`America/New_York`).
    pub time_zone: String,
    /// Session open, local time (`09:30`).
    pub open: Time,
    /// Session close, local time (`16:00`); orders at or after the close are outside the session.
    pub close: Time,
    /// Full-day closures (local dates).
    #[serde(default)]
    pub holidays: BTreeSet<Date>,
    /// Days the session closes early, with that day's close (`2026-11-27: "13:00"`).
    #[serde(default)]
    pub early_closes: BTreeMap<Date, Time>,
}

impl FinanceSettings {
    /// Checks the limit, every venue's time zone and session, and that the default venue exists.
    pub fn validate(&self) -> Result<(), DomainError> {
        if !(self.max_order_value.is_finite() && self.max_order_value > 0.0) {
            return Err(DomainError::InvalidSettings {
                field: "finance.max_order_value".into(),
                reason: format!("must be a positive number, got {}", self.max_order_value),
            });
        }
        for (id, venue) in &self.venues {
            venue.validate(&format!("finance.venues.{id}"))?;
        }
        if !self.venues.contains_key(&self.default_venue) {
            return Err(DomainError::InvalidSettings {
                field: "finance.default_venue".into(),
                reason: format!(
                    "venue {:?} is not among the configured venues ({})",
                    self.default_venue,
                    self.venues.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        Ok(())
    }
}

impl VenueSettings {
    fn validate(&self, field: &str) -> Result<(), DomainError> {
        jiff::tz::TimeZone::get(&self.time_zone).map_err(|e| DomainError::InvalidSettings {
            field: format!("{field}.time_zone"),
            reason: format!("unknown time zone {:?}: {e}", self.time_zone),
        })?;
        if self.open >= self.close {
            return Err(DomainError::InvalidSettings {
                field: format!("{field}.open"),
                reason: format!(
                    "the session opens at {} but closes at {}; open must be before close",
                    self.open, self.close
                ),
            });
        }
        for (date, close) in &self.early_closes {
            if *close <= self.open {
                return Err(DomainError::InvalidSettings {
                    field: format!("{field}.early_closes.{date}"),
                    reason: format!("early close {close} is not after the open {}", self.open),
                });
            }
        }
        Ok(())
    }
}

fn d(year: i16, month: i8, day: i8) -> Date {
    Date::constant(year, month, day)
}

fn t(hour: i8, minute: i8) -> Time {
    Time::constant(hour, minute, 0, 0)
}

/// NYSE/Nasdaq full-day holidays 2025–2027 (as published by NYSE).
fn us_equity_holidays() -> BTreeSet<Date> {
    [
        d(2025, 1, 1),
        d(2025, 1, 9),
        d(2025, 1, 20),
        d(2025, 2, 17),
        d(2025, 4, 18),
        d(2025, 5, 26),
        d(2025, 6, 19),
        d(2025, 7, 4),
        d(2025, 9, 1),
        d(2025, 11, 27),
        d(2025, 12, 25),
        d(2026, 1, 1),
        d(2026, 1, 19),
        d(2026, 2, 16),
        d(2026, 4, 3),
        d(2026, 5, 25),
        d(2026, 6, 19),
        d(2026, 7, 3),
        d(2026, 9, 7),
        d(2026, 11, 26),
        d(2026, 12, 25),
        d(2027, 1, 1),
        d(2027, 1, 18),
        d(2027, 2, 15),
        d(2027, 3, 26),
        d(2027, 5, 31),
        d(2027, 6, 18),
        d(2027, 7, 5),
        d(2027, 9, 6),
        d(2027, 11, 25),
        d(2027, 12, 24),
    ]
    .into_iter()
    .collect()
}

/// NYSE/Nasdaq 13:00 early closes 2025–2027.
fn us_equity_early_closes() -> BTreeMap<Date, Time> {
    [
        d(2025, 7, 3),
        d(2025, 11, 28),
        d(2025, 12, 24),
        d(2026, 11, 27),
        d(2026, 12, 24),
        d(2027, 11, 26),
    ]
    .into_iter()
    .map(|date| (date, t(13, 0)))
    .collect()
}

/// London Stock Exchange closures (England and Wales bank holidays) 2025–2026.
fn lse_holidays() -> BTreeSet<Date> {
    [
        d(2025, 1, 1),
        d(2025, 4, 18),
        d(2025, 4, 21),
        d(2025, 5, 5),
        d(2025, 5, 26),
        d(2025, 8, 25),
        d(2025, 12, 25),
        d(2025, 12, 26),
        d(2026, 1, 1),
        d(2026, 4, 3),
        d(2026, 4, 6),
        d(2026, 5, 4),
        d(2026, 5, 25),
        d(2026, 8, 31),
        d(2026, 12, 25),
        d(2026, 12, 28),
    ]
    .into_iter()
    .collect()
}

fn default_venues() -> BTreeMap<String, VenueSettings> {
    let us = || VenueSettings {
        time_zone: "America/New_York".into(),
        open: t(9, 30),
        close: t(16, 0),
        holidays: us_equity_holidays(),
        early_closes: us_equity_early_closes(),
    };
    BTreeMap::from([
        ("XNYS".to_string(), us()),
        ("XNAS".to_string(), us()),
        (
            "XLON".to_string(),
            VenueSettings {
                time_zone: "Europe/London".into(),
                open: t(8, 0),
                close: t(16, 30),
                holidays: lse_holidays(),
                early_closes: BTreeMap::new(),
            },
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_finance_settings_are_valid_and_use_xnys() {
        let s = FinanceSettings::default();
        s.validate().unwrap();
        assert_eq!(s.default_venue, "XNYS");
        assert_eq!(s.venues["XNYS"].time_zone, "America/New_York");
        assert_eq!(s.venues["XNYS"].open, t(9, 30));
    }

    #[test]
    fn settings_parse_from_yaml_with_short_times_and_reject_unknown_fields() {
        let yaml = r#"
finance:
  max_order_value: 5000000
  default_venue: XTST
  venues:
    XTST: {time_zone: Europe/Berlin, open: "09:00", close: "17:30", holidays: [2026-12-24]}
"#;
        let s: DomainSettings = serde_norway::from_str(yaml).unwrap();
        s.validate().unwrap();
        assert_eq!(s.finance.max_order_value, 5_000_000.0);
        assert_eq!(s.finance.venues["XTST"].close, t(17, 30));
        assert!(s.finance.venues["XTST"].holidays.contains(&d(2026, 12, 24)));
        assert_eq!(s.healthcare, HealthcareSettings::default());
        let bad = "finance: {max_order: 1}";
        assert!(serde_norway::from_str::<DomainSettings>(bad).is_err());
    }

    #[test]
    fn settings_with_unknown_time_zone_or_missing_default_venue_are_rejected() {
        let mut s = FinanceSettings::default();
        if let Some(v) = s.venues.get_mut("XNYS") {
            v.time_zone = "Mars/Olympus_Mons".into();
        }
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("finance.venues.XNYS.time_zone"), "{err}");
        let s = FinanceSettings {
            default_venue: "NOWHERE".into(),
            ..FinanceSettings::default()
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("NOWHERE"), "{err}");
        let s = FinanceSettings {
            max_order_value: -1.0,
            ..FinanceSettings::default()
        };
        assert!(s.validate().is_err());
        let h = HealthcareSettings {
            break_glass_reasons: vec!["two words".into()],
        };
        let err = h.validate().unwrap_err().to_string();
        assert!(err.contains("healthcare.break_glass_reasons[0]"), "{err}");
    }
}
