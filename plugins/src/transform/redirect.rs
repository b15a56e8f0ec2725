//! `redirect` (priority 900, rewrite): answer with a redirect.
//!
//! Config: exactly one of
//! - `uri`: the `Location` (at least 2 characters); `$name` / `${name}` are replaced by request
//!   variables (`$uri`, `$request_uri`, `$host`, `$arg_x`, ...; a missing one is empty), `\$`
//!   keeps a literal `$`;
//! - `regex_uri`: `[regex, template]`: the first match of the regex in the request path (`uri`)
//!   is replaced by the template (`$1`, `${1}` captures, `$0` the match, `$$` a `$`); a path that
//!   does not match is not redirected;
//! - `http_to_https: true`: a request whose scheme is not https (`X-Forwarded-Proto` wins over
//!   the connection) goes to `https://$host$request_uri`, with the node's https port
//!   ([`crate::NodeSettings::https_port`]: `plugin_attr.redirect.https_port`, else the first
//!   `apisix.ssl.listen` port when TLS is on) unless it is 443; 301 for GET and HEAD, 308
//!   otherwise. An https request passes.
//!
//! and `ret_code` (default 302, at least 200), `encode_uri` (default false: percent-encode the
//! new URI's path, up to any `?`), `append_query_string` (default false: add the request's query
//! string; not with `http_to_https`). The answer has the status, `Location` and an empty body.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::support::regex::{Options, PcreRegex};
use crate::support::regex_uri::{parse_template, Part};
use model::template::{Syntax, Template};
use plugin_api::Vars;
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, PluginError, Reply, RequestCtx};

/// The kind.
#[derive(Debug, Default)]
pub struct Redirect {
    /// The node's https port, for `http_to_https`.
    https_port: Option<u16>,
}

impl Redirect {
    /// The kind on a node whose https port (for `http_to_https`) is `https_port`.
    pub fn new(https_port: Option<u16>) -> Redirect {
        Redirect { https_port }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["uri"]},
    {"required": ["regex_uri"]},
    {"required": ["http_to_https"]}
]))]
pub struct Conf {
    #[schemars(length(min = 2))]
    uri: Option<String>,
    #[schemars(length(min = 2, max = 2))]
    regex_uri: Option<Vec<String>>,
    http_to_https: Option<bool>,
    #[serde(default = "default_code")]
    #[schemars(range(min = 200))]
    ret_code: u16,
    #[serde(default)]
    encode_uri: bool,
    #[serde(default)]
    append_query_string: bool,
}

fn default_code() -> u16 {
    302
}

enum Target {
    Uri(Template),
    Regex(PcreRegex, Vec<Part>),
    /// To https, on this port (none: https's default).
    Https(Option<u16>),
}

/// A configured instance (the checked config).
pub struct Instance {
    target: Target,
    status: StatusCode,
    encode_uri: bool,
    append_query_string: bool,
}

impl Kind for Redirect {
    type Conf = Conf;
    /// `None`: a config that redirects nothing (`http_to_https: false`).
    type Checked = Option<Instance>;
    const NAME: &'static str = "redirect";
    const PRIORITY: i32 = 900;

    fn check(&self, conf: Conf) -> Result<Option<Instance>, String> {
        let target = match (&conf.uri, &conf.regex_uri, conf.http_to_https) {
            (Some(uri), None, None) => {
                if uri.chars().count() < 2 {
                    return Err("uri must be at least 2 characters".to_owned());
                }
                Target::Uri(Template::parse(uri, Syntax::KeepEscape))
            }
            (None, Some(pair), None) => {
                let [regex, template] = pair.as_slice() else {
                    return Err("regex_uri must be [regex, template]".to_owned());
                };
                let re = PcreRegex::new(regex, Options::default())
                    .map_err(|e| format!("invalid regex_uri({regex}, {template}): {e}"))?;
                let parts = parse_template(template, re.groups())
                    .map_err(|e| format!("invalid regex_uri({regex}, {template}): {e}"))?;
                Target::Regex(re, parts)
            }
            (None, None, Some(_)) => {
                if conf.append_query_string {
                    return Err(
                        "only one of `http_to_https` and `append_query_string` can be configured."
                            .to_owned(),
                    );
                }
                Target::Https(None)
            }
            _ => {
                return Err("exactly one of uri, regex_uri or http_to_https is required".to_owned())
            }
        };
        let status = StatusCode::from_u16(conf.ret_code)
            .ok()
            .filter(|_| conf.ret_code >= 200)
            .ok_or_else(|| {
                format!(
                    "ret_code must be an HTTP status of at least 200, got {}",
                    conf.ret_code
                )
            })?;
        if conf.http_to_https == Some(false) {
            // APISIX accepts `false`: the plugin then does nothing.
            return Ok(None);
        }
        Ok(Some(Instance {
            target,
            status,
            encode_uri: conf.encode_uri,
            append_query_string: conf.append_query_string,
        }))
    }

