//! The log entry the logger plugins (`file-logger`, `http-logger`) write for a request.
//!
//! Without `log_format`, APISIX's default entry: `request` {`method`, `uri` (as received, with
//! the query), `url` (`scheme://host:port` + uri), `headers` (lowercase names, repeated headers as
//! arrays), `querystring` (decoded; repeated keys as arrays, a bare key as `true`)}, `response`
//! {`status`, `size` (body bytes sent), `headers`}, `server` {`hostname`, `version`}, `upstream`
//! (the node's `host:port`, left out when no node answered), `latency` (ms, float), `client_ip`,
//! `route_id`, `service_id` (`""` when none), `route_name` (when set) and `start_time` (ms since
//! the epoch). The request size is not known and left out. `log_format_extra` (an object,
//! resolved as `log_format`) adds its fields to the default entry, never replacing one.
//!
//! Bodies ([`Bodies`]): with `include_req_body` the entry's `request.body` is the request body
//! (its first `max_req_body_bytes` bytes; read into memory by the logger's `rewrite` phase: a
//! body longer than [`DEFAULT_MAX_BODY_BYTES`] and than that cap streams upstream and is left
//! out), with `include_resp_body`
//! `response.body` is the response body as sent before any content encoding (its first
//! `max_resp_body_bytes` bytes). Their `include_*_body_expr` conditions are evaluated on the
//! request's variables in `rewrite`.
//!
//! With `log_format` (an object), the entry has exactly its fields: a string `"$name"` is the
//! request variable `name` (JSON `null` when unset), nested objects are resolved the same way and
//! anything else is kept as given. Variables known when the request ends: `status`,
//! `body_bytes_sent` / `bytes_sent`, `request_time` (seconds, ms precision), `upstream_addr`,
//! `route_id`, `route_name`, `service_id`, `remote_addr`, `host`, `request_uri`,
//! `request_method`, `msec` (now, seconds with ms); any other (`http_*`, `arg_*`, `scheme`,
//! `uri`, ...) is read from the request when the logger's `rewrite` phase runs and kept in the
//! request state until `log`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Map, Value};

use model::expr::Expr;
use plugin_api::{BodyFilter, LogCtx, RequestCtx, ResponseCtx};

/// How entries are made: APISIX's default object or a `log_format`.
pub struct Format {
    /// The `log_format`, if given.
    custom: Option<Map<String, Value>>,
    /// `log_format_extra`: fields added to the default entry.
    extra: Option<Map<String, Value>>,
    /// The variables of `custom` read in `rewrite` (the ones not known at `log`).
    request_vars: Vec<String>,
    bodies: Bodies,
}

/// The bodies an entry carries: `include_req_body` and `include_resp_body`, each with its
/// `include_*_body_expr` condition and its byte cap.
#[derive(Default)]
pub struct Bodies {
    request: Option<BodyRule>,
    response: Option<BodyRule>,
}

struct BodyRule {
    when: Option<Expr>,
    max: usize,
}

/// One body setting of a logger's config.
pub struct BodyConf<'a> {
    /// `include_req_body` / `include_resp_body`.
    pub include: bool,
    /// `include_req_body_expr` / `include_resp_body_expr`.
    pub expr: Option<&'a [Vec<Value>]>,
    /// `max_req_body_bytes` / `max_resp_body_bytes`.
    pub max: u64,
}

/// APISIX's default `max_req_body_bytes` and `max_resp_body_bytes`.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 524_288;

impl Bodies {
    /// The body settings of a logger.
    ///
    /// # Errors
    /// APISIX's message for an `_expr` that does not compile (checked even when its body is not
    /// included).
    pub fn new(request: BodyConf<'_>, response: BodyConf<'_>) -> Result<Bodies, String> {
        let rule = |conf: BodyConf<'_>, field: &str| -> Result<Option<BodyRule>, String> {
            if conf.max == 0 {
                return Err(format!("max_{field}_bytes must be at least 1"));
            }
            if conf.expr.is_some_and(<[_]>::is_empty) {
                return Err(format!("include_{field}_expr must not be empty"));
            }
            let when = conf
                .expr
                .map(|rule| {
                    Expr::compile(&Value::Array(
                        rule.iter().map(|e| Value::Array(e.clone())).collect(),
                    ))
                })
                .transpose()
                .map_err(|e| {
                    format!("failed to validate the 'include_{field}_expr' expression: {e}")
                })?;
            Ok(conf.include.then(|| BodyRule {
                when,
                max: usize::try_from(conf.max).unwrap_or(usize::MAX),
            }))
        };
        Ok(Bodies {
            request: rule(request, "req_body")?,
            response: rule(response, "resp_body")?,
        })
    }
}

