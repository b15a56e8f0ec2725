//! Frames: one type byte, a 24-bit big-endian payload length, then the payload (one finished
//! FlatBuffers buffer). The length limit is enforced when reading and when writing, partial
//! frames wait for more bytes, and a frame is encoded into one contiguous buffer so it goes out in
//! a single write (some runners read header and payload with one `recv` each).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The largest payload a 24-bit length can describe (16 MiB - 1).
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

/// The most the decoder reserves ahead of bytes that have not arrived.
const RESERVE_STEP: usize = 64 * 1024;

/// Message types (the first byte of a frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// `A6.Err.Resp` (runner to gateway only).
    Error = 0,
    /// `A6.PrepareConf.Req` / `Resp`.
    PrepareConf = 1,
    /// `A6.HTTPReqCall.Req` / `Resp`.
    HttpReqCall = 2,
    /// `A6.ExtraInfo.Req` (runner asks) / `Resp` (gateway answers).
    ExtraInfo = 3,
    /// `A6.HTTPRespCall.Req` / `Resp`.
    HttpRespCall = 4,
}

impl TryFrom<u8> for MessageType {
    type Error = FrameError;

    fn try_from(b: u8) -> Result<Self, FrameError> {
        Ok(match b {
            0 => MessageType::Error,
            1 => MessageType::PrepareConf,
            2 => MessageType::HttpReqCall,
            3 => MessageType::ExtraInfo,
            4 => MessageType::HttpRespCall,
            other => return Err(FrameError::UnknownType(other)),
        })
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload holds.
    pub ty: MessageType,
    /// One FlatBuffers buffer.
    pub payload: Bytes,
}

/// Why a frame could not be read or written. Any of these poisons the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The type byte is not 0-4.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// The payload is longer than this codec accepts.
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared or actual payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The frame codec. `max_payload` (at most [`MAX_PAYLOAD`]) bounds both directions.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_payload: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self {
            max_payload: MAX_PAYLOAD,
        }
    }
}

impl FrameCodec {
    /// A codec refusing payloads longer than `max_payload` (capped at [`MAX_PAYLOAD`]).
    pub fn with_max_payload(max_payload: usize) -> Self {
        Self {
            max_payload: max_payload.min(MAX_PAYLOAD),
        }
    }
}

