//! [`PythonRunner`]: the handle of one in-process runner. The same keyed API as
//! `runner_ext::ExtRunner` (`prepare` / `forget` / `request` / `response` by key), and
//! [`Runner`] for raw conf tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use pyo3::prelude::*;
use runner_protocol::{
    ErrorCode, HttpRequest, HttpRequestReply, HttpResponse, HttpResponseReply, InfoSource,
    PrepareConf, Runner, RunnerError, TextEntry,
};
use tokio::sync::OnceCell;

use crate::call::{self, Failure, NoInfo};
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
    name: String,
    config: PythonRunnerConfig,
    timeout: Duration,
    pool: Pool,
    plugins: Vec<String>,
    next_id: AtomicU32,
    confs: Mutex<HashMap<String, Entry>>,
    tokens: Mutex<Tokens>,
}

/// A key's conf and its prepared form, made at most once (callers share an in-flight prepare).
struct Entry {
    conf: Arc<Vec<TextEntry>>,
    slot: Arc<OnceCell<Prepared>>,
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
            format!("{name} load").into(),
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
                name: name.to_owned(),
                config: config.clone(),
                timeout,
                pool,
                plugins,
                next_id: AtomicU32::new(1),
                confs: Mutex::new(HashMap::new()),
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

    /// Registers `conf` under `key` and starts preparing it in the background (returns at once;
    /// without a tokio runtime the first call prepares it). Preparing the same key again with
    /// the same conf does nothing; with another conf it replaces the entry.
    pub fn prepare(&self, key: &str, conf: Vec<TextEntry>) {
        let (conf, slot) = {
            let mut confs = self.inner.lock_confs();
            if confs.get(key).is_some_and(|e| *e.conf == conf) {
                return;
            }
            let entry = Entry {
                conf: Arc::new(conf),
                slot: Arc::new(OnceCell::new()),
            };
            let out = (entry.conf.clone(), entry.slot.clone());
            confs.insert(key.to_owned(), entry);
            out
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let inner = Arc::downgrade(&self.inner);
            let key = key.to_owned();
            rt.spawn(warm(inner, key, conf, slot));
        }
    }

    /// Forgets `key` (its owner's config version is gone); its prepared conf is dropped when
    /// the calls using it end.
    pub fn forget(&self, key: &str) {
        self.inner.lock_confs().remove(key);
    }

    /// The keys currently registered.
    pub fn keys(&self) -> Vec<String> {
        self.inner.lock_confs().keys().cloned().collect()
    }

    /// Whether `key`'s conf is prepared (not merely registered).
    pub fn is_prepared(&self, key: &str) -> bool {
        self.inner
            .lock_confs()
            .get(key)
            .is_some_and(|e| e.slot.initialized())
    }

    /// Waits for (or does) the prepare of `key`.
    ///
    /// # Errors
    /// [`RunnerError::Unavailable`] for a key never registered; the prepare's error otherwise
    /// (a conf a plugin refuses: [`RunnerError::Runner`] with `ServiceUnavailable`).
    pub async fn ready(&self, key: &str) -> Result<(), RunnerError> {
        self.inner.prepared(key).await.map(|_| ())
    }

    /// Runs the request-phase plugins of `key`'s conf on `call` (`conf_token` is ignored; `id`
    /// is assigned when 0). A key whose conf is not prepared yet is prepared first.
    ///
    /// # Errors
    /// [`RunnerError::Unavailable`] for an unknown key or after shutdown;
    /// [`RunnerError::Timeout`] past the timeout; [`RunnerError::Runner`] with
    /// `ServiceUnavailable` when a plugin raised (logged with its traceback).
    pub async fn request<I: InfoSource>(
        &self,
        key: &str,
        mut call: HttpRequest,
        info: &I,
    ) -> Result<HttpRequestReply, RunnerError> {
        let prepared = self.inner.prepared(key).await?;
        call.id = self.inner.stamp(call.id);
        self.inner.request(prepared, call, info, key).await
    }

