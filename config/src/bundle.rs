//! Signed policy bundles: one `.tar.gz` file the control plane replaces a sidecar's configuration
//! with — `config.yaml`, the policy files and domain packs it names, a `.manifest` and a detached
//! `.signatures.json`.
//!
//! ```text
//! .manifest          {"format":1,"revision":7,"created_at":"…","not_before":null,"expires_at":null,
//!                     "allow_rollback":false,"parts":{"config.yaml":"<sha256 hex>",…}}
//! .signatures.json   {"signatures":[{"kid":"…","alg":"EdDSA","sig":"<base64url>"}]}
//! config.yaml        the sidecar configuration (its relative paths name parts of the bundle)
//! policies/ai.yaml … every other file: a part, listed in the manifest with its SHA-256
//! ```
//!
//! A signature covers `lexecon-bundle-manifest-v1\n` followed by the exact bytes of `.manifest`,
//! and the manifest pins every part by hash: changing, adding or removing any byte of any part
//! breaks the bundle. This module owns the format, its limits (a bundle is hostile input until it
//! verifies), building, signing and verifying. It never reads a file on its own initiative beyond
//! [`Bundle::from_dir`], trusts no key it is not handed, and does not decide whether a revision is
//! new enough or a configuration valid for a node (the sidecar does).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The bundle format this crate writes and reads.
pub const BUNDLE_FORMAT: u32 = 1;
/// The only signature algorithm accepted.
pub const BUNDLE_ALG: &str = "EdDSA";
/// The manifest's name in the archive.
pub const MANIFEST: &str = ".manifest";
/// The detached signatures' name in the archive.
pub const SIGNATURES: &str = ".signatures.json";
/// The configuration part every bundle has.
pub const CONFIG_PART: &str = "config.yaml";

/// The largest bundle file accepted (compressed).
pub const MAX_BUNDLE_BYTES: usize = 32 * 1024 * 1024;
/// The most bytes a bundle may unpack to (a gzip bomb stops here).
pub const MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;
/// The most parts in one bundle.
pub const MAX_PARTS: usize = 10_000;

/// Domain separation: a bundle signature can never be mistaken for a signature over anything else.
const SIGNING_CONTEXT: &[u8] = b"lexecon-bundle-manifest-v1\n";

/// Why a bundle was refused. [`BundleError::status`] is the HTTP status a push answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a bundle: {0}")]
    Archive(String),
    #[error("bundle manifest: {0}")]
    Manifest(String),
    #[error("bundle part {name:?}: {reason}")]
    Part { name: String, reason: String },
    #[error("bundle is not signed; sign it with a control-plane key this node trusts")]
    Unsigned,
    #[error(
        "bundle is signed by key {kids:?}, none of which this node trusts (trusted: {trusted:?})"
    )]
    UnknownKey {
        kids: Vec<String>,
        trusted: Vec<String>,
    },
    #[error("bundle signature by trusted key {kid:?} does not verify: the manifest was changed or signed by another key")]
    BadSignature { kid: String },
    #[error("bundle revision {revision} is not valid before {not_before}")]
    NotYetValid { revision: u64, not_before: String },
    #[error("bundle revision {revision} expired at {expires_at}")]
    Expired { revision: u64, expires_at: String },
    #[error("bundle revision {offered} is not newer than the active revision {active} (a signed allow_rollback permits going back)")]
    Rollback { offered: u64, active: u64 },
    #[error("cannot read {}: {error}", path.display())]
    Io { path: PathBuf, error: String },
}

impl BundleError {
    /// The HTTP status a refused push answers with: 400 a malformed or tampered bundle, 403 a
    /// signature this node does not accept, 409 an old revision, 422 a bundle out of its validity.
    pub fn status(&self) -> u16 {
        match self {
            BundleError::Archive(_)
            | BundleError::Manifest(_)
            | BundleError::Part { .. }
            | BundleError::Io { .. } => 400,
            BundleError::Unsigned
            | BundleError::UnknownKey { .. }
            | BundleError::BadSignature { .. } => 403,
            BundleError::Rollback { .. } => 409,
            BundleError::NotYetValid { .. } | BundleError::Expired { .. } => 422,
        }
    }

