//! The conf-token cache every runner kind keeps: a key (one plugin instance of one config
//! version) maps to its conf and a slot for the conf's prepared form (a runner's conf token, or
//! whatever an in-process runner makes of the conf).
//!
//! A slot is filled at most once: concurrent callers share one in-flight prepare. A token that
//! goes stale (its runner restarted, it is about to expire, the runner forgot it) is not
//! overwritten: the key gets a fresh slot, so calls already holding the old one finish with it
//! and the next ones prepare again. How a token is obtained is the runner's ([`Prepare`]); when
//! it is stale is the runner's too (the cache only offers the moves).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::OnceCell;

use crate::message::TextEntry;
use crate::runner::RunnerError;

/// How a runner turns a key's conf into a token.
pub trait Prepare: Send + Sync {
    /// What a prepare gives; cloned out of the cache for every call.
    type Token: Clone + Send + Sync;

    /// Prepares `conf`, registered under `key`.
    ///
    /// # Errors
    /// See [`RunnerError`].
    fn prepare(
        &self,
        key: &Arc<str>,
        conf: &Arc<Vec<TextEntry>>,
    ) -> impl Future<Output = Result<Self::Token, RunnerError>> + Send;
}

/// One token of one key, prepared at most once.
pub struct Slot<T>(OnceCell<T>);

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(OnceCell::new())
    }
}

/// A key's conf and one of its slots: what a call fills and uses, or a background prepare fills.
/// Cheap to clone (three reference counts).
pub struct Pending<T> {
    key: Arc<str>,
    conf: Arc<Vec<TextEntry>>,
    slot: Arc<Slot<T>>,
}

impl<T> Clone for Pending<T> {
    fn clone(&self) -> Self {
        Pending {
            key: self.key.clone(),
            conf: self.conf.clone(),
            slot: self.slot.clone(),
        }
    }
}

impl<T> fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("key", &self.key)
            .field("prepared", &self.slot.0.initialized())
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync> Pending<T> {
    /// The key.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// The token: this slot's, or prepared now with `preparer` (joining a prepare in flight).
    ///
    /// # Errors
    /// The prepare's error; the slot stays empty, so the next call tries again.
    pub async fn fill<P: Prepare<Token = T>>(&self, preparer: &P) -> Result<T, RunnerError> {
        self.slot
            .0
            .get_or_try_init(|| preparer.prepare(&self.key, &self.conf))
            .await
            .cloned()
    }

    /// The same key and conf with a fresh slot: a replacement prepared before it is swapped in
    /// ([`ConfCache::swap`]).
    pub fn renewal(&self) -> Pending<T> {
        Pending {
            key: self.key.clone(),
            conf: self.conf.clone(),
            slot: Arc::default(),
        }
    }

    /// Fills the slot in the background on the current tokio runtime (without one, the first
    /// call fills it), unless `preparer` is gone by then; a failure is logged under `runner`.
    pub fn warm<P>(self, preparer: Weak<P>, runner: Arc<str>)
    where
        P: Prepare<Token = T> + 'static,
        T: 'static,
    {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let Some(preparer) = preparer.upgrade() else {
                return;
            };
            if let Err(e) = self.fill(&*preparer).await {
                tracing::warn!(%runner, key = %self.key, "prepare failed: {e}");
            }
        });
    }
}

/// A key's conf and its current slot.
struct Entry<T> {
    conf: Arc<Vec<TextEntry>>,
    slot: Arc<Slot<T>>,
}

/// Conf tokens by key.
pub struct ConfCache<T> {
    entries: Mutex<HashMap<Arc<str>, Entry<T>>>,
}

impl<T> Default for ConfCache<T> {
    fn default() -> Self {
        ConfCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> fmt::Debug for ConfCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfCache")
            .field("keys", &self.lock().len())
            .finish()
    }
}

impl<T> ConfCache<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Entry<T>>> {
        // Never held across an await; a poisoned map is still a valid map.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Clone + Send + Sync> ConfCache<T> {
    /// Registers `conf` under `key`, with an empty slot to fill ([`Pending::warm`]). `None` when
    /// `key` already has this conf; another conf replaces the entry.
    pub fn insert(&self, key: &str, conf: Vec<TextEntry>) -> Option<Pending<T>> {
        let mut entries = self.lock();
        if entries.get(key).is_some_and(|e| *e.conf == conf) {
            return None;
        }
        let pending = Pending {
            key: key.into(),
            conf: Arc::new(conf),
            slot: Arc::default(),
        };
        entries.insert(
            pending.key.clone(),
            Entry {
                conf: pending.conf.clone(),
                slot: pending.slot.clone(),
            },
        );
        Some(pending)
    }

