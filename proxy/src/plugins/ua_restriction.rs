//! `ua-restriction` (priority 2999, access): allow or deny clients by `User-Agent`.
//!
//! Config: `allowlist` and / or `denylist` (regexes, at least one each when given),
//! `bypass_missing` (default false), `message` (default `Not allowed`, 1-1024 characters).
//!
//! As APISIX: a request without `User-Agent` is refused unless `bypass_missing`. Each
//! `User-Agent` value (surrounding whitespace stripped) is checked against the allowlist first
//! (a match lets that value pass) and then the denylist (a match refuses the request); a value
//! that matches neither passes. A refused request gets 403 `{"message": message}`.

use std::sync::Arc;

use http::header::USER_AGENT;
use http::StatusCode;
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{parse_conf, Flow, Plugin, PluginKind, Reply, RequestCtx};

/// The kind.
pub struct UaRestriction;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Conf {
    allowlist: Option<Vec<String>>,
    denylist: Option<Vec<String>>,
    #[serde(default)]
    bypass_missing: bool,
    #[serde(default = "default_message")]
    message: String,
}

fn default_message() -> String {
    "Not allowed".to_owned()
}

struct Instance {
    allow: Vec<Regex>,
    deny: Vec<Regex>,
    bypass_missing: bool,
    reply: Reply,
}

fn regexes(list: Option<&Vec<String>>, field: &str) -> Result<Vec<Regex>, String> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    if list.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            Regex::new(r).map_err(|e| format!("{field}[{i}] `{r}` is not a valid regex: {e}"))
        })
        .collect()
}

impl PluginKind for UaRestriction {
    fn name(&self) -> &'static str {
        "ua-restriction"
    }

    fn priority(&self) -> i32 {
        2999
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
    if conf.message.is_empty() || conf.message.chars().count() > 1024 {
        return Err("message must be 1-1024 characters".to_owned());
    }
    Ok(Instance {
        allow: regexes(conf.allowlist.as_ref(), "allowlist")?,
        deny: regexes(conf.denylist.as_ref(), "denylist")?,
        bypass_missing: conf.bypass_missing,
        reply: Reply::message(StatusCode::FORBIDDEN, &conf.message),
    })
}

impl Instance {
    /// Whether one `User-Agent` value is refused.
    fn denies(&self, ua: &str) -> bool {
        let ua = ua.trim();
        if self.allow.iter().any(|r| r.is_match(ua)) {
            return false;
        }
        self.deny.iter().any(|r| r.is_match(ua))
    }

    /// Whether a request with these `User-Agent` values may pass.
    fn admits<'a>(&self, mut agents: impl Iterator<Item = &'a str>) -> bool {
        let Some(first) = agents.next() else {
            return self.bypass_missing;
        };
        !std::iter::once(first)
            .chain(agents)
            .any(|ua| self.denies(ua))
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let agents = req
            .headers
            .get_all(USER_AGENT)
            .iter()
            .map(|v| std::str::from_utf8(v.as_bytes()).unwrap_or_default());
        if self.admits(agents) {
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

    fn instance_of(conf: Value) -> Instance {
        instance(parse_conf(&conf).expect("parses")).expect("valid")
    }

    #[test]
    fn lists() {
        let deny = instance_of(json!({"denylist": ["curl", "^bot-[0-9]+$"]}));
        assert!(!deny.admits(["curl/8.0"].into_iter()));
        assert!(
            !deny.admits(["  bot-12 "].into_iter()),
            "values are trimmed"
        );
        assert!(deny.admits(["Mozilla/5.0"].into_iter()));
        assert!(
            !deny.admits(["Mozilla/5.0", "curl/8.0"].into_iter()),
            "any refused value refuses"
        );

        let both = instance_of(json!({"allowlist": ["curl/8"], "denylist": ["curl"]}));
        assert!(
            both.admits(["curl/8.1"].into_iter()),
            "the allowlist is checked first"
        );
        assert!(!both.admits(["curl/7.1"].into_iter()));
        assert!(
            both.admits(["Mozilla/5.0"].into_iter()),
            "neither list: passes"
        );

        let allow = instance_of(json!({"allowlist": ["Firefox"]}));
        assert!(allow.admits(["Firefox/1"].into_iter()));
        assert!(
            allow.admits(["curl/8"].into_iter()),
            "as APISIX, an allowlist alone refuses nothing"
        );
    }

    #[test]
    fn missing_user_agent() {
        let strict = instance_of(json!({"denylist": ["curl"]}));
        assert!(!strict.admits(std::iter::empty()), "refused by default");
        let lenient = instance_of(json!({"denylist": ["curl"], "bypass_missing": true}));
        assert!(lenient.admits(std::iter::empty()));
    }

    #[tokio::test]
    async fn replies() {
        let plugin = UaRestriction
            .build(&json!({"denylist": ["curl"]}))
            .expect("valid");
        let reply = Fake::new(&[("http_user_agent", "curl/8")])
            .access(&*plugin)
            .await
            .expect("refused");
        assert_eq!(reply, Reply::message(StatusCode::FORBIDDEN, "Not allowed"));
        assert!(Fake::new(&[]).access(&*plugin).await.is_some());
        assert!(Fake::new(&[("http_user_agent", "Mozilla")])
            .access(&*plugin)
            .await
            .is_none());

        let custom = UaRestriction
            .build(&json!({"denylist": ["curl"], "message": "no bots"}))
            .expect("valid");
        let reply = Fake::new(&[]).access(&*custom).await.expect("refused");
        assert_eq!(reply, Reply::message(StatusCode::FORBIDDEN, "no bots"));
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({}),
            json!({"allowlist": ["a"], "denylist": ["b"], "bypass_missing": true, "message": "m"}),
        ] {
            assert!(UaRestriction.build(&good).is_ok(), "{good}");
        }
        for bad in [
            json!({"allowlist": []}),
            json!({"denylist": []}),
            json!({"denylist": ["(bad"]}),
            json!({"denylist": "curl"}),
            json!({"denylist": ["curl"], "message": ""}),
            json!({"denylist": ["curl"], "message": "x".repeat(1025)}),
            json!({"denylist": ["curl"], "bypass_missing": "yes"}),
            json!({"denylist": ["curl"], "extra": 1}),
        ] {
            assert!(UaRestriction.build(&bad).is_err(), "{bad}");
        }
    }
}
