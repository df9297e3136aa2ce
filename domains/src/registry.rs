//! [`DomainRegistry`]: the set of domain plugins a snapshot decides with, by domain id, and the type
//! check every request passes first.
//!
//! Building a registry (built-ins, packs) happens at load time; on the request path the registry is
//! only read. It never mutates a plugin and never does I/O (built-in packs are compiled in).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::error::DomainError;
use crate::ident::{DomainId, EntityRef};
use crate::model::{ActionType, ActorType, DomainConfig, ResourceType};
use crate::packs::{PackPlugin, BUILTIN_PACKS};
use crate::plugin::DomainPlugin;
use crate::request::Request;
use crate::settings::DomainSettings;

/// The names of the built-in domains (Rust plugins and the embedded packs).
pub const BUILTIN_DOMAIN_NAMES: &[&str] = &[
    "ai",
    "finance",
    "healthcare",
    "defense",
    "automotive",
    "supply_chain",
    "energy",
    "general",
];

/// Whether `name` is one of the eight built-in domains (whether or not its feature is compiled in).
/// User packs may not take these names.
pub fn is_builtin_domain_name(name: &str) -> bool {
    BUILTIN_DOMAIN_NAMES.contains(&name)
}

/// The declared types a request's references resolve to (legacy names followed).
#[derive(Debug, Clone, Copy)]
pub struct ResolvedTypes<'a> {
    pub actor: &'a ActorType,
    pub action: &'a ActionType,
    pub resource: Option<&'a ResourceType>,
}

type FastMap = HashMap<String, usize, foldhash::fast::RandomState>;

/// Positions of a domain's declared types by type id, so resolving a request's types is three hash
/// lookups instead of three scans of the type lists. Built once per compiled policy.
#[derive(Debug, Clone, Default)]
pub struct TypeIndex {
    actors: FastMap,
    actions: FastMap,
    resources: FastMap,
}

impl TypeIndex {
    /// The index of `config`'s type lists (a duplicated id keeps its first position, as the list
    /// lookups do).
    pub fn of(config: &DomainConfig) -> Self {
        fn positions<'a>(ids: impl Iterator<Item = &'a String>) -> FastMap {
            let mut map = FastMap::default();
            for (i, id) in ids.enumerate() {
                map.entry(id.clone()).or_insert(i);
            }
            map
        }
        Self {
            actors: positions(config.actor_types.iter().map(|t| &t.type_id)),
            actions: positions(config.action_types.iter().map(|t| &t.type_id)),
            resources: positions(config.resource_types.iter().map(|t| &t.type_id)),
        }
    }
}

impl<'a> ResolvedTypes<'a> {
    /// [`ResolvedTypes::of`] with `index` (built from `plugin`'s config) for the declared ids; a
    /// name the index does not hold (a legacy alias, or an unknown type) takes the plugin's own
    /// lookup, so the result and the errors are those of [`ResolvedTypes::of`].
    pub fn of_indexed(
        plugin: &'a dyn DomainPlugin,
        index: &TypeIndex,
        request: &Request,
    ) -> Result<Self, DomainError> {
        let config = plugin.config();
        let actor = index
            .actors
            .get(request.actor.type_id())
            .and_then(|i| config.actor_types.get(*i));
        let action = index
            .actions
            .get(request.action.type_id())
            .and_then(|i| config.action_types.get(*i));
        let resource = match &request.resource {
            Some(r) => index
                .resources
                .get(r.type_id())
                .and_then(|i| config.resource_types.get(*i))
                .map(Some),
            None => Some(None),
        };
        match (actor, action, resource) {
            (Some(actor), Some(action), Some(resource)) => Ok(Self {
                actor,
                action,
                resource,
            }),
            _ => Self::of(plugin, request),
        }
    }

