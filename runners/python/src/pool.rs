//! The bounded pool of OS threads that run Python. Nothing else attaches to the interpreter
//! (except the watchdog, to interrupt).
//!
//! Each worker attaches once for its whole life (so its Python thread state, and with it the
//! SDK's per-thread event loop, survives between calls) and detaches while it waits for a job.
//! Jobs come through one channel shared by the workers.
//!
//! A call that runs past its timeout is *abandoned* by its caller: a queued job is skipped; a
//! running one is handed to the watchdog, which, holding the GIL, checks that the job is still
//! running on that worker and throws `CallTimeout` into the worker's thread (it lands at the
//! next bytecode boundary; a plugin blocked in C, such as `time.sleep`, sees it when that
//! returns). The watchdog also starts a replacement worker and tells the interrupted one to
//! retire once its job ends, so the pool keeps its size while a plugin is stuck; at most
//! `2 x threads` workers ever live at once.
//!
//! The job's phase is changed only under its mutex, and on the Python side only while holding
//! the GIL without running bytecode in between: the watchdog's "still running? then throw" and
//! the worker's "finished; drop any pending throw" cannot interleave, so a throw never reaches a
//! later job.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::sync::watch;

use crate::interp::{self, Watchdog};

/// What a worker runs; it sends its own result.
pub(crate) type Work = Box<dyn FnOnce(Python<'_>) + Send>;

struct Job {
    state: Arc<JobState>,
    work: Work,
}

/// Where a job is.
#[derive(Default)]
pub(crate) struct JobState {
    phase: Mutex<Phase>,
}

#[derive(Default)]
enum Phase {
    #[default]
    Queued,
    Running(Arc<Worker>),
    /// Abandoned while running; the watchdog has been asked to throw.
    Interrupting(Arc<Worker>),
    Done,
    /// Abandoned before it started: skipped.
    Abandoned,
}

impl JobState {
    fn lock(&self) -> MutexGuard<'_, Phase> {
        // Every change leaves a valid phase.
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Worker {
    /// `threading.get_ident()` of its thread.
    ident: u64,
    retire: AtomicBool,
}

/// A request to interrupt a job, for the watchdog.
pub(crate) struct Interrupt {
    state: Arc<JobState>,
    pool: Arc<Shared>,
}

/// The pool (cheap to share through `Arc`).
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    queue: RwLock<Option<mpsc::Sender<Job>>>,
    jobs: Mutex<mpsc::Receiver<Job>>,
    /// Live workers.
    live: watch::Sender<usize>,
    max: usize,
    next_index: AtomicUsize,
    watchdog: &'static Watchdog,
}

/// The pool is shut down.
#[derive(Debug)]
pub(crate) struct Closed;

impl Pool {
    /// Starts `threads` workers named `py-<name>-<n>`.
    ///
    /// # Errors
    /// A thread could not be spawned (the workers already started stop).
    pub(crate) fn start(
        name: &str,
        threads: usize,
        watchdog: &'static Watchdog,
    ) -> Result<Pool, String> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            queue: RwLock::new(Some(tx)),
            jobs: Mutex::new(rx),
            live: watch::Sender::new(0),
            max: threads.saturating_mul(2),
            next_index: AtomicUsize::new(0),
            watchdog,
        });
        for _ in 0..threads {
            if let Err(e) = spawn_worker(&shared) {
                shared.close();
                return Err(e);
            }
        }
        Ok(Pool { shared })
    }

    /// Queues `work`; `state` follows it.
    pub(crate) fn submit(&self, state: Arc<JobState>, work: Work) -> Result<(), Closed> {
        let queue = self
            .shared
            .queue
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match queue.as_ref() {
            Some(tx) => tx.send(Job { state, work }).map_err(|_| Closed),
            None => Err(Closed),
        }
    }

    /// The caller gave up on a job (timeout or cancellation): a queued job will be skipped, a
    /// running one is interrupted.
    pub(crate) fn abandon(&self, state: &Arc<JobState>) {
        let mut phase = state.lock();
        match std::mem::take(&mut *phase) {
            Phase::Queued | Phase::Abandoned => *phase = Phase::Abandoned,
            Phase::Running(w) | Phase::Interrupting(w) => {
                *phase = Phase::Interrupting(w);
                drop(phase);
                self.shared.watchdog.send(Interrupt {
                    state: state.clone(),
                    pool: self.shared.clone(),
                });
            }
            Phase::Done => *phase = Phase::Done,
        }
    }

    /// Live worker threads (replacements included).
    pub(crate) fn live(&self) -> usize {
        *self.shared.live.borrow()
    }

    /// Stops taking jobs; workers end after the queued jobs. Waits up to `grace` for them.
    pub(crate) async fn shutdown(&self, grace: Duration) -> bool {
        self.shared.close();
        let mut live = self.shared.live.subscribe();
        tokio::time::timeout(grace, live.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Shared {
    fn close(&self) {
        self.queue
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn is_closed(&self) -> bool {
        self.queue
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    fn next_job(&self) -> Option<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv()
            .ok()
    }
}

fn spawn_worker(shared: &Arc<Shared>) -> Result<(), String> {
    let index = shared.next_index.fetch_add(1, Ordering::Relaxed);
    shared.live.send_modify(|n| *n += 1);
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("py-{}-{index}", shared.name))
        .spawn(move || {
            worker(&s);
            s.live.send_modify(|n| *n -= 1);
        });
    if let Err(e) = spawned {
        shared.live.send_modify(|n| *n -= 1);
        return Err(format!("cannot start a Python thread: {e}"));
    }
    Ok(())
}

fn worker(shared: &Shared) {
    Python::attach(|py| {
        let ident = match thread_ident(py) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(runner = %shared.name, "Python worker cannot start: {}", interp::describe(py, &e));
                return;
            }
        };
        let me = Arc::new(Worker {
            ident,
            retire: AtomicBool::new(false),
        });
        loop {
            let Some(job) = py.detach(|| shared.next_job()) else {
                break;
            };
            {
                let mut phase = job.state.lock();
                if !matches!(*phase, Phase::Queued) {
                    continue;
                }
                *phase = Phase::Running(me.clone());
            }
            // A panic in the runner's own code must not cost the pool a thread; the caller sees
            // its result channel closed.
            if std::panic::catch_unwind(AssertUnwindSafe(|| (job.work)(py))).is_err() {
                tracing::error!(runner = %shared.name, "a Python call panicked");
            }
            let interrupted = {
                let mut phase = job.state.lock();
                let was = matches!(*phase, Phase::Interrupting(_));
                *phase = Phase::Done;
                was
            };
            if interrupted {
                // The throw may still be pending (the call ended before it landed): drop it, so
                // that it never reaches the next job. A C call: no bytecode runs before it.
                if let Ok(h) = interp::helpers(py) {
                    let _ = h.clear.call1(py, (ident, py.None()));
                }
            }
            if me.retire.load(Ordering::Acquire) {
                break;
            }
        }
        if let Ok(h) = interp::helpers(py) {
            let _ = h.forget_thread.call0(py);
        }
    });
}

