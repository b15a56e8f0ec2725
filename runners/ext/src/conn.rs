//! One connection to a runner and the conversation of one call on it: send the call, answer
//! extra-info questions in the order they come, return the reply.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use runner_protocol::{
    Frame, FrameCodec, FrameError, InfoSource, MessageType, RunnerError, ToGateway, ToRunner,
    ToRunnerEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::codec::Decoder;

/// A connection, tagged with the generation of the runner process it was opened to.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: UnixStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    codec: FrameCodec,
    encoder: ToRunnerEncoder,
    pub(crate) generation: u64,
}

/// How a call ended, and whether the connection may carry another one.
pub(crate) struct Outcome<T> {
    pub(crate) result: Result<T, RunnerError>,
    /// False after any protocol error, timeout, I/O error or unexpected frame.
    pub(crate) reusable: bool,
}

impl<T> Outcome<T> {
    fn ok(v: T) -> Self {
        Self {
            result: Ok(v),
            reusable: true,
        }
    }
    fn poisoned(e: RunnerError) -> Self {
        Self {
            result: Err(e),
            reusable: false,
        }
    }
}

fn io_error(e: &io::Error) -> RunnerError {
    RunnerError::Unavailable(format!("runner connection failed: {e}"))
}

impl Conn {
    /// Connects within `timeout`.
    pub(crate) async fn connect(
        path: &Path,
        generation: u64,
        timeout: Duration,
    ) -> Result<Conn, RunnerError> {
        match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
            Ok(Ok(stream)) => Ok(Conn {
                stream,
                rbuf: BytesMut::with_capacity(4096),
                wbuf: BytesMut::with_capacity(4096),
                codec: FrameCodec::default(),
                encoder: ToRunnerEncoder::default(),
                generation,
            }),
            Ok(Err(e)) => Err(RunnerError::Unavailable(format!(
                "cannot connect to {}: {e}",
                path.display()
            ))),
            Err(_) => Err(RunnerError::Unavailable(format!(
                "connecting to {} timed out after {timeout:?}",
                path.display()
            ))),
        }
    }

    /// True when nothing is waiting to be read and the peer has not closed: a stale frame (a
    /// runner's duplicate reply) or a closed socket makes the connection unfit for reuse.
    pub(crate) fn is_clean(&self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        match rustix::net::recv(
            &self.stream,
            &mut byte[..],
            rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
        ) {
            Err(e) => e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::WOULDBLOCK,
            // Ok(0) is EOF; Ok(n > 0) is an unread stale frame.
            Ok(_) => false,
        }
    }

    /// Gives back the memory of a large frame before the connection idles in the pool.
    pub(crate) fn trim(&mut self) {
        const KEEP: usize = 64 * 1024;
        if self.rbuf.capacity() > KEEP && self.rbuf.is_empty() {
            self.rbuf = BytesMut::with_capacity(4096);
        }
        if self.wbuf.capacity() > KEEP {
            self.wbuf = BytesMut::with_capacity(4096);
        }
        self.encoder.trim(KEEP);
    }

    /// Encodes `msg` into one buffer and writes it (header and payload in one write).
    async fn send(&mut self, msg: &ToRunner, timeout: Duration) -> Result<(), RunnerError> {
        self.wbuf.clear();
        if let Err(e) = self.encoder.encode(msg, &self.codec, &mut self.wbuf) {
            return Err(RunnerError::Protocol(format!("cannot send: {e}")));
        }
        match tokio::time::timeout(timeout, self.stream.write_all(&self.wbuf)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io_error(&e)),
            Err(_) => Err(RunnerError::Timeout),
        }
    }

    /// Reads one frame, waiting at most `budget` (which is reduced by the time waited).
    async fn recv(&mut self, budget: &mut Duration) -> Result<Frame, RunnerError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + *budget;
        let frame = loop {
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(FrameError::Io(e)) => return Err(io_error(&e)),
                Err(e) => return Err(RunnerError::Protocol(e.to_string())),
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(0)) => {
                    return Err(RunnerError::Unavailable(
                        "runner closed the connection mid-call".into(),
                    ))
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io_error(&e)),
                Err(_) => return Err(RunnerError::Timeout),
            }
        };
        *budget = budget.saturating_sub(started.elapsed());
        Ok(frame)
    }

    /// Sends `msg` and reads until the reply of type `expect` (answering extra-info questions
    /// on the way when `info` is given). A type-0 frame gives [`RunnerError::Runner`] and leaves
    /// the connection usable; anything else unexpected poisons it.
    pub(crate) async fn call<I: InfoSource + ?Sized>(
        &mut self,
        msg: &ToRunner,
        expect: MessageType,
        info: Option<&I>,
        read_timeout: Duration,
    ) -> Outcome<ToGateway> {
        if let Err(e) = self.send(msg, read_timeout).await {
            return Outcome::poisoned(e);
        }
        let mut budget = read_timeout;
        loop {
            let frame = match self.recv(&mut budget).await {
                Ok(f) => f,
                Err(e) => return Outcome::poisoned(e),
            };
            let decoded = match ToGateway::decode(&frame) {
                Ok(m) => m,
                Err(e) => return Outcome::poisoned(RunnerError::Protocol(e.to_string())),
            };
            match decoded {
                ToGateway::Error(code) => {
                    return Outcome {
                        result: Err(RunnerError::Runner(code)),
                        reusable: true,
                    }
                }
                ToGateway::ExtraInfo(question) => {
                    let Some(info) = info else {
                        return Outcome::poisoned(RunnerError::Protocol(
                            "extra-info question outside an HTTP call".into(),
                        ));
                    };
                    let answer = info.answer(&question).await;
                    if let Err(e) = self
                        .send(&ToRunner::ExtraInfoAnswer(answer), read_timeout)
                        .await
                    {
                        return Outcome::poisoned(e);
                    }
                }
                // A duplicate prepare reply (Java runner) left over from an earlier call.
                ToGateway::ConfToken(_) if expect != MessageType::PrepareConf => {
                    tracing::debug!("discarding a stale PrepareConf reply");
                }
                other if frame.ty == expect => return Outcome::ok(other),
                _ => {
                    return Outcome::poisoned(RunnerError::Protocol(format!(
                        "unexpected {:?} frame while waiting for {expect:?}",
                        frame.ty
                    )))
                }
            }
        }
    }
}

/// An `InfoSource` for calls that cannot carry questions.
pub(crate) struct NoInfo;

impl InfoSource for NoInfo {
    async fn answer(&self, _: &runner_protocol::ExtraInfo) -> Option<bytes::Bytes> {
        None
    }
}

/// The error for a reply that looks like the Python runner's error (its request type, an
/// empty table): id 0 or token 0.
pub(crate) fn empty_reply(what: &str) -> RunnerError {
    RunnerError::Protocol(format!(
        "{what} is 0: the runner answered with an empty reply (an error framed as a reply?)"
    ))
}
