//! One ledger line: the [`EntryDraft`] the request path builds (no seq, no hashes), the finished
//! [`LedgerEntry`] the writer serializes, and the [`RedactionConfig`] that decides which context fields
//! may appear in clear. Owns the canonical byte form that `entry_hash` covers. Never stores a request
//! context raw: only [`context_digest`] and the fields the redaction config names.

use std::collections::BTreeMap;
use std::io::Write as _;

use lexecon_config::sections::LedgerSettings;
use lexecon_domains::{ComplianceMapping, Verdict};
use lexecon_policy_cache::Decision;

use crate::json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `previous_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Decision,
    PolicyLoaded,
    Approval,
    SystemStartup,
    SystemShutdown,
    /// The writer found and truncated a torn final line on start.
    LedgerRecovered,
    /// A signed checkpoint over the chain head.
    Checkpoint,
    /// A request refused before any policy decision (it could not be classified, or the caller's
    /// SMART scopes do not grant it): a deny by the enforcement point itself.
    RequestRefused,
    /// A break-glass session of an actor started or ended (caller-declared emergency access).
    BreakGlass,
    /// A policy bundle was refused (bad signature, older revision, invalid content): the snapshot
    /// in force stayed. The reason names the bundle and why.
    BundleRejected,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Decision => "decision",
            EventType::PolicyLoaded => "policy_loaded",
            EventType::Approval => "approval",
            EventType::SystemStartup => "system_startup",
            EventType::SystemShutdown => "system_shutdown",
            EventType::LedgerRecovered => "ledger_recovered",
            EventType::Checkpoint => "checkpoint",
            EventType::RequestRefused => "request_refused",
            EventType::BreakGlass => "break_glass",
            EventType::BundleRejected => "bundle_rejected",
        }
    }
}

/// An entry as the request path hands it over: everything but `seq` and the hashes, which only the
/// writer can assign.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryDraft {
    pub timestamp: jiff::Timestamp,
    pub event_type: EventType,
    pub domain: Option<String>,
    pub request_id: Option<String>,
    pub decision_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub decision: Option<Verdict>,
    pub rule_id: Option<String>,
    pub reason: Option<String>,
    pub policy_version_hash: Option<String>,
    pub compliance: Vec<ComplianceMapping>,
    pub context_digest: Option<String>,
    /// Only the fields a [`RedactionConfig`] keeps, masks or hashes.
    pub context: Option<Map<String, Value>>,
}

impl EntryDraft {
    /// A system event (startup, policy load, …) with a human-readable reason and nothing else.
    pub fn event(event_type: EventType, reason: impl Into<String>) -> Self {
        EntryDraft {
            timestamp: jiff::Timestamp::now(),
            event_type,
            domain: None,
            request_id: None,
            decision_id: None,
            actor: None,
            action: None,
            resource: None,
            decision: None,
            rule_id: None,
            reason: Some(reason.into()),
            policy_version_hash: None,
            compliance: Vec::new(),
            context_digest: None,
            context: None,
        }
    }

    /// The `decision` entry for `decision`, taken on `context` (the decision input's context).
    /// The context is stored as its digest; `redaction` names the fields that may appear as well.
    pub fn from_decision(
        decision: &Decision,
        context: &Map<String, Value>,
        redaction: &RedactionConfig,
    ) -> Self {
        EntryDraft {
            timestamp: decision.timestamp,
            event_type: EventType::Decision,
            domain: Some(decision.domain.clone()),
            request_id: Some(decision.request_id.clone()),
            decision_id: Some(decision.decision_id.clone()),
            actor: Some(decision.actor.clone()),
            action: Some(decision.action.clone()),
            resource: decision.resource.clone(),
            decision: Some(decision.decision),
            rule_id: Some(decision.rule_id.to_string()),
            reason: Some(decision.reasoning.to_string()),
            policy_version_hash: Some(decision.policy_version_hash.to_string()),
            compliance: decision.compliance_mappings.to_vec(),
            context_digest: Some(context_digest(context)),
            context: redaction.apply(&decision.domain, context),
        }
    }
}

/// One line of the ledger. Field order is the canonical order `entry_hash` covers; absent optional
/// fields are omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    pub seq: u64,
    pub timestamp: jiff::Timestamp,
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compliance: Vec<ComplianceMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
    /// Checkpoints only: id of the key that signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Checkpoints only: base64url (no padding) Ed25519 signature over [`checkpoint_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    pub previous_hash: String,
    /// Empty while the entry is being hashed (and then not serialized).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entry_hash: String,
}