    /// Runs the response-phase plugins of `key`'s conf on an upstream response; as
    /// [`PythonRunner::request`].
    ///
    /// # Errors
    /// As [`PythonRunner::request`].
    pub async fn response<I: InfoSource>(
        &self,
        key: &str,
        mut call: HttpResponse,
        info: &I,
    ) -> Result<HttpResponseReply, RunnerError> {
        let prepared = self.inner.prepared(key).await?;
        call.id = self.inner.stamp(call.id);
        self.inner.response(prepared, call, info, key).await
    }

    /// Stops taking calls (later ones fail with [`RunnerError::Unavailable`]) and waits, up to
    /// the call timeout, for the Python threads to finish their calls and end. The interpreter
    /// itself stays (it cannot be restarted in a process); prepared confs are dropped.
    pub async fn shutdown(&self) {
        if !self.inner.pool.shutdown(self.inner.timeout).await {
            tracing::warn!(runner = %self.inner.name, "Python threads still busy at shutdown");
        }
        self.inner.lock_confs().clear();
        let mut tokens = self.inner.lock_tokens();
        tokens.by_token.clear();
        tokens.by_key.clear();
    }
}

async fn warm(
    inner: Weak<Inner>,
    key: String,
    conf: Arc<Vec<TextEntry>>,
    slot: Arc<OnceCell<Prepared>>,
) {
    let Some(inner) = inner.upgrade() else { return };
    let res = slot.get_or_try_init(|| inner.prepare_now(conf, &key)).await;
    if let Err(e) = res {
        tracing::warn!(runner = %inner.name, key, "prepare failed: {e}");
    }
}

impl Inner {
    fn lock_confs(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Never held across an await; a poisoned map is still a valid map.
        self.confs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_tokens(&self) -> MutexGuard<'_, Tokens> {
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

    fn what(&self, key: &str, phase: &str) -> Arc<str> {
        format!("{} {phase} {key}", self.name).into()
    }

    async fn prepared(&self, key: &str) -> Result<Prepared, RunnerError> {
        let (conf, slot) = {
            let confs = self.lock_confs();
            let Some(e) = confs.get(key) else {
                return Err(RunnerError::Unavailable(format!(
                    "no conf registered for key `{key}`"
                )));
            };
            (e.conf.clone(), e.slot.clone())
        };
        slot.get_or_try_init(|| self.prepare_now(conf, key))
            .await
            .cloned()
    }

    async fn prepare_now(
        &self,
        conf: Arc<Vec<TextEntry>>,
        key: &str,
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

    async fn request<I: InfoSource>(
        &self,
        prepared: Prepared,
        call: HttpRequest,
        info: &I,
        key: &str,
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

    async fn response<I: InfoSource>(
        &self,
        prepared: Prepared,
        call: HttpResponse,
        info: &I,
        key: &str,
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

impl Runner for PythonRunner {
    /// A raw prepare: a new token for `conf` (replacing the previous token of the same key).
    /// [`PythonRunner::prepare`] is the cached, keyed form.
    async fn prepare_conf(&self, conf: PrepareConf) -> Result<u32, RunnerError> {
        let key = String::from_utf8_lossy(&conf.key).into_owned();
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
    async fn http_request<I: InfoSource>(
        &self,
        mut call: HttpRequest,
        info: &I,
    ) -> Result<HttpRequestReply, RunnerError> {
        let prepared = self.inner.by_token(call.conf_token)?;
        call.id = self.inner.stamp(call.id);
        let key = format!("token {}", call.conf_token);
        self.inner.request(prepared, call, info, &key).await
    }

    /// A raw response call with the caller's `conf_token`; as
    /// [`PythonRunner::http_request`](Runner::http_request).
    async fn http_response<I: InfoSource>(
        &self,
        mut call: HttpResponse,
        info: &I,
    ) -> Result<HttpResponseReply, RunnerError> {
        let prepared = self.inner.by_token(call.conf_token)?;
        call.id = self.inner.stamp(call.id);
        let key = format!("token {}", call.conf_token);
        self.inner.response(prepared, call, info, &key).await
    }
}
