//! Request bodies that can be re-sent until they are read.
//!
//! A retry may only re-send a request whose body has not started streaming to a node: the client's
//! body is consumed as it is forwarded, never buffered. [`RequestBody`] shares the client's body
//! through a slot; the first poll takes it out. If a try fails before anything polled the body,
//! [`BodySlot::replay`] gives a fresh `RequestBody` for the next try; once taken, it gives `None`.
//!
//! A plugin that needs the whole body ([`BodySlot::read`]) or replaces it
//! ([`BodySlot::replace`]) turns the slot into a byte string held in memory, which every try
//! re-sends.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// The shared slot holding a not-yet-sent client body (the default: an empty body).
#[derive(Clone, Default)]
pub struct BodySlot {
    /// The client's body while it streams; `None` for an empty body or a held one.
    shared: Option<Arc<Mutex<Option<Incoming>>>>,
    /// The body held in memory (read by a plugin, or replaced).
    held: Option<Bytes>,
    replaced: bool,
}

/// Why a plugin could not read the request body.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    /// The body is larger than the limit.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The client's body failed (connection cut, malformed chunking).
    #[error("reading the request body failed: {0}")]
    Failed(String),
    /// The body was already sent upstream.
    #[error("the request body was already sent")]
    Gone,
}

impl BodySlot {
    /// A slot for `body`; a body that is already at its end needs no slot.
    pub fn new(body: Incoming) -> Self {
        let shared = (!body.is_end_stream()).then(|| Arc::new(Mutex::new(Some(body))));
        BodySlot {
            shared,
            held: None,
            replaced: false,
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
        let Some(shared) = &self.shared else {
            return Ok(Bytes::new());
        };
        let body = shared
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or(BodyReadError::Gone)?;
        let collected = Limited::new(body, limit).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                BodyReadError::TooLarge(limit)
            } else {
                BodyReadError::Failed(e.to_string())
            }
        })?;
        let bytes = collected.to_bytes();
        self.shared = None;
        self.held = Some(bytes.clone());
        Ok(bytes)
    }

    /// A slot holding `bytes` (as if a plugin had read them).
    pub fn from_bytes(bytes: Bytes) -> Self {
        BodySlot {
            shared: None,
            held: Some(bytes),
            replaced: false,
        }
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
            return Some(RequestBody {
                slot: None,
                inner: None,
                held: Some(held.clone()),
            });
        }
        match &self.shared {
            None => Some(RequestBody::empty()),
            Some(slot) => {
                let present = slot.lock().map(|s| s.is_some()).unwrap_or(false);
                present.then(|| RequestBody {
                    slot: Some(slot.clone()),
                    inner: None,
                    held: None,
                })
            }
        }
    }
}

/// The body sent to an upstream: empty, the client's body taken from a [`BodySlot`], or a
/// body held in memory.
pub struct RequestBody {
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    inner: Option<Incoming>,
    held: Option<Bytes>,
}

impl RequestBody {
    /// A body with no bytes.
    pub fn empty() -> Self {
        RequestBody {
            slot: None,
            inner: None,
            held: None,
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
        if let Some(held) = self.held.take() {
            return Poll::Ready((!held.is_empty()).then(|| Ok(Frame::data(held))));
        }
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
                .ok()
                .and_then(|s| s.as_ref().map(Body::size_hint))
                .unwrap_or_default(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}
