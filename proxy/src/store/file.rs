//! The standalone file (`apisix.yaml` or `apisix.json`) as a read-only store, so the gateway
//! follows it as it follows the embedded store or etcd, and the Admin API shows what it holds.
//!
//! The file is read whole when the store opens, then polled (as APISIX does, every second by
//! default): when its modification time, size or inode change, it is read again. A file that
//! cannot be applied (unreadable, half-written, any invalid item) changes nothing: the store
//! keeps the last good file's entries and logs why. A good file replaces the entries at one new
//! revision, and every watch gets the changes as one batch (so the gateway never applies half a
//! file); an entry whose JSON did not change keeps its revisions and is not sent again. Writes
//! are refused with a message that says where the config comes from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use super::watch::{stamp, Stamp};
use super::{
    ConfigSet, Entry, Event, FileError, Listing, Revision, Store, StoreError, WatchReceiver,
    Written,
};

/// Reads and checks the whole file: its resources, or why it cannot be applied.
pub type Reader = Box<dyn Fn(&Path) -> Result<ConfigSet, FileError> + Send + Sync>;

/// How many batches a watcher may leave unread before it is dropped (it then reads again).
const WATCH_QUEUE: usize = 64;

/// The loaded file's resources as store entries.
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    interval: Duration,
    read: Reader,
    why: String,
    state: Mutex<State>,
    /// Held while the file is checked and read, so two watches never read it at once.
    reading: Mutex<()>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    revision: Revision,
    /// The file as last seen (read or not): a reload happens only when it changes.
    stamp: Option<Stamp>,
    /// The changes of the last revision, for a watch from it.
    last: Vec<Event>,
    watchers: Vec<mpsc::Sender<Result<Vec<Event>, StoreError>>>,
}

impl FileStore {
    /// Opens `path`: reads it with `read` (a missing file is an empty config, logged, until it
    /// appears); `interval` is how often a watch checks it; `why` is the message for refused
    /// writes.
    ///
    /// # Errors
    /// Why an existing file cannot be applied.
    pub fn open(
        path: &Path,
        interval: Duration,
        why: String,
        read: Reader,
    ) -> Result<FileStore, FileError> {
        // The stamp before the read: a change while reading is read again at the next check.
        let seen = stamp(path);
        let inner = Inner {
            path: path.to_owned(),
            interval,
            read,
            why,
            state: Mutex::new(State {
                stamp: seen,
                ..State::default()
            }),
            reading: Mutex::new(()),
        };
        if path.exists() {
            let config = (inner.read)(path)?;
            inner.replace(&config);
        } else {
            tracing::warn!(path = %path.display(), "declarative config file not found; serving no routes until it appears");
        }
        Ok(FileStore {
            inner: Arc::new(inner),
        })
    }

    fn refuse<T>(&self) -> Result<T, StoreError> {
        Err(StoreError::ReadOnly(self.inner.why.clone()))
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the file again if it changed since last seen; a file that cannot be applied
    /// changes nothing.
    fn check(&self) {
        let _reading = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        let now = stamp(&self.path);
        {
            let mut state = self.state();
            if state.stamp == now {
                return;
            }
            state.stamp = now;
        }
        match (self.read)(&self.path) {
            Ok(config) => {
                let revision = self.replace(&config);
                tracing::info!(path = %self.path.display(), revision, "config file reloaded");
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "config file not applied; the current config stays");
            }
        }
    }

    /// Replaces the entries with the resources of a good file and hands the changes to every
    /// watch; returns the store's revision.
    fn replace(&self, config: &ConfigSet) -> Revision {
        let mut state = self.state();
        let revision = state.revision + 1;
        let mut entries = BTreeMap::new();
        let mut events = Vec::new();
        for (key, json) in entries_of(config) {
            let value = Bytes::from(json);
            let entry = match state.entries.remove(&key) {
                Some(old) if old.value == value => old,
                old => {
                    let entry = Entry {
                        key: key.clone(),
                        value,
                        create_revision: old.map_or(revision, |o| o.create_revision),
                        mod_revision: revision,
                    };
                    events.push(Event::Put(entry.clone()));
                    entry
                }
            };
            entries.insert(key, entry);
        }
        // What is left of the old entries is gone from the file.
        let gone = std::mem::replace(&mut state.entries, entries);
        events.extend(gone.into_keys().map(|key| Event::Delete { key, revision }));
        if events.is_empty() {
            return state.revision;
        }
        state.revision = revision;
        state.watchers.retain(|tx| {
            // A watcher too far behind is dropped: its reader lists again.
            tx.try_send(Ok(events.clone())).is_ok()
        });
        state.last = events;
        revision
    }
}

