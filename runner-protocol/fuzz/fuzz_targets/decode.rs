//! Any bytes from a socket: the frame codec (default limit and a 64-byte limit) reads frames until
//! it wants more bytes or fails, and every frame is decoded as both directions' message. Nothing may
//! panic or hang, and every message that decodes must survive encode → frame codec → decode
//! unchanged. Feeding the same bytes in chunks must give the same frames as feeding them at once.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use runner_protocol::{Frame, FrameCodec, ToGateway, ToRunner};
use tokio_util::codec::{Decoder, Encoder};

/// The frames in `input`, up to the first error (`true` if there was one).
fn frames(mut codec: FrameCodec, input: &[u8]) -> (Vec<Frame>, bool) {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert!(buf.len() < before, "a frame consumed no bytes");
                out.push(frame);
            }
            Ok(None) => return (out, false),
            Err(_) => return (out, true),
        }
    }
}

/// The same, with the bytes arriving in chunks of the given sizes (cycled, 1..=16 bytes).
fn frames_chunked(mut codec: FrameCodec, input: &[u8], sizes: &[u8]) -> (Vec<Frame>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = input;
    let mut i = 0;
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => out.push(frame),
            Ok(None) if rest.is_empty() => return (out, false),
            Ok(None) => {
                let n = (usize::from(sizes[i % sizes.len()]) % 16 + 1).min(rest.len());
                i += 1;
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            Err(_) => return (out, true),
        }
    }
}

/// A frame written by the codec reads back the same.
fn codec_round_trip(frame: &Frame) {
    let mut codec = FrameCodec::default();
    let mut wire = BytesMut::new();
    codec
        .encode(frame.clone(), &mut wire)
        .expect("an encoded message fits a frame");
    let back = codec
        .decode(&mut wire)
        .expect("own frame decodes")
        .expect("own frame is complete");
    assert_eq!(&back, frame);
    assert!(wire.is_empty(), "bytes left after own frame");
}

fn messages(frame: &Frame) {
    if let Ok(m) = ToRunner::decode(frame) {
        let again = m.encode();
        assert_eq!(again.ty, frame.ty, "ToRunner type changed: {m:?}");
        codec_round_trip(&again);
        match ToRunner::decode(&again) {
            Ok(back) => assert_eq!(back, m, "ToRunner round trip"),
            Err(e) => panic!("re-encoded ToRunner {m:?} does not decode: {e}"),
        }
    }
    if let Ok(m) = ToGateway::decode(frame) {
        let again = m.encode();
        assert_eq!(again.ty, frame.ty, "ToGateway type changed: {m:?}");
        codec_round_trip(&again);
        match ToGateway::decode(&again) {
            Ok(back) => assert_eq!(back, m, "ToGateway round trip"),
            Err(e) => panic!("re-encoded ToGateway {m:?} does not decode: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (all, _) = frames(FrameCodec::default(), data);
    for frame in &all {
        messages(frame);
    }

    let (small, small_err) = frames(FrameCodec::with_max_payload(64), data);
    for frame in &small {
        assert!(frame.payload.len() <= 64, "limit ignored");
        messages(frame);
    }
    // A tighter limit reads a prefix of the same frames; it stops early only by failing.
    assert!(small.len() <= all.len());
    assert_eq!(&all[..small.len()], &small[..]);
    if small.len() < all.len() {
        assert!(small_err, "64-byte codec stopped early without an error");
    }

    // Chunked arrival (chunk sizes taken from the input itself) gives the same frames.
    if let Some((&first, _)) = data.split_first() {
        let sizes = [first, first.rotate_left(3), first.rotate_left(5)];
        let (chunked, chunked_err) = frames_chunked(FrameCodec::default(), data, &sizes);
        let (whole, whole_err) = frames(FrameCodec::default(), data);
        assert_eq!(chunked, whole, "chunked arrival changed the frames");
        assert_eq!(chunked_err, whole_err);
    }
});
