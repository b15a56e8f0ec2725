//! The golden vectors: every frame in `vectors/` decodes to its manifest entry, and, where the
//! manifest says so, encoding the entry gives the same bytes.

use std::path::Path;

use bytes::BytesMut;
use runner_protocol::*;
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

fn manifest() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    let doc: Value = serde_json::from_str(&text).expect("manifest is JSON");
    doc["vectors"].as_array().expect("vectors").clone()
}

fn read_frame(file: &str) -> (Frame, Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vectors")
        .join(file);
    let raw = std::fs::read(&path).expect("vector file");
    let mut buf = BytesMut::from(&raw[..]);
    let frame = FrameCodec::default()
        .decode(&mut buf)
        .expect("valid frame")
        .expect("complete frame");
    assert!(buf.is_empty(), "{file}: trailing bytes");
    (frame, raw)
}

fn encoded(frame: Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    FrameCodec::default()
        .encode(frame, &mut out)
        .expect("encodes");
    out.to_vec()
}

#[test]
fn every_vector_matches_its_manifest_entry() {
    let vectors = manifest();
    assert!(vectors.len() >= 25, "vectors missing: {}", vectors.len());
    for v in &vectors {
        let name = v["name"].as_str().expect("name");
        let (frame, raw) = read_frame(v["file"].as_str().expect("file"));
        assert_eq!(
            u64::from(frame.ty as u8),
            v["type"].as_u64().expect("type"),
            "{name}"
        );
        let exact = v["exact_bytes"].as_bool().expect("exact_bytes");
        match v["direction"].as_str().expect("direction") {
            "to_runner" => {
                let want: ToRunner = serde_json::from_value(v["message"].clone()).expect("message");
                assert_eq!(ToRunner::decode(&frame).expect("decodes"), want, "{name}");
                if exact {
                    assert_eq!(encoded(want.encode()), raw, "{name}: bytes differ");
                }
            }
            "to_gateway" => {
                let want: ToGateway =
                    serde_json::from_value(v["message"].clone()).expect("message");
                assert_eq!(ToGateway::decode(&frame).expect("decodes"), want, "{name}");
                if exact {
                    assert_eq!(encoded(want.encode()), raw, "{name}: bytes differ");
                }
            }
            other => panic!("{name}: unknown direction {other}"),
        }
    }
}

#[test]
fn vectors_cover_every_message_kind() {
    let kinds: std::collections::BTreeSet<String> = manifest()
        .iter()
        .map(|v| {
            let message = v["message"].as_object().expect("tagged message");
            let (kind, body) = message.iter().next().expect("one tag");
            match kind.as_str() {
                "HttpRequestReply" => match &body["action"] {
                    Value::Null => "HttpRequestReply/none".to_owned(),
                    a => format!(
                        "HttpRequestReply/{}",
                        a.as_object().and_then(|o| o.keys().next()).expect("action")
                    ),
                },
                "ExtraInfo" => format!(
                    "ExtraInfo/{}",
                    body.as_str().map_or_else(
                        || body
                            .as_object()
                            .and_then(|o| o.keys().next())
                            .cloned()
                            .unwrap_or_default(),
                        str::to_owned
                    )
                ),
                "Error" => format!("Error/{}", body.as_str().expect("code")),
                k => k.to_owned(),
            }
        })
        .collect();
    for want in [
        "PrepareConf",
        "HttpRequest",
        "ExtraInfoAnswer",
        "HttpResponse",
        "ConfToken",
        "HttpRequestReply/none",
        "HttpRequestReply/Stop",
        "HttpRequestReply/Rewrite",
        "ExtraInfo/Var",
        "ExtraInfo/ReqBody",
        "ExtraInfo/RespBody",
        "HttpResponseReply",
        "Error/BadRequest",
        "Error/ServiceUnavailable",
        "Error/ConfTokenNotFound",
    ] {
        assert!(kinds.contains(want), "no vector for {want}: {kinds:?}");
    }
}

#[test]
fn empty_error_table_is_bad_request() {
    // Code 0 is the default, so the encoder leaves the table empty: 4 header bytes + a minimal
    // buffer. Runners must read it as BAD_REQUEST.
    let (frame, _) = read_frame("error_bad_request.bin");
    assert_eq!(frame.ty, MessageType::Error);
    assert!(
        frame.payload.len() <= 12,
        "empty table expected, got {} bytes",
        frame.payload.len()
    );
}
