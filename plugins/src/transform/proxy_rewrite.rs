//! `proxy-rewrite` (priority 1008, rewrite): change the request that goes upstream.
//!
//! Config (at least one field):
//! - `uri`: the new path (1-4096 characters, starting with `/`); `$name` / `${name}` are
//!   replaced by request variables (the first `?` in a variable's value is escaped as `%3F`,
//!   so only the template itself can start a query; as APISIX, the path is escaped after that,
//!   `%` included);
//! - `regex_uri`: `[regex, template, regex, template, ...]`: the first regex that matches the
//!   request path (`uri`) has its first match replaced by its template (`$1`, `${1}` captures,
//!   `$0` the match, `$$` a `$`); no match keeps the path. With `uri` also set, as APISIX, it
//!   is still validated but `uri` wins and `regex_uri` is ignored;
//! - `method`: one of GET POST PUT HEAD DELETE OPTIONS MKCOL COPY MOVE PROPFIND LOCK UNLOCK
//!   PATCH TRACE;
//! - `host`: the upstream `Host` (`name` or `name:port`); wins over the upstream's `pass_host`;
//! - `headers`: `{add: {name: value}, set: {name: value}, remove: [name]}` (applied in that
//!   order), or the legacy flat map `{name: value}` (= `set`). In `add` and `set` an array of
//!   values sends the header once per value. Values are strings or numbers with
//!   `$name` request variables and `$1` captures of the matching `regex_uri`; a `set` value that
//!   resolves to the empty string removes the header (as nginx), an empty `add` adds nothing;
//! - `use_real_request_uri_unsafe` (default false): start from the request URI as received
//!   (`request_uri`, with its query) instead of the normalised path, and send the result as is:
//!   no escaping; a `uri` template gets the received query appended as it came.
//!
//! As APISIX, the new path is escaped (up to a `?` the `uri` template wrote) and the request's
//! query string is appended (with `&` when the new URI has a query already). A rewritten URI that
//! is not a valid request target (only possible with `use_real_request_uri_unsafe`) is answered
//! with 500.
//!
//! Later plugins still see the request's own variables (`uri`, `http_*`, ...), not the
//! rewritten ones: the runtime keeps request variables as received.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, StatusCode};
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::support::headers::{
    apply_headers, header_name, header_names, header_template, HeaderOps,
};
use crate::support::regex_uri::{parse_template, substitute, Part};
use model::template::{Syntax, Template};
use plugin_api::schema::Raw;
use plugin_api::Vars;
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, PluginError, RequestCtx};

/// The kind.
pub struct ProxyRewrite;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    #[schemars(length(min = 1, max = 4096), regex(pattern = r"^\/.*"))]
    uri: Option<String>,
    #[schemars(length(min = 2))]
    regex_uri: Option<Vec<String>>,
    #[schemars(extend("enum" = METHODS))]
    method: Option<String>,
    host: Option<String>,
    headers: Option<Map<String, Value>>,
    use_real_request_uri_unsafe: Option<bool>,
}

/// APISIX's `method` enum for this plugin.
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "MKCOL", "COPY", "MOVE", "PROPFIND", "LOCK",
    "UNLOCK", "PATCH", "TRACE",
];

/// Where the new path comes from.
enum PathRule {
    /// The request's own.
    Keep,
    /// A `uri` template.
    Template(Template),
    /// `regex_uri` pairs.
    Regex(Vec<(Regex, Vec<Part>)>),
}

/// A configured instance (the checked config).
pub struct Instance {
    path: PathRule,
    unsafe_uri: bool,
    method: Option<Method>,
    host: Option<HeaderValue>,
    headers: HeaderOps,
}

impl Kind for ProxyRewrite {
    type Conf = Raw<Conf>;
    type Checked = Instance;
    const NAME: &'static str = "proxy-rewrite";
    const PRIORITY: i32 = 1008;