fn id(id: &Option<model::Id>) -> Option<&str> {
    id.as_ref().map(|i| i.0.as_str())
}

/// Every resource of `config` by store key, as JSON.
fn entries_of(config: &ConfigSet) -> Vec<(String, String)> {
    fn add<T: Serialize>(
        out: &mut Vec<(String, String)>,
        kind: &str,
        items: &[Arc<T>],
        key: impl Fn(&T) -> Option<&str>,
    ) {
        for item in items {
            if let Some(id) = key(item) {
                let json = serde_json::to_string(&**item).unwrap_or_default();
                out.push((format!("{kind}/{id}"), json));
            }
        }
    }
    let mut out = Vec::new();
    add(&mut out, "routes", &config.routes, |r| id(&r.id));
    add(&mut out, "services", &config.services, |s| id(&s.id));
    add(&mut out, "upstreams", &config.upstreams, |u| id(&u.id));
    add(
        &mut out,
        "global_rules",
        &config.global_rules,
        |g| id(&g.id),
    );
    add(&mut out, "plugin_configs", &config.plugin_configs, |p| {
        id(&p.id)
    });
    add(&mut out, "consumer_groups", &config.consumer_groups, |g| {
        id(&g.id)
    });
    add(&mut out, "consumers", &config.consumers, |c| {
        Some(c.username.as_str())
    });
    add(&mut out, "ssls", &config.ssls, |s| id(&s.id));
    for (username, credential, item) in &config.credentials {
        let json = serde_json::to_string(&**item).unwrap_or_default();
        out.push((
            format!("consumers/{username}/credentials/{credential}"),
            json,
        ));
    }
    out
}

/// Checks the file every `interval` while the watch `tx` lives.
async fn poll(inner: Arc<Inner>, tx: mpsc::WeakSender<Result<Vec<Event>, StoreError>>) {
    let mut ticker = tokio::time::interval(inner.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if tx.upgrade().is_none_or(|tx| tx.is_closed()) {
            return;
        }
        let inner = inner.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || inner.check()).await {
            tracing::error!(error = %e, "config file check failed");
        }
    }
}