impl FrameCodec {
    /// Appends the frame of `payload` to `dst` (unchanged on error).
    pub(crate) fn put_frame(
        &self,
        ty: MessageType,
        payload: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), FrameError> {
        let len = payload.len();
        if len > self.max_payload {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_payload,
            });
        }
        dst.reserve(4 + len);
        dst.put_u8(ty as u8);
        // The length fits in 24 bits: checked against max_payload <= MAX_PAYLOAD above.
        dst.put_uint(len as u64, 3);
        dst.put_slice(payload);
        Ok(())
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let ty = MessageType::try_from(src[0])?;
        let len = usize::from(src[1]) << 16 | usize::from(src[2]) << 8 | usize::from(src[3]);
        if len > self.max_payload {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_payload,
            });
        }
        if src.len() < 4 + len {
            // Grow toward the frame a bounded step at a time: a 4-byte header alone must not
            // make a connection hold 16 MiB.
            src.reserve((4 + len - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        src.advance(4);
        let payload = src.split_to(len).freeze();
        Ok(Some(Frame { ty, payload }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.put_frame(frame.ty, &frame.payload, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(ty: MessageType, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        FrameCodec::default()
            .encode(
                Frame {
                    ty,
                    payload: Bytes::copy_from_slice(payload),
                },
                &mut out,
            )
            .expect("encodes");
        out
    }

    #[test]
    fn header_layout() {
        let out = encoded(MessageType::HttpReqCall, &[7; 0x01_02_03]);
        assert_eq!(&out[..4], &[2, 0x01, 0x02, 0x03]);
        assert_eq!(out.len(), 4 + 0x01_02_03);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let whole = encoded(MessageType::PrepareConf, b"abcdef");
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            assert!(
                codec.decode(&mut buf).expect("no error").is_none(),
                "byte {i}"
            );
            buf.put_u8(*b);
        }
        let frame = codec.decode(&mut buf).expect("ok").expect("complete");
        assert_eq!(frame.ty, MessageType::PrepareConf);
        assert_eq!(&frame.payload[..], b"abcdef");
        assert!(buf.is_empty());
    }

    #[test]
    fn two_frames_in_one_read() {
        let mut buf = encoded(MessageType::ExtraInfo, b"one");
        buf.extend_from_slice(&encoded(MessageType::Error, b""));
        let mut codec = FrameCodec::default();
        let a = codec.decode(&mut buf).expect("ok").expect("first");
        let b = codec.decode(&mut buf).expect("ok").expect("second");
        assert_eq!(
            (a.ty, &a.payload[..]),
            (MessageType::ExtraInfo, &b"one"[..])
        );
        assert_eq!((b.ty, b.payload.len()), (MessageType::Error, 0));
        assert!(codec.decode(&mut buf).expect("ok").is_none());
    }

    #[test]
    fn a_large_declared_length_reserves_a_bounded_step() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[2u8, 0xFF, 0xFF, 0xFF][..]);
        assert!(codec.decode(&mut buf).expect("valid header").is_none());
        assert!(
            buf.capacity() <= 4 + RESERVE_STEP,
            "reserved {}",
            buf.capacity()
        );
    }

    #[test]
    fn one_byte_over_a_configured_limit_is_refused_from_the_header() {
        let max = 64 * 1024;
        let mut codec = FrameCodec::with_max_payload(max);
        // At the limit, the header alone waits for the payload.
        let mut buf = BytesMut::with_capacity(4);
        buf.put_slice(&[3, 0x01, 0x00, 0x00]);
        assert!(codec.decode(&mut buf).expect("fits").is_none());
        // One byte over: refused from the header, before any payload arrives or is reserved for.
        let mut buf = BytesMut::with_capacity(4);
        buf.put_slice(&[3, 0x01, 0x00, 0x01]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { len, max: m }) if len == max + 1 && m == max
        ));
        assert_eq!(
            buf.capacity(),
            4,
            "nothing reserved for the refused payload"
        );
        assert_eq!(buf.len(), 4, "header left in place");
        // Refused too when the whole oversized frame is already buffered.
        let mut buf = BytesMut::from(&[3, 0x01, 0x00, 0x01][..]);
        buf.put_bytes(0, max + 1);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_protocol_limit_is_the_largest_24_bit_length() {
        // The default codec accepts any length a header can declare: 0xFF_FFFF waits for more.
        let mut buf = BytesMut::from(&[3u8, 0xFF, 0xFF, 0xFF][..]);
        assert!(FrameCodec::default()
            .decode(&mut buf)
            .expect("at the limit")
            .is_none());
        // A codec cannot be configured past it.
        let mut codec = FrameCodec::with_max_payload(usize::MAX);
        let over = Frame {
            ty: MessageType::ExtraInfo,
            payload: Bytes::from(vec![0; MAX_PAYLOAD + 1]),
        };
        let mut out = BytesMut::new();
        assert!(matches!(
            codec.encode(over, &mut out),
            Err(FrameError::TooLarge {
                max: MAX_PAYLOAD,
                ..
            })
        ));
    }

    #[test]
    fn limits_and_garbage() {
        let mut codec = FrameCodec::with_max_payload(8);
        let mut buf = BytesMut::from(&[2u8, 0, 0, 9][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { len: 9, max: 8 })
        ));
        let mut buf = BytesMut::from(&[9u8, 0, 0, 1, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::UnknownType(9))
        ));
        let mut out = BytesMut::new();
        let big = Frame {
            ty: MessageType::HttpReqCall,
            payload: Bytes::from(vec![0; 9]),
        };
        assert!(matches!(
            codec.encode(big, &mut out),
            Err(FrameError::TooLarge { len: 9, max: 8 })
        ));
        assert!(out.is_empty(), "nothing half-written");
        let at_edge = Frame {
            ty: MessageType::HttpReqCall,
            payload: Bytes::from(vec![1; 8]),
        };
        codec.encode(at_edge, &mut out).expect("8 bytes fit");
        assert_eq!(
            codec.decode(&mut out).expect("ok").map(|f| f.payload.len()),
            Some(8)
        );
    }
}
