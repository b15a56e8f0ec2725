//! The body of every response the proxy sends, and the access-log record written when it ends.
//!
//! An upstream body is streamed chunk by chunk, never buffered; if the upstream sends nothing for
//! the read timeout, the stream ends with an error (the client sees a cut response, as with nginx).
//! The access-log line is written when the body finishes or is dropped (client gone), so it has
//! the final byte count. Plugins' body filters, when attached, see every data chunk on its way out
//! and add what they held back when the body ends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::observe::AccessRecord;
use plugin_api::BodyFilter;

enum Inner {
    Fixed(Option<Bytes>),
    Upstream(Incoming),
}

/// A response body: a fixed byte string, or an upstream stream with a read timeout.
///
/// It is moved several times on its way out (from the pipeline's steps to hyper), so what most
/// responses never use stays out of line: the idle timer exists only once an upstream body had
/// to wait, the body filters only when plugins attached some.
pub struct ResponseBody {
    inner: Inner,
    /// Counts down the current wait for the upstream's next chunk; made on the first wait.
    idle: Option<Pin<Box<Sleep>>>,
    // Whether `idle` counts down the current wait; armed on the first pending poll after a
    // frame, so a body that is ready when polled never touches the timer wheel.
    armed: bool,
    read_timeout: Duration,
    sent: u64,
    record: Option<AccessRecord>,
    on_end: Option<OnEnd>,
    filters: Option<Box<Filters>>,
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent);
        }
        if let Some(record) = self.record.take() {
            record.log.write(&record, self.sent);
        }
    }
}

/// Work to do once the response is over (sent, or the client went away), given the body bytes
/// sent: the plugins' log phase.
pub type OnEnd = Box<dyn FnOnce(u64) + Send>;

/// The error a response body stream can end with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl ResponseBody {
    /// A fixed body.
    pub fn fixed(bytes: impl Into<Bytes>) -> Self {
        Self::new(Inner::Fixed(Some(bytes.into())), Duration::MAX)
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::new(Inner::Fixed(None), Duration::MAX)
    }

    /// An upstream body; `read_timeout` bounds each wait for the next chunk.
    pub fn upstream(body: Incoming, read_timeout: Duration) -> Self {
        Self::new(Inner::Upstream(body), read_timeout)
    }

    fn new(inner: Inner, read_timeout: Duration) -> Self {
        ResponseBody {
            inner,
            idle: None,
            armed: false,
            read_timeout,
            sent: 0,
            record: None,
            on_end: None,
            filters: None,
        }
    }

    /// Sends the body through `filters`, in order (the plugins' `body_filter` phase).
    pub fn filter(&mut self, filters: Vec<Box<dyn BodyFilter>>) {
        self.filters = (!filters.is_empty()).then(|| {
            Box::new(Filters {
                chain: filters,
                finished: false,
                trailers: None,
            })
        });
    }

    /// Attaches the access-log record written when the body ends.
    pub fn set_record(&mut self, record: AccessRecord) {
        self.record = Some(record);
    }

    /// The whole body, read into memory; the body then sends those bytes. A plugin that
    /// needs the upstream's body (`ext-plugin-post-resp`) calls this.
    ///
    /// # Errors
    /// The body is larger than `limit`, or reading it failed (upstream gone, read timeout).
    pub async fn read_all(&mut self, limit: usize) -> Result<Bytes, BodyError> {
        if let Inner::Fixed(bytes) = &self.inner {
            return Ok(bytes.clone().unwrap_or_default());
        }
        let body = std::mem::replace(self, ResponseBody::empty());
        let bytes = http_body_util::Limited::new(body, limit)
            .collect()
            .await?
            .to_bytes();
        *self = ResponseBody::fixed(bytes.clone());
        Ok(bytes)
    }

    /// Whether the upstream's current wait (the body just answered pending) is over the read
    /// timeout; arms the timer on the first pending poll after a chunk, and registers `cx` to
    /// be woken when it fires.
    fn waited_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.armed {
            let Some(deadline) = tokio::time::Instant::now().checked_add(self.read_timeout) else {
                return false; // no timeout to speak of
            };
            match &mut self.idle {
                Some(idle) => idle.as_mut().reset(deadline),
                None => self.idle = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        self.idle
            .as_mut()
            .is_some_and(|idle| idle.as_mut().poll(cx).is_ready())
    }

    /// Runs `f` when the body ends (before the access log line is written).
    pub fn on_end(&mut self, f: OnEnd) {
        self.on_end = Some(f);
    }
}

