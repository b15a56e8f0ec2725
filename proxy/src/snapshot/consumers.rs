//! The consumers index of a snapshot: every consumer by username and by authentication
//! identity (plugin, identity), with each consumer's own plugin chain.

use std::collections::HashMap;
use std::sync::Arc;

use model::{Consumer, ConsumerGroup, Credential};
use plugin_api::chain::Chain;
use plugin_api::consumer::{Authenticated, ConsumerEntry, ConsumerIndex};
use plugin_api::registry::Registry;
use plugin_api::BuildContext;
use serde_json::{Map, Value};

/// Every consumer, by username and by authentication identity.
#[derive(Default)]
pub struct Consumers {
    by_name: HashMap<String, Arc<ConsumerEntry>>,
    by_identity: HashMap<(String, String), Arc<Authenticated>>,
}

impl Consumers {
    /// Indexes consumers, their credentials (`(username, credential id, credential)`) and groups.
    /// A consumer whose group is missing keeps its own plugins only (logged).
    pub fn build(
        consumers: &[Arc<Consumer>],
        credentials: &[(String, String, Arc<Credential>)],
        groups: &[Arc<ConsumerGroup>],
        registry: &Registry,
        base: &BuildContext,
    ) -> Consumers {
        let groups: HashMap<&str, &Arc<ConsumerGroup>> = groups
            .iter()
            .filter_map(|g| g.id.as_ref().map(|id| (id.0.as_str(), g)))
            .collect();
        let mut index = Consumers::default();
        for consumer in consumers {
            let group_id = consumer.group_id.as_ref().map(|g| g.0.clone());
            let group = group_id.as_deref().and_then(|g| groups.get(g));
            if let (Some(id), None) = (&group_id, group) {
                tracing::error!(consumer = %consumer.username, group = %id, "consumer group not found; its plugins are not applied");
            }
            let mut merged = Map::new();
            let layers = [group.map(|g| &g.plugins), consumer.plugins.as_ref()];
            for (name, conf) in layers.into_iter().flatten().flatten() {
                if !registry.is_auth(name) {
                    merged.insert(name.clone(), conf.clone());
                }
            }
            let entry = Arc::new(ConsumerEntry {
                username: consumer.username.clone(),
                group_id,
                custom_id: consumer
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("custom_id").cloned()),
                chain: Chain::build(
                    registry,
                    &merged,
                    &BuildContext {
                        owner: format!("consumer#{}", consumer.username),
                        ..base.clone()
                    },
                ),
            });
            for (name, conf) in consumer.plugins.iter().flatten() {
                index.add(registry, name, conf, &entry, None);
            }
            index.by_name.insert(consumer.username.clone(), entry);
        }
        for (username, id, credential) in credentials {
            let Some(entry) = index.by_name.get(username).cloned() else {
                continue;
            };
            for (name, conf) in credential.plugins.iter().flatten() {
                index.add(registry, name, conf, &entry, Some(id.clone()));
            }
        }
        index
    }

    fn add(
        &mut self,
        registry: &Registry,
        plugin: &str,
        conf: &Value,
        entry: &Arc<ConsumerEntry>,
        credential: Option<String>,
    ) {
        let Some(Ok(identity)) = registry
            .kind(plugin)
            .and_then(|k| k.consumer_identity(conf))
        else {
            return;
        };
        if has_secret_ref(conf) {
            // References are not resolved here; their text must never pass as the secret.
            tracing::error!(plugin, consumer = %entry.username, "a secret reference in an authentication config is not resolved; the config is not used");
            return;
        }
        let found = Arc::new(Authenticated {
            consumer: entry.clone(),
            credential_id: credential,
            conf: conf.clone(),
        });
        if self
            .by_identity
            .insert((plugin.to_owned(), identity), found)
            .is_some()
        {
            tracing::error!(plugin, consumer = %entry.username, "two consumers share one identity; the later one wins");
        }
    }
}

impl ConsumerIndex for Consumers {
    /// Who `identity` is for authentication plugin `plugin`.
    fn authenticate(&self, plugin: &str, identity: &str) -> Option<Arc<Authenticated>> {
        self.by_identity
            .get(&(plugin.to_owned(), identity.to_owned()))
            .cloned()
    }

    /// The consumer named `username` (the anonymous consumer of an auth plugin).
    fn named(&self, username: &str) -> Option<Arc<Authenticated>> {
        self.by_name.get(username).map(|c| {
            Arc::new(Authenticated {
                consumer: c.clone(),
                credential_id: None,
                conf: Value::Null,
            })
        })
    }
}

/// Whether a config holds a secret reference (`$env://...`, `$secret://...`) as a value.
fn has_secret_ref(conf: &Value) -> bool {
    conf.as_object().into_iter().flatten().any(|(_, v)| {
        v.as_str()
            .is_some_and(|s| s.starts_with("$env://") || s.starts_with("$secret://"))
    })
}