    fn check(&self, conf: Raw<Conf>) -> Result<Instance, String> {
        if conf.raw.as_object().is_some_and(Map::is_empty) {
            return Err("at least one of uri, regex_uri, method, host, headers or use_real_request_uri_unsafe is required".to_owned());
        }
        instance(conf.conf)
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

/// The `[regex, template, ...]` pairs of `regex_uri`.
fn regex_pairs(list: &[String]) -> Result<Vec<(Regex, Vec<Part>)>, String> {
    if list.len() < 2 || list.len() % 2 != 0 {
        return Err(
            "regex_uri must be [regex, template, ...]: an even number of strings, at least 2"
                .to_owned(),
        );
    }
    list.chunks(2)
        .map(|pair| {
            let (regex, template) = (&pair[0], &pair[1]);
            let re = Regex::new(regex)
                .map_err(|e| format!("invalid regex_uri({regex}, {template}): {e}"))?;
            let parts = parse_template(template, re.captures_len() - 1)
                .map_err(|e| format!("invalid regex_uri({regex}, {template}): {e}"))?;
            Ok((re, parts))
        })
        .collect()
}

fn instance(conf: Conf) -> Result<Instance, String> {
    // As APISIX, `regex_uri` is checked even when `uri` is also set, but `uri` then wins and
    // `regex_uri` is not applied (nor are its captures taken).
    let regex = conf.regex_uri.map(|list| regex_pairs(&list)).transpose()?;
    let path = match (conf.uri, regex) {
        (Some(uri), _) => {
            let len = uri.chars().count();
            if !uri.starts_with('/') || len > 4096 {
                return Err(format!(
                    "uri must start with `/` and be at most 4096 characters, got `{uri}`"
                ));
            }
            PathRule::Template(Template::parse(&uri, Syntax::KeepEscape))
        }
        (None, Some(pairs)) => PathRule::Regex(pairs),
        (None, None) => PathRule::Keep,
    };
    let method = conf
        .method
        .map(|m| {
            if METHODS.contains(&m.as_str()) {
                Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string())
            } else {
                Err(format!(
                    "method must be one of {}, got `{m}`",
                    METHODS.join(", ")
                ))
            }
        })
        .transpose()?;
    let host = conf
        .host
        .map(|h| {
            if valid_host(&h) {
                HeaderValue::from_str(&h).map_err(|e| e.to_string())
            } else {
                Err(format!("host must be `name` or `name:port`, got `{h}`"))
            }
        })
        .transpose()?;
    let headers = match conf.headers {
        Some(map) => parse_headers(&map)?,
        None => HeaderOps::default(),
    };
    Ok(Instance {
        path,
        unsafe_uri: conf.use_real_request_uri_unsafe.unwrap_or(false),
        method,
        host,
        headers,
    })
}

/// APISIX's `^[0-9a-zA-Z-.]+(:\d{1,5})?$`.
fn valid_host(host: &str) -> bool {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && port.is_none_or(|p| (1..=5).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
}

/// `name: value` pairs of an object.
fn header_map(map: &Value, field: &str) -> Result<Vec<(HeaderName, Template)>, String> {
    let Some(map) = map.as_object() else {
        return Err(format!("headers.{field} must be an object"));
    };
    if map.is_empty() {
        return Err(format!("headers.{field} must not be empty"));
    }
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let name = header_name(k)?;
        match v {
            // Several values: the header once per value.
            Value::Array(items) if !items.is_empty() => {
                for item in items {
                    out.push((name.clone(), header_template(item)?));
                }
            }
            _ => out.push((name, header_template(v)?)),
        }
    }
    Ok(out)
}

/// `headers`: the `{add, set, remove}` form, or the legacy flat map (= set).
fn parse_headers(map: &Map<String, Value>) -> Result<HeaderOps, String> {
    if map.is_empty() {
        return Err("headers must not be empty".to_owned());
    }
    let new_form = ["add", "set", "remove"]
        .iter()
        .any(|k| map.get(*k).is_some_and(|v| v.is_object() || v.is_array()));
    if !new_form {
        let set = map
            .iter()
            .map(|(k, v)| Ok((header_name(k)?, header_template(v)?)))
            .collect::<Result<_, String>>()?;
        return Ok(HeaderOps {
            set,
            ..HeaderOps::default()
        });
    }
    let mut ops = HeaderOps::default();
    for (key, value) in map {
        match key.as_str() {
            "add" => ops.add = header_map(value, "add")?,
            "set" => ops.set = header_map(value, "set")?,
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

/// Request variables with the first `?` of a value escaped (for the `uri` template), as
/// APISIX's `escape_separator`.
struct EscapeQuery<'a>(&'a dyn Vars);

impl Vars for EscapeQuery<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let value = self.0.get(name)?;
        Some(if value.contains('?') {
            Cow::Owned(value.replacen('?', "%3F", 1))
        } else {
            value
        })
    }
}

/// Request variables, with `$N` answered by the `regex_uri` captures.
struct WithCaptures<'a> {
    vars: &'a dyn Vars,
    captures: &'a [String],
}

