//! [`PythonRunner`]: the handle of one in-process runner. [`KeyedRunner`], as
//! `runner_ext::ExtRunner` (prepared confs by key in a [`ConfCache`]), and [`Runner`] for raw
//! conf tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use pyo3::prelude::*;
use runner_protocol::{
    ConfCache, DynInfoSource, ErrorCode, HttpRequest, HttpRequestReply, HttpResponse,
    HttpResponseReply, InfoSource, KeyedCall, KeyedRunner, Prepare, PrepareConf, Runner,
    RunnerError, TextEntry,
};

use crate::call::{self, Failure, NoInfo, What};
use crate::config::{ConfigError, PythonRunnerConfig};
use crate::convert;
use crate::interp;
use crate::pool::Pool;

/// Why a runner could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The interpreter, the SDK or a plugin could not be loaded (the text has Python's
    /// traceback).
    #[error("in-process Python runner `{name}`: {reason}")]
    Python {
        /// The runner's name.
        name: String,
        /// What failed.
        reason: String,
    },
}

/// The least time loading the plugins at start-up may take (more when `timeout` is longer).
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// A prepared conf: `ferrogate_sdk.PreparedConf`, shared by the calls using it.
type Prepared = Arc<Py<PyAny>>;

/// The handle of one in-process runner (cheap to clone).
#[derive(Clone)]
pub struct PythonRunner {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PythonRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonRunner")
            .field("name", &self.inner.name)
            .field("threads", &self.inner.config.threads)
            .field("plugins", &self.inner.plugins)
            .finish_non_exhaustive()
    }
}

struct Inner {
    name: Arc<str>,
    config: PythonRunnerConfig,
    timeout: Duration,
    pool: Pool,
    plugins: Vec<String>,
    next_id: AtomicU32,
    /// Prepared confs by key (they never go stale: the interpreter lives as long as the
    /// process).
    confs: ConfCache<Prepared>,
    tokens: Mutex<Tokens>,
}

/// The raw [`Runner`] API's tokens; one per `PrepareConf.key` (a new prepare of a key replaces
/// its token, so the map does not grow with re-prepares).
#[derive(Default)]
struct Tokens {
    last: u32,
    by_token: HashMap<u32, Prepared>,
    by_key: HashMap<Bytes, u32>,
}

impl PythonRunner {
    /// Validates `config`, initialises the interpreter (once per process), starts the thread
    /// pool and loads the plugins (`sys.path` gets the directories of `paths`, then
    /// `ferrogate_sdk.inprocess.load(paths, modules)`). Needs a tokio runtime.
    ///
    /// Plugins register in the SDK's process-wide registry: several in-process runners share one
    /// interpreter and see each other's plugins.
    ///
    /// # Errors
    /// An invalid config ([`StartError::Config`], paths under `ext-plugin.runners.<name>`); no
    /// usable Python, no `ferrogate_sdk`, or a plugin that fails to import
    /// ([`StartError::Python`]).
    pub async fn start(name: &str, config: &PythonRunnerConfig) -> Result<Self, StartError> {
        config.validate(&format!("ext-plugin.runners.{name}"))?;
        let runner: Arc<str> = name.into();
        let fail = |reason: String| StartError::Python {
            name: name.to_owned(),
            reason,
        };
        let watchdog = tokio::task::spawn_blocking(interp::watchdog)
            .await
            .map_err(|e| fail(format!("interpreter start-up failed: {e}")))?
            .map_err(fail)?;
        let pool = Pool::start(name, config.threads, watchdog).map_err(fail)?;
        let timeout = config.timeout();
        // Importing plugins may take longer than a call; loads of several runners take turns.
        let load_timeout = timeout.max(LOAD_TIMEOUT);
        let (paths, modules) = (config.paths.clone(), config.modules.clone());
        let loaded = call::run(
            &pool,
            load_timeout,
            &NoInfo,
            What::new(runner.clone(), "load", None),
            Box::new(move |py, _fetch| {
                Ok(interp::load(py, &paths, &modules).map_err(|e| interp::describe(py, &e)))
            }),
        )
        .await;
        let plugins = match loaded {
            Ok(Ok(names)) => names,
            Ok(Err(traceback)) => {
                pool.shutdown(Duration::from_secs(1)).await;
                return Err(fail(format!("loading plugins failed:\n{traceback}")));
            }
            Err(e) => {
                pool.shutdown(Duration::from_secs(1)).await;
                return Err(fail(format!("loading plugins failed: {e}")));
            }
        };
        tracing::info!(
            runner = name,
            threads = config.threads,
            ?plugins,
            "in-process Python runner ready"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                name: runner,
                config: config.clone(),
                timeout,
                pool,
                plugins,
                next_id: AtomicU32::new(1),
                confs: ConfCache::default(),
                tokens: Mutex::new(Tokens::default()),
            }),
        })
    }

    /// The runner's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its config.
    pub fn config(&self) -> &PythonRunnerConfig {
        &self.inner.config
    }

    /// The plugin names registered when it started.
    pub fn plugins(&self) -> &[String] {
        &self.inner.plugins
    }

    /// Python threads alive now: `threads`, plus replacements for timed-out calls whose
    /// thread has not come back yet (at most `2 x threads` in all).
    pub fn live_threads(&self) -> usize {
        self.inner.pool.live()
    }

    /// Whether `key`'s conf is prepared (not merely registered).
    pub fn is_prepared(&self, key: &str) -> bool {
        self.inner.confs.cached(key).is_some()
    }

    /// Waits for (or does) the prepare of `key`.
    ///
    /// # Errors
    /// [`RunnerError::Unavailable`] for a key never registered; the prepare's error otherwise
    /// (a conf a plugin refuses: [`RunnerError::Runner`] with `ServiceUnavailable`).
    pub async fn ready(&self, key: &str) -> Result<(), RunnerError> {
        self.inner.prepared(key).await.map(|_| ())
    }

    /// Stops taking calls (later ones fail with [`RunnerError::Unavailable`]) and waits, up to
    /// the call timeout, for the Python threads to finish their calls and end. The interpreter
    /// itself stays (it cannot be restarted in a process); prepared confs are dropped.
    pub async fn shutdown(&self) {
        if !self.inner.pool.shutdown(self.inner.timeout).await {
            tracing::warn!(runner = %self.inner.name, "Python threads still busy at shutdown");
        }
        self.inner.confs.clear();
        let mut tokens = self.inner.lock_tokens();
        tokens.by_token.clear();
        tokens.by_key.clear();
    }
}

