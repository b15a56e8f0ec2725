//! Limits on client connections: the open-file limit, the connection cap
//! (`nginx_config.event.worker_connections`) and what happens when either is reached.
//!
//! Every accepted connection (plain or TLS, from the accept until it closes, TLS handshake
//! included) takes a slot in one `Connections` table shared by all proxy listeners. When the
//! table is full, the connections that have waited longest for their next request are asked to
//! close (as nginx reuses its "reusable" keep-alive connections), so a new client is served; only
//! when no connection is idle is the new one closed at once. Accept failures (the process is out
//! of descriptors, for instance) are logged at most once a second with a count of the others, and
//! out of descriptors the listener frees idle connections and backs off while existing
//! connections keep being served.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Descriptors kept for everything other than client connections and their upstream connections:
/// listeners, the store, log files, runners, the Admin and status APIs.
const FD_RESERVE: u64 = 128;

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit, as a server that holds
/// one descriptor per connection needs more than the usual soft limit of 1024. Returns the soft
/// limit now in effect (`None`: unlimited).
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    let (Some(soft), Some(hard)) = (before.current, before.maximum) else {
        // An unlimited hard limit cannot be set as the soft one on Linux (it is capped by
        // fs.nr_open): keep the soft limit.
        tracing::info!(soft = ?before.current, "open-file limit");
        return before.current;
    };
    if soft >= hard {
        tracing::info!(soft, hard, "open-file limit");
        return Some(soft);
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(soft = hard, hard, was = soft, "open-file limit raised");
            Some(hard)
        }
        Err(error) => {
            tracing::warn!(soft, hard, %error, "cannot raise the open-file limit");
            Some(soft)
        }
    }
}

/// The number of client connections served at once: `worker_connections`, lowered so that every
/// client connection can hold one upstream connection too within the open-file limit (less
/// `FD_RESERVE` for the rest of the process). At least 1.
pub fn connection_cap(worker_connections: usize, fd_limit: Option<u64>) -> usize {
    let by_fds = fd_limit.map_or(usize::MAX, |limit| {
        usize::try_from(limit.saturating_sub(FD_RESERVE) / 2).unwrap_or(usize::MAX)
    });
    worker_connections.min(by_fds).max(1)
}

/// Whether an accept error means the process or the system is out of descriptors or memory
/// (retrying at once would fail the same way).
pub(crate) fn is_exhaustion(error: &io::Error) -> bool {
    use rustix::io::Errno;
    Errno::from_io_error(error).is_some_and(|e| {
        e == Errno::MFILE || e == Errno::NFILE || e == Errno::NOBUFS || e == Errno::NOMEM
    })
}

/// Lets one log line a second through and counts the others.
#[derive(Default)]
pub(crate) struct LogLimiter(Mutex<(Option<Instant>, u64)>);

impl LogLimiter {
    /// `Some(suppressed)` when a line may be logged now, with the number of lines held back since
    /// the last one; `None` when this one is held back.
    pub(crate) fn allow(&self) -> Option<u64> {
        let Ok(mut state) = self.0.lock() else {
            return None;
        };
        let (last, suppressed) = &mut *state;
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            *suppressed += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(suppressed))
    }
}

/// The open client connections of all proxy listeners.
pub(crate) struct Connections {
    cap: usize,
    /// Measures `Slot::last`.
    epoch: Instant,
    table: Mutex<Table>,
    /// Connections asked to close that have not closed yet: they make room for as many new ones.
    closing: AtomicUsize,
    /// Accept failures, logged at most once a second.
    pub(crate) accept_errors: LogLimiter,
    refusals: LogLimiter,
}

#[derive(Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Arc<Slot>>,
}

/// One open connection, as the table sees it.
pub(crate) struct Slot {
    /// The table's `epoch`.
    epoch: Instant,
    /// Requests being handled now (their response head not ready yet).
    busy: AtomicU32,
    /// Requests received so far.
    requests: AtomicU64,
    /// Milliseconds after `epoch` of the last accept, request or response.
    last: AtomicU64,
    /// Asked to close.
    closing: AtomicBool,
    /// Notified when asked to close.
    close: Notify,
}

impl Slot {
    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Marks a request as being handled until the returned guard is dropped (a connection with a
    /// request in progress is not idle).
    pub(crate) fn request(self: &Arc<Self>) -> Busy {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy(self.clone())
    }

    /// Completes when the connection is asked to close to make room.
    pub(crate) async fn reaped(&self) {
        self.close.notified().await;
    }

    /// Whether the connection never received a request (nothing is lost by dropping it).
    pub(crate) fn unused(&self) -> bool {
        self.requests.load(Ordering::Relaxed) == 0
    }
}

impl Connections {
    /// A table that holds at most `cap` connections.
    pub(crate) fn new(cap: usize) -> Connections {
        Connections {
            cap: cap.max(1),
            epoch: Instant::now(),
            table: Mutex::default(),
            closing: AtomicUsize::new(0),
            accept_errors: LogLimiter::default(),
            refusals: LogLimiter::default(),
        }
    }

