//! `referer-restriction` (priority 2990, access): allow or deny clients by the host of their
//! `Referer`.
//!
//! Config: exactly one of `whitelist` and `blacklist` (host patterns, at least one: `name`,
//! `*.suffix` for any host ending with `.suffix`, or `*` for any host), `bypass_missing`
//! (default false), `message` (default `Your referer host is not allowed`, 1-1024 characters).
//!
//! As APISIX: the host is taken from `Referer` as lua-resty-http's `parse_uri` does
//! (`[http[s]:]//host[:port]...`); a `Referer` it cannot parse (`www.x.com`, `/page`, `ftp://x`)
//! is treated as missing. A request without a (parsable) `Referer` is refused unless
//! `bypass_missing`; otherwise its host (lowercased, see docs/apisix-differences.md) must match
//! the whitelist, or must not match the blacklist. A refused request gets 403
//! `{"message": message}`.

use std::sync::Arc;

use http::header::REFERER;
use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;

use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx};

/// The kind.
pub struct RefererRestriction;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["whitelist"]}, {"required": ["blacklist"]}]))]
pub struct Conf {
    #[schemars(length(min = 1))]
    whitelist: Option<Vec<String>>,
    #[schemars(length(min = 1))]
    blacklist: Option<Vec<String>>,
    #[serde(default)]
    bypass_missing: bool,
    #[serde(default = "default_message")]
    #[schemars(length(min = 1, max = 1024))]
    message: String,
}

fn default_message() -> String {
    "Your referer host is not allowed".to_owned()
}

/// A host pattern.
#[derive(Debug, PartialEq)]
enum Pattern {
    Any,
    /// `*<suffix>`: hosts ending with the suffix.
    Suffix(String),
    Exact(String),
}

impl Pattern {
    /// APISIX's `host_def`: `*`, or `^\*?[0-9a-zA-Z-._\[\]:]+$`.
    fn parse(text: &str) -> Result<Pattern, String> {
        if text == "*" {
            return Ok(Pattern::Any);
        }
        let (wild, rest) = match text.strip_prefix('*') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let valid = !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c));
        if !valid {
            return Err(format!("`{text}` is not a host pattern"));
        }
        let rest = rest.to_ascii_lowercase();
        Ok(if wild {
            Pattern::Suffix(rest)
        } else {
            Pattern::Exact(rest)
        })
    }

    fn matches(&self, host: &[u8]) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Suffix(s) => host.ends_with(s.as_bytes()),
            Pattern::Exact(s) => s.as_bytes() == host,
        }
    }
}

/// A configured instance (the checked config).
pub struct Instance {
    /// The patterns, and whether they are a whitelist.
    patterns: Vec<Pattern>,
    whitelist: bool,
    bypass_missing: bool,
    reply: Reply,
}

