//! The runner protocol: the wire contract between the gateway and out-of-process plugin runners,
//! compatible with APISIX's ext-plugin protocol (schema family `A6`, 0.6.1). See
//! `docs/runner-protocol.md`.
//!
//! # Layout
//! - [`byte_text`]: byte strings in JSON (text, or `{"hex": ...}` when not UTF-8).
//! - [`frame`]: frames on the socket (type byte + 24-bit big-endian length), as a tokio-util codec.
//! - [`message`]: owned values for every message, each direction, with frame conversions.
//! - `reader` (private): the checked single-pass reader that decoding uses instead of
//!   `flatbuffers::root` and the generated readers; it accepts exactly what flatbuffers' verifier
//!   accepts (tested against it) and slices byte strings out of the payload.
//! - [`runner`]: the `Runner` (raw tokens) and `KeyedRunner` (by key; what the gateway holds)
//!   traits that the runner crates implement.
//! - [`conf_cache`]: the conf-token cache by key both runner kinds keep.
//! - [`generated`]: flatc's output for `schema/ext-plugin.fbs` (regenerate with
//!   `runner-protocol/generate`; never edit), with every string seen as a byte vector: the wire
//!   bytes are the same, and a verified buffer may carry non-UTF-8 header values and paths. Write
//!   strings with `FlatBufferBuilder::create_byte_string`, which adds the NUL terminator.

pub mod byte_text;
pub mod conf_cache;
pub mod frame;
pub mod message;
mod reader;
pub mod runner;

/// flatc's bindings. Generated code: lints and the unsafe rule do not apply.
#[allow(
    unsafe_code,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    unused_imports,
    dead_code,
    missing_docs
)]
#[rustfmt::skip]
pub mod generated {
    /// Every table, enum and union of the `A6` namespaces.
    #[path = "a6.rs"]
    pub mod a6;
}

pub use conf_cache::{ConfCache, Pending, Prepare};
pub use frame::{Frame, FrameCodec, FrameError, MessageType, MAX_PAYLOAD};
pub use message::{
    Action, DecodeError, ErrorCode, ExtraInfo, HttpRequest, HttpRequestReply, HttpResponse,
    HttpResponseReply, Method, PrepareConf, Rewrite, Stop, TextEntry, ToGateway, ToRunner,
    ToRunnerEncoder,
};
pub use runner::{DynInfoSource, InfoSource, KeyedCall, KeyedRunner, Runner, RunnerError};
