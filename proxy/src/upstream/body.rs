//! Request bodies that can be re-sent until they are read.
//!
//! A retry may only re-send a request whose body has not started streaming to a node: the client's
//! body is consumed as it is forwarded, never buffered. [`RequestBody`] shares the client's body
//! through a slot; the first poll takes it out. If a try fails before anything polled the body,
//! [`BodySlot::replay`] gives a fresh `RequestBody` for the next try; once taken, it gives `None`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The shared slot holding a not-yet-sent client body.
#[derive(Clone)]
pub struct BodySlot(Option<Arc<Mutex<Option<Incoming>>>>);

impl BodySlot {
    /// A slot for `body`; a body that is already at its end needs no slot.
    pub fn new(body: Incoming) -> Self {
        if body.is_end_stream() {
            BodySlot(None)
        } else {
            BodySlot(Some(Arc::new(Mutex::new(Some(body)))))
        }
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
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    inner: Option<Incoming>,
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
            Some(body) => Pin::new(body).poll_frame(cx),
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
                .and_then(|s| s.as_ref().map(Body::size_hint))
                .unwrap_or_default(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}
