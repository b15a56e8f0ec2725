//! `gzip` (priority 995, rewrite + header_filter + body_filter): compress responses with gzip as
//! they stream.
//!
//! Config: `types` (content types to compress, `"*"` for all; default `["text/html"]`),
//! `min_length` (default 20: a response whose `Content-Length` is smaller is sent as is),
//! `comp_level` (1-9, default 1), `http_version` (1.0 or 1.1, default 1.1: older requests are
//! not compressed), `buffers` (`{number, size}`, accepted for compatibility: the encoder's output
//! is sent chunk by chunk), `vary` (add `Vary: Accept-Encoding`).
//!
//! A response is compressed when the request accepts gzip (`Accept-Encoding`), the response has
//! no `Content-Encoding` yet and its type matches. As nginx's gzip module runs after APISIX's
//! filters, the choice is made and the body compressed after every plugin's header and body
//! filters (see [`Encoding`]). Its `Content-Length` is dropped and a strong
//! `ETag` becomes weak, as nginx does.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{self, HeaderValue};
use http::HeaderMap;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use plugin_api::{
    BodyFilter, BuildContext, Encoding, Flow, Kind, Phases, Plugin, RequestCtx, ResponseCtx,
};

/// The kind.
pub struct Gzip;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    #[serde(default)]
    #[schemars(schema_with = "types_schema")]
    types: Option<Types>,
    #[serde(default = "default_min_length")]
    #[schemars(range(min = 1))]
    min_length: u64,
    #[serde(default = "default_level")]
    #[schemars(range(min = 1, max = 9))]
    comp_level: u32,
    #[serde(default = "default_http_version")]
    #[schemars(extend("enum" = [1.1, 1.0]))]
    http_version: f64,
    buffers: Option<Buffers>,
    #[serde(default)]
    vary: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum Types {
    All(String),
    List(Vec<String>),
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Buffers {
    #[schemars(range(min = 1))]
    number: Option<u32>,
    #[schemars(range(min = 1))]
    size: Option<u32>,
}

/// APISIX's schema of `types`: a list of at least one type, or `"*"`.
fn types_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"anyOf": [
        {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        {"enum": ["*"]}
    ]})
}

fn default_min_length() -> u64 {
    20
}
fn default_level() -> u32 {
    1
}
fn default_http_version() -> f64 {
    1.1
}

/// A configured instance (the checked config).
pub struct Instance {
    /// Requests older than HTTP/1.1 are not compressed.
    needs_http11: bool,
    encoding: Arc<GzipEncoding>,
}

/// Which responses to compress, and how.
struct GzipEncoding {
    /// Lower-case media types; `None` compresses every type.
    types: Option<Vec<String>>,
    min_length: u64,
    level: Compression,
    vary: bool,
}

impl Kind for Gzip {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "gzip";
    const PRIORITY: i32 = 995;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let types = match conf.types {
            None => Some(vec!["text/html".to_owned()]),
            Some(Types::All(s)) if s == "*" => None,
            Some(Types::All(s)) => {
                return Err(format!(
                    "types: expected \"*\" or a list of types, got {s:?}"
                ))
            }
            Some(Types::List(list)) if list.is_empty() => {
                return Err("types: the list must not be empty".to_owned())
            }
            Some(Types::List(list)) => Some(list.iter().map(|t| t.to_ascii_lowercase()).collect()),
        };
        if conf.min_length < 1 {
            return Err("min_length: expected at least 1".to_owned());
        }
        if !(1..=9).contains(&conf.comp_level) {
            return Err(format!("comp_level: expected 1-9, got {}", conf.comp_level));
        }
        let needs_http11 = if conf.http_version == 1.1 {
            true
        } else if conf.http_version == 1.0 {
            false
        } else {
            return Err(format!(
                "http_version: expected 1.0 or 1.1, got {}",
                conf.http_version
            ));
        };
        if let Some(b) = &conf.buffers {
            if b.number == Some(0) || b.size == Some(0) {
                return Err("buffers: number and size must be at least 1".to_owned());
            }
        }
        Ok(Instance {
            needs_http11,
            encoding: Arc::new(GzipEncoding {
                types,
                min_length: conf.min_length,
                level: Compression::new(conf.comp_level),
                vary: conf.vary,
            }),
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

/// The request accepts gzip (found in the rewrite phase).
#[derive(Clone, Copy)]
struct Accepted;

/// Whether an `Accept-Encoding` value allows gzip (`gzip` or `*` with a non-zero q).
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let zero_q = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                == Some(0.0)
        });
        !zero_q && (coding.eq_ignore_ascii_case("gzip") || coding == "*")
    })
}

