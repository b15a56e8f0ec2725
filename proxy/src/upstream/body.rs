//! The client's request body on its way to the upstream: buffered before connecting, or
//! streamed, re-sendable until a try starts reading it.
//!
//! - By default the pipeline buffers the body ([`BodySlot::buffer`]) before any upstream
//!   connection is made, as nginx's `proxy_request_buffering on`: a client that is slow to send
//!   its body, or never finishes it, holds no upstream connection. Bodies larger than the memory
//!   threshold (`client_body_buffer_size`), and every body of a route with `proxy-control`'s
//!   `request_buffering: false`, stream instead: the bytes already read go first, then the rest
//!   as it arrives. Streamed bodies count against a per-client cap ([`StreamLimit`]).
//! - Every read of the client's body waits at most `client_body_timeout` between two chunks.
//! - A body that fails (malformed chunked framing, cut short of its `Content-Length`, connection
//!   closed or reset, the timeout) records a [`ClientFault`] in the slot: the caller answers the
//!   client for it and never counts it against an upstream.
//! - A retry may only re-send a body that has not started streaming to a node. A streamed
//!   [`RequestBody`] shares the client's body through the slot; the first poll takes it out. If a
//!   try fails before anything polled the body, [`BodySlot::replay`] gives a fresh `RequestBody`
//!   for the next try; once taken, it gives `None`. A buffered body (or one a plugin read or
//!   replaced) is held in memory and every try re-sends it.
//! - Each [`RequestBody`] reports its [`Progress`], so the forwarder knows when the request has
//!   been sent (the read timeout starts then) and whether a stall is the upstream's (not taking
//!   bytes: the send timeout) or the client's (not sending them: the client body timeout).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::Notify;
use tokio::time::Sleep;

/// The error a request body stream ends with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Why the client's request could not go upstream: the client's doing, never counted against an
/// upstream, a circuit breaker, passive health checks or a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientFault {
    /// The body is malformed (chunked framing), was cut short of its `Content-Length`, or the
    /// connection closed or was reset in the middle of it.
    #[error("the client's request body is malformed or incomplete")]
    BodyBroken,
    /// No body bytes arrived for `client_body_timeout`.
    #[error("the client sent no body bytes for client_body_timeout")]
    BodyTimeout,
    /// The body is larger than `client_max_body_size`.
    #[error("the client's request body is larger than client_max_body_size")]
    BodyTooLarge,
    /// The client already has as many bodies streaming to upstreams as it may.
    #[error("the client has too many request bodies streaming to upstreams")]
    TooManyStreams,
}

/// The shared slot holding a not-yet-sent client body (the default: an empty body).
#[derive(Clone, Default)]
pub struct BodySlot {
    /// The client's body while it streams; `None` for an empty body or a held one.
    shared: Option<Arc<Mutex<Option<ClientBody>>>>,
    /// The body held in memory (buffered, read by a plugin, or replaced).
    held: Option<Bytes>,
    replaced: bool,
    /// How the client's body failed, if it did (set by whoever was reading it).
    fault: Arc<OnceLock<ClientFault>>,
}

/// Why a plugin could not read the request body.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    /// The body is larger than the limit.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The client's body failed (connection cut, malformed chunking, timeout).
    #[error("reading the request body failed: {0}")]
    Failed(ClientFault),
    /// The body was already sent upstream.
    #[error("the request body was already sent")]
    Gone,
}

/// What [`BodySlot::buffer`] did with the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffered {
    /// The whole body is in memory (or there is none): nothing waits on the client any more.
    Held,
    /// The body streams to the upstream as it arrives (larger than the memory threshold).
    Streams,
}

impl BodySlot {
    /// A slot for `body`, read with at most `timeout` between two chunks; a body that is already
    /// at its end needs no slot.
    pub fn new(body: Incoming, timeout: Duration) -> Self {
        let fault = Arc::new(OnceLock::new());
        let shared = (!body.is_end_stream()).then(|| {
            Arc::new(Mutex::new(Some(ClientBody::new(
                body,
                timeout,
                fault.clone(),
            ))))
        });
        BodySlot {
            shared,
            held: None,
            replaced: false,
            fault,
        }
    }

    /// A slot holding `bytes` (as if a plugin had read them).
    pub fn from_bytes(bytes: Bytes) -> Self {
        BodySlot {
            held: Some(bytes),
            ..BodySlot::default()
        }
    }

    /// How the client's body failed, if it did.
    pub fn fault(&self) -> Option<ClientFault> {
        self.fault.get().copied()
    }

