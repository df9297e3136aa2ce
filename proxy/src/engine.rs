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

use crate::api::approvals::{ApprovalConfig, ApprovalStore};
use crate::decide::{Decide, DecideFailure, Recorded};
use crate::ledger::{
    EntryDraft, EventType, LedgerConfig, LedgerHandle, LedgerWriter, RedactionConfig,
};
use crate::token::{KeyRing, TokenConfig, TokenMinter};

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
}

/// The decision engine of one running `lexecon`.
pub struct Engine {
    service: DecisionService,
    ledger: Option<LedgerHandle>,
    minter: TokenMinter,
    keys: Arc<KeyRing>,
    approvals: ApprovalStore,
    redaction: RedactionConfig,
    node_id: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
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

fn ledger_config(config: &Config) -> Result<Option<LedgerConfig>, EngineError> {
    let default_dir = config.data_dir.join("ledger");
    let mut value = match &config.ledger {
        Value::Null => return Ok(Some(LedgerConfig::new(default_dir))),
        Value::Bool(false) => return Ok(None),
        Value::String(s) if s == "off" => return Ok(None),
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
    serde_json::from_value(Value::Object(value))
        .map(Some)
        .map_err(|e| EngineError::Ledger(format!("{}: ledger: {e}", config.source)))
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
        let (registry, docs) = load_policies(config)?;
        let snapshot =
            Snapshot::build(registry, docs).map_err(|e| EngineError::Policy(e.to_string()))?;
        let store = Arc::new(PolicyStore::new(snapshot));
        let service = DecisionService::new(store, ServiceConfig::default());

        let tokens = token_config(config)?;
        let keys = Arc::new(
            KeyRing::from_config(&tokens, &config.data_dir)
                .map_err(|e| EngineError::Tokens(e.to_string()))?,
        );
        let minter = TokenMinter::new(keys.clone(), &tokens)
            .map_err(|e| EngineError::Tokens(e.to_string()))?;

        let ledger = match ledger_config(config)? {
            Some(lc) => Some(
                LedgerWriter::start(lc, Some(keys.checkpoint_signer()))
                    .map_err(|e| EngineError::Ledger(e.to_string()))?,
            ),
            None => None,
        };
        let approvals = ApprovalStore::open(
            &config.data_dir.join("approvals"),
            ApprovalConfig::default(),
        )
        .map_err(|e| EngineError::Approvals(e.to_string()))?;
        Ok(Engine {
            service,
            ledger,
            minter,
            keys,
            approvals,
            redaction: RedactionConfig::default(),
            node_id: config.node_id.clone(),
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

    pub fn approvals(&self) -> &ApprovalStore {
        &self.approvals
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Appends a non-decision event (startup, policy loaded, approval) to the ledger.
    pub async fn record_event(
        &self,
        event: EventType,
        reason: impl Into<String>,
    ) -> Result<(), DecideFailure> {
        if let Some(ledger) = &self.ledger {
            ledger
                .append(EntryDraft::event(event, reason))
                .await
                .map_err(|e| DecideFailure::new(503, format!("ledger unavailable: {e}")))?;
        }
        Ok(())
    }
}

/// Maps an engine error to the HTTP status a caller gets. Never a permit.
pub fn failure(e: &DecideError) -> DecideFailure {
    match e {
        DecideError::UnknownDomain { domain } => {
            DecideFailure::new(404, format!("Domain not supported: {domain}"))
        }
        DecideError::NoPolicy { domain } => DecideFailure::new(
            404,
            format!("Domain not supported: {domain} (no policy loaded)"),
        ),
        other => DecideFailure::new(400, other.to_string()),
    }
}

#[async_trait]
impl Decide for Engine {
    fn decide(&self, input: DecisionInput) -> Result<Decision, DecideFailure> {
        self.service.decide(input).map_err(|e| failure(&e))
    }

    async fn record(
        &self,
        decision: &Decision,
        context: &Map<String, Value>,
        audience: Option<&str>,
    ) -> Result<Recorded, DecideFailure> {
        let mut recorded = Recorded::default();
        let permit_audience = audience.filter(|_| decision.decision == Verdict::Permit);
        // A token still reusable (`tokens.mode: reuse`) links the entry of the decision that first
        // minted it: this request's entry hash is not needed, so it does not wait for the writer.
        let reused = permit_audience.and_then(|aud| self.minter.reusable(decision, aud));
        if let Some(ledger) = &self.ledger {
            let draft = EntryDraft::from_decision(decision, context, &self.redaction);
            // A full queue under `fail_closed`, or a stopped writer, blocks the request (503).
            let receipt = ledger
                .append(draft)
                .await
                .map_err(|e| DecideFailure::new(503, format!("audit ledger unavailable: {e}")))?;
            if permit_audience.is_some() && reused.is_none() {
                // A new token links the ledger entry, so wait for the writer to place it.
                let appended = receipt.appended().await.map_err(|e| {
                    DecideFailure::new(503, format!("audit ledger unavailable: {e}"))
                })?;
                recorded.ledger_entry_hash = Some(appended.entry_hash);
            } else if let Some(a) = receipt.ready() {
                recorded.ledger_entry_hash = Some(a.entry_hash.clone());
            }
        }
        if reused.is_some() {
            recorded.capability_token = reused;
        } else if let Some(audience) = permit_audience {
            let led = recorded.ledger_entry_hash.as_deref().unwrap_or("");
            let token = self.minter.mint(decision, audience, led).map_err(|e| {
                DecideFailure::new(500, format!("cannot mint capability token: {e}"))
            })?;
            recorded.capability_token = Some(token);
        }
        Ok(recorded)
    }
}
