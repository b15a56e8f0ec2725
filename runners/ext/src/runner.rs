//! [`ExtRunner`]: the handle of one runner. It implements [`Runner`] over its connection pool,
//! and [`KeyedRunner`] with the runner's conf tokens by key in a [`ConfCache`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use runner_protocol::{
    ConfCache, DynInfoSource, ErrorCode, HttpRequest, HttpRequestReply, HttpResponse,
    HttpResponseReply, InfoSource, KeyedCall, KeyedRunner, MessageType, Pending, Prepare,
    PrepareConf, Runner, RunnerError, TextEntry, ToGateway, ToRunner,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::RunnerSpec;
use crate::conn::{empty_reply, NoInfo};
use crate::pool::Pool;
use crate::supervisor::{RunnerState, Status};

/// Attempts of a call by key when the runner answers `CONF_TOKEN_NOT_FOUND`.
pub const ATTEMPTS: usize = 3;

/// The handle of one runner (cheap to clone). Calls wait up to `connect_timeout` for a runner
/// that is (re)starting.
#[derive(Debug, Clone)]
pub struct ExtRunner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    spec: RunnerSpec,
    /// `spec.name`, for background prepares' logs.
    name: Arc<str>,
    socket: PathBuf,
    status: watch::Receiver<Status>,
    pool: Pool,
    next_id: AtomicU32,
    tokens: ConfCache<Prepared>,
}

/// A conf token and the runner process that issued it.
#[derive(Debug, Clone, Copy)]
struct Prepared {
    token: u32,
    generation: u64,
    at: Instant,
}

/// Why a call on a token did not complete.
enum CallFailure {
    Error(RunnerError),
    /// The connection belongs to another process than the token.
    StaleToken,
}

impl ExtRunner {
    /// A handle over `socket`, following `status`; `shutdown` ends its maintenance task.
    pub(crate) fn new(
        spec: RunnerSpec,
        socket: PathBuf,
        status: watch::Receiver<Status>,
        shutdown: CancellationToken,
    ) -> Self {
        let pool = Pool::new(
            socket.clone(),
            spec.pool_size,
            status.clone(),
            spec.connect_timeout,
            spec.read_timeout,
        );
        let inner = Arc::new(Inner {
            name: spec.name.as_str().into(),
            spec,
            socket,
            status,
            pool,
            next_id: AtomicU32::new(1),
            tokens: ConfCache::default(),
        });
        tokio::spawn(maintain(Arc::downgrade(&inner), shutdown));
        Self { inner }
    }

    /// The runner's name.
    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    /// The resolved settings.
    pub fn spec(&self) -> &RunnerSpec {
        &self.inner.spec
    }

    /// The socket the gateway connects to.
    pub fn socket_path(&self) -> &Path {
        &self.inner.socket
    }

    /// The current state, generation and process id.
    pub fn status(&self) -> Status {
        *self.inner.status.borrow()
    }