    /// The declared types of the request's references in `plugin`'s domain (the plugin the caller
    /// already looked up for the request's domain), with the errors of
    /// [`DomainRegistry::check_types`].
    pub fn of(plugin: &'a dyn DomainPlugin, request: &Request) -> Result<Self, DomainError> {
        let domain = || request.domain.to_string();
        let actor = plugin
            .resolve_actor_type(request.actor.type_id())
            .ok_or_else(|| DomainError::UnknownActorType {
                domain: domain(),
                type_id: request.actor.type_id().into(),
            })?;
        let action = plugin
            .resolve_action_type(request.action.type_id())
            .ok_or_else(|| DomainError::UnknownActionType {
                domain: domain(),
                type_id: request.action.type_id().into(),
            })?;
        let resource = match &request.resource {
            Some(resource) => Some(
                plugin
                    .config()
                    .resource_type(resource.type_id())
                    .ok_or_else(|| DomainError::UnknownResourceType {
                        domain: domain(),
                        type_id: resource.type_id().into(),
                    })?,
            ),
            None => None,
        };
        Ok(Self {
            actor,
            action,
            resource,
        })
    }
}

/// The plugins of one snapshot. Cheap to clone (plugins are shared).
#[derive(Debug, Clone, Default)]
pub struct DomainRegistry {
    plugins: BTreeMap<DomainId, Arc<dyn DomainPlugin>>,
}

impl DomainRegistry {
    pub fn empty() -> Self {
        Self::default()
    }

    /// All built-in domains compiled into this build, with default plugin settings: `ai`, `finance`
    /// and `healthcare` (Cargo features of the same name), and the packs defense, automotive,
    /// supply_chain, energy and general.
    pub fn builtin() -> Result<Self, DomainError> {
        Self::with_settings(&DomainSettings::default())
    }

    /// As [`DomainRegistry::builtin`], with plugin settings from the configuration file.
    pub fn with_settings(settings: &DomainSettings) -> Result<Self, DomainError> {
        settings.validate()?;
        let mut registry = Self::empty();
        registry.register(Arc::new(crate::ai::AiPlugin::new()?))?;
        #[cfg(feature = "finance")]
        registry.register(Arc::new(crate::finance::FinancePlugin::new(
            settings.finance.clone(),
        )?))?;
        #[cfg(feature = "healthcare")]
        registry.register(Arc::new(
            crate::healthcare::HealthcarePlugin::with_settings(settings.healthcare.clone())?,
        ))?;
        for (source_name, yaml) in BUILTIN_PACKS {
            let pack = PackPlugin::from_yaml(source_name, yaml)?;
            registry.register(Arc::new(pack))?;
        }
        Ok(registry)
    }

    /// Adds a plugin; a second plugin for the same domain is an error.
    pub fn register(&mut self, plugin: Arc<dyn DomainPlugin>) -> Result<(), DomainError> {
        let id = plugin.config().domain.clone();
        if self.plugins.contains_key(&id) {
            return Err(DomainError::DuplicateDomain {
                domain: id.to_string(),
            });
        }
        self.plugins.insert(id, plugin);
        Ok(())
    }

    /// Adds a user's data-only domain pack. The pack is validated fully (unique, prefixed type ids;
    /// known or inline frameworks; templates carry their rules as data); its domain must be a valid
    /// id that is neither built in nor already registered.
    pub fn register_pack_yaml(&mut self, source_name: &str, yaml: &str) -> Result<(), DomainError> {
        let pack = PackPlugin::from_yaml(source_name, yaml)?;
        let domain = pack.config().domain.as_str();
        if is_builtin_domain_name(domain) || self.plugins.contains_key(&pack.config().domain) {
            return Err(DomainError::InvalidPack {
                source_name: source_name.to_string(),
                reason: format!(
                    "domain {domain} is already taken (built-in or registered); choose another id"
                ),
            });
        }
        self.register(Arc::new(pack))
    }

    pub fn get(&self, domain: &str) -> Option<&Arc<dyn DomainPlugin>> {
        self.plugins.get(domain)
    }

    pub fn domains(&self) -> impl Iterator<Item = &DomainId> {
        self.plugins.keys()
    }

    /// Checks that the request's actor, action and resource types are declared by its domain.
    ///
    /// Legacy names: in the `ai` domain an un-prefixed Lexecon 1.x actor or action name (`model`,
    /// `user`, `search`, …) is accepted as is when it maps to a declared type; the request is not
    /// changed. Call [`DomainRegistry::resolve_legacy`] to rewrite it to the typed form instead.
    pub fn check_types(&self, request: &Request) -> Result<(), DomainError> {
        self.resolve_types(request).map(|_| ())
    }

