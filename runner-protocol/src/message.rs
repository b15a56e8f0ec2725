//! Transport-neutral messages: owned Rust values for every A6 message, with conversions to and from
//! frames. Nothing outside this crate touches FlatBuffers.
//!
//! Byte strings ([`Bytes`]) are used wherever the wire has a string: header values and paths may
//! hold any bytes. Decoding does not copy them: they are slices of the frame's payload, read and
//! checked in one pass by `crate::reader`; encoding uses flatc's generated builders, and the frame
//! takes the builder's buffer without a copy. Empty vectors are not written (the official runners
//! treat an absent vector as empty); a text entry's value keeps the difference between absent
//! (`None`, "delete" or `?flag`) and empty (`Some(vec![])`, `?k=`).

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};
use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, InvalidFlatbuffer, Vector, WIPOffset};
use serde::{Deserialize, Serialize};

use crate::frame::{Frame, FrameCodec, FrameError, MessageType};
use crate::generated::a6::a6 as wire;
use crate::reader::Reader;

/// A name with an optional value (header, query argument, plugin conf entry).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TextEntry {
    /// The name.
    #[serde(with = "crate::byte_text")]
    pub name: Bytes,
    /// The value; `None` is absent (a `?flag` argument, or "remove" in a rewrite).
    #[serde(with = "crate::byte_text::option", default)]
    pub value: Option<Bytes>,
}

impl TextEntry {
    /// An entry with a value.
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
        }
    }
}

/// HTTP methods the protocol can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Method {
    Get = 0,
    Head,
    Post,
    Put,
    Delete,
    Mkcol,
    Copy,
    Move,
    Options,
    Propfind,
    Proppatch,
    Lock,
    Unlock,
    Patch,
    Trace,
}

impl Method {
    const ALL: [Method; 15] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Mkcol,
        Method::Copy,
        Method::Move,
        Method::Options,
        Method::Propfind,
        Method::Proppatch,
        Method::Lock,
        Method::Unlock,
        Method::Patch,
        Method::Trace,
    ];

    /// The method for a wire value, if it is one.
    pub fn from_wire(v: u8) -> Option<Method> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// The method named `name` (`GET`, `POST`, ...), if the protocol has it.
    pub fn from_name(name: &str) -> Option<Method> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The method's name.
    pub fn name(self) -> &'static str {
        wire::Method(self as u8).variant_name().unwrap_or("GET")
    }
}

/// `A6.Err.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The runner could not understand the request.
    BadRequest,
    /// The runner failed.
    ServiceUnavailable,
    /// The conf token is unknown or expired: prepare the conf again.
    ConfTokenNotFound,
}

/// `PrepareConf.Req`: register a plugin configuration, get a token for it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrepareConf {
    /// The plugin entries in order (name = runner plugin name, value = its config text).
    pub conf: Vec<TextEntry>,
    /// A stable idempotency key such as `route#1#ext-plugin-pre-req#7` (owner, plugin, a number
    /// unique to each built plugin instance).
    #[serde(with = "crate::byte_text")]
    pub key: Bytes,
}

/// `HTTPReqCall.Req`: a client request for the request-phase plugins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Call id, never 0.
    pub id: u32,
    /// Client address: 4 or 16 raw bytes.
    #[serde(with = "crate::byte_text")]
    pub src_ip: Bytes,
    /// Method.
    pub method: Method,
    /// Decoded, normalised path without the query.
    #[serde(with = "crate::byte_text")]
    pub path: Bytes,
    /// Query arguments, one entry per value.
    pub args: Vec<TextEntry>,
    /// Headers (names lower-cased), one entry per value.
    pub headers: Vec<TextEntry>,
    /// From [`PrepareConf`].
    pub conf_token: u32,
}

/// Answer the client directly.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stop {
    /// Status (0 means 200).
    pub status: u16,
    /// Response headers.
    pub headers: Vec<TextEntry>,
    /// Response body.
    #[serde(with = "crate::byte_text")]
    pub body: Bytes,
}

/// Change the request before it goes upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rewrite {
    /// New path, if any.
    #[serde(with = "crate::byte_text::option", default)]
    pub path: Option<Bytes>,
    /// Headers to set (no value removes).
    pub headers: Vec<TextEntry>,
    /// Query arguments to set (no value removes).
    pub args: Vec<TextEntry>,
    /// Headers to add to the client response.
    pub resp_headers: Vec<TextEntry>,
    /// New request body (used when non-empty).
    #[serde(with = "crate::byte_text")]
    pub body: Bytes,
}