impl GzipEncoding {
    fn type_matches(&self, content_type: Option<&HeaderValue>) -> bool {
        let Some(types) = &self.types else {
            return true;
        };
        let media = content_type
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        types.contains(&media)
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE | Phases::HEADER_FILTER
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        let old_protocol = self.needs_http11
            && matches!(
                req.vars.get("server_protocol").as_deref(),
                Some("HTTP/1.0" | "HTTP/0.9")
            );
        let accepted = req
            .vars
            .get("http_accept_encoding")
            .is_some_and(|v| accepts_gzip(&v));
        if accepted && !old_protocol {
            req.state.insert(Accepted);
        }
        Flow::Continue
    }

    fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        if resp.state.get::<Accepted>().is_some() {
            *resp.encoding = Some(self.encoding.clone());
        }
    }
}

impl Encoding for GzipEncoding {
    fn start(&self, headers: &mut HeaderMap) -> Option<Box<dyn BodyFilter>> {
        if headers.contains_key(header::CONTENT_ENCODING)
            || !self.type_matches(headers.get(header::CONTENT_TYPE))
        {
            return None;
        }
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if length.is_some_and(|n| n < self.min_length) {
            return None;
        }
        if self.vary {
            crate::support::headers::add_vary(headers, "Accept-Encoding");
        }
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.remove(header::CONTENT_LENGTH);
        if let Some(etag) = headers.get(header::ETAG) {
            if !etag.as_bytes().starts_with(b"W/") {
                let mut weak = b"W/".to_vec();
                weak.extend_from_slice(etag.as_bytes());
                if let Ok(weak) = HeaderValue::from_bytes(&weak) {
                    headers.insert(header::ETAG, weak);
                }
            }
        }
        Some(Box::new(Compress(Some(GzEncoder::new(
            Vec::new(),
            self.level,
        )))))
    }
}

/// One response's body on its way through the encoder.
struct Compress(Option<GzEncoder<Vec<u8>>>);

