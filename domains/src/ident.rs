//! Identifiers: domain ids (`[a-z][a-z0-9_]*`) and typed entity references (`type_id:instance`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// A domain identifier such as `finance` or a custom `logistics`. Always matches `[a-z][a-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainId(String);

impl DomainId {
    /// Parses a domain id, rejecting anything outside `[a-z][a-z0-9_]*` (at most 64 characters).
    pub fn new(id: impl Into<String>) -> Result<Self, DomainError> {
        let id = id.into();
        // Every allowed character is ASCII, so bytes decide (a multi-byte character fails on its
        // first byte).
        let mut bytes = id.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if first_ok && rest_ok && id.len() <= 64 {
            Ok(Self(id))
        } else {
            Err(DomainError::InvalidDomainId { id })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DomainId {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<DomainId> for String {
    fn from(value: DomainId) -> Self {
        value.0
    }
}

/// Lets maps keyed by [`DomainId`] be searched with a `&str` (the order is the string's order).
impl std::borrow::Borrow<str> for DomainId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference to an actor, action or resource: `type_id:instance` (`act_trading_algo:momentum_v3`,
/// `res_security:AAPL`) or a bare `type_id` (`axn_place_order`). The instance may itself contain
/// `:` or `/` (`res_phi:Patient/123`); only the first `:` separates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityRef {
    raw: String,
    split: Option<usize>,
}

impl EntityRef {
    /// Parses `type_id[:instance]`. The type id must be non-empty; the whole reference at most 512
    /// bytes and free of control characters.
    pub fn parse(raw: impl Into<String>) -> Result<Self, DomainError> {
        let raw = raw.into();
        // The usual reference is printable ASCII (0x20..=0x7e), which a branch-free pass over the
        // bytes confirms; only one with other bytes is decoded to look for control characters.
        let mut unusual = false;
        for b in raw.bytes() {
            unusual |= b.wrapping_sub(0x20) >= 0x5f;
        }
        let control = unusual && raw.chars().any(char::is_control);
        if raw.is_empty() || raw.len() > 512 || control {
            return Err(DomainError::InvalidEntityRef {
                raw,
                reason: "must be 1..=512 printable characters",
            });
        }
        let split = raw.bytes().position(|b| b == b':');
        if split == Some(0) {
            return Err(DomainError::InvalidEntityRef {
                raw,
                reason: "the type id before ':' is empty",
            });
        }
        Ok(Self { raw, split })
    }

    /// The type id: everything before the first `:` (or the whole reference).
    pub fn type_id(&self) -> &str {
        match self.split {
            Some(i) => &self.raw[..i],
            None => &self.raw,
        }
    }

    /// The instance after the first `:`, if any.
    pub fn instance(&self) -> Option<&str> {
        self.split.map(|i| &self.raw[i + 1..])
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl TryFrom<String> for EntityRef {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<EntityRef> for String {
    fn from(value: EntityRef) -> Self {
        value.raw
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_id_accepts_lowercase_snake_and_rejects_others() {
        assert!(DomainId::new("supply_chain").is_ok());
        assert!(DomainId::new("a1").is_ok());
        for bad in [
            "", "1abc", "Finance", "fin-ance", "_x", "x y", "é", "aé", "a\u{0}",
        ] {
            assert!(DomainId::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn entity_ref_splits_at_first_colon_only() {
        let r = EntityRef::parse("res_phi:Patient/123:v2").unwrap();
        assert_eq!(r.type_id(), "res_phi");
        assert_eq!(r.instance(), Some("Patient/123:v2"));
        let bare = EntityRef::parse("axn_place_order").unwrap();
        assert_eq!(bare.type_id(), "axn_place_order");
        assert_eq!(bare.instance(), None);
        assert!(EntityRef::parse(":x").is_err());
        assert!(EntityRef::parse("").is_err());
    }

    #[test]
    fn control_characters_are_rejected_in_ascii_and_unicode_references() {
        for bad in [
            "act_a:x\ny",
            "act_a:\u{7f}",
            "act\t:x",
            "act_é:\u{85}",
            "act_é:\u{0}",
        ] {
            assert!(EntityRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in [
            "act_a:x y",
            "act_é:Zoë",
            "res_phi:Patient/123~",
            "act_a:\u{a0}",
        ] {
            assert!(
                EntityRef::parse(good).is_ok(),
                "{good:?} should be accepted"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn a_reference_is_rejected_for_control_characters_exactly_when_one_is_in_it(
            raw in "[a-z]{1,4}(:[\\x{0}-\\x{ff}]{0,6})?",
        ) {
            let has_control = raw.chars().any(char::is_control);
            let rejected = matches!(
                EntityRef::parse(raw.as_str()),
                Err(DomainError::InvalidEntityRef { reason: "must be 1..=512 printable characters", .. })
            );
            proptest::prop_assert_eq!(rejected, has_control);
            if let Ok(r) = EntityRef::parse(raw.as_str()) {
                let (type_id, instance) = match raw.split_once(':') {
                    Some((t, i)) => (t, Some(i)),
                    None => (raw.as_str(), None),
                };
                proptest::prop_assert_eq!(r.type_id(), type_id);
                proptest::prop_assert_eq!(r.instance(), instance);
            }
        }
    }
}
