//! `request-id` (priority 12015): every request carries an id, upstream and in the response.
//!
//! Config: `header_name` (default `X-Request-Id`), `include_in_response` (default true),
//! `algorithm` `uuid` (default, version 4), `uuidv7` (time-ordered UUID), `ksuid` (27 base62
//! characters: a timestamp and 128 random bits), `nanoid` (21 characters of the URL-safe
//! alphabet) or `range_id` with `range_id: {char_set, length}` (defaults: letters and digits,
//! 16; both at least 6). A request that already carries the header (not empty) keeps its id.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;

use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, RequestCtx, ResponseCtx};

/// The kind.
pub struct RequestId;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    #[serde(default = "default_header")]
    header_name: String,
    #[serde(default = "plugin_api::schema::yes")]
    include_in_response: bool,
    #[serde(default)]
    algorithm: Algorithm,
    #[serde(default)]
    range_id: RangeId,
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Algorithm {
    #[default]
    Uuid,
    Uuidv7,
    Ksuid,
    Nanoid,
    RangeId,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RangeId {
    #[serde(default = "default_char_set")]
    #[schemars(length(min = 6))]
    char_set: String,
    #[serde(default = "default_length")]
    #[schemars(range(min = 6))]
    length: usize,
}

impl Default for RangeId {
    fn default() -> Self {
        Self {
            char_set: default_char_set(),
            length: default_length(),
        }
    }
}

fn default_header() -> String {
    "X-Request-Id".to_owned()
}
fn default_char_set() -> String {
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".to_owned()
}
fn default_length() -> usize {
    16
}

const NANOID: &[u8] = b"_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A configured instance (the checked config).
pub struct Instance {
    header: HeaderName,
    include_in_response: bool,
    algorithm: Algorithm,
    char_set: Vec<char>,
    length: usize,
}

/// The id of this request, kept for the response.
#[derive(Clone)]
struct Id(HeaderValue);

impl Kind for RequestId {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "request-id";
    const PRIORITY: i32 = 12015;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let header = HeaderName::from_bytes(conf.header_name.as_bytes())
            .map_err(|_| format!("invalid header_name `{}`", conf.header_name))?;
        let char_set: Vec<char> = conf.range_id.char_set.chars().collect();
        if conf.algorithm == Algorithm::RangeId
            && (char_set.is_empty()
                || conf.range_id.length == 0
                || char_set.iter().any(|c| !c.is_ascii_graphic()))
        {
            return Err(
                "range_id needs a non-empty printable ASCII char_set and a length of at least 1"
                    .to_owned(),
            );
        }
        Ok(Instance {
            header,
            include_in_response: conf.include_in_response,
            algorithm: conf.algorithm,
            char_set,
            length: conf.range_id.length,
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

impl Instance {
    fn generate(&self) -> String {
        let mut rng = rand::rng();
        match self.algorithm {
            Algorithm::Uuid => {
                let mut b: [u8; 16] = rng.random();
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                uuid_text(&b)
            }
            Algorithm::Uuidv7 => {
                let mut b: [u8; 16] = rng.random();
                let millis = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                b[..6].copy_from_slice(&millis.to_be_bytes()[10..]);
                b[6] = (b[6] & 0x0f) | 0x70;
                b[8] = (b[8] & 0x3f) | 0x80;
                uuid_text(&b)
            }
            Algorithm::Ksuid => {
                // Seconds since KSUID's epoch (2014-05-13T16:53:20Z), then 128 random bits.
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let stamp = u32::try_from(secs.saturating_sub(1_400_000_000)).unwrap_or(u32::MAX);
                let mut b = [0u8; 20];
                b[..4].copy_from_slice(&stamp.to_be_bytes());
                rng.fill(&mut b[4..]);
                base62(&b, 27)
            }
            Algorithm::Nanoid => (0..21)
                .map(|_| char::from(NANOID[rng.random_range(0..NANOID.len())]))
                .collect(),
            Algorithm::RangeId => (0..self.length)
                .map(|_| self.char_set[rng.random_range(0..self.char_set.len())])
                .collect(),
        }
    }
}

/// A UUID's usual text: 32 hex digits in groups of 8-4-4-4-12.
fn uuid_text(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `bytes` (a big-endian number) in base62 (`0-9A-Za-z`), left-padded with `0` to `width`.
fn base62(bytes: &[u8], width: usize) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut number = bytes.to_vec();
    let mut out = Vec::with_capacity(width);
    while number.iter().any(|&d| d != 0) {
        // Long division by 62, most significant byte first.
        let mut rest = 0u32;
        for digit in number.iter_mut() {
            let value = (rest << 8) | u32::from(*digit);
            *digit = u8::try_from(value / 62).unwrap_or(0);
            rest = value % 62;
        }
        out.push(DIGITS[rest as usize]);
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE | Phases::HEADER_FILTER
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        let id = match req.headers.get(&self.header).filter(|v| !v.is_empty()) {
            Some(existing) => existing.clone(),
            None => {
                // Generated ids are ASCII, always a valid header value.
                let Ok(value) = HeaderValue::from_str(&self.generate()) else {
                    return Flow::Continue;
                };
                req.headers.insert(self.header.clone(), value.clone());
                value
            }
        };
        req.state.insert(Id(id));
        Flow::Continue
    }

    fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        if !self.include_in_response {
            return;
        }
        if let Some(Id(id)) = resp.state.get::<Id>() {
            resp.headers.insert(self.header.clone(), id.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::parse_conf;
    use plugin_api::PluginKind;
    use serde_json::json;
    use serde_json::Value;

    fn instance(conf: Value) -> Instance {
        let conf: Conf = parse_conf(&conf).expect("valid");
        Instance {
            header: HeaderName::from_bytes(conf.header_name.as_bytes()).expect("header"),
            include_in_response: conf.include_in_response,
            algorithm: conf.algorithm,
            char_set: conf.range_id.char_set.chars().collect(),
            length: conf.range_id.length,
        }
    }

    #[test]
    fn ids_have_the_algorithm_shape() {
        let uuid = instance(json!({})).generate();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4", "{uuid}");
        assert_ne!(uuid, instance(json!({})).generate());
        let nano = instance(json!({"algorithm": "nanoid"})).generate();
        assert_eq!(nano.len(), 21);
        assert!(nano.bytes().all(|b| NANOID.contains(&b)));
        let range =
            instance(json!({"algorithm": "range_id", "range_id": {"char_set": "ab", "length": 9}}))
                .generate();
        assert_eq!(range.len(), 9);
        assert!(range.chars().all(|c| c == 'a' || c == 'b'));
        let v7 = instance(json!({"algorithm": "uuidv7"})).generate();
        assert_eq!((v7.len(), &v7[14..15]), (36, "7"), "{v7}");
        let ksuid = instance(json!({"algorithm": "ksuid"})).generate();
        assert_eq!(ksuid.len(), 27, "{ksuid}");
        assert!(ksuid.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(base62(&[0, 0, 61], 3), "00z");
        assert_eq!(base62(&[1, 0], 1), "48", "256 = 4 * 62 + 8");
        assert_eq!(base62(&[0xff; 20], 27), "aWgEPTl1tmebfsQzFP4bxwgy80V");
    }

    #[test]
    fn configs_are_checked() {
        assert!(RequestId.build(&json!({})).is_ok());
        assert!(RequestId
            .build(&json!({"header_name": "bad header"}))
            .is_err());
        assert!(RequestId.build(&json!({"algorithm": "ksuid"})).is_ok());
        assert!(RequestId.build(&json!({"algorithm": "sha"})).is_err());
        assert!(RequestId
            .build(&json!({"algorithm": "range_id", "range_id": {"length": 0}}))
            .is_err());
        assert!(RequestId.build(&json!({"unknown": 1})).is_err());
        assert!(RequestId
            .build(&json!({"include_in_response": "yes"}))
            .is_err());
    }
}