impl Inner {
    fn lock_tokens(&self) -> MutexGuard<'_, Tokens> {
        // Never held across an await; a poisoned map is still a valid map.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stamp(&self, id: u32) -> u32 {
        if id != 0 {
            return id;
        }
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    fn what(&self, key: &Arc<str>, phase: &'static str) -> What {
        What::new(self.name.clone(), phase, Some(key.clone()))
    }

    /// The prepared conf of `key` (prepared now if needed) and the key as the cache holds it.
    async fn prepared(&self, key: &str) -> Result<(Prepared, Arc<str>), RunnerError> {
        let slot = self.confs.current(key)?;
        let prepared = slot.fill(self).await?;
        Ok((prepared, slot.key().clone()))
    }

    async fn prepare_now(
        &self,
        conf: Arc<Vec<TextEntry>>,
        key: &Arc<str>,
    ) -> Result<Prepared, RunnerError> {
        let prepared = call::run(
            &self.pool,
            self.timeout,
            &NoInfo,
            self.what(key, "prepare"),
            Box::new(move |py, _fetch| {
                let sdk = interp::sdk(py)?;
                let list = convert::conf_list(py, &conf)?;
                Ok(sdk.prepare.call1(py, (list,))?)
            }),
        )
        .await?;
        Ok(Arc::new(prepared))
    }

    async fn request<I: InfoSource + ?Sized>(
        &self,
        prepared: Prepared,
        call: HttpRequest,
        info: &I,
        key: &Arc<str>,
    ) -> Result<HttpRequestReply, RunnerError> {
        call::run(
            &self.pool,
            self.timeout,
            info,
            self.what(key, "request"),
            Box::new(move |py, fetch| {
                let sdk = interp::sdk(py).map_err(Failure::Raised)?;
                convert::request(py, sdk, &prepared, &call, fetch)
            }),
        )
        .await
    }

    async fn response<I: InfoSource + ?Sized>(
        &self,
        prepared: Prepared,
        call: HttpResponse,
        info: &I,
        key: &Arc<str>,
    ) -> Result<HttpResponseReply, RunnerError> {
        call::run(
            &self.pool,
            self.timeout,
            info,
            self.what(key, "response"),
            Box::new(move |py, fetch| {
                let sdk = interp::sdk(py).map_err(Failure::Raised)?;
                convert::response(py, sdk, &prepared, &call, fetch)
            }),
        )
        .await
    }