/// What a runner decided for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Answer now.
    Stop(Stop),
    /// Change the request and go on.
    Rewrite(Rewrite),
}

/// `HTTPReqCall.Resp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequestReply {
    /// The call id.
    pub id: u32,
    /// `None`: continue unchanged.
    pub action: Option<Action>,
}

/// `ExtraInfo.Req`: a runner's question during a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExtraInfo {
    /// The value of a request variable.
    Var(#[serde(with = "crate::byte_text")] Bytes),
    /// The whole request body.
    ReqBody,
    /// The whole upstream response body.
    RespBody,
}

/// `HTTPRespCall.Req`: the upstream's response head for the response-phase plugin.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Call id, never 0.
    pub id: u32,
    /// Upstream status.
    pub status: u16,
    /// Upstream headers, one entry per value.
    pub headers: Vec<TextEntry>,
    /// From [`PrepareConf`].
    pub conf_token: u32,
}

/// `HTTPRespCall.Resp`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HttpResponseReply {
    /// The call id.
    pub id: u32,
    /// New status (0 keeps the upstream's).
    pub status: u16,
    /// Response headers (non-empty replaces the upstream's set).
    pub headers: Vec<TextEntry>,
    /// New body (used when non-empty).
    #[serde(with = "crate::byte_text")]
    pub body: Bytes,
}

/// Messages the gateway sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToRunner {
    /// Type 1.
    PrepareConf(PrepareConf),
    /// Type 2.
    HttpRequest(HttpRequest),
    /// Type 3: the answer to an [`ExtraInfo`] question (`None`: unknown variable).
    ExtraInfoAnswer(#[serde(with = "crate::byte_text::option")] Option<Bytes>),
    /// Type 4.
    HttpResponse(HttpResponse),
}

/// Messages a runner sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToGateway {
    /// Type 0.
    Error(ErrorCode),
    /// Type 1: the token for a prepared conf.
    ConfToken(u32),
    /// Type 2.
    HttpRequestReply(HttpRequestReply),
    /// Type 3.
    ExtraInfo(ExtraInfo),
    /// Type 4.
    HttpResponseReply(HttpResponseReply),
}

/// Why a frame does not hold a valid message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not a valid buffer for the message type.
    #[error("invalid {ty:?} payload: {source}")]
    Invalid {
        /// The frame's type.
        ty: MessageType,
        /// What the checks found (flatbuffers' verifier error kinds, without the error trace).
        source: InvalidFlatbuffer,
    },
    /// A type that does not travel in this direction.
    #[error("message type {0:?} is not expected in this direction")]
    UnexpectedType(MessageType),
    /// An enum or union value the protocol does not define.
    #[error("unknown {what} value {value}")]
    UnknownValue {
        /// Which field.
        what: &'static str,
        /// The value.
        value: u8,
    },
}

/// Why reading a payload stopped; the frame's type is added by `decode`.
enum Fail {
    Invalid(InvalidFlatbuffer),
    Decode(DecodeError),
}

impl From<InvalidFlatbuffer> for Fail {
    fn from(e: InvalidFlatbuffer) -> Self {
        Fail::Invalid(e)
    }
}

impl From<DecodeError> for Fail {
    fn from(e: DecodeError) -> Self {
        Fail::Decode(e)
    }
}

impl Fail {
    fn at(self, ty: MessageType) -> DecodeError {
        match self {
            Fail::Invalid(source) => DecodeError::Invalid { ty, source },
            Fail::Decode(e) => e,
        }
    }
}

type Entries<'a> = WIPOffset<Vector<'a, ForwardsUOffset<wire::TextEntry<'a>>>>;

/// A NUL-terminated string field holding any bytes.
fn string<'a>(fbb: &mut FlatBufferBuilder<'a>, bytes: &[u8]) -> WIPOffset<Vector<'a, u8>> {
    WIPOffset::new(fbb.create_byte_string(bytes).value())
}

fn string_opt<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    bytes: &[u8],
) -> Option<WIPOffset<Vector<'a, u8>>> {
    (!bytes.is_empty()).then(|| string(fbb, bytes))
}

fn byte_vector<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    bytes: &[u8],
) -> Option<WIPOffset<Vector<'a, u8>>> {
    (!bytes.is_empty()).then(|| fbb.create_vector(bytes))
}

