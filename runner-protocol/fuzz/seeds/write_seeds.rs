//! Writes one framed, valid message of every kind (both directions) into the directory given as
//! the first argument, as seeds for the `decode` target: `cargo run --bin write_seeds -- corpus/decode`.

use bytes::BytesMut;
use runner_protocol::*;
use tokio_util::codec::Encoder;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: write_seeds <dir>");
    std::fs::create_dir_all(&dir).expect("create dir");
    let entries = vec![
        TextEntry::new("host", "example.com"),
        TextEntry {
            name: b"x-flag".to_vec(),
            value: None,
        },
        TextEntry::new("x-empty", ""),
    ];
    let to_runner = [
        ToRunner::PrepareConf(PrepareConf {
            conf: vec![TextEntry::new("say", r#"{"body":"hi"}"#)],
            key: b"route#1#ext-plugin-pre-req#3".to_vec(),
        }),
        ToRunner::HttpRequest(HttpRequest {
            id: 7,
            src_ip: vec![127, 0, 0, 1],
            method: Method::Post,
            path: b"/a/b\xff".to_vec(),
            args: vec![TextEntry::new("q", "1"), TextEntry { name: b"f".to_vec(), value: None }],
            headers: entries.clone(),
            conf_token: 3,
        }),
        ToRunner::ExtraInfoAnswer(Some(b"value".to_vec())),
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
                body: b"no".to_vec(),
            })),
        }),
        ToGateway::HttpRequestReply(HttpRequestReply {
            id: 7,
            action: Some(Action::Rewrite(Rewrite {
                path: Some(b"/new".to_vec()),
                headers: entries.clone(),
                args: vec![TextEntry::new("q", "2")],
                resp_headers: vec![TextEntry::new("x-by", "runner")],
                body: b"body".to_vec(),
            })),
        }),
        ToGateway::ExtraInfo(ExtraInfo::Var(b"remote_addr".to_vec())),
        ToGateway::ExtraInfo(ExtraInfo::ReqBody),
        ToGateway::ExtraInfo(ExtraInfo::RespBody),
        ToGateway::HttpResponseReply(HttpResponseReply {
            id: 9,
            status: 200,
            headers: entries,
            body: b"changed".to_vec(),
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
