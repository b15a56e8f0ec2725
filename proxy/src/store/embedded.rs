//! The embedded store: no external service, one redb database in the data directory.
//!
//! redb commits are durable and atomic (copy-on-write B-trees, fsync on commit), so a write that
//! returned is on disk and a `kill -9` at any moment leaves the last committed state. Each write
//! is one transaction that also advances the store revision kept in the same database, so
//! revisions survive restarts and never go back.
//!
//! Watches are served from memory: committed changes are kept in a bounded history and pushed to
//! every watcher. A watch from a revision older than that history (or a watcher too slow to keep
//! up) gets [`StoreError::Compacted`] and re-reads, as it would with etcd. TTLs are kept with the
//! entry and enforced by a sweeper that deletes expired keys (about every 100 ms).

use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::mpsc;

use super::{Entry, Event, Listing, Revision, Store, StoreError, WatchReceiver, Written};

/// Key -> record (see [`Record`]).
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// `revision` -> the store revision.
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

/// Events kept for watches that start slightly in the past (a list followed by a watch).
const HISTORY: usize = 4096;
/// Batches a watcher may have queued before it is dropped as too slow.
const WATCH_QUEUE: usize = 256;
/// How often expired keys are looked for.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// The embedded store. Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// Serialises writes with the publication of their events, so watchers see revision order.
    state: Mutex<State>,
}

struct State {
    revision: Revision,
    /// Events with revisions `>= history_start`, in order.
    history: VecDeque<Event>,
    history_start: Revision,
    /// The earliest expiry of any key (unix ms), 0 when no key has a TTL.
    next_expiry: u64,
    watchers: Vec<mpsc::Sender<Result<Vec<Event>, StoreError>>>,
}

/// A stored value with its revisions and expiry: 8 bytes create revision, 8 bytes mod revision,
/// 8 bytes expiry (unix milliseconds, 0 = none), all little-endian, then the value.
struct Record<'a> {
    create_revision: Revision,
    mod_revision: Revision,
    expires_ms: u64,
    value: &'a [u8],
}

const HEADER: usize = 24;