impl LedgerEntry {
    /// The draft of the `decision` entry for `decision` (see [`EntryDraft::from_decision`]); the writer
    /// turns it into a `LedgerEntry` by assigning seq and hashes.
    pub fn from_decision(
        decision: &Decision,
        context: &Map<String, Value>,
        redaction: &RedactionConfig,
    ) -> EntryDraft {
        EntryDraft::from_decision(decision, context, redaction)
    }

    /// Fills a draft in at `seq` after the entry whose hash is `previous_hash`.
    pub fn from_draft(draft: EntryDraft, seq: u64, previous_hash: String) -> Self {
        LedgerEntry {
            seq,
            timestamp: draft.timestamp,
            event_type: draft.event_type,
            domain: draft.domain,
            request_id: draft.request_id,
            decision_id: draft.decision_id,
            actor: draft.actor,
            action: draft.action,
            resource: draft.resource,
            decision: draft.decision,
            rule_id: draft.rule_id,
            reason: draft.reason,
            policy_version_hash: draft.policy_version_hash,
            compliance: draft.compliance,
            context_digest: draft.context_digest,
            context: draft.context,
            key_id: None,
            signature: None,
            previous_hash,
            entry_hash: String::new(),
        }
    }

    /// Appends this entry's line (with `entry_hash`, ending in `\n`) to `out`, sets `entry_hash` and
    /// returns it. `self.entry_hash` must be empty on entry. The writer writes lines with
    /// [`write_body_line`]; this derive-based form is kept as the independent reference those lines
    /// are tested against (same bytes), and for tools that hold a whole [`LedgerEntry`].
    pub fn write_line(&mut self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        self.entry_hash.clear();
        let start = out.len();
        serde_json::to_writer(&mut *out, &*self)?;
        let digest = Sha256::digest(&out[start..]);
        // INVARIANT: the serialized object ends in `}`; replace it with the hash member.
        out.pop();
        self.entry_hash = hex_lower(&digest);
        out.extend_from_slice(b",\"entry_hash\":\"");
        out.extend_from_slice(self.entry_hash.as_bytes());
        out.extend_from_slice(b"\"}\n");
        Ok(())
    }
}

/// An entry's members between `seq` and `previous_hash` (`"timestamp":…,"event_type":…,…`),
/// serialized on the caller's thread: the writer only adds `seq`, `previous_hash` and the hash, so a
/// decision's strings are never copied into a draft or dropped on the writer thread. The bytes are
/// exactly those [`LedgerEntry::write_line`] writes for the same fields (tested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryBody(Vec<u8>);

/// [`LedgerEntry`]'s members from `timestamp` to `signature`, borrowed, in the same order and with the
/// same omissions.
#[derive(Serialize)]
struct BodyView<'a> {
    timestamp: &'a jiff::Timestamp,
    event_type: EventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_version_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "<[ComplianceMapping]>::is_empty")]
    compliance: &'a [ComplianceMapping],
    #[serde(skip_serializing_if = "Option::is_none")]
    context_digest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a str>,
}

/// The starting capacity of an entry body.
const BODY_CAPACITY: usize = 1024;

/// Appends `mappings` as the JSON array serde derives for them.
pub fn push_compliance(out: &mut Vec<u8>, mappings: &[ComplianceMapping]) {
    out.push(b'[');
    for (i, m) in mappings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        json::push_member(out, "framework", &m.framework);
        json::push_key(out, "controls");
        out.push(b'[');
        for (j, control) in m.controls.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            json::push_str(out, control);
        }
        out.push(b']');
        json::push_member(out, "status", m.status.as_str());
        out.push(b'}');
    }
    out.push(b']');
}

