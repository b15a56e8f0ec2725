//! What the gateway asks of a plugin runner, whatever runs it: an out-of-process runner over a
//! socket (`runners/ext`) or Python in the gateway's own process (`runners/python`). The gateway's
//! `ext-plugin-*` plugins turn a live request into these calls and apply the answers; swapping one
//! runner for another is a configuration change.

use std::future::Future;

use bytes::Bytes;

use crate::message::{
    ErrorCode, ExtraInfo, HttpRequest, HttpRequestReply, HttpResponse, HttpResponseReply,
    PrepareConf,
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
    fn http_request<I: InfoSource>(
        &self,
        call: HttpRequest,
        info: &I,
    ) -> impl Future<Output = Result<HttpRequestReply, RunnerError>> + Send;

    /// Runs the response-phase plugins of a conf token on an upstream response.
    ///
    /// # Errors
    /// See [`RunnerError`].
    fn http_response<I: InfoSource>(
        &self,
        call: HttpResponse,
        info: &I,
    ) -> impl Future<Output = Result<HttpResponseReply, RunnerError>> + Send;
}
