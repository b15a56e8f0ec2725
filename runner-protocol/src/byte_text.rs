//! Byte strings in JSON (the golden-vector manifest, logs): a JSON string when the bytes are UTF-8,
//! else `{"hex": "..."}` with lower-case hex digits.
//!
//! A long run of one repeated byte (at least [`RUN_THRESHOLD`] = 1024 bytes, every byte the same) is
//! written in a run-length form instead, `{"hex": "61", "repeat": 16777180}`: the `hex` bytes
//! repeated `repeat` times, whether the bytes are UTF-8 or not. It keeps the manifest small for the
//! vector at the frame size limit. Reading accepts any `hex` pattern (not only one byte) and any
//! count, as long as the result is at most [`MAX_PAYLOAD`] bytes: no byte string that a frame
//! carries can be longer.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::frame::MAX_PAYLOAD;

/// The shortest run of one repeated byte that is written as `{"hex": "..", "repeat": n}`.
pub const RUN_THRESHOLD: usize = 1024;

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Text {
    Utf8(String),
    // Before `Hex`: an untagged struct variant ignores unknown fields, so `Hex` would also match.
    Run { hex: String, repeat: usize },
    Hex { hex: String },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `bytes` is a long run of one byte. Comparing the bytes with themselves shifted by one is
/// a single `memcmp`, even in debug builds of the 16 MiB vector.
fn is_run(bytes: &[u8]) -> bool {
    bytes.len() >= RUN_THRESHOLD && bytes[1..] == bytes[..bytes.len() - 1]
}

fn to_text(bytes: &[u8]) -> Text {
    if is_run(bytes) {
        return Text::Run {
            hex: hex(&bytes[..1]),
            repeat: bytes.len(),
        };
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Text::Utf8(s.to_owned()),
        Err(_) => Text::Hex { hex: hex(bytes) },
    }
}

fn from_hex<E: serde::de::Error>(hex: &str) -> Result<Vec<u8>, E> {
    if hex.len() % 2 != 0 {
        return Err(E::custom("odd number of hex digits"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| E::custom(format!("invalid hex `{hex}`")))
        })
        .collect()
}

fn from_text<E: serde::de::Error>(text: Text) -> Result<Vec<u8>, E> {
    match text {
        Text::Utf8(s) => Ok(s.into_bytes()),
        Text::Hex { hex } => from_hex(&hex),
        Text::Run { hex, repeat } => {
            let pattern = from_hex::<E>(&hex)?;
            match pattern.len().checked_mul(repeat) {
                Some(len) if len <= MAX_PAYLOAD => Ok(pattern.repeat(repeat)),
                _ => Err(E::custom(format!(
                    "`{hex}` repeated {repeat} times is longer than {MAX_PAYLOAD} bytes"
                ))),
            }
        }
    }
}

/// Serializes bytes as text, hex, or a run of one repeated byte.
///
/// # Errors
/// Those of the serializer.
pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    to_text(bytes).serialize(s)
}

/// Reads bytes written by [`serialize`].
///
/// # Errors
/// Invalid hex, a run longer than [`MAX_PAYLOAD`] bytes, or those of the deserializer.
pub fn deserialize<'de, D: Deserializer<'de>, T: From<Vec<u8>>>(d: D) -> Result<T, D::Error> {
    from_text(Text::deserialize(d)?).map(T::from)
}

/// The same for optional byte strings (`null` = absent).
pub mod option {
    use super::*;

    /// Serializes optional bytes.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(
        bytes: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        bytes.as_ref().map(|b| to_text(b.as_ref())).serialize(s)
    }

    /// Reads optional bytes.
    ///
    /// # Errors
    /// Invalid hex, a run longer than [`MAX_PAYLOAD`] bytes, or those of the deserializer.
    pub fn deserialize<'de, D: Deserializer<'de>, T: From<Vec<u8>>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<Text>::deserialize(d)?
            .map(|t| from_text::<D::Error>(t).map(T::from))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrap(#[serde(with = "crate::byte_text")] Vec<u8>);

    fn json(bytes: &[u8]) -> String {
        serde_json::to_string(&Wrap(bytes.to_vec())).expect("serializes")
    }

    fn read(text: &str) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::from_str::<Wrap>(text).map(|w| w.0)
    }

    #[test]
    fn text_and_hex() {
        assert_eq!(json(b"caf\xc3\xa9"), r#""café""#);
        assert_eq!(json(b"\xff\x00"), r#"{"hex":"ff00"}"#);
        assert_eq!(read(r#"{"hex":"ff00"}"#).expect("hex"), b"\xff\x00");
        assert!(read(r#"{"hex":"f"}"#).is_err());
        assert!(read(r#"{"hex":"zz"}"#).is_err());
    }

    #[test]
    fn long_runs_of_one_byte_are_run_length_encoded() {
        let short = vec![b'a'; RUN_THRESHOLD - 1];
        assert_eq!(
            json(&short),
            format!("\"{}\"", "a".repeat(RUN_THRESHOLD - 1))
        );
        let run = vec![b'a'; RUN_THRESHOLD];
        assert_eq!(json(&run), r#"{"hex":"61","repeat":1024}"#);
        assert_eq!(read(&json(&run)).expect("run"), run);
        let binary = vec![0xff; 5000];
        assert_eq!(json(&binary), r#"{"hex":"ff","repeat":5000}"#);
        assert_eq!(read(&json(&binary)).expect("run"), binary);
        // Almost a run: the last byte differs.
        let mut almost = run.clone();
        almost[RUN_THRESHOLD - 1] = b'b';
        assert!(json(&almost).starts_with("\"aaa"));
    }

    #[test]
    fn runs_read_any_pattern_up_to_the_frame_limit() {
        assert_eq!(
            read(r#"{"hex":"0102","repeat":3}"#).expect("pattern"),
            [1, 2, 1, 2, 1, 2]
        );
        assert_eq!(read(r#"{"hex":"61","repeat":0}"#).expect("empty"), b"");
        let at_limit = format!(r#"{{"hex":"00","repeat":{MAX_PAYLOAD}}}"#);
        assert_eq!(read(&at_limit).expect("at the limit").len(), MAX_PAYLOAD);
        let over = format!(r#"{{"hex":"0000","repeat":{}}}"#, MAX_PAYLOAD / 2 + 1);
        assert!(read(&over).is_err(), "longer than a frame");
        assert!(read(&format!(r#"{{"hex":"00","repeat":{}}}"#, usize::MAX)).is_err());
        assert!(read(r#"{"hex":"0","repeat":2}"#).is_err(), "odd hex");
    }
}
