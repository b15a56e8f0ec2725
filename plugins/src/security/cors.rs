//! `cors` (priority 4000, rewrite + header_filter): Cross-Origin Resource Sharing headers.
//!
//! Config: `allow_origins` (default `*`; `*`, `**`, `null` or a comma-separated list of
//! `scheme://host[:port]`), `allow_methods` (default `*`), `allow_headers` (default `*`),
//! `expose_headers` (optional), `max_age` (seconds, default 5), `allow_credential` (default
//! false), `allow_origins_by_regex` (optional, at least one regex), `timing_allow_origins` (as
//! `allow_origins`, for `Timing-Allow-Origin`) and `timing_allow_origins_by_regex`. With
//! `allow_credential` no field may be a plain `*` (use `**` or explicit lists).
//! `allow_origins_by_metadata` (at least one name) allows the origins the plugin metadata lists
//! under those names. As in APISIX, fields the plugin does not know are accepted and ignored.
//!
//! Metadata (`plugin_metadata/cors`): `allow_origins`, an object of name -> origins, each value
//! written as `allow_origins` is (`*`, `**`, `null` or a comma-separated list). The names a route
//! uses are looked up when its chain is built: a metadata change rebuilds it.
//!
//! As APISIX: every `OPTIONS` request is answered directly with 200 and an empty body. Every
//! response (the upstream's or a plugin's) then gets the CORS headers, decided from the request's
//! `Origin`:
//! - with `allow_origins_by_metadata`, an origin allowed by one of the named metadata entries
//!   is reflected first; failing that, `allow_origins` (or its regexes) decide only when it is
//!   not `*` (a `*` beside metadata names allows nothing by itself);
//! - with `allow_origins_by_regex`, only those regexes decide: a matching origin is reflected,
//!   else no CORS headers;
//! - `**` reflects the origin (`*` without one); a list reflects a listed origin; `*` is sent
//!   as is; any other origin gets no CORS headers.
//!
//! `Access-Control-Allow-Methods` is `allow_methods` (`**`: every method), `-Allow-Headers` is
//! `allow_headers` (`**`: the request's `Access-Control-Request-Headers`), `-Max-Age`,
//! `-Expose-Headers` when set and not empty, `-Allow-Credentials: true` when allowed. `Origin`
//! joins `Vary` whenever `allow_origins` is not `*`, allowed or not. `Timing-Allow-Origin` is
//! decided the same way from the timing fields, and sent only when it is `*` or the request's
//! origin.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::support::headers::add_vary;
use plugin_api::metadata::Metadata;
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx, ResponseCtx};

/// The kind.
pub struct Cors;

#[derive(Deserialize, JsonSchema)]
pub struct Conf {
    #[serde(default = "star")]
    #[schemars(regex(pattern = ORIGINS_PATTERN))]
    allow_origins: String,
    #[serde(default = "star")]
    allow_methods: String,
    #[serde(default = "star")]
    allow_headers: String,
    expose_headers: Option<String>,
    #[serde(default = "default_max_age")]
    max_age: i64,
    #[serde(default)]
    allow_credential: bool,
    #[schemars(length(min = 1), inner(length(min = 1, max = 4096)), extend("uniqueItems" = true))]
    allow_origins_by_regex: Option<Vec<String>>,
    #[schemars(length(min = 1), inner(length(min = 1, max = 4096)), extend("uniqueItems" = true))]
    allow_origins_by_metadata: Option<Vec<String>>,
    #[schemars(regex(pattern = ORIGINS_PATTERN))]
    timing_allow_origins: Option<String>,
    #[schemars(length(min = 1), inner(length(min = 1, max = 4096)), extend("uniqueItems" = true))]
    timing_allow_origins_by_regex: Option<Vec<String>>,
}

fn star() -> String {
    "*".to_owned()
}
fn default_max_age() -> i64 {
    5
}

const ALL_METHODS: &str = "GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE";