    /// A slot for a just-accepted connection, making room by closing idle connections when the
    /// table is full; `None` when it is full of busy connections (the caller closes the new one).
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let Ok(mut table) = self.table.lock() else {
            return None;
        };
        let counted = table
            .open
            .len()
            .saturating_sub(self.closing.load(Ordering::Relaxed));
        if counted >= self.cap && self.reap(&table, counted + 1 - self.cap) == 0 {
            drop(table);
            if let Some(suppressed) = self.refusals.allow() {
                tracing::warn!(
                    cap = self.cap,
                    suppressed,
                    "worker_connections reached and no connection is idle: new connection closed"
                );
            }
            return None;
        }
        let id = table.next;
        table.next += 1;
        let slot = Arc::new(Slot {
            epoch: self.epoch,
            busy: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            last: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        slot.touch();
        table.open.insert(id, slot.clone());
        Some(Admitted {
            connections: self.clone(),
            id,
            slot,
        })
    }

    /// Frees descriptors when accept found none: asks idle connections to close. Returns how many.
    pub(crate) fn reap_idle(&self) -> usize {
        match self.table.lock() {
            Ok(table) => self.reap(&table, 1),
            Err(_) => 0,
        }
    }

    /// Asks at least `needed` idle connections (if there are that many) to close, the ones idle
    /// longest first; as nginx, up to 32 at once when many are idle, so a burst of new
    /// connections does not scan the table for each one. Returns how many were asked.
    fn reap(&self, table: &Table, needed: usize) -> usize {
        let mut idle: Vec<(u64, &Arc<Slot>)> = table
            .open
            .values()
            .filter(|s| !s.closing.load(Ordering::Relaxed) && s.busy.load(Ordering::Relaxed) == 0)
            .map(|s| (s.last.load(Ordering::Relaxed), s))
            .collect();
        if idle.is_empty() {
            return 0;
        }
        let n = needed.max((idle.len() / 8).min(32)).min(idle.len());
        if n < idle.len() {
            idle.select_nth_unstable_by_key(n - 1, |(last, _)| *last);
        }
        for (_, slot) in &idle[..n] {
            slot.closing.store(true, Ordering::Relaxed);
            self.closing.fetch_add(1, Ordering::Relaxed);
            slot.close.notify_one();
        }
        tracing::debug!(closed = n, "idle connections closed to make room");
        n
    }
}

/// A connection's place in the table, freed when dropped.
pub(crate) struct Admitted {
    connections: Arc<Connections>,
    id: u64,
    slot: Arc<Slot>,
}

impl Admitted {
    /// The connection's slot.
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut table) = self.connections.table.lock() {
            table.open.remove(&self.id);
        }
        if self.slot.closing.load(Ordering::Relaxed) {
            self.connections.closing.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A request in progress on a connection (see [`Slot::request`]).
pub(crate) struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_fits_the_descriptor_limit() {
        assert_eq!(connection_cap(10620, Some(1024)), 448);
        assert_eq!(connection_cap(10620, Some(1_048_576)), 10620);
        assert_eq!(connection_cap(50, None), 50);
        assert_eq!(connection_cap(0, Some(1024)), 1);
        assert_eq!(connection_cap(10620, Some(64)), 1);
    }

    #[test]
    fn full_table_closes_the_longest_idle_then_refuses() {
        let conns = Arc::new(Connections::new(2));
        let first = conns.admit().expect("room");
        let second = conns.admit().expect("room");
        let busy = second.slot().request();
        // Full: the idle first connection is asked to close, the new one gets in.
        let third = conns.admit().expect("an idle connection made room");
        assert!(first.slot().closing.load(Ordering::Relaxed));
        assert!(!second.slot().closing.load(Ordering::Relaxed));
        let _busy_third = third.slot().request();
        // The closing one still counts as room made; now everyone left is busy.
        assert!(conns.admit().is_none(), "no idle connection: refused");
        drop(first);
        assert_eq!(conns.closing.load(Ordering::Relaxed), 0);
        assert!(conns.admit().is_none(), "still full of busy connections");
        drop(busy);
        assert!(
            conns.admit().is_some(),
            "an idle connection made room again"
        );
    }

    #[test]
    fn log_limiter_counts_what_it_holds_back() {
        let limiter = LogLimiter::default();
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        if let Ok(mut state) = limiter.0.lock() {
            state.0 = Some(Instant::now() - Duration::from_secs(2));
        }
        assert_eq!(limiter.allow(), Some(2));
    }
}