    fn by_token(&self, token: u32) -> Result<Prepared, RunnerError> {
        self.lock_tokens()
            .by_token
            .get(&token)
            .cloned()
            .ok_or(RunnerError::Runner(ErrorCode::ConfTokenNotFound))
    }
}

impl Prepare for Inner {
    type Token = Prepared;

    async fn prepare(
        &self,
        key: &Arc<str>,
        conf: &Arc<Vec<TextEntry>>,
    ) -> Result<Prepared, RunnerError> {
        self.prepare_now(conf.clone(), key).await
    }
}

impl KeyedRunner for PythonRunner {
    fn name(&self) -> &str {
        PythonRunner::name(self)
    }

    fn prepare(&self, key: &str, conf: Vec<TextEntry>) {
        if let Some(pending) = self.inner.confs.insert(key, conf) {
            pending.warm(Arc::downgrade(&self.inner), self.inner.name.clone());
        }
    }

    /// Its prepared conf is dropped when the calls using it end.
    fn forget(&self, key: &str) {
        self.inner.confs.remove(key);
    }

    fn keys(&self) -> Vec<String> {
        self.inner.confs.keys()
    }

    /// `conf_token` is ignored. Errors beyond the trait's: [`RunnerError::Unavailable`] after
    /// shutdown; [`RunnerError::Timeout`] past the timeout; [`RunnerError::Runner`] with
    /// `ServiceUnavailable` when a plugin raised (logged with its traceback).
    fn request<'a>(
        &'a self,
        key: &'a str,
        mut call: HttpRequest,
        info: &'a dyn DynInfoSource,
    ) -> KeyedCall<'a, HttpRequestReply> {
        Box::pin(async move {
            let (prepared, key) = self.inner.prepared(key).await?;
            call.id = self.inner.stamp(call.id);
            self.inner.request(prepared, call, info, &key).await
        })
    }

    /// As [`KeyedRunner::request`] for this runner.
    fn response<'a>(
        &'a self,
        key: &'a str,
        mut call: HttpResponse,
        info: &'a dyn DynInfoSource,
    ) -> KeyedCall<'a, HttpResponseReply> {
        Box::pin(async move {
            let (prepared, key) = self.inner.prepared(key).await?;
            call.id = self.inner.stamp(call.id);
            self.inner.response(prepared, call, info, &key).await
        })
    }
}

impl Runner for PythonRunner {
    /// A raw prepare: a new token for `conf` (replacing the previous token of the same key).
    /// [`KeyedRunner::prepare`] is the cached, keyed form.
    async fn prepare_conf(&self, conf: PrepareConf) -> Result<u32, RunnerError> {
        let key: Arc<str> = String::from_utf8_lossy(&conf.key).into();
        let prepared = self.inner.prepare_now(Arc::new(conf.conf), &key).await?;
        let mut tokens = self.inner.lock_tokens();
        let token = loop {
            tokens.last = tokens.last.wrapping_add(1);
            if tokens.last != 0 && !tokens.by_token.contains_key(&tokens.last) {
                break tokens.last;
            }
        };
        if let Some(old) = tokens.by_key.insert(conf.key, token) {
            tokens.by_token.remove(&old);
        }
        tokens.by_token.insert(token, prepared);
        Ok(token)
    }

    /// A raw request call with the caller's `conf_token` (`id` assigned when 0); an unknown
    /// token gives `CONF_TOKEN_NOT_FOUND`.
    async fn http_request<I: InfoSource + ?Sized>(
        &self,
        mut call: HttpRequest,
        info: &I,
    ) -> Result<HttpRequestReply, RunnerError> {
        let prepared = self.inner.by_token(call.conf_token)?;
        call.id = self.inner.stamp(call.id);
        let key: Arc<str> = format!("token {}", call.conf_token).into();
        self.inner.request(prepared, call, info, &key).await
    }

    /// A raw response call with the caller's `conf_token`; as
    /// [`PythonRunner::http_request`](Runner::http_request).
    async fn http_response<I: InfoSource + ?Sized>(
        &self,
        mut call: HttpResponse,
        info: &I,
    ) -> Result<HttpResponseReply, RunnerError> {
        let prepared = self.inner.by_token(call.conf_token)?;
        call.id = self.inner.stamp(call.id);
        let key: Arc<str> = format!("token {}", call.conf_token).into();
        self.inner.response(prepared, call, info, &key).await
    }
}
