//! The engine: everything a decision needs, built once from a [`Config`] and shared by the proxy
//! listener, the decision API and the CLI — the domain registry and policies (a
//! `lexecon-policy-cache` store swapped atomically on reload), the ledger writer, the token key
//! ring and minter, and the approval store. It owns the glue between them (record a decision,
//! mint its token) and no decision logic of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use lexecon_config::file::Config;
use lexecon_config::PolicyDocument;
use lexecon_domains::{DomainRegistry, DomainSettings, Verdict};
use lexecon_policy_cache::{
    DecideError, Decision, DecisionInput, DecisionService, PolicyStore, ServiceConfig, Snapshot,
};
use serde_json::{Map, Value};

use crate::api::http::ApiSettings;
use crate::enforce::{DecisionPoint, EnforceError, Recorded};
use lexecon_approvals::{redeem, ApprovalEvent, ApprovalStore, Redemption, RequestDigest};
use lexecon_ledger::{
    CheckpointSigner, EntryBody, EntryDraft, EventType, LedgerConfig, LedgerHandle, LedgerWriter,
    RedactionConfig,
};
use lexecon_token::{Issued, KeyRing, TokenConfig, TokenMinter};

/// Why the engine could not be built or reloaded. Each names the file or section at fault.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("domains: {0}")]
    Domains(String),
    #[error("{0}")]
    Policy(String),
    #[error("ledger: {0}")]
    Ledger(String),
    #[error("tokens: {0}")]
    Tokens(String),
    #[error("approvals: {0}")]
    Approvals(String),
    #[error("data directory: {0}")]
    DataDir(String),
}

/// The decision engine of one running `lexecon`.
pub struct Engine {
    service: DecisionService,
    ledger: Option<LedgerHandle>,
    minter: TokenMinter,
    keys: Arc<KeyRing>,
    approvals: Arc<ApprovalStore>,
    api: ApiSettings,
    /// Shared with the ledger writer for entries it builds itself ([`DecisionPoint::record_owned`]).
    redaction: Arc<RedactionConfig>,
    node_id: String,
    /// The data directory's lock (approvals, generated keys): one engine per data directory.
    _data_dir_lock: std::fs::File,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// Creates and locks the data directory: a second `lexecon` on it would share its approvals and keys
/// (and, with the ledger on, fail on the ledger's own lock a moment later).
fn lock_data_dir(dir: &Path, wait: std::time::Duration) -> Result<std::fs::File, EngineError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| EngineError::DataDir(format!("cannot create {}: {e}", dir.display())))?;
    lexecon_ledger::dirlock::lock(dir, wait).map_err(|e| match e {
        lexecon_ledger::dirlock::LockError::InUse { lock } => EngineError::DataDir(format!(
            "{} is in use by another lexecon (lock {}); stop it or choose another data_dir",
            dir.display(),
            lock.display()
        )),
        lexecon_ledger::dirlock::LockError::Io { path, source } => {
            EngineError::DataDir(format!("cannot lock {}: {source}", path.display()))
        }
    })
}

