//! Every message survives encode → frame → decode unchanged, and no byte string decodes into a
//! panic.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use runner_protocol::*;

fn bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn entry() -> impl Strategy<Value = TextEntry> {
    (bytes(), option::of(bytes())).prop_map(|(name, value)| TextEntry { name, value })
}

fn entries() -> impl Strategy<Value = Vec<TextEntry>> {
    vec(entry(), 0..6)
}

fn method() -> impl Strategy<Value = Method> {
    (0u8..15).prop_map(|v| Method::from_wire(v).expect("0-14 are methods"))
}

fn to_runner() -> impl Strategy<Value = ToRunner> {
    prop_oneof![
        (entries(), bytes())
            .prop_map(|(conf, key)| ToRunner::PrepareConf(PrepareConf { conf, key })),
        (
            any::<u32>(),
            prop_oneof![vec(any::<u8>(), 4), vec(any::<u8>(), 16)].prop_map(Bytes::from),
            method(),
            bytes(),
            entries(),
            entries(),
            any::<u32>()
        )
            .prop_map(|(id, src_ip, method, path, args, headers, conf_token)| {
                ToRunner::HttpRequest(HttpRequest {
                    id,
                    src_ip,
                    method,
                    path,
                    args,
                    headers,
                    conf_token,
                })
            }),
        option::of(bytes()).prop_map(ToRunner::ExtraInfoAnswer),
        (any::<u32>(), any::<u16>(), entries(), any::<u32>()).prop_map(
            |(id, status, headers, conf_token)| {
                ToRunner::HttpResponse(HttpResponse {
                    id,
                    status,
                    headers,
                    conf_token,
                })
            }
        ),
    ]
}

fn action() -> impl Strategy<Value = Option<Action>> {
    prop_oneof![
        Just(None),
        (any::<u16>(), entries(), bytes()).prop_map(|(status, headers, body)| Some(Action::Stop(
            Stop {
                status,
                headers,
                body
            }
        ))),
        (
            option::of(bytes()),
            entries(),
            entries(),
            entries(),
            bytes()
        )
            .prop_map(|(path, headers, args, resp_headers, body)| {
                Some(Action::Rewrite(Rewrite {
                    path,
                    headers,
                    args,
                    resp_headers,
                    body,
                }))
            }),
    ]
}

fn to_gateway() -> impl Strategy<Value = ToGateway> {
    prop_oneof![
        prop_oneof![
            Just(ErrorCode::BadRequest),
            Just(ErrorCode::ServiceUnavailable),
            Just(ErrorCode::ConfTokenNotFound)
        ]
        .prop_map(ToGateway::Error),
        any::<u32>().prop_map(ToGateway::ConfToken),
        (any::<u32>(), action())
            .prop_map(|(id, action)| ToGateway::HttpRequestReply(HttpRequestReply { id, action })),
        prop_oneof![
            bytes().prop_map(ExtraInfo::Var),
            Just(ExtraInfo::ReqBody),
            Just(ExtraInfo::RespBody)
        ]
        .prop_map(ToGateway::ExtraInfo),
        (any::<u32>(), any::<u16>(), entries(), bytes()).prop_map(|(id, status, headers, body)| {
            ToGateway::HttpResponseReply(HttpResponseReply {
                id,
                status,
                headers,
                body,
            })
        }),
    ]
}

proptest! {
    #[test]
    fn to_runner_round_trips(msg in to_runner()) {
        let frame = msg.encode();
        prop_assert_eq!(ToRunner::decode(&frame).expect("decodes"), msg);
    }

    /// A reused encoder writes the same bytes as a fresh frame through the codec, message after
    /// message.
    #[test]
    fn a_reused_encoder_writes_what_the_codec_writes(msgs in vec(to_runner(), 1..6)) {
        use tokio_util::codec::Encoder;
        let (mut encoder, mut codec) = (ToRunnerEncoder::default(), FrameCodec::default());
        for msg in &msgs {
            let (mut reused, mut fresh) = (bytes::BytesMut::new(), bytes::BytesMut::new());
            encoder.encode(msg, &codec, &mut reused).expect("fits");
            codec.encode(msg.encode(), &mut fresh).expect("fits");
            prop_assert_eq!(&reused[..], &fresh[..]);
        }
        encoder.trim(0);
    }

    #[test]
    fn to_gateway_round_trips(msg in to_gateway()) {
        let frame = msg.encode();
        prop_assert_eq!(ToGateway::decode(&frame).expect("decodes"), msg);
    }

    #[test]
    fn garbage_never_panics(ty in 0u8..5, payload in vec(any::<u8>(), 0..128)) {
        let frame = Frame { ty: MessageType::try_from(ty).expect("0-4"), payload: payload.into() };
        let _ = ToRunner::decode(&frame);
        let _ = ToGateway::decode(&frame);
    }
}

#[test]
fn wrong_direction_is_an_error() {
    let err = ToGateway::Error(ErrorCode::ConfTokenNotFound).encode();
    assert!(matches!(
        ToRunner::decode(&err),
        Err(DecodeError::UnexpectedType(MessageType::Error))
    ));
}

#[test]
fn empty_table_decodes_to_defaults() {
    // The Python runner answers failures with the request's type and an empty table.
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let start = fbb.start_table();
    let root = fbb.end_table(start);
    fbb.finish_minimal(root);
    let frame = Frame {
        ty: MessageType::HttpReqCall,
        payload: fbb.finished_data().to_vec().into(),
    };
    assert_eq!(
        ToGateway::decode(&frame).expect("decodes"),
        ToGateway::HttpRequestReply(HttpRequestReply {
            id: 0,
            action: None
        })
    );
    let frame = Frame {
        ty: MessageType::Error,
        payload: frame.payload,
    };
    assert_eq!(
        ToGateway::decode(&frame).expect("decodes"),
        ToGateway::Error(ErrorCode::BadRequest)
    );
}