impl BodyFilter for Compress {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        let Some(encoder) = &mut self.0 else {
            return chunk;
        };
        // Writing to a Vec cannot fail; the encoder hands out what it has so far.
        if let Err(e) = encoder.write_all(&chunk) {
            tracing::error!(error = %e, "gzip: compression failed");
        }
        Bytes::from(std::mem::take(encoder.get_mut()))
    }

    fn finish(&mut self) -> Bytes {
        match self.0.take().map(GzEncoder::finish) {
            Some(Ok(rest)) => Bytes::from(rest),
            Some(Err(e)) => {
                tracing::error!(error = %e, "gzip: compression failed");
                Bytes::new()
            }
            None => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use http::{HeaderMap, StatusCode};
    use plugin_api::testing::Fake;
    use plugin_api::PluginKind;
    use serde_json::json;
    use serde_json::Value;
    use std::io::Read;

    /// Runs a request with `vars` and a response with `headers` through the plugin: the headers
    /// after `header_filter` and the encoding it chose, and the encoder, if any.
    async fn run(
        conf: Value,
        vars: &[(&'static str, &'static str)],
        headers: &[(&'static str, &'static str)],
    ) -> (HeaderMap, Option<Box<dyn BodyFilter>>) {
        let plugin = Gzip.build(&conf).expect("valid");
        let mut fake = Fake::new(vars);
        assert!(fake.rewrite(&*plugin).await.is_none());
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, v.parse().expect("value"));
        }
        let mut encoding = None;
        let mut status = StatusCode::OK;
        plugin.header_filter(&mut ResponseCtx {
            status: &mut status,
            headers: &mut map,
            replace_body: &mut None,
            state: &mut fake.state,
            body_filters: &mut Vec::new(),
            encoding: &mut encoding,
        });
        let encoder = encoding.and_then(|e: Arc<dyn Encoding>| e.start(&mut map));
        (map, encoder)
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut out = String::new();
        GzDecoder::new(bytes)
            .read_to_string(&mut out)
            .expect("valid gzip");
        out
    }

    const HTML: (&str, &str) = ("content-type", "text/html; charset=utf-8");
    const ACCEPTS: (&str, &str) = ("http_accept_encoding", "br, gzip");

    #[tokio::test]
    async fn compresses_a_streamed_body() {
        let (headers, filter) = run(
            json!({}),
            &[ACCEPTS],
            &[HTML, ("content-length", "300"), ("etag", "\"v1\"")],
        )
        .await;
        let mut filter = filter.expect("compressed");
        assert_eq!(headers.get("content-encoding").expect("set"), "gzip");
        assert!(headers.get("content-length").is_none());
        assert_eq!(headers.get("etag").expect("kept"), "W/\"v1\"");
        let text = "hello gzip ".repeat(30);
        let mut out = Vec::new();
        for piece in text.as_bytes().chunks(7) {
            out.extend_from_slice(&filter.chunk(Bytes::copy_from_slice(piece)));
        }
        out.extend_from_slice(&filter.finish());
        assert_eq!(gunzip(&out), text);
        assert!(out.len() < text.len());
    }

    #[tokio::test]
    async fn skipped_when_not_wanted() {
        // The client does not accept gzip, or refuses it with q=0.
        assert!(run(json!({}), &[], &[HTML]).await.1.is_none());
        let refused = ("http_accept_encoding", "gzip;q=0, br");
        assert!(run(json!({}), &[refused], &[HTML]).await.1.is_none());
        // HTTP/1.0 with the default http_version; allowed with 1.0.
        let old = ("server_protocol", "HTTP/1.0");
        assert!(run(json!({}), &[ACCEPTS, old], &[HTML]).await.1.is_none());
        assert!(run(json!({"http_version": 1.0}), &[ACCEPTS, old], &[HTML])
            .await
            .1
            .is_some());
        // Already encoded, another type, or too short.
        let encoded = ("content-encoding", "br");
        assert!(run(json!({}), &[ACCEPTS], &[HTML, encoded])
            .await
            .1
            .is_none());
        let json_type = ("content-type", "application/json");
        assert!(run(json!({}), &[ACCEPTS], &[json_type]).await.1.is_none());
        let short = ("content-length", "19");
        assert!(run(json!({}), &[ACCEPTS], &[HTML, short]).await.1.is_none());
        assert!(run(json!({"min_length": 10}), &[ACCEPTS], &[HTML, short])
            .await
            .1
            .is_some());
    }

    #[tokio::test]
    async fn types_and_vary() {
        let json_type = ("content-type", "Application/JSON");
        let conf = json!({"types": ["application/json"], "vary": true});
        let (headers, filter) = run(conf, &[("http_accept_encoding", "*")], &[json_type]).await;
        assert!(filter.is_some());
        assert_eq!(headers.get("vary").expect("set"), "Accept-Encoding");
        let anything = ("content-type", "image/svg+xml");
        assert!(run(json!({"types": "*"}), &[ACCEPTS], &[anything])
            .await
            .1
            .is_some());
        assert!(
            run(json!({"types": "*"}), &[ACCEPTS], &[])
                .await
                .1
                .is_some(),
            "no Content-Type"
        );
    }

    #[test]
    fn config_errors() {
        let err = |conf: Value| Gzip.build(&conf).err().expect("invalid");
        assert!(err(json!({"types": "text/html"})).contains("types"));
        assert!(err(json!({"types": []})).contains("types"));
        assert!(err(json!({"comp_level": 10})).contains("comp_level"));
        assert!(err(json!({"comp_level": 0})).contains("comp_level"));
        assert!(err(json!({"min_length": 0})).contains("min_length"));
        assert!(err(json!({"http_version": 2})).contains("http_version"));
        assert!(err(json!({"buffers": {"number": 0}})).contains("buffers"));
        assert!(err(json!({"level": 1})).contains("unknown field"));
        assert!(Gzip
            .build(&json!({"buffers": {"number": 4, "size": 8192}, "comp_level": 9}))
            .is_ok());
    }
}