    fn instance(
        &self,
        checked: Option<Instance>,
        _ctx: &BuildContext,
    ) -> Result<Arc<dyn Plugin>, String> {
        Ok(match checked {
            Some(mut instance) => {
                if let Target::Https(port) = &mut instance.target {
                    *port = self.https_port.filter(|p| *p != 0 && *p != 443);
                }
                Arc::new(instance)
            }
            None => Arc::new(Noop),
        })
    }
}

/// `http_to_https: false` and nothing else to do.
struct Noop;

impl Plugin for Noop {
    fn phases(&self) -> Phases {
        Phases::NONE
    }
}

/// What `encode_uri` leaves alone: unreserved characters, `/` and the sub-delimiters, `:` `@`.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b':')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=');

impl Instance {
    /// The redirect for a request, or None to let it pass (https already).
    fn location(&self, vars: &dyn Vars) -> Option<(StatusCode, String)> {
        let mut status = self.status;
        let mut uri = match &self.target {
            Target::Uri(template) => template.render(vars),
            Target::Regex(re, parts) => {
                let path = vars.get("uri").unwrap_or_default();
                // As APISIX: a path the regex does not match is not redirected.
                let uri = re.replacen(path.as_bytes(), 1, parts)?;
                String::from_utf8_lossy(&uri).into_owned()
            }
            Target::Https(port) => {
                let scheme = vars
                    .get("http_x_forwarded_proto")
                    .or_else(|| vars.get("scheme"))
                    .unwrap_or(Cow::Borrowed("http"));
                if scheme == "https" {
                    return None;
                }
                let method = vars.get("request_method").unwrap_or_default();
                status = if method == "GET" || method == "HEAD" {
                    StatusCode::MOVED_PERMANENTLY
                } else {
                    StatusCode::PERMANENT_REDIRECT
                };
                let host = vars.get("host").unwrap_or_default();
                let request_uri = vars.get("request_uri").unwrap_or_default();
                match port {
                    Some(port) => format!("https://{host}:{port}{request_uri}"),
                    None => format!("https://{host}{request_uri}"),
                }
            }
        };
        let query_at = uri.find('?');
        if self.encode_uri {
            let (path, query) = uri.split_at(query_at.unwrap_or(uri.len()));
            uri = format!("{}{query}", utf8_percent_encode(path, KEEP));
        }
        if self.append_query_string {
            if let Some(args) = vars.get("query_string") {
                uri.push(if uri.contains('?') { '&' } else { '?' });
                uri.push_str(&args);
            }
        }
        Some((status, uri))
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        let Some((status, location)) = self.location(req.vars) else {
            return Flow::Continue;
        };
        let mut headers = HeaderMap::new();
        match HeaderValue::from_str(&location) {
            Ok(value) => {
                headers.insert(LOCATION, value);
            }
            // A variable brought something no header can carry: APISIX answers 500 when it
            // cannot build the new URI.
            Err(e) => {
                return Flow::Fail(PluginError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the new location is no header value: {e}"),
                ))
            }
        }
        Flow::Respond(Reply {
            status,
            headers,
            body: Bytes::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::{header, Fake};
    use plugin_api::PluginKind;
    use serde_json::json;
    use serde_json::Value;

    async fn run(conf: Value, vars: &[(&'static str, &'static str)]) -> Option<Reply> {
        let plugin = Redirect::default().build(&conf).expect("valid");
        Fake::new(vars).rewrite(&*plugin).await
    }

    fn location(reply: &Reply) -> &str {
        header(&reply.headers, "location").expect("Location")
    }

    #[tokio::test]
    async fn uri() {
        let reply = run(json!({"uri": "/new$uri"}), &[("uri", "/old")])
            .await
            .expect("redirect");
        assert_eq!(reply.status, StatusCode::FOUND, "302 by default");
        assert_eq!(location(&reply), "/new/old");
        assert!(reply.body.is_empty());
        assert!(reply.headers.get("content-type").is_none());

        let reply = run(
            json!({"uri": "https://x.com$request_uri", "ret_code": 301}),
            &[("request_uri", "/a?b=1")],
        )
        .await
        .expect("redirect");
        assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(location(&reply), "https://x.com/a?b=1");

        // A missing variable is empty, `\$` is kept as written, a lone `$` stays.
        let reply = run(
            json!({"uri": "/${missing}x/\\$uri/$ /${uri}"}),
            &[("uri", "/a")],
        )
        .await
        .expect("redirect");
        assert_eq!(location(&reply), "/x/\\$uri/$ //a");
    }

    #[tokio::test]
    async fn regex_uri() {
        let conf = json!({"regex_uri": ["^/api/(.*)/v([0-9])$", "/v$2/${1}"]});
        let reply = run(conf.clone(), &[("uri", "/api/users/v2")])
            .await
            .expect("redirect");
        assert_eq!(location(&reply), "/v2/users");
        assert!(
            run(conf, &[("uri", "/other")]).await.is_none(),
            "no match: no redirect"
        );
        let reply = run(json!({"regex_uri": ["b+", "[$0]"]}), &[("uri", "/abbc/b")])
            .await
            .expect("redirect");
        assert_eq!(location(&reply), "/a[bb]c/b", "the first match only");
    }

    #[tokio::test]
    async fn http_to_https() {
        let conf = json!({"http_to_https": true});
        let get = [
            ("scheme", "http"),
            ("host", "h.com"),
            ("request_uri", "/p?q=1"),
            ("request_method", "GET"),
        ];
        let reply = run(conf.clone(), &get).await.expect("redirect");
        assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(location(&reply), "https://h.com/p?q=1");
        let mut post = get;
        post[3] = ("request_method", "POST");
        let reply = run(conf.clone(), &post).await.expect("redirect");
        assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
        // The node's https port, not the request's X-Forwarded-Port; 443 is https's own.
        let mut forwarded = Fake::new(&get);
        forwarded.vars.insert("http_x_forwarded_port", "8080");
        let on = |port| Redirect::new(port).build(&conf).expect("valid");
        let reply = forwarded.rewrite(&*on(Some(9443))).await.expect("redirect");
        assert_eq!(location(&reply), "https://h.com:9443/p?q=1");
        for port in [None, Some(443), Some(0)] {
            let reply = forwarded.rewrite(&*on(port)).await.expect("redirect");
            assert_eq!(location(&reply), "https://h.com/p?q=1", "{port:?}");
        }
        let mut proxied = get.to_vec();
        proxied.push(("http_x_forwarded_proto", "https"));
        assert!(run(conf.clone(), &proxied).await.is_none(), "already https");
        let reply = run(json!({"http_to_https": true, "ret_code": 307}), &get)
            .await
            .expect("redirect");
        assert_eq!(
            reply.status,
            StatusCode::MOVED_PERMANENTLY,
            "ret_code is not used"
        );
        let noop = Redirect::default()
            .build(&json!({"http_to_https": false}))
            .expect("valid");
        assert_eq!(noop.phases(), Phases::NONE, "nothing to do");
    }

    #[tokio::test]
    async fn encode_and_append() {
        let reply = run(
            json!({"uri": "/a b/ü$request_uri", "encode_uri": true}),
            &[("request_uri", "?x=a b")],
        )
        .await
        .expect("redirect");
        assert_eq!(
            location(&reply),
            "/a%20b/%C3%BC?x=a b",
            "the path is encoded, the query kept"
        );
        let reply = run(json!({"uri": "/x:y@z/(a)"}), &[])
            .await
            .expect("redirect");
        assert_eq!(location(&reply), "/x:y@z/(a)", "not encoded by default");

        let append = json!({"uri": "/new", "append_query_string": true});
        let reply = run(append.clone(), &[("query_string", "a=1&b=2")])
            .await
            .expect("redirect");
        assert_eq!(location(&reply), "/new?a=1&b=2");
        let reply = run(append, &[]).await.expect("redirect");
        assert_eq!(location(&reply), "/new", "no query, nothing added");
        let reply = run(
            json!({"uri": "/new?k=v", "append_query_string": true}),
            &[("query_string", "a=1")],
        )
        .await
        .expect("redirect");
        assert_eq!(location(&reply), "/new?k=v&a=1");
        let reply = run(json!({"uri": "/new"}), &[("query_string", "a=1")])
            .await
            .expect("redirect");
        assert_eq!(location(&reply), "/new", "not appended by default");
    }

    #[tokio::test]
    async fn unfit_location() {
        let reply = run(json!({"uri": "/$arg_x"}), &[("arg_x", "a\nb")])
            .await
            .expect("answered");
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({"uri": "/x"}),
            json!({"uri": "/x", "ret_code": 307, "encode_uri": true, "append_query_string": true}),
            json!({"regex_uri": ["^/(.*)", "/b/$1"]}),
            json!({"http_to_https": true}),
            json!({"http_to_https": false}),
        ] {
            assert!(Redirect::default().build(&good).is_ok(), "{good}");
        }
        for bad in [
            json!({}),
            json!({"uri": "/"}),
            json!({"uri": "/x", "http_to_https": true}),
            json!({"uri": "/x", "regex_uri": ["a", "b"]}),
            json!({"regex_uri": ["a"]}),
            json!({"regex_uri": ["a", "b", "c"]}),
            json!({"regex_uri": ["(bad", "b"]}),
            json!({"regex_uri": ["(a)", "$2"]}),
            json!({"http_to_https": true, "append_query_string": true}),
            json!({"uri": "/x", "ret_code": 199}),
            json!({"uri": "/x", "ret_code": 1000}),
            json!({"uri": "/x", "encode_uri": "yes"}),
            json!({"uri": "/x", "extra": 1}),
        ] {
            assert!(Redirect::default().build(&bad).is_err(), "{bad}");
        }
    }
}
