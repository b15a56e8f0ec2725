//! Decode + re-encode of the messages on the hot path: a typical request call (20 headers,
//! 5 args) and a rewrite action. Goal: ≤ 2 µs each.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use runner_protocol::*;
use tokio_util::codec::Encoder;

fn request_call() -> ToRunner {
    let headers = (0..20)
        .map(|i| {
            TextEntry::new(
                format!("x-header-{i}"),
                format!("value number {i} of the request"),
            )
        })
        .collect();
    let args = (0..5)
        .map(|i| TextEntry::new(format!("arg{i}"), format!("{i}")))
        .collect();
    ToRunner::HttpRequest(HttpRequest {
        id: 12345,
        src_ip: Bytes::from_static(&[10, 1, 2, 3]),
        method: Method::Post,
        path: Bytes::from_static(b"/api/v1/orders/42/items"),
        args,
        headers,
        conf_token: 7,
    })
}

fn rewrite_reply() -> ToGateway {
    ToGateway::HttpRequestReply(HttpRequestReply {
        id: 12345,
        action: Some(Action::Rewrite(Rewrite {
            path: Some(Bytes::from_static(b"/internal/orders/42")),
            headers: vec![
                TextEntry::new("x-user", "jack"),
                TextEntry {
                    name: Bytes::from_static(b"authorization"),
                    value: None,
                },
            ],
            args: vec![TextEntry::new("v", "2")],
            resp_headers: vec![TextEntry::new("x-served-by", "go-runner")],
            body: Bytes::new(),
        })),
    })
}

fn codec(c: &mut Criterion) {
    let req = request_call().encode();
    c.bench_function("request_call_decode_encode", |b| {
        b.iter(|| {
            let msg = ToRunner::decode(black_box(&req)).expect("decodes");
            black_box(msg.encode())
        })
    });
    let call = request_call();
    // A call sent as before (a fresh builder per message) and as a connection sends it now.
    let (mut encoder, mut framing) = (ToRunnerEncoder::default(), FrameCodec::default());
    let mut out = bytes::BytesMut::new();
    c.bench_function("request_call_encode_fresh", |b| {
        b.iter(|| {
            out.clear();
            framing
                .encode(black_box(&call).encode(), &mut out)
                .expect("fits");
            black_box(out.len())
        })
    });
    c.bench_function("request_call_encode_reused", |b| {
        b.iter(|| {
            out.clear();
            encoder
                .encode(black_box(&call), &framing, &mut out)
                .expect("fits");
            black_box(out.len())
        })
    });
    let rewrite = rewrite_reply().encode();
    c.bench_function("rewrite_decode_encode", |b| {
        b.iter(|| {
            let msg = ToGateway::decode(black_box(&rewrite)).expect("decodes");
            black_box(msg.encode())
        })
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
