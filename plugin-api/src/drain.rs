//! What a gateway waits for at shutdown, after the last request: log entries its loggers still
//! hold. A logger's background task or thread keeps a [`Working`] while it runs; it ends once the
//! logger instance is dropped and what it held is written or sent. [`Drain::wait`] returns when
//! none is left, or at its deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// The loggers' work of one gateway.
#[derive(Debug, Default)]
pub struct Drain {
    active: AtomicUsize,
    idle: Notify,
}

/// One running piece of work; dropping it says it ended.
#[derive(Debug)]
pub struct Working(Arc<Drain>);

impl Drain {
    /// Counts a piece of work until the returned value is dropped.
    pub fn start(self: &Arc<Self>) -> Working {
        self.active.fetch_add(1, Ordering::AcqRel);
        Working(self.clone())
    }

    /// Waits until no work is left, at most `timeout`; whether none was left.
    pub async fn wait(&self, timeout: Duration) -> bool {
        let done = async {
            loop {
                let idle = self.idle.notified();
                if self.active.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(timeout, done).await.is_ok()
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_piece_of_work() {
        let drain = Arc::new(Drain::default());
        assert!(
            drain.wait(Duration::from_millis(1)).await,
            "nothing to wait for"
        );
        let a = drain.start();
        let b = drain.start();
        assert!(
            !drain.wait(Duration::from_millis(20)).await,
            "work left at the deadline"
        );
        let ends = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(a);
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(b);
        });
        assert!(drain.wait(Duration::from_secs(5)).await);
        ends.await.expect("task");
    }
}
