//! Request bodies that can be re-sent until they are read.
//!
//! A retry may only re-send a request whose body has not started streaming to a node: the client's
//! body is consumed as it is forwarded, never buffered. [`RequestBody`] shares the client's body
//! through a slot; the first poll takes it out. If a try fails before anything polled the body,
//! [`BodySlot::replay`] gives a fresh `RequestBody` for the next try; once taken, it gives `None`.
//!
//! A plugin that needs the body (`hmac-auth`'s `validate_request_body`) reads it through
//! [`ClientBody::read`], up to a limit; what it read is sent first, then the rest of the stream.
//! Without such a plugin nothing is buffered.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// A body not sent yet: bytes a plugin already read, then the rest of the client's stream.
struct Pending {
    read: Option<Bytes>,
    rest: Option<Incoming>,
}

impl Pending {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(bytes) = self.read.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        match self.rest.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_none() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let read = self.read.as_ref().map_or(0, |b| b.len() as u64);
        let Some(rest) = &self.rest else {
            return SizeHint::with_exact(read);
        };
        let hint = rest.size_hint();
        let mut out = SizeHint::new();
        out.set_lower(hint.lower().saturating_add(read));
        if let Some(upper) = hint.upper() {
            out.set_upper(upper.saturating_add(read));
        }
        out
    }
}

/// The shared slot holding a not-yet-sent client body.
#[derive(Clone)]
pub struct BodySlot(Option<Arc<Mutex<Option<Pending>>>>);

impl BodySlot {
    /// A slot for `body`; a body that is already at its end needs no slot.
    pub fn new(body: Incoming) -> Self {
        if body.is_end_stream() {
            BodySlot(None)
        } else {
            BodySlot::pending(Pending {
                read: None,
                rest: Some(body),
            })
        }
    }

    fn pending(pending: Pending) -> Self {
        BodySlot(Some(Arc::new(Mutex::new(Some(pending)))))
    }

    /// A body for the next try, or None when an earlier try already started sending it.
    pub fn replay(&self) -> Option<RequestBody> {
        match &self.0 {
            None => Some(RequestBody::empty()),
            Some(slot) => {
                let present = slot.lock().map(|s| s.is_some()).unwrap_or(false);
                present.then(|| RequestBody {
                    slot: Some(slot.clone()),
                    inner: None,
                })
            }
        }
    }
}

/// The body sent to an upstream: empty, or the client's body taken from a [`BodySlot`].
pub struct RequestBody {
    slot: Option<Arc<Mutex<Option<Pending>>>>,
    inner: Option<Pending>,
}

impl RequestBody {
    /// A body with no bytes.
    pub fn empty() -> Self {
        RequestBody {
            slot: None,
            inner: None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.inner.is_none() {
            let Some(slot) = self.slot.take() else {
                return Poll::Ready(None);
            };
            self.inner = slot.lock().ok().and_then(|mut s| s.take());
        }
        match self.inner.as_mut() {
            Some(body) => body.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match (&self.inner, &self.slot) {
            (Some(b), _) => b.is_end_stream(),
            (None, Some(_)) => false,
            (None, None) => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.inner, &self.slot) {
            (Some(b), _) => b.size_hint(),
            (None, Some(slot)) => slot
                .lock()
                .ok()
                .and_then(|s| s.as_ref().map(Pending::size_hint))
                .unwrap_or_default(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}

/// Why a plugin could not read the request body.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    /// The body is larger than the plugin's limit (what was read is still forwarded).
    #[error("request size {size} is greater than the maximum size {limit} allowed")]
    TooLarge {
        /// Bytes read so far (more than `limit`).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The client's body failed (e.g. the connection closed mid-body).
    #[error("failed to read request body: {0}")]
    Read(#[from] hyper::Error),
}

/// The client's body on its way upstream, which request plugins may read first.
#[derive(Default)]
pub struct ClientBody {
    /// What plugins read so far (sent first).
    read: Option<Bytes>,
    /// The rest of the client's body.
    rest: Option<Incoming>,
}

impl ClientBody {
    /// The client's body, not read yet.
    pub fn new(body: Incoming) -> Self {
        ClientBody {
            read: None,
            rest: Some(body),
        }
    }

    /// A body whose bytes are all known (tests).
    pub fn from_bytes(bytes: Bytes) -> Self {
        ClientBody {
            read: Some(bytes),
            rest: None,
        }
    }

    /// The whole body (trailers are not kept), read once and kept for the next plugin and the
    /// upstream.
    ///
    /// # Errors
    /// [`BodyReadError::TooLarge`] once more than `limit` bytes arrived (the bytes stay to be
    /// forwarded), or the client's body failing.
    pub async fn read(&mut self, limit: usize) -> Result<Bytes, BodyReadError> {
        let mut buf = BytesMut::new();
        if let Some(read) = self.read.take() {
            buf.extend_from_slice(&read);
        }
        let outcome = loop {
            if buf.len() > limit {
                break Err(BodyReadError::TooLarge {
                    size: buf.len(),
                    limit,
                });
            }
            let Some(stream) = self.rest.as_mut() else {
                break Ok(());
            };
            match stream.frame().await {
                None => {
                    self.rest = None;
                    break Ok(());
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    self.rest = None;
                    break Err(BodyReadError::Read(e));
                }
            }
        };
        let bytes = buf.freeze();
        self.read = Some(bytes.clone());
        outcome.map(|()| bytes)
    }

    /// The slot the upstream request takes the body from.
    pub fn into_slot(self) -> BodySlot {
        match (self.read.filter(|b| !b.is_empty()), self.rest) {
            (None, Some(rest)) => BodySlot::new(rest),
            (None, None) => BodySlot(None),
            (read, rest) => BodySlot::pending(Pending { read, rest }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn known_bytes_are_read_and_forwarded() {
        let mut body = ClientBody::from_bytes(Bytes::from_static(b"hello"));
        assert_eq!(body.read(5).await.expect("read"), "hello");
        assert_eq!(body.read(5).await.expect("again"), "hello", "kept");
        assert!(matches!(
            body.read(4).await,
            Err(BodyReadError::TooLarge { size: 5, limit: 4 })
        ));
        let slot = body.into_slot();
        let sent = slot.replay().expect("body");
        assert_eq!(sent.size_hint().exact(), Some(5));
        let bytes = sent.collect().await.expect("collected").to_bytes();
        assert_eq!(bytes, "hello");
        assert!(slot.replay().is_none(), "taken");
        assert!(ClientBody::default()
            .into_slot()
            .replay()
            .is_some_and(|b| b.is_end_stream()));
    }
}
