//! `referer-restriction` (priority 2990, access): allow or deny clients by the host of their
//! `Referer`.
//!
//! Config: exactly one of `whitelist` and `blacklist` (host patterns, at least one: `name`,
//! `*.suffix` for any host ending with `.suffix`, or `*` for any host), `bypass_missing`
//! (default false), `message` (default `Your referer host is not allowed`, 1-1024 characters).
//!
//! As APISIX: a request without `Referer` is refused unless `bypass_missing`; a `Referer` that is
//! not a URI is refused; otherwise its host (lowercased; none for a relative reference) must
//! match the whitelist, or must not match the blacklist. A refused request gets 403
//! `{"message": message}`.

use std::sync::Arc;

use http::header::REFERER;
use http::{StatusCode, Uri};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{parse_conf, Flow, Plugin, PluginKind, Reply, RequestCtx};

/// The kind.
pub struct RefererRestriction;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Conf {
    whitelist: Option<Vec<String>>,
    blacklist: Option<Vec<String>>,
    #[serde(default)]
    bypass_missing: bool,
    #[serde(default = "default_message")]
    message: String,
}

fn default_message() -> String {
    "Your referer host is not allowed".to_owned()
}

/// A host pattern.
#[derive(Debug, PartialEq)]
enum Pattern {
    Any,
    /// `*<suffix>`: hosts ending with the suffix and longer than it.
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

    fn matches(&self, host: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            Pattern::Exact(s) => s == host,
        }
    }
}

struct Instance {
    /// The patterns, and whether they are a whitelist.
    patterns: Vec<Pattern>,
    whitelist: bool,
    bypass_missing: bool,
    reply: Reply,
}

impl PluginKind for RefererRestriction {
    fn name(&self) -> &'static str {
        "referer-restriction"
    }

    fn priority(&self) -> i32 {
        2990
    }

    fn schema(&self) -> Value {
        crate::model::schema_of::<Conf>()
    }

    fn build(&self, conf: &Value) -> Result<Arc<dyn Plugin>, String> {
        let conf: Conf = parse_conf(conf)?;
        Ok(Arc::new(instance(conf)?))
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
    fn admits(&self, referer: Option<&str>) -> bool {
        let Some(referer) = referer else {
            return self.bypass_missing;
        };
        let Ok(uri) = referer.trim().parse::<Uri>() else {
            return false;
        };
        // A relative reference has no host: it matches no pattern.
        let host = uri.host().map(str::to_ascii_lowercase);
        let matched = host.is_some_and(|h| self.patterns.iter().any(|p| p.matches(&h)));
        matched == self.whitelist
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let referer = req.headers.get(REFERER).map(|v| v.to_str().unwrap_or(""));
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
    use crate::plugins::testing::Fake;
    use serde_json::json;

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
        let reply = check(&conf, Some("http://good.com/"))
            .await
            .expect("refused");
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(
            reply.body,
            r#"{"message":"Your referer host is not allowed"}"#
        );
        assert!(check(&conf, Some("http://yy.com/")).await.is_some());
        assert!(check(&conf, Some("/relative")).await.is_some(), "no host");
        assert!(
            check(&conf, Some("http://x y")).await.is_some(),
            "not a URI"
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
        assert_eq!(reply.body, r#"{"message":"go away"}"#);
        assert!(check(&conf, Some("http://ok.com/")).await.is_none());
        assert!(
            check(&conf, Some("/relative")).await.is_none(),
            "no host: not listed"
        );
        assert!(check(&conf, None).await.is_none(), "bypass_missing");
        let strict = json!({"blacklist": ["bad.com"]});
        assert!(
            check(&strict, None).await.is_some(),
            "missing refused by default"
        );
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
