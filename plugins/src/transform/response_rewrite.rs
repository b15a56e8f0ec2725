//! `response-rewrite` (priority 899, header_filter): change the response sent to the client,
//! whoever made it (the upstream or a plugin).
//!
//! Config:
//! - `status_code`: the new status (200-598);
//! - `body`: the new body (a string; `Content-Length`, `Content-Encoding`, `ETag` and
//!   `Last-Modified` of the old one are dropped); `body_base64` (default false): `body` is
//!   base64, sent decoded;
//! - `headers`: `{add: ["name: value", ...], set: {name: value}, remove: [name]}` (applied in
//!   that order) or the legacy flat map `{name: value}` (= `set`). Values are strings or numbers
//!   with `$name` variables (request variables, `status`, and `balancer_ip` / `balancer_port`,
//!   the upstream node that answered); a `set` value that resolves to the empty string removes
//!   the header;
//! - `vars`: a `vars` expression (as a route's): the plugin acts only when it holds. It sees the
//!   request variables and `status`, the response's status;
//! - `filters`: regex replacements in the body, `[{regex, replace, scope, options}]`, applied in
//!   order to the whole body (held back until it ended): `scope` `once` (default, the first
//!   match) or `global` (every match), `replace` with `$0`, `$1`, `${1}` groups and `$$` a `$`
//!   (as `ngx.re.sub`), the regex read as PCRE reads it (see [`crate::support::regex`]), `options`
//!   PCRE-style letters (default `jo`: `i` case-insensitive, `m` multi-line, `s` dot matches
//!   newline, `x` extended; `j`, `o`, `u` accepted and ignored). Not with `body`. As APISIX,
//!   `Content-Encoding` is dropped: a gzip body is decompressed before the filters, a body with
//!   another encoding is sent unfiltered;
//! - `max_resp_body_size` (default 64 MiB, at least 1): as APISIX, the `filters` see at most
//!   this many bytes of the body: a longer body is truncated to it, then filtered.
//!
//! The request variables `vars` and the header values name are captured in the rewrite phase
//! (the only time a plugin sees them); when a plugin that runs before this one answered the
//! request in its rewrite phase, they are unknown (missing) and only `status` is known.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderName, CONTENT_ENCODING, ETAG, LAST_MODIFIED};
use http::StatusCode;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::support::headers::{
    apply_headers, header_name, header_names, header_template, HeaderOps,
};
use crate::support::regex::{Options, PcreRegex};
use crate::support::regex_uri::{parse_template, Part};
use model::expr::{Expr, Vars};
use model::template::Template;
use plugin_api::Balancer;
use plugin_api::{BodyFilter, BuildContext, Flow, Kind, Phases, Plugin, RequestCtx, ResponseCtx};

/// The kind.
pub struct ResponseRewrite;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("dependencies" = {
    "body": {"not": {"required": ["filters"]}},
    "filters": {"not": {"required": ["body"]}}
}))]
pub struct Conf {
    #[schemars(range(min = 200, max = 598))]
    status_code: Option<u16>,
    body: Option<String>,
    #[serde(default)]
    body_base64: bool,
    #[serde(default)]
    #[schemars(schema_with = "headers_schema")]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    #[schemars(schema_with = "vars_schema")]
    vars: Option<Value>,
    #[schemars(length(min = 1))]
    filters: Option<Vec<FilterConf>>,
    #[serde(default = "default_max_body")]
    #[schemars(range(min = 1))]
    max_resp_body_size: usize,
}

/// APISIX's schema of `headers`: the flat map, or `{add, set, remove}`.
fn headers_schema(_: &mut SchemaGenerator) -> Schema {
    let value = json!({"oneOf": [{"type": "string"}, {"type": "number"}]});
    json_schema!({"anyOf": [
        {"type": "object", "minProperties": 1, "patternProperties": {"^[^:]+$": value}},
        {"properties": {
            "add": {"type": "array", "minItems": 1,
                    "items": {"type": "string", "pattern": "^[^:]+:[^:]*[^/]$"}},
            "set": {"type": "object", "minProperties": 1, "patternProperties": {"^[^:]+$": value}},
            "remove": {"type": "array", "minItems": 1,
                       "items": {"type": "string", "pattern": "^[^:]+$"}}
        }}
    ]})
}