    /// Takes the client's body out of the shared slot (`None`: none, or already taken).
    fn take_stream(&self) -> Option<ClientBody> {
        let shared = self.shared.as_ref()?;
        shared.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Puts a partly read body back, for the upstream to get what is left.
    fn put_back(&self, body: ClientBody) {
        if let Some(shared) = &self.shared {
            *shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(body);
        }
    }

    /// Reads the client's body into memory before the request goes upstream, up to `in_memory`
    /// bytes: a longer body (by its `Content-Length`, or once it has sent more) streams instead,
    /// what was read going first; with `in_memory` 0 it streams from the start. `max` (0: no
    /// limit) is the largest body accepted at all, streamed or not.
    ///
    /// # Errors
    /// The body failed, timed out or is larger than `max`: the client's fault.
    pub async fn buffer(&mut self, in_memory: usize, max: u64) -> Result<Buffered, ClientFault> {
        if let Some(fault) = self.fault() {
            return Err(fault);
        }
        if self.held.is_some() {
            return Ok(Buffered::Held);
        }
        let Some(mut body) = self.take_stream() else {
            // Nothing to send (an empty body), or a plugin took it: what it left stands.
            return Ok(Buffered::Held);
        };
        let declared = body.size_hint().lower();
        if max > 0 && declared > max {
            return Err(self.failed(ClientFault::BodyTooLarge));
        }
        body.max = max;
        if in_memory == 0 || declared > in_memory as u64 {
            self.put_back(body);
            return Ok(Buffered::Streams);
        }
        let mut read = BytesMut::new();
        loop {
            match body.frame().await {
                None => break,
                // The fault is recorded by the body itself.
                Some(Err(_)) => return Err(self.fault().unwrap_or(ClientFault::BodyBroken)),
                Some(Ok(frame)) => {
                    // Request trailers are rare and not forwarded once a body is buffered.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    read.extend_from_slice(&data);
                    if read.len() > in_memory {
                        body.prefix = Some(read.freeze());
                        self.put_back(body);
                        return Ok(Buffered::Streams);
                    }
                }
            }
        }
        self.shared = None;
        self.held = Some(read.freeze());
        Ok(Buffered::Held)
    }

    /// Records `fault` (the first one recorded wins) and returns it.
    fn failed(&self, fault: ClientFault) -> ClientFault {
        *self.fault.get_or_init(|| fault)
    }

    /// Makes the streamed body hold `permit` until it ends (see [`StreamLimit`]).
    pub fn hold_permit(&self, permit: StreamPermit) {
        if let Some(shared) = &self.shared {
            if let Some(body) = shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
            {
                body.permit = Some(permit);
            }
        }
    }

    /// The whole body, read into memory (once; later calls give the same bytes). The body
    /// then goes upstream from memory.
    ///
    /// # Errors
    /// The body is larger than `limit`, the client's body failed, or it was already sent.
    pub async fn read(&mut self, limit: usize) -> Result<Bytes, BodyReadError> {
        if let Some(held) = &self.held {
            if held.len() > limit {
                return Err(BodyReadError::TooLarge(limit));
            }
            return Ok(held.clone());
        }
        if let Some(fault) = self.fault() {
            return Err(BodyReadError::Failed(fault));
        }
        if self.shared.is_none() {
            return Ok(Bytes::new());
        }
        let body = self.take_stream().ok_or(BodyReadError::Gone)?;
        let collected = http_body_util::Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    BodyReadError::TooLarge(limit)
                } else {
                    BodyReadError::Failed(self.fault().unwrap_or(ClientFault::BodyBroken))
                }
            })?;
        let bytes = collected.to_bytes();
        self.shared = None;
        self.held = Some(bytes.clone());
        Ok(bytes)
    }

    /// Sends `bytes` upstream instead of the client's body.
    pub fn replace(&mut self, bytes: Bytes) {
        self.shared = None;
        self.held = Some(bytes);
        self.replaced = true;
    }

    /// The length of a replacement body (the request's `Content-Length` must say so).
    pub fn replaced_len(&self) -> Option<usize> {
        self.replaced
            .then(|| self.held.as_ref().map_or(0, Bytes::len))
    }

    /// A body for the next try, or None when an earlier try already started sending it.
    pub fn replay(&self) -> Option<RequestBody> {
        if let Some(held) = &self.held {
            return Some(RequestBody::new(None, Some(held.clone())));
        }
        match &self.shared {
            None => Some(RequestBody::empty()),
            Some(slot) => {
                let present = slot
                    .lock()
                    .map(|s| s.is_some())
                    .unwrap_or_else(|p| p.into_inner().is_some());
                present.then(|| RequestBody::new(Some(slot.clone()), None))
            }
        }
    }
}