/// The bodies of one request, shared by its loggers: which loggers (by [`Format::id`]) include
/// which body, and the bodies.
#[derive(Clone, Default)]
struct BodyState {
    request_for: Vec<usize>,
    request: Option<Bytes>,
    response_for: Vec<usize>,
    /// The largest `max_resp_body_bytes` of `response_for`.
    response_max: usize,
    response: Option<Arc<Mutex<Vec<u8>>>>,
}

/// Copies the first bytes of a response body as it streams.
struct Tap {
    kept: Arc<Mutex<Vec<u8>>>,
    max: usize,
}

impl BodyFilter for Tap {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.max.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        chunk
    }

    fn finish(&mut self) -> Bytes {
        Bytes::new()
    }
}

/// The first `max` bytes of `body`, as text.
fn body_text(body: &[u8], max: usize) -> Value {
    json!(String::from_utf8_lossy(&body[..body.len().min(max)]))
}

/// Request facts captured by a logger's `rewrite` phase, shared by every logger of the request.
#[derive(Clone, Default)]
struct Captured {
    scheme: Option<String>,
    server_port: Option<String>,
    headers: Option<Value>,
    vars: HashMap<String, Option<String>>,
}

/// The response headers, captured by `header_filter`.
#[derive(Clone)]
struct ResponseHeaders(Value);

/// Variables resolved from the log context itself.
const LOG_VARS: &[&str] = &[
    "status",
    "body_bytes_sent",
    "bytes_sent",
    "request_time",
    "upstream_addr",
    "route_id",
    "route_name",
    "service_id",
    "remote_addr",
    "host",
    "request_uri",
    "request_method",
    "msec",
];

impl Format {
    /// A format from a `log_format` config (or the default one without it).
    ///
    /// # Errors
    /// When a `$` variable has no name.
    pub fn new(log_format: Option<Map<String, Value>>) -> Result<Format, String> {
        Format::with(log_format, None, Bodies::default())
    }

    /// A format with `log_format_extra` fields and the bodies to include.
    ///
    /// # Errors
    /// When a `$` variable has no name.
    pub fn with(
        log_format: Option<Map<String, Value>>,
        extra: Option<Map<String, Value>>,
        bodies: Bodies,
    ) -> Result<Format, String> {
        let mut request_vars = Vec::new();
        for map in [&log_format, &extra].into_iter().flatten() {
            collect_vars(map, &mut request_vars)?;
        }
        request_vars.sort();
        request_vars.dedup();
        // Read once, off the request path.
        hostname();
        Ok(Format {
            custom: log_format,
            extra: extra.filter(|e| !e.is_empty()),
            request_vars,
            bodies,
        })
    }

