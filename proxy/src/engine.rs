//! The engine: everything a decision needs, built once from a [`Config`] and shared by the proxy
//! listener, the decision API and the CLI — the domain registry and policies (a
//! `lexecon-policy-cache` store swapped atomically on reload), the ledger writer, the token key
//! ring and minter, and the approval store. It owns the glue between them (record a decision,
//! mint its token) and no decision logic of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use lexecon_config::file::Config;
use lexecon_config::sections::{ApiSettings, LedgerSection};
use lexecon_config::{ConfigError, Located, PolicyDocument};
use lexecon_domains::{DomainError, DomainRegistry, Verdict};
use lexecon_policy_cache::{
    DecideError, Decision, DecisionInput, DecisionService, PolicyError, PolicySnapshot,
    PolicyStore, ServiceConfig,
};
use serde_json::{Map, Value};

use crate::enforce::{DecisionPoint, EnforceError, Pinned, Recorded, Refused};
use lexecon_approvals::{
    redeem, ApprovalError, ApprovalEvent, ApprovalStore, Redemption, RequestDigest,
};
use lexecon_ledger::{
    CheckpointSigner, EntryBody, EntryDraft, EventType, LedgerConfig, LedgerError, LedgerHandle,
    LedgerWriter, RedactionConfig,
};
use lexecon_token::{Grant, KeyError, KeyRing, Minted, TokenError, TokenMinter};

