//! Byte strings in JSON (the golden-vector manifest, logs): a JSON string when the bytes are UTF-8,
//! else `{"hex": "..."}` with lower-case hex digits.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Text {
    Utf8(String),
    Hex { hex: String },
}

fn to_text(bytes: &[u8]) -> Text {
    match std::str::from_utf8(bytes) {
        Ok(s) => Text::Utf8(s.to_owned()),
        Err(_) => Text::Hex {
            hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        },
    }
}

fn from_text<E: serde::de::Error>(text: Text) -> Result<Vec<u8>, E> {
    match text {
        Text::Utf8(s) => Ok(s.into_bytes()),
        Text::Hex { hex } => {
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
    }
}

/// Serializes bytes as text or hex.
///
/// # Errors
/// Those of the serializer.
pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    to_text(bytes).serialize(s)
}

/// Reads bytes written by [`serialize`].
///
/// # Errors
/// Invalid hex, or those of the deserializer.
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
    /// Invalid hex, or those of the deserializer.
    pub fn deserialize<'de, D: Deserializer<'de>, T: From<Vec<u8>>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<Text>::deserialize(d)?
            .map(|t| from_text::<D::Error>(t).map(T::from))
            .transpose()
    }
}
