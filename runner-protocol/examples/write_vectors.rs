//! Writes the golden vectors: `cargo run -p runner-protocol --example write_vectors`.
//!
//! Each vector is a whole frame (type byte, 24-bit length, payload) in `vectors/<name>.bin`, and an
//! entry in `vectors/manifest.json` with its direction, type and content. Byte strings in the
//! manifest are JSON strings, or `{"hex": "..."}` when they are not UTF-8, or `{"hex": "61",
//! "repeat": n}` for a run of at least 1024 copies of one byte (see `runner_protocol::byte_text`).
//! `exact_bytes: true` means an encoder that omits empty vectors and default scalars (as this
//! crate's does) produces exactly these bytes; otherwise only the decoded content must match.
//!
//! The largest frame (`extra_info_answer_largest_frame`: an extra-info answer whose payload is as
//! close to `MAX_PAYLOAD` as FlatBuffers alignment allows) is written gzip-compressed, as
//! `<name>.bin.gz`: 16 MiB of one byte would not belong in the repository.

use std::io::Write;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use flatbuffers::FlatBufferBuilder;
use flate2::write::GzEncoder;
use flate2::Compression;
use runner_protocol::generated::a6::a6 as wire;
use runner_protocol::*;
use serde_json::{json, Value};
use tokio_util::codec::Encoder;

fn frame_bytes(frame: Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    FrameCodec::default()
        .encode(frame, &mut out)
        .expect("vectors fit in a frame");
    out.to_vec()
}

fn entries(list: &[(&[u8], Option<&[u8]>)]) -> Vec<TextEntry> {
    list.iter()
        .map(|(n, v)| TextEntry {
            name: Bytes::copy_from_slice(n),
            value: v.map(Bytes::copy_from_slice),
        })
        .collect()
}