/// How an allowed origin is decided.
#[derive(Clone)]
enum Origins {
    /// `**`: the request's origin, `*` without one.
    Any,
    /// One value (`*`, `null`, an origin), allowed when `*` or the request's own.
    Fixed(HeaderValue),
    /// Several origins: the request's when listed.
    List(Vec<String>),
    /// A `*_by_regex` field: the request's when one matches.
    Regex(Vec<Regex>),
}

/// A configured instance (the checked config).
pub struct Instance {
    origins: Origins,
    /// `allow_origins` is not `*`: `Origin` joins `Vary`.
    vary: bool,
    methods: HeaderValue,
    /// None: `**` (reflect the requested headers).
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: HeaderValue,
    credential: bool,
    timing: Option<Origins>,
    /// `allow_origins_by_metadata`: the metadata entries it names that exist, in its order
    /// (`None` without the field).
    by_metadata: Option<Vec<Origins>>,
}

/// A checked config: the instance, and the metadata names it looks up when built.
pub struct Checked {
    instance: Instance,
    metadata_names: Option<Vec<String>>,
}

/// The checked metadata: `allow_origins` by name.
pub struct CorsMetadata {
    allow_origins: std::collections::HashMap<String, Origins>,
}

/// What the request asked, kept from `rewrite` for `header_filter`.
#[derive(Clone, Default)]
struct Asked {
    origin: Option<HeaderValue>,
    request_headers: Option<HeaderValue>,
}

fn value(field: &str, text: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(text).map_err(|_| format!("{field} `{text}` is not a valid header value"))
}

impl Kind for Cors {
    type Conf = Conf;
    type Checked = Checked;
    const NAME: &'static str = "cors";
    const PRIORITY: i32 = 4000;

    fn check(&self, conf: Conf) -> Result<Checked, String> {
        if conf
            .allow_origins_by_metadata
            .as_ref()
            .is_some_and(Vec::is_empty)
        {
            return Err("allow_origins_by_metadata must not be empty".to_owned());
        }
        let metadata_names = conf.allow_origins_by_metadata.clone();
        Ok(Checked {
            instance: instance(conf)?,
            metadata_names,
        })
    }

    fn instance(&self, checked: Checked, ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        let mut instance = checked.instance;
        instance.by_metadata = checked.metadata_names.map(|names| {
            let metadata = ctx.metadata::<CorsMetadata>(Self::NAME);
            names
                .iter()
                .filter_map(|name| metadata.and_then(|m| m.allow_origins.get(name)).cloned())
                .collect()
        });
        Ok(Arc::new(instance))
    }

    fn plugin_metadata_schema(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "type": "object",
            "properties": {
                "allow_origins": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "pattern": ORIGINS_PATTERN}
                }
            }
        }))
    }

    fn plugin_metadata(&self, metadata: &serde_json::Value) -> Result<Option<Metadata>, String> {
        let mut allow_origins = std::collections::HashMap::new();
        if let Some(map) = metadata.get("allow_origins").and_then(|v| v.as_object()) {
            for (name, origins) in map {
                let text = origins.as_str().unwrap_or_default();
                let field = format!("allow_origins.{name}");
                allow_origins.insert(name.clone(), origin_list(&field, text)?);
            }
        }
        Ok(Some(Metadata::new(CorsMetadata { allow_origins })))
    }
}

fn regexes(field: &str, list: &[String]) -> Result<Origins, String> {
    if list.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            Regex::new(r).map_err(|e| format!("{field}[{i}] `{r}` is not a valid regex: {e}"))
        })
        .collect::<Result<_, _>>()
        .map(Origins::Regex)
}

/// APISIX's pattern of `allow_origins` and `timing_allow_origins`.
const ORIGINS_PATTERN: &str = r"^(\*|\*\*|null|\w+://[^,]+(,\w+://[^,]+)*)$";

/// `allow_origins` or `timing_allow_origins`.
fn origin_list(field: &str, text: &str) -> Result<Origins, String> {
    static PATTERN: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| Regex::new(ORIGINS_PATTERN).expect("valid pattern"));
    if !PATTERN.is_match(text) {
        return Err(format!(
            "{field} `{text}` must be `*`, `**`, `null` or comma-separated `scheme://host[:port]` origins"
        ));
    }
    Ok(if text == "**" {
        Origins::Any
    } else if text.contains(',') {
        Origins::List(text.split(',').map(str::to_owned).collect())
    } else {
        Origins::Fixed(value(field, text)?)
    })
}