#[async_trait::async_trait]
impl plugin_api::body::ResponseBody for ResponseBody {
    async fn read_all(&mut self, limit: usize) -> Result<Bytes, plugin_api::body::BodyError> {
        ResponseBody::read_all(self, limit).await
    }

    fn replace(&mut self, bytes: Bytes) {
        *self = ResponseBody::fixed(bytes);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = loop {
            let polled = match &mut this.inner {
                Inner::Fixed(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
                Inner::Upstream(body) => match Pin::new(body).poll_frame(cx) {
                    Poll::Pending => {
                        if this.waited_too_long(cx) {
                            tracing::warn!(timeout = ?this.read_timeout, "upstream body read timed out");
                            return Poll::Ready(Some(Err("upstream read timed out".into())));
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(frame) => {
                        this.armed = false;
                        Poll::Ready(frame.map(|f| f.map_err(BodyError::from)))
                    }
                },
            };
            let Some(filters) = &mut this.filters else {
                break polled;
            };
            match filters.pass(polled) {
                Some(out) => break out,
                // A filter held the chunk back: read on.
                None => continue,
            }
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.sent += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        if self.filters.as_ref().is_some_and(|f| !f.finished) {
            return false;
        }
        match &self.inner {
            Inner::Fixed(b) => b.is_none(),
            Inner::Upstream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.filters.is_some() {
            return SizeHint::default();
        }
        match &self.inner {
            Inner::Fixed(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Fixed(None) => SizeHint::with_exact(0),
            Inner::Upstream(b) => b.size_hint(),
        }
    }
}

/// The body filters of a response and where the body is in them.
struct Filters {
    chain: Vec<Box<dyn BodyFilter>>,
    /// The filters' `finish` ran.
    finished: bool,
    /// Trailers that arrived before the filters finished, sent after their last bytes.
    trailers: Option<Frame<Bytes>>,
}

type Polled = Poll<Option<Result<Frame<Bytes>, BodyError>>>;

impl Filters {
    /// What to send for what the body gave: a filtered chunk, the filters' last bytes at the
    /// end, or `None` when the filters held a chunk back (poll the body again).
    fn pass(&mut self, polled: Polled) -> Option<Polled> {
        if self.finished {
            return Some(match self.trailers.take() {
                Some(trailers) => Poll::Ready(Some(Ok(trailers))),
                None => polled,
            });
        }
        let frame = match polled {
            Poll::Ready(Some(Ok(frame))) => frame,
            // The end of the body (or trailers, which end the data): the filters finish.
            Poll::Ready(None) => return Some(self.finish(None)),
            other => return Some(other),
        };
        match frame.into_data() {
            Ok(data) => {
                let out = self
                    .chain
                    .iter_mut()
                    .fold(data, |chunk, filter| filter.chunk(chunk));
                (!out.is_empty()).then(|| Poll::Ready(Some(Ok(Frame::data(out)))))
            }
            Err(trailers) => Some(self.finish(Some(trailers))),
        }
    }

    /// Runs every filter's `finish`, each one's last bytes through the filters after it.
    fn finish(&mut self, trailers: Option<Frame<Bytes>>) -> Polled {
        self.finished = true;
        let mut tail = Bytes::new();
        for filter in &mut self.chain {
            if !tail.is_empty() {
                tail = filter.chunk(tail);
            }
            let last = filter.finish();
            tail = match (tail.is_empty(), last.is_empty()) {
                (_, true) => tail,
                (true, false) => last,
                (false, false) => [tail, last].concat().into(),
            };
        }
        match (tail.is_empty(), trailers) {
            (false, trailers) => {
                self.trailers = trailers;
                Poll::Ready(Some(Ok(Frame::data(tail))))
            }
            (true, Some(trailers)) => Poll::Ready(Some(Ok(trailers))),
            (true, None) => Poll::Ready(None),
        }
    }
}