fn entries<'a>(fbb: &mut FlatBufferBuilder<'a>, list: &[TextEntry]) -> Option<Entries<'a>> {
    if list.is_empty() {
        return None;
    }
    let offsets: Vec<_> = list
        .iter()
        .map(|e| {
            let name = string(fbb, &e.name);
            let value = e.value.as_deref().map(|v| string(fbb, v));
            wire::TextEntry::create(
                fbb,
                &wire::TextEntryArgs {
                    name: Some(name),
                    value,
                },
            )
        })
        .collect();
    Some(fbb.create_vector(&offsets))
}

/// The frame holding a finished builder's buffer. The builder writes back to front, so the
/// finished data is the tail of its buffer: the frame takes the buffer and slices the tail out of
/// it instead of copying it (the unused head is the size hint's slack, more if the builder grew).
fn frame(ty: MessageType, fbb: FlatBufferBuilder<'_>) -> Frame {
    let (buf, head) = fbb.collapse();
    let mut payload = Bytes::from(buf);
    // `advance` moves the start without the shared-state allocation that `slice` would make.
    payload.advance(head);
    Frame { ty, payload }
}

/// Encodes [`ToRunner`] messages straight into an output buffer, with one builder whose memory
/// is reused from message to message (a connection keeps one): no allocation per message once
/// the builder has grown to the connection's usual message size.
#[derive(Default)]
pub struct ToRunnerEncoder {
    fbb: FlatBufferBuilder<'static>,
    /// The largest message built since the last trim: the builder's buffer is at least that.
    largest: usize,
}

impl fmt::Debug for ToRunnerEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToRunnerEncoder")
            .field("largest", &self.largest)
            .finish_non_exhaustive()
    }
}

impl ToRunnerEncoder {
    /// Appends `msg` as one frame (header and payload) to `dst`.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] past `codec`'s payload limit (`dst` is unchanged).
    pub fn encode(
        &mut self,
        msg: &ToRunner,
        codec: &FrameCodec,
        dst: &mut BytesMut,
    ) -> Result<(), FrameError> {
        self.fbb.reset();
        let ty = msg.build(&mut self.fbb);
        let payload = self.fbb.finished_data();
        self.largest = self.largest.max(payload.len());
        codec.put_frame(ty, payload, dst)
    }

    /// Gives back the builder's memory when a message since the last trim was larger than
    /// `keep` bytes.
    pub fn trim(&mut self, keep: usize) {
        if self.largest > keep {
            self.fbb = FlatBufferBuilder::new();
        }
        self.largest = 0;
    }
}

/// Room for the byte strings of `list` with their table and vector overhead, so a builder sized
/// with it does not grow (each growth copies the whole buffer).
fn entries_size(list: &[TextEntry]) -> usize {
    list.iter()
        .map(|e| e.name.len() + e.value.as_ref().map_or(0, Bytes::len) + 40)
        .sum()
}

impl ToRunner {
    fn size_hint(&self) -> usize {
        64 + match self {
            ToRunner::PrepareConf(m) => entries_size(&m.conf) + m.key.len(),
            ToRunner::HttpRequest(m) => {
                m.src_ip.len() + m.path.len() + entries_size(&m.args) + entries_size(&m.headers)
            }
            ToRunner::ExtraInfoAnswer(r) => r.as_ref().map_or(0, Bytes::len),
            ToRunner::HttpResponse(m) => entries_size(&m.headers),
        }
    }

    /// The frame for this message.
    pub fn encode(&self) -> Frame {
        let mut fbb = FlatBufferBuilder::with_capacity(self.size_hint());
        let ty = self.build(&mut fbb);
        frame(ty, fbb)
    }