#[async_trait::async_trait]
impl Store for FileStore {
    fn prefix(&self) -> &str {
        "/apisix"
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self.inner.state().entries.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let state = self.inner.state();
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

    /// Only the last revision's changes are kept: a watch from an older one is refused (the
    /// reader lists again). The file is checked while the watch lives.
    async fn watch(&self, from: Revision) -> Result<WatchReceiver, StoreError> {
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        {
            let mut state = self.inner.state();
            if from < state.revision {
                return Err(StoreError::Compacted {
                    requested: from,
                    oldest: state.revision,
                });
            }
            if from == state.revision && !state.last.is_empty() {
                // A fresh channel has room for the first batch.
                let _ = tx.try_send(Ok(state.last.clone()));
            }
            state.watchers.push(tx.clone());
        }
        tokio::spawn(poll(self.inner.clone(), tx.downgrade()));
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::source::Resources;
    use crate::store::sync::Change;
    use crate::store::{declarative, Format};

    fn store_of(dir: &tempfile::TempDir, text: &str) -> FileStore {
        let path = dir.path().join("apisix.yaml");
        std::fs::write(&path, text).expect("write");
        FileStore::open(
            &path,
            Duration::from_millis(10),
            "read-only".into(),
            Box::new(|path: &Path| {
                declarative::read(path, &crate::gateway::plugin_registry(None, None, &[]))
                    .map(|l| l.config)
            }),
        )
        .expect("a good file")
    }

    const FIRST: &str = "routes:\n  - {id: 1, uri: /a, upstream_id: u}\n  - {id: 2, uri: /b, upstream_id: u}\nupstreams:\n  - {id: u, nodes: {\"127.0.0.1:1\": 1}}\n#END\n";

    /// Writes `text` over the store's file so that its stamp changes.
    fn rewrite(dir: &tempfile::TempDir, text: &str) {
        let path = dir.path().join("apisix.yaml");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
    }

    #[tokio::test]
    async fn a_changed_file_is_one_batch_and_unchanged_items_keep_their_revisions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_of(&dir, FIRST);
        let first = store.list("").await.expect("list");
        assert_eq!(first.revision, 1);
        let mut watch = store.watch(first.revision + 1).await.expect("watch");
        rewrite(
            &dir,
            "routes:\n  - {id: 1, uri: /a, upstream_id: u}\n  - {id: 3, uri: /c, upstream_id: u}\nupstreams:\n  - {id: u, nodes: {\"127.0.0.1:1\": 1}}\n#END\n",
        );
        let batch = tokio::time::timeout(Duration::from_secs(5), watch.recv())
            .await
            .expect("reloaded")
            .expect("open")
            .expect("changes");
        let keys: Vec<(&str, Revision)> = batch.iter().map(|e| (e.key(), e.revision())).collect();
        assert_eq!(keys, [("routes/3", 2), ("routes/2", 2)]);
        let routes = store.list("routes/").await.expect("list");
        assert_eq!(routes.revision, 2);
        assert_eq!(routes.entries[0].mod_revision, 1, "unchanged route");
        assert!(store.get("upstreams/u").await.expect("get").is_some());
        assert!(matches!(
            store.put("routes/3", Bytes::new(), None).await,
            Err(StoreError::ReadOnly(m)) if m == "read-only"
        ));
        // A watch from before the last revision lists again; from it, it gets its changes.
        assert!(matches!(
            store.watch(1).await,
            Err(StoreError::Compacted { .. })
        ));
        let mut late = store.watch(2).await.expect("watch");
        assert_eq!(late.recv().await.expect("open").expect("changes"), batch);
    }

    #[tokio::test]
    async fn a_bad_file_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_of(&dir, FIRST);
        let mut watch = store.watch(2).await.expect("watch");
        for bad in [
            "routes:\n  - {id: 1, uri: /x, upstream_id: u}\n",
            "routes:\n  - {id: 1, uri: /x, upstream_id: gone}\n#END\n",
        ] {
            rewrite(&dir, bad);
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(watch.try_recv().is_err(), "applied: {bad}");
        }
        std::fs::remove_file(dir.path().join("apisix.yaml")).expect("remove");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(watch.try_recv().is_err(), "a deleted file changes nothing");
        assert_eq!(store.list("").await.expect("list").entries.len(), 3);
    }

    /// What the gateway builds from the store is what the file holds, every kind included.
    #[tokio::test]
    async fn the_entries_read_back_as_the_files_resources() {
        let text = r#"
upstreams:
  - {id: u, nodes: {"127.0.0.1:1": 1}, type: chash, key: remote_addr}
services:
  - {id: s, upstream_id: u, plugins: {proxy-rewrite: {uri: /x}}}
plugin_configs:
  - {id: p, plugins: {response-rewrite: {body: hi}}}
global_rules:
  - {id: g, plugins: {cors: {}}}
consumer_groups:
  - {id: team, plugins: {limit-count: {count: 2, time_window: 60}}}
consumers:
  - {username: jack, group_id: team, plugins: {key-auth: {key: k1}}, labels: {custom_id: c}}
routes:
  - {id: 1, uris: [/a, /b], service_id: s, plugin_config_id: p, priority: 3, methods: [GET]}
  - {uri: /noid, upstream: {nodes: {"127.0.0.1:2": 1}}, plugins: {key-auth: {}}}
#END
"#;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_of(&dir, text);
        let registry = crate::gateway::plugin_registry(None, None, &[]);
        let file = declarative::parse(text, Format::Yaml, &registry).expect("a good file");
        let mut resources = Resources::new(registry);
        let listing = store.list("").await.expect("list");
        resources.apply(listing.entries.into_iter().map(Change::Put).collect());
        let read = resources.to_config_set();
        let mut expected = file.config;
        expected.routes.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(read, expected);
    }
}
