//! [`DomainRegistry`]: the set of domain plugins a snapshot decides with, by domain id.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::DomainError;
use crate::ident::DomainId;
use crate::plugin::DomainPlugin;
use crate::request::Request;

/// The plugins of one snapshot. Cheap to clone (plugins are shared).
#[derive(Debug, Clone, Default)]
pub struct DomainRegistry {
    plugins: BTreeMap<DomainId, Arc<dyn DomainPlugin>>,
}

impl DomainRegistry {
    pub fn empty() -> Self {
        Self::default()
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

    pub fn get(&self, domain: &str) -> Option<&Arc<dyn DomainPlugin>> {
        self.plugins
            .iter()
            .find(|(id, _)| id.as_str() == domain)
            .map(|(_, p)| p)
    }

    pub fn domains(&self) -> impl Iterator<Item = &DomainId> {
        self.plugins.keys()
    }

    /// Checks that the request's actor, action and resource types are declared by its domain.
    pub fn check_types(&self, request: &Request) -> Result<(), DomainError> {
        let plugin =
            self.get(request.domain.as_str())
                .ok_or_else(|| DomainError::UnknownDomain {
                    domain: request.domain.to_string(),
                })?;
        let config = plugin.config();
        let domain = request.domain.to_string();
        if config.actor_type(request.actor.type_id()).is_none() {
            return Err(DomainError::UnknownActorType {
                domain,
                type_id: request.actor.type_id().into(),
            });
        }
        if config.action_type(request.action.type_id()).is_none() {
            return Err(DomainError::UnknownActionType {
                domain,
                type_id: request.action.type_id().into(),
            });
        }
        if let Some(resource) = &request.resource {
            if config.resource_type(resource.type_id()).is_none() {
                return Err(DomainError::UnknownResourceType {
                    domain,
                    type_id: resource.type_id().into(),
                });
            }
        }
        Ok(())
    }
}