impl BodyView<'_> {
    fn to_body(&self) -> Result<EntryBody, serde_json::Error> {
        // A decision's body is about 1 KB: start there instead of growing from serde_json's 128
        // bytes through four reallocations.
        let mut out = Vec::with_capacity(BODY_CAPACITY);
        serde_json::to_writer(&mut out, self)?;
        // INVARIANT: an object with at least `timestamp` and `event_type`: strip its braces.
        out.pop();
        out.remove(0);
        Ok(EntryBody(out))
    }
}

impl EntryBody {
    /// The body of `draft`.
    pub fn of_draft(draft: &EntryDraft) -> Result<Self, serde_json::Error> {
        Self::of_parts(draft, None, None)
    }

    fn of_parts(
        draft: &EntryDraft,
        key_id: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Self, serde_json::Error> {
        BodyView {
            timestamp: &draft.timestamp,
            event_type: draft.event_type,
            domain: draft.domain.as_deref(),
            request_id: draft.request_id.as_deref(),
            decision_id: draft.decision_id.as_deref(),
            actor: draft.actor.as_deref(),
            action: draft.action.as_deref(),
            resource: draft.resource.as_deref(),
            decision: draft.decision,
            rule_id: draft.rule_id.as_deref(),
            reason: draft.reason.as_deref(),
            policy_version_hash: draft.policy_version_hash.as_deref(),
            compliance: &draft.compliance,
            context_digest: draft.context_digest.as_deref(),
            context: draft.context.as_ref(),
            key_id,
            signature,
        }
        .to_body()
    }

    /// The body of a signed checkpoint event.
    pub(crate) fn of_checkpoint(
        draft: &EntryDraft,
        key_id: &str,
        signature: &str,
    ) -> Result<Self, serde_json::Error> {
        Self::of_parts(draft, Some(key_id), Some(signature))
    }

    /// The body of the `decision` entry for `decision` taken on `context`, without copying the
    /// decision (the same bytes as [`EntryBody::of_draft`] of [`EntryDraft::from_decision`], tested).
    /// Written by hand ([`crate::json`]): every decision goes through here.
    pub fn of_decision(
        decision: &Decision,
        context: &Map<String, Value>,
        redaction: &RedactionConfig,
    ) -> Result<Self, serde_json::Error> {
        let digest = lexecon_config::canonical::map_digest(context);
        Self::of_decision_digested(decision, context, &digest, redaction)
    }

    /// [`Self::of_decision`] with the context's digest already computed
    /// ([`lexecon_config::canonical::map_digest`] of `context`; the request path computes it once
    /// for the capability token's binding and the entry).
    pub fn of_decision_digested(
        decision: &Decision,
        context: &Map<String, Value>,
        context_digest: &[u8; 32],
        redaction: &RedactionConfig,
    ) -> Result<Self, serde_json::Error> {
        let kept = redaction.apply(&decision.domain, context);
        Self::of_decision_redacted(decision, context_digest, kept.as_ref())
    }

    /// [`Self::of_decision_digested`] with the context already redacted
    /// ([`RedactionConfig::apply`]): `kept` is all of the context the entry shows.
    pub fn of_decision_redacted(
        decision: &Decision,
        context_digest: &[u8; 32],
        kept: Option<&Map<String, Value>>,
    ) -> Result<Self, serde_json::Error> {
        let digest = hex_lower(context_digest);
        let mut out = Vec::with_capacity(BODY_CAPACITY);
        json::push_timestamp(&mut out, "timestamp", &decision.timestamp);
        json::push_member(&mut out, "event_type", EventType::Decision.as_str());
        json::push_member(&mut out, "domain", &decision.domain);
        json::push_member(&mut out, "request_id", &decision.request_id);
        json::push_member(&mut out, "decision_id", &decision.decision_id);
        json::push_member(&mut out, "actor", &decision.actor);
        json::push_member(&mut out, "action", &decision.action);
        if let Some(resource) = &decision.resource {
            json::push_member(&mut out, "resource", resource);
        }
        json::push_member(&mut out, "decision", decision.decision.as_str());
        json::push_member(&mut out, "rule_id", &decision.rule_id);
        json::push_member(&mut out, "reason", &decision.reasoning);
        json::push_member(
            &mut out,
            "policy_version_hash",
            &decision.policy_version_hash,
        );
        if !decision.compliance_mappings.is_empty() {
            json::push_key(&mut out, "compliance");
            push_compliance(&mut out, &decision.compliance_mappings);
        }
        json::push_member(&mut out, "context_digest", &digest);
        if let Some(kept) = kept {
            json::push_serialized(&mut out, "context", kept)?;
        }
        Ok(EntryBody(out))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends the line of the entry `seq` with `body` after the entry whose hash is `previous_hash`
/// (ending in `\n`) to `out`, and returns its `entry_hash`: the same bytes
/// [`LedgerEntry::write_line`] writes.
pub fn write_body_line(
    seq: u64,
    body: &EntryBody,
    previous_hash: &str,
    out: &mut Vec<u8>,
) -> String {
    let start = out.len();
    out.extend_from_slice(b"{\"seq\":");
    // INVARIANT: writing to a Vec cannot fail.
    let _ = write!(out, "{seq},");
    out.extend_from_slice(&body.0);
    out.extend_from_slice(b",\"previous_hash\":");
    // A hex hash (or the genesis zeros) never needs escaping; serde keeps it exact either way.
    serde_json::to_writer(&mut *out, previous_hash).unwrap_or_default();
    out.push(b'}');
    let digest = Sha256::digest(&out[start..]);
    out.pop();
    let entry_hash = hex_lower(&digest);
    out.extend_from_slice(b",\"entry_hash\":\"");
    out.extend_from_slice(entry_hash.as_bytes());
    out.extend_from_slice(b"\"}\n");
    entry_hash
}

/// The bytes a checkpoint signature covers: a domain-separation tag, the checkpoint's seq and the chain
/// head it follows (the `entry_hash` of seq - 1, which is the checkpoint's `previous_hash`).
pub fn checkpoint_message(seq: u64, head_hash: &str) -> Vec<u8> {
    format!("lexecon-ledger-checkpoint/v1\n{seq}\n{head_hash}").into_bytes()
}

/// Splits a ledger line (without its `\n`) into the canonical bytes `entry_hash` covers and the
/// recorded hash. `None` when the line does not end with a well-formed `entry_hash` member.
pub(crate) fn split_hash(line: &[u8]) -> Option<(&[u8], &[u8])> {
    const SUFFIX_LEN: usize = ",\"entry_hash\":\"".len() + 64 + "\"}".len();
    if line.len() < SUFFIX_LEN + 2 || !line.ends_with(b"\"}") {
        return None;
    }
    let cut = line.len() - SUFFIX_LEN;
    let (body, suffix) = line.split_at(cut);
    let hash = suffix
        .strip_prefix(b",\"entry_hash\":\"")?
        .strip_suffix(b"\"}")?;
    if hash.len() != 64 || !hash.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some((body, hash))
}

/// The `entry_hash` a line should carry: SHA-256 of `body` + `}` (see [`split_hash`]).
pub(crate) fn hash_body(body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(body);
    h.update(b"}");
    hex_lower(&h.finalize())
}

/// SHA-256 (hex) of the canonical JSON of a context: keys sorted at every level, no whitespace.
pub fn context_digest(context: &Map<String, Value>) -> String {
    hex_lower(&lexecon_config::canonical::map_digest(context))
}

/// Lowercase hex of `bytes`, as `hex::encode` writes it. `hex::encode` collects a char iterator (its
/// `BytesToHexChars` plus `String::from_iter` were about 0.5 µs of a proxied request's profile, for
/// the two hashes every ledger entry carries); this writes into a string of the final size.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    hex
}

/// How one context field may appear in a ledger entry (`keep`, `mask`, `hash`; the configuration's).
pub use lexecon_config::sections::FieldRule;

/// Which context fields a domain may record besides the digest. Keys are field paths, with or without
/// a leading `context.`, dots descending into objects (`context.patient.id`). The kept fields appear in
/// the entry's `context` object under their path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionConfig {
    #[serde(default)]
    pub domains: BTreeMap<String, BTreeMap<String, FieldRule>>,
}

impl RedactionConfig {
    /// The rules of `ledger.redact` ([`LedgerSettings::redact`]).
    pub fn from_settings(settings: &LedgerSettings) -> Self {
        RedactionConfig {
            domains: settings.redact.clone(),
        }
    }

