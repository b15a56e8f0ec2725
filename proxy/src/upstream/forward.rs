//! One client request to a backend: pick a node, try, and retry as APISIX (nginx) does.
//!
//! - Tries: 1 + `retries`, each on a node not tried yet (priority groups first, then backups),
//!   no new try after `retry_timeout` from the first one.
//! - A failed try is retried when the request was not sent (connect error, connect timeout), or
//!   when it may have been sent but the method is idempotent (not POST, PATCH, LOCK), and only if
//!   the client's body has not started streaming to a node (see [`super::body`]).
//! - A try that failed because the client's body failed (malformed, cut short, timed out while
//!   streaming) is the client's fault: it is not reported to passive health checks, not retried,
//!   and [`forward`] returns [`ForwardError::Client`].
//! - An HTTP status from the upstream, 5xx included, is a response, never retried.
//! - Beyond APISIX, an upstream's `retry_on` replaces the two rules above: a try is retried only
//!   for the listed conditions (`connect`, `timeout`, `reset`, statuses), and one that may have
//!   reached the node (timeout, reset, status) only for idempotent methods unless
//!   `retry_non_idempotent` is set. When a retried status is followed by tries that all fail,
//!   the client gets that status answer, not a 502.
//! - Every try's outcome feeds the passive health checks (status, TCP failure or timeout).
//! - Timeouts, as nginx's `proxy_*_timeout`: `connect` bounds getting a usable connection (TCP
//!   and TLS, or a pooled one); `send` bounds each wait for the connection to take the next
//!   chunk of the request while the client has one for it (a wait on the client is bounded by
//!   `client_body_timeout` instead); `read` starts once the whole request has been handed to the
//!   connection and bounds the wait for the response head, then every wait between two response
//!   body chunks (see `server::body`). A hung upstream thus answers 504 after `read` (plus at
//!   most `connect`). A connect timeout is retried like a connect error, since nothing was sent.

use std::time::{Duration, Instant};

use http::header::{HeaderValue, HOST};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;

use hyper_util::client::legacy::connect::capture_connection;

use super::body::{BodySlot, ClientFault, Progress, RequestBody, Sending};
use super::client::HttpClient;
use super::health::Outcome;
use super::{Backend, PassHost, RetryPolicy, Timeouts};

/// The parts of the client request that every try sends.
pub struct RequestTemplate {
    /// Method.
    pub method: Method,
    /// Path (normalised) and query.
    pub path_and_query: PathAndQuery,
    /// Headers to send (hop-by-hop removed, `X-Forwarded-*` set), without Host.
    pub headers: HeaderMap,
    /// The client's Host, for `pass_host: pass`.
    pub host: Option<HeaderValue>,
    /// A Host set by a plugin (`proxy-rewrite`): wins over `pass_host`.
    pub host_override: Option<HeaderValue>,
}

/// A response from a node.
pub struct Proxied {
    /// The upstream's response.
    pub response: Response<Incoming>,
    /// Index of the node that answered.
    pub node: usize,
    /// Time from the start of the answering try to the response head.
    pub upstream_time: Duration,
    /// The statuses of the tries before the answering one (nginx's `$upstream_status`).
    pub earlier: Vec<StatusCode>,
}

/// How the last try failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// The upstream has no node at all.
    NoNode,
    /// The connection could not be established.
    Connect,
    /// The node's host name did not resolve (APISIX answers 503 when a domain node does not).
    Resolve,
    /// No connection in time (nothing was sent).
    ConnectTimeout,
    /// No response head in time after the request was sent.
    Timeout,
    /// The connection broke or the upstream sent something that is not HTTP.
    Broken,
    /// `retry_timeout` passed before a retry could start.
    RetryDeadline,
}

impl FailKind {
    /// The status nginx records for a try that failed this way (`$upstream_status`).
    pub fn try_status(self) -> StatusCode {
        match self {
            FailKind::Timeout | FailKind::ConnectTimeout => StatusCode::GATEWAY_TIMEOUT,
            FailKind::NoNode | FailKind::Resolve => StatusCode::SERVICE_UNAVAILABLE,
            FailKind::Connect | FailKind::Broken | FailKind::RetryDeadline => {
                StatusCode::BAD_GATEWAY
            }
        }
    }
}

/// The `X-APISIX-Upstream-Status` value for tries that ended with `statuses` (the last is the
/// client's answer), as APISIX sends it: every status, comma separated, when `show_all`
/// (`show_upstream_status_in_response_header`), else only when the last one is a 5xx.
pub fn upstream_status_header(statuses: &[StatusCode], show_all: bool) -> Option<HeaderValue> {
    let last = statuses.last()?;
    if !show_all && !last.is_server_error() {
        return None;
    }
    let text: Vec<&str> = statuses.iter().map(StatusCode::as_str).collect();
    HeaderValue::from_str(&text.join(", ")).ok()
}

/// Why no response came back.
#[derive(Debug)]
pub enum ForwardError {
    /// The client's body failed while it streamed: nothing was counted against the node.
    Client(ClientFault),
    /// Every try failed.
    Upstream(UpstreamFailure),
}

