//! What the gateway asks of a plugin runner, whatever runs it: an out-of-process runner over a
//! socket (`runners/ext`) or Python in the gateway's own process (`runners/python`). The gateway's
//! `ext-plugin-*` plugins turn a live request into these calls and apply the answers; swapping one
//! runner for another is a configuration change.
//!
//! Two APIs: [`Runner`] speaks in raw conf tokens, as the wire does; [`KeyedRunner`] is what the
//! gateway holds (as `Arc<dyn KeyedRunner>`, whatever the kind): confs registered by key, their
//! tokens kept in a [`ConfCache`](crate::conf_cache::ConfCache) and prepared again when needed.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::message::{
    ErrorCode, ExtraInfo, HttpRequest, HttpRequestReply, HttpResponse, HttpResponseReply,
    PrepareConf, TextEntry,
};

/// Why a call to a runner failed.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The runner answered with an error.
    #[error("runner error: {0:?}")]
    Runner(ErrorCode),
    /// The runner did not answer in time.
    #[error("runner timed out")]
    Timeout,
    /// The runner is not reachable (not started, socket gone, connect failed).
    #[error("runner unavailable: {0}")]
    Unavailable(String),
    /// The runner broke the protocol (bad frame, wrong type, undecodable message).
    #[error("runner protocol violation: {0}")]
    Protocol(String),
}

/// Answers a runner's extra-info questions during one call.
pub trait InfoSource: Send + Sync {
    /// The answer to `question`: a variable's value, or the request or response body. `None`
    /// when there is nothing to give (unknown variable).
    fn answer(&self, question: &ExtraInfo) -> impl Future<Output = Option<Bytes>> + Send;
}

/// A plugin runner.
pub trait Runner: Send + Sync {
    /// Registers a plugin configuration; the token names it in later calls.
    ///
    /// # Errors
    /// See [`RunnerError`].
    fn prepare_conf(
        &self,
        conf: PrepareConf,
    ) -> impl Future<Output = Result<u32, RunnerError>> + Send;

    /// Runs the request-phase plugins of a conf token on a request. A runner answering
    /// `CONF_TOKEN_NOT_FOUND` gives [`RunnerError::Runner`] with that code.
    ///
    /// # Errors
    /// See [`RunnerError`].
    fn http_request<I: InfoSource + ?Sized>(
        &self,
        call: HttpRequest,
        info: &I,
    ) -> impl Future<Output = Result<HttpRequestReply, RunnerError>> + Send;

    /// Runs the response-phase plugins of a conf token on an upstream response.
    ///
    /// # Errors
    /// See [`RunnerError`].
    fn http_response<I: InfoSource + ?Sized>(
        &self,
        call: HttpResponse,
        info: &I,
    ) -> impl Future<Output = Result<HttpResponseReply, RunnerError>> + Send;
}

/// An [`InfoSource`] behind `dyn`, as [`KeyedRunner`] takes it: every `InfoSource` is one, and
/// `dyn DynInfoSource` is an `InfoSource` again. Each answer costs one boxed future.
pub trait DynInfoSource: Send + Sync {
    /// [`InfoSource::answer`], boxed.
    fn answer_boxed<'a>(
        &'a self,
        question: &'a ExtraInfo,
    ) -> Pin<Box<dyn Future<Output = Option<Bytes>> + Send + 'a>>;
}

impl<T: InfoSource> DynInfoSource for T {
    fn answer_boxed<'a>(
        &'a self,
        question: &'a ExtraInfo,
    ) -> Pin<Box<dyn Future<Output = Option<Bytes>> + Send + 'a>> {
        Box::pin(self.answer(question))
    }
}

impl InfoSource for dyn DynInfoSource + '_ {
    async fn answer(&self, question: &ExtraInfo) -> Option<Bytes> {
        self.answer_boxed(question).await
    }
}

/// The future of a [`KeyedRunner`] call: one allocation per call.
pub type KeyedCall<'a, T> = Pin<Box<dyn Future<Output = Result<T, RunnerError>> + Send + 'a>>;

/// A runner as the gateway holds it, whatever its kind: plugin confs registered by key (one
/// plugin instance of one config version), called by key. Object safe: `Arc<dyn KeyedRunner>`.
pub trait KeyedRunner: Send + Sync + Debug {
    /// The runner's name.
    fn name(&self) -> &str;

    /// Registers `conf` under `key` and starts preparing it in the background (returns at once;
    /// without a tokio runtime the first call prepares it). The same conf again does nothing;
    /// another conf replaces the entry.
    fn prepare(&self, key: &str, conf: Vec<TextEntry>);

    /// Forgets `key` (its owner's config version is gone); calls using it finish.
    fn forget(&self, key: &str);

    /// The keys registered.
    fn keys(&self) -> Vec<String>;

    /// Runs the request-phase plugins of `key`'s conf on `call` (`conf_token` is filled in,
    /// `id` when 0), preparing the conf first when its token is missing or stale.
    ///
    /// # Errors
    /// [`RunnerError::Unavailable`] for a key not registered; otherwise see [`RunnerError`].
    fn request<'a>(
        &'a self,
        key: &'a str,
        call: HttpRequest,
        info: &'a dyn DynInfoSource,
    ) -> KeyedCall<'a, HttpRequestReply>;

    /// Runs the response-phase plugins of `key`'s conf on an upstream response; as
    /// [`KeyedRunner::request`].
    ///
    /// # Errors
    /// As [`KeyedRunner::request`].
    fn response<'a>(
        &'a self,
        key: &'a str,
        call: HttpResponse,
        info: &'a dyn DynInfoSource,
    ) -> KeyedCall<'a, HttpResponseReply>;
}