    /// The redacted context for `domain`, or `None` when no configured field is present.
    pub fn apply(&self, domain: &str, context: &Map<String, Value>) -> Option<Map<String, Value>> {
        let rules = self.domains.get(domain)?;
        let mut kept = Map::new();
        for (path, rule) in rules {
            let key = path.strip_prefix("context.").unwrap_or(path);
            let Some(value) = lookup(context, key) else {
                continue;
            };
            let shown = match rule {
                FieldRule::Keep => value.clone(),
                FieldRule::Mask => Value::String(mask(value)),
                FieldRule::Hash => {
                    let mut buf = Vec::new();
                    lexecon_config::canonical::write_value(value, &mut buf);
                    Value::String(format!("sha256:{}", hex::encode(Sha256::digest(&buf))))
                }
            };
            kept.insert(key.to_owned(), shown);
        }
        (!kept.is_empty()).then_some(kept)
    }
}

fn lookup<'a>(context: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = context.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

fn mask(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let chars = s.chars().count();
            if chars > 8 {
                let stars = "*".repeat(chars - 4);
                let tail: String = s.chars().skip(chars - 4).collect();
                format!("{stars}{tail}")
            } else {
                "*".repeat(chars.max(4))
            }
        }
        _ => "****".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn sample_decision(resource: Option<&str>, compliance: bool) -> Decision {
        use lexecon_domains::ComplianceStatus;
        use lexecon_policy_cache::Explanation;
        Decision {
            request_id: "req-\"quoted\"".to_owned(),
            decision_id: "01a2-dec".to_owned(),
            domain: "healthcare".to_owned(),
            actor: "act_clinician:dr_ü".to_owned(),
            action: "axn_access_phi".to_owned(),
            resource: resource.map(str::to_owned),
            decision: Verdict::Permit,
            reasoning: "consent given; line\nbreak".to_owned().into(),
            rule_id: "allow-consented".to_owned().into(),
            policy_version_hash: "ab".repeat(32).into(),
            compliance_mappings: if compliance {
                vec![ComplianceMapping {
                    framework: "HIPAA".into(),
                    controls: vec!["164.312(b)".into(), String::from("own-control").into()],
                    status: ComplianceStatus::Compliant,
                }]
                .into()
            } else {
                Vec::new().into()
            },
            risk_level: 3,
            requires_human_approval: false,
            review_required: false,
            explanation: Explanation {
                matched_rules: vec!["allow-consented".into()].into(),
                findings: vec![],
                would_have: None,
                cached: false,
            },
            timestamp: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        }
    }

