//! Reload on change: the declarative file is polled (as APISIX does, every second by default) and
//! a callback runs on a blocking thread whenever its modification time, size or inode changes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// The file's current stamp, or None when it cannot be read.
pub fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// Polls `path` every `interval` forever and runs `on_change` on a blocking thread when its stamp
/// differs from `last`. Runs one change at a time; cancel by dropping the task.
pub async fn watch_file<F>(path: PathBuf, interval: Duration, mut last: Option<Stamp>, on_change: F)
where
    F: Fn() + Send + Sync + 'static,
{
    let on_change = std::sync::Arc::new(on_change);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        let f = on_change.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || f()).await {
            tracing::error!(error = %e, "config reload task failed");
        }
    }
}