/// The thread's Python ident; also names Python's view of the thread after the OS thread, so
/// that `threading.current_thread().name` (and log records) say `py-<runner>-<n>`.
fn thread_ident(py: Python<'_>) -> PyResult<u64> {
    let threading = py.import("threading")?;
    if let Some(name) = std::thread::current().name() {
        threading
            .call_method0("current_thread")?
            .setattr("name", name)?;
    }
    threading.call_method0("get_ident")?.extract()
}

impl Interrupt {
    /// On the watchdog thread: throws `CallTimeout` into the job's thread if the job still runs
    /// there, and replaces that worker.
    pub(crate) fn deliver(self) {
        let pool = &self.pool;
        let replace = Python::attach(|py| {
            let Ok(h) = interp::helpers(py) else {
                return false;
            };
            let phase = self.state.lock();
            let Phase::Interrupting(w) = &*phase else {
                return false;
            };
            // Under the GIL and the phase lock, running no bytecode: the worker cannot finish
            // this job in between.
            if let Err(e) = h.interrupt.call1(py, (w.ident, h.timeout.bind(py))) {
                tracing::error!(runner = %pool.name, "cannot interrupt a Python call: {e}");
            }
            // Decided under the phase lock: the worker reads `retire` after it marks the job
            // done, so it sees this.
            if pool.is_closed() || w.retire.load(Ordering::Acquire) {
                return false;
            }
            if *pool.live.borrow() >= pool.max {
                tracing::warn!(runner = %pool.name, max = pool.max, "a timed-out Python call still runs and the pool is at its most threads: not replacing it");
                return false;
            }
            w.retire.store(true, Ordering::Release);
            true
        });
        if replace {
            if let Err(e) = spawn_worker(pool) {
                tracing::error!(runner = %pool.name, "{e}");
            }
        }
    }
}