    /// A short machine-readable reason (ledger entries, metrics labels).
    pub fn code(&self) -> &'static str {
        match self {
            BundleError::Archive(_) | BundleError::Io { .. } => "malformed",
            BundleError::Manifest(_) => "bad_manifest",
            BundleError::Part { .. } => "bad_part",
            BundleError::Unsigned => "unsigned",
            BundleError::UnknownKey { .. } => "unknown_key",
            BundleError::BadSignature { .. } => "bad_signature",
            BundleError::NotYetValid { .. } => "not_yet_valid",
            BundleError::Expired { .. } => "expired",
            BundleError::Rollback { .. } => "rollback",
        }
    }
}

/// What a bundle says about itself; signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`BUNDLE_FORMAT`].
    pub format: u32,
    /// Increases with every bundle the control plane publishes; a sidecar refuses to go back.
    pub revision: u64,
    /// When the bundle was built (RFC 3339).
    pub created_at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<jiff::Timestamp>,
    /// Lets this bundle replace a newer revision (an emergency rollback, signed like the rest).
    #[serde(default)]
    pub allow_rollback: bool,
    /// Every part by name, with the lowercase hex SHA-256 of its bytes.
    pub parts: BTreeMap<String, String>,
}

/// One detached signature over the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSignature {
    pub kid: String,
    /// Always [`BUNDLE_ALG`].
    pub alg: String,
    /// The 64-byte Ed25519 signature, base64url without padding.
    pub sig: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    signatures: Vec<BundleSignature>,
}

/// How `lexecon bundle build` stamps a new bundle.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub revision: u64,
    pub not_before: Option<jiff::Timestamp>,
    pub expires_at: Option<jiff::Timestamp>,
    pub allow_rollback: bool,
}

/// A bundle in memory: its manifest (with the exact bytes that are signed), its signatures and
/// its parts. [`Bundle::parse`] has checked that the parts are exactly those the manifest pins;
/// it has not checked any signature ([`Bundle::verify`] does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    signatures: Vec<BundleSignature>,
    parts: BTreeMap<String, Vec<u8>>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A part name the archive may hold: relative, `/`-separated, each segment of `[A-Za-z0-9._-]`,
/// no `.`/`..` segments, no hidden names (the two metadata files aside).
fn check_part_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 512 {
        return Err("a part name must have 1 to 512 characters".into());
    }
    for segment in name.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(
                "a part name must be a relative path without empty, . or .. segments".into(),
            );
        }
        if segment.starts_with('.') {
            return Err("hidden files are not bundle parts".into());
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("a part name may hold only A-Z a-z 0-9 . _ - and /".into());
        }
    }
    Ok(())
}