    /// Waits until the runner accepts connections; returns its generation.
    ///
    /// # Errors
    /// [`RunnerError::Unavailable`] when it is not ready within `timeout` or was shut down.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<u64, RunnerError> {
        self.inner.pool.ready_generation(timeout).await
    }

    /// The token of `key`, waiting for (or doing) its prepare.
    ///
    /// # Errors
    /// The prepare's error, or [`RunnerError::Unavailable`] for a key never prepared.
    pub async fn token(&self, key: &str) -> Result<u32, RunnerError> {
        Ok(self.inner.token(key).await?.1.token)
    }

    /// The token cached for `key` and the generation of the runner process that issued it,
    /// without preparing anything. `None` for an unknown key or one not prepared (yet).
    pub fn cached_token(&self, key: &str) -> Option<(u32, u64)> {
        let p = self.inner.tokens.cached(key)?;
        Some((p.token, p.generation))
    }

    /// A call with the conf of `key`: fills `conf_token` (and `id` when 0); on
    /// `CONF_TOKEN_NOT_FOUND` drops this runner's tokens, prepares again and retries,
    /// [`ATTEMPTS`] attempts in all.
    async fn keyed<I: InfoSource + ?Sized>(
        &self,
        key: &str,
        mut msg: ToRunner,
        info: &I,
    ) -> Result<ToGateway, RunnerError> {
        let id = self.inner.stamp(&mut msg);
        let mut last = RunnerError::Unavailable("no attempt made".into());
        for _ in 0..ATTEMPTS {
            let (slot, prepared) = self.inner.token(key).await?;
            match &mut msg {
                ToRunner::HttpRequest(c) => c.conf_token = prepared.token,
                ToRunner::HttpResponse(c) => c.conf_token = prepared.token,
                _ => {}
            }
            match self
                .inner
                .http_call(&msg, id, info, Some(prepared.generation))
                .await
            {
                Ok(reply) => return Ok(reply),
                Err(CallFailure::Error(RunnerError::Runner(ErrorCode::ConfTokenNotFound))) => {
                    last = RunnerError::Runner(ErrorCode::ConfTokenNotFound);
                    self.inner.drop_tokens(&slot);
                }
                Err(CallFailure::StaleToken) => {
                    last = RunnerError::Runner(ErrorCode::ConfTokenNotFound);
                    self.inner.tokens.replace(&slot);
                }
                Err(CallFailure::Error(e)) => return Err(e),
            }
        }
        Err(last)
    }

    pub(crate) fn close(&self) {
        self.inner.pool.close();
    }
}

impl KeyedRunner for ExtRunner {
    fn name(&self) -> &str {
        ExtRunner::name(self)
    }

    /// Needs a tokio runtime to prepare in the background.
    fn prepare(&self, key: &str, conf: Vec<TextEntry>) {
        if let Some(pending) = self.inner.tokens.insert(key, conf) {
            self.inner.warm(pending);
        }
    }

    /// Its token expires on the runner side.
    fn forget(&self, key: &str) {
        self.inner.tokens.remove(key);
    }

    fn keys(&self) -> Vec<String> {
        self.inner.tokens.keys()
    }

    /// A request call (type 2); tokens as described on `keyed`.
    fn request<'a>(
        &'a self,
        key: &'a str,
        call: HttpRequest,
        info: &'a dyn DynInfoSource,
    ) -> KeyedCall<'a, HttpRequestReply> {
        Box::pin(async move {
            match self.keyed(key, ToRunner::HttpRequest(call), info).await? {
                ToGateway::HttpRequestReply(r) => Ok(r),
                other => Err(mismatch(&other)),
            }
        })
    }

    /// A response call (type 4); tokens as for a request.
    fn response<'a>(
        &'a self,
        key: &'a str,
        call: HttpResponse,
        info: &'a dyn DynInfoSource,
    ) -> KeyedCall<'a, HttpResponseReply> {
        Box::pin(async move {
            match self.keyed(key, ToRunner::HttpResponse(call), info).await? {
                ToGateway::HttpResponseReply(r) => Ok(r),
                other => Err(mismatch(&other)),
            }
        })
    }
}

impl Runner for ExtRunner {
    /// A raw prepare; [`KeyedRunner::prepare`] is the cached, keyed form.
    async fn prepare_conf(&self, conf: PrepareConf) -> Result<u32, RunnerError> {
        self.inner.prepare_now(conf).await.map(|p| p.token)
    }

    /// A raw request call with the caller's `conf_token`; `id` is assigned when 0.
    async fn http_request<I: InfoSource + ?Sized>(
        &self,
        call: HttpRequest,
        info: &I,
    ) -> Result<HttpRequestReply, RunnerError> {
        let mut msg = ToRunner::HttpRequest(call);
        let id = self.inner.stamp(&mut msg);
        match self.inner.http_call(&msg, id, info, None).await {
            Ok(ToGateway::HttpRequestReply(r)) => Ok(r),
            Ok(other) => Err(mismatch(&other)),
            Err(e) => Err(e.into_error()),
        }
    }

