//! The standalone file seen as a read-only store, so the Admin API can show what `apisix.yaml`
//! (or `apisix.json`) holds: every successful (re)load replaces the entries; an entry whose JSON
//! did not change keeps its revisions. Writes are refused with a message that says where the
//! config comes from.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::{ConfigSet, Entry, Listing, Revision, Store, StoreError, WatchReceiver, Written};

/// The loaded file's resources as store entries.
pub struct FileStore {
    why: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    revision: Revision,
}

impl FileStore {
    /// An empty store; `why` is the message for refused writes.
    pub fn new(why: String) -> FileStore {
        FileStore {
            why,
            state: Mutex::new(State::default()),
        }
    }

    /// Replaces the entries with the resources of a freshly loaded file.
    pub fn load(&self, config: &ConfigSet) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let revision = state.revision + 1;
        let mut entries = BTreeMap::new();
        let mut add = |kind: &str, id: Option<&model::Id>, json: String| {
            let Some(id) = id else { return };
            let key = format!("{kind}/{}", id.0);
            let value = Bytes::from(json);
            let entry = match state.entries.get(&key) {
                Some(old) if old.value == value => old.clone(),
                old => Entry {
                    key: key.clone(),
                    value,
                    create_revision: old.map_or(revision, |o| o.create_revision),
                    mod_revision: revision,
                },
            };
            entries.insert(key, entry);
        };
        for r in &config.routes {
            add("routes", r.id.as_ref(), to_json(&**r));
        }
        for s in &config.services {
            add("services", s.id.as_ref(), to_json(&**s));
        }
        for u in &config.upstreams {
            add("upstreams", u.id.as_ref(), to_json(&**u));
        }
        for g in &config.global_rules {
            add("global_rules", g.id.as_ref(), to_json(&**g));
        }
        for p in &config.plugin_configs {
            add("plugin_configs", p.id.as_ref(), to_json(&**p));
        }
        state.entries = entries;
        state.revision = revision;
    }

    fn refuse<T>(&self) -> Result<T, StoreError> {
        Err(StoreError::ReadOnly(self.why.clone()))
    }
}

fn to_json(item: &impl Serialize) -> String {
    serde_json::to_string(item).unwrap_or_default()
}

#[async_trait::async_trait]
impl Store for FileStore {
    fn prefix(&self) -> &str {
        "/apisix"
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(state.entries.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(Listing {
            entries: state
                .entries
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, e)| e.clone())
                .collect(),
            revision: state.revision,
        })
    }

    async fn put(&self, _: &str, _: Bytes, _: Option<Duration>) -> Result<Written, StoreError> {
        self.refuse()
    }

    async fn compare_and_swap(
        &self,
        _: &str,
        _: Revision,
        _: Bytes,
        _: Option<Duration>,
    ) -> Result<Option<Written>, StoreError> {
        self.refuse()
    }

    async fn delete(&self, _: &str) -> Result<Option<Entry>, StoreError> {
        self.refuse()
    }

    async fn next_id(&self) -> Result<Revision, StoreError> {
        self.refuse()
    }

    /// The file is followed by polling it, not through this store.
    async fn watch(&self, _: Revision) -> Result<WatchReceiver, StoreError> {
        self.refuse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{declarative, Format};

    #[tokio::test]
    async fn reloads_keep_revisions_of_unchanged_items() {
        let store = FileStore::new("read-only".into());
        let first = declarative::parse(
            "routes:\n  - {id: 1, uri: /a, upstream_id: u}\n  - {id: 2, uri: /b, upstream_id: u}\nupstreams:\n  - {id: u, nodes: {\"127.0.0.1:1\": 1}}\n#END\n",
            Format::Yaml,
            &model::NoPlugins,
        )
        .expect("parses");
        store.load(&first.config);
        let second = declarative::parse(
            "routes:\n  - {id: 1, uri: /a, upstream_id: u}\n  - {id: 2, uri: /c, upstream_id: u}\nupstreams:\n  - {id: u, nodes: {\"127.0.0.1:1\": 1}}\n#END\n",
            Format::Yaml,
            &model::NoPlugins,
        )
        .expect("parses");
        store.load(&second.config);
        let routes = store.list("routes/").await.expect("list");
        assert_eq!(routes.revision, 2);
        assert_eq!(
            routes.entries[0].mod_revision, 1,
            "unchanged route keeps its revision"
        );
        assert_eq!(routes.entries[1].mod_revision, 2);
        assert_eq!(routes.entries[1].create_revision, 1);
        assert!(store.get("upstreams/u").await.expect("get").is_some());
        assert!(matches!(
            store.put("routes/3", Bytes::new(), None).await,
            Err(StoreError::ReadOnly(m)) if m == "read-only"
        ));
    }
}
