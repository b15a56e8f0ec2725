//! The data plane's copy of a store: each entry parsed and validated once, when it changes.
//!
//! [`Resources`] follows a store (see [`crate::store::sync`]): a changed entry is parsed into its
//! model type and checked; an invalid one is dropped with a log naming its key (as APISIX drops
//! invalid items it syncs), so the rest of the config keeps serving. Keys the data plane does not
//! use yet are ignored.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::config::ConfigError;
use crate::store::sync::Change;
use crate::store::ConfigSet;
use model::PluginCatalog;
use model::{
    Checker, Consumer, ConsumerGroup, Credential, GlobalRule, Id, PluginConfig, Route, Service,
    Ssl, Upstream,
};
use plugin_api::metadata::MetadataSet;
use plugin_api::registry::Registry;

/// The typed resources the data plane uses, by id.
pub struct Resources {
    /// The plugins configs may use.
    plugins: Registry,
    routes: BTreeMap<String, Arc<Route>>,
    services: BTreeMap<String, Arc<Service>>,
    upstreams: BTreeMap<String, Arc<Upstream>>,
    global_rules: BTreeMap<String, Arc<GlobalRule>>,
    plugin_configs: BTreeMap<String, Arc<PluginConfig>>,
    consumers: BTreeMap<String, Arc<Consumer>>,
    consumer_groups: BTreeMap<String, Arc<ConsumerGroup>>,
    /// By `username/credentials/id`.
    credentials: BTreeMap<String, Arc<Credential>>,
    ssls: BTreeMap<String, Arc<Ssl>>,
    /// The checked plugin metadata of the plugins that read some.
    metadata: MetadataSet,
}

impl Resources {
    /// No resources yet; plugin configs are checked against `plugins`.
    pub fn new(plugins: Registry) -> Resources {
        Resources {
            plugins,
            routes: BTreeMap::new(),
            services: BTreeMap::new(),
            upstreams: BTreeMap::new(),
            global_rules: BTreeMap::new(),
            plugin_configs: BTreeMap::new(),
            consumers: BTreeMap::new(),
            consumer_groups: BTreeMap::new(),
            credentials: BTreeMap::new(),
            ssls: BTreeMap::new(),
            metadata: MetadataSet::default(),
        }
    }

    /// The checked plugin metadata (the same set until a plugin's metadata changes).
    pub fn metadata(&self) -> MetadataSet {
        self.metadata.clone()
    }

    /// Checks `plugin_metadata/<id>` with its plugin's kind; an invalid one is dropped with a
    /// log, as other invalid entries are. Returns whether the set changed.
    fn put_metadata(&mut self, id: &str, value: &[u8]) -> bool {
        let Some(kind) = self.plugins.kind(id) else {
            return false;
        };
        let checked = serde_json::from_slice::<serde_json::Value>(value)
            .map_err(|e| e.to_string())
            .and_then(|v| kind.check_metadata(&v));
        match checked {
            Ok(metadata) => self.metadata.set(id, metadata),
            Err(reason) => {
                tracing::error!(plugin = %id, %reason, "invalid plugin metadata from the store skipped");
                self.metadata.set(id, None)
            }
        }
    }