    /// A raw response call with the caller's `conf_token`; `id` is assigned when 0.
    async fn http_response<I: InfoSource + ?Sized>(
        &self,
        call: HttpResponse,
        info: &I,
    ) -> Result<HttpResponseReply, RunnerError> {
        let mut msg = ToRunner::HttpResponse(call);
        let id = self.inner.stamp(&mut msg);
        match self.inner.http_call(&msg, id, info, None).await {
            Ok(ToGateway::HttpResponseReply(r)) => Ok(r),
            Ok(other) => Err(mismatch(&other)),
            Err(e) => Err(e.into_error()),
        }
    }
}

impl CallFailure {
    fn into_error(self) -> RunnerError {
        match self {
            CallFailure::Error(e) => e,
            CallFailure::StaleToken => RunnerError::Runner(ErrorCode::ConfTokenNotFound),
        }
    }
}

impl Inner {
    fn next_id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    fn refresh_after(&self) -> Duration {
        self.spec.conf_expire_time.mul_f64(0.9)
    }

    /// Prepares in the background (joins an in-flight prepare of the same slot).
    fn warm(self: &Arc<Self>, pending: Pending<Prepared>) {
        pending.warm(Arc::downgrade(self), self.name.clone());
    }

    /// The current slot and token of `key`, preparing when needed. A token of another
    /// generation or older than 0.9 x conf_expire_time is replaced (once).
    async fn token(&self, key: &str) -> Result<(Pending<Prepared>, Prepared), RunnerError> {
        let mut replaced = false;
        loop {
            let slot = self.tokens.current(key)?;
            let prepared = slot.fill(self).await?;
            let generation = self.status.borrow().generation;
            let stale =
                prepared.generation != generation || prepared.at.elapsed() >= self.refresh_after();
            if stale && !replaced {
                replaced = true;
                self.tokens.replace(&slot);
                continue;
            }
            return Ok((slot, prepared));
        }
    }

    /// `CONF_TOKEN_NOT_FOUND` on `stale`: drops every token of this runner (once per stale
    /// token: concurrent failures of the same token do not cascade) and prepares them again.
    fn drop_tokens(self: &Arc<Self>, stale: &Pending<Prepared>) {
        let rewarm = self.tokens.reset_all(stale);
        if !rewarm.is_empty() {
            tracing::info!(runner = %self.spec.name, key = %stale.key(), "conf token not found: dropping this runner's tokens");
        }
        for pending in rewarm {
            self.warm(pending);
        }
    }

    /// After a respawn (`generation` ready): every token of an older process is replaced and
    /// prepared again; unprepared keys are prepared.
    fn reprepare(self: &Arc<Self>, generation: u64) {
        for pending in self.tokens.renew(|p| p.generation == generation) {
            self.warm(pending);
        }
    }

    /// Prepares a fresh slot for every token older than `older_than` and swaps it in when done,
    /// so calls keep using the old token meanwhile.
    fn refresh(self: &Arc<Self>, older_than: Duration) {
        for old in self.tokens.due(|p| p.at.elapsed() >= older_than) {
            let this = Arc::downgrade(self);
            tokio::spawn(async move {
                let Some(this) = this.upgrade() else { return };
                let fresh = old.renewal();
                match fresh.fill(&*this).await {
                    Ok(_) => {
                        this.tokens.swap(&old, &fresh);
                    }
                    Err(e) => {
                        tracing::warn!(runner = %this.spec.name, key = %old.key(), "token refresh failed: {e}")
                    }
                }
            });
        }
    }

    async fn prepare_now(&self, conf: PrepareConf) -> Result<Prepared, RunnerError> {
        let mut pooled = self.pool.get().await?;
        let generation = pooled.conn.generation;
        let out = pooled
            .conn
            .call::<NoInfo>(
                &ToRunner::PrepareConf(conf),
                MessageType::PrepareConf,
                None,
                self.spec.read_timeout,
            )
            .await;
        let result = match out.result {
            Ok(ToGateway::ConfToken(0)) => Err(empty_reply("conf token")),
            Ok(ToGateway::ConfToken(token)) => Ok(Prepared {
                token,
                generation,
                at: Instant::now(),
            }),
            Ok(other) => Err(RunnerError::Protocol(format!(
                "unexpected prepare reply {other:?}"
            ))),
            Err(e) => Err(e),
        };
        if out.reusable && !matches!(result, Err(RunnerError::Protocol(_))) {
            self.pool.put(pooled);
        }
        result
    }