impl Vars for WithCaptures<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            let n: usize = name.parse().ok()?;
            return self.captures.get(n).map(|c| Cow::Borrowed(c.as_str()));
        }
        self.vars.get(name)
    }
}

/// The query a template wrote, its delimiters kept, with control characters (CR, LF, ...)
/// percent-encoded so they cannot reach the upstream request line, as APISIX.
fn escape_controls(query: &str) -> Cow<'_, str> {
    if !query.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len() + 8);
    for c in query.chars() {
        if c.is_ascii_control() {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

impl Instance {
    /// The new upstream URI, if it changes, and the captures of the matching `regex_uri`.
    fn upstream_uri(&self, vars: &dyn Vars) -> (Option<String>, Vec<String>) {
        let base = if self.unsafe_uri {
            vars.get("request_uri")
        } else {
            vars.get("uri")
        }
        .unwrap_or_default();
        let mut captures = Vec::new();
        // The new URI, and whether a `?` in it starts a query.
        let (uri, query_in_uri) = match &self.path {
            PathRule::Template(t) => (t.render(&EscapeQuery(vars)), true),
            PathRule::Regex(pairs) => {
                let hit = pairs
                    .iter()
                    .find_map(|(re, parts)| re.captures(&base).map(|caps| (caps, parts)));
                match hit {
                    Some((caps, parts)) => {
                        captures = caps
                            .iter()
                            .map(|m| m.map_or_else(String::new, |m| m.as_str().to_owned()))
                            .collect();
                        (substitute(&base, &caps, parts), !base.contains('?'))
                    }
                    None if self.unsafe_uri => (base.to_string(), false),
                    None => return (None, captures),
                }
            }
            PathRule::Keep if self.unsafe_uri => (base.to_string(), false),
            PathRule::Keep => return (None, captures),
        };
        if self.unsafe_uri {
            // As APISIX: a `uri` template keeps the query of the request as received, merged
            // with `&` when the template wrote a query of its own.
            let query = match (&self.path, base.find('?')) {
                (PathRule::Template(_), Some(at)) => &base[at + 1..],
                _ => return (Some(uri), captures),
            };
            let joiner = if uri.contains('?') { '&' } else { '?' };
            return (Some(format!("{uri}{joiner}{query}")), captures);
        }
        let query_at = if query_in_uri { uri.find('?') } else { None };
        let mut out = match query_at {
            Some(at) => format!(
                "{}{}",
                plugin_api::path::encode(&uri[..at]),
                escape_controls(&uri[at..])
            ),
            None => plugin_api::path::encode(&uri).into_owned(),
        };
        if let Some(args) = vars.get("query_string") {
            out.push(if query_at.is_some() { '&' } else { '?' });
            out.push_str(&args);
        }
        (Some(out), captures)
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        let (uri, captures) = self.upstream_uri(req.vars);
        if let Some(uri) = uri {
            match PathAndQuery::try_from(uri) {
                Ok(pq) => req.rewrite.path_and_query = Some(pq),
                Err(e) => {
                    return Flow::Fail(PluginError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the new upstream URI is invalid: {e}"),
                    ))
                }
            }
        }
        if let Some(method) = &self.method {
            req.rewrite.method = Some(method.clone());
        }
        if let Some(host) = &self.host {
            req.rewrite.host = Some(host.clone());
        }
        let vars = WithCaptures {
            vars: req.vars,
            captures: &captures,
        };
        apply_headers(&self.headers, req.headers, &vars);
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::{header, Fake};
    use plugin_api::PluginKind;
    use serde_json::json;

    async fn run(conf: Value, vars: &[(&'static str, &'static str)]) -> Fake {
        let plugin = ProxyRewrite.build(&conf).expect("valid");
        let mut fake = Fake::new(vars);
        assert!(fake.rewrite(&*plugin).await.is_none(), "passes");
        fake
    }

    fn target(fake: &Fake) -> Option<&str> {
        fake.rewrite
            .path_and_query
            .as_ref()
            .map(PathAndQuery::as_str)
    }

    #[tokio::test]
    async fn uri_with_variables_keeps_the_query() {
        let fake = run(
            json!({"uri": "/new/$arg_id/${host}"}),
            &[
                ("uri", "/old"),
                ("arg_id", "7"),
                ("host", "h.com"),
                ("query_string", "id=7&x"),
            ],
        )
        .await;
        assert_eq!(target(&fake), Some("/new/7/h.com?id=7&x"));

        let fake = run(json!({"uri": "/new?k=v"}), &[("query_string", "a=1")]).await;
        assert_eq!(target(&fake), Some("/new?k=v&a=1"), "appended with &");
        let fake = run(json!({"uri": "/new?k=v"}), &[]).await;
        assert_eq!(target(&fake), Some("/new?k=v"));
        let fake = run(json!({"uri": "/a b/ü/$arg_q"}), &[("arg_q", "x?y")]).await;
        assert_eq!(
            target(&fake),
            Some("/a%20b/%C3%BC/x%253Fy"),
            "a variable cannot start a query: its `?` is escaped, then the path (as APISIX)"
        );
        assert!(fake.rewrite.method.is_none() && fake.rewrite.host.is_none());
    }

    #[tokio::test]
    async fn regex_uri() {
        let conf =
            json!({"regex_uri": ["^/api/(.*)/v([0-9])$", "/v$2/${1}", "^/old/(.*)", "/new/$1"]});
        let fake = run(
            conf.clone(),
            &[("uri", "/api/users/v2"), ("query_string", "a=1")],
        )
        .await;
        assert_eq!(target(&fake), Some("/v2/users?a=1"));
        let fake = run(conf.clone(), &[("uri", "/old/x")]).await;
        assert_eq!(target(&fake), Some("/new/x"), "the second pair");
        let fake = run(conf, &[("uri", "/other")]).await;
        assert_eq!(target(&fake), None, "no match: the request's own");
        let fake = run(json!({"regex_uri": ["b+", "[$0]"]}), &[("uri", "/abbc/b")]).await;
        assert_eq!(target(&fake), Some("/a[bb]c/b"), "first match only");
        let fake = run(
            json!({"regex_uri": ["^/(.*)", "/x/$1"]}),
            &[("uri", "/a?b")],
        )
        .await;
        assert_eq!(
            target(&fake),
            Some("/x/a%3Fb"),
            "a decoded `?` in the path is escaped"
        );
    }

    #[tokio::test]
    async fn uri_wins_over_regex_uri() {
        // proxy-rewrite.t TEST 24/25: both set, `uri` is used and `regex_uri` is not applied.
        let fake = run(
            json!({"uri": "/hello", "regex_uri": ["^/test/(.*)", "/${1}1"], "headers": {"X-C": "$1"}}),
            &[("uri", "/test/hello")],
        )
        .await;
        assert_eq!(target(&fake), Some("/hello"));
        assert!(fake.headers.get("x-c").is_none(), "no regex_uri captures");
    }

    #[tokio::test]
    async fn real_request_uri() {
        let vars = [
            ("uri", "/a/b"),
            ("request_uri", "/a/%2e%2e/b?q=1"),
            ("query_string", "q=1"),
        ];
        let fake = run(json!({"use_real_request_uri_unsafe": true}), &vars).await;
        assert_eq!(target(&fake), Some("/a/%2e%2e/b?q=1"), "as received");
        let fake = run(
            json!({"regex_uri": ["^/a/(.*)", "/z/$1"], "use_real_request_uri_unsafe": true}),
            &vars,
        )
        .await;
        assert_eq!(
            target(&fake),
            Some("/z/%2e%2e/b?q=1"),
            "not escaped, no query appended"
        );
        let fake = run(
            json!({"uri": "/n", "use_real_request_uri_unsafe": false}),
            &vars,
        )
        .await;
        assert_eq!(target(&fake), Some("/n?q=1"));
        let plugin = ProxyRewrite
            .build(&json!({"uri": "/$arg_x", "use_real_request_uri_unsafe": true}))
            .expect("valid");
        let reply = Fake::new(&[("arg_x", "a b")])
            .rewrite(&*plugin)
            .await
            .expect("answered");
        assert_eq!(
            reply.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "not a request target"
        );
    }

    #[tokio::test]
    async fn method_and_host() {
        let fake = run(
            json!({"method": "POST", "host": "up.test:8080"}),
            &[("uri", "/")],
        )
        .await;
        assert_eq!(fake.rewrite.method, Some(Method::POST));
        assert_eq!(
            fake.rewrite.host.as_ref().map(|h| h.to_str().ok()),
            Some(Some("up.test:8080"))
        );
        assert_eq!(target(&fake), None);
        let fake = run(json!({"method": "PROPFIND"}), &[]).await;
        assert_eq!(
            fake.rewrite.method.as_ref().map(Method::as_str),
            Some("PROPFIND")
        );
    }

    #[tokio::test]
    async fn headers_add_set_remove() {
        let conf = json!({"regex_uri": ["^/u/(\\w+)", "/user"], "headers": {
            "add": {"X-Add": "a-$1", "X-Keep": "2", "X-Empty": ""},
            "set": {"X-Set": "$host", "X-Keep-Set": 10, "X-Gone": ""},
            "remove": ["X-Remove"],
        }});
        let fake = run(
            conf,
            &[
                ("uri", "/u/bob"),
                ("host", "h.com"),
                ("http_x_keep", "1"),
                ("http_x_set", "old"),
                ("http_x_gone", "old"),
                ("http_x_remove", "r"),
                ("http_x_other", "o"),
            ],
        )
        .await;
        let h = &fake.headers;
        assert_eq!(header(h, "x-add"), Some("a-bob"), "regex_uri captures");
        let keep: Vec<_> = h
            .get_all("x-keep")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(keep, ["1", "2"], "add appends");
        assert!(h.get("x-empty").is_none(), "an empty add adds nothing");
        assert_eq!(header(h, "x-set"), Some("h.com"));
        assert_eq!(header(h, "x-keep-set"), Some("10"), "numbers");
        assert!(h.get("x-gone").is_none(), "an empty set removes");
        assert!(h.get("x-remove").is_none());
        assert_eq!(header(h, "x-other"), Some("o"));
    }

    #[tokio::test]
    async fn legacy_headers() {
        let fake = run(
            json!({"headers": {"X-Api": "v$arg_v", "X-Drop": ""}}),
            &[("arg_v", "2"), ("http_x_api", "old"), ("http_x_drop", "d")],
        )
        .await;
        assert_eq!(header(&fake.headers, "x-api"), Some("v2"), "set");
        assert!(
            fake.headers.get("x-drop").is_none(),
            "an empty value removes"
        );
        let fake = run(
            json!({"headers": {"X-Bad": "$arg_v"}}),
            &[("arg_v", "a\nb")],
        )
        .await;
        assert!(
            fake.headers.get("x-bad").is_none(),
            "an unfit value is not sent"
        );
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({"uri": "/x"}),
            json!({"regex_uri": ["^/(.*)", "/b/$1"]}),
            json!({"regex_uri": ["^/a", "/b", "^/c", "/d"]}),
            json!({"method": "GET"}),
            json!({"host": "example.com"}),
            json!({"headers": {"X-A": "1"}}),
            json!({"headers": {"add": {"X-A": 1}}}),
            json!({"headers": {"remove": ["X-A"]}}),
            json!({"use_real_request_uri_unsafe": true}),
            json!({"uri": "/x", "regex_uri": ["a", "b"]}),
        ] {
            assert!(ProxyRewrite.build(&good).is_ok(), "{good}");
        }
        for bad in [
            json!({}),
            json!({"uri": "x"}),
            json!({"uri": "/x", "regex_uri": ["a"]}),
            json!({"uri": "/x", "regex_uri": ["(bad", "b"]}),
            json!({"regex_uri": ["a"]}),
            json!({"regex_uri": ["a", "b", "c"]}),
            json!({"regex_uri": ["(bad", "b"]}),
            json!({"regex_uri": ["(a)", "$2"]}),
            json!({"method": "get"}),
            json!({"method": "CONNECT"}),
            json!({"host": "a b"}),
            json!({"host": "a.com:123456"}),
            json!({"host": "http://a.com"}),
            json!({"headers": {}}),
            json!({"headers": {"X:A": "1"}}),
            json!({"headers": {"X-A": true}}),
            json!({"headers": {"X-A": "a\nb"}}),
            json!({"headers": {"add": {}}}),
            json!({"headers": {"add": {"X-A": "1"}, "X-B": "2"}}),
            json!({"headers": {"remove": ["X:A"]}}),
            json!({"use_real_request_uri_unsafe": "yes"}),
            json!({"uri": "/x", "extra": 1}),
        ] {
            assert!(ProxyRewrite.build(&bad).is_err(), "{bad}");
        }
    }
}