    /// The line `write_body_line` writes and its hash, next to what `LedgerEntry::write_line` writes.
    fn both_lines(draft: EntryDraft, body: &EntryBody, seq: u64, prev: &str) -> (Vec<u8>, Vec<u8>) {
        let mut via_body = Vec::new();
        let hash = write_body_line(seq, body, prev, &mut via_body);
        let mut entry = LedgerEntry::from_draft(draft, seq, prev.to_owned());
        let mut via_entry = Vec::new();
        entry.write_line(&mut via_entry).unwrap();
        assert_eq!(hash, entry.entry_hash);
        (via_body, via_entry)
    }

    #[test]
    fn entry_bodies_write_the_same_bytes_as_whole_entries() {
        let mut redaction = RedactionConfig::default();
        let mut rules = BTreeMap::new();
        rules.insert("purpose".to_owned(), FieldRule::Keep);
        redaction.domains.insert("healthcare".to_owned(), rules);
        let context =
            ctx(json!({"purpose": "TREAT", "patient_id": "P-1", "nested": {"b": 2, "a": 1}}));
        for (resource, compliance, redact) in [
            (Some("res_phi:Patient/1"), true, true),
            (None, false, false),
            (Some("res_phi:Patient/\u{1F600}"), true, false),
        ] {
            let decision = sample_decision(resource, compliance);
            let r = if redact {
                redaction.clone()
            } else {
                RedactionConfig::default()
            };
            let draft = EntryDraft::from_decision(&decision, &context, &r);
            let of_decision = EntryBody::of_decision(&decision, &context, &r).unwrap();
            assert_eq!(of_decision, EntryBody::of_draft(&draft).unwrap());
            let (a, b) = both_lines(draft, &of_decision, 42, GENESIS_HASH);
            assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        }
        // A bare event and a signed checkpoint.
        let event = EntryDraft::event(EventType::SystemStartup, "started");
        let body = EntryBody::of_draft(&event).unwrap();
        let (a, b) = both_lines(event, &body, 1, &"cd".repeat(32));
        assert_eq!(a, b);
        let checkpoint = EntryDraft::event(EventType::Checkpoint, "signed chain head after seq 9");
        let body = EntryBody::of_checkpoint(&checkpoint, "key-1", "c2lnbmF0dXJl").unwrap();
        let mut via_body = Vec::new();
        let hash = write_body_line(10, &body, &"ef".repeat(32), &mut via_body);
        let mut entry = LedgerEntry::from_draft(checkpoint, 10, "ef".repeat(32));
        entry.key_id = Some("key-1".to_owned());
        entry.signature = Some("c2lnbmF0dXJl".to_owned());
        let mut via_entry = Vec::new();
        entry.write_line(&mut via_entry).unwrap();
        assert_eq!(hash, entry.entry_hash);
        assert_eq!(via_body, via_entry);
        // And the line parses back to the entry it stands for.
        let line = std::str::from_utf8(&via_body).unwrap().trim_end();
        let parsed: LedgerEntry = serde_json::from_str(line).unwrap();
        assert_eq!(parsed, entry);
    }