#[async_trait::async_trait]
impl plugin_api::body::RequestBody for BodySlot {
    async fn read(&mut self, limit: usize) -> Result<Bytes, plugin_api::body::BodyError> {
        Ok(BodySlot::read(self, limit).await?)
    }

    fn replace(&mut self, bytes: Bytes) {
        BodySlot::replace(self, bytes);
    }

    async fn hold(&mut self, limit: usize) -> bool {
        matches!(self.buffer(limit, 0).await, Ok(Buffered::Held))
    }
}

/// The client's body as read from its connection: a prefix already read (when buffering gave
/// up), then the rest, at most `timeout` apart.
struct ClientBody {
    prefix: Option<Bytes>,
    body: Incoming,
    timeout: Duration,
    /// Counts `timeout` down while the client sends nothing; set on the first pending poll.
    idle: Option<Pin<Box<Sleep>>>,
    fault: Arc<OnceLock<ClientFault>>,
    /// This body's place in the per-client streaming cap, released when it ends.
    permit: Option<StreamPermit>,
    /// Largest body accepted (0: no limit), and the bytes read so far.
    max: u64,
    seen: u64,
}

impl ClientBody {
    fn new(body: Incoming, timeout: Duration, fault: Arc<OnceLock<ClientFault>>) -> Self {
        ClientBody {
            prefix: None,
            body,
            timeout,
            idle: None,
            fault,
            permit: None,
            max: 0,
            seen: 0,
        }
    }

    fn fail(&mut self, fault: ClientFault) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let fault = *self.fault.get_or_init(|| fault);
        self.permit = None;
        Poll::Ready(Some(Err(Box::new(fault))))
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => {
                let timeout = this.timeout;
                let idle = this.idle.get_or_insert_with(|| {
                    let deadline = tokio::time::Instant::now()
                        .checked_add(timeout)
                        .unwrap_or_else(far_future);
                    Box::pin(tokio::time::sleep_until(deadline))
                });
                if idle.as_mut().poll(cx).is_ready() {
                    tracing::info!(?timeout, "client request body timed out");
                    return this.fail(ClientFault::BodyTimeout);
                }
                Poll::Pending
            }
            Poll::Ready(Some(Err(error))) => {
                tracing::info!(%error, "client request body failed");
                this.fail(ClientFault::BodyBroken)
            }
            Poll::Ready(frame) => {
                this.idle = None;
                if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.max > 0 && this.seen > this.max {
                        return this.fail(ClientFault::BodyTooLarge);
                    }
                }
                if frame.is_none() || this.body.is_end_stream() {
                    this.permit = None;
                }
                Poll::Ready(frame.map(|f| f.map_err(BodyError::from)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let rest = self.body.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(prefix));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(prefix));
        }
        hint
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86400 * 365)
}

/// The cap on request bodies streaming to upstreams at once from one client address
/// (`streamed_bodies_per_client`): a streamed body holds an upstream connection for as long as
/// the client takes to send it, so one client must not hold them all.
#[derive(Clone)]
pub struct StreamLimit {
    per_client: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl StreamLimit {
    /// At most `per_client` streamed bodies per client address (0: no cap).
    pub fn new(per_client: usize) -> Self {
        StreamLimit {
            per_client,
            open: Arc::default(),
        }
    }

    /// A place for one more streamed body from `client`, or `None` at the cap.
    pub fn acquire(&self, client: IpAddr) -> Option<StreamPermit> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(client).or_insert(0);
        if self.per_client > 0 && *count >= self.per_client {
            return None;
        }
        *count += 1;
        Some(StreamPermit {
            limit: self.clone(),
            client,
        })
    }
}

