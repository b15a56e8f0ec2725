//! `echo` (priority 412, header_filter + body_filter): wrap or replace the response body.
//!
//! Config (at least one of the three body fields): `before_body` (sent before the body),
//! `body` (sent instead of the body), `after_body` (sent after it), `headers` (a map of headers
//! set on the response). The body is changed as it streams; nothing is buffered.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

use plugin_api::{BodyFilter, BuildContext, Kind, Phases, Plugin, ResponseCtx};

/// The kind.
pub struct Echo;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    before_body: Option<String>,
    body: Option<String>,
    after_body: Option<String>,
    headers: Option<BTreeMap<String, String>>,
}

/// A configured instance (the checked config).
pub struct Instance {
    before: Bytes,
    body: Option<Bytes>,
    after: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Kind for Echo {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "echo";
    const PRIORITY: i32 = 412;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        if conf.before_body.is_none() && conf.body.is_none() && conf.after_body.is_none() {
            return Err(
                "value should match only one schema, but matches none: one of before_body, \
                 body or after_body is required"
                    .to_owned(),
            );
        }
        let headers = conf
            .headers
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| {
                let n = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("headers: invalid header name {name:?}"))?;
                let v = HeaderValue::from_str(&value)
                    .map_err(|_| format!("headers: invalid value for {name}"))?;
                Ok((n, v))
            })
            .collect::<Result<_, String>>()?;
        Ok(Instance {
            before: conf.before_body.map(Bytes::from).unwrap_or_default(),
            body: conf.body.map(Bytes::from),
            after: conf.after_body.map(Bytes::from).unwrap_or_default(),
            headers,
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::HEADER_FILTER
    }

    fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        for (name, value) in &self.headers {
            resp.headers.insert(name.clone(), value.clone());
        }
        resp.body_filters.push(Box::new(Wrap {
            before: Some(self.before.clone()),
            body: self.body.clone(),
            after: self.after.clone(),
        }));
    }
}

/// One response's body on its way through `echo`.
struct Wrap {
    /// Still to send (taken with the first bytes).
    before: Option<Bytes>,
    body: Option<Bytes>,
    after: Bytes,
}

impl Wrap {
    fn with_before(&mut self, chunk: Bytes) -> Bytes {
        match self.before.take() {
            Some(before) if !before.is_empty() => [before, chunk].concat().into(),
            _ => chunk,
        }
    }
}

impl BodyFilter for Wrap {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        if self.body.is_some() {
            // The replacement is sent at the end, whatever the body's own bytes were.
            return Bytes::new();
        }
        self.with_before(chunk)
    }

    fn finish(&mut self) -> Bytes {
        let middle = self.body.take().unwrap_or_default();
        let head = self.with_before(middle);
        [head, self.after.clone()].concat().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::PluginKind;
    use serde_json::json;
    use serde_json::Value;

    /// The body sent for an upstream body in `chunks`, through the filter `conf` attaches.
    fn run(conf: Value, chunks: &[&str]) -> String {
        let plugin = Echo.build(&conf).expect("valid");
        let mut filters = Vec::new();
        let mut status = http::StatusCode::OK;
        plugin.header_filter(&mut ResponseCtx {
            status: &mut status,
            headers: &mut http::HeaderMap::new(),
            replace_body: &mut None,
            state: &mut http::Extensions::new(),
            body_filters: &mut filters,
            encoding: &mut None,
        });
        let mut filter = filters.pop().expect("a filter");
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&filter.chunk(Bytes::copy_from_slice(c.as_bytes())));
        }
        out.extend_from_slice(&filter.finish());
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn wraps_the_streamed_body() {
        let conf = json!({"before_body": "<", "after_body": ">"});
        assert_eq!(run(conf.clone(), &["a", "b", "c"]), "<abc>");
        assert_eq!(run(conf, &[]), "<>", "an empty body is still wrapped");
        assert_eq!(run(json!({"after_body": "!"}), &["x"]), "x!");
    }

    #[test]
    fn body_replaces_what_the_upstream_sent() {
        let conf = json!({"before_body": "[", "body": "new", "after_body": "]"});
        assert_eq!(run(conf, &["old", "er"]), "[new]");
        assert_eq!(run(json!({"body": "only"}), &["x"]), "only");
    }

    #[test]
    fn headers_are_set() {
        let plugin = Echo
            .build(&json!({"body": "x", "headers": {"X-Echo": "1"}}))
            .expect("valid");
        let mut headers = http::HeaderMap::new();
        headers.insert("x-echo", HeaderValue::from_static("old"));
        let headers = plugin_api::testing::Fake::new(&[]).header_filter(
            &*plugin,
            http::StatusCode::OK,
            headers,
        );
        assert_eq!(headers.get("x-echo").map(|v| v.as_bytes()), Some(&b"1"[..]));
    }

    #[test]
    fn config_errors() {
        let err = |conf: Value| Echo.build(&conf).err().expect("invalid");
        assert!(err(json!({})).contains("one of before_body, body or after_body"));
        assert!(err(json!({"headers": {"X": "1"}})).contains("one of"));
        assert!(err(json!({"body": 1})).contains("body"));
        assert!(err(json!({"body": "x", "headers": {"bad name": "1"}})).contains("bad name"));
        assert!(err(json!({"body": "x", "extra": 1})).contains("unknown field"));
    }
}