    /// The id of an HTTP call, assigned when 0.
    fn stamp(&self, msg: &mut ToRunner) -> u32 {
        let id = match msg {
            ToRunner::HttpRequest(c) => &mut c.id,
            ToRunner::HttpResponse(c) => &mut c.id,
            _ => return 0,
        };
        if *id == 0 {
            *id = self.next_id();
        }
        *id
    }

    /// One HTTP call (type 2 or 4) on a pooled connection; with `generation`, only on a
    /// connection to that process.
    async fn http_call<I: InfoSource + ?Sized>(
        &self,
        msg: &ToRunner,
        id: u32,
        info: &I,
        generation: Option<u64>,
    ) -> Result<ToGateway, CallFailure> {
        let expect = match msg {
            ToRunner::HttpResponse(_) => MessageType::HttpRespCall,
            _ => MessageType::HttpReqCall,
        };
        let mut pooled = self.pool.get().await.map_err(CallFailure::Error)?;
        if generation.is_some_and(|g| g != pooled.conn.generation) {
            self.pool.put(pooled);
            return Err(CallFailure::StaleToken);
        }
        let out = pooled
            .conn
            .call(msg, expect, Some(info), self.spec.read_timeout)
            .await;
        let result = match out.result {
            Ok(reply) => match reply_id(&reply) {
                Some(got) if got == id => Ok(reply),
                Some(0) => Err(empty_reply("reply id")),
                _ => Err(RunnerError::Protocol(format!(
                    "reply does not answer call {id}: {reply:?}"
                ))),
            },
            Err(e) => Err(e),
        };
        if out.reusable && !matches!(result, Err(RunnerError::Protocol(_))) {
            self.pool.put(pooled);
        }
        result.map_err(CallFailure::Error)
    }
}

impl Prepare for Inner {
    type Token = Prepared;

    async fn prepare(
        &self,
        key: &Arc<str>,
        conf: &Arc<Vec<TextEntry>>,
    ) -> Result<Prepared, RunnerError> {
        self.prepare_now(PrepareConf {
            conf: conf.to_vec(),
            key: Bytes::copy_from_slice(key.as_bytes()),
        })
        .await
    }
}

fn reply_id(m: &ToGateway) -> Option<u32> {
    match m {
        ToGateway::HttpRequestReply(r) => Some(r.id),
        ToGateway::HttpResponseReply(r) => Some(r.id),
        _ => None,
    }
}

/// A reply of the wrong kind (the connection layer checks the frame type, so this does not
/// happen).
fn mismatch(m: &ToGateway) -> RunnerError {
    RunnerError::Protocol(format!("unexpected reply {m:?}"))
}

/// Per runner: re-prepares after a respawn, refreshes tokens before they expire, drops idle
/// connections of dead processes. Ends on shutdown or when the runner is dropped.
async fn maintain(inner: Weak<Inner>, shutdown: CancellationToken) {
    let (mut status, expire) = match inner.upgrade() {
        Some(i) => (i.status.clone(), i.spec.conf_expire_time),
        None => return,
    };
    // Sweep often enough that a token is refreshed between 0.8 and 0.85 x its lifetime.
    let every = (expire / 20).max(Duration::from_millis(50));
    let refresh_at = expire.mul_f64(0.8);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ready_generation = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let s = *status.borrow_and_update();
                let Some(inner) = inner.upgrade() else { return };
                match s.state {
                    RunnerState::Ready if ready_generation != Some(s.generation) => {
                        ready_generation = Some(s.generation);
                        inner.pool.clear();
                        inner.reprepare(s.generation);
                    }
                    RunnerState::Down | RunnerState::Stopped => inner.pool.clear(),
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                inner.refresh(refresh_at);
            }
        }
    }
}