/// One streamed body's place in a [`StreamLimit`], given back when dropped.
pub struct StreamPermit {
    limit: StreamLimit,
    client: IpAddr,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self
            .limit
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// How far one try's body has gone (see the module docs).
#[derive(Default)]
pub struct Progress {
    state: Mutex<ProgressState>,
    /// Woken once, when the whole body has been handed to the connection.
    sent: Notify,
}

struct ProgressState {
    /// When the connection last took a chunk (or the try started).
    last: Instant,
    /// The connection asked for more and the client has not sent it yet.
    waiting_client: bool,
    /// The whole body was handed to the connection.
    done: bool,
}

impl Default for ProgressState {
    fn default() -> Self {
        ProgressState {
            last: Instant::now(),
            waiting_client: false,
            done: false,
        }
    }
}

/// Where a try is in sending its request, as [`Progress::sending`] sees it.
pub enum Sending {
    /// The whole body was handed to the connection.
    Sent,
    /// The connection has taken nothing for this long while the client had bytes for it.
    Stalled(Duration),
    /// Waiting on the client (its own timeout applies), or the connection took a chunk lately.
    Going,
}

impl Progress {
    fn update(&self, f: impl FnOnce(&mut ProgressState)) {
        let done = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut state);
            state.done
        };
        if done {
            // `notify_one` keeps a permit when nobody waits yet, so the end is never missed.
            self.sent.notify_one();
        }
    }

    /// Where sending stands now, counting stalls from `since` at the earliest (the moment the
    /// connection was ready).
    pub fn sending(&self, since: Instant) -> Sending {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.done {
            Sending::Sent
        } else if state.waiting_client {
            Sending::Going
        } else {
            Sending::Stalled(state.last.max(since).elapsed())
        }
    }

    /// Waits until the whole body has been handed to the connection.
    pub async fn sent(&self) {
        self.sent.notified().await;
    }
}

/// The body sent to an upstream: empty, the client's body taken from a [`BodySlot`], or a
/// body held in memory.
pub struct RequestBody {
    slot: Option<Arc<Mutex<Option<ClientBody>>>>,
    inner: Option<ClientBody>,
    held: Option<Bytes>,
    progress: Arc<Progress>,
}

impl RequestBody {
    fn new(slot: Option<Arc<Mutex<Option<ClientBody>>>>, held: Option<Bytes>) -> Self {
        let body = RequestBody {
            slot,
            inner: None,
            held,
            progress: Arc::default(),
        };
        if body.is_end_stream() {
            body.progress.update(|s| s.done = true);
        }
        body
    }

    /// A body with no bytes.
    pub fn empty() -> Self {
        RequestBody::new(None, None)
    }

    /// How far this body has gone toward the upstream.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(held) = self.held.take() {
            return Poll::Ready((!held.is_empty()).then(|| Ok(Frame::data(held))));
        }
        if self.inner.is_none() {
            let Some(slot) = self.slot.take() else {
                return Poll::Ready(None);
            };
            self.inner = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = this.poll_inner(cx);
        let end = match &polled {
            Poll::Pending => {
                this.progress.update(|s| s.waiting_client = true);
                return polled;
            }
            Poll::Ready(Some(Ok(_))) => this.is_end_stream(),
            // An error ends the try; the forwarder sees it from the response.
            Poll::Ready(Some(Err(_))) => false,
            Poll::Ready(None) => true,
        };
        this.progress.update(|s| {
            s.last = Instant::now();
            s.waiting_client = false;
            s.done = end;
        });
        polled
    }

    fn is_end_stream(&self) -> bool {
        if let Some(held) = &self.held {
            return held.is_empty();
        }
        match (&self.inner, &self.slot) {
            (Some(b), _) => b.is_end_stream(),
            (None, Some(_)) => false,
            (None, None) => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        if let Some(held) = &self.held {
            return SizeHint::with_exact(held.len() as u64);
        }
        match (&self.inner, &self.slot) {
            (Some(b), _) => b.size_hint(),
            (None, Some(slot)) => slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(Body::size_hint)
                .unwrap_or_default(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_limit_caps_each_client_and_frees_on_drop() {
        let limit = StreamLimit::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = limit.acquire(a).expect("first");
        let _second = limit.acquire(a).expect("second");
        assert!(
            limit.acquire(a).is_none(),
            "a third one from the same client"
        );
        assert!(limit.acquire(b).is_some(), "another client is not affected");
        drop(first);
        assert!(limit.acquire(a).is_some(), "a place was given back");
        let unlimited = StreamLimit::new(0);
        let held: Vec<_> = (0..100).filter_map(|_| unlimited.acquire(a)).collect();
        assert_eq!(held.len(), 100);
    }

    #[test]
    fn held_and_empty_bodies_are_sent_at_once() {
        let empty = RequestBody::empty();
        assert!(matches!(
            empty.progress().sending(Instant::now()),
            Sending::Sent
        ));
        let slot = BodySlot::from_bytes(Bytes::from_static(b"abc"));
        let mut body = slot.replay().expect("held bodies replay");
        let progress = body.progress();
        assert!(!matches!(progress.sending(Instant::now()), Sending::Sent));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let frame = Pin::new(&mut body).poll_frame(&mut cx);
        assert!(matches!(frame, Poll::Ready(Some(Ok(_)))));
        assert!(matches!(progress.sending(Instant::now()), Sending::Sent));
    }
}
