//! Signed bundles: configuration + policies + domain packs as one JSON document, signed with Ed25519
//! by the control plane and verified by each node before anything in it is used.
//!
//! ```json
//! {"format": 1, "serial": 42, "config": {...}, "policies": {"ai": {...}}, "packs": {"logistics": {...}},
//!  "signature": {"kid": "cp-2026", "alg": "EdDSA", "sig": "<base64url, no padding>"}}
//! ```
//!
//! The signature covers `lexecon-bundle-v1\n` followed by the canonical JSON (sorted keys, no
//! whitespace; see [`crate::canonical`]) of every field but `signature`, so key order and formatting
//! do not matter and any change to content or serial breaks it. This module owns the format, signing
//! and verification; it never trusts an unsigned or unverified bundle, and it does not decide whether a
//! serial is new enough (the control plane does, with [`Bundle::serial`]).

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use lexecon_domains::{DomainId, DomainRegistry};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::to_canonical_bytes;
use crate::error::{ConfigError, Located};
use crate::policy::PolicyDocument;
use crate::policy_load::policy_from_value;
use crate::policy_validate::policy_errors;

/// The bundle format this crate writes and reads.
pub const BUNDLE_FORMAT: u32 = 1;

/// Domain separation: a bundle signature can never be mistaken for a signature over anything else.
const SIGNING_CONTEXT: &[u8] = b"lexecon-bundle-v1\n";

/// The only signature algorithm accepted.
pub const BUNDLE_ALG: &str = "EdDSA";

/// A bundle: one unit the control plane replaces a node's snapshot with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: u32,
    /// Increases with every bundle the control plane publishes; a node refuses to go back.
    pub serial: u64,
    /// The sidecar configuration document (validated by the configuration file loader).
    #[serde(default)]
    pub config: Value,
    /// Policy documents by domain id, in the policy format or the Lexecon 1.x format.
    #[serde(default)]
    pub policies: BTreeMap<String, Value>,
    /// Data-only domain packs by name (parsed by `lexecon-domains`).
    #[serde(default)]
    pub packs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<BundleSignature>,
}

/// Who signed a bundle, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSignature {
    /// The key id the node looks the verifying key up by.
    pub kid: String,
    /// Always [`BUNDLE_ALG`].
    pub alg: String,
    /// The 64-byte Ed25519 signature, base64url without padding.
    pub sig: String,
}

/// A bundle whose signature verified against a trusted key. Only this gives access to the policies.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedBundle<'a> {
    bundle: &'a Bundle,
    kid: &'a str,
}

impl Bundle {
    /// An unsigned bundle with `config` and no policies or packs.
    pub fn new(serial: u64, config: Value) -> Self {
        Self {
            format: BUNDLE_FORMAT,
            serial,
            config,
            policies: BTreeMap::new(),
            packs: BTreeMap::new(),
            signature: None,
        }
    }

    /// Adds (or replaces) the policy for its domain. Invalidates any signature.
    pub fn insert_policy(&mut self, doc: &PolicyDocument) {
        // INVARIANT: a PolicyDocument always serializes to JSON (string keys, no fallible serializer).
        let value = serde_json::to_value(doc).unwrap_or(Value::Null);
        self.policies.insert(doc.domain.to_string(), value);
        self.signature = None;
    }

    /// Adds (or replaces) a domain pack document. Invalidates any signature.
    pub fn insert_pack(&mut self, name: impl Into<String>, pack: Value) {
        self.packs.insert(name.into(), pack);
        self.signature = None;
    }