/// APISIX's schema of `vars`: an array (the expression is checked when compiled).
fn vars_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array"})
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FilterConf {
    #[schemars(length(min = 1))]
    regex: String,
    replace: String,
    #[serde(default)]
    scope: Scope,
    #[serde(default = "default_options")]
    options: String,
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Scope {
    #[default]
    Once,
    Global,
}

fn default_max_body() -> usize {
    64 * 1024 * 1024
}
fn default_options() -> String {
    "jo".to_owned()
}

/// One compiled `filters` entry.
struct Replacement {
    regex: PcreRegex,
    replace: Vec<Part>,
    scope: Scope,
}

/// A configured instance (the checked config).
pub struct Instance {
    status: Option<StatusCode>,
    body: Option<Bytes>,
    headers: HeaderOps,
    vars: Option<Expr>,
    /// Request variables the expression and header values use.
    needs: Vec<String>,
    filters: Option<Arc<[Replacement]>>,
    max_body: usize,
}

impl Kind for ResponseRewrite {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "response-rewrite";
    const PRIORITY: i32 = 899;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        instance(conf)
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

/// base64 as `ngx.decode_base64`: standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn instance(conf: Conf) -> Result<Instance, String> {
    if conf.filters.is_some() && conf.body.is_some() {
        return Err("body and filters cannot be used together".to_owned());
    }
    if conf.max_resp_body_size == 0 {
        return Err(
            "property \"max_resp_body_size\" validation failed: expected 0 to be at least 1"
                .to_owned(),
        );
    }
    let filters = conf
        .filters
        .map(|list| {
            if list.is_empty() {
                return Err("filters: expect array to have at least 1 items".to_owned());
            }
            list.into_iter()
                .map(replacement)
                .collect::<Result<Arc<[_]>, _>>()
        })
        .transpose()?;
    let status = conf
        .status_code
        .map(|code| {
            StatusCode::from_u16(code)
                .ok()
                .filter(|_| (200..=598).contains(&code))
                .ok_or_else(|| format!("status_code must be 200-598, got {code}"))
        })
        .transpose()?;
    let body = match (conf.body, conf.body_base64) {
        (Some(body), true) => Some(Bytes::from(
            BASE64
                .decode(body.trim())
                .ok()
                .filter(|b| !b.is_empty())
                .ok_or("invalid base64 content")?,
        )),
        (None, true) => return Err("invalid base64 content".into()),
        (body, false) => body.map(Bytes::from),
    };
    let headers = match &conf.headers {
        Some(map) => parse_headers(map)?,
        None => HeaderOps::default(),
    };
    let vars = conf
        .vars
        .as_ref()
        .map(|v| {
            Expr::compile(v).map_err(|e| format!("failed to validate the 'vars' expression: {e}"))
        })
        .transpose()?;
    let mut needs = Vec::new();
    if let Some(rule) = &conf.vars {
        expr_names(rule, &mut needs);
    }
    for (_, template) in headers.add.iter().chain(&headers.set) {
        needs.extend(template.names().map(str::to_owned));
    }
    // Known only in the response phase.
    needs.retain(|n| !["status", "balancer_ip", "balancer_port"].contains(&n.as_str()));
    needs.sort();
    needs.dedup();
    Ok(Instance {
        status,
        body,
        headers,
        vars,
        needs,
        filters,
        max_body: conf.max_resp_body_size,
    })
}

fn replacement(f: FilterConf) -> Result<Replacement, String> {
    let mut options = Options::default();
    for option in f.options.chars() {
        match option {
            'i' => options.case_insensitive = true,
            'm' => options.multi_line = true,
            's' => options.dot_all = true,
            'x' => options.extended = true,
            'j' | 'o' | 'u' => {}
            other => {
                return Err(format!(
                    "regex \"{}\" validation failed: unknown flag \"{other}\" (flags \"{}\")",
                    f.regex, f.options
                ))
            }
        }
    }
    let regex = PcreRegex::new(&f.regex, options)
        .map_err(|e| format!("filters: invalid regex {:?}: {e}", f.regex))?;
    let replace = parse_template(&f.replace, regex.groups())
        .map_err(|e| format!("filters: invalid replace {:?}: {e}", f.replace))?;
    Ok(Replacement {
        regex,
        replace,
        scope: f.scope,
    })
}

/// One response's body held back until it ends (or reaches `max` bytes), then rewritten by the
/// `filters`.
struct Rewriting {
    filters: Arc<[Replacement]>,
    /// The body arrives gzip-compressed: it is decompressed for the filters and sent so.
    gzip: bool,
    held: Vec<u8>,
    max: usize,
    /// The body reached `max`: its first `max` bytes were filtered and sent, the rest is dropped
    /// (APISIX's `hold_body_chunk`: larger responses are truncated).
    done: bool,
}

impl Rewriting {
    /// The held body, filtered.
    fn filtered(&mut self) -> Bytes {
        let mut body = std::mem::take(&mut self.held);
        if self.gzip {
            let mut plain = Vec::new();
            match std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&body[..]),
                &mut plain,
            ) {
                Ok(_) => body = plain,
                Err(e) => {
                    // As APISIX: a body that does not decode is sent as it came.
                    tracing::warn!(error = %e, "response-rewrite: filters skipped, body not gzip");
                    return body.into();
                }
            }
        }
        for f in self.filters.iter() {
            let limit = if f.scope == Scope::Once { 1 } else { 0 };
            if let Some(changed) = f.regex.replacen(&body, limit, &f.replace) {
                body = changed;
            }
        }
        body.into()
    }
}