    /// This format's identity among a request's loggers.
    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Reads what the entry needs of the request body, when it includes it (`rewrite` phase,
    /// after [`Format::capture`]); also decides whether it includes the response body.
    pub async fn capture_bodies(&self, req: &mut RequestCtx<'_>) {
        let wants = |rule: &Option<BodyRule>| {
            rule.as_ref()
                .filter(|r| r.when.as_ref().is_none_or(|w| w.eval(req.vars)))
                .map(|r| r.max)
        };
        let (request, response) = (wants(&self.bodies.request), wants(&self.bodies.response));
        if request.is_none() && response.is_none() {
            return;
        }
        let mut state = req.state.remove::<BodyState>().unwrap_or_default();
        if let Some(max) = response {
            state.response_for.push(self.id());
            state.response_max = state.response_max.max(max);
        }
        if let Some(max) = request {
            state.request_for.push(self.id());
            // Held in memory (up to the default cap, or this logger's when larger); a longer
            // body streams upstream untouched.
            let hold = max.max(DEFAULT_MAX_BODY_BYTES as usize);
            if state.request.is_none() && req.body.hold(hold).await {
                state.request = req.body.read(hold).await.ok();
            }
        }
        req.state.insert(state);
    }

    /// Keeps what the entry needs from the request (`rewrite` phase).
    pub fn capture(&self, req: &mut RequestCtx<'_>) {
        let mut captured = req.state.remove::<Captured>().unwrap_or_default();
        if self.custom.is_none() && captured.headers.is_none() {
            captured.scheme = req.vars.get("scheme").map(|v| v.into_owned());
            captured.server_port = req.vars.get("server_port").map(|v| v.into_owned());
            captured.headers = Some(headers_json(req.headers));
        }
        for name in &self.request_vars {
            if !captured.vars.contains_key(name) {
                let value = req.vars.get(name).map(|v| v.into_owned());
                captured.vars.insert(name.clone(), value);
            }
        }
        req.state.insert(captured);
    }

    /// Keeps the response headers (`header_filter` phase; default format only).
    pub fn capture_response(&self, resp: &mut ResponseCtx<'_>) {
        if self.custom.is_none() && resp.state.get::<ResponseHeaders>().is_none() {
            resp.state
                .insert(ResponseHeaders(headers_json(resp.headers)));
        }
        if let Some(state) = resp.state.get_mut::<BodyState>() {
            if state.response.is_none() && state.response_for.contains(&self.id()) {
                let kept = Arc::new(Mutex::new(Vec::new()));
                state.response = Some(kept.clone());
                let max = state.response_max;
                resp.body_filters.push(Box::new(Tap { kept, max }));
            }
        }
    }

    /// The entry for a finished request.
    pub fn entry(&self, done: &LogCtx<'_>) -> Value {
        let captured = done.state.get::<Captured>();
        let Some(custom) = &self.custom else {
            let mut entry = default_entry(done, captured, done.state.get::<ResponseHeaders>());
            self.add_bodies(&mut entry, done.state.get::<BodyState>());
            if let (Some(extra), Value::Object(fields)) = (&self.extra, &mut entry) {
                if let Value::Object(added) = resolve(extra, done, captured) {
                    for (field, value) in added {
                        fields.entry(field).or_insert(value);
                    }
                }
            }
            return entry;
        };
        resolve(custom, done, captured)
    }

    /// `request.body` and `response.body` of a default entry, for the bodies it includes.
    fn add_bodies(&self, entry: &mut Value, state: Option<&BodyState>) {
        let Some(state) = state else {
            return;
        };
        let id = self.id();
        if let (Some(rule), Some(body)) = (&self.bodies.request, &state.request) {
            if state.request_for.contains(&id) {
                entry["request"]["body"] = body_text(body, rule.max);
            }
        }
        if let (Some(rule), Some(body)) = (&self.bodies.response, &state.response) {
            if state.response_for.contains(&id) {
                let body = body.lock().unwrap_or_else(PoisonError::into_inner);
                entry["response"]["body"] = body_text(&body, rule.max);
            }
        }
    }
}

fn collect_vars(map: &Map<String, Value>, out: &mut Vec<String>) -> Result<(), String> {
    for (field, value) in map {
        match value {
            Value::String(s) => {
                if let Some(name) = s.strip_prefix('$') {
                    if name.is_empty() {
                        return Err(format!("log_format: field `{field}` names no variable"));
                    }
                    if !LOG_VARS.contains(&name) {
                        out.push(name.to_owned());
                    }
                }
            }
            Value::Object(inner) => collect_vars(inner, out)?,
            _ => {}
        }
    }
    Ok(())
}

fn resolve(map: &Map<String, Value>, done: &LogCtx<'_>, captured: Option<&Captured>) -> Value {
    let mut out = Map::with_capacity(map.len());
    for (field, value) in map {
        let resolved = match value {
            Value::String(s) => match s.strip_prefix('$') {
                Some(name) => var(name, done, captured).map_or(Value::Null, Value::String),
                None => value.clone(),
            },
            Value::Object(inner) => resolve(inner, done, captured),
            other => other.clone(),
        };
        out.insert(field.clone(), resolved);
    }
    Value::Object(out)
}

/// The text of variable `name` for a finished request.
fn var(name: &str, done: &LogCtx<'_>, captured: Option<&Captured>) -> Option<String> {
    let r = done.request;
    Some(match name {
        "status" => done.status.as_u16().to_string(),
        "body_bytes_sent" | "bytes_sent" => done.bytes_sent.to_string(),
        "request_time" => seconds(done.latency),
        "upstream_addr" => done.upstream?.to_owned(),
        "route_id" => r.route_id.clone(),
        "route_name" => r.route_name.clone()?,
        "service_id" => r.service_id.clone()?,
        "remote_addr" => r.client.to_string(),
        "host" => r.host.clone(),
        "request_uri" => r.uri.clone(),
        "request_method" => r.method.to_string(),
        "msec" => seconds(now()),
        _ => captured?.vars.get(name)?.clone()?,
    })
}

fn default_entry(
    done: &LogCtx<'_>,
    captured: Option<&Captured>,
    response_headers: Option<&ResponseHeaders>,
) -> Value {
    let r = done.request;
    let latency_ms = done.latency.as_secs_f64() * 1000.0;
    let start = now().saturating_sub(done.latency);
    let mut request = Map::new();
    request.insert("method".to_owned(), json!(r.method.as_str()));
    request.insert("uri".to_owned(), json!(r.uri));
    let scheme = captured.and_then(|c| c.scheme.as_deref()).unwrap_or("http");
    let url = match captured.and_then(|c| c.server_port.as_deref()) {
        Some(port) => format!("{scheme}://{}:{port}{}", r.host, r.uri),
        None => format!("{scheme}://{}{}", r.host, r.uri),
    };
    request.insert("url".to_owned(), json!(url));
    if let Some(headers) = captured.and_then(|c| c.headers.as_ref()) {
        request.insert("headers".to_owned(), headers.clone());
    }
    if let Some((_, query)) = r.uri.split_once('?') {
        request.insert("querystring".to_owned(), querystring(query));
    }
    let mut response = Map::new();
    response.insert("status".to_owned(), json!(done.status.as_u16()));
    response.insert("size".to_owned(), json!(done.bytes_sent));
    if let Some(ResponseHeaders(h)) = response_headers {
        response.insert("headers".to_owned(), h.clone());
    }
    let mut entry = Map::new();
    entry.insert("request".to_owned(), Value::Object(request));
    entry.insert("response".to_owned(), Value::Object(response));
    entry.insert(
        "server".to_owned(),
        json!({"hostname": hostname(), "version": env!("CARGO_PKG_VERSION")}),
    );
    if let Some(up) = done.upstream {
        entry.insert("upstream".to_owned(), json!(up));
    }
    entry.insert("latency".to_owned(), json!(latency_ms));
    entry.insert("client_ip".to_owned(), json!(r.client.to_string()));
    entry.insert("route_id".to_owned(), json!(r.route_id));
    entry.insert(
        "service_id".to_owned(),
        json!(r.service_id.as_deref().unwrap_or("")),
    );
    if let Some(name) = &r.route_name {
        entry.insert("route_name".to_owned(), json!(name));
    }
    entry.insert(
        "start_time".to_owned(),
        json!(u64::try_from(start.as_millis()).unwrap_or(u64::MAX)),
    );
    Value::Object(entry)
}

/// Headers as a JSON object: lowercase names, a repeated header as an array of its values.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| json!(String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let value = if values.len() == 1 {
            values.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        out.insert(name.as_str().to_owned(), value);
    }
    Value::Object(out)
}