    /// Parses a bundle from JSON, locating shape errors (`<file>: policies: invalid type …`).
    pub fn from_json(file: &str, bytes: &[u8]) -> Result<Self, ConfigError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let bundle: Bundle = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigError::Invalid(vec![Located::new(file, path, e.into_inner().to_string())])
        })?;
        if bundle.format != BUNDLE_FORMAT {
            return Err(ConfigError::Invalid(vec![Located::new(
                file,
                "format",
                format!(
                    "unsupported bundle format {}: this node reads format {BUNDLE_FORMAT}",
                    bundle.format
                ),
            )]));
        }
        Ok(bundle)
    }

    /// The bundle as compact canonical JSON, signature included.
    pub fn to_json(&self) -> Vec<u8> {
        // INVARIANT: all fields serialize to JSON without error (string keys only).
        to_canonical_bytes(&serde_json::to_value(self).unwrap_or(Value::Null))
    }

    /// The bytes the signature covers: the signing context and the canonical JSON of every field
    /// but `signature`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Bundle {
            signature: None,
            ..self.clone()
        };
        let mut out = SIGNING_CONTEXT.to_vec();
        // INVARIANT: as in `to_json`.
        out.extend(to_canonical_bytes(
            &serde_json::to_value(&unsigned).unwrap_or(Value::Null),
        ));
        out
    }

    /// Signs the bundle with `key`, recording `kid` so nodes can find the verifying key.
    pub fn sign(&mut self, key: &SigningKey, kid: impl Into<String>) {
        let sig = key.sign(&self.signed_bytes());
        self.signature = Some(BundleSignature {
            kid: kid.into(),
            alg: BUNDLE_ALG.to_string(),
            sig: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
        });
    }

    /// Checks the signature against the `trusted` keys (by key id). Fails closed: unsigned, unknown
    /// key id, another algorithm, a malformed or non-matching signature are all errors.
    pub fn verify<K: AsRef<str>>(
        &self,
        trusted: &[(K, VerifyingKey)],
    ) -> Result<VerifiedBundle<'_>, ConfigError> {
        let signature = self.signature.as_ref().ok_or(ConfigError::UnsignedBundle)?;
        let kid = signature.kid.as_str();
        let bad = |reason: String| ConfigError::BadSignature {
            kid: kid.to_string(),
            reason,
        };
        let key = trusted
            .iter()
            .find(|(k, _)| k.as_ref() == kid)
            .map(|(_, key)| key)
            .ok_or_else(|| ConfigError::UnknownSigningKey {
                kid: kid.to_string(),
                trusted: trusted
                    .iter()
                    .map(|(k, _)| k.as_ref().to_string())
                    .collect(),
            })?;
        if signature.alg != BUNDLE_ALG {
            return Err(bad(format!(
                "unsupported algorithm {:?}, expected {BUNDLE_ALG}",
                signature.alg
            )));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(signature.sig.as_bytes())
            .map_err(|e| bad(format!("signature is not base64url: {e}")))?;
        let bytes: [u8; 64] = raw
            .as_slice()
            .try_into()
            .map_err(|_| bad(format!("signature is {} bytes, expected 64", raw.len())))?;
        key.verify_strict(&self.signed_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| {
                bad(
                    "the content does not match the signature (tampered, or signed by another key)"
                        .into(),
                )
            })?;
        Ok(VerifiedBundle { bundle: self, kid })
    }
}

