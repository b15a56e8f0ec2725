//! The golden vectors: every frame in `vectors/` decodes to its manifest entry, and, where the
//! manifest says so, encoding the entry gives the same bytes. A file named `*.gz` holds its frame
//! gzip-compressed (the 16 MiB frame at the size limit).

use std::io::Read;
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
    let mut raw = std::fs::read(&path).expect("vector file");
    if file.ends_with(".gz") {
        let mut frame = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut frame)
            .expect("gzip");
        raw = frame;
    }
    let mut buf = BytesMut::from(&raw[..]);
    let frame = FrameCodec::default()
        .decode(&mut buf)
        .expect("valid frame")
        .expect("complete frame");
    assert!(buf.is_empty(), "{file}: trailing bytes");
    (frame, raw)
}

/// Fails with a short message: the largest vector's `Debug` would be 16 MiB long. Messages are
/// shown as JSON, where a run of one byte is a few characters.
fn assert_same<T: PartialEq + serde::Serialize>(got: &T, want: &T, what: &str) {
    fn clip(text: String) -> String {
        match text.char_indices().nth(4096) {
            Some((at, _)) => format!("{}... ({} bytes in all)", &text[..at], text.len()),
            None => text,
        }
    }
    let json = |v: &T| clip(serde_json::to_string(v).unwrap_or_else(|e| e.to_string()));
    assert!(
        got == want,
        "{what}\n got: {}\nwant: {}",
        json(got),
        json(want)
    );
}

fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: bytes differ: lengths {} and {}, first difference at {:?}",
        got.len(),
        want.len(),
        got.iter().zip(want).position(|(a, b)| a != b)
    );
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
    assert!(vectors.len() >= 26, "vectors missing: {}", vectors.len());
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
                let got = ToRunner::decode(&frame).expect("decodes");
                assert_same(&got, &want, name);
                if exact {
                    assert_same_bytes(&encoded(want.encode()), &raw, name);
                }
            }
            "to_gateway" => {
                let want: ToGateway =
                    serde_json::from_value(v["message"].clone()).expect("message");
                let got = ToGateway::decode(&frame).expect("decodes");
                assert_same(&got, &want, name);
                if exact {
                    assert_same_bytes(&encoded(want.encode()), &raw, name);
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

#[test]
fn every_vector_file_is_listed() {
    let listed: std::collections::BTreeSet<String> = manifest()
        .iter()
        .map(|v| v["file"].as_str().expect("file").to_owned())
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    for entry in std::fs::read_dir(dir).expect("vectors dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("UTF-8");
        if name.ends_with(".bin") || name.ends_with(".bin.gz") {
            assert!(listed.contains(&name), "{name} is not in the manifest");
        }
    }
}

#[test]
fn the_largest_frame_is_at_the_size_limit() {
    let v = manifest()
        .into_iter()
        .find(|v| v["name"] == "extra_info_answer_largest_frame")
        .expect("vector at the size limit");
    let file = v["file"].as_str().expect("file");
    assert!(
        file.ends_with(".bin.gz"),
        "{file}: 16 MiB belongs compressed"
    );
    let (frame, raw) = read_frame(file);
    let len = frame.payload.len();
    assert!(
        len <= MAX_PAYLOAD && len > MAX_PAYLOAD - 8,
        "payload of {len} bytes"
    );
    assert_eq!(raw.len(), 4 + len);
    let ToRunner::ExtraInfoAnswer(Some(result)) = ToRunner::decode(&frame).expect("decodes") else {
        panic!("not an extra-info answer with a result");
    };
    // One more byte of result does not fit in a frame: the codec refuses it whole.
    let mut longer = result.to_vec();
    longer.push(b'a');
    let too_large = ToRunner::ExtraInfoAnswer(Some(longer.into())).encode();
    assert!(too_large.payload.len() > MAX_PAYLOAD);
    let mut out = BytesMut::new();
    assert!(matches!(
        FrameCodec::default().encode(too_large, &mut out),
        Err(FrameError::TooLarge {
            max: MAX_PAYLOAD,
            ..
        })
    ));
    assert!(out.is_empty(), "nothing half-written");
}