fn to_runner() -> Vec<(&'static str, ToRunner)> {
    vec![
        (
            "prepare_conf",
            ToRunner::PrepareConf(PrepareConf {
                conf: entries(&[(b"say", Some(br#"{"body":"hi"}"#)), (b"auth", Some(b""))]),
                key: Bytes::from_static(b"route#1#ext-plugin-pre-req#7"),
            }),
        ),
        (
            "prepare_conf_empty",
            ToRunner::PrepareConf(PrepareConf::default()),
        ),
        (
            "http_request",
            ToRunner::HttpRequest(HttpRequest {
                id: 1,
                src_ip: Bytes::from_static(&[127, 0, 0, 1]),
                method: Method::Get,
                path: Bytes::from_static(b"/hello/world"),
                args: entries(&[
                    (b"flag", None),
                    (b"k", Some(b"")),
                    (b"a", Some(b"1")),
                    (b"a", Some(b"2")),
                ]),
                headers: entries(&[
                    (b"host", Some(b"api.test")),
                    (b"accept", Some(b"*/*")),
                    (b"x-multi", Some(b"1")),
                    (b"x-multi", Some(b"2")),
                ]),
                conf_token: 3,
            }),
        ),
        (
            "http_request_ipv6_non_utf8",
            ToRunner::HttpRequest(HttpRequest {
                id: 2,
                src_ip: Bytes::from_static(&[
                    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                ]),
                method: Method::Post,
                path: Bytes::from_static(b"/caf\xe9/\x80"),
                args: Vec::new(),
                headers: entries(&[(b"x-raw", Some(b"\xff\xfe obs-text"))]),
                conf_token: 4,
            }),
        ),
        (
            "http_request_max",
            ToRunner::HttpRequest(HttpRequest {
                id: u32::MAX,
                src_ip: Bytes::from_static(&[255; 4]),
                method: Method::Trace,
                path: Bytes::from_static(b"/"),
                args: Vec::new(),
                headers: Vec::new(),
                conf_token: u32::MAX,
            }),
        ),
        (
            "extra_info_answer",
            ToRunner::ExtraInfoAnswer(Some(Bytes::from_static(b"GET"))),
        ),
        ("extra_info_answer_absent", ToRunner::ExtraInfoAnswer(None)),
        (
            "extra_info_answer_empty",
            ToRunner::ExtraInfoAnswer(Some(Bytes::new())),
        ),
        (
            "http_response",
            ToRunner::HttpResponse(HttpResponse {
                id: 5,
                status: 502,
                headers: entries(&[
                    (b"content-type", Some(b"text/plain")),
                    (b"set-cookie", Some(b"a=1")),
                    (b"set-cookie", Some(b"b=2")),
                ]),
                conf_token: 6,
            }),
        ),
    ]
}

fn to_gateway() -> Vec<(&'static str, ToGateway)> {
    vec![
        ("error_bad_request", ToGateway::Error(ErrorCode::BadRequest)),
        (
            "error_service_unavailable",
            ToGateway::Error(ErrorCode::ServiceUnavailable),
        ),
        (
            "error_conf_token_not_found",
            ToGateway::Error(ErrorCode::ConfTokenNotFound),
        ),
        ("conf_token", ToGateway::ConfToken(42)),
        ("conf_token_max", ToGateway::ConfToken(u32::MAX)),
        (
            "request_reply_continue",
            ToGateway::HttpRequestReply(HttpRequestReply {
                id: 1,
                action: None,
            }),
        ),
        (
            "request_reply_stop",
            ToGateway::HttpRequestReply(HttpRequestReply {
                id: 1,
                action: Some(Action::Stop(Stop {
                    status: 403,
                    headers: entries(&[(b"x-reason", Some(b"denied")), (b"x-gone", None)]),
                    body: Bytes::from_static(b"{\"message\":\"no\"}"),
                })),
            }),
        ),
        (
            "request_reply_stop_empty",
            ToGateway::HttpRequestReply(HttpRequestReply {
                id: 2,
                action: Some(Action::Stop(Stop::default())),
            }),
        ),
        (
            "request_reply_rewrite",
            ToGateway::HttpRequestReply(HttpRequestReply {
                id: 3,
                action: Some(Action::Rewrite(Rewrite {
                    path: Some(Bytes::from_static(b"/new/path")),
                    headers: entries(&[(b"x-add", Some(b"1")), (b"x-remove", None)]),
                    args: entries(&[(b"page", Some(b"2")), (b"debug", None)]),
                    resp_headers: entries(&[(b"x-resp", Some(b"yes"))]),
                    body: Bytes::from_static(b"new body"),
                })),
            }),
        ),
        (
            "request_reply_rewrite_empty",
            ToGateway::HttpRequestReply(HttpRequestReply {
                id: 4,
                action: Some(Action::Rewrite(Rewrite::default())),
            }),
        ),
        (
            "extra_info_var",
            ToGateway::ExtraInfo(ExtraInfo::Var(Bytes::from_static(b"remote_addr"))),
        ),
        (
            "extra_info_req_body",
            ToGateway::ExtraInfo(ExtraInfo::ReqBody),
        ),
        (
            "extra_info_resp_body",
            ToGateway::ExtraInfo(ExtraInfo::RespBody),
        ),
        (
            "response_reply",
            ToGateway::HttpResponseReply(HttpResponseReply {
                id: 7,
                status: u16::MAX,
                headers: entries(&[(b"x-new", Some(b"1"))]),
                body: Bytes::from_static(b"\x00\x01\xff binary"),
            }),
        ),
        (
            "response_reply_keep",
            ToGateway::HttpResponseReply(HttpResponseReply {
                id: 8,
                ..Default::default()
            }),
        ),
    ]
}

/// A `Stop` whose `headers` and `body` vectors are present but empty: decodes like
/// `request_reply_stop_empty`, bytes differ from what an omitting encoder writes.
fn stop_with_present_empty_vectors() -> Frame {
    let mut fbb = FlatBufferBuilder::new();
    let headers = fbb.create_vector::<flatbuffers::ForwardsUOffset<wire::TextEntry>>(&[]);
    let body = fbb.create_vector::<u8>(&[]);
    let stop = wire::httpreq_call::Stop::create(
        &mut fbb,
        &wire::httpreq_call::StopArgs {
            status: 0,
            headers: Some(headers),
            body: Some(body),
        },
    );
    let root = wire::httpreq_call::Resp::create(
        &mut fbb,
        &wire::httpreq_call::RespArgs {
            id: 2,
            action_type: wire::httpreq_call::Action::Stop,
            action: Some(stop.as_union_value()),
        },
    );
    fbb.finish_minimal(root);
    Frame {
        ty: MessageType::HttpReqCall,
        payload: fbb.finished_data().to_vec().into(),
    }
}

/// The byte the largest answer is made of.
const FILL: u8 = b'a';

fn answer(len: usize) -> ToRunner {
    ToRunner::ExtraInfoAnswer(Some(Bytes::from(vec![FILL; len])))
}

/// The longest extra-info answer whose frame payload is at most `MAX_PAYLOAD`: the payload's
/// length grows with the result's, in steps set by alignment and padding, so a binary search over
/// the result's length finds the last one that fits.
fn largest_answer() -> (usize, ToRunner) {
    let fits = |len: usize| answer(len).encode().payload.len() <= MAX_PAYLOAD;
    let (mut lo, mut hi) = (0, MAX_PAYLOAD); // fits(lo), !fits(hi)
    assert!(fits(lo) && !fits(hi));
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo, answer(lo))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    // GzEncoder writes mtime 0 and no file name: the output depends on the input only.
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    std::fs::create_dir_all(&dir).expect("vectors dir");
    let mut manifest = Vec::new();
    let mut write = |name: &str, direction: &str, frame: Frame, message: Value, exact: bool| {
        let ty = frame.ty as u8;
        let bytes = frame_bytes(frame);
        let (file, contents) = if bytes.len() > 1 << 20 {
            (format!("{name}.bin.gz"), gzip(&bytes))
        } else {
            (format!("{name}.bin"), bytes)
        };
        std::fs::write(dir.join(&file), contents).expect("write vector");
        manifest.push(json!({
            "name": name,
            "file": file,
            "direction": direction,
            "type": ty,
            "exact_bytes": exact,
            "message": message,
        }));
    };
    for (name, msg) in to_runner() {
        let value = serde_json::to_value(&msg).expect("json");
        write(name, "to_runner", msg.encode(), value, true);
    }
    for (name, msg) in to_gateway() {
        let value = serde_json::to_value(&msg).expect("json");
        write(name, "to_gateway", msg.encode(), value, true);
    }
    let same_as_empty_stop = ToGateway::HttpRequestReply(HttpRequestReply {
        id: 2,
        action: Some(Action::Stop(Stop::default())),
    });
    write(
        "request_reply_stop_present_empty_vectors",
        "to_gateway",
        stop_with_present_empty_vectors(),
        serde_json::to_value(&same_as_empty_stop).expect("json"),
        false,
    );
    let (result_len, largest) = largest_answer();
    let value = serde_json::to_value(&largest).expect("json");
    let largest = largest.encode();
    let payload_len = largest.payload.len();
    write(
        "extra_info_answer_largest_frame",
        "to_runner",
        largest,
        value,
        true,
    );
    let about = format!(
        "Golden vectors of the A6 runner protocol (APISIX ext-plugin 0.6.1). Each file is a whole frame: type byte, 24-bit big-endian payload length, payload; a file named *.bin.gz holds the frame gzip-compressed. `message` is the decoded content, externally tagged by kind; byte strings are JSON strings, or {{\"hex\": \"...\"}} when not UTF-8, or {{\"hex\": \"61\", \"repeat\": n}} (the hex bytes repeated n times) for a run of at least {threshold} copies of one byte; `null` is an absent value. `exact_bytes`: an encoder that omits empty vectors and default scalars writes exactly these bytes; otherwise compare decoded content. `extra_info_answer_largest_frame` is the largest frame the protocol carries: an ExtraInfo answer whose result of {result_len} bytes makes a payload of {payload_len} bytes, the largest FlatBuffers-aligned payload within MAX_PAYLOAD = {MAX_PAYLOAD} (one more result byte does not fit). Written by `cargo run -p runner-protocol --example write_vectors`.",
        threshold = runner_protocol::byte_text::RUN_THRESHOLD,
    );
    let doc = json!({
        "about": about,
        "vectors": manifest,
    });
    let text = serde_json::to_string_pretty(&doc).expect("json") + "\n";
    std::fs::write(dir.join("manifest.json"), text).expect("write manifest");
}