/// A query string as APISIX's `get_uri_args`: decoded values, a bare key is `true`, a repeated
/// key is an array.
fn querystring(query: &str) -> Value {
    let mut out = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.split_once('=') {
            Some((k, v)) => (decode(k), json!(decode(v))),
            None => (decode(pair), Value::Bool(true)),
        };
        match out.get_mut(&key) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                out.insert(key, value);
            }
        }
    }
    Value::Object(out)
}

fn decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Seconds with millisecond precision (`1.234`).
fn seconds(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// This machine's name (read once).
pub fn hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, StatusCode};
    use plugin_api::testing::Fake;
    use plugin_api::{RequestSummary, Rewrite};

    fn summary() -> RequestSummary {
        RequestSummary {
            method: Method::POST,
            uri: "/a?x=1&x=2&flag&s=a%20b".to_owned(),
            host: "api.test".to_owned(),
            client: "10.0.0.9".parse().expect("ip"),
            route_id: "r1".to_owned(),
            service_id: None,
            route_name: Some("named".to_owned()),
            service_name: None,
            matched_uri: "/a".to_owned(),
            matched_host: String::new(),
            request_length: 120,
        }
    }

    fn entry(format: &Format, fake: &mut Fake) -> Value {
        let mut ctx = RequestCtx {
            vars: &fake.vars,
            client: "10.0.0.9".parse().expect("ip"),
            client_set: &fake.client_set,
            headers: &mut fake.headers,
            response_headers: &mut fake.response_headers,
            rewrite: &mut Rewrite::default(),
            consumers: &fake.consumers,
            consumer: &mut fake.consumer,
            state: &mut fake.state,
            body: &mut fake.body,
        };
        format.capture(&mut ctx);
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().expect("value"));
        let mut status = StatusCode::OK;
        format.capture_response(&mut ResponseCtx {
            status: &mut status,
            headers: &mut headers,
            replace_body: &mut None,
            body_filters: &mut Vec::new(),
            encoding: &mut None,
            state: &mut fake.state,
        });
        let request = summary();
        format.entry(&LogCtx {
            status: StatusCode::CREATED,
            request: &request,
            bytes_sent: 12,
            latency: Duration::from_millis(1500),
            upstream: Some("127.0.0.1:8080"),
            upstream_status: Some(StatusCode::CREATED),
            state: &fake.state,
            consumer_name: None,
            outcome: plugin_api::Outcome::Upstream,
        })
    }

    #[test]
    fn the_default_entry_has_apisix_shape() {
        let mut fake = Fake::new(&[
            ("scheme", "http"),
            ("server_port", "9080"),
            ("http_x_a", "1"),
        ]);
        let e = entry(&Format::new(None).expect("format"), &mut fake);
        assert_eq!(e["request"]["method"], "POST");
        assert_eq!(e["request"]["uri"], "/a?x=1&x=2&flag&s=a%20b");
        assert_eq!(
            e["request"]["url"],
            "http://api.test:9080/a?x=1&x=2&flag&s=a%20b"
        );
        assert_eq!(e["request"]["headers"], json!({"x-a": "1"}));
        assert_eq!(
            e["request"]["querystring"],
            json!({"x": ["1", "2"], "flag": true, "s": "a b"})
        );
        assert_eq!(e["response"]["status"], 201);
        assert_eq!(e["response"]["size"], 12);
        assert_eq!(e["response"]["headers"]["content-type"], "text/plain");
        assert_eq!(e["upstream"], "127.0.0.1:8080");
        assert_eq!(e["latency"], 1500.0);
        assert_eq!(e["client_ip"], "10.0.0.9");
        assert_eq!(e["route_id"], "r1");
        assert_eq!(e["service_id"], "");
        assert_eq!(e["route_name"], "named");
        assert_eq!(e["server"]["version"], env!("CARGO_PKG_VERSION"));
        let start = e["start_time"].as_u64().expect("start_time");
        let now = u64::try_from(now().as_millis()).expect("ms");
        assert!(start <= now - 1500 && start + 5000 > now, "{start} {now}");
    }

    #[test]
    fn log_format_resolves_variables() {
        let format = Format::new(Some(
            json!({
                "st": "$status", "ua": "$http_user_agent", "missing": "$http_none",
                "lit": "text", "n": 5, "nested": {"route": "$route_id", "t": "$request_time"},
                "up": "$upstream_addr", "uri": "$request_uri", "addr": "$remote_addr"
            })
            .as_object()
            .cloned()
            .expect("object"),
        ))
        .expect("format");
        assert_eq!(format.request_vars, vec!["http_none", "http_user_agent"]);
        let mut fake = Fake::new(&[("http_user_agent", "curl/8")]);
        let e = entry(&format, &mut fake);
        assert_eq!(
            e,
            json!({
                "st": "201", "ua": "curl/8", "missing": null, "lit": "text", "n": 5,
                "nested": {"route": "r1", "t": "1.500"}, "up": "127.0.0.1:8080",
                "uri": "/a?x=1&x=2&flag&s=a%20b", "addr": "10.0.0.9"
            })
        );
        assert!(Format::new(json!({"a": "$"}).as_object().cloned()).is_err());
    }

    #[test]
    fn an_entry_without_captured_state_uses_the_summary() {
        let request = summary();
        let state = http::Extensions::new();
        let e = Format::new(None).expect("format").entry(&LogCtx {
            status: StatusCode::FORBIDDEN,
            request: &request,
            bytes_sent: 0,
            latency: Duration::ZERO,
            upstream: None,
            upstream_status: None,
            state: &state,
            consumer_name: None,
            outcome: plugin_api::Outcome::Plugin,
        });
        assert_eq!(
            e["request"]["url"],
            "http://api.test/a?x=1&x=2&flag&s=a%20b"
        );
        assert!(e.get("upstream").is_none());
        assert!(e["request"].get("headers").is_none());
        assert_eq!(e["response"]["status"], 403);
    }
}
