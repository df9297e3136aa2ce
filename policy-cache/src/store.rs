//! The [`PolicyStore`]: the current [`PolicySnapshot`] (domain plugins + compiled policies) behind
//! `arc-swap`. A snapshot is built and validated completely before it is published, and published in
//! one atomic step; readers take one lock-free load per request and never block, even while a new
//! snapshot is being built. Writers are serialised so versions strictly increase.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
use lexecon_config::PolicyDocument;
use lexecon_domains::DomainRegistry;

use crate::compile::CompiledPolicy;
use crate::error::PolicyError;

/// Everything a decision needs, immutable once published.
#[derive(Debug, Clone)]
pub struct PolicySnapshot {
    /// Assigned by [`PolicyStore`]: strictly increasing across swaps (0 before publication).
    pub version: u64,
    pub registry: DomainRegistry,
    /// Compiled policies by domain id (foldhash: looked up once per decision, by a short id).
    pub policies: HashMap<String, Arc<CompiledPolicy>, foldhash::fast::RandomState>,
}

impl PolicySnapshot {
    /// Compiles every document against its domain's plugin. Each domain may have one policy; a
    /// document whose domain has no plugin is an error. All errors are collected.
    pub fn build(registry: DomainRegistry, docs: Vec<PolicyDocument>) -> Result<Self, PolicyError> {
        let mut errors = Vec::new();
        let mut policies: HashMap<String, Arc<CompiledPolicy>, foldhash::fast::RandomState> =
            HashMap::default();
        for doc in &docs {
            let domain = doc.domain.as_str();
            let Some(plugin) = registry.get(domain) else {
                errors.push(PolicyError::NoPlugin {
                    policy: doc.id.clone(),
                    domain: domain.to_owned(),
                });
                continue;
            };
            if let Some(first) = policies.get(domain) {
                errors.push(PolicyError::DuplicatePolicy {
                    domain: domain.to_owned(),
                    first: first.id().to_owned(),
                    second: doc.id.clone(),
                });
                continue;
            }
            match CompiledPolicy::compile(doc, plugin.as_ref()) {
                Ok(p) => {
                    policies.insert(domain.to_owned(), Arc::new(p));
                }
                Err(PolicyError::Many(list)) => errors.extend(list),
                Err(e) => errors.push(e),
            }
        }
        match PolicyError::collect(errors) {
            Some(e) => Err(e),
            None => Ok(Self {
                version: 0,
                registry,
                policies,
            }),
        }
    }

    /// The compiled policy of `domain`.
    pub fn policy(&self, domain: &str) -> Option<&Arc<CompiledPolicy>> {
        self.policies.get(domain)
    }
}

/// The published snapshot. Share it as `Arc<PolicyStore>`.
#[derive(Debug)]
pub struct PolicyStore {
    current: ArcSwap<PolicySnapshot>,
    /// Serialises writers only; readers never touch it.
    writer: Mutex<()>,
}

impl PolicyStore {
    /// A store publishing `initial` as version 1.
    pub fn new(mut initial: PolicySnapshot) -> Self {
        initial.version = 1;
        Self {
            current: ArcSwap::from_pointee(initial),
            writer: Mutex::new(()),
        }
    }