    proptest::proptest! {
        #[test]
        fn hand_written_decision_bodies_equal_the_derived_serialization(
            strings in proptest::collection::vec(proptest::prelude::any::<String>(), 8),
            resource in proptest::option::of(proptest::prelude::any::<String>()),
            controls in proptest::collection::vec(proptest::prelude::any::<String>(), 0..3),
            mappings in 0usize..3,
            value in proptest::prelude::any::<String>(),
            secs in 0i64..4_000_000_000,
            nanos in 0i32..1_000_000_000,
        ) {
            use lexecon_domains::ComplianceStatus;
            let mut d = sample_decision(resource.as_deref(), false);
            d.request_id = strings[0].clone();
            d.decision_id = strings[1].clone();
            d.domain = strings[2].clone();
            d.actor = strings[3].clone();
            d.action = strings[4].clone();
            d.reasoning = strings[5].clone().into();
            d.rule_id = strings[6].clone().into();
            d.policy_version_hash = strings[7].clone().into();
            d.timestamp = jiff::Timestamp::new(secs, nanos).unwrap();
            d.decision = [Verdict::Permit, Verdict::Deny, Verdict::Escalate][mappings];
            d.compliance_mappings = (0..mappings)
                .map(|i| ComplianceMapping {
                    framework: format!("{}{i}", strings[i]).into(),
                    controls: controls.iter().cloned().map(Into::into).collect(),
                    status: [
                        ComplianceStatus::Compliant,
                        ComplianceStatus::ReviewRequired,
                        ComplianceStatus::ViolationPrevented,
                    ][i],
                })
                .collect();
            let context = ctx(json!({"kept": value, "other": strings[0]}));
            let mut redaction = RedactionConfig::default();
            redaction.domains.insert(
                d.domain.clone(),
                [("kept".to_owned(), FieldRule::Keep)].into(),
            );
            let draft = EntryDraft::from_decision(&d, &context, &redaction);
            proptest::prop_assert_eq!(
                EntryBody::of_decision(&d, &context, &redaction).unwrap(),
                EntryBody::of_draft(&draft).unwrap()
            );
        }
    }