impl Bundle {
    /// Builds an unsigned bundle from a directory: `DIR/config.yaml` and every other regular file
    /// under `DIR` (hidden ones skipped), each a part with its hash in a new manifest.
    pub fn from_dir(dir: &Path, options: &BuildOptions) -> Result<Bundle, BundleError> {
        let io = |path: &Path, e: std::io::Error| BundleError::Io {
            path: path.to_owned(),
            error: e.to_string(),
        };
        let mut parts = BTreeMap::new();
        let mut pending = vec![(dir.to_path_buf(), String::new())];
        let mut total: u64 = 0;
        while let Some((path, prefix)) = pending.pop() {
            let entries = std::fs::read_dir(&path).map_err(|e| io(&path, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io(&path, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let full = entry.path();
                let kind = entry.file_type().map_err(|e| io(&full, e))?;
                let part = format!("{prefix}{name}");
                if kind.is_dir() {
                    pending.push((full, format!("{part}/")));
                } else if kind.is_file() {
                    check_part_name(&part).map_err(|reason| BundleError::Part {
                        name: part.clone(),
                        reason,
                    })?;
                    let bytes = std::fs::read(&full).map_err(|e| io(&full, e))?;
                    total = total.saturating_add(bytes.len() as u64);
                    parts.insert(part, bytes);
                } else {
                    return Err(BundleError::Part {
                        name: part,
                        reason: "only regular files and directories can be bundled (no links)"
                            .into(),
                    });
                }
            }
        }
        if !parts.contains_key(CONFIG_PART) {
            return Err(BundleError::Part {
                name: CONFIG_PART.into(),
                reason: format!("{} has no {CONFIG_PART}", dir.display()),
            });
        }
        if parts.len() > MAX_PARTS || total > MAX_UNPACKED_BYTES {
            return Err(BundleError::Archive(format!(
                "{} parts, {total} bytes: above the limits of {MAX_PARTS} parts and {MAX_UNPACKED_BYTES} bytes",
                parts.len()
            )));
        }
        let manifest = Manifest {
            format: BUNDLE_FORMAT,
            revision: options.revision,
            created_at: jiff::Timestamp::now(),
            not_before: options.not_before,
            expires_at: options.expires_at,
            allow_rollback: options.allow_rollback,
            parts: parts
                .iter()
                .map(|(name, bytes)| (name.clone(), sha256_hex(bytes)))
                .collect(),
        };
        let manifest_bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BundleError::Manifest(e.to_string()))?;
        Ok(Bundle {
            manifest,
            manifest_bytes,
            signatures: Vec::new(),
            parts,
        })
    }

    /// Reads a bundle file's bytes (hostile until verified): a gzip'd tar of regular files only,
    /// within [`MAX_BUNDLE_BYTES`], [`MAX_UNPACKED_BYTES`] and [`MAX_PARTS`], with a manifest that
    /// pins exactly the parts present.
    pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::Archive(format!(
                "{} bytes is above the limit of {MAX_BUNDLE_BYTES}",
                bytes.len()
            )));
        }
        let unpacked = flate2::read::GzDecoder::new(bytes).take(MAX_UNPACKED_BYTES);
        let mut archive = tar::Archive::new(unpacked);
        let entries = archive
            .entries()
            .map_err(|e| BundleError::Archive(format!("not a gzip'd tar: {e}")))?;
        let mut manifest_bytes = None;
        let mut signature_bytes = None;
        let mut parts = BTreeMap::new();
        for entry in entries {
            let mut entry =
                entry.map_err(|e| BundleError::Archive(format!("unreadable entry: {e}")))?;
            let kind = entry.header().entry_type();
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8(raw)
                .map_err(|_| BundleError::Archive("an entry name is not UTF-8".into()))?;
            let name = name.strip_prefix("./").unwrap_or(&name).to_owned();
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() {
                return Err(BundleError::Part {
                    name,
                    reason: "not a regular file (links and devices are refused)".into(),
                });
            }
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| BundleError::Archive(format!("entry {name:?}: {e}")))?;
            let slot = match name.as_str() {
                MANIFEST => &mut manifest_bytes,
                SIGNATURES => &mut signature_bytes,
                _ => {
                    check_part_name(&name).map_err(|reason| BundleError::Part {
                        name: name.clone(),
                        reason,
                    })?;
                    if parts.len() >= MAX_PARTS {
                        return Err(BundleError::Archive(format!("more than {MAX_PARTS} parts")));
                    }
                    if parts.insert(name.clone(), bytes).is_some() {
                        return Err(BundleError::Part {
                            name,
                            reason: "appears twice in the archive".into(),
                        });
                    }
                    continue;
                }
            };
            if slot.replace(bytes).is_some() {
                return Err(BundleError::Part {
                    name,
                    reason: "appears twice in the archive".into(),
                });
            }
        }
        let manifest_bytes = manifest_bytes
            .ok_or_else(|| BundleError::Manifest(format!("the archive has no {MANIFEST}")))?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| BundleError::Manifest(e.to_string()))?;
        if manifest.format != BUNDLE_FORMAT {
            return Err(BundleError::Manifest(format!(
                "format {} is not supported: this node reads format {BUNDLE_FORMAT}",
                manifest.format
            )));
        }
        let signatures = match signature_bytes {
            None => Vec::new(),
            Some(b) => {
                serde_json::from_slice::<SignatureFile>(&b)
                    .map_err(|e| BundleError::Part {
                        name: SIGNATURES.into(),
                        reason: e.to_string(),
                    })?
                    .signatures
            }
        };
        // INVARIANT: the parts are exactly those the manifest pins, byte for byte.
        for (name, bytes) in &parts {
            match manifest.parts.get(name) {
                None => {
                    return Err(BundleError::Part {
                        name: name.clone(),
                        reason: "is not listed in the manifest".into(),
                    })
                }
                Some(hash) if *hash != sha256_hex(bytes) => {
                    return Err(BundleError::Part {
                        name: name.clone(),
                        reason: "does not match its SHA-256 in the manifest (tampered)".into(),
                    })
                }
                Some(_) => {}
            }
        }
        if let Some(missing) = manifest.parts.keys().find(|n| !parts.contains_key(*n)) {
            return Err(BundleError::Part {
                name: missing.clone(),
                reason: "is listed in the manifest but missing from the archive".into(),
            });
        }
        if !parts.contains_key(CONFIG_PART) {
            return Err(BundleError::Part {
                name: CONFIG_PART.into(),
                reason: "every bundle has one".into(),
            });
        }
        Ok(Bundle {
            manifest,
            manifest_bytes,
            signatures,
            parts,
        })
    }

    /// The bundle file: a gzip'd tar, entries sorted, timestamps and owners zeroed (the same
    /// bundle always gives the same bytes).
    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let archive = |e: std::io::Error| BundleError::Archive(e.to_string());
        let mut append = |name: &str, bytes: &[u8]| -> Result<(), BundleError> {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, name, bytes).map_err(archive)
        };
        append(MANIFEST, &self.manifest_bytes)?;
        if !self.signatures.is_empty() {
            let file = SignatureFile {
                signatures: self.signatures.clone(),
            };
            let bytes = serde_json::to_vec_pretty(&file)
                .map_err(|e| BundleError::Archive(e.to_string()))?;
            append(SIGNATURES, &bytes)?;
        }
        for (name, bytes) in &self.parts {
            append(name, bytes)?;
        }
        let gz = tar.into_inner().map_err(archive)?;
        gz.finish().map_err(archive)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn signatures(&self) -> &[BundleSignature] {
        &self.signatures
    }

    pub fn parts(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.parts
    }

    /// Replaces (or adds) a part of an unsigned bundle being built, updating its hash in the
    /// manifest; any signature is dropped (it no longer covers the manifest).
    pub fn replace_part(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), BundleError> {
        check_part_name(name).map_err(|reason| BundleError::Part {
            name: name.to_owned(),
            reason,
        })?;
        self.manifest
            .parts
            .insert(name.to_owned(), sha256_hex(&bytes));
        self.parts.insert(name.to_owned(), bytes);
        self.manifest_bytes = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| BundleError::Manifest(e.to_string()))?;
        self.signatures.clear();
        Ok(())
    }

    /// The bundle's identity: the SHA-256 of its manifest (which pins every part).
    pub fn hash(&self) -> String {
        sha256_hex(&self.manifest_bytes)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SIGNING_CONTEXT.len() + self.manifest_bytes.len());
        bytes.extend_from_slice(SIGNING_CONTEXT);
        bytes.extend_from_slice(&self.manifest_bytes);
        bytes
    }

    /// Adds (or replaces) the signature of `kid`.
    pub fn sign(&mut self, key: &SigningKey, kid: &str) {
        let sig: Signature = key.sign(&self.signed_bytes());
        self.signatures.retain(|s| s.kid != kid);
        self.signatures.push(BundleSignature {
            kid: kid.to_owned(),
            alg: BUNDLE_ALG.to_owned(),
            sig: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
        });
    }

    /// Checks the signature of a key this node trusts (by kid); returns that kid. Signatures by
    /// keys not trusted are ignored; a trusted key's signature that does not verify refuses the
    /// bundle.
    pub fn verify<'k>(
        &self,
        trusted: &'k BTreeMap<String, VerifyingKey>,
    ) -> Result<&'k str, BundleError> {
        if self.signatures.is_empty() {
            return Err(BundleError::Unsigned);
        }
        let signed = self.signed_bytes();
        for sig in &self.signatures {
            let Some((kid, key)) = trusted.get_key_value(&sig.kid) else {
                continue;
            };
            let bad = || BundleError::BadSignature {
                kid: sig.kid.clone(),
            };
            if sig.alg != BUNDLE_ALG {
                return Err(bad());
            }
            let raw = URL_SAFE_NO_PAD.decode(&sig.sig).map_err(|_| bad())?;
            let bytes: [u8; 64] = raw.as_slice().try_into().map_err(|_| bad())?;
            key.verify_strict(&signed, &Signature::from_bytes(&bytes))
                .map_err(|_| bad())?;
            return Ok(kid.as_str());
        }
        Err(BundleError::UnknownKey {
            kids: self.signatures.iter().map(|s| s.kid.clone()).collect(),
            trusted: trusted.keys().cloned().collect(),
        })
    }

    /// Refuses a bundle outside its `not_before` / `expires_at` at `now`.
    pub fn check_validity(&self, now: jiff::Timestamp) -> Result<(), BundleError> {
        let m = &self.manifest;
        if let Some(nb) = m.not_before {
            if now < nb {
                return Err(BundleError::NotYetValid {
                    revision: m.revision,
                    not_before: nb.to_string(),
                });
            }
        }
        if let Some(exp) = m.expires_at {
            if now >= exp {
                return Err(BundleError::Expired {
                    revision: m.revision,
                    expires_at: exp.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Refuses a revision not newer than `active` unless the manifest allows a rollback.
    pub fn check_revision(&self, active: Option<u64>) -> Result<(), BundleError> {
        match active {
            Some(active) if self.manifest.revision <= active && !self.manifest.allow_rollback => {
                Err(BundleError::Rollback {
                    offered: self.manifest.revision,
                    active,
                })
            }
            _ => Ok(()),
        }
    }

    /// Writes every part under `dir` (which must not exist yet, or be empty).
    pub fn extract_to(&self, dir: &Path) -> Result<(), BundleError> {
        let io = |path: &Path, e: std::io::Error| BundleError::Io {
            path: path.to_owned(),
            error: e.to_string(),
        };
        for (name, bytes) in &self.parts {
            // INVARIANT: part names were checked (relative, no . or .. segments): they stay in dir.
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn trusted(seed: u8, kid: &str) -> BTreeMap<String, VerifyingKey> {
        BTreeMap::from([(kid.to_owned(), key(seed).verifying_key())])
    }

    fn sample(revision: u64) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.yaml"),
            "policies: {ai: policies/ai.yaml}\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/ai.yaml"), "rules: []\n").unwrap();
        std::fs::write(dir.path().join(".hidden"), "skipped").unwrap();
        Bundle::from_dir(
            dir.path(),
            &BuildOptions {
                revision,
                ..BuildOptions::default()
            },
        )
        .unwrap()
    }

    /// Rewrites an archive entry's bytes without touching the manifest (a tampering attacker).
    fn tamper(bundle: &Bundle, part: &str, bytes: &[u8]) -> Vec<u8> {
        let mut copy = bundle.clone();
        copy.parts.insert(part.to_owned(), bytes.to_vec());
        copy.to_bytes().unwrap()
    }

    #[test]
    fn a_signed_bundle_round_trips_and_verifies_with_the_trusted_key() {
        let mut b = sample(7);
        assert!(!b.parts().contains_key(".hidden"));
        b.sign(&key(1), "cp");
        let bytes = b.to_bytes().unwrap();
        assert_eq!(bytes, b.to_bytes().unwrap(), "deterministic bytes");
        let back = Bundle::parse(&bytes).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.verify(&trusted(1, "cp")).unwrap(), "cp");
        assert_eq!(back.manifest().revision, 7);
        assert_eq!(back.hash(), b.hash());
    }

    #[test]
    fn unsigned_unknown_and_wrongly_signed_bundles_are_refused() {
        let b = sample(1);
        assert_eq!(b.verify(&trusted(1, "cp")), Err(BundleError::Unsigned));
        let mut other = sample(1);
        other.sign(&key(2), "other");
        assert!(matches!(
            other.verify(&trusted(1, "cp")),
            Err(BundleError::UnknownKey { .. })
        ));
        // Signed with another key under the trusted kid.
        let mut forged = sample(1);
        forged.sign(&key(2), "cp");
        assert_eq!(
            forged.verify(&trusted(1, "cp")),
            Err(BundleError::BadSignature { kid: "cp".into() })
        );
        assert_eq!(forged.verify(&trusted(1, "cp")).unwrap_err().status(), 403);
    }

    #[test]
    fn a_changed_part_or_manifest_is_refused() {
        let mut b = sample(3);
        b.sign(&key(1), "cp");
        let err = Bundle::parse(&tamper(&b, "policies/ai.yaml", b"rules: [x]\n")).unwrap_err();
        assert!(matches!(err, BundleError::Part { ref name, .. } if name == "policies/ai.yaml"));
        assert_eq!(err.status(), 400);
        let err = Bundle::parse(&tamper(&b, "extra.yaml", b"x")).unwrap_err();
        assert!(
            err.to_string().contains("not listed in the manifest"),
            "{err}"
        );
        // A manifest edited to match a changed part breaks the signature.
        let mut edited = b.clone();
        edited
            .parts
            .insert("policies/ai.yaml".into(), b"rules: [x]\n".to_vec());
        edited
            .manifest
            .parts
            .insert("policies/ai.yaml".into(), sha256_hex(b"rules: [x]\n"));
        edited.manifest_bytes = serde_json::to_vec(&edited.manifest).unwrap();
        let parsed = Bundle::parse(&edited.to_bytes().unwrap()).unwrap();
        assert!(matches!(
            parsed.verify(&trusted(1, "cp")),
            Err(BundleError::BadSignature { .. })
        ));
    }

    #[test]
    fn revision_and_validity_window_are_checked() {
        let mut b = sample(5);
        assert!(b.check_revision(None).is_ok());
        assert!(b.check_revision(Some(4)).is_ok());
        assert_eq!(
            b.check_revision(Some(5)).unwrap_err().status(),
            409,
            "same revision is not newer"
        );
        b.manifest.allow_rollback = true;
        assert!(b.check_revision(Some(9)).is_ok());
        let now = jiff::Timestamp::now();
        b.manifest.expires_at = Some(now);
        assert!(matches!(
            b.check_validity(now),
            Err(BundleError::Expired { .. })
        ));
        b.manifest.expires_at = None;
        b.manifest.not_before = Some(now + jiff::SignedDuration::from_secs(60));
        assert_eq!(b.check_validity(now).unwrap_err().status(), 422);
    }

    #[test]
    fn hostile_archives_get_errors_not_panics() {
        assert!(matches!(
            Bundle::parse(b"not gzip"),
            Err(BundleError::Archive(_))
        ));
        assert!(Bundle::parse(&[]).is_err());
        // A link entry, a path escaping the directory, a hidden part.
        for (name, kind) in [
            ("config.yaml", tar::EntryType::Symlink),
            ("../escape.yaml", tar::EntryType::Regular),
            ("policies/.x", tar::EntryType::Regular),
        ] {
            let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            let mut tar = tar::Builder::new(gz);
            let mut header = tar::Header::new_gnu();
            header.set_size(0);
            header.set_entry_type(kind);
            // set_path refuses "..": write the raw name as a hostile archive would.
            let raw = &mut header.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            tar.append(&header, &[][..]).unwrap();
            let bytes = tar.into_inner().unwrap().finish().unwrap();
            let err = Bundle::parse(&bytes).unwrap_err();
            assert!(matches!(err, BundleError::Part { .. }), "{name}: {err}");
        }
        // Megabytes of zeros unpack to an empty archive: no manifest, no bundle.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &vec![0u8; 8 * 1024 * 1024]).unwrap();
        assert!(Bundle::parse(&gz.finish().unwrap()).is_err());
    }
}