impl BodyFilter for Rewriting {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        if self.done {
            return Bytes::new();
        }
        self.held.extend_from_slice(&chunk);
        if self.held.len() < self.max {
            return Bytes::new();
        }
        if self.held.len() > self.max {
            tracing::warn!(
                max = self.max,
                "response-rewrite: body longer than max_resp_body_size, truncated"
            );
        }
        self.held.truncate(self.max);
        self.done = true;
        self.filtered()
    }

    fn finish(&mut self) -> Bytes {
        if self.done {
            return Bytes::new();
        }
        self.filtered()
    }
}

/// `headers`: the `{add, set, remove}` form (`add` a list of `name: value`), or the legacy flat
/// map (= set).
fn parse_headers(map: &Map<String, Value>) -> Result<HeaderOps, String> {
    if map.is_empty() {
        return Err("headers must not be empty".to_owned());
    }
    let new_form = ["add", "set", "remove"]
        .iter()
        .any(|k| map.get(*k).is_some_and(|v| v.is_object() || v.is_array()));
    let pairs = |map: &Map<String, Value>| -> Result<Vec<(HeaderName, Template)>, String> {
        map.iter()
            .map(|(k, v)| Ok((header_name(k)?, header_template(v)?)))
            .collect()
    };
    if !new_form {
        return Ok(HeaderOps {
            set: pairs(map)?,
            ..HeaderOps::default()
        });
    }
    let mut ops = HeaderOps::default();
    for (key, value) in map {
        match key.as_str() {
            "add" => {
                let list = value
                    .as_array()
                    .filter(|l| !l.is_empty())
                    .ok_or("headers.add must be a non-empty array of `name: value` strings")?;
                for item in list {
                    let (name, value) =
                        item.as_str()
                            .and_then(|s| s.split_once(':'))
                            .ok_or_else(|| {
                                format!("headers.add: {item} is not a `name: value` string")
                            })?;
                    let name = name.trim();
                    let value = Value::String(value.trim().to_owned());
                    ops.add.push((header_name(name)?, header_template(&value)?));
                }
            }
            "set" => {
                let set = value
                    .as_object()
                    .filter(|m| !m.is_empty())
                    .ok_or("headers.set must be a non-empty object")?;
                ops.set = pairs(set)?;
            }
            "remove" => ops.remove = header_names(value, "headers.remove")?,
            other => {
                return Err(format!(
                    "headers: unknown field `{other}` next to add / set / remove"
                ))
            }
        }
    }
    Ok(ops)
}

/// Every string heading an array in a `vars` rule: the variable names (and logical heads and
/// list values, which are harmless extras).
fn expr_names(rule: &Value, out: &mut Vec<String>) {
    if let Some(items) = rule.as_array() {
        if let Some(Value::String(first)) = items.first() {
            out.push(first.clone());
        }
        for item in items {
            expr_names(item, out);
        }
    }
}

