//! How a request ended, as the log phase sees it ([`crate::LogCtx::outcome`]).

/// Who answered the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream's answer (maybe changed by the response phases).
    Upstream,
    /// A plugin answered (`Flow::Respond`), before or instead of the upstream.
    Plugin,
    /// The gateway failed the request itself; whose doing the failure is.
    Failed(Fault),
}

/// Whose doing a failure is: what may be counted against an upstream (circuit breakers,
/// passive health checks, retries, the upstream status of the access log) is decided from this,
/// never from the status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client's request is at fault (malformed, too large, too slow, no route for it).
    Client,
    /// The upstream failed (no node, connect error, timeout, broken connection).
    Upstream,
    /// A plugin could not do its work (a runner that failed, a value no request can carry).
    Plugin,
    /// The gateway's configuration cannot serve a request it routed (its service or upstream
    /// is missing).
    Internal,
}