/// Why the engine could not be built or reloaded. The message names the step; its source says
/// what was wrong (`lexecon serve` prints both on one line: `cannot start the audit ledger: …`).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot create the data directory {}", dir.display())]
    CreateDataDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {} is in use by another lexecon (lock {}); stop it or choose another data_dir", dir.display(), lock.display())]
    DataDirInUse { dir: PathBuf, lock: PathBuf },
    #[error("cannot lock the data directory {}", path.display())]
    LockDataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The built-in plugins refused their `domain_settings`.
    #[error("the domain plugins do not start")]
    Domains(#[source] DomainError),
    #[error("cannot read domain pack {}", path.display())]
    ReadPack {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("domain pack {} is not loaded", path.display())]
    Pack {
        path: PathBuf,
        #[source]
        source: DomainError,
    },
    /// Every problem of every policy file (and of `policies` naming an unknown domain).
    #[error("the policies do not load")]
    Policies(#[source] ConfigError),
    #[error("the policies do not compile")]
    Compile(#[from] PolicyError),
    #[error("cannot load the signing keys")]
    Keys(#[from] KeyError),
    #[error("cannot start the token minter")]
    Tokens(#[from] TokenError),
    #[error("cannot start the audit ledger")]
    Ledger(#[from] LedgerError),
    #[error("cannot open the approval store")]
    Approvals(#[from] ApprovalError),
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
    std::fs::create_dir_all(dir).map_err(|source| EngineError::CreateDataDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    lexecon_ledger::dirlock::lock(dir, wait).map_err(|e| match e {
        lexecon_ledger::dirlock::LockError::InUse { lock } => EngineError::DataDirInUse {
            dir: dir.to_path_buf(),
            lock,
        },
        lexecon_ledger::dirlock::LockError::Io { path, source } => {
            EngineError::LockDataDir { path, source }
        }
    })
}

/// The domain registry and policy documents a configuration names, loaded and validated.
pub fn load_policies(
    config: &Config,
) -> Result<(DomainRegistry, Vec<PolicyDocument>), EngineError> {
    let mut registry =
        DomainRegistry::with_settings(&config.domain_settings).map_err(EngineError::Domains)?;
    for pack in &config.domain_packs {
        let text = std::fs::read_to_string(pack).map_err(|source| EngineError::ReadPack {
            path: pack.clone(),
            source,
        })?;
        registry
            .register_pack_yaml(&pack.display().to_string(), &text)
            .map_err(|source| EngineError::Pack {
                path: pack.clone(),
                source,
            })?;
    }
    let mut docs = Vec::with_capacity(config.policies.len());
    let mut errors = Vec::new();
    for (domain, path) in &config.policies {
        let Some(plugin) = registry.get(domain) else {
            errors.push(Located::new(
                &config.source,
                format!("policies.{domain}"),
                "no such domain",
            ));
            continue;
        };
        match lexecon_config::load_policy_file(path, Some(plugin.config())) {
            Ok(doc) => docs.push(doc),
            Err(ConfigError::Invalid(located)) => errors.extend(located),
            Err(ConfigError::Io { file, error }) => {
                errors.push(Located::new(file, "", format!("cannot read: {error}")))
            }
            Err(other) => errors.push(Located::new(
                path.display().to_string(),
                "",
                other.to_string(),
            )),
        }
    }
    if errors.is_empty() {
        Ok((registry, docs))
    } else {
        Err(EngineError::Policies(ConfigError::Invalid(errors)))
    }
}

/// The writer's settings of the `ledger:` section (`None`: off), with the directory resolved
/// against `data_dir`, and the redaction rules of its `redact`.
fn ledger_config(config: &Config) -> (Option<LedgerConfig>, RedactionConfig) {
    match &config.ledger {
        LedgerSection::Off => (None, RedactionConfig::default()),
        LedgerSection::On(settings) => (
            Some(LedgerConfig::from_settings(
                settings.resolved_dir(&config.data_dir),
                settings,
            )),
            RedactionConfig::from_settings(settings),
        ),
    }
}

impl Engine {
    /// Drops the capability tokens that can no longer be reused from the minter's reuse cache (see
    /// [`TokenMinter::sweep_expired`]); for the cache sweeper, off the request path.
    pub fn sweep_expired_tokens(&self) -> usize {
        self.minter.sweep_expired()
    }

    /// Builds the engine: domains, policies, ledger writer (recovering its tail), keys (generated
    /// into the data directory at first start) and approvals. Blocking: call at start-up.
    pub fn from_config(config: &Config) -> Result<Engine, EngineError> {
        let data_dir_lock = lock_data_dir(&config.data_dir, lexecon_ledger::dirlock::WAIT)?;
        let (registry, docs) = load_policies(config)?;
        let snapshot = PolicySnapshot::build(registry, docs)?;
        let store = Arc::new(PolicyStore::new(snapshot));
        let service = DecisionService::new(store, ServiceConfig::default());

        let keys = Arc::new(KeyRing::from_config(&config.tokens.keys, &config.data_dir)?);
        let minter = TokenMinter::new(keys.clone(), &config.tokens)?;

        let (ledger_settings, redaction) = ledger_config(config);
        let ledger = match ledger_settings {
            Some(lc) => Some(LedgerWriter::start(lc, Some(CheckpointSigner::of(&keys)))?),
            None => None,
        };
        let api = config.api.clone();
        let approvals =
            ApprovalStore::open(&config.data_dir.join("approvals"), api.approvals.clone())?;
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
        let next = self.build_policies(config)?;
        Ok(self.publish_policies(next))
    }

    /// Reads and compiles the policies and domain packs `config` names into a snapshot that is
    /// not in force yet ([`Self::publish_policies`] swaps it in). Blocking file I/O.
    pub fn build_policies(&self, config: &Config) -> Result<PolicySnapshot, EngineError> {
        let (registry, docs) = load_policies(config)?;
        Ok(PolicySnapshot::build(registry, docs)?)
    }

    /// Puts a snapshot built by [`Self::build_policies`] in force; returns its version.
    pub fn publish_policies(&self, next: PolicySnapshot) -> u64 {
        self.service.store().replace(next)
    }

    /// The policy snapshot last published, for a proxy snapshot to carry
    /// ([`crate::server::ProxySnapshot::with_policies`]).
    pub fn pin_policies(&self) -> Pinned {
        Some(self.service.store().load_full())
    }

    pub fn service(&self) -> &DecisionService {
        &self.service
    }

    /// The domain registry of the snapshot in force.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
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

    /// Records `decision` (taken on `context`) in the ledger and, for a permit with a `grant`,
    /// mints (or reuses) its capability token, bound to the context and the grant's request. The entry's hash is known as soon as it is queued
    /// (the request claims its place in the chain), so nothing here waits for the writer thread.
    pub async fn record_decision(
        &self,
        decision: &Decision,
        context: &Map<String, Value>,
        grant: Option<Grant<'_>>,
    ) -> Result<Recorded, EnforceError> {
        let permit = grant.filter(|_| decision.decision == Verdict::Permit);
        // Once for the token's binding (`ctx`) and the entry's `context_digest`.
        let digest = lexecon_config::canonical::map_digest(context);
        // A token still reusable (`tokens.mode: reuse`) links the entry of the decision that first
        // minted it.
        let reused = permit.and_then(|g| self.minter.reusable_for_digest(decision, g, &digest));
        self.record_claimed(decision, context, &digest, permit, reused)
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
        grant: Option<Grant<'_>>,
    ) -> Result<Recorded, EnforceError> {
        let Some(permit) = grant.filter(|_| decision.decision == Verdict::Permit) else {
            // No token: the writer digests the context itself, off this thread.
            if let Some(ledger) = &self.ledger {
                ledger
                    .append_decision(decision, context, Arc::clone(&self.redaction))
                    .await
                    .map_err(ledger_unavailable)?;
            }
            return Ok(Recorded::default());
        };
        // Once for the token's binding (`ctx`) and the entry's `context_digest`.
        let digest = lexecon_config::canonical::map_digest(&context);
        let Some(reused) = self.minter.reusable_for_digest(&decision, permit, &digest) else {
            // A new token names its decision's entry: claim it here.
            return self
                .record_claimed(&decision, &context, &digest, Some(permit), None)
                .await;
        };
        if let Some(ledger) = &self.ledger {
            ledger
                .append_decision_digested(decision, context, digest, Arc::clone(&self.redaction))
                .await
                .map_err(ledger_unavailable)?;
        }
        Ok(Recorded {
            ledger_entry_hash: None,
            capability_token: Some(reused),
        })
    }

    /// Appends the entry on this thread (its hash is known at once) and mints the token a permit
    /// with an audience needs, unless `reused` is one.
    async fn record_claimed(
        &self,
        decision: &Decision,
        context: &Map<String, Value>,
        context_digest: &[u8; 32],
        permit: Option<Grant<'_>>,
        reused: Option<Arc<Minted>>,
    ) -> Result<Recorded, EnforceError> {
        let mut recorded = Recorded::default();
        if let Some(ledger) = &self.ledger {
            // Serialized here, from the borrowed decision: nothing is copied for the writer.
            let body =
                EntryBody::of_decision_digested(decision, context, context_digest, &self.redaction)
                    .map_err(|e| {
                        EnforceError::new(500, format!("cannot serialize the ledger entry: {e}"))
                    })?;
            // A full queue under `fail_closed`, or a stopped writer, blocks the request (503).
            let appended = ledger.append_body(body).await.map_err(ledger_unavailable)?;
            recorded.ledger_entry_hash = Some(appended.entry_hash);
        }
        if reused.is_some() {
            recorded.capability_token = reused;
        } else if let Some(grant) = permit {
            let led = recorded.ledger_entry_hash.as_deref().unwrap_or("");
            let token = self
                .minter
                .issue_for_digest(decision, grant, context_digest, led)
                .map_err(|e| {
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

/// A decision the ledger would not take (queue full under `fail_closed`, writer down): 503.
fn ledger_unavailable(e: LedgerError) -> EnforceError {
    EnforceError::new(503, format!("audit ledger unavailable: {e}"))
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

    fn pin(&self) -> Pinned {
        Some(self.service.store().load_full())
    }

    fn decide_pinned(
        &self,
        input: DecisionInput,
        pinned: &Pinned,
    ) -> (Result<Decision, EnforceError>, Map<String, Value>) {
        let Some(snapshot) = pinned else {
            return self.decide_keeping_context(input);
        };
        let (decided, context) = self.service.decide_on(snapshot, input);
        (decided.map_err(|e| failure(&e)), context)
    }

    async fn record_refusal(&self, refused: &Refused<'_>) -> Result<(), EnforceError> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let mut draft = EntryDraft::event(EventType::RequestRefused, refused.reason);
        draft.domain = Some(refused.domain.to_owned());
        draft.request_id = Some(refused.request_id.to_owned());
        draft.actor = refused.actor.map(str::to_owned);
        draft.action = refused.action.map(str::to_owned);
        draft.resource = refused.resource.map(str::to_owned);
        draft.decision = Some(Verdict::Deny);
        draft.rule_id = Some(format!("lexecon:{}", refused.by));
        ledger
            .append(draft)
            .await
            .map_err(|e| EnforceError::new(503, format!("audit ledger unavailable: {e}")))?;
        Ok(())
    }

    async fn record_break_glass(
        &self,
        actor: &str,
        domain: &str,
        text: &str,
    ) -> Result<(), EnforceError> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let mut draft = EntryDraft::event(EventType::BreakGlass, text);
        draft.domain = Some(domain.to_owned());
        draft.actor = Some(actor.to_owned());
        ledger
            .append(draft)
            .await
            .map_err(|e| EnforceError::new(503, format!("audit ledger unavailable: {e}")))?;
        Ok(())
    }

    async fn record(
        &self,
        decision: &Decision,
        context: &Map<String, Value>,
        grant: Option<Grant<'_>>,
    ) -> Result<Recorded, EnforceError> {
        self.record_decision(decision, context, grant).await
    }

    async fn record_owned(
        &self,
        decision: Decision,
        context: Map<String, Value>,
        grant: Option<Grant<'_>>,
    ) -> Result<Recorded, EnforceError> {
        // The proxy needs an entry hash only for a new token (which links it).
        self.record_decision_owned(decision, context, grant).await
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
            Err(e @ EngineError::DataDirInUse { .. }) => {
                assert!(e.to_string().contains("in use by another lexecon"), "{e}")
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
    async fn a_refusal_before_any_decision_is_a_request_refused_deny_in_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("data_dir: {}\n", dir.path().display());
        let engine = Engine::from_config(&Config::from_yaml("t.yaml", &text).unwrap()).unwrap();
        let refused = Refused {
            request_id: "req-9",
            domain: "healthcare",
            actor: Some("act_clinician:lee"),
            action: Some("axn_read_record"),
            resource: Some("res_patient:123"),
            by: "smart_scope",
            reason: "the token's SMART scopes do not grant read on Patient/123",
        };
        engine.record_refusal(&refused).await.unwrap();
        let ledger = engine.ledger().unwrap();
        ledger.shutdown().await.unwrap();
        let mut found = Vec::new();
        for file in std::fs::read_dir(dir.path().join("ledger")).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                for line in std::fs::read_to_string(path).unwrap().lines() {
                    let entry: lexecon_ledger::LedgerEntry = serde_json::from_str(line).unwrap();
                    if entry.event_type == EventType::RequestRefused {
                        found.push(entry);
                    }
                }
            }
        }
        assert_eq!(found.len(), 1);
        let e = &found[0];
        assert_eq!(e.decision, Some(Verdict::Deny));
        assert_eq!(e.rule_id.as_deref(), Some("lexecon:smart_scope"));
        assert_eq!(e.request_id.as_deref(), Some("req-9"));
        assert_eq!(e.actor.as_deref(), Some("act_clinician:lee"));
        assert_eq!(e.resource.as_deref(), Some("res_patient:123"));
        assert_eq!(e.reason.as_deref(), Some(refused.reason));
        let report = lexecon_ledger::verify_dir(&dir.path().join("ledger"), None).unwrap();
        assert!(report.is_ok(), "{report:?}");
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
            .record_decision_owned(permit(1, Verdict::Permit), ctx(), Some(Grant::to("app")))
            .await
            .unwrap();
        let hash = first
            .ledger_entry_hash
            .clone()
            .expect("claimed for the new token");
        let token = first.capability_token.expect("minted");
        let jwks = lexecon_token::parse_jwks(&engine.keys().jwks_json()).unwrap();
        let claims = lexecon_token::verify_token(&token.issued.token, &jwks, Some("app")).unwrap();
        assert_eq!(claims.led, hash);
        // The same call again reuses that token: nothing needs this entry's hash.
        let second = engine
            .record_decision_owned(permit(2, Verdict::Permit), ctx(), Some(Grant::to("app")))
            .await
            .unwrap();
        assert_eq!(second.ledger_entry_hash, None);
        assert_eq!(
            second.capability_token.unwrap().issued.token,
            token.issued.token
        );
        // A deny gets no token and is handed over too.
        let third = engine
            .record_decision_owned(permit(3, Verdict::Deny), ctx(), Some(Grant::to("app")))
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
        let (writer, _) = ledger_config(&Config::from_yaml("t.yaml", "data_dir: /d\n").unwrap());
        assert_eq!(writer.unwrap(), LedgerConfig::new("/d/ledger"));
        assert!(ledger_config(&config("off")).0.is_none());
        assert!(ledger_config(&config("false")).0.is_none());
        let (writer, _) = ledger_config(&config("{dir: audit, durability: sync}"));
        let writer = writer.unwrap();
        assert_eq!(writer.dir, PathBuf::from("/var/lib/lexecon/audit"));
        assert_eq!(writer.durability, lexecon_ledger::Durability::Sync);
    }

    #[test]
    fn ledger_redaction_keeps_only_the_named_fields() {
        let (_, redaction) = ledger_config(&config(
            "{redact: {healthcare: {purpose_of_use: keep, patient_id: hash}}}",
        ));
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
        let text = "data_dir: /d\nledger: {durabilty: sync}\n";
        let err = Config::from_yaml("test.yaml", text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("test.yaml: ledger.durabilty: "), "{err}");
        assert!(err.contains("unknown field `durabilty`"), "{err}");
    }

    #[test]
    fn a_start_up_failure_names_the_step_and_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "data_dir: {}\npolicies: {{ai: missing.yaml, nowhere: x.yaml}}\n",
            dir.path().display()
        );
        let err = Engine::from_config(&Config::from_yaml("t.yaml", &text).unwrap()).unwrap_err();
        assert!(matches!(err, EngineError::Policies(_)), "{err:?}");
        let line = format!("{:#}", anyhow::Error::from(err));
        assert!(line.starts_with("the policies do not load: "), "{line}");
        assert!(line.contains("missing.yaml: cannot read: "), "{line}");
        assert!(
            line.contains("t.yaml: policies.nowhere: no such domain"),
            "{line}"
        );
    }

    #[test]
    fn the_documented_ledger_tokens_and_api_sections_are_accepted() {
        let doc = include_str!("../../docs/configuration.md");
        let start = doc.find("```yaml\n").unwrap() + "```yaml\n".len();
        let end = start + doc[start..].find("```").unwrap();
        let config = Config::from_yaml("docs/configuration.md", &doc[start..end]).unwrap();
        let (writer, redaction) = ledger_config(&config);
        assert!(writer.is_some());
        assert!(!redaction.domains.is_empty());
        assert_eq!(config.tokens.mode, lexecon_token::MintMode::Reuse);
        assert_eq!(config.api.approvals.max_pending, 10_000);
    }
}
