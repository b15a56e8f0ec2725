//! One call, from the async side: queue the job, then serve its extra-info questions and wait
//! for its result together, under the timeout.
//!
//! The plugin's `fetch(kind, name)` runs on the worker thread: it sends the question through an
//! unbounded channel (a send never blocks) with a oneshot for the answer, then blocks on that
//! oneshot with the GIL released. The async side selects over the job's result, the questions
//! and the deadline; it awaits [`InfoSource::answer`] on the caller's task and sends the bytes
//! back. Time spent answering is not counted against the timeout (as for out-of-process
//! runners). When the call ends early (timeout, or the caller drops the future) the question
//! channel closes, so a worker blocked in `fetch` wakes up with an error, and the job is
//! abandoned (skipped, or interrupted by the watchdog).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use runner_protocol::{ErrorCode, ExtraInfo, InfoSource, RunnerError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::interp;
use crate::pool::{JobState, Pool};

/// A question from a plugin and where its answer goes.
struct Question {
    info: ExtraInfo,
    answer: oneshot::Sender<Option<Bytes>>,
}

/// The `fetch(kind, name)` callable handed to the SDK.
#[pyclass(frozen, name = "Fetch", module = "_ferrogate_runner")]
pub(crate) struct Fetch {
    questions: mpsc::UnboundedSender<Question>,
}

#[pymethods]
impl Fetch {
    /// kind 1: variable `name`; 2: the request body; 3: the upstream response body.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        kind: u8,
        name: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let info = match kind {
            1 => {
                let name = name.ok_or_else(|| PyValueError::new_err("a variable needs a name"))?;
                ExtraInfo::Var(text(&name)?)
            }
            2 => ExtraInfo::ReqBody,
            3 => ExtraInfo::RespBody,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown extra-info kind {other}"
                )))
            }
        };
        let (answer, rx) = oneshot::channel();
        if self.questions.send(Question { info, answer }).is_err() {
            return Err(PyRuntimeError::new_err(
                "the gateway gave up on this call (timeout or cancelled)",
            ));
        }
        match py.detach(move || rx.blocking_recv()) {
            Ok(value) => Ok(value.map(|v| PyBytes::new(py, &v))),
            Err(_) => Err(PyRuntimeError::new_err(
                "the gateway gave up on this call (timeout or cancelled)",
            )),
        }
    }
}

/// A byte string from `bytes` or `str` (a `str` with lone surrogates, as the SDK makes for
/// non-UTF-8 bytes, is encoded back with `surrogateescape`).
pub(crate) fn text(obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(b.as_bytes()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        if let Ok(s) = s.to_str() {
            return Ok(Bytes::copy_from_slice(s.as_bytes()));
        }
        let b = s.call_method1("encode", ("utf-8", "surrogateescape"))?;
        return Ok(Bytes::copy_from_slice(b.cast::<PyBytes>()?.as_bytes()));
    }
    Err(PyTypeError::new_err(format!(
        "expected bytes or str, got {}",
        obj.get_type().name()?
    )))
}

/// What a call's Python side failed with.
pub(crate) enum Failure {
    /// Python raised.
    Raised(PyErr),
    /// The SDK answered something the contract does not allow.
    Malformed(String),
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Self {
        Failure::Raised(e)
    }
}

/// The Python side of a call: runs on a worker with the GIL, gets `fetch`.
pub(crate) type Body<T> =
    Box<dyn for<'py> FnOnce(Python<'py>, Bound<'py, Fetch>) -> Result<T, Failure> + Send>;

/// An [`InfoSource`] with nothing to say (prepare).
pub(crate) struct NoInfo;

impl InfoSource for NoInfo {
    async fn answer(&self, _question: &ExtraInfo) -> Option<Bytes> {
        None
    }
}

/// Abandons the job unless disarmed: on timeout and when the caller drops the call.
struct Pending<'a> {
    pool: &'a Pool,
    state: Arc<JobState>,
    armed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.abandon(&self.state);
        }
    }
}

/// A call as logs name it: the runner, the phase and the key. Formatted only when logged, so a
/// call does not allocate for it.
#[derive(Clone)]
pub(crate) struct What {
    runner: Arc<str>,
    phase: &'static str,
    key: Option<Arc<str>>,
}

impl What {
    pub(crate) fn new(runner: Arc<str>, phase: &'static str, key: Option<Arc<str>>) -> What {
        What { runner, phase, key }
    }
}

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.runner, self.phase)?;
        match &self.key {
            Some(key) => write!(f, " {key}"),
            None => Ok(()),
        }
    }
}

/// Runs `body` on the pool, answering its questions from `info`, within `timeout`.
/// `what` names the call in logs.
pub(crate) async fn run<T, I>(
    pool: &Pool,
    timeout: Duration,
    info: &I,
    what: What,
    body: Body<T>,
) -> Result<T, RunnerError>
where
    T: Send + 'static,
    I: InfoSource + ?Sized,
{
    let (q_tx, mut q_rx) = mpsc::unbounded_channel::<Question>();
    let (r_tx, mut r_rx) = oneshot::channel::<Result<T, RunnerError>>();
    let state = Arc::new(JobState::default());
    let log_what = what.clone();
    let work = Box::new(move |py: Python<'_>| {
        let result = match Bound::new(py, Fetch { questions: q_tx }) {
            Ok(fetch) => body(py, fetch),
            Err(e) => Err(Failure::Raised(e)),
        };
        let _ = r_tx.send(result.map_err(|f| failure(py, f, &log_what)));
    });
    pool.submit(state.clone(), work).map_err(|_| {
        RunnerError::Unavailable("the in-process Python runner is shut down".into())
    })?;
    let mut pending = Pending {
        pool,
        state,
        armed: true,
    };
    let mut deadline = Instant::now() + timeout;
    loop {
        tokio::select! {
            biased;
            result = &mut r_rx => {
                pending.armed = false;
                return result.unwrap_or_else(|_| {
                    Err(RunnerError::Unavailable(format!("{what}: the Python call was lost")))
                });
            }
            Some(q) = q_rx.recv() => {
                let started = Instant::now();
                let answer = info.answer(&q.info).await;
                deadline += started.elapsed();
                let _ = q.answer.send(answer);
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(call = %what, ?timeout, "Python call timed out: interrupting it");
                // `pending` abandons the job when dropped.
                return Err(RunnerError::Timeout);
            }
        }
    }
}

/// A failure as the gateway sees it; a plugin's exception is logged with its traceback.
fn failure(py: Python<'_>, f: Failure, what: &What) -> RunnerError {
    match f {
        Failure::Raised(e) if interp::is_timeout(py, &e) => RunnerError::Timeout,
        Failure::Raised(e) => {
            tracing::warn!(call = %what, "Python plugin raised: {}", interp::describe(py, &e));
            RunnerError::Runner(ErrorCode::ServiceUnavailable)
        }
        Failure::Malformed(m) => {
            tracing::error!(call = %what, "ferrogate_sdk.inprocess answered out of contract: {m}");
            RunnerError::Protocol(m)
        }
    }
}