    /// The declared types of the request's actor, action and resource, following legacy names; the
    /// same errors as [`DomainRegistry::check_types`].
    pub fn resolve_types(&self, request: &Request) -> Result<ResolvedTypes<'_>, DomainError> {
        let plugin =
            self.get(request.domain.as_str())
                .ok_or_else(|| DomainError::UnknownDomain {
                    domain: request.domain.to_string(),
                })?;
        ResolvedTypes::of(plugin.as_ref(), request)
    }

    /// Rewrites legacy un-prefixed actor/action names to `type_id:legacy_name`
    /// (`model` → `act_ai_agent:model`, `search` → `axn_search:search`), so typed policy rules
    /// (`act_ai_agent:*`) match them. Returns whether anything changed. Unknown names are left for
    /// [`DomainRegistry::check_types`] to reject.
    pub fn resolve_legacy(&self, request: &mut Request) -> Result<bool, DomainError> {
        let Some(plugin) = self.get(request.domain.as_str()) else {
            return Err(DomainError::UnknownDomain {
                domain: request.domain.to_string(),
            });
        };
        let config = plugin.config();
        let mut changed = false;
        if config.actor_type(request.actor.type_id()).is_none() {
            if let Some(id) = plugin.legacy_actor_type(request.actor.type_id()) {
                request.actor = EntityRef::parse(format!("{id}:{}", request.actor))?;
                changed = true;
            }
        }
        if config.action_type(request.action.type_id()).is_none() {
            if let Some(id) = plugin.legacy_action_type(request.action.type_id()) {
                request.action = EntityRef::parse(format!("{id}:{}", request.action))?;
                changed = true;
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(domain: &str, actor: &str, action: &str, resource: Option<&str>) -> Request {
        Request {
            domain: DomainId::new(domain).unwrap(),
            actor: EntityRef::parse(actor).unwrap(),
            action: EntityRef::parse(action).unwrap(),
            resource: resource.map(|r| EntityRef::parse(r).unwrap()),
            context: Default::default(),
            provenance: Default::default(),
            time: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn builtin_registers_every_compiled_domain_and_all_packs() {
        let r = DomainRegistry::builtin().unwrap();
        let ids: Vec<&str> = r.domains().map(DomainId::as_str).collect();
        for d in [
            "ai",
            "defense",
            "automotive",
            "supply_chain",
            "energy",
            "general",
        ] {
            assert!(ids.contains(&d), "{d} missing from {ids:?}");
        }
        assert_eq!(ids.contains(&"finance"), cfg!(feature = "finance"));
        assert_eq!(ids.contains(&"healthcare"), cfg!(feature = "healthcare"));
        for id in ids {
            assert!(is_builtin_domain_name(id), "{id}");
        }
        assert!(!is_builtin_domain_name("logistics"));
    }

    #[test]
    fn every_builtin_domain_declares_the_generic_http_request_action() {
        let r = DomainRegistry::builtin().unwrap();
        for id in r.domains() {
            assert!(
                r.get(id.as_str())
                    .unwrap()
                    .config()
                    .action_type("axn_http_request")
                    .is_some(),
                "{id}"
            );
        }
    }

    #[test]
    fn unknown_actor_type_error_names_domain_and_type() {
        let r = DomainRegistry::builtin().unwrap();
        let err = r
            .check_types(&req("ai", "act_wizard:merlin", "axn_search", None))
            .unwrap_err();
        assert_eq!(
            err,
            DomainError::UnknownActorType {
                domain: "ai".into(),
                type_id: "act_wizard".into()
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("act_wizard") && msg.contains("ai"), "{msg}");
        let err = r
            .check_types(&req("ai", "act_ai_agent:x", "axn_fly", None))
            .unwrap_err();
        assert!(matches!(err, DomainError::UnknownActionType { .. }));
        let err = r
            .check_types(&req(
                "ai",
                "act_ai_agent:x",
                "axn_search",
                Some("res_moon:1"),
            ))
            .unwrap_err();
        assert!(matches!(err, DomainError::UnknownResourceType { .. }));
        let err = r
            .check_types(&req("nowhere", "act_ai_agent:x", "axn_search", None))
            .unwrap_err();
        assert!(matches!(err, DomainError::UnknownDomain { .. }));
    }

    #[test]
    fn legacy_ai_names_are_accepted_by_check_types_and_resolved() {
        let r = DomainRegistry::builtin().unwrap();
        let mut request = req("ai", "model", "search", Some("res_api:web"));
        r.check_types(&request).unwrap();
        let types = r.resolve_types(&request).unwrap();
        assert_eq!(types.actor.type_id, "act_ai_agent");
        assert_eq!(types.action.type_id, "axn_search");
        assert!(r.resolve_legacy(&mut request).unwrap());
        assert_eq!(request.actor.as_str(), "act_ai_agent:model");
        assert_eq!(request.action.as_str(), "axn_search:search");
        assert!(!r.resolve_legacy(&mut request).unwrap());
        r.check_types(&request).unwrap();
    }

    #[test]
    fn indexed_resolution_agrees_with_the_list_lookups_for_every_declared_alias_and_unknown_type() {
        let r = DomainRegistry::builtin().unwrap();
        let show = |t: Result<ResolvedTypes<'_>, DomainError>| match t {
            Ok(t) => format!(
                "{} {} {:?}",
                t.actor.type_id,
                t.action.type_id,
                t.resource.map(|r| &r.type_id)
            ),
            Err(e) => e.to_string(),
        };
        for domain in r.domains() {
            let plugin = r.get(domain.as_str()).unwrap();
            let config = plugin.config();
            let index = TypeIndex::of(config);
            let actors = config.actor_types.iter().map(|t| t.type_id.as_str());
            let actions: Vec<&str> = config
                .action_types
                .iter()
                .map(|t| t.type_id.as_str())
                .collect();
            let resources: Vec<Option<&str>> = config
                .resource_types
                .iter()
                .map(|t| Some(t.type_id.as_str()))
                .chain([None, Some("res_nope")])
                .collect();
            for actor in actors.chain(["model", "act_nope"]) {
                for action in actions.iter().copied().chain(["search", "axn_nope"]) {
                    for resource in &resources {
                        let request = req(
                            domain.as_str(),
                            &format!("{actor}:x"),
                            action,
                            resource.map(|r| format!("{r}:y")).as_deref(),
                        );
                        assert_eq!(
                            show(ResolvedTypes::of_indexed(plugin.as_ref(), &index, &request)),
                            show(ResolvedTypes::of(plugin.as_ref(), &request)),
                            "{domain} {actor} {action} {resource:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn legacy_names_are_not_accepted_outside_the_ai_domain() {
        let r = DomainRegistry::builtin().unwrap();
        let err = r
            .check_types(&req("general", "model", "axn_http_request", None))
            .unwrap_err();
        assert!(matches!(err, DomainError::UnknownActorType { .. }));
    }

    #[test]
    fn user_pack_registers_but_may_not_take_a_builtin_or_registered_name() {
        let mut r = DomainRegistry::builtin().unwrap();
        let yaml = r#"
domain: logistics
display_name: Logistics
actor_types: [{type_id: act_dispatcher, category: human, label: Dispatcher}]
action_types: [{type_id: axn_route_truck, category: execute, label: Route truck, risk_level: 2}]
resource_types: []
compliance_frameworks: [ISO_28000]
policy_templates:
  - name: big_loads_escalate
    rules: [{id: r1, effect: escalate, when: [{field: context.tons, op: gt, value: 40}]}]
"#;
        r.register_pack_yaml("logistics.yaml", yaml).unwrap();
        assert!(r.get("logistics").is_some());
        let err = r
            .register_pack_yaml("again.yaml", yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already taken"), "{err}");
        let energy = yaml.replace("domain: logistics", "domain: energy");
        let mut fresh = DomainRegistry::empty();
        let err = fresh
            .register_pack_yaml("energy.yaml", &energy)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already taken"), "{err}");
        let bad = yaml.replace("domain: logistics", "domain: Logistics");
        assert!(fresh.register_pack_yaml("bad.yaml", &bad).is_err());
    }
}