    /// The current snapshot: lock-free, wait-free for readers. Hold the guard for one decision only.
    pub fn load(&self) -> Guard<Arc<PolicySnapshot>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc` (for holding longer than one decision).
    pub fn load_full(&self) -> Arc<PolicySnapshot> {
        self.current.load_full()
    }

    /// Publishes a fully built snapshot in one step and returns its version (previous + 1).
    pub fn replace(&self, mut next: PolicySnapshot) -> u64 {
        // A poisoned writer lock only means another writer panicked; the snapshot itself is intact.
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let version = self.current.load().version.saturating_add(1);
        next.version = version;
        self.current.store(Arc::new(next));
        version
    }

    /// Builds a snapshot from `registry` and `docs` and publishes it; on any error the current
    /// snapshot stays in place and every error is returned.
    pub fn rebuild(
        &self,
        registry: DomainRegistry,
        docs: Vec<PolicyDocument>,
    ) -> Result<u64, PolicyError> {
        let next = PolicySnapshot::build(registry, docs)?;
        Ok(self.replace(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{plugin, registry_with, yaml_policy};

    #[test]
    fn build_collects_errors_of_every_document() {
        let docs = vec![
            yaml_policy("id: a\ndomain: trading\nrules: [{id: r, effect: permit, actor: \"[\"}]\n"),
            yaml_policy("id: b\ndomain: trading\n"),
            yaml_policy("id: c\ndomain: nowhere\n"),
        ];
        let err = PolicySnapshot::build(registry_with(plugin()), docs).unwrap_err();
        let all = err.errors();
        assert_eq!(all.len(), 2, "{err}");
        assert!(matches!(all[0], PolicyError::InvalidRule { policy, .. } if policy == "a"));
        assert!(matches!(all[1], PolicyError::NoPlugin { domain, .. } if domain == "nowhere"));
    }

    #[test]
    fn one_policy_per_domain() {
        let docs = vec![
            yaml_policy("id: a\ndomain: trading\n"),
            yaml_policy("id: b\ndomain: trading\n"),
        ];
        let err = PolicySnapshot::build(registry_with(plugin()), docs).unwrap_err();
        assert!(
            matches!(&err, PolicyError::DuplicatePolicy { first, second, .. } if first == "a" && second == "b"),
            "{err}"
        );
    }

    #[test]
    fn replace_publishes_with_strictly_increasing_versions() {
        let registry = registry_with(plugin());
        let first = PolicySnapshot::build(
            registry.clone(),
            vec![yaml_policy("id: a\ndomain: trading\n")],
        )
        .unwrap();
        let store = PolicyStore::new(first);
        let held = store.load_full();
        assert_eq!(held.version, 1);
        let v2 = store
            .rebuild(
                registry.clone(),
                vec![yaml_policy("id: b\ndomain: trading\n")],
            )
            .unwrap();
        assert_eq!(v2, 2);
        let now = store.load();
        assert_eq!(now.version, 2);
        assert_eq!(now.policy("trading").unwrap().id(), "b");
        // A reader holding the old snapshot keeps a consistent view.
        assert_eq!(held.policy("trading").unwrap().id(), "a");
        assert_eq!(
            store.replace(PolicySnapshot::build(registry, vec![]).unwrap()),
            3
        );
    }

    #[test]
    fn rebuild_with_a_bad_policy_keeps_the_old_snapshot() {
        let registry = registry_with(plugin());
        let store = PolicyStore::new(
            PolicySnapshot::build(
                registry.clone(),
                vec![yaml_policy("id: good\ndomain: trading\n")],
            )
            .unwrap(),
        );
        let bad = yaml_policy("id: bad\ndomain: trading\nrules: [{id: r, effect: permit, when: [{field: context.x, op: matches, value: \"(\"}]}]\n");
        assert!(store.rebuild(registry, vec![bad]).is_err());
        let current = store.load();
        assert_eq!(current.version, 1);
        assert_eq!(current.policy("trading").unwrap().id(), "good");
    }
}

#[cfg(test)]
mod concurrency_tests {
    use super::*;
    use crate::testing::{plugin, registry_with, yaml_policy};
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn readers_see_whole_snapshots_with_non_decreasing_versions_during_swaps() {
        let registry = registry_with(plugin());
        let doc = |id: &str| yaml_policy(&format!("id: {id}\ndomain: trading\n"));
        let store = Arc::new(PolicyStore::new(
            PolicySnapshot::build(registry.clone(), vec![doc("v1")]).unwrap(),
        ));
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, done) = (Arc::clone(&store), Arc::clone(&done));
                std::thread::spawn(move || {
                    let mut last = 0;
                    let mut reads = 0u64;
                    while !done.load(Ordering::Relaxed) || reads == 0 {
                        let snap = store.load();
                        assert!(snap.version >= last, "version went back");
                        last = snap.version;
                        // The policy id is written with the version it was published under.
                        let id = snap.policy("trading").unwrap().id();
                        assert_eq!(id, format!("v{}", snap.version));
                        reads += 1;
                    }
                })
            })
            .collect();
        for v in 2..=50 {
            let next =
                PolicySnapshot::build(registry.clone(), vec![doc(&format!("v{v}"))]).unwrap();
            assert_eq!(store.replace(next), v);
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(store.load().version, 50);
    }
}
