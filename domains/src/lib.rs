//! The Lexecon domain model.
//!
//! Owns what a governance *domain* is (ai, finance, healthcare, … and data-only packs), the actor,
//! action and resource types each domain declares, risk levels, compliance frameworks and their
//! controls, policy templates, the [`DomainPlugin`] trait and the [`DomainRegistry`] that holds the
//! plugins. It never does I/O on a request path, never depends on tokio or pingora, and knows nothing
//! of policies' rule language (that is `lexecon-config`) or of how a decision is combined
//! (`lexecon-policy-cache`).
//!
//! ```
//! use lexecon_domains::{DomainId, DomainRegistry, EntityRef, Request};
//!
//! let registry = DomainRegistry::builtin()?;
//! let request = Request {
//!     domain: DomainId::new("ai")?,
//!     actor: EntityRef::parse("model")?, // a Lexecon 1.x name, accepted in the ai domain
//!     action: EntityRef::parse("axn_delete_data")?,
//!     resource: Some(EntityRef::parse("res_database:crm")?),
//!     context: Default::default(),
//!     provenance: Default::default(),
//!     time: "2026-11-24T15:00:00Z".parse()?,
//! };
//! let types = registry.resolve_types(&request)?;
//! assert_eq!(types.actor.type_id, "act_ai_agent");
//! assert!(types.action.requires_human_approval);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod build;
pub mod compliance;
pub mod error;
pub mod ident;
pub mod model;
pub mod outcome;
pub mod packs;
pub mod placeholder;
pub mod plugin;
pub mod registry;
pub mod request;
pub mod settings;

pub mod ai;
#[cfg(feature = "finance")]
pub mod finance;
#[cfg(feature = "healthcare")]
pub mod healthcare;

pub use compliance::ComplianceTable;
pub use error::DomainError;
pub use ident::{DomainId, EntityRef};
pub use model::{
    ActionCategory, ActionType, ActorCategory, ActorType, ComplianceFramework, ControlRef,
    DomainConfig, EvidencedWhen, PolicyTemplate, ResourceType, RiskLevel, RiskModel, Sensitivity,
    TemplateParam,
};
pub use outcome::{
    ComplianceMapping, ComplianceOutcome, ComplianceStatus, DecisionOutcome, Finding,
    FindingEffect, Verdict,
};
pub use plugin::DomainPlugin;
pub use registry::is_builtin_domain_name;
pub use registry::{DomainRegistry, ResolvedTypes, TypeIndex};
pub use request::{Provenance, Provenances, Request};
pub use settings::{DomainSettings, FinanceSettings, HealthcareSettings, VenueSettings};
