//! Following a store: an in-memory view that stays up to date through restarts, compaction and
//! outages of the backend.
//!
//! [`follow`] reads everything, hands the entries over, then watches from the read's revision + 1
//! and hands over every change. When the watch breaks (backend down, history compacted) it reads
//! everything again and hands over only the differences with what it handed over before, so the
//! consumer never sees a gap or a spurious change. Failed reads are retried with backoff (100 ms
//! doubling to 5 s); meanwhile the consumer keeps what it has, so the data plane serves on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Entry, Event, Listing, Revision, Store, StoreError};

/// A change handed to the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Created or replaced.
    Put(Entry),
    /// Deleted.
    Delete(String),
}

impl Change {
    /// The key changed.
    pub fn key(&self) -> &str {
        match self {
            Change::Put(e) => &e.key,
            Change::Delete(k) => k,
        }
    }
}

/// What [`follow`] feeds.
pub trait Follower: Send + 'static {
    /// Applies a batch of changes (in revision order) seen at `revision`. The first call after
    /// start carries every entry.
    fn apply(&mut self, changes: Vec<Change>, revision: Revision);
}

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Follows `store` forever (cancel by dropping the task). `loaded` is a read the follower has
/// already applied (the gateway applies the first read itself before serving); without it the
/// first call to the follower carries every entry. `reachable` says whether the last read or
/// watch of the store worked (`apisix_etcd_reachable`).
pub async fn follow(
    store: Arc<dyn Store>,
    mut follower: impl Follower,
    loaded: Option<Listing>,
    reachable: Arc<AtomicBool>,
) {
    // Key -> mod revision of what the follower has.
    let mut known: HashMap<String, Revision> = HashMap::new();
    let mut delay = FIRST_RETRY;
    let mut first = loaded.is_none();
    let mut pending = loaded.map(|l| {
        known = l
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.mod_revision))
            .collect();
        l.revision
    });
    loop {
        let (changes, revision) = match pending.take() {
            Some(revision) => (Vec::new(), revision),
            None => match store.list("").await {
                Ok(l) => (resync(&mut known, l.entries), l.revision),
                Err(e) => {
                    reachable.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in = ?delay, "config store unavailable; serving the config in memory");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(LAST_RETRY);
                    continue;
                }
            },
        };
        if first || !changes.is_empty() {
            if !first {
                tracing::info!(changes = changes.len(), revision, "config store re-read");
            }
            follower.apply(changes, revision);
            first = false;
        }
        let mut next = revision + 1;
        let mut watch = match store.watch(next).await {
            Ok(w) => {
                reachable.store(true, Ordering::Relaxed);
                w
            }
            Err(e) => {
                reachable.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot watch the config store; reading again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(LAST_RETRY);
                continue;
            }
        };
        let started = tokio::time::Instant::now();
        while let Some(batch) = watch.recv().await {
            match batch {
                Ok(events) => {
                    let revision = events.last().map_or(next - 1, Event::revision);
                    let changes = events
                        .into_iter()
                        .filter(|e| e.revision() >= next)
                        .map(|e| track(&mut known, e))
                        .collect::<Vec<_>>();
                    next = revision + 1;
                    if !changes.is_empty() {
                        follower.apply(changes, revision);
                    }
                }
                Err(e) => {
                    reachable.store(!matches!(e, StoreError::Unavailable(_)), Ordering::Relaxed);
                    log_broken(&e);
                    break;
                }
            }
        }
        // A closed watch without an error (a backend dropping a slow watcher) is handled the same:
        // read everything again; right away after a long watch, with backoff after a short one.
        if started.elapsed() < LAST_RETRY {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(LAST_RETRY);
        } else {
            delay = FIRST_RETRY;
        }
    }
}

fn log_broken(e: &StoreError) {
    match e {
        StoreError::Compacted { .. } => {
            tracing::info!(error = %e, "config watch lost its history; reading again")
        }
        _ => tracing::warn!(error = %e, "config watch broken; reading again"),
    }
}

fn track(known: &mut HashMap<String, Revision>, event: Event) -> Change {
    match event {
        Event::Put(entry) => {
            known.insert(entry.key.clone(), entry.mod_revision);
            Change::Put(entry)
        }
        Event::Delete { key, .. } => {
            known.remove(&key);
            Change::Delete(key)
        }
    }
}

/// The changes that turn what the follower has (`known`) into `entries`; updates `known`.
fn resync(known: &mut HashMap<String, Revision>, entries: Vec<Entry>) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut seen = HashMap::with_capacity(entries.len());
    for entry in entries {
        seen.insert(entry.key.clone(), entry.mod_revision);
        if known.get(&entry.key) != Some(&entry.mod_revision) {
            changes.push(Change::Put(entry));
        }
    }
    let mut gone: Vec<String> = known
        .keys()
        .filter(|k| !seen.contains_key(*k))
        .cloned()
        .collect();
    gone.sort();
    changes.extend(gone.into_iter().map(Change::Delete));
    *known = seen;
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(key: &str, rev: Revision) -> Entry {
        Entry {
            key: key.to_owned(),
            value: Bytes::from_static(b"{}"),
            create_revision: 1,
            mod_revision: rev,
        }
    }

    #[test]
    fn resync_hands_over_only_differences() {
        let mut known = HashMap::new();
        let first = resync(&mut known, vec![entry("routes/1", 2), entry("routes/2", 3)]);
        assert_eq!(first.len(), 2);
        let second = resync(&mut known, vec![entry("routes/1", 2), entry("routes/3", 9)]);
        assert_eq!(
            second,
            vec![
                Change::Put(entry("routes/3", 9)),
                Change::Delete("routes/2".to_owned())
            ]
        );
        assert!(resync(&mut known, vec![entry("routes/1", 2), entry("routes/3", 9)]).is_empty());
    }
}