/// Every try failed, the upstream's doing.
#[derive(Debug)]
pub struct UpstreamFailure {
    /// How the last try failed.
    pub kind: FailKind,
    /// The last node tried, if any.
    pub node: Option<usize>,
    /// Number of tries made.
    pub tries: u32,
    /// The status of each try (nginx's `$upstream_status`).
    pub statuses: Vec<StatusCode>,
}

/// Sends the request to the backend, retrying per the module rules. `hash_key` is the chash key
/// from [`Backend::hash_key`].
///
/// # Errors
/// When no try produced a response head.
pub async fn forward(
    backend: &Backend,
    client: &HttpClient,
    timeouts: Timeouts,
    mut template: RequestTemplate,
    body: &BodySlot,
    hash_key: Option<&str>,
) -> Result<Proxied, ForwardError> {
    let max_tries = backend.retries.saturating_add(1);
    let idempotent = !matches!(template.method.as_str(), "POST" | "PATCH" | "LOCK");
    let policy = backend.retry_on.as_ref();
    let started = Instant::now();
    let mut tried: Vec<usize> = Vec::new();
    let mut fail = UpstreamFailure {
        kind: FailKind::NoNode,
        node: None,
        tries: 0,
        statuses: Vec::new(),
    };
    // With `retry_on` statuses: the last answer that asked for a retry, returned if no later
    // try answers.
    let mut kept: Option<Proxied> = None;
    let mut status_retry = false;
    while fail.tries < max_tries {
        if fail.tries > 0 {
            if backend
                .retry_timeout
                .is_some_and(|limit| started.elapsed() >= limit)
            {
                fail.kind = FailKind::RetryDeadline;
                break;
            }
            // A status retry was decided when the answer came.
            if !status_retry && !retryable(policy, fail.kind, idempotent) {
                break;
            }
        }
        // Check the body first: a pick that is not used would still advance the balancer.
        let Some(to_send) = body.replay() else {
            break;
        };
        let Some(node) = backend.balancer.pick(hash_key, &tried) else {
            break;
        };
        let last = fail.tries + 1 == max_tries;
        let headers = if last {
            std::mem::take(&mut template.headers)
        } else {
            template.headers.clone()
        };
        let request = build(backend, node, &template, headers, to_send);
        fail.tries += 1;
        fail.node = Some(node);
        backend.balancer.on_start(node);
        let try_started = Instant::now();
        let kind = match send_timed(client, request, timeouts).await {
            Ok(response) => {
                let upstream_time = try_started.elapsed();
                backend.balancer.on_finish(node, Some(upstream_time));
                let status_code = response.status();
                let status = status_code.as_u16();
                backend.report_status(node, status);
                let proxied = Proxied {
                    response,
                    node,
                    upstream_time,
                    earlier: fail.statuses.clone(),
                };
                let retry_status = policy.is_some_and(|p| {
                    p.statuses.contains(&status) && (idempotent || p.non_idempotent)
                });
                if !retry_status || last {
                    return Ok(proxied);
                }
                tracing::warn!(
                    upstream = %backend.key,
                    node = %backend.nodes[node].authority,
                    status,
                    try_number = fail.tries,
                    "upstream answered a retry_on status; retrying"
                );
                kept = Some(proxied);
                fail.statuses.push(status_code);
                status_retry = true;
                tried.push(node);
                continue;
            }
            Err(kind) => kind,
        };
        backend.balancer.on_finish(node, None);
        if let Some(fault) = body.fault() {
            tracing::info!(
                upstream = %backend.key,
                node = %backend.nodes[node].authority,
                %fault,
                "request abandoned: the client's body failed"
            );
            return Err(ForwardError::Client(fault));
        }
        backend.report(
            node,
            match kind {
                FailKind::ConnectTimeout | FailKind::Timeout => Outcome::Timeout,
                _ => Outcome::TcpFailure,
            },
        );
        tracing::warn!(
            upstream = %backend.key,
            node = %backend.nodes[node].authority,
            failure = ?kind,
            try_number = fail.tries,
            "upstream try failed"
        );
        fail.kind = kind;
        fail.statuses.push(kind.try_status());
        status_retry = false;
        if max_tries > 1 {
            tried.push(node);
        }
    }
    match kept {
        Some(answer) => Ok(answer),
        None => Err(ForwardError::Upstream(fail)),
    }
}

/// Whether a try that failed with `kind` may be retried: APISIX's rule without `retry_on`
/// (errors before anything was sent always; timeouts and broken connections only for idempotent
/// methods), else the policy's conditions, non-idempotent requests that may have been sent only
/// with `retry_non_idempotent`.
fn retryable(policy: Option<&RetryPolicy>, kind: FailKind, idempotent: bool) -> bool {
    match policy {
        None => match kind {
            FailKind::Connect | FailKind::Resolve | FailKind::ConnectTimeout => true,
            FailKind::Timeout | FailKind::Broken => idempotent,
            FailKind::NoNode | FailKind::RetryDeadline => false,
        },
        Some(p) => {
            let sent_ok = idempotent || p.non_idempotent;
            match kind {
                FailKind::Connect | FailKind::Resolve => p.connect,
                FailKind::ConnectTimeout => p.connect || p.timeout,
                FailKind::Timeout => p.timeout && sent_ok,
                FailKind::Broken => p.reset && sent_ok,
                FailKind::NoNode | FailKind::RetryDeadline => false,
            }
        }
    }
}