    /// Applies changes; returns whether anything the data plane uses changed.
    pub fn apply(&mut self, changes: Vec<Change>) -> bool {
        let mut changed = false;
        for change in changes {
            let Some((kind, id)) = change.key().split_once('/') else {
                continue;
            };
            let id = id.to_owned();
            changed |= match (kind, &change) {
                ("routes", Change::Put(e)) => upsert(
                    &self.plugins,
                    &mut self.routes,
                    id,
                    &e.value,
                    |r: &mut Route, id, c| {
                        r.id = Some(id);
                        r.validate(c);
                    },
                ),
                ("services", Change::Put(e)) => upsert(
                    &self.plugins,
                    &mut self.services,
                    id,
                    &e.value,
                    |s: &mut Service, id, c| {
                        s.id = Some(id);
                        s.validate(c);
                    },
                ),
                ("upstreams", Change::Put(e)) => upsert(
                    &self.plugins,
                    &mut self.upstreams,
                    id,
                    &e.value,
                    |u: &mut Upstream, id, c| {
                        u.id = Some(id);
                        u.validate(c);
                    },
                ),
                ("global_rules", Change::Put(e)) => upsert(
                    &self.plugins,
                    &mut self.global_rules,
                    id,
                    &e.value,
                    |g: &mut GlobalRule, id, c| {
                        g.id = Some(id);
                        g.validate(c);
                    },
                ),
                ("plugin_configs", Change::Put(e)) => upsert(
                    &self.plugins,
                    &mut self.plugin_configs,
                    id,
                    &e.value,
                    |p: &mut PluginConfig, id, c| {
                        p.id = Some(id);
                        p.validate(c);
                    },
                ),
                ("consumers", Change::Put(e)) if id.contains('/') => upsert(
                    &self.plugins,
                    &mut self.credentials,
                    id,
                    &e.value,
                    |c: &mut Credential, _, check| {
                        c.validate(check);
                    },
                ),
                ("consumers", Change::Put(e)) => upsert(
                    &self.plugins,
                    &mut self.consumers,
                    id,
                    &e.value,
                    |c: &mut Consumer, _, check| {
                        c.validate(check);
                    },
                ),
                ("consumer_groups", Change::Put(e)) => upsert(
                    &self.plugins,
                    &mut self.consumer_groups,
                    id,
                    &e.value,
                    |g: &mut ConsumerGroup, id, check| {
                        g.id = Some(id);
                        g.validate(check);
                    },
                ),
                ("ssls", Change::Put(e)) => upsert(
                    &self.plugins,
                    &mut self.ssls,
                    id,
                    &e.value,
                    |s: &mut Ssl, id, c| {
                        s.id = Some(id);
                        s.validate(c);
                    },
                ),
                ("plugin_metadata", Change::Put(e)) => self.put_metadata(&id, &e.value),
                ("plugin_metadata", Change::Delete(_)) => self.metadata.set(&id, None),
                ("ssls", Change::Delete(_)) => self.ssls.remove(&id).is_some(),
                ("consumers", Change::Delete(_)) if id.contains('/') => {
                    self.credentials.remove(&id).is_some()
                }
                ("consumers", Change::Delete(_)) => self.consumers.remove(&id).is_some(),
                ("consumer_groups", Change::Delete(_)) => {
                    self.consumer_groups.remove(&id).is_some()
                }
                ("global_rules", Change::Delete(_)) => self.global_rules.remove(&id).is_some(),
                ("plugin_configs", Change::Delete(_)) => self.plugin_configs.remove(&id).is_some(),
                ("routes", Change::Delete(_)) => self.routes.remove(&id).is_some(),
                ("services", Change::Delete(_)) => self.services.remove(&id).is_some(),
                ("upstreams", Change::Delete(_)) => self.upstreams.remove(&id).is_some(),
                _ => false,
            };
        }
        changed
    }

    /// The resources in the form the snapshot builder takes, in id order (the objects are
    /// shared, so unchanged ones are the same objects as in the last call).
    pub fn to_config_set(&self) -> ConfigSet {
        ConfigSet {
            routes: self.routes.values().cloned().collect(),
            services: self.services.values().cloned().collect(),
            upstreams: self.upstreams.values().cloned().collect(),
            global_rules: self.global_rules.values().cloned().collect(),
            plugin_configs: self.plugin_configs.values().cloned().collect(),
            consumers: self.consumers.values().cloned().collect(),
            consumer_groups: self.consumer_groups.values().cloned().collect(),
            credentials: self
                .credentials
                .iter()
                .filter_map(|(key, c)| {
                    let (user, id) = key.split_once("/credentials/")?;
                    Some((user.to_owned(), id.to_owned(), c.clone()))
                })
                .collect(),
            ssls: self.ssls.values().cloned().collect(),
        }
    }
}

