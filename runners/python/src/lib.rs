//! The in-process Python runner: runs `sdk-python` plugins in the gateway's own process through
//! CPython embedded with pyo3, with no socket and no FlatBuffers. The plugin files are the same
//! as for the socket runner (`python -m ferrogate_sdk.runner`); swapping one for the other is a
//! change of the `ext-plugin.runners.<name>` config.
//!
//! ```no_run
//! # async fn demo(info: &impl runner_protocol::InfoSource) -> Result<(), Box<dyn std::error::Error>> {
//! use runner_protocol::{HttpRequest, KeyedRunner, Method, TextEntry};
//! use runner_python::{PythonRunner, PythonRunnerConfig};
//!
//! let config: PythonRunnerConfig = serde_json::from_str(
//!     r#"{"in_process": true, "paths": ["/opt/sdk-python/src", "/etc/ferrogate/plugins"]}"#,
//! )?;
//! let runner = PythonRunner::start("py", &config).await?;
//! let key = "route#1#ext-plugin-pre-req#42";
//! runner.prepare(key, vec![TextEntry::new("say", r#"{"body":"hi"}"#)]);
//! let call = HttpRequest {
//!     id: 0,
//!     src_ip: vec![127, 0, 0, 1].into(),
//!     method: Method::Get,
//!     path: "/hello".into(),
//!     args: vec![],
//!     headers: vec![TextEntry::new("host", "example.com")],
//!     conf_token: 0,
//! };
//! let reply = runner.request(key, call, info).await?;
//! # let _ = reply;
//! runner.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Threads, the GIL and timeouts
//! Python runs only on the runner's own pool of OS threads (`threads`, default 2), never on a
//! tokio worker: an async call queues a job and awaits its result. A worker holds the GIL only
//! while it runs Python; it releases it while it waits for a job and while a plugin waits for
//! an extra-info answer (a variable or a body), which the caller's task computes with its
//! [`InfoSource`](runner_protocol::InfoSource). A call that runs past `timeout` fails with
//! `RunnerError::Timeout` at once, and the plugin gets a `CallTimeout` exception thrown into its
//! thread; a replacement thread keeps the pool at its size meanwhile. A plugin that raises gives
//! `RunnerError::Runner(ServiceUnavailable)` and a log line with the traceback.
//!
//! The interpreter is initialised once per process, without Python's signal handlers (signals
//! stay the gateway's), on a thread that lives as long as the process; it is never finalised.
//!
//! # Layout
//! - [`config`]: [`PythonRunnerConfig`], the `ext-plugin.runners.<name>` entry, validated.
//! - [`runner`]: [`PythonRunner`], the per-runner handle: `runner_protocol::KeyedRunner`
//!   (prepare / forget / request / response by key, as `runner_ext::ExtRunner`) and
//!   `runner_protocol::Runner`.
//! - `call` (private): one call from the async side: the job, the extra-info questions, the
//!   deadline; the `fetch` callable plugins call.
//! - `convert` (private): neutral call types to `ferrogate_sdk.inprocess` arguments and back.
//! - `pool` (private): the bounded worker threads and how a timed-out call is interrupted.
//! - `interp` (private): interpreter start-up, the watchdog thread, cached Python objects.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod call;
pub mod config;
mod convert;
mod interp;
mod pool;
pub mod runner;

pub use config::{ConfigError, PythonRunnerConfig, DEFAULT_THREADS, DEFAULT_TIMEOUT};
pub use runner::{PythonRunner, StartError};
