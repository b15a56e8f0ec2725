//! `ua-restriction` (priority 2999, access): allow or deny clients by `User-Agent`.
//!
//! Config: exactly one of `allowlist` and `denylist` (non-empty lists of non-empty regexes),
//! `bypass_missing` (default false), `message` (default `Not allowed`, 1-1024 characters).
//!
//! As APISIX (3.x, `ua-restriction.lua`): a request without `User-Agent` is refused unless
//! `bypass_missing`. Each `User-Agent` value is stripped of surrounding whitespace; with an
//! allowlist the request passes only when some value matches some allowlist regex, with a
//! denylist it is refused when some value matches some denylist regex. A refused request gets
//! 403 `{"message": message}`.

use std::sync::Arc;

use http::header::USER_AGENT;
use http::StatusCode;
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx};

/// The kind.
pub struct UaRestriction;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["allowlist"]}, {"required": ["denylist"]}]))]
pub struct Conf {
    #[schemars(length(min = 1), inner(length(min = 1)))]
    allowlist: Option<Vec<String>>,
    #[schemars(length(min = 1), inner(length(min = 1)))]
    denylist: Option<Vec<String>>,
    #[serde(default)]
    bypass_missing: bool,
    #[serde(default = "default_message")]
    #[schemars(length(min = 1, max = 1024))]
    message: String,
}

fn default_message() -> String {
    "Not allowed".to_owned()
}

/// A configured instance (the checked config).
pub struct Instance {
    /// The regexes, and whether they are an allowlist (else a denylist).
    patterns: Vec<Regex>,
    allowlist: bool,
    bypass_missing: bool,
    reply: Reply,
}

fn regexes(list: &[String], field: &str) -> Result<Vec<Regex>, String> {
    if list.is_empty() {
        return Err(format!(
            "property \"{field}\" validation failed: expect array to have at least 1 items"
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            if r.is_empty() {
                return Err(format!(
                    "property \"{field}\" validation failed: failed to validate item {}: \
                     string too short, expected at least 1, got 0",
                    i + 1
                ));
            }
            Regex::new(r).map_err(|e| format!("{field}[{i}] `{r}` is not a valid regex: {e}"))
        })
        .collect()
}

impl Kind for UaRestriction {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "ua-restriction";
    const PRIORITY: i32 = 2999;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        instance(conf)
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

fn instance(conf: Conf) -> Result<Instance, String> {
    if conf.message.is_empty() || conf.message.chars().count() > 1024 {
        return Err("message must be 1-1024 characters".to_owned());
    }
    // APISIX's schema: `oneOf` {required allowlist} / {required denylist}.
    let (patterns, allowlist) = match (&conf.allowlist, &conf.denylist) {
        (Some(list), None) => (regexes(list, "allowlist")?, true),
        (None, Some(list)) => (regexes(list, "denylist")?, false),
        (Some(_), Some(_)) => {
            return Err(
                "value should match only one schema, but matches both schemas 1 and 2".to_owned(),
            )
        }
        (None, None) => {
            return Err("value should match only one schema, but matches none".to_owned())
        }
    };
    Ok(Instance {
        patterns,
        allowlist,
        bypass_missing: conf.bypass_missing,
        reply: Reply::message(StatusCode::FORBIDDEN, &conf.message),
    })
}

impl Instance {
    /// Whether one `User-Agent` value matches one of the regexes.
    fn listed(&self, ua: &str) -> bool {
        let ua = ua.trim();
        self.patterns.iter().any(|r| r.is_match(ua))
    }

    /// Whether a request with these `User-Agent` values may pass.
    fn admits<'a>(&self, agents: impl Iterator<Item = &'a str>) -> bool {
        let mut agents = agents.peekable();
        if agents.peek().is_none() {
            return self.bypass_missing;
        }
        let mut listed = agents.map(|ua| self.listed(ua));
        if self.allowlist {
            // One allowed value lets the request pass (APISIX `check_with_allow_list`).
            listed.any(|hit| hit)
        } else {
            // One denied value refuses it (APISIX TEST 8/9 of ua-restriction.t).
            !listed.any(|hit| hit)
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS
    }

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
    use plugin_api::parse_conf;
    use plugin_api::testing::Fake;
    use plugin_api::PluginKind;
    use serde_json::json;
    use serde_json::Value;

    fn instance_of(conf: Value) -> Instance {
        instance(parse_conf(&conf).expect("parses")).expect("valid")
    }

    #[test]
    fn denylist() {
        // ua-restriction.t TEST 6-11: denylist `my-bot1`, `(Baiduspider)/(\d+)\.(\d+)`.
        let deny = instance_of(json!({"denylist": ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"]}));
        assert!(!deny.admits(["my-bot1"].into_iter()), "TEST 7");
        assert!(!deny.admits(["my-bot1", "my-bot2"].into_iter()), "TEST 8");
        assert!(!deny.admits(["my-bot2", "my-bot1"].into_iter()), "TEST 9");
        assert!(!deny.admits(["Baiduspider/3.0"].into_iter()), "TEST 10");
        assert!(deny.admits(["foo/bar"].into_iter()), "TEST 11");
        assert!(
            !deny.admits(["  my-bot1 "].into_iter()),
            "values are stripped"
        );
        assert!(
            !deny.admits(["foo/bar", "my-bot1"].into_iter()),
            "any denied value refuses"
        );
    }

    #[test]
    fn allowlist() {
        // ua-restriction.t TEST 12-17: allowlist `my-bot1`, `(Baiduspider)/(\d+)\.(\d+)`.
        let allow = instance_of(json!({"allowlist": ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"]}));
        assert!(allow.admits(["my-bot1"].into_iter()), "TEST 13");
        assert!(allow.admits(["Baiduspider/3.0"].into_iter()), "TEST 14");
        assert!(
            !allow.admits(["foo/bar"].into_iter()),
            "TEST 15: not listed, refused"
        );
        assert!(allow.admits(["foo/bar", "my-bot1"].into_iter()), "TEST 16");
        assert!(allow.admits(["my-bot1", "foo/bar"].into_iter()), "TEST 17");
        assert!(!allow.admits(["foo/bar", "curl"].into_iter()));
    }

    #[test]
    fn missing_user_agent() {
        // ua-restriction.t TEST 30-33.
        let strict = instance_of(json!({"allowlist": ["my-bot1"]}));
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
            json!({"allowlist": ["a"]}),
            json!({"denylist": ["b"], "bypass_missing": true, "message": "m"}),
        ] {
            assert!(UaRestriction.build(&good).is_ok(), "{good}");
        }
        // ua-restriction.t TEST 1 and TEST 29: exactly one list.
        assert_eq!(
            UaRestriction
                .build(&json!({"allowlist": ["my-bot1"], "denylist": ["my-bot1"]}))
                .err()
                .as_deref(),
            Some("value should match only one schema, but matches both schemas 1 and 2")
        );
        assert_eq!(
            UaRestriction.build(&json!({})).err().as_deref(),
            Some("value should match only one schema, but matches none")
        );
        for bad in [
            json!({"allowlist": []}),
            json!({"allowlist": [""]}),
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