/// Parses and checks one entry into `map`; an invalid entry removes the previous one (the store no
/// longer holds it). Returns whether the map changed.
fn upsert<T: DeserializeOwned>(
    plugins: &dyn PluginCatalog,
    map: &mut BTreeMap<String, Arc<T>>,
    id: String,
    value: &[u8],
    check: impl FnOnce(&mut T, Id, &mut Checker<'_>),
) -> bool {
    let mut problems: Vec<ConfigError> = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(value);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(mut item) => {
            check(
                &mut item,
                Id(id.clone()),
                &mut Checker::new("", &mut problems, plugins),
            );
            if problems.is_empty() {
                map.insert(id, Arc::new(item));
                return true;
            }
        }
        Err(e) => problems.push(ConfigError {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        }),
    }
    for p in &problems {
        tracing::error!(id = %id, item = %p.path, reason = %p.message, "invalid config item from the store skipped");
    }
    map.remove(&id).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Entry;
    use bytes::Bytes;

    fn put(key: &str, json: &str) -> Change {
        Change::Put(Entry {
            key: key.to_owned(),
            value: Bytes::copy_from_slice(json.as_bytes()),
            create_revision: 1,
            mod_revision: 1,
        })
    }

    #[test]
    fn valid_items_apply_and_invalid_ones_are_dropped() {
        let mut r = Resources::new(crate::gateway::plugin_registry(None, None, &[]));
        assert!(r.apply(vec![
            put("routes/1", r#"{"uri":"/a","upstream_id":"u"}"#),
            put("upstreams/u", r#"{"nodes":{"127.0.0.1:1980":1}}"#),
            put("consumers/jack", r#"{"username":"jack"}"#),
        ]));
        let d = r.to_config_set();
        assert_eq!(d.routes.len(), 1);
        assert_eq!(d.routes[0].id, Some(Id("1".into())));
        assert_eq!(d.upstreams.len(), 1);
        // A bad replacement removes the route rather than keeping a stale one.
        assert!(r.apply(vec![put("routes/1", r#"{"uri":"/a","upstrem":1}"#)]));
        assert!(r.to_config_set().routes.is_empty());
        assert_eq!(r.to_config_set().consumers.len(), 1);
        assert!(r.apply(vec![put(
            "consumers/jack/credentials/c",
            r#"{"plugins":{}}"#
        )]));
        let d = r.to_config_set();
        assert_eq!(d.credentials.len(), 1);
        assert_eq!(
            (d.credentials[0].0.as_str(), d.credentials[0].1.as_str()),
            ("jack", "c")
        );
        assert!(r.apply(vec![Change::Delete("consumers/jack".into())]));
        assert!(
            !r.apply(vec![Change::Delete("plugin_metadata/x".into())]),
            "no metadata to remove"
        );
        // Plugin metadata is checked by its kind; a plugin that reads none keeps none.
        assert!(r.apply(vec![put(
            "plugin_metadata/limit-count",
            r#"{"id":"limit-count","limit_header":"X-Quota"}"#
        )]));
        let before = r.metadata();
        assert!(!r.apply(vec![put("plugin_metadata/echo", r#"{"a":1}"#)]));
        assert!(!r.apply(vec![put("plugin_metadata/nope", r#"{"a":1}"#)]));
        assert!(r.metadata().same(&before));
        assert!(r.apply(vec![put(
            "plugin_metadata/limit-count",
            r#"{"limit_header":1}"#
        )]));
        assert!(!r.metadata().same(&before), "an invalid one is dropped");
        assert!(!r.apply(vec![Change::Delete("plugin_metadata/limit-count".into())]));
        assert!(r.apply(vec![Change::Delete("upstreams/u".into())]));
        assert!(r.to_config_set().upstreams.is_empty());
    }
}
