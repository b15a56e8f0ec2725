//! Keeping the served snapshot in step with a store.
//!
//! [`Live`] is the [`Follower`] of the store: it applies changes to the typed [`Resources`] and
//! asks for a rebuild. [`rebuild_loop`] builds a new snapshot off the request path (a blocking
//! thread) and swaps it in. Changes that arrive during a build are coalesced into the next one, so
//! a burst of writes costs a few builds, never a queue of them, and requests never wait.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::source::Resources;
use super::{Builder, Snapshot};
use crate::store::sync::{Change, Follower};
use crate::store::{Entry, Revision};
use plugin_api::registry::Registry;

/// Feeds store changes to the rebuild loop.
pub struct Live {
    resources: Arc<Mutex<Resources>>,
    wake: Arc<Notify>,
}

/// The state shared by [`Live`] and [`rebuild_loop`].
#[derive(Clone)]
pub struct Shared {
    resources: Arc<Mutex<Resources>>,
    wake: Arc<Notify>,
}

impl Shared {
    /// Nothing read yet; plugin configs are checked against `plugins`.
    pub fn new(plugins: Registry) -> Shared {
        Shared {
            resources: Arc::new(Mutex::new(Resources::new(plugins))),
            wake: Arc::default(),
        }
    }

    /// Applies a first read and builds its snapshot on the spot, before the node serves.
    pub fn load(&self, entries: &[Entry], builder: &mut Builder) -> Snapshot {
        let changes = entries.iter().cloned().map(Change::Put).collect();
        let config = match self.resources.lock() {
            Ok(mut r) => {
                r.apply(changes);
                builder.set_metadata(r.metadata());
                Arc::new(r.to_config_set())
            }
            Err(_) => Arc::default(),
        };
        builder.build(config)
    }

    /// The follower that feeds this state (after [`Shared::load`]).
    pub fn follower(&self) -> Live {
        Live {
            resources: self.resources.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl Follower for Live {
    fn apply(&mut self, changes: Vec<Change>, revision: Revision) {
        let changed = match self.resources.lock() {
            Ok(mut r) => r.apply(changes),
            Err(_) => {
                tracing::error!("config resources unusable after a panic; change not applied");
                return;
            }
        };
        if changed {
            tracing::debug!(revision, "config changed; rebuilding");
            self.wake.notify_one();
        }
    }
}

/// Rebuilds and swaps the snapshot whenever woken, forever (cancel by dropping the task).
pub async fn rebuild_loop(
    shared: Shared,
    builder: Builder,
    publish: impl Fn(Snapshot) + Send + 'static,
) {
    let builder = Arc::new(Mutex::new(builder));
    loop {
        shared.wake.notified().await;
        let resources = shared.resources.clone();
        let builder = builder.clone();
        let started = std::time::Instant::now();
        let built = tokio::task::spawn_blocking(move || {
            let (config, metadata) = match resources.lock() {
                Ok(r) => (Arc::new(r.to_config_set()), r.metadata()),
                Err(_) => return None,
            };
            let mut builder = builder.lock().ok()?;
            builder.set_metadata(metadata);
            Some(builder.build(config))
        })
        .await;
        match built {
            Ok(Some(snapshot)) => {
                tracing::info!(
                    routes = snapshot.routes.len(),
                    version = snapshot.version,
                    took = ?started.elapsed(),
                    "config applied"
                );
                publish(snapshot);
            }
            _ => tracing::error!("building the config snapshot failed; the current one stays"),
        }
    }
}
