//! Where the config lives.
//!
//! [`Store`] is a revisioned key-value store with etcd's semantics: every write gets a new,
//! store-wide revision; each entry remembers the revision that created it and the one that last
//! changed it; a watch delivers every change after a given revision, in order. Keys are relative to
//! the store's prefix (`routes/1`, `consumers/jack/credentials/c1`, `plugins`); values are JSON
//! text as APISIX stores it.
//!
//! Backends: [`embedded`] (redb in a data directory, the default), [`etcd`] (shared by several
//! nodes) and [`file`](mod@file) (APISIX's standalone `apisix.yaml`, read-only: the file as
//! [`declarative`] reads it, followed by polling its [`watch`] stamp). [`sync`] keeps an
//! in-memory copy of any of them up to date whatever the backend does (restarts, compaction,
//! outages, reloads): a full read, then a watch, and a full read again when the watch fails.

pub mod declarative;
pub mod embedded;
pub mod etcd;
pub mod file;
pub mod sync;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use model::{
    Consumer, ConsumerGroup, Credential, GlobalRule, PluginConfig, Route, Service, Ssl, Upstream,
};
use tokio::sync::mpsc;

pub use declarative::{FileError, Format, Loaded};

/// A whole set of valid resources, every item with its id set: what a standalone file holds, and
/// what the resources read from any store add up to (the input of a snapshot build).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSet {
    /// Valid routes.
    pub routes: Vec<Arc<Route>>,
    /// Valid services.
    pub services: Vec<Arc<Service>>,
    /// Valid upstreams.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Valid global rules.
    pub global_rules: Vec<Arc<GlobalRule>>,
    /// Valid plugin configs.
    pub plugin_configs: Vec<Arc<PluginConfig>>,
    /// Valid consumers.
    pub consumers: Vec<Arc<Consumer>>,
    /// Valid consumer groups.
    pub consumer_groups: Vec<Arc<ConsumerGroup>>,
    /// Valid credentials: (username, credential id, credential) (Admin API only).
    pub credentials: Vec<(String, String, Arc<Credential>)>,
    /// Valid SSL objects (certificates served by SNI or presented to upstreams).
    pub ssls: Vec<Arc<Ssl>>,
}

/// A store revision (etcd's: starts at 1, increases with every write, never reused).
pub type Revision = i64;

/// One key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, relative to the store's prefix (`routes/1`).
    pub key: String,
    /// The value: JSON text.
    pub value: Bytes,
    /// The revision that created the key (APISIX's `createdIndex`).
    pub create_revision: Revision,
    /// The revision of the last change (APISIX's `modifiedIndex`).
    pub mod_revision: Revision,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The key was created or replaced.
    Put(Entry),
    /// The key was deleted (by a request or because its TTL expired) at `revision`.
    Delete {
        /// The key.
        key: String,
        /// The revision of the deletion.
        revision: Revision,
    },
}

impl Event {
    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            Event::Put(e) => &e.key,
            Event::Delete { key, .. } => key,
        }
    }

    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put(e) => e.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }
}

/// The entries under a prefix, read at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Entries in key order.
    pub entries: Vec<Entry>,
    /// The store's revision when the read was made; a watch from `revision + 1` misses nothing.
    pub revision: Revision,
}

/// The result of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The entry as stored now.
    pub entry: Entry,
    /// The entry it replaced, if the key existed.
    pub previous: Option<Entry>,
}

/// A watch: batches of events in revision order. The channel closes, after an error item, when the
/// watch cannot go on (connection lost, history compacted); the reader then lists and watches again.
pub type WatchReceiver = mpsc::Receiver<Result<Vec<Event>, StoreError>>;

/// What can go wrong with a store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or failed (etcd down, disk error). Nothing was written.
    #[error("{0}")]
    Unavailable(String),
    /// A watch asked for revisions that are no longer kept.
    #[error("required revision {requested} has been compacted (oldest kept: {oldest})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        oldest: Revision,
    },
    /// The store does not accept writes (the standalone file).
    #[error("{0}")]
    ReadOnly(String),
}

/// A revisioned key-value store. Every method is atomic: it applies whole or not at all.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key prefix as APISIX shows it in Admin API responses (`/apisix`).
    fn prefix(&self) -> &str;

    /// One key.
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError>;

    /// Every key starting with `prefix` (`""` lists everything), in key order.
    async fn list(&self, prefix: &str) -> Result<Listing, StoreError>;

    /// Creates or replaces `key`. With a `ttl`, the key is deleted when it expires (a watch sees a
    /// delete); without, any earlier TTL of the key is dropped.
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Written, StoreError>;

    /// Replaces `key` only if its `mod_revision` is still `expected`; `Ok(None)` if it changed
    /// (or was deleted) since.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Revision,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Option<Written>, StoreError>;

    /// Deletes `key` and every key under `key/`; returns the entry of `key` itself, if it existed.
    async fn delete(&self, key: &str) -> Result<Option<Entry>, StoreError>;

    /// A new unique number for POST ids (APISIX writes `/gen_id` and uses the revision).
    async fn next_id(&self) -> Result<Revision, StoreError>;

    /// Watches every key from revision `from` on.
    ///
    /// # Errors
    /// [`StoreError::Compacted`] when `from` is older than the history kept, or unavailability.
    async fn watch(&self, from: Revision) -> Result<WatchReceiver, StoreError>;
}
