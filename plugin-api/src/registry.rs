//! The plugin kinds one gateway knows, by name: built from the built-in kinds, the gateway's own
//! and a user's, then narrowed to config.yaml's `plugins:` list. The Admin API validates against
//! it and lists it; the snapshot builder builds chains from it. A value, never a global: two
//! gateways with different plugin lists can run in one process.

use std::sync::Arc;

use serde_json::Value;

use crate::chain;
use crate::PluginKind;

/// The plugin kinds of one gateway.
#[derive(Clone, Default)]
pub struct Registry {
    /// Every kind known, enabled or not.
    known: Vec<Arc<dyn PluginKind>>,
    /// The enabled kinds, higher priority first (APISIX's order for `/plugins/list`).
    enabled: Vec<Arc<dyn PluginKind>>,
}

impl Registry {
    /// A registry of `kinds`, every one enabled.
    pub fn new(kinds: Vec<Arc<dyn PluginKind>>) -> Registry {
        let mut enabled = kinds.clone();
        enabled.sort_by(|a, b| b.priority().cmp(&a.priority()).then(a.name().cmp(b.name())));
        Registry {
            known: kinds,
            enabled,
        }
    }

    /// Enables only `names` (`None`: every kind). The others are unknown plugins: the Admin API
    /// refuses them, `/plugins/list` leaves them out, routes using them answer 503.
    #[must_use]
    pub fn enable_only(mut self, names: Option<&[String]>) -> Registry {
        if let Some(names) = names {
            self.enabled.retain(|k| names.iter().any(|n| n == k.name()));
        }
        self
    }

    /// Whether a kind is named `name` (enabled or not).
    pub fn exists(&self, name: &str) -> bool {
        self.known.iter().any(|k| k.name() == name)
    }

    /// The enabled kind named `name`.
    pub fn kind(&self, name: &str) -> Option<&Arc<dyn PluginKind>> {
        self.enabled.iter().find(|k| k.name() == name)
    }

    /// Every enabled kind, higher priority first.
    pub fn all(&self) -> &[Arc<dyn PluginKind>] {
        &self.enabled
    }

    /// Whether `name` is an enabled authentication plugin.
    pub fn is_auth(&self, name: &str) -> bool {
        self.kind(name).is_some_and(|k| k.is_auth())
    }
}

impl model::PluginCatalog for Registry {
    fn has(&self, name: &str) -> bool {
        self.kind(name).is_some()
    }

    fn check(&self, name: &str, conf: &Value) -> Result<(), String> {
        chain::check(self, name, conf)
    }

    fn check_consumer(&self, name: &str, conf: &Value) -> Option<Result<String, String>> {
        self.kind(name).and_then(|k| k.consumer_identity(conf))
    }

    fn check_metadata(&self, name: &str, metadata: &Value) -> Result<(), String> {
        match self.kind(name) {
            Some(kind) => kind.check_metadata(metadata).map(drop),
            None => Err("invalid plugin name".to_owned()),
        }
    }
}