    #[test]
    fn hex_lower_writes_what_hex_encode_writes() {
        let every_byte: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_lower(&every_byte), hex::encode(&every_byte));
        assert_eq!(hex_lower(&[]), "");
        let digest = Sha256::digest(b"lexecon");
        assert_eq!(hex_lower(&digest), hex::encode(digest));
    }

    /// The request path hands the writer the digest it computed for the capability token: the
    /// entry is byte for byte the one the writer would build by itself.
    #[test]
    fn a_decision_body_with_a_precomputed_digest_is_the_same_body() {
        let context = ctx(json!({"b": 1, "a": {"y": [1, 2], "x": "s"}}));
        let digest = lexecon_config::canonical::map_digest(&context);
        assert_eq!(context_digest(&context), hex_lower(&digest));
        let d = sample_decision(Some("res_file:1"), true);
        let redaction = RedactionConfig::default();
        assert_eq!(
            EntryBody::of_decision_digested(&d, &context, &digest, &redaction).unwrap(),
            EntryBody::of_decision(&d, &context, &redaction).unwrap()
        );
    }

    #[test]
    fn context_digest_ignores_key_order() {
        let a = ctx(json!({"b": 1, "a": {"y": [1, 2], "x": "s"}}));
        let b = ctx(json!({"a": {"x": "s", "y": [1, 2]}, "b": 1}));
        assert_eq!(context_digest(&a), context_digest(&b));
        let c = ctx(json!({"a": {"x": "s", "y": [2, 1]}, "b": 1}));
        assert_ne!(context_digest(&a), context_digest(&c));
    }

    #[test]
    fn redaction_keeps_masks_and_hashes_only_named_fields() {
        let mut rules = BTreeMap::new();
        rules.insert("context.patient_id".to_owned(), FieldRule::Hash);
        rules.insert("purpose".to_owned(), FieldRule::Keep);
        rules.insert("card.number".to_owned(), FieldRule::Mask);
        let mut cfg = RedactionConfig::default();
        cfg.domains.insert("healthcare".to_owned(), rules);
        let context = ctx(json!({
            "patient_id": "P-123", "purpose": "treatment", "diagnosis": "secret",
            "card": {"number": "4111111111111111"}
        }));
        let kept = cfg.apply("healthcare", &context).unwrap();
        assert_eq!(kept.len(), 3);
        assert_eq!(kept["purpose"], json!("treatment"));
        assert_eq!(kept["card.number"], json!("************1111"));
        let hashed = kept["patient_id"].as_str().unwrap();
        assert!(hashed.starts_with("sha256:") && !hashed.contains("P-123"));
        assert!(!kept.contains_key("diagnosis"));
        assert_eq!(cfg.apply("finance", &context), None);
    }

    #[test]
    fn written_line_hash_covers_the_entry_without_entry_hash() {
        let mut entry = LedgerEntry::from_draft(
            EntryDraft::event(EventType::SystemStartup, "boot"),
            1,
            GENESIS_HASH.to_owned(),
        );
        let mut out = Vec::new();
        entry.write_line(&mut out).unwrap();
        let line = out.strip_suffix(b"\n").unwrap();
        let (body, hash) = split_hash(line).unwrap();
        assert_eq!(hash_body(body).as_bytes(), hash);
        assert_eq!(entry.entry_hash.as_bytes(), hash);
        let parsed: LedgerEntry = serde_json::from_slice(line).unwrap();
        assert_eq!(parsed, entry);
    }

    #[test]
    fn split_hash_rejects_lines_without_a_hash_member() {
        assert!(split_hash(b"{\"seq\":1}").is_none());
        let bad = format!("{{\"seq\":1,\"entry_hash\":\"{}\"}}", "G".repeat(64));
        assert!(split_hash(bad.as_bytes()).is_none());
    }
}
