//! A bounded pool of connections to one runner: a semaphore caps idle + busy connections, idle
//! ones are reused last-in first-out, and a connection goes back only when its call ended cleanly,
//! it belongs to the runner's current process and nothing stale waits on it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runner_protocol::RunnerError;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::conn::Conn;
use crate::supervisor::{RunnerState, Status};

#[derive(Debug)]
pub(crate) struct Pool {
    path: PathBuf,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Conn>>,
    status: watch::Receiver<Status>,
    connect_timeout: Duration,
    wait_timeout: Duration,
}

/// A checked-out connection; dropping it closes the connection and frees its slot.
#[derive(Debug)]
pub(crate) struct Pooled {
    pub(crate) conn: Conn,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub(crate) fn new(
        path: PathBuf,
        size: usize,
        status: watch::Receiver<Status>,
        connect_timeout: Duration,
        wait_timeout: Duration,
    ) -> Self {
        Self {
            path,
            permits: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(Vec::new()),
            status,
            connect_timeout,
            wait_timeout,
        }
    }

    /// The generation of the ready runner, waiting up to the connect timeout for a
    /// (re)starting one.
    pub(crate) async fn ready_generation(&self, wait: Duration) -> Result<u64, RunnerError> {
        let mut rx = self.status.clone();
        let waited = tokio::time::timeout(
            wait,
            rx.wait_for(|s| matches!(s.state, RunnerState::Ready | RunnerState::Stopped)),
        )
        .await
        .map(|r| r.map(|s| (s.state, s.generation)));
        match waited {
            Ok(Ok((RunnerState::Ready, generation))) => Ok(generation),
            Ok(_) => Err(RunnerError::Unavailable("runner stopped".into())),
            Err(_) => Err(RunnerError::Unavailable(format!(
                "runner not ready ({:?}) after {wait:?}",
                self.status.borrow().state
            ))),
        }
    }

    /// A connection to the current runner process: an idle one if any is healthy, else a new one.
    pub(crate) async fn get(&self) -> Result<Pooled, RunnerError> {
        let permit =
            match tokio::time::timeout(self.wait_timeout, self.permits.clone().acquire_owned())
                .await
            {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(RunnerError::Unavailable("runner shut down".into())),
                Err(_) => return Err(RunnerError::Timeout),
            };
        let generation = self.ready_generation(self.connect_timeout).await?;
        loop {
            let candidate = self.lock_idle().pop();
            match candidate {
                Some(conn) if conn.generation == generation && conn.is_clean() => {
                    return Ok(Pooled {
                        conn,
                        _permit: permit,
                    })
                }
                Some(_) => {}
                None => break,
            }
        }
        let conn = Conn::connect(&self.path, generation, self.connect_timeout).await?;
        Ok(Pooled {
            conn,
            _permit: permit,
        })
    }

    /// Returns a connection whose call ended cleanly.
    pub(crate) fn put(&self, mut pooled: Pooled) {
        pooled.conn.trim();
        let current = self.status.borrow().generation;
        if pooled.conn.generation == current && pooled.conn.is_clean() {
            self.lock_idle().push(pooled.conn);
        }
    }

    /// Closes every idle connection (after a respawn or on shutdown).
    pub(crate) fn clear(&self) {
        self.lock_idle().clear();
    }

    /// Stops handing out connections.
    pub(crate) fn close(&self) {
        self.permits.close();
        self.clear();
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // The lock is never held across an await or a panic point: a poisoned one still holds a
        // valid Vec.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
