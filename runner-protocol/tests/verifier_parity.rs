//! The decoder's own checked reader accepts a payload exactly when flatbuffers' verifier (default
//! options) accepts it as the message's root table: checked on the golden vectors and on many
//! mutations of them (bytes changed, truncated, extended) and on random bytes.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use runner_protocol::generated::a6::a6 as wire;
use runner_protocol::*;
use tokio_util::codec::Decoder;

/// (direction is to_runner, frame) of every small golden vector.
fn seeds() -> Vec<(bool, Frame)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    doc["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .filter(|v| !v["file"].as_str().expect("file").ends_with(".gz"))
        .map(|v| {
            let raw = std::fs::read(dir.join(v["file"].as_str().expect("file"))).expect("file");
            let frame = FrameCodec::default()
                .decode(&mut BytesMut::from(&raw[..]))
                .expect("frame")
                .expect("whole");
            (v["direction"] == "to_runner", frame)
        })
        .collect()
}

/// Whether flatbuffers' verifier accepts `payload` as the root of a `ty` message.
fn verifier_accepts(to_runner: bool, ty: MessageType, payload: &[u8]) -> Option<bool> {
    use flatbuffers::root;
    use MessageType as T;
    Some(match (to_runner, ty) {
        (true, T::PrepareConf) => root::<wire::prepare_conf::Req>(payload).is_ok(),
        (true, T::HttpReqCall) => root::<wire::httpreq_call::Req>(payload).is_ok(),
        (true, T::ExtraInfo) => root::<wire::extra_info::Resp>(payload).is_ok(),
        (true, T::HttpRespCall) => root::<wire::httpresp_call::Req>(payload).is_ok(),
        (true, T::Error) => return None,
        (false, T::Error) => root::<wire::err::Resp>(payload).is_ok(),
        (false, T::PrepareConf) => root::<wire::prepare_conf::Resp>(payload).is_ok(),
        (false, T::HttpReqCall) => root::<wire::httpreq_call::Resp>(payload).is_ok(),
        (false, T::ExtraInfo) => root::<wire::extra_info::Req>(payload).is_ok(),
        (false, T::HttpRespCall) => root::<wire::httpresp_call::Resp>(payload).is_ok(),
    })
}

/// Whether the decoder refused `payload` as malformed (`Invalid`), or `None` when its verdict
/// was about something else (a wrong direction).
fn decoder_accepts(to_runner: bool, ty: MessageType, payload: Bytes) -> Option<bool> {
    let frame = Frame { ty, payload };
    let verdict = if to_runner {
        ToRunner::decode(&frame).map(drop)
    } else {
        ToGateway::decode(&frame).map(drop)
    };
    match verdict {
        Ok(()) | Err(DecodeError::UnknownValue { .. }) => Some(true),
        Err(DecodeError::Invalid { .. }) => Some(false),
        Err(DecodeError::UnexpectedType(_)) => None,
    }
}

fn check(to_runner: bool, ty: MessageType, payload: &[u8]) -> Result<(), TestCaseError> {
    let want = verifier_accepts(to_runner, ty, payload);
    let got = decoder_accepts(to_runner, ty, Bytes::copy_from_slice(payload));
    prop_assert_eq!(
        got,
        want,
        "to_runner {} {:?} payload {:02x?}",
        to_runner,
        ty,
        payload
    );
    Ok(())
}

#[test]
fn golden_vectors_agree() {
    for (to_runner, frame) in seeds() {
        check(to_runner, frame.ty, &frame.payload).expect("agree");
        assert_eq!(
            decoder_accepts(to_runner, frame.ty, frame.payload),
            Some(true)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn mutated_vectors_agree(
        seed in any::<prop::sample::Index>(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..5),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        extra in vec(any::<u8>(), 0..8),
    ) {
        let seeds = seeds();
        let (to_runner, frame) = &seeds[seed.index(seeds.len())];
        let mut payload = frame.payload.to_vec();
        if !payload.is_empty() {
            for (at, byte) in &flips {
                let i = at.index(payload.len());
                payload[i] = *byte;
            }
        }
        if truncate {
            payload.truncate(cut.index(payload.len() + 1));
        }
        payload.extend_from_slice(&extra);
        check(*to_runner, frame.ty, &payload)?;
    }

    #[test]
    fn small_offsets_agree(
        seed in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        delta in -12i32..12,
    ) {
        // Nudging one aligned little-endian word moves an offset or length slightly, which is
        // where alignment and bounds checks differ from plain garbage.
        let seeds = seeds();
        let (to_runner, frame) = &seeds[seed.index(seeds.len())];
        let mut payload = frame.payload.to_vec();
        if payload.len() >= 4 {
            let i = at.index(payload.len() / 4) * 4;
            let word = u32::from_le_bytes(payload[i..i + 4].try_into().expect("4 bytes"));
            payload[i..i + 4].copy_from_slice(&word.wrapping_add_signed(delta).to_le_bytes());
        }
        check(*to_runner, frame.ty, &payload)?;
    }

    #[test]
    fn random_bytes_agree(
        to_runner in any::<bool>(),
        ty in 0u8..5,
        payload in vec(any::<u8>(), 0..96),
    ) {
        let ty = MessageType::try_from(ty).expect("0-4");
        check(to_runner, ty, &payload)?;
    }
}
