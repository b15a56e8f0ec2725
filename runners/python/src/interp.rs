//! The process's one interpreter: initialised once, without signal handlers, on a dedicated
//! thread that lives as long as the process (the watchdog, which interrupts calls past their
//! timeout); the Python objects the runner calls, cached with `PyOnceLock`.

use std::sync::mpsc;
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyModule};

use crate::pool::Interrupt;

/// Python helpers of the runner itself (not the SDK's): the timeout exception, the two
/// `PyThreadState_SetAsyncExc` prototypes (through `ctypes`, so the Rust side stays free of
/// `unsafe`), plugin loading (`sys.path` setup, one load at a time) and traceback formatting.
const HELPERS: &std::ffi::CStr = cr#"
import ctypes
import os
import sys
import threading
import traceback


class CallTimeout(KeyboardInterrupt):
    """Thrown into a plugin's thread when its call runs past the runner's timeout.

    A KeyboardInterrupt: a plugin's ``except Exception`` does not swallow it, and neither does
    asyncio (its callbacks log and drop other BaseExceptions, which could leave a task that
    never ends and a loop blocked in ``select`` for good)."""


# PYFUNCTYPE: called with the GIL held and without releasing it.
interrupt = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
clear = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


# The SDK's loader puts a plugin file in sys.modules before running it: two runners loading the
# same file at once would see a half-registered plugin set. Loads take turns.
_load_lock = threading.Lock()


def load(paths, modules):
    with _load_lock:
        for p in reversed(paths):
            p = os.path.abspath(p)
            if os.path.isdir(p) and p not in sys.path:
                sys.path.insert(0, p)
        from ferrogate_sdk import inprocess

        return inprocess.load(paths, modules)


def forget_thread():
    """A worker thread ends: drop the `threading` record that naming it made, which Python
    keeps for threads it did not start."""
    with threading._active_limbo_lock:
        threading._active.pop(threading.get_ident(), None)


def describe(exc):
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
"#;

/// The runner's helpers, from [`HELPERS`].
pub(crate) struct Helpers {
    /// `CallTimeout`.
    pub(crate) timeout: Py<PyAny>,
    /// `interrupt(ident, CallTimeout)`: a C call, runs no bytecode.
    pub(crate) interrupt: Py<PyAny>,
    /// `clear(ident, None)`: drops a pending asynchronous exception; a C call.
    pub(crate) clear: Py<PyAny>,
    load: Py<PyAny>,
    /// `forget_thread()`: on a worker thread that ends.
    pub(crate) forget_thread: Py<PyAny>,
    describe: Py<PyAny>,
}

/// `ferrogate_sdk.inprocess`'s functions.
pub(crate) struct Sdk {
    pub(crate) prepare: Py<PyAny>,
    pub(crate) request_call: Py<PyAny>,
    pub(crate) response_call: Py<PyAny>,
}

static HELPER_OBJECTS: PyOnceLock<Helpers> = PyOnceLock::new();
static SDK: PyOnceLock<Sdk> = PyOnceLock::new();

/// The interpreter's keeper: where interrupts are sent.
pub(crate) struct Watchdog {
    tx: mpsc::Sender<Interrupt>,
}

static WATCHDOG: OnceLock<Result<Watchdog, String>> = OnceLock::new();

/// Initialises the interpreter (once per process) and starts the watchdog thread. Blocks until
/// the interpreter is ready: call it off the async runtime.
///
/// # Errors
/// The interpreter or the runner's helpers could not be set up (e.g. no `ctypes`).
pub(crate) fn watchdog() -> Result<&'static Watchdog, String> {
    WATCHDOG
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Interrupt>();
            let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
            let spawned = std::thread::Builder::new()
                .name("py-watchdog".into())
                .spawn(move || {
                    // Py_InitializeEx(0): Python installs no signal handlers; signals stay the
                    // gateway's. This thread is Python's "main thread" and never ends.
                    Python::initialize();
                    let ready =
                        Python::attach(|py| helpers(py).map(|_| ()).map_err(|e| describe(py, &e)));
                    let ok = ready.is_ok();
                    let _ = ready_tx.send(ready);
                    if ok {
                        for interrupt in rx {
                            interrupt.deliver();
                        }
                    }
                });
            if let Err(e) = spawned {
                return Err(format!("cannot start the Python watchdog thread: {e}"));
            }
            match ready_rx.recv() {
                Ok(Ok(())) => Ok(Watchdog { tx }),
                Ok(Err(e)) => Err(format!("cannot initialise Python: {e}")),
                Err(_) => Err("the Python watchdog thread died while starting".into()),
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Watchdog {
    /// Asks the watchdog to interrupt a call (it checks, holding the GIL, that the call still
    /// runs).
    pub(crate) fn send(&self, interrupt: Interrupt) {
        // The watchdog thread lives as long as the process once started.
        let _ = self.tx.send(interrupt);
    }
}

/// The runner's helpers (made on first use).
pub(crate) fn helpers(py: Python<'_>) -> PyResult<&Helpers> {
    HELPER_OBJECTS.get_or_try_init(py, || {
        let m = PyModule::from_code(
            py,
            HELPERS,
            c"<ferrogate runner-python>",
            c"_ferrogate_runner",
        )?;
        let get = |name: &str| m.getattr(name).map(Bound::unbind);
        Ok(Helpers {
            timeout: get("CallTimeout")?,
            interrupt: get("interrupt")?,
            clear: get("clear")?,
            load: get("load")?,
            forget_thread: get("forget_thread")?,
            describe: get("describe")?,
        })
    })
}

/// Puts the directories of `paths` on `sys.path`, imports `ferrogate_sdk.inprocess` (once per
/// process) and loads the plugins; returns the plugin names registered so far.
pub(crate) fn load(py: Python<'_>, paths: &[String], modules: &[String]) -> PyResult<Vec<String>> {
    let h = helpers(py)?;
    let names = h
        .load
        .call1(py, (PyList::new(py, paths)?, PyList::new(py, modules)?))?;
    sdk(py)?;
    names.extract(py)
}

/// `ferrogate_sdk.inprocess` (imported on first use).
pub(crate) fn sdk(py: Python<'_>) -> PyResult<&Sdk> {
    SDK.get_or_try_init(py, || {
        let m = py.import("ferrogate_sdk.inprocess")?;
        let get = |name: &str| m.getattr(name).map(Bound::unbind);
        Ok(Sdk {
            prepare: get("prepare")?,
            request_call: get("request_call")?,
            response_call: get("response_call")?,
        })
    })
}

/// An exception with its traceback, for the log.
pub(crate) fn describe(py: Python<'_>, err: &PyErr) -> String {
    let text = helpers(py).and_then(|h| {
        h.describe
            .call1(py, (err.value(py),))
            .and_then(|s| s.extract::<String>(py))
    });
    match text {
        Ok(t) => t.trim_end().to_owned(),
        Err(_) => err.to_string(),
    }
}

/// Whether `err` is the runner's timeout, thrown into the thread.
pub(crate) fn is_timeout(py: Python<'_>, err: &PyErr) -> bool {
    helpers(py).is_ok_and(|h| err.is_instance(py, h.timeout.bind(py)))
}