fn instance(conf: Conf) -> Result<Instance, String> {
    if conf.allow_credential
        && (conf.allow_origins == "*"
            || conf.allow_methods == "*"
            || conf.allow_headers == "*"
            || conf.expose_headers.as_deref() == Some("*")
            || conf.timing_allow_origins.as_deref() == Some("*"))
    {
        return Err(
            "you can not set '*' for other option when 'allow_credential' is true".to_owned(),
        );
    }
    let origins = match &conf.allow_origins_by_regex {
        Some(list) => regexes("allow_origins_by_regex", list)?,
        None => origin_list("allow_origins", &conf.allow_origins)?,
    };
    let timing = match (
        &conf.timing_allow_origins_by_regex,
        &conf.timing_allow_origins,
    ) {
        (Some(list), _) => Some(regexes("timing_allow_origins_by_regex", list)?),
        (None, Some(text)) => Some(origin_list("timing_allow_origins", text)?),
        (None, None) => None,
    };
    let methods = if conf.allow_methods == "**" {
        ALL_METHODS
    } else {
        &conf.allow_methods
    };
    Ok(Instance {
        origins,
        vary: conf.allow_origins != "*",
        methods: value("allow_methods", methods)?,
        headers: if conf.allow_headers == "**" {
            None
        } else {
            Some(value("allow_headers", &conf.allow_headers)?)
        },
        expose: conf
            .expose_headers
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|e| value("expose_headers", e))
            .transpose()?,
        max_age: HeaderValue::from(conf.max_age),
        credential: conf.allow_credential,
        timing,
        by_metadata: None,
    })
}

impl Origins {
    /// The allowed origin for a request from `origin`, if any: `*` or the request's own.
    fn allowed(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        self.decide(origin)
            .filter(|allowed| allowed == "*" || Some(allowed) == origin)
    }

    fn decide(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let text = origin.and_then(|o| o.to_str().ok());
        match self {
            Origins::Any => Some(origin.cloned().unwrap_or(HeaderValue::from_static("*"))),
            Origins::Fixed(v) => Some(v.clone()),
            Origins::List(list) => {
                let text = text?;
                list.iter().any(|o| o == text).then(|| origin.cloned())?
            }
            Origins::Regex(rules) => {
                let text = text?;
                rules
                    .iter()
                    .any(|r| r.is_match(text))
                    .then(|| origin.cloned())?
            }
        }
    }
}

impl Instance {
    /// The origin allowed for a request from `origin`, if any (`*` or the request's own).
    fn allowed(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        // An origin one of the named metadata entries allows, reflected.
        let by_metadata = || {
            let listed = self.by_metadata.as_ref()?;
            listed
                .iter()
                .any(|o| o.allowed(origin).is_some())
                .then(|| origin.cloned())?
        };
        if self.by_metadata.is_some() {
            if let Some(allowed) = by_metadata() {
                return Some(allowed);
            }
            // Beside metadata names, `allow_origins: "*"` allows nothing by itself.
            if !self.vary {
                return None;
            }
        }
        self.origins.allowed(origin)
    }