impl<'a> VerifiedBundle<'a> {
    /// The key id whose key verified the bundle.
    pub fn kid(&self) -> &'a str {
        self.kid
    }

    pub fn bundle(&self) -> &'a Bundle {
        self.bundle
    }

    /// Parses and validates every policy in the bundle (converting 1.x documents) against the
    /// domains in `registry`, collecting every problem; each is located in `<bundle>/policies/<domain>`.
    pub fn policies(
        &self,
        registry: &DomainRegistry,
    ) -> Result<BTreeMap<DomainId, PolicyDocument>, ConfigError> {
        let mut errors = Vec::new();
        let mut out = BTreeMap::new();
        for (domain, value) in &self.bundle.policies {
            let file = format!("<bundle>/policies/{domain}");
            let doc = match policy_from_value(&file, value.clone()) {
                Ok(doc) => doc,
                Err(e) => {
                    errors.extend(e.located().iter().cloned());
                    continue;
                }
            };
            if doc.domain.as_str() != domain {
                errors.push(Located::new(
                    &file,
                    "domain",
                    format!(
                        "the policy is for domain {} but is stored under policies.{domain}",
                        doc.domain
                    ),
                ));
                continue;
            }
            let Some(plugin) = registry.get(domain) else {
                errors.push(Located::new(
                    &file,
                    "domain",
                    format!(
                        "unknown domain {domain}: not built in and not declared by a loaded pack"
                    ),
                ));
                continue;
            };
            let found = policy_errors(&file, &doc, Some(plugin.config()));
            if found.is_empty() {
                out.insert(doc.domain.clone(), doc);
            } else {
                errors.extend(found);
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::policy_load::parse_policy;
    use crate::policy_validate::tests::finance;
    use lexecon_domains::{DomainConfig, DomainPlugin};
    use serde_json::json;

    #[derive(Debug)]
    struct Plugin(DomainConfig);
    impl DomainPlugin for Plugin {
        fn config(&self) -> &DomainConfig {
            &self.0
        }
    }

    fn registry() -> DomainRegistry {
        let mut r = DomainRegistry::empty();
        r.register(Arc::new(Plugin(finance()))).unwrap();
        r
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn signed() -> Bundle {
        let doc = parse_policy(
            "desk.yaml",
            "id: desk\ndomain: finance\nrules: [{id: p, effect: permit, action: axn_place_order}]\n",
        )
        .unwrap();
        let mut b = Bundle::new(7, json!({"node_id": "sidecar-a1"}));
        b.insert_policy(&doc);
        b.insert_pack("logistics", json!({"domain": "logistics"}));
        b.sign(&key(1), "cp-1");
        b
    }

    fn trusted() -> Vec<(String, VerifyingKey)> {
        vec![
            ("cp-0".to_string(), key(9).verifying_key()),
            ("cp-1".to_string(), key(1).verifying_key()),
        ]
    }

    #[test]
    fn signed_bundle_verifies_with_trusted_key_after_json_round_trip() {
        let b = signed();
        let json = b.to_json();
        let back = Bundle::from_json("a1.bundle", &json).unwrap();
        assert_eq!(back, b);
        let verified = back.verify(&trusted()).unwrap();
        assert_eq!(verified.kid(), "cp-1");
        let policies = verified.policies(&registry()).unwrap();
        assert_eq!(policies.len(), 1);
        assert_eq!(policies.values().next().unwrap().id, "desk");
    }

    #[test]
    fn key_order_and_whitespace_do_not_affect_the_signature() {
        let b = signed();
        let pretty = serde_json::to_vec_pretty(&b).unwrap();
        let back = Bundle::from_json("a1.bundle", &pretty).unwrap();
        back.verify(&trusted()).unwrap();
    }

    #[test]
    fn tampered_policy_is_detected() {
        let b = signed();
        let text = String::from_utf8(b.to_json()).unwrap();
        let tampered = text.replace("\"permit\"", "\"forbid\"");
        assert_ne!(text, tampered);
        let back = Bundle::from_json("a1.bundle", tampered.as_bytes()).unwrap();
        let err = back.verify(&trusted()).unwrap_err();
        assert!(matches!(err, ConfigError::BadSignature { ref kid, .. } if kid == "cp-1"));
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn tampered_serial_config_or_pack_is_detected() {
        let mut b = signed();
        b.serial += 1;
        assert!(matches!(
            b.verify(&trusted()),
            Err(ConfigError::BadSignature { .. })
        ));
        let mut b = signed();
        b.config["node_id"] = json!("sidecar-evil");
        assert!(matches!(
            b.verify(&trusted()),
            Err(ConfigError::BadSignature { .. })
        ));
        let mut b = signed();
        b.packs.insert("extra".into(), json!({}));
        assert!(matches!(
            b.verify(&trusted()),
            Err(ConfigError::BadSignature { .. })
        ));
    }

    #[test]
    fn unknown_key_id_is_rejected_naming_trusted_ones() {
        let mut b = signed();
        b.sign(&key(1), "cp-9");
        let err = b.verify(&trusted()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bundle is signed with unknown key id \"cp-9\" (trusted: cp-0, cp-1)"
        );
    }

    #[test]
    fn signature_by_another_key_under_a_trusted_kid_is_rejected() {
        let mut b = signed();
        b.sign(&key(2), "cp-1");
        assert!(matches!(
            b.verify(&trusted()),
            Err(ConfigError::BadSignature { .. })
        ));
    }

    #[test]
    fn unsigned_bundle_and_modified_bundle_are_rejected() {
        let b = Bundle::new(1, json!({}));
        assert!(matches!(
            b.verify(&trusted()),
            Err(ConfigError::UnsignedBundle)
        ));
        let mut b = signed();
        b.insert_pack("late", json!({}));
        assert!(matches!(
            b.verify(&trusted()),
            Err(ConfigError::UnsignedBundle)
        ));
    }

    #[test]
    fn malformed_signature_or_algorithm_is_rejected() {
        let mut b = signed();
        if let Some(s) = b.signature.as_mut() {
            s.sig = "!!not base64".into();
        }
        assert!(b
            .verify(&trusted())
            .unwrap_err()
            .to_string()
            .contains("base64url"));
        let mut b = signed();
        if let Some(s) = b.signature.as_mut() {
            s.sig = URL_SAFE_NO_PAD.encode([0u8; 10]);
        }
        assert!(b
            .verify(&trusted())
            .unwrap_err()
            .to_string()
            .contains("10 bytes"));
        let mut b = signed();
        if let Some(s) = b.signature.as_mut() {
            s.alg = "HS256".into();
        }
        assert!(b
            .verify(&trusted())
            .unwrap_err()
            .to_string()
            .contains("HS256"));
    }

    #[test]
    fn bundle_with_unknown_field_is_rejected_with_its_path() {
        let text = r#"{"format": 1, "serial": 1, "config": {}, "signature": {"kid": "a", "alg": "EdDSA", "sig": "", "x5c": []}}"#;
        let err = Bundle::from_json("a1.bundle", text.as_bytes()).unwrap_err();
        let l = &err.located()[0];
        assert_eq!(l.file, "a1.bundle");
        assert_eq!(l.path, "signature.x5c");
        assert!(l.reason.contains("unknown field `x5c`"), "{}", l.reason);
    }

    #[test]
    fn bundle_of_another_format_is_rejected() {
        let err = Bundle::from_json("a1.bundle", br#"{"format": 2, "serial": 1}"#).unwrap_err();
        assert_eq!(err.located()[0].path, "format");
    }

    #[test]
    fn invalid_policies_in_a_verified_bundle_are_all_reported() {
        let mut b = Bundle::new(3, json!({}));
        b.policies.insert(
            "finance".into(),
            json!({"id": "x", "domain": "finance", "rules": [{"id": "a", "effect": "permit", "action": "axn_nope"}]}),
        );
        b.policies
            .insert("ai".into(), json!({"id": "y", "domain": "ai", "rules": []}));
        b.policies
            .insert("energy".into(), json!({"id": "z", "domain": "finance"}));
        b.sign(&key(1), "cp-1");
        let err = b
            .verify(&trusted())
            .unwrap()
            .policies(&registry())
            .unwrap_err();
        let got: Vec<String> = err.located().iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].starts_with("<bundle>/policies/ai: domain: unknown domain ai"));
        assert!(got[1]
            .starts_with("<bundle>/policies/energy: domain: the policy is for domain finance"));
        assert!(got[2].starts_with(
            "<bundle>/policies/finance: rules[0].action: unknown action type axn_nope in domain finance"
        ));
    }
}