    /// Builds this message into `fbb` (empty, or reset) and says its frame type.
    fn build(&self, fbb: &mut FlatBufferBuilder<'_>) -> MessageType {
        match self {
            ToRunner::PrepareConf(m) => {
                let conf = entries(fbb, &m.conf);
                let key = string_opt(fbb, &m.key);
                let root = wire::prepare_conf::Req::create(
                    fbb,
                    &wire::prepare_conf::ReqArgs { conf, key },
                );
                fbb.finish_minimal(root);
                MessageType::PrepareConf
            }
            ToRunner::HttpRequest(m) => {
                let src_ip = byte_vector(fbb, &m.src_ip);
                let path = string_opt(fbb, &m.path);
                let args = entries(fbb, &m.args);
                let headers = entries(fbb, &m.headers);
                let root = wire::httpreq_call::Req::create(
                    fbb,
                    &wire::httpreq_call::ReqArgs {
                        id: m.id,
                        src_ip,
                        method: wire::Method(m.method as u8),
                        path,
                        args,
                        headers,
                        conf_token: m.conf_token,
                    },
                );
                fbb.finish_minimal(root);
                MessageType::HttpReqCall
            }
            ToRunner::ExtraInfoAnswer(result) => {
                let result = result.as_deref().map(|r| fbb.create_vector(r));
                let root =
                    wire::extra_info::Resp::create(fbb, &wire::extra_info::RespArgs { result });
                fbb.finish_minimal(root);
                MessageType::ExtraInfo
            }
            ToRunner::HttpResponse(m) => {
                let headers = entries(fbb, &m.headers);
                let root = wire::httpresp_call::Req::create(
                    fbb,
                    &wire::httpresp_call::ReqArgs {
                        id: m.id,
                        status: m.status,
                        headers,
                        conf_token: m.conf_token,
                    },
                );
                fbb.finish_minimal(root);
                MessageType::HttpRespCall
            }
        }
    }

    /// The message in a frame sent by the gateway.
    ///
    /// # Errors
    /// When the payload does not verify or holds values the protocol does not define.
    pub fn decode(frame: &Frame) -> Result<ToRunner, DecodeError> {
        Self::read(frame.ty, &mut Reader::new(&frame.payload)).map_err(|e| e.at(frame.ty))
    }

    fn read(ty: MessageType, r: &mut Reader<'_>) -> Result<ToRunner, Fail> {
        let msg = match ty {
            MessageType::PrepareConf => {
                use wire::prepare_conf::Req as W;
                let m = r.root()?;
                ToRunner::PrepareConf(PrepareConf {
                    conf: r.entries_field(m, W::VT_CONF)?,
                    key: r.bytes_field(m, W::VT_KEY)?.unwrap_or_default(),
                })
            }
            MessageType::HttpReqCall => {
                use wire::httpreq_call::Req as W;
                let m = r.root()?;
                let id = r.u32_field(m, W::VT_ID)?;
                let src_ip = r.bytes_field(m, W::VT_SRC_IP)?.unwrap_or_default();
                let method = r.u8_field(m, W::VT_METHOD)?;
                let path = r.bytes_field(m, W::VT_PATH)?.unwrap_or_default();
                let args = r.entries_field(m, W::VT_ARGS)?;
                let headers = r.entries_field(m, W::VT_HEADERS)?;
                let conf_token = r.u32_field(m, W::VT_CONF_TOKEN)?;
                let method = Method::from_wire(method).ok_or(DecodeError::UnknownValue {
                    what: "method",
                    value: method,
                })?;
                ToRunner::HttpRequest(HttpRequest {
                    id,
                    src_ip,
                    method,
                    path,
                    args,
                    headers,
                    conf_token,
                })
            }
            MessageType::ExtraInfo => {
                let m = r.root()?;
                ToRunner::ExtraInfoAnswer(r.bytes_field(m, wire::extra_info::Resp::VT_RESULT)?)
            }
            MessageType::HttpRespCall => {
                use wire::httpresp_call::Req as W;
                let m = r.root()?;
                ToRunner::HttpResponse(HttpResponse {
                    id: r.u32_field(m, W::VT_ID)?,
                    status: r.u16_field(m, W::VT_STATUS)?,
                    headers: r.entries_field(m, W::VT_HEADERS)?,
                    conf_token: r.u32_field(m, W::VT_CONF_TOKEN)?,
                })
            }
            MessageType::Error => return Err(DecodeError::UnexpectedType(ty).into()),
        };
        Ok(msg)
    }
}

impl ToGateway {
    fn size_hint(&self) -> usize {
        64 + match self {
            ToGateway::Error(_) | ToGateway::ConfToken(_) => 0,
            ToGateway::HttpRequestReply(m) => match &m.action {
                None => 0,
                Some(Action::Stop(s)) => entries_size(&s.headers) + s.body.len(),
                Some(Action::Rewrite(r)) => {
                    r.path.as_ref().map_or(0, Bytes::len)
                        + entries_size(&r.headers)
                        + entries_size(&r.args)
                        + entries_size(&r.resp_headers)
                        + r.body.len()
                }
            },
            ToGateway::ExtraInfo(ExtraInfo::Var(name)) => name.len(),
            ToGateway::ExtraInfo(_) => 0,
            ToGateway::HttpResponseReply(m) => entries_size(&m.headers) + m.body.len(),
        }
    }