impl<'a> Record<'a> {
    fn decode(bytes: &'a [u8]) -> Option<Record<'a>> {
        let (header, value) = bytes.split_at_checked(HEADER)?;
        let word = |i: usize| -> Option<[u8; 8]> { header.get(i * 8..i * 8 + 8)?.try_into().ok() };
        Some(Record {
            create_revision: i64::from_le_bytes(word(0)?),
            mod_revision: i64::from_le_bytes(word(1)?),
            expires_ms: u64::from_le_bytes(word(2)?),
            value,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.value.len());
        out.extend_from_slice(&self.create_revision.to_le_bytes());
        out.extend_from_slice(&self.mod_revision.to_le_bytes());
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        out.extend_from_slice(self.value);
        out
    }

    fn entry(&self, key: &str) -> Entry {
        Entry {
            key: key.to_owned(),
            value: Bytes::copy_from_slice(self.value),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        }
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {what}: {e}"))
}

/// The earlier of two expiries, where 0 means none.
fn earliest(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`: see `data_dir` for the directory and
    /// `open_database` for the file. Starts the TTL sweeper, which ends when the last clone of
    /// the store is dropped.
    ///
    /// # Errors
    /// The directory is not private, the store file is damaged (empty, truncated, corrupted), or
    /// the database cannot be created or opened (another process holding it among the reasons).
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        data_dir(dir)?;
        let path = dir.join(STORE_FILE);
        let db = open_database(&path)?;
        let txn = db.begin_write().map_err(|e| unavailable("open", e))?;
        let (revision, next_expiry) = {
            let kv = txn.open_table(KV).map_err(|e| unavailable("open", e))?;
            let mut next_expiry = 0;
            for item in kv.iter().map_err(|e| unavailable("open", e))? {
                let (_, v) = item.map_err(|e| unavailable("open", e))?;
                if let Some(r) = Record::decode(v.value()) {
                    next_expiry = earliest(next_expiry, r.expires_ms);
                }
            }
            let meta = txn.open_table(META).map_err(|e| unavailable("open", e))?;
            let revision = meta
                .get("revision")
                .map_err(|e| unavailable("open", e))?
                .map_or(1, |v| v.value());
            (revision, next_expiry)
        };
        txn.commit().map_err(|e| unavailable("open", e))?;
        let store = EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                state: Mutex::new(State {
                    revision,
                    history: VecDeque::new(),
                    history_start: revision + 1,
                    next_expiry,
                    watchers: Vec::new(),
                }),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&store.inner)));
        }
        Ok(store)
    }

    /// Runs `f` on a blocking thread (redb calls block on disk).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| unavailable("task failed", e))?
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed: the database is
        // the truth and the state is only updated after a commit.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| unavailable("read", e))?;
        let table = txn.open_table(KV).map_err(|e| unavailable("read", e))?;
        let Some(raw) = table.get(key).map_err(|e| unavailable("read", e))? else {
            return Ok(None);
        };
        let bytes = raw.value();
        Ok(Record::decode(bytes).map(|r| r.entry(key)))
    }

    /// One write transaction: `change` gets the KV table and the new revision and returns the
    /// events it made (none = nothing changed, the revision is not used). Commits, then publishes.
    fn write<T>(
        &self,
        change: impl FnOnce(
            &mut redb::Table<'_, &str, &[u8]>,
            Revision,
        ) -> Result<(T, Vec<Event>), StoreError>,
    ) -> Result<T, StoreError> {
        let mut state = self.lock();
        let revision = state.revision + 1;
        let txn = self.db.begin_write().map_err(|e| unavailable("write", e))?;
        let (out, events) = {
            let mut table = txn.open_table(KV).map_err(|e| unavailable("write", e))?;
            change(&mut table, revision)?
        };
        if events.is_empty() {
            txn.abort().map_err(|e| unavailable("write", e))?;
            return Ok(out);
        }
        {
            let mut meta = txn.open_table(META).map_err(|e| unavailable("write", e))?;
            meta.insert("revision", revision)
                .map_err(|e| unavailable("write", e))?;
        }
        txn.commit().map_err(|e| unavailable("commit", e))?;
        state.revision = revision;
        publish(&mut state, events);
        Ok(out)
    }

    fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        expected: Option<Revision>,
    ) -> Result<Option<Written>, StoreError> {
        let expires_ms = ttl.map_or(0, |t| {
            now_ms().saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
        });
        let written = self.write(|table, revision| {
            let previous = table
                .get(key)
                .map_err(|e| unavailable("write", e))?
                .and_then(|raw| Record::decode(raw.value()).map(|r| r.entry(key)));
            if let Some(expected) = expected {
                if previous.as_ref().map(|p| p.mod_revision) != Some(expected) {
                    return Ok((None, Vec::new()));
                }
            }
            let record = Record {
                create_revision: previous.as_ref().map_or(revision, |p| p.create_revision),
                mod_revision: revision,
                expires_ms,
                value,
            };
            table
                .insert(key, record.encode().as_slice())
                .map_err(|e| unavailable("write", e))?;
            let entry = record.entry(key);
            Ok((
                Some(Written {
                    entry: entry.clone(),
                    previous,
                }),
                vec![Event::Put(entry)],
            ))
        })?;
        if written.is_some() && expires_ms != 0 {
            let mut state = self.lock();
            state.next_expiry = earliest(state.next_expiry, expires_ms);
        }
        Ok(written)
    }

    /// Deletes `key` and keys under `key/`.
    fn delete(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.write(|table, revision| {
            let own = table
                .remove(key)
                .map_err(|e| unavailable("delete", e))?
                .and_then(|raw| Record::decode(raw.value()).map(|r| r.entry(key)));
            let mut events = Vec::new();
            if own.is_some() {
                events.push(Event::Delete {
                    key: key.to_owned(),
                    revision,
                });
            }
            let children = format!("{key}/");
            let removed = table
                .extract_from_if(children.as_str().., |k, _| k.starts_with(&children))
                .map_err(|e| unavailable("delete", e))?;
            for item in removed {
                let (k, _) = item.map_err(|e| unavailable("delete", e))?;
                let k = k.value();
                if !k.starts_with(&children) {
                    break;
                }
                events.push(Event::Delete {
                    key: k.to_owned(),
                    revision,
                });
            }
            Ok((own, events))
        })
    }

    /// Deletes the keys whose TTL has passed, if any may have.
    fn sweep(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let due = self.lock().next_expiry;
        if due == 0 || due > now {
            return Ok(());
        }
        let mut next = 0;
        self.write(|table, revision| {
            let removed = table
                .extract_if(|_, v| match Record::decode(v) {
                    Some(r) if r.expires_ms != 0 && r.expires_ms <= now => true,
                    Some(r) => {
                        next = earliest(next, r.expires_ms);
                        false
                    }
                    None => false,
                })
                .map_err(|e| unavailable("expire", e))?;
            let mut events = Vec::new();
            for item in removed {
                let (k, _) = item.map_err(|e| unavailable("expire", e))?;
                events.push(Event::Delete {
                    key: k.value().to_owned(),
                    revision,
                });
            }
            Ok(((), events))
        })?;
        // A key given a TTL meanwhile lowered next_expiry; keep the earlier of the two.
        let mut state = self.lock();
        state.next_expiry = if state.next_expiry == due {
            next
        } else {
            earliest(next, state.next_expiry)
        };
        Ok(())
    }
}

/// Appends committed events to the history and sends them to every watcher; watchers that are
/// gone or too slow are dropped (a slow one is told, and re-reads).
fn publish(state: &mut State, events: Vec<Event>) {
    for e in &events {
        state.history.push_back(e.clone());
    }
    while state.history.len() > HISTORY {
        state.history.pop_front();
        state.history_start = state
            .history
            .front()
            .map_or(state.revision + 1, Event::revision);
    }
    let oldest = state.history_start;
    state
        .watchers
        .retain(|w| match w.try_send(Ok(events.clone())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The queue is full: the watcher cannot get this error either; dropping the sender
                // closes its channel, which it treats as a broken watch and re-reads.
                tracing::warn!(
                    oldest,
                    "embedded store: a watcher fell behind and was dropped"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
}

/// Opens the database file. The lock of a store just dropped in this process can outlive it by a
/// moment (a blocking task finishing), so "already open" is retried for up to a second; another
/// process holding the store is refused after that.
/// Creates `dir` with mode 0700 when it is missing. An existing directory is used as it is (its
/// mode is never changed: it may be shared, like `/tmp`) if it is a directory owned by the
/// gateway's user (or root) that no other user can write to; otherwise the start is refused, as
/// another user could replace or plant the store file there. The store and key files are created
/// mode 0600, so a readable directory (0755) does not show their contents.
fn data_dir(dir: &Path) -> Result<(), StoreError> {
    let fail = |what: String| {
        StoreError::Unavailable(format!(
            "embedded store: data directory {}: {what}",
            dir.display()
        ))
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail(format!("cannot create: {e}")))?;
    }
    let meta = fs::metadata(dir).map_err(|e| fail(e.to_string()))?;
    if !meta.is_dir() {
        return Err(fail("not a directory".into()));
    }
    let uid = rustix::process::getuid().as_raw();
    let mode = meta.mode() & 0o7777;
    let fix = "point deployment.embedded.data_dir at a directory only the gateway's user can \
               write to (or remove it and the gateway creates it with mode 0700)";
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(fail(format!(
            "owned by uid {}, not the gateway's uid {uid}: {fix}",
            meta.uid()
        )));
    }
    if mode & 0o022 != 0 {
        return Err(fail(format!(
            "mode {mode:o} lets other users write to it: {fix}"
        )));
    }
    Ok(())
}

/// The store's file name in the data directory.
const STORE_FILE: &str = "store.redb";

/// Opens the store file, creating a fresh database when there is no file at all. A file that is
/// there but empty, truncated or corrupted is refused with an error naming it: opening it as a
/// fresh store would silently drop every route (and overwrite what a backup could restore).
/// Every open verifies the checksums of the whole committed state, so a damaged file fails here
/// rather than panicking later.
fn open_database(path: &Path) -> Result<Database, StoreError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_database(path)?,
            Err(e) => return Err(damaged(path, &format!("cannot inspect it: {e}"))),
            Ok(meta) if !meta.is_file() => {
                return Err(damaged(path, "not a regular file (symlinks are refused)"))
            }
            Ok(meta) if meta.len() == 0 => {
                return Err(damaged(path, "the file is empty (0 bytes), not a store"))
            }
            Ok(_) => {}
        }
        let mut builder = redb::Builder::new();
        builder.set_check_integrity_on_open(true);
        match builder.open(path) {
            Ok(db) => return Ok(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen)
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e @ redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(unavailable(
                    &format!(
                        "cannot open {} (is another gateway using it?)",
                        path.display()
                    ),
                    e,
                ))
            }
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                if e.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                return Err(unavailable(&format!("cannot open {}", path.display()), e))
            }
            Err(e) => return Err(damaged(path, &e.to_string())),
        }
    }
}

/// The error for a store file that is there but cannot be used: nothing is overwritten.
fn damaged(path: &Path, what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "embedded store file {p} is damaged ({what}); the gateway does not start with it and \
         leaves it unchanged. Restore {p} from a backup, or move it away to start with an empty \
         store (seeded from apisix.yaml) and re-create the config",
        p = path.display()
    ))
}

/// Makes a fresh database at `path` (mode 0600): initialised under a temporary name, then linked
/// into place, so a crash mid-creation never leaves an empty `store.redb` (which the next start
/// would refuse as damaged). When another process linked its own first, that one is kept.
fn create_database(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail =
        |e: &dyn std::fmt::Display| unavailable(&format!("cannot create {}", path.display()), e);
    let tmp = path.with_extension("redb.init");
    // A leftover from a creation that crashed: it never became the store.
    if let Err(e) = fs::remove_file(&tmp) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(fail(&e));
        }
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail(&e))?;
    let backend = redb::backends::FileBackend::new(file).map_err(|e| fail(&e))?;
    let db = redb::Builder::new()
        .create_with_backend(backend)
        .map_err(|e| fail(&e))?;
    drop(db);
    let linked = fs::hard_link(&tmp, path);
    let removed = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(&e)),
    }
    removed.map_err(|e| fail(&e))?;
    // The new directory entries survive a power cut.
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail(&e))?;
    }
    Ok(())
}

async fn sweep(inner: Weak<Inner>) {
    let mut ticker = tokio::time::interval(SWEEP_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        // Most ticks have nothing to expire: decide that here, without a blocking task.
        let due = inner.lock().next_expiry;
        if due == 0 || due > now_ms() {
            continue;
        }
        let result = tokio::task::spawn_blocking(move || inner.sweep()).await;
        if let Ok(Err(e)) = result {
            tracing::error!(error = %e, "embedded store: expiring keys failed");
        }
    }
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    fn prefix(&self) -> &str {
        "/apisix"
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let key = key.to_owned();
        self.blocking(move |inner| inner.read(&key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let prefix = prefix.to_owned();
        self.blocking(move |inner| {
            // The revision is read under the write lock so no commit falls between it and the
            // read transaction.
            let (revision, txn) = {
                let state = inner.lock();
                let txn = inner.db.begin_read().map_err(|e| unavailable("list", e))?;
                (state.revision, txn)
            };
            let table = txn.open_table(KV).map_err(|e| unavailable("list", e))?;
            let mut entries = Vec::new();
            for item in table
                .range(prefix.as_str()..)
                .map_err(|e| unavailable("list", e))?
            {
                let (k, v) = item.map_err(|e| unavailable("list", e))?;
                let key = k.value();
                if !key.starts_with(&prefix) {
                    break;
                }
                if let Some(r) = Record::decode(v.value()) {
                    entries.push(r.entry(key));
                }
            }
            Ok(Listing { entries, revision })
        })
        .await
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Written, StoreError> {
        let key = key.to_owned();
        self.blocking(move |inner| {
            inner
                .put(&key, &value, ttl, None)?
                .ok_or_else(|| unavailable("write", "nothing written"))
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Revision,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Option<Written>, StoreError> {
        let key = key.to_owned();
        self.blocking(move |inner| inner.put(&key, &value, ttl, Some(expected)))
            .await
    }

    async fn delete(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let key = key.to_owned();
        self.blocking(move |inner| inner.delete(&key)).await
    }

    async fn next_id(&self) -> Result<Revision, StoreError> {
        self.blocking(|inner| {
            let mut state = inner.lock();
            let revision = state.revision + 1;
            let txn = inner
                .db
                .begin_write()
                .map_err(|e| unavailable("write", e))?;
            {
                let mut meta = txn.open_table(META).map_err(|e| unavailable("write", e))?;
                meta.insert("revision", revision)
                    .map_err(|e| unavailable("write", e))?;
            }
            txn.commit().map_err(|e| unavailable("commit", e))?;
            state.revision = revision;
            Ok(revision)
        })
        .await
    }

    async fn watch(&self, from: Revision) -> Result<WatchReceiver, StoreError> {
        let mut state = self.inner.lock();
        if from < state.history_start && from <= state.revision {
            return Err(StoreError::Compacted {
                requested: from,
                oldest: state.history_start,
            });
        }
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let backlog: Vec<Event> = state
            .history
            .iter()
            .filter(|e| e.revision() >= from)
            .cloned()
            .collect();
        if !backlog.is_empty() && tx.try_send(Ok(backlog)).is_err() {
            return Err(unavailable("watch", "cannot queue the backlog"));
        }
        state.watchers.push(tx);
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test]
    async fn revisions_survive_restart_and_writes_are_visible() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let store = EmbeddedStore::open(&dir).expect("open");
        let a = store.put("routes/1", value("{}"), None).await.expect("put");
        assert!(a.previous.is_none());
        let b = store
            .put("routes/1", value("{\"a\":1}"), None)
            .await
            .expect("put");
        assert_eq!(
            b.previous.as_ref().map(|p| p.mod_revision),
            Some(a.entry.mod_revision)
        );
        assert_eq!(b.entry.create_revision, a.entry.create_revision);
        assert_eq!(b.entry.mod_revision, a.entry.mod_revision + 1);
        let id = store.next_id().await.expect("id");
        assert!(id > b.entry.mod_revision);
        drop(store);
        let store = EmbeddedStore::open(&dir).expect("reopen");
        let got = store.get("routes/1").await.expect("get").expect("present");
        assert_eq!(got, b.entry);
        let c = store.put("routes/2", value("{}"), None).await.expect("put");
        assert!(c.entry.mod_revision > id, "revisions never go back");
        let mode = |p: &Path| fs::metadata(p).expect("meta").mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "a missing data dir is created private");
        assert_eq!(mode(&dir.join(STORE_FILE)), 0o600);
        assert!(!dir.join("store.redb.init").exists());
    }

    #[tokio::test]
    async fn an_existing_data_dir_keeps_its_mode_and_a_writable_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        for (mode, works) in [
            (0o755, true),
            (0o750, true),
            (0o1777, false),
            (0o775, false),
        ] {
            let dir = tmp.path().join(format!("d{mode:o}"));
            fs::create_dir(&dir).expect("mkdir");
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).expect("chmod");
            let opened = EmbeddedStore::open(&dir);
            assert_eq!(opened.is_ok(), works, "mode {mode:o}");
            if let Err(e) = opened {
                let e = e.to_string();
                assert!(
                    e.contains(&dir.display().to_string()) && e.contains("other users"),
                    "{e}"
                );
            }
            let after = fs::metadata(&dir).expect("meta").mode() & 0o7777;
            assert_eq!(
                after, mode,
                "the mode of an existing directory is never changed"
            );
        }
    }

    /// A store with a few committed writes, closed; returns its file's bytes.
    async fn written_store(dir: &Path) -> Vec<u8> {
        let store = EmbeddedStore::open(dir).expect("open");
        for i in 0..20 {
            store
                .put(&format!("routes/{i}"), value(&"x".repeat(300)), None)
                .await
                .expect("put");
        }
        drop(store);
        fs::read(dir.join(STORE_FILE)).expect("read")
    }

    /// Opens `dir`, failing the test on a panic; the error as text.
    fn open_damaged(dir: &Path, what: &str) -> Result<EmbeddedStore, String> {
        std::panic::catch_unwind(|| EmbeddedStore::open(dir))
            .unwrap_or_else(|_| panic!("{what}: opening panicked"))
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn damaged_store_files_are_refused_named_and_left_unchanged() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let good = written_store(&dir).await;
        let path = dir.join(STORE_FILE);
        let mut damaged: Vec<(String, Vec<u8>)> = vec![("empty".into(), Vec::new())];
        for cut in [1, 64, 512, 4096, good.len() / 2, good.len() - 1] {
            damaged.push((format!("truncated at {cut}"), good[..cut].to_vec()));
        }
        // A whole file of deterministic noise.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut noise = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        damaged.push((
            "random bytes".into(),
            (0..good.len()).map(|_| noise().to_le_bytes()[0]).collect(),
        ));
        for (what, bytes) in damaged {
            fs::write(&path, &bytes).expect("write");
            let Err(e) = open_damaged(&dir, &what) else {
                panic!("{what}: a damaged store file opened");
            };
            assert!(
                e.contains(&path.display().to_string())
                    && e.contains("damaged")
                    && e.contains("backup"),
                "{what}: {e}"
            );
            assert_eq!(
                fs::read(&path).expect("read"),
                bytes,
                "{what}: file changed"
            );
        }
        // A flipped byte is refused the same way, unless it falls where redb keeps nothing of
        // the committed state (padding, free pages, the slot of the previous commit): then the
        // store opens with every write intact. Never a panic, never a silently partial store.
        let mut refused = 0;
        for at in (0..good.len()).step_by(509) {
            let mut bytes = good.clone();
            bytes[at] ^= 0xff;
            fs::write(&path, &bytes).expect("write");
            let what = format!("byte {at} flipped");
            match open_damaged(&dir, &what) {
                Err(e) => {
                    assert!(e.contains("damaged"), "{what}: {e}");
                    refused += 1;
                }
                Ok(store) => {
                    let listing = store.list("routes/").await.expect("list");
                    assert_eq!(listing.entries.len(), 20, "{what}");
                }
            }
        }
        assert!(refused > 0, "no flipped byte was detected");
        // The intact file still opens with every write.
        fs::write(&path, &good).expect("write");
        let store = EmbeddedStore::open(&dir).expect("intact file opens");
        assert_eq!(store.list("routes/").await.expect("list").entries.len(), 20);
    }

    #[tokio::test]
    async fn list_delete_children_and_cas() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        for key in [
            "consumers/jack",
            "consumers/jack/credentials/a",
            "consumers/jackie",
            "routes/1",
        ] {
            store.put(key, value("{}"), None).await.expect("put");
        }
        let all = store.list("consumers/").await.expect("list");
        let keys: Vec<_> = all.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "consumers/jack",
                "consumers/jack/credentials/a",
                "consumers/jackie"
            ]
        );
        let mut watch = store.watch(all.revision + 1).await.expect("watch");
        let gone = store.delete("consumers/jack").await.expect("delete");
        assert_eq!(gone.map(|e| e.key), Some("consumers/jack".to_owned()));
        let events = watch.recv().await.expect("event").expect("ok");
        let keys: Vec<_> = events.iter().map(Event::key).collect();
        assert_eq!(keys, ["consumers/jack", "consumers/jack/credentials/a"]);
        assert!(store
            .delete("consumers/nobody")
            .await
            .expect("delete")
            .is_none());
        let left = store.list("").await.expect("list");
        assert_eq!(left.entries.len(), 2);

        let route = store.get("routes/1").await.expect("get").expect("present");
        let stale = route.mod_revision;
        let swapped = store
            .compare_and_swap("routes/1", stale, value("{\"x\":1}"), None)
            .await
            .expect("cas");
        assert!(swapped.is_some());
        let lost = store
            .compare_and_swap("routes/1", stale, value("{\"x\":2}"), None)
            .await
            .expect("cas");
        assert!(lost.is_none());
        assert_eq!(
            store
                .get("routes/1")
                .await
                .expect("get")
                .expect("present")
                .value,
            value("{\"x\":1}")
        );
    }

    #[tokio::test]
    async fn ttl_expiry_deletes_and_notifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let w = store
            .put("routes/t", value("{}"), Some(Duration::from_millis(200)))
            .await
            .expect("put");
        let mut watch = store.watch(w.entry.mod_revision + 1).await.expect("watch");
        let events = tokio::time::timeout(Duration::from_secs(3), watch.recv())
            .await
            .expect("expired in time")
            .expect("open")
            .expect("ok");
        assert!(matches!(&events[0], Event::Delete { key, .. } if key == "routes/t"));
        assert!(store.get("routes/t").await.expect("get").is_none());
    }

    #[tokio::test]
    async fn watch_before_history_is_compacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        store.put("routes/1", value("{}"), None).await.expect("put");
        drop(store);
        let store = EmbeddedStore::open(dir.path()).expect("reopen");
        assert!(matches!(
            store.watch(1).await,
            Err(StoreError::Compacted { .. })
        ));
        let listing = store.list("").await.expect("list");
        assert!(store.watch(listing.revision + 1).await.is_ok());
    }
}