/// The request variables response-rewrite instances need, captured in the rewrite phase
/// (shared by the instances of a request: the values are the same).
#[derive(Clone, Default)]
struct Captured(HashMap<String, Option<String>>);

/// What `vars` and header values see in `header_filter`.
struct ResponseVars<'a> {
    status: String,
    captured: Option<&'a Captured>,
    /// The upstream node that answered; none when no upstream did.
    balancer: Option<&'a Balancer>,
}

impl Vars for ResponseVars<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "status" => Some(Cow::Borrowed(&self.status)),
            "balancer_ip" => self.balancer.map(|b| Cow::Borrowed(b.ip.as_str())),
            "balancer_port" => self.balancer.map(|b| Cow::Owned(b.port.to_string())),
            _ => self.captured?.0.get(name)?.as_deref().map(Cow::Borrowed),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE | Phases::HEADER_FILTER
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        if self.needs.is_empty() {
            return Flow::Continue;
        }
        if req.state.get::<Captured>().is_none() {
            req.state.insert(Captured::default());
        }
        if let Some(captured) = req.state.get_mut::<Captured>() {
            for name in &self.needs {
                if !captured.0.contains_key(name) {
                    let value = req.vars.get(name).map(Cow::into_owned);
                    captured.0.insert(name.clone(), value);
                }
            }
        }
        Flow::Continue
    }

    fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        let captured = resp.state.get::<Captured>();
        let balancer = resp.state.get::<Balancer>();
        if let Some(rule) = &self.vars {
            let vars = ResponseVars {
                status: resp.status.as_u16().to_string(),
                captured,
                balancer,
            };
            if !rule.eval(&vars) {
                return;
            }
        }
        if let Some(status) = self.status {
            *resp.status = status;
        }
        if let Some(body) = &self.body {
            *resp.replace_body = Some(body.clone());
            resp.headers.remove(ETAG);
            resp.headers.remove(LAST_MODIFIED);
        }
        if let Some(filters) = &self.filters {
            // As APISIX: the body is about to change, so its encoding header goes; a gzip body
            // is decompressed for the filters, another encoding is sent unfiltered.
            let encoding = resp
                .headers
                .remove(CONTENT_ENCODING)
                .filter(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"));
            resp.headers.remove(ETAG);
            resp.headers.remove(LAST_MODIFIED);
            let gzip = encoding
                .as_ref()
                .is_some_and(|e| e.as_bytes().eq_ignore_ascii_case(b"gzip"));
            if encoding.is_some() && !gzip {
                tracing::warn!(
                    encoding = ?encoding,
                    "response-rewrite: filters skipped on a body with an unsupported encoding"
                );
            } else {
                resp.body_filters.push(Box::new(Rewriting {
                    filters: filters.clone(),
                    gzip,
                    held: Vec::new(),
                    max: self.max_body,
                    done: false,
                }));
            }
        }
        let vars = ResponseVars {
            status: resp.status.as_u16().to_string(),
            captured,
            balancer,
        };
        apply_headers(&self.headers, resp.headers, &vars);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use plugin_api::parse_conf;
    use plugin_api::testing::{header, Fake};
    use plugin_api::PluginKind;
    use serde_json::json;

    /// The status, headers and replacement body after `header_filter` on a response with
    /// `status` and `headers`, for a request with `vars`.
    async fn run(
        conf: Value,
        vars: &[(&'static str, &'static str)],
        status: u16,
        headers: &[(&'static str, &'static str)],
    ) -> (StatusCode, HeaderMap, Option<Bytes>) {
        let plugin = ResponseRewrite.build(&conf).expect("valid");
        let mut fake = Fake::new(vars);
        assert!(fake.rewrite(&*plugin).await.is_none());
        let mut status = StatusCode::from_u16(status).expect("status");
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, v.parse().expect("value"));
        }
        let mut body = None;
        plugin.header_filter(&mut ResponseCtx {
            status: &mut status,
            headers: &mut map,
            replace_body: &mut body,
            body_filters: &mut Vec::new(),
            encoding: &mut None,
            state: &mut fake.state,
        });
        (status, map, body)
    }

    #[tokio::test]
    async fn status_and_body() {
        let (status, headers, body) = run(
            json!({"status_code": 403, "body": "{\"m\":1}"}),
            &[],
            200,
            &[("etag", "x"), ("last-modified", "y"), ("x-up", "1")],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body.as_deref(), Some(&b"{\"m\":1}"[..]));
        assert!(headers.get("etag").is_none() && headers.get("last-modified").is_none());
        assert_eq!(header(&headers, "x-up"), Some("1"));

        let (status, headers, body) =
            run(json!({"status_code": 201}), &[], 200, &[("etag", "x")]).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(body.is_none(), "the body is kept without `body`");
        assert_eq!(header(&headers, "etag"), Some("x"));

        let (_, _, body) = run(
            json!({"body": "aGVsbG8=", "body_base64": true}),
            &[],
            200,
            &[],
        )
        .await;
        assert_eq!(body.as_deref(), Some(&b"hello"[..]));
        let (_, _, body) = run(
            json!({"body": "aGVsbG8", "body_base64": true}),
            &[],
            200,
            &[],
        )
        .await;
        assert_eq!(body.as_deref(), Some(&b"hello"[..]), "padding is optional");
        let (_, _, body) = run(
            json!({"body": "aGVsbG8=", "body_base64": false}),
            &[],
            200,
            &[],
        )
        .await;
        assert_eq!(
            body.as_deref(),
            Some(&b"aGVsbG8="[..]),
            "not decoded by default"
        );
        let (_, _, body) = run(json!({"body": ""}), &[], 200, &[]).await;
        assert_eq!(body.as_deref(), Some(&b""[..]), "an empty body");
    }

    #[tokio::test]
    async fn headers() {
        let conf = json!({"headers": {
            "add": ["X-Add: a-$status", "X-Keep:2"],
            "set": {"X-Set": "$arg_v", "X-Num": 5, "X-Gone": ""},
            "remove": ["X-Remove"],
        }});
        let (_, h, _) = run(
            conf,
            &[("arg_v", "v1")],
            404,
            &[
                ("x-keep", "1"),
                ("x-set", "old"),
                ("x-gone", "g"),
                ("x-remove", "r"),
            ],
        )
        .await;
        assert_eq!(header(&h, "x-add"), Some("a-404"), "the status variable");
        let keep: Vec<_> = h
            .get_all("x-keep")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(keep, ["1", "2"], "add appends");
        assert_eq!(header(&h, "x-set"), Some("v1"), "request variables");
        assert_eq!(header(&h, "x-num"), Some("5"));
        assert!(h.get("x-gone").is_none() && h.get("x-remove").is_none());

        let (_, h, _) = run(
            json!({"headers": {"X-A": "1", "X-B": ""}}),
            &[],
            200,
            &[("x-a", "0"), ("x-b", "b")],
        )
        .await;
        assert_eq!(header(&h, "x-a"), Some("1"), "the legacy map sets");
        assert!(h.get("x-b").is_none());

        let (status, h, _) = run(
            json!({"status_code": 202, "headers": {"X-S": "$status"}}),
            &[],
            200,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(header(&h, "x-s"), Some("202"), "values see the new status");
    }

    #[tokio::test]
    async fn vars() {
        let conf = json!({"vars": [["status", "==", 500], ["arg_x", "==", "1"]], "status_code": 503, "headers": {"X-Hit": "y"}});
        let (status, h, _) = run(conf.clone(), &[("arg_x", "1")], 500, &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&h, "x-hit"), Some("y"));
        let (status, h, _) = run(conf.clone(), &[("arg_x", "1")], 200, &[]).await;
        assert_eq!(status, StatusCode::OK, "the status does not match");
        assert!(h.get("x-hit").is_none());
        let (status, _, _) = run(conf.clone(), &[("arg_x", "2")], 500, &[]).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request variable does not match"
        );

        // Without the rewrite phase (an earlier plugin answered), request variables are missing.
        let plugin = ResponseRewrite
            .build(&json!({"vars": [["OR", ["status", "==", 403], ["arg_x", "==", "1"]]], "status_code": 200}))
            .expect("valid");
        let mut status = StatusCode::FORBIDDEN;
        plugin.header_filter(&mut ResponseCtx {
            status: &mut status,
            headers: &mut HeaderMap::new(),
            replace_body: &mut None,
            body_filters: &mut Vec::new(),
            encoding: &mut None,
            state: &mut http::Extensions::new(),
        });
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn needed_variables() {
        let conf = json!({"vars": [["arg_a", "==", "1"], ["OR", ["http_x", "~~", "y"], ["status", ">", 400]]],
            "headers": {"set": {"X": "$cookie_c-${arg_b}-$status"}}});
        let conf: Conf = parse_conf(&conf).expect("parsed");
        let needs = instance(conf).expect("valid").needs;
        for name in ["arg_a", "arg_b", "cookie_c", "http_x"] {
            assert!(needs.iter().any(|n| n == name), "{name} in {needs:?}");
        }
        assert!(!needs.iter().any(|n| n == "status"));
        let conf: Conf = parse_conf(&json!({"status_code": 200})).expect("parsed");
        assert!(
            instance(conf).expect("valid").needs.is_empty(),
            "nothing to capture"
        );
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({}),
            json!({"status_code": 200}),
            json!({"status_code": 598}),
            json!({"body": "x", "body_base64": false}),
            json!({"body": "eA==", "body_base64": true}),
            json!({"headers": {"X-A": 1}}),
            json!({"headers": {"add": ["X-A: 1"]}}),
            json!({"headers": {"remove": ["X-A"]}}),
            json!({"vars": [["status", "==", 200]]}),
            json!({"vars": []}),
            json!({"body": "x", "max_resp_body_size": 1024}),
            json!({"filters": [{"regex": "a", "replace": "b"}], "max_resp_body_size": 1}),
        ] {
            assert!(ResponseRewrite.build(&good).is_ok(), "{good}");
        }
        for bad in [
            json!({"status_code": 199}),
            json!({"status_code": 599}),
            json!({"body": 1}),
            json!({"body": "not base64!", "body_base64": true}),
            json!({"body": "", "body_base64": true}),
            json!({"body_base64": true}),
            json!({"headers": {}}),
            json!({"headers": {"add": ["no colon"]}}),
            json!({"headers": {"add": []}}),
            json!({"headers": {"add": ["X A: 1"]}}),
            json!({"headers": {"set": {}}}),
            json!({"headers": {"set": {"X": "1"}, "Y": "2"}}),
            json!({"headers": {"X": ["1"]}}),
            json!({"vars": ["status", "==", 200]}),
            json!({"vars": [["status", "nope", 200]]}),
            json!({"filters": []}),
            json!({"filters": [{"regex": "(", "replace": "b"}]}),
            json!({"filters": [{"regex": "a"}]}),
            json!({"filters": [{"regex": "a", "replace": "b", "scope": "all"}]}),
            json!({"filters": [{"regex": "a", "replace": "b", "options": "jz"}]}),
            json!({"filters": [{"regex": "a", "replace": "b"}], "body": "x"}),
            json!({"filters": [{"regex": "a", "replace": "b"}], "max_resp_body_size": 0}),
            json!({"extra": 1}),
        ] {
            assert!(ResponseRewrite.build(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn balancer_variables() {
        // response-rewrite.t TEST 23/24: `$balancer_ip:$balancer_port`, the node that answered.
        let plugin = ResponseRewrite
            .build(&json!({"headers": {"X-B": "to $balancer_ip:$balancer_port"}}))
            .expect("valid");
        let mut fake = Fake::new(&[]);
        fake.state.insert(Balancer {
            ip: "127.0.0.1".to_owned(),
            port: 1980,
            time: std::time::Duration::ZERO,
        });
        let headers = fake.header_filter(&*plugin, StatusCode::OK, HeaderMap::new());
        assert_eq!(header(&headers, "x-b"), Some("to 127.0.0.1:1980"));
        // No upstream answered (a plugin did): the variables are empty.
        let headers = Fake::new(&[]).header_filter(&*plugin, StatusCode::OK, HeaderMap::new());
        assert_eq!(header(&headers, "x-b"), Some("to :"));
    }

    /// The body sent for an upstream body in `chunks` with `headers`, through the filters the
    /// plugin attached (`None`: it attached none).
    fn filtered(
        conf: Value,
        headers: &[(&'static str, &'static str)],
        chunks: &[&str],
    ) -> Option<String> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, v.parse().expect("value"));
        }
        let chunks: Vec<Bytes> = chunks
            .iter()
            .map(|c| Bytes::copy_from_slice(c.as_bytes()))
            .collect();
        let out = filter_through(conf, &mut map, &chunks)?;
        Some(String::from_utf8(out).expect("utf-8"))
    }

    /// The body sent for an upstream body in `chunks` whose response headers are `map` (as the
    /// plugin leaves them), through the filters the plugin attached (`None`: it attached none).
    fn filter_through(conf: Value, map: &mut HeaderMap, chunks: &[Bytes]) -> Option<Vec<u8>> {
        let plugin = ResponseRewrite.build(&conf).expect("valid");
        let mut filters = Vec::new();
        let mut status = StatusCode::OK;
        plugin.header_filter(&mut ResponseCtx {
            status: &mut status,
            headers: map,
            replace_body: &mut None,
            state: &mut http::Extensions::new(),
            body_filters: &mut filters,
            encoding: &mut None,
        });
        let mut filter = filters.pop()?;
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&filter.chunk(c.clone()));
        }
        out.extend_from_slice(&filter.finish());
        Some(out)
    }

    #[test]
    fn filters_rewrite_the_whole_body() {
        let once = json!({"filters": [{"regex": "cat", "replace": "dog"}]});
        // A match split across chunks is still found: the body is held until it ends.
        assert_eq!(
            filtered(once, &[], &["a c", "at and a cat"]).as_deref(),
            Some("a dog and a cat")
        );
        let global = json!({"filters": [
            {"regex": "(\\w+)@(\\w+)", "replace": "$2 at $1", "scope": "global"},
            {"regex": "X", "replace": "y", "options": "i"}]});
        assert_eq!(
            filtered(global, &[], &["a@b c@d x"]).as_deref(),
            Some("b at a d at c y")
        );
    }

    #[test]
    fn filters_decode_gzip_and_leave_other_encodings_and_oversize_bodies_alone() {
        let conf = json!({"filters": [{"regex": "a", "replace": "b", "scope": "global"}]});
        assert!(filtered(conf.clone(), &[("content-encoding", "deflate")], &["a"]).is_none());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"aa").expect("write");
        let gz = gz.finish().expect("gzip");
        let mut map = HeaderMap::new();
        map.insert(CONTENT_ENCODING, "gzip".parse().expect("value"));
        let out = filter_through(conf.clone(), &mut map, &[Bytes::from(gz)]).expect("filtered");
        assert!(map.get(CONTENT_ENCODING).is_none(), "the encoding goes");
        assert_eq!(out, b"bb", "decompressed, then filtered");
        assert_eq!(
            filtered(conf, &[("content-encoding", "identity")], &["aa"]).as_deref(),
            Some("bb")
        );
        // response-rewrite.t TEST 28/29: the body is truncated to max_resp_body_size, then
        // filtered ("hello world\n" with 5 bytes gives "HELLO").
        let five = json!({"max_resp_body_size": 5,
            "filters": [{"regex": "hello", "scope": "once", "replace": "HELLO"}]});
        assert_eq!(
            filtered(five.clone(), &[], &["hello world\n"]).as_deref(),
            Some("HELLO")
        );
        assert_eq!(
            filtered(five.clone(), &[], &["he", "llo", " world", "\n"]).as_deref(),
            Some("HELLO"),
            "across chunks, the rest dropped"
        );
        assert_eq!(
            filtered(five, &[], &["hel", "lo"]).as_deref(),
            Some("HELLO"),
            "exactly the limit: whole"
        );
        let small = json!({"filters": [{"regex": "a", "replace": "b"}], "max_resp_body_size": 4});
        assert_eq!(
            filtered(small.clone(), &[], &["aa", "aaa", "a"]).as_deref(),
            Some("baaa")
        );
        assert_eq!(
            filtered(small, &[], &["ca"]).as_deref(),
            Some("cb"),
            "under the limit"
        );
    }
}