/// Sends one request: `connect` bounds the wait for a usable connection (TCP and TLS, or one
/// from the pool), `send` each stall in handing the request to it, then `read` the wait for the
/// response head (see the module docs).
async fn send_timed(
    client: &HttpClient,
    mut request: Request<RequestBody>,
    timeouts: Timeouts,
) -> Result<Response<Incoming>, FailKind> {
    let progress = request.body().progress();
    let mut connection = capture_connection(&mut request);
    let response = client.request(request);
    tokio::pin!(response);
    let connected = tokio::time::timeout(timeouts.connect, async {
        tokio::select! {
            biased;
            r = &mut response => Some(r),
            _ = connection.wait_for_connection_metadata() => None,
        }
    })
    .await
    .map_err(|_| FailKind::ConnectTimeout)?;
    let result = match connected {
        Some(done) => done,
        None => {
            // The upstream may answer before it has read the whole body.
            let answered = tokio::select! {
                r = &mut response => Some(r),
                sent = all_sent(&progress, timeouts.send) => {
                    sent?;
                    None
                }
            };
            match answered {
                Some(done) => done,
                None => tokio::time::timeout(timeouts.read, response)
                    .await
                    .map_err(|_| FailKind::Timeout)?,
            }
        }
    };
    result.map_err(|e| match (e.is_connect(), is_timeout(&e)) {
        (true, true) => FailKind::ConnectTimeout,
        (true, false) if is_dns_error(&e) => FailKind::Resolve,
        (true, false) => FailKind::Connect,
        (false, _) => FailKind::Broken,
    })
}

/// Whether a connect error is the host name lookup failing (hyper-util's connector reports it
/// as `dns error`).
fn is_dns_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = e.source();
    while let Some(cause) = source {
        if cause.to_string() == "dns error" {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Waits until the whole request has been handed to the connection; fails when the connection
/// took nothing for `send` while the client had bytes for it.
async fn all_sent(progress: &Progress, send: Duration) -> Result<(), FailKind> {
    let connected = Instant::now();
    loop {
        let wait = match progress.sending(connected) {
            Sending::Sent => return Ok(()),
            Sending::Stalled(stalled) if stalled >= send => return Err(FailKind::Timeout),
            Sending::Stalled(stalled) => send - stalled,
            // Waiting on the client, whose own timeout ends the body if it sends nothing.
            Sending::Going => send,
        };
        tokio::select! {
            () = progress.sent() => return Ok(()),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn build(
    backend: &Backend,
    node: usize,
    template: &RequestTemplate,
    headers: HeaderMap,
    body: RequestBody,
) -> Request<RequestBody> {
    let addr = &backend.nodes[node];
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(backend.scheme.clone());
    parts.authority = Some(addr.authority.clone());
    parts.path_and_query = Some(template.path_and_query.clone());
    let uri = Uri::from_parts(parts).unwrap_or_default();
    let mut request = Request::new(body);
    *request.method_mut() = template.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    let host = match (&template.host_override, &backend.pass_host) {
        (Some(h), _) => Some(h.clone()),
        (None, PassHost::Pass) => template.host.clone(),
        (None, PassHost::Node) => Some(addr.host_header.clone()),
        (None, PassHost::Rewrite(h)) => Some(h.clone()),
    };
    if let Some(host) = host {
        request.headers_mut().insert(HOST, host);
    }
    if backend.definition.is_grpc() {
        // gRPC servers expect it; hop-by-hop removal took the client's.
        request
            .headers_mut()
            .insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    request
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rules() {
        use FailKind::*;
        // (kind, idempotent) -> APISIX's rule
        for (kind, idempotent, want) in [
            (Connect, false, true),
            (ConnectTimeout, false, true),
            (Timeout, true, true),
            (Timeout, false, false),
            (Broken, true, true),
            (Broken, false, false),
            (RetryDeadline, true, false),
        ] {
            assert_eq!(retryable(None, kind, idempotent), want, "{kind:?}");
        }
        let only_timeout = RetryPolicy {
            timeout: true,
            ..RetryPolicy::default()
        };
        let p = Some(&only_timeout);
        assert!(!retryable(p, Connect, true));
        assert!(retryable(p, ConnectTimeout, false), "nothing was sent");
        assert!(retryable(p, Timeout, true));
        assert!(!retryable(p, Timeout, false));
        assert!(!retryable(p, Broken, true));
        let everything = RetryPolicy {
            connect: true,
            reset: true,
            non_idempotent: true,
            ..RetryPolicy::default()
        };
        let p = Some(&everything);
        assert!(retryable(p, Connect, false));
        assert!(retryable(p, ConnectTimeout, false));
        assert!(retryable(p, Broken, false));
        assert!(!retryable(p, Timeout, false), "timeout not listed");
    }
}