    /// The frame for this message.
    pub fn encode(&self) -> Frame {
        let mut fbb = FlatBufferBuilder::with_capacity(self.size_hint());
        let ty = match self {
            ToGateway::Error(code) => {
                let code = match code {
                    ErrorCode::BadRequest => wire::err::Code::BAD_REQUEST,
                    ErrorCode::ServiceUnavailable => wire::err::Code::SERVICE_UNAVAILABLE,
                    ErrorCode::ConfTokenNotFound => wire::err::Code::CONF_TOKEN_NOT_FOUND,
                };
                let root = wire::err::Resp::create(&mut fbb, &wire::err::RespArgs { code });
                fbb.finish_minimal(root);
                MessageType::Error
            }
            ToGateway::ConfToken(conf_token) => {
                let root = wire::prepare_conf::Resp::create(
                    &mut fbb,
                    &wire::prepare_conf::RespArgs {
                        conf_token: *conf_token,
                    },
                );
                fbb.finish_minimal(root);
                MessageType::PrepareConf
            }
            ToGateway::HttpRequestReply(m) => {
                let (action_type, action) = match &m.action {
                    None => (wire::httpreq_call::Action::NONE, None),
                    Some(Action::Stop(s)) => {
                        let headers = entries(&mut fbb, &s.headers);
                        let body = byte_vector(&mut fbb, &s.body);
                        let stop = wire::httpreq_call::Stop::create(
                            &mut fbb,
                            &wire::httpreq_call::StopArgs {
                                status: s.status,
                                headers,
                                body,
                            },
                        );
                        (
                            wire::httpreq_call::Action::Stop,
                            Some(stop.as_union_value()),
                        )
                    }
                    Some(Action::Rewrite(r)) => {
                        let path = r.path.as_deref().map(|p| string(&mut fbb, p));
                        let headers = entries(&mut fbb, &r.headers);
                        let args = entries(&mut fbb, &r.args);
                        let resp_headers = entries(&mut fbb, &r.resp_headers);
                        let body = byte_vector(&mut fbb, &r.body);
                        let rewrite = wire::httpreq_call::Rewrite::create(
                            &mut fbb,
                            &wire::httpreq_call::RewriteArgs {
                                path,
                                headers,
                                args,
                                resp_headers,
                                body,
                            },
                        );
                        (
                            wire::httpreq_call::Action::Rewrite,
                            Some(rewrite.as_union_value()),
                        )
                    }
                };
                let root = wire::httpreq_call::Resp::create(
                    &mut fbb,
                    &wire::httpreq_call::RespArgs {
                        id: m.id,
                        action_type,
                        action,
                    },
                );
                fbb.finish_minimal(root);
                MessageType::HttpReqCall
            }
            ToGateway::ExtraInfo(info) => {
                let (info_type, info) = match info {
                    ExtraInfo::Var(name) => {
                        let name = Some(string(&mut fbb, name));
                        let var = wire::extra_info::Var::create(
                            &mut fbb,
                            &wire::extra_info::VarArgs { name },
                        );
                        (wire::extra_info::Info::Var, var.as_union_value())
                    }
                    ExtraInfo::ReqBody => {
                        let t = wire::extra_info::ReqBody::create(
                            &mut fbb,
                            &wire::extra_info::ReqBodyArgs {},
                        );
                        (wire::extra_info::Info::ReqBody, t.as_union_value())
                    }
                    ExtraInfo::RespBody => {
                        let t = wire::extra_info::RespBody::create(
                            &mut fbb,
                            &wire::extra_info::RespBodyArgs {},
                        );
                        (wire::extra_info::Info::RespBody, t.as_union_value())
                    }
                };
                let root = wire::extra_info::Req::create(
                    &mut fbb,
                    &wire::extra_info::ReqArgs {
                        info_type,
                        info: Some(info),
                    },
                );
                fbb.finish_minimal(root);
                MessageType::ExtraInfo
            }
            ToGateway::HttpResponseReply(m) => {
                let headers = entries(&mut fbb, &m.headers);
                let body = byte_vector(&mut fbb, &m.body);
                let root = wire::httpresp_call::Resp::create(
                    &mut fbb,
                    &wire::httpresp_call::RespArgs {
                        id: m.id,
                        status: m.status,
                        headers,
                        body,
                    },
                );
                fbb.finish_minimal(root);
                MessageType::HttpRespCall
            }
        };
        frame(ty, fbb)
    }