/// The domain registry and policy documents a configuration names, loaded and validated.
pub fn load_policies(
    config: &Config,
) -> Result<(DomainRegistry, Vec<PolicyDocument>), EngineError> {
    let settings: DomainSettings = if config.domain_settings.is_null() {
        DomainSettings::default()
    } else {
        serde_json::from_value(config.domain_settings.clone())
            .map_err(|e| EngineError::Domains(format!("{}: domain_settings: {e}", config.source)))?
    };
    let mut registry = DomainRegistry::with_settings(&settings)
        .map_err(|e| EngineError::Domains(e.to_string()))?;
    for pack in &config.domain_packs {
        let text = std::fs::read_to_string(pack).map_err(|e| {
            EngineError::Domains(format!("cannot read domain pack {}: {e}", pack.display()))
        })?;
        registry
            .register_pack_yaml(&pack.display().to_string(), &text)
            .map_err(|e| EngineError::Domains(e.to_string()))?;
    }
    let mut docs = Vec::with_capacity(config.policies.len());
    let mut errors = Vec::new();
    for (domain, path) in &config.policies {
        let Some(plugin) = registry.get(domain) else {
            errors.push(format!(
                "{}: policies.{domain}: no such domain",
                config.source
            ));
            continue;
        };
        match lexecon_config::load_policy_file(path, Some(plugin.config())) {
            Ok(doc) => docs.push(doc),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok((registry, docs))
    } else {
        Err(EngineError::Policy(errors.join("\n")))
    }
}

/// The ledger section: writer settings, plus `redact: {domain: {field: keep|mask|hash}}` naming the
/// context fields an entry may carry besides the context digest.
fn ledger_config(config: &Config) -> Result<(Option<LedgerConfig>, RedactionConfig), EngineError> {
    let default_dir = config.data_dir.join("ledger");
    let mut value = match &config.ledger {
        Value::Null => {
            return Ok((
                Some(LedgerConfig::new(default_dir)),
                RedactionConfig::default(),
            ))
        }
        Value::Bool(false) => return Ok((None, RedactionConfig::default())),
        Value::String(s) if s == "off" => return Ok((None, RedactionConfig::default())),
        Value::Object(m) => m.clone(),
        other => {
            return Err(EngineError::Ledger(format!(
                "expected a mapping or `off`, found {other}"
            )))
        }
    };
    let dir = match value.get("dir").and_then(Value::as_str) {
        Some(d) => resolve(&config.data_dir, Path::new(d)),
        None => default_dir,
    };
    value.insert("dir".into(), Value::String(dir.display().to_string()));
    let redaction = match value.remove("redact") {
        None => RedactionConfig::default(),
        Some(domains) => serde_json::from_value(serde_json::json!({ "domains": domains }))
            .map_err(|e| EngineError::Ledger(format!("{}: ledger.redact: {e}", config.source)))?,
    };
    let writer = serde_json::from_value(Value::Object(value))
        .map_err(|e| EngineError::Ledger(format!("{}: ledger: {e}", config.source)))?;
    Ok((Some(writer), redaction))
}

fn token_config(config: &Config) -> Result<TokenConfig, EngineError> {
    let value = if config.tokens.is_null() {
        Value::Object(Map::new())
    } else {
        config.tokens.clone()
    };
    serde_json::from_value(value)
        .map_err(|e| EngineError::Tokens(format!("{}: tokens: {e}", config.source)))
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_relative() {
        base.join(p)
    } else {
        p.to_path_buf()
    }
}

impl Engine {
    /// Builds the engine: domains, policies, ledger writer (recovering its tail), keys (generated
    /// into the data directory at first start) and approvals. Blocking: call at start-up.
    pub fn from_config(config: &Config) -> Result<Engine, EngineError> {
        let data_dir_lock = lock_data_dir(&config.data_dir, lexecon_ledger::dirlock::WAIT)?;
        let (registry, docs) = load_policies(config)?;
        let snapshot =
            Snapshot::build(registry, docs).map_err(|e| EngineError::Policy(e.to_string()))?;
        let store = Arc::new(PolicyStore::new(snapshot));
        let service = DecisionService::new(store, ServiceConfig::default());

        let tokens = token_config(config)?;
        let keys = Arc::new(
            KeyRing::from_config(&tokens.keys, &config.data_dir)
                .map_err(|e| EngineError::Tokens(e.to_string()))?,
        );
        let minter = TokenMinter::new(keys.clone(), &tokens)
            .map_err(|e| EngineError::Tokens(e.to_string()))?;

        let (ledger_settings, redaction) = ledger_config(config)?;
        let ledger = match ledger_settings {
            Some(lc) => Some(
                LedgerWriter::start(lc, Some(CheckpointSigner::of(&keys)))
                    .map_err(|e| EngineError::Ledger(e.to_string()))?,
            ),
            None => None,
        };
        let api = ApiSettings::from_config(config).map_err(EngineError::Approvals)?;
        let approvals =
            ApprovalStore::open(&config.data_dir.join("approvals"), api.approval_config())
                .map_err(|e| EngineError::Approvals(e.to_string()))?;
        Ok(Engine {
            service,
            ledger,
            minter,
            keys,
            approvals: Arc::new(approvals),
            api,
            redaction: Arc::new(redaction),
            node_id: config.node_id.clone(),
            _data_dir_lock: data_dir_lock,
        })
    }

    /// Re-reads the policies and domain packs `config` names and swaps them in as one snapshot.
    /// On any error the policies in force stay, and the error lists every problem.
    pub fn reload_policies(&self, config: &Config) -> Result<u64, EngineError> {
        let (registry, docs) = load_policies(config)?;
        self.service
            .store()
            .rebuild(registry, docs)
            .map_err(|e| EngineError::Policy(e.to_string()))
    }

    pub fn service(&self) -> &DecisionService {
        &self.service
    }

    /// The domain registry of the snapshot in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.service.store().load_full()
    }

    pub fn ledger(&self) -> Option<&LedgerHandle> {
        self.ledger.as_ref()
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn approvals(&self) -> &Arc<ApprovalStore> {
        &self.approvals
    }

    /// The decision API settings (`api:` in the configuration) read at start.
    pub fn api_settings(&self) -> &ApiSettings {
        &self.api
    }

    /// Mints a capability token for a permitted decision (see [`lexecon_token::TokenMinter::mint`]).
    pub fn mint(
        &self,
        decision: &Decision,
        audience: &str,
        ledger_entry_hash: &str,
    ) -> Result<String, EnforceError> {
        self.minter
            .mint(decision, audience, ledger_entry_hash)
            .map_err(|e| EnforceError::new(500, format!("cannot mint capability token: {e}")))
    }

    /// Appends one approval step (created, approved, denied, consumed, expired) to the ledger.
    pub async fn record_approval(&self, event: &ApprovalEvent) -> Result<(), EnforceError> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let by = event
            .by
            .as_deref()
            .map(|b| format!(" by {b}"))
            .unwrap_or_default();
        let comment = event
            .comment
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        let kind = serde_json::to_value(event.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut draft = EntryDraft::event(
            EventType::Approval,
            format!(
                "approval {} {kind}{by}{comment} (request digest {})",
                event.approval_id,
                event.request_digest.to_hex()
            ),
        );
        draft.timestamp = event.at;
        draft.domain = Some(event.domain.clone());
        draft.decision_id = Some(event.decision_id.clone());
        draft.actor = Some(event.actor.clone());
        draft.action = Some(event.action.clone());
        draft.resource = event.resource.clone();
        ledger
            .append(draft)
            .await
            .map_err(|e| EnforceError::new(503, format!("audit ledger unavailable: {e}")))?;
        Ok(())
    }

    /// Records `decision` (taken on `context`) in the ledger and, for a permit with an `audience`,
    /// mints (or reuses) its capability token. The entry's hash is known as soon as it is queued
    /// (the request claims its place in the chain), so nothing here waits for the writer thread.
    pub async fn record_decision(
        &self,
        decision: &Decision,
        context: &Map<String, Value>,
        audience: Option<&str>,
    ) -> Result<Recorded, EnforceError> {
        let permit_audience = audience.filter(|_| decision.decision == Verdict::Permit);
        // A token still reusable (`tokens.mode: reuse`) links the entry of the decision that first
        // minted it.
        let reused = permit_audience.and_then(|aud| self.minter.reusable(decision, aud));
        self.record_claimed(decision, context, permit_audience, reused)
            .await
    }

    /// [`Self::record_decision`] for a caller that needs no entry hash and gives the decision away:
    /// unless a new capability token must link the entry, the ledger writer builds, hashes and
    /// drops the entry on its own thread, and the request thread only queues it
    /// ([`LedgerHandle::append_decision`]). `ledger_entry_hash` is then `None`.
    pub async fn record_decision_owned(
        &self,
        decision: Decision,
        context: Map<String, Value>,
        audience: Option<&str>,
    ) -> Result<Recorded, EnforceError> {
        let permit_audience = audience.filter(|_| decision.decision == Verdict::Permit);
        let reused = permit_audience.and_then(|aud| self.minter.reusable(&decision, aud));
        if permit_audience.is_some() && reused.is_none() {
            // A new token names its decision's entry: claim it here.
            return self
                .record_claimed(&decision, &context, permit_audience, None)
                .await;
        }
        if let Some(ledger) = &self.ledger {
            ledger
                .append_decision(decision, context, Arc::clone(&self.redaction))
                .await
                .map_err(|e| EnforceError::new(503, format!("audit ledger unavailable: {e}")))?;
        }
        Ok(Recorded {
            ledger_entry_hash: None,
            capability_token: reused,
        })
    }

    /// Appends the entry on this thread (its hash is known at once) and mints the token a permit
    /// with an audience needs, unless `reused` is one.
    async fn record_claimed(
        &self,
        decision: &Decision,
        context: &Map<String, Value>,
        permit_audience: Option<&str>,
        reused: Option<Issued>,
    ) -> Result<Recorded, EnforceError> {
        let mut recorded = Recorded::default();
        if let Some(ledger) = &self.ledger {
            // Serialized here, from the borrowed decision: nothing is copied for the writer.
            let body = EntryBody::of_decision(decision, context, &self.redaction).map_err(|e| {
                EnforceError::new(500, format!("cannot serialize the ledger entry: {e}"))
            })?;
            // A full queue under `fail_closed`, or a stopped writer, blocks the request (503).
            let appended = ledger
                .append_body(body)
                .await
                .map_err(|e| EnforceError::new(503, format!("audit ledger unavailable: {e}")))?;
            recorded.ledger_entry_hash = Some(appended.entry_hash);
        }
        if reused.is_some() {
            recorded.capability_token = reused;
        } else if let Some(audience) = permit_audience {
            let led = recorded.ledger_entry_hash.as_deref().unwrap_or("");
            let token = self.minter.issue(decision, audience, led).map_err(|e| {
                EnforceError::new(500, format!("cannot mint capability token: {e}"))
            })?;
            recorded.capability_token = Some(token);
        }
        Ok(recorded)
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Appends a non-decision event (startup, policy loaded, approval) to the ledger.
    pub async fn record_event(
        &self,
        event: EventType,
        reason: impl Into<String>,
    ) -> Result<(), EnforceError> {
        if let Some(ledger) = &self.ledger {
            ledger
                .append(EntryDraft::event(event, reason))
                .await
                .map_err(|e| EnforceError::new(503, format!("ledger unavailable: {e}")))?;
        }
        Ok(())
    }
}

/// Maps an engine error to the HTTP status a caller gets. Never a permit.
pub fn failure(e: &DecideError) -> EnforceError {
    match e {
        DecideError::UnknownDomain { domain } => {
            EnforceError::new(404, format!("Domain not supported: {domain}"))
        }
        DecideError::NoPolicy { domain } => EnforceError::new(
            404,
            format!("Domain not supported: {domain} (no policy loaded)"),
        ),
        other => EnforceError::new(400, other.to_string()),
    }
}

#[async_trait]
impl DecisionPoint for Engine {
    fn decide(&self, input: DecisionInput) -> Result<Decision, EnforceError> {
        self.service.decide(input).map_err(|e| failure(&e))
    }

    fn decide_keeping_context(
        &self,
        input: DecisionInput,
    ) -> (Result<Decision, EnforceError>, Map<String, Value>) {
        let (decided, context) = self.service.decide_keeping_context(input);
        (decided.map_err(|e| failure(&e)), context)
    }

    async fn record(
        &self,
        decision: &Decision,
        context: &Map<String, Value>,
        audience: Option<&str>,
    ) -> Result<Recorded, EnforceError> {
        self.record_decision(decision, context, audience).await
    }

    async fn record_owned(
        &self,
        decision: Decision,
        context: Map<String, Value>,
        audience: Option<&str>,
    ) -> Result<Recorded, EnforceError> {
        // The proxy needs an entry hash only for a new token (which links it).
        self.record_decision_owned(decision, context, audience)
            .await
    }

    async fn escalated(
        &self,
        decision: &Decision,
        digest: RequestDigest,
    ) -> Result<Option<String>, EnforceError> {
        let d = decision.clone();
        let (approval, event) = self
            .approvals
            .run_blocking(move |store| store.create(&d, digest, jiff::Timestamp::now()))
            .await
            .map_err(|e| EnforceError::new(e.status().as_u16(), e.to_string()))?;
        self.record_approval(&event).await?;
        Ok(Some(approval.id))
    }

    async fn redeem(
        &self,
        decision: Decision,
        approval_id: &str,
        digest: RequestDigest,
    ) -> Result<Decision, EnforceError> {
        let id = approval_id.to_owned();
        let (decision, redemption) = self
            .approvals
            .run_blocking(move |store| {
                let mut decision = decision;
                let r = redeem(store, &mut decision, &id, &digest, jiff::Timestamp::now());
                Ok((decision, r))
            })
            .await
            .map_err(|e| EnforceError::new(e.status().as_u16(), e.to_string()))?;
        match &redemption {
            Redemption::Permitted(event) => self.record_approval(event).await?,
            Redemption::Refused(e) => {
                tracing::info!(approval = approval_id, reason = %e, "approval not redeemed; request denied");
            }
            Redemption::NotApplicable => {}
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ledger: &str) -> Config {
        let text = format!("data_dir: /var/lib/lexecon\nledger: {ledger}\n");
        Config::from_yaml("test.yaml", &text).unwrap()
    }

    #[test]
    fn a_data_directory_serves_one_engine_even_with_the_ledger_off() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("data_dir: {}\nledger: off\n", dir.path().display());
        let engine = Engine::from_config(&Config::from_yaml("t.yaml", &text).unwrap()).unwrap();
        match lock_data_dir(dir.path(), std::time::Duration::ZERO) {
            Err(EngineError::DataDir(reason)) => {
                assert!(reason.contains("in use by another lexecon"), "{reason}")
            }
            other => panic!("a second engine must be refused, got {other:?}"),
        }
        drop(engine);
        assert!(lock_data_dir(dir.path(), std::time::Duration::ZERO).is_ok());
    }

    fn permit(i: u32, verdict: Verdict) -> Decision {
        Decision {
            request_id: format!("req-{i}"),
            decision_id: format!("dec-{i}"),
            domain: "ai".to_owned(),
            actor: "act_ai_agent:a".to_owned(),
            action: "axn_read_data".to_owned(),
            resource: Some("res_file:f1".to_owned()),
            decision: verdict,
            reasoning: "test".to_owned().into(),
            rule_id: "r".to_owned().into(),
            policy_version_hash: "ab".repeat(32).into(),
            compliance_mappings: vec![].into(),
            risk_level: 1,
            requires_human_approval: false,
            review_required: false,
            explanation: lexecon_policy_cache::Explanation {
                matched_rules: vec![].into(),
                findings: vec![],
                would_have: None,
                cached: false,
            },
            timestamp: jiff::Timestamp::now(),
        }
    }

    #[tokio::test]
    async fn given_away_decisions_are_recorded_by_the_writer_unless_a_new_token_links_them() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "data_dir: {}
",
            dir.path().display()
        );
        let engine = Engine::from_config(&Config::from_yaml("t.yaml", &text).unwrap()).unwrap();
        let ctx = || serde_json::json!({"n": 1}).as_object().unwrap().clone();
        // The first permit mints: its token links the entry, so the entry is claimed here.
        let first = engine
            .record_decision_owned(permit(1, Verdict::Permit), ctx(), Some("app"))
            .await
            .unwrap();
        let hash = first
            .ledger_entry_hash
            .clone()
            .expect("claimed for the new token");
        let token = first.capability_token.expect("minted");
        let jwks = lexecon_token::parse_jwks(&engine.keys().jwks_json()).unwrap();
        let claims = lexecon_token::verify_token(&token.token, &jwks, Some("app")).unwrap();
        assert_eq!(claims.led, hash);
        // The same call again reuses that token: nothing needs this entry's hash.
        let second = engine
            .record_decision_owned(permit(2, Verdict::Permit), ctx(), Some("app"))
            .await
            .unwrap();
        assert_eq!(second.ledger_entry_hash, None);
        assert_eq!(second.capability_token.unwrap().token, token.token);
        // A deny gets no token and is handed over too.
        let third = engine
            .record_decision_owned(permit(3, Verdict::Deny), ctx(), Some("app"))
            .await
            .unwrap();
        assert_eq!(third, Recorded::default());
        let ledger = engine.ledger().unwrap();
        ledger.flush().await.unwrap();
        let mut decisions = Vec::new();
        for file in std::fs::read_dir(dir.path().join("ledger")).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                for line in std::fs::read_to_string(path).unwrap().lines() {
                    let entry: lexecon_ledger::LedgerEntry = serde_json::from_str(line).unwrap();
                    if let Some(id) = entry.decision_id {
                        decisions.push((id, entry.entry_hash));
                    }
                }
            }
        }
        let ids: Vec<&str> = decisions.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["dec-1", "dec-2", "dec-3"]);
        assert_eq!(decisions[0].1, hash);
        ledger.shutdown().await.unwrap();
        let report = lexecon_ledger::verify_dir(&dir.path().join("ledger"), None).unwrap();
        assert!(report.is_ok(), "{report:?}");
    }

    #[test]
    fn ledger_section_defaults_to_data_dir_and_can_be_turned_off() {
        let (writer, _) =
            ledger_config(&Config::from_yaml("t.yaml", "data_dir: /d\n").unwrap()).unwrap();
        assert_eq!(writer.unwrap().dir, PathBuf::from("/d/ledger"));
        assert!(ledger_config(&config("off")).unwrap().0.is_none());
        let (writer, _) = ledger_config(&config("{dir: audit, durability: sync}")).unwrap();
        let writer = writer.unwrap();
        assert_eq!(writer.dir, PathBuf::from("/var/lib/lexecon/audit"));
        assert_eq!(writer.durability, lexecon_ledger::Durability::Sync);
    }

    #[test]
    fn ledger_redaction_keeps_only_the_named_fields() {
        let (_, redaction) = ledger_config(&config(
            "{redact: {healthcare: {purpose_of_use: keep, patient_id: hash}}}",
        ))
        .unwrap();
        let context =
            serde_json::json!({"purpose_of_use": "TREAT", "patient_id": "p-1", "notes": "secret"});
        let kept = redaction
            .apply("healthcare", context.as_object().unwrap())
            .unwrap();
        assert_eq!(kept["purpose_of_use"], "TREAT");
        assert_ne!(kept["patient_id"], "p-1", "hashed, never raw");
        assert!(kept.get("notes").is_none());
        assert!(redaction
            .apply("ai", context.as_object().unwrap())
            .is_none());
    }

    #[test]
    fn unknown_ledger_settings_are_rejected_naming_the_section() {
        let err = ledger_config(&config("{durabilty: sync}")).unwrap_err();
        assert!(err.to_string().contains("ledger"), "{err}");
        assert!(err.to_string().contains("durabilty"), "{err}");
    }

    #[test]
    fn the_documented_ledger_tokens_and_api_sections_are_accepted() {
        let doc = include_str!("../../docs/configuration.md");
        let start = doc.find("```yaml\n").unwrap() + "```yaml\n".len();
        let end = start + doc[start..].find("```").unwrap();
        let config = Config::from_yaml("docs/configuration.md", &doc[start..end]).unwrap();
        let (writer, redaction) = ledger_config(&config).unwrap();
        assert!(writer.is_some());
        assert!(!redaction.domains.is_empty());
        token_config(&config).unwrap();
        crate::api::http::ApiSettings::from_config(&config).unwrap();
    }
}