    /// Sets the CORS headers of a response.
    fn apply(&self, asked: &Asked, headers: &mut HeaderMap) {
        if self.vary {
            add_vary(headers, "Origin");
        }
        if let Some(origin) = self.allowed(asked.origin.as_ref()) {
            headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                http::header::ACCESS_CONTROL_ALLOW_METHODS,
                self.methods.clone(),
            );
            headers.insert(http::header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
            if let Some(expose) = &self.expose {
                headers.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
            }
            match self.headers.as_ref().or(asked.request_headers.as_ref()) {
                Some(h) => headers.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()),
                None => headers.remove(http::header::ACCESS_CONTROL_ALLOW_HEADERS),
            };
            if self.credential {
                headers.insert(
                    http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
        let timing = self
            .timing
            .as_ref()
            .and_then(|t| t.allowed(asked.origin.as_ref()));
        if let Some(timing) = timing {
            headers.insert(TIMING_ALLOW_ORIGIN, timing);
        }
    }
}

const TIMING_ALLOW_ORIGIN: HeaderName = HeaderName::from_static("timing-allow-origin");

fn header_of(req: &RequestCtx<'_>, var: &str) -> Option<HeaderValue> {
    req.vars
        .get(var)
        .and_then(|v| HeaderValue::from_str(&v).ok())
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE | Phases::HEADER_FILTER
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        req.state.insert(Asked {
            origin: header_of(req, "http_origin"),
            request_headers: header_of(req, "http_access_control_request_headers"),
        });
        if req.vars.get("request_method").as_deref() == Some(Method::OPTIONS.as_str()) {
            // The CORS headers are added by header_filter, which runs on this reply too.
            return Flow::Respond(Reply {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: bytes::Bytes::new(),
            });
        }
        Flow::Continue
    }

    fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        let asked = resp.state.get::<Asked>().cloned().unwrap_or_default();
        self.apply(&asked, resp.headers);
    }
}