    /// The message in a frame sent by a runner.
    ///
    /// # Errors
    /// When the payload does not verify or holds values the protocol does not define.
    pub fn decode(frame: &Frame) -> Result<ToGateway, DecodeError> {
        Self::read(frame.ty, &mut Reader::new(&frame.payload)).map_err(|e| e.at(frame.ty))
    }

    fn read(ty: MessageType, r: &mut Reader<'_>) -> Result<ToGateway, Fail> {
        let msg = match ty {
            MessageType::Error => {
                let m = r.root()?;
                let code = wire::err::Code(r.u8_field(m, wire::err::Resp::VT_CODE)?);
                ToGateway::Error(match code {
                    wire::err::Code::BAD_REQUEST => ErrorCode::BadRequest,
                    wire::err::Code::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
                    wire::err::Code::CONF_TOKEN_NOT_FOUND => ErrorCode::ConfTokenNotFound,
                    other => {
                        return Err(Fail::Decode(DecodeError::UnknownValue {
                            what: "error code",
                            value: other.0,
                        }))
                    }
                })
            }
            MessageType::PrepareConf => {
                let m = r.root()?;
                ToGateway::ConfToken(r.u32_field(m, wire::prepare_conf::Resp::VT_CONF_TOKEN)?)
            }
            MessageType::HttpReqCall => {
                use wire::httpreq_call::{Action as A, Resp as W, Rewrite as RW, Stop as S};
                let m = r.root()?;
                let id = r.u32_field(m, W::VT_ID)?;
                let (action_type, table) = r.union_field(
                    m,
                    W::VT_ACTION_TYPE,
                    W::VT_ACTION,
                    ("action_type", "action"),
                    |t| A(t) == A::Stop || A(t) == A::Rewrite,
                )?;
                let action = match (A(action_type), table) {
                    (A::NONE, _) => None,
                    (A::Stop, Some(s)) => Some(Action::Stop(Stop {
                        status: r.u16_field(s, S::VT_STATUS)?,
                        headers: r.entries_field(s, S::VT_HEADERS)?,
                        body: r.bytes_field(s, S::VT_BODY)?.unwrap_or_default(),
                    })),
                    (A::Rewrite, Some(t)) => Some(Action::Rewrite(Rewrite {
                        path: r.bytes_field(t, RW::VT_PATH)?,
                        headers: r.entries_field(t, RW::VT_HEADERS)?,
                        args: r.entries_field(t, RW::VT_ARGS)?,
                        resp_headers: r.entries_field(t, RW::VT_RESP_HEADERS)?,
                        body: r.bytes_field(t, RW::VT_BODY)?.unwrap_or_default(),
                    })),
                    // A known type is always read with its table.
                    (A::Stop | A::Rewrite, None) => None,
                    (other, _) => {
                        return Err(Fail::Decode(DecodeError::UnknownValue {
                            what: "action",
                            value: other.0,
                        }))
                    }
                };
                ToGateway::HttpRequestReply(HttpRequestReply { id, action })
            }
            MessageType::ExtraInfo => {
                use wire::extra_info::{Info, Req as W, Var};
                let m = r.root()?;
                let (info_type, table) =
                    r.union_field(m, W::VT_INFO_TYPE, W::VT_INFO, ("info_type", "info"), |t| {
                        matches!(Info(t), Info::Var | Info::ReqBody | Info::RespBody)
                    })?;
                ToGateway::ExtraInfo(match Info(info_type) {
                    Info::Var => ExtraInfo::Var(match table {
                        Some(t) => r.bytes_field(t, Var::VT_NAME)?.unwrap_or_default(),
                        None => Bytes::new(),
                    }),
                    Info::ReqBody => ExtraInfo::ReqBody,
                    Info::RespBody => ExtraInfo::RespBody,
                    other => {
                        return Err(Fail::Decode(DecodeError::UnknownValue {
                            what: "extra info",
                            value: other.0,
                        }))
                    }
                })
            }
            MessageType::HttpRespCall => {
                use wire::httpresp_call::Resp as W;
                let m = r.root()?;
                ToGateway::HttpResponseReply(HttpResponseReply {
                    id: r.u32_field(m, W::VT_ID)?,
                    status: r.u16_field(m, W::VT_STATUS)?,
                    headers: r.entries_field(m, W::VT_HEADERS)?,
                    body: r.bytes_field(m, W::VT_BODY)?.unwrap_or_default(),
                })
            }
        };
        Ok(msg)
    }
}
