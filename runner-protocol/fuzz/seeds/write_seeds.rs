//! Writes one framed, valid message of every kind (both directions) into the directory given as
//! the first argument, as seeds for the `decode` target: `cargo run --bin write_seeds -- corpus/decode`.

use bytes::{Bytes, BytesMut};
use runner_protocol::*;
use tokio_util::codec::Encoder;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: write_seeds <dir>");
    std::fs::create_dir_all(&dir).expect("create dir");
    let entries = vec![
        TextEntry::new("host", "example.com"),
        TextEntry {
            name: Bytes::from_static(b"x-flag"),
            value: None,
        },
        TextEntry::new("x-empty", ""),
    ];
    let to_runner = [
        ToRunner::PrepareConf(PrepareConf {
            conf: vec![TextEntry::new("say", r#"{"body":"hi"}"#)],
            key: Bytes::from_static(b"route#1#ext-plugin-pre-req#3"),
        }),
        ToRunner::HttpRequest(HttpRequest {
            id: 7,
            src_ip: Bytes::from_static(&[127, 0, 0, 1]),
            method: Method::Post,
            path: Bytes::from_static(b"/a/b\xff"),
            args: vec![TextEntry::new("q", "1"), TextEntry { name: Bytes::from_static(b"f"), value: None }],
            headers: entries.clone(),
            conf_token: 3,
        }),
        ToRunner::ExtraInfoAnswer(Some(Bytes::from_static(b"value"))),
        ToRunner::ExtraInfoAnswer(None),
        ToRunner::HttpResponse(HttpResponse {
            id: 9,
            status: 502,
            headers: entries.clone(),
            conf_token: 3,
        }),
    ];
    let to_gateway = [
        ToGateway::Error(ErrorCode::ConfTokenNotFound),
        ToGateway::ConfToken(42),
        ToGateway::HttpRequestReply(HttpRequestReply { id: 7, action: None }),
        ToGateway::HttpRequestReply(HttpRequestReply {
            id: 7,
            action: Some(Action::Stop(Stop {
                status: 403,
                headers: entries.clone(),
                body: Bytes::from_static(b"no"),
            })),
        }),
        ToGateway::HttpRequestReply(HttpRequestReply {
            id: 7,
            action: Some(Action::Rewrite(Rewrite {
                path: Some(Bytes::from_static(b"/new")),
                headers: entries.clone(),
                args: vec![TextEntry::new("q", "2")],
                resp_headers: vec![TextEntry::new("x-by", "runner")],
                body: Bytes::from_static(b"body"),
            })),
        }),
        ToGateway::ExtraInfo(ExtraInfo::Var(Bytes::from_static(b"remote_addr"))),
        ToGateway::ExtraInfo(ExtraInfo::ReqBody),
        ToGateway::ExtraInfo(ExtraInfo::RespBody),
        ToGateway::HttpResponseReply(HttpResponseReply {
            id: 9,
            status: 200,
            headers: entries,
            body: Bytes::from_static(b"changed"),
        }),
    ];
    let frames: Vec<Frame> = to_runner
        .iter()
        .map(ToRunner::encode)
        .chain(to_gateway.iter().map(ToGateway::encode))
        .collect();
    let mut codec = FrameCodec::default();
    let mut all = BytesMut::new();
    for (i, frame) in frames.iter().enumerate() {
        let mut one = BytesMut::new();
        codec.encode(frame.clone(), &mut one).expect("fits");
        all.extend_from_slice(&one);
        std::fs::write(format!("{dir}/seed-{i:02}"), &one).expect("write");
    }
    // Several frames back to back, as one read off a socket.
    std::fs::write(format!("{dir}/seed-stream"), &all).expect("write");
    println!("{} seeds in {dir}", frames.len() + 1);
}