impl Kind for RefererRestriction {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "referer-restriction";
    const PRIORITY: i32 = 2990;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        instance(conf)
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

fn instance(conf: Conf) -> Result<Instance, String> {
    let (list, whitelist, field) = match (conf.whitelist, conf.blacklist) {
        (Some(list), None) => (list, true, "whitelist"),
        (None, Some(list)) => (list, false, "blacklist"),
        _ => return Err("exactly one of whitelist and blacklist is required".to_owned()),
    };
    if list.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    let patterns = list
        .iter()
        .map(|p| Pattern::parse(p).map_err(|e| format!("{field}: {e}")))
        .collect::<Result<_, _>>()?;
    if conf.message.is_empty() || conf.message.chars().count() > 1024 {
        return Err("message must be 1-1024 characters".to_owned());
    }
    Ok(Instance {
        patterns,
        whitelist,
        bypass_missing: conf.bypass_missing,
        reply: Reply::message(StatusCode::FORBIDDEN, &conf.message),
    })
}

impl Instance {
    /// Whether a request with this `Referer` (if any) may pass.
    fn admits(&self, referer: Option<&[u8]>) -> bool {
        let Some(host) = referer.and_then(referer_host) else {
            return self.bypass_missing;
        };
        let host = host.to_ascii_lowercase();
        self.patterns.iter().any(|p| p.matches(&host)) == self.whitelist
    }
}

/// The host of a `Referer`, as lua-resty-http's `parse_uri` (used by APISIX) takes it with
/// `^(?:(http[s]?):)?//((?:[^\[\]:/\?]+)|(?:\[.+\]))(?::(\d+))?([^\?]*)\??(.*)`: after an
/// optional `http:`/`https:` and a mandatory `//`, either the longest run of characters other than
/// `[]:/?`, or a bracketed literal up to the last `]`. The rest of that regex matches anything.
///
/// Bytes, not text: nginx hands APISIX the raw header, so a non-UTF-8 host is still a host.
fn referer_host(referer: &[u8]) -> Option<&[u8]> {
    let rest = referer
        .strip_prefix(b"https:")
        .or_else(|| referer.strip_prefix(b"http:"))
        .unwrap_or(referer);
    let rest = rest.strip_prefix(b"//")?;
    if rest.first() == Some(&b'[') {
        // `\[.+\]`: greedy, so up to the last `]`, with at least one character inside (`.`
        // matches no newline, which a header value cannot hold anyway).
        let end = rest
            .iter()
            .rposition(|&b| b == b']')
            .filter(|&end| end >= 2)?;
        return Some(&rest[..=end]);
    }
    let end = rest
        .iter()
        .position(|b| b"[]:/?".contains(b))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let referer = req.headers.get(REFERER).map(http::HeaderValue::as_bytes);
        if self.admits(referer) {
            Flow::Continue
        } else {
            Flow::Respond(self.reply.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::Fake;
    use plugin_api::PluginKind;
    use serde_json::json;
    use serde_json::Value;

    async fn check(conf: &Value, referer: Option<&'static str>) -> Option<Reply> {
        let plugin = RefererRestriction.build(conf).expect("valid");
        let vars: Vec<_> = referer.map(|r| ("http_referer", r)).into_iter().collect();
        Fake::new(&vars).access(&*plugin).await
    }

    #[tokio::test]
    async fn whitelist() {
        let conf = json!({"whitelist": ["xx.com", "*.good.com"]});
        assert!(check(&conf, Some("http://xx.com/page")).await.is_none());
        assert!(
            check(&conf, Some("https://XX.com:8443/x?y"))
                .await
                .is_none(),
            "case and port"
        );
        assert!(check(&conf, Some("http://a.b.good.com/")).await.is_none());
        assert!(
            check(&conf, Some("//xx.com")).await.is_none(),
            "scheme-less"
        );
        let reply = check(&conf, Some("http://good.com/"))
            .await
            .expect("refused");
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(
            reply.body,
            "{\"message\":\"Your referer host is not allowed\"}\n"
        );
        assert!(check(&conf, Some("http://yy.com/")).await.is_some());
        assert!(check(&conf, Some("/relative")).await.is_some(), "no host");
        assert!(
            check(&conf, Some("xx.com")).await.is_some(),
            "malformed: missing"
        );
        assert!(
            check(&conf, Some("http://user@xx.com/")).await.is_some(),
            "the host is `user@xx.com`, as lua-resty-http"
        );
        assert!(check(&conf, None).await.is_some(), "missing");
        let any = json!({"whitelist": ["*"]});
        assert!(check(&any, Some("http://any.where/")).await.is_none());
    }

    #[tokio::test]
    async fn blacklist_bypass_and_message() {
        let conf =
            json!({"blacklist": ["*.bad.com"], "bypass_missing": true, "message": "go away"});
        let reply = check(&conf, Some("http://x.bad.com/"))
            .await
            .expect("refused");
        assert_eq!(reply.body, "{\"message\":\"go away\"}\n");
        assert!(check(&conf, Some("http://ok.com/")).await.is_none());
        assert!(
            check(&conf, Some("/relative")).await.is_none(),
            "malformed: missing, bypassed"
        );
        assert!(check(&conf, None).await.is_none(), "bypass_missing");
        let strict = json!({"blacklist": ["bad.com"]});
        assert!(
            check(&strict, None).await.is_some(),
            "missing refused by default"
        );
        assert!(
            check(&strict, Some("/relative")).await.is_some(),
            "malformed refused by default, even by a blacklist"
        );
    }

    #[tokio::test]
    async fn malformed_referer_is_missing() {
        // referer-restriction.t TEST 6-8: whitelist `*.xx.com`, `yy.com`, bypass_missing.
        let conf = json!({"bypass_missing": true, "whitelist": ["*.xx.com", "yy.com"]});
        assert!(check(&conf, Some("www.yy.com")).await.is_none(), "TEST 8");
        assert!(check(&conf, None).await.is_none(), "TEST 7");
        assert!(check(&conf, Some("https://www.yy.com/am")).await.is_some());
        for malformed in [
            "www.yy.com",
            "/am",
            "ftp://yy.com",
            "http:/yy.com",
            "http://",
            "//[]",
        ] {
            assert!(check(&conf, Some(malformed)).await.is_none(), "{malformed}");
        }
    }

    #[test]
    fn hosts_as_lua_resty_http() {
        for (referer, host) in [
            ("http://www.xx.com", Some("www.xx.com")),
            ("https://yy.com/am", Some("yy.com")),
            ("https://yy.com:8443/am?x", Some("yy.com")),
            ("//yy.com", Some("yy.com")),
            ("http://[::1]:80/x", Some("[::1]")),
            ("http://a b/", Some("a b")),
            ("HTTP://yy.com", None),
            ("yy.com", None),
            ("http://", None),
            ("http://[]", None),
        ] {
            assert_eq!(
                referer_host(referer.as_bytes()),
                host.map(str::as_bytes),
                "{referer}"
            );
        }
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({"whitelist": ["a.com"]}),
            json!({"blacklist": ["*.a.com", "b.com:8080"], "bypass_missing": true, "message": "m"}),
        ] {
            assert!(RefererRestriction.build(&good).is_ok(), "{good}");
        }
        for bad in [
            json!({}),
            json!({"whitelist": ["a.com"], "blacklist": ["b.com"]}),
            json!({"whitelist": []}),
            json!({"whitelist": ["a b"]}),
            json!({"whitelist": ["a.*.com"]}),
            json!({"whitelist": ["*"] , "message": ""}),
            json!({"whitelist": ["a.com"], "bypass_missing": "yes"}),
            json!({"whitelist": ["a.com"], "extra": 1}),
        ] {
            assert!(RefererRestriction.build(&bad).is_err(), "{bad}");
        }
    }
}
