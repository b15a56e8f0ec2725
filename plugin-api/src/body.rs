//! Bodies as plugins see them: the request body (read it whole, replace it) and the upstream's
//! response body in the `upstream_response` phase.

use bytes::Bytes;

/// Why a body could not be read (too large, the client went away, already sent).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The request body that goes upstream.
#[async_trait::async_trait]
pub trait RequestBody: Send + Sync {
    /// Reads the whole body, at most `limit` bytes; the upstream still gets it.
    ///
    /// # Errors
    /// Larger than `limit`, the client's body failed, or it was already sent.
    async fn read(&mut self, limit: usize) -> Result<Bytes, BodyError>;

    /// Sends `bytes` upstream instead of the client's body.
    fn replace(&mut self, bytes: Bytes);

    /// Keeps the body in memory when it is at most `limit` bytes (a larger one keeps
    /// streaming); whether it is now held, so that [`RequestBody::read`] cannot wait on the
    /// client.
    async fn hold(&mut self, limit: usize) -> bool;
}

/// The upstream's response body, before it is sent.
#[async_trait::async_trait]
pub trait ResponseBody: Send {
    /// Reads the whole body, at most `limit` bytes; the client still gets it.
    ///
    /// # Errors
    /// Larger than `limit`, or the upstream's body failed.
    async fn read_all(&mut self, limit: usize) -> Result<Bytes, BodyError>;

    /// Sends `bytes` to the client instead.
    fn replace(&mut self, bytes: Bytes);
}

/// A body held in memory: what a unit test gives a plugin.
#[derive(Debug, Clone, Default)]
pub struct Held(pub Bytes);

#[async_trait::async_trait]
impl RequestBody for Held {
    async fn read(&mut self, limit: usize) -> Result<Bytes, BodyError> {
        if self.0.len() > limit {
            return Err(format!("the request body is larger than {limit} bytes").into());
        }
        Ok(self.0.clone())
    }

    fn replace(&mut self, bytes: Bytes) {
        self.0 = bytes;
    }

    async fn hold(&mut self, _limit: usize) -> bool {
        true
    }
}

#[async_trait::async_trait]
impl ResponseBody for Held {
    async fn read_all(&mut self, limit: usize) -> Result<Bytes, BodyError> {
        RequestBody::read(self, limit).await
    }

    fn replace(&mut self, bytes: Bytes) {
        self.0 = bytes;
    }
}