/// Names of the headers this plugin sets (for tests).
#[cfg(test)]
const NAMES: [http::header::HeaderName; 6] = [
    http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
    http::header::ACCESS_CONTROL_ALLOW_METHODS,
    http::header::ACCESS_CONTROL_ALLOW_HEADERS,
    http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
    http::header::ACCESS_CONTROL_MAX_AGE,
    http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
];

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::{header, Fake};
    use plugin_api::PluginKind;
    use serde_json::json;
    use serde_json::Value;

    /// Runs a request with `vars` through rewrite and header_filter: the reply (if answered
    /// directly) and the response headers.
    async fn run(conf: Value, vars: &[(&'static str, &'static str)]) -> (Option<Reply>, HeaderMap) {
        let plugin = Cors.build(&conf).expect("valid");
        let mut fake = Fake::new(vars);
        let reply = fake.rewrite(&*plugin).await;
        let headers = fake.header_filter(&*plugin, StatusCode::OK, HeaderMap::new());
        (reply, headers)
    }

    const GET_FROM_A: [(&str, &str); 2] =
        [("request_method", "GET"), ("http_origin", "http://a.com")];

    #[tokio::test]
    async fn defaults() {
        let (reply, h) = run(json!({}), &GET_FROM_A).await;
        assert!(reply.is_none(), "a GET goes on");
        assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&h, "access-control-allow-methods"), Some("*"));
        assert_eq!(header(&h, "access-control-allow-headers"), Some("*"));
        assert_eq!(header(&h, "access-control-max-age"), Some("5"));
        assert!(h.get("access-control-expose-headers").is_none());
        assert!(h.get("access-control-allow-credentials").is_none());
        assert!(h.get("vary").is_none(), "no Vary for *");
    }

    #[tokio::test]
    async fn options_is_answered() {
        let (reply, h) = run(
            json!({}),
            &[
                ("request_method", "OPTIONS"),
                ("http_origin", "http://a.com"),
                ("http_access_control_request_method", "PUT"),
            ],
        )
        .await;
        let reply = reply.expect("answered");
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body.is_empty());
        assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    }

    #[tokio::test]
    async fn double_star_reflects() {
        let conf = json!({"allow_origins": "**", "allow_methods": "**", "allow_headers": "**", "allow_credential": true, "expose_headers": "X-A", "max_age": 60});
        let (_, h) = run(
            conf.clone(),
            &[
                ("request_method", "GET"),
                ("http_origin", "http://a.com"),
                ("http_access_control_request_headers", "x-b,x-c"),
            ],
        )
        .await;
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("http://a.com")
        );
        assert_eq!(header(&h, "vary"), Some("Origin"));
        assert_eq!(
            header(&h, "access-control-allow-methods"),
            Some(ALL_METHODS)
        );
        assert_eq!(header(&h, "access-control-allow-headers"), Some("x-b,x-c"));
        assert_eq!(header(&h, "access-control-expose-headers"), Some("X-A"));
        assert_eq!(header(&h, "access-control-max-age"), Some("60"));
        assert_eq!(header(&h, "access-control-allow-credentials"), Some("true"));

        let (_, h) = run(conf, &[("request_method", "GET")]).await;
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("*"),
            "no Origin"
        );
        assert!(
            h.get("access-control-allow-headers").is_none(),
            "nothing requested"
        );
    }

    #[tokio::test]
    async fn origin_lists() {
        let list = json!({"allow_origins": "http://a.com,https://b.com:8443"});
        let (_, h) = run(list.clone(), &GET_FROM_A).await;
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("http://a.com")
        );
        let (_, h) = run(list.clone(), &[("http_origin", "http://c.com")]).await;
        assert!(
            NAMES.iter().all(|n| h.get(n).is_none()),
            "unlisted origin: nothing"
        );
        let (_, h) = run(list, &[]).await;
        assert!(
            NAMES.iter().all(|n| h.get(n).is_none()),
            "no origin: nothing"
        );
        assert_eq!(header(&h, "vary"), Some("Origin"), "Vary whenever not `*`");

        let single = json!({"allow_origins": "http://z.com"});
        let (_, h) = run(single.clone(), &GET_FROM_A).await;
        assert!(
            h.get("access-control-allow-origin").is_none(),
            "another origin"
        );
        let (_, h) = run(single, &[("http_origin", "http://z.com")]).await;
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("http://z.com")
        );
    }

    #[tokio::test]
    async fn origin_regexes() {
        let conf =
            json!({"allow_origins_by_regex": ["^http://.*\\.a\\.com$", "^https://b\\.com$"]});
        let (_, h) = run(conf.clone(), &[("http_origin", "http://x.a.com")]).await;
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("http://x.a.com")
        );
        let (_, h) = run(conf.clone(), &[("http_origin", "https://b.com")]).await;
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("https://b.com")
        );
        let (_, h) = run(conf.clone(), &GET_FROM_A).await;
        assert!(h.is_empty(), "the regexes alone decide");
        let (_, h) = run(conf, &[]).await;
        assert!(h.is_empty());
    }

    #[tokio::test]
    async fn upstream_headers_are_replaced() {
        let plugin = Cors.build(&json!({})).expect("valid");
        let mut fake = Fake::new(&GET_FROM_A);
        assert!(fake.rewrite(&*plugin).await.is_none());
        let mut upstream = HeaderMap::new();
        upstream.insert(
            "access-control-allow-origin",
            HeaderValue::from_static("http://up"),
        );
        let h = fake.header_filter(&*plugin, StatusCode::OK, upstream);
        assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    }

    /// Builds `conf` with `metadata` as the plugin's metadata.
    fn with_metadata(conf: &Value, metadata: &Value) -> Arc<dyn Plugin> {
        let checked = Cors.check_metadata(metadata).expect("valid metadata");
        let mut set = plugin_api::metadata::MetadataSet::default();
        set.set("cors", checked);
        let ctx = BuildContext {
            metadata: set,
            ..BuildContext::default()
        };
        Cors.build_with(conf, &ctx).expect("valid")
    }

    async fn origin_of(
        plugin: &dyn Plugin,
        origin: &'static str,
    ) -> (Option<String>, Option<String>) {
        let mut fake = Fake::new(&[("request_method", "GET"), ("http_origin", origin)]);
        assert!(fake.rewrite(plugin).await.is_none());
        let h = fake.header_filter(plugin, StatusCode::OK, HeaderMap::new());
        (
            header(&h, "access-control-allow-origin").map(str::to_owned),
            header(&h, "vary").map(str::to_owned),
        )
    }

    #[tokio::test]
    async fn origins_by_metadata() {
        let metadata = json!({"allow_origins": {"one": "https://domain.com", "two": "https://a.com,https://b.com", "all": "*"}});
        let conf = json!({"allow_origins": "https://test.com", "allow_origins_by_metadata": ["one", "two", "missing"]});
        let plugin = with_metadata(&conf, &metadata);
        for (origin, allowed) in [
            ("https://test.com", Some("https://test.com")),
            ("https://domain.com", Some("https://domain.com")),
            ("https://b.com", Some("https://b.com")),
            ("http://foo.org", None),
        ] {
            let (got, vary) = origin_of(&*plugin, origin).await;
            assert_eq!(got.as_deref(), allowed, "{origin}");
            assert_eq!(vary.as_deref(), Some("Origin"), "{origin}");
        }
        // A `*` entry reflects the origin.
        let all =
            json!({"allow_origins": "https://test.com", "allow_origins_by_metadata": ["all"]});
        let (got, _) = origin_of(&*with_metadata(&all, &metadata), "http://foo.org").await;
        assert_eq!(got.as_deref(), Some("http://foo.org"));
        // Beside metadata names, `allow_origins: "*"` allows nothing by itself.
        let star = json!({"allow_origins": "*", "allow_origins_by_metadata": ["one"]});
        let plugin = with_metadata(&star, &metadata);
        assert_eq!(origin_of(&*plugin, "http://foo.org").await, (None, None));
        assert_eq!(
            origin_of(&*plugin, "https://domain.com").await.0.as_deref(),
            Some("https://domain.com")
        );
        // Without metadata, the names allow nothing; allow_origins still does.
        let plugin = Cors.build(&conf).expect("valid");
        assert_eq!(origin_of(&*plugin, "https://domain.com").await.0, None);
        assert_eq!(
            origin_of(&*plugin, "https://test.com").await.0.as_deref(),
            Some("https://test.com")
        );
    }

    #[test]
    fn metadata_is_checked() {
        assert!(Cors.metadata_schema().is_some());
        let good = json!({"allow_origins": {"a": "*", "b": "**", "c": "null", "d": "http://y.com.uk", "e": "https://x.com,http://y.com.uk:12000,http://c.tv"}, "other": 1});
        assert!(Cors.check_metadata(&good).expect("valid").is_some());
        for bad in [
            "",
            "*a",
            "*,http://y.com",
            "nulll",
            "http//y.com.uk",
            "x.com",
            "https://x.com,y.com.uk",
            "https://x.com,*,https://y.com.uk",
            "https://x.com,http://y.com.uk,http:c.tv",
        ] {
            let err = Cors
                .check_metadata(&json!({"allow_origins": {"key": bad}}))
                .expect_err(bad);
            assert!(err.contains("allow_origins"), "{bad}: {err}");
        }
        assert!(Cors
            .check_metadata(&json!({"allow_origins": ["x"]}))
            .is_err());
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({}),
            json!({"allow_origins": "null"}),
            json!({"allow_origins": "http://a.com,https://b.com:8443"}),
            json!({"allow_origins": "**", "allow_methods": "GET", "allow_headers": "**", "allow_credential": true}),
            json!({"allow_origins": "http://a.com", "allow_methods": "GET,POST", "allow_headers": "X-A", "expose_headers": "X-B", "allow_credential": true}),
            json!({"allow_origins_by_regex": [".*"], "max_age": -1}),
            json!({"extra": 1}),
        ] {
            assert!(Cors.build(&good).is_ok(), "{good}");
        }
        for bad in [
            json!({"allow_credential": true}),
            json!({"allow_origins": "**", "allow_methods": "**", "allow_headers": "**", "expose_headers": "*", "allow_credential": true}),
            json!({"allow_origins": "a.com"}),
            json!({"allow_origins": "http://a.com,"}),
            json!({"allow_origins": ""}),
            json!({"allow_origins_by_regex": []}),
            json!({"allow_origins_by_regex": ["(bad"]}),
            json!({"allow_methods": "GET\n"}),
            json!({"max_age": "5"}),
            json!({"allow_origins_by_metadata": []}),
        ] {
            assert!(Cors.build(&bad).is_err(), "{bad}");
        }
    }
}