    /// Forgets `key`; calls holding its slot finish with it.
    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Forgets every key.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The keys registered.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().map(|k| k.to_string()).collect()
    }

    /// The token of `key`, if its current slot is filled.
    pub fn cached(&self, key: &str) -> Option<T> {
        self.lock().get(key)?.slot.0.get().cloned()
    }

    /// The current slot of `key`, to [fill](Pending::fill).
    ///
    /// # Errors
    /// [`RunnerError::Unavailable`] for a key never registered (or forgotten).
    pub fn current(&self, key: &str) -> Result<Pending<T>, RunnerError> {
        let entries = self.lock();
        let Some((key, e)) = entries.get_key_value(key) else {
            return Err(RunnerError::Unavailable(format!(
                "no conf registered for key `{key}`"
            )));
        };
        Ok(Pending {
            key: key.clone(),
            conf: e.conf.clone(),
            slot: e.slot.clone(),
        })
    }

    /// Puts `fresh`'s slot in place of `old`'s if that is still its key's current one; says
    /// whether it did.
    pub fn swap(&self, old: &Pending<T>, fresh: &Pending<T>) -> bool {
        let mut entries = self.lock();
        match entries.get_mut(&*old.key) {
            Some(e) if Arc::ptr_eq(&e.slot, &old.slot) => {
                e.slot = fresh.slot.clone();
                true
            }
            _ => false,
        }
    }

    /// Gives `stale`'s key a fresh, empty slot if `stale` is still its current one.
    pub fn replace(&self, stale: &Pending<T>) {
        self.swap(stale, &stale.renewal());
    }

    /// Gives every key a fresh, empty slot if `stale` is still its key's current one (once per
    /// stale token: concurrent failures of one token do not cascade); the new slots, to
    /// [warm](Pending::warm). Empty when `stale` was already replaced.
    pub fn reset_all(&self, stale: &Pending<T>) -> Vec<Pending<T>> {
        let mut entries = self.lock();
        if !entries
            .get(&*stale.key)
            .is_some_and(|e| Arc::ptr_eq(&e.slot, &stale.slot))
        {
            return Vec::new();
        }
        entries
            .iter_mut()
            .map(|(k, e)| {
                e.slot = Arc::default();
                Pending {
                    key: k.clone(),
                    conf: e.conf.clone(),
                    slot: e.slot.clone(),
                }
            })
            .collect()
    }

    /// Every slot to fill now: unfilled ones, and fresh ones in place of tokens that `keep`
    /// refuses (their key gets the fresh slot at once).
    pub fn renew(&self, keep: impl Fn(&T) -> bool) -> Vec<Pending<T>> {
        let mut entries = self.lock();
        entries
            .iter_mut()
            .filter_map(|(k, e)| {
                match e.slot.0.get() {
                    Some(t) if keep(t) => return None,
                    Some(_) => e.slot = Arc::default(),
                    None => {}
                }
                Some(Pending {
                    key: k.clone(),
                    conf: e.conf.clone(),
                    slot: e.slot.clone(),
                })
            })
            .collect()
    }

    /// The current, filled slots whose token is `due` (for a replacement prepared in the
    /// background: [`Pending::renewal`], then [`ConfCache::swap`]).
    pub fn due(&self, due: impl Fn(&T) -> bool) -> Vec<Pending<T>> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.slot.0.get().is_some_and(&due))
            .map(|(k, e)| Pending {
                key: k.clone(),
                conf: e.conf.clone(),
                slot: e.slot.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Counts prepares; the token is the count.
    #[derive(Default)]
    struct Counter(AtomicU32);

    impl Prepare for Counter {
        type Token = u32;

        async fn prepare(
            &self,
            _key: &Arc<str>,
            _conf: &Arc<Vec<TextEntry>>,
        ) -> Result<u32, RunnerError> {
            Ok(self.0.fetch_add(1, Ordering::Relaxed) + 1)
        }
    }

    fn conf(v: &str) -> Vec<TextEntry> {
        vec![TextEntry::new("p", v.to_owned())]
    }

    #[tokio::test]
    async fn a_slot_is_filled_once_and_replaced_when_stale() {
        let (cache, p) = (ConfCache::<u32>::default(), Counter::default());
        assert!(cache.insert("k", conf("a")).is_some());
        assert!(
            cache.insert("k", conf("a")).is_none(),
            "same conf: nothing to do"
        );
        let cur = cache.current("k").expect("registered");
        assert_eq!(cur.fill(&p).await.ok(), Some(1));
        assert_eq!(cur.fill(&p).await.ok(), Some(1));
        assert_eq!(cache.cached("k"), Some(1));
        cache.replace(&cur);
        assert_eq!(cache.cached("k"), None);
        cache.replace(&cur); // no longer current: the fresh slot stays
        assert_eq!(cache.current("k").expect("k").fill(&p).await.ok(), Some(2));
        assert_eq!(cache.keys(), ["k"]);
        cache.remove("k");
        assert!(matches!(
            cache.current("k"),
            Err(RunnerError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn reset_renew_and_swap() {
        let (cache, p) = (ConfCache::<u32>::default(), Counter::default());
        for k in ["a", "b"] {
            let pending = cache.insert(k, conf(k)).expect("new");
            pending.fill(&p).await.expect("prepared");
        }
        let a = cache.current("a").expect("a");
        assert_eq!(cache.reset_all(&a).len(), 2);
        assert!(cache.reset_all(&a).is_empty(), "once per stale token");
        assert_eq!(cache.renew(|_| true).len(), 2, "unfilled slots are renewed");
        cache.current("b").expect("b").fill(&p).await.expect("b");
        let b = cache.current("b").expect("b");
        assert_eq!(cache.due(|t| *t == 3).len(), 1);
        let fresh = b.renewal();
        fresh.fill(&p).await.expect("fresh");
        assert!(cache.swap(&b, &fresh));
        assert!(!cache.swap(&b, &fresh));
        assert_eq!(cache.cached("b"), Some(4));
        let renewed = cache.renew(|t| *t != 4);
        assert_eq!(renewed.len(), 2, "b's token is refused, a is unfilled");
        assert_eq!(cache.cached("b"), None);
    }
}
