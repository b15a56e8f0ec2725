//! `fault-injection` (priority 11000, rewrite): delay or answer requests, to test resilience.
//!
//! Config (at least one of the two):
//! - `abort`: `http_status` (required, at least 200), `body` (optional; `$var` / `${var}`
//!   replaced by request variables), `headers` (optional map; values take variables too),
//!   `percentage` (0-100, default: always), `vars` (optional list of `vars` rules).
//! - `delay`: `duration` (seconds, required, at least 0, fractions allowed), `percentage`,
//!   `vars`.
//!
//! `vars` is a list of rules in APISIX's expression language; the fault applies when any of them
//! matches. The delay (when it applies) comes first, then the abort: the client gets
//! `http_status` with `body` (`text/plain` unless `headers` sets a `Content-Type`) and the
//! upstream is not called.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use model::expr::{Expr, Vars};
use model::template::{Syntax, Template};
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx};

/// The kind.
pub struct FaultInjection;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
pub struct Conf {
    abort: Option<AbortConf>,
    delay: Option<DelayConf>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AbortConf {
    #[schemars(range(min = 200))]
    http_status: u16,
    body: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "headers_schema")]
    headers: Option<BTreeMap<String, HeaderConf>>,
    #[schemars(range(max = 100))]
    percentage: Option<u8>,
    #[schemars(length(max = 20))]
    vars: Option<Vec<Vec<Value>>>,
}

/// A header's value: a string (with variables) or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderConf {
    Text(String),
    Number(serde_json::Number),
}

/// APISIX's schema of `abort.headers`: at least one, names without `:`, string or number values.
fn headers_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "minProperties": 1,
        "patternProperties": {"^[^:]+$": {"oneOf": [{"type": "string"}, {"type": "number"}]}}
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DelayConf {
    #[schemars(range(min = 0))]
    duration: f64,
    #[schemars(range(max = 100))]
    percentage: Option<u8>,
    #[schemars(length(max = 20))]
    vars: Option<Vec<Vec<Value>>>,
}

/// When a fault applies: a sampled percentage and `vars` rules (any one matching).
struct When {
    percentage: Option<u8>,
    vars: Option<Vec<Expr>>,
}

struct Abort {
    status: StatusCode,
    body: Option<Template>,
    headers: Vec<(HeaderName, Template)>,
    when: When,
}

struct Delay {
    duration: Duration,
    when: When,
}

/// A configured instance (the checked config).
pub struct Instance {
    abort: Option<Abort>,
    delay: Option<Delay>,
}

fn when(
    percentage: Option<u8>,
    vars: Option<Vec<Vec<Value>>>,
    field: &str,
) -> Result<When, String> {
    if let Some(p) = percentage {
        if p > 100 {
            return Err(format!("{field}.percentage must be 0-100, got {p}"));
        }
    }
    let vars = vars
        .map(|rules| {
            rules
                .into_iter()
                .map(|rule| Expr::compile(&Value::Array(rule)).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(When { percentage, vars })
}

impl When {
    fn applies(&self, vars: &dyn Vars) -> bool {
        let matched = self
            .vars
            .as_ref()
            .is_none_or(|rules| rules.iter().any(|r| r.eval(vars)));
        matched
            && self
                .percentage
                .is_none_or(|p| rand::rng().random_range(1..=100u8) <= p)
    }
}

impl Kind for FaultInjection {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "fault-injection";
    const PRIORITY: i32 = 11000;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        if conf.abort.is_none() && conf.delay.is_none() {
            return Err("at least one of abort or delay is required".to_owned());
        }
        let abort = conf
            .abort
            .map(|a| -> Result<Abort, String> {
                let status = StatusCode::from_u16(a.http_status)
                    .ok()
                    .filter(|_| a.http_status >= 200)
                    .ok_or_else(|| {
                        format!(
                            "abort.http_status must be an HTTP status of at least 200, got {}",
                            a.http_status
                        )
                    })?;
                let headers = a
                    .headers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| {
                        let value = match value {
                            HeaderConf::Text(text) => text,
                            HeaderConf::Number(n) => n.to_string(),
                        };
                        let name = HeaderName::from_bytes(name.as_bytes())
                            .map_err(|_| format!("abort.headers: invalid header name `{name}`"))?;
                        HeaderValue::from_str(&value)
                            .map_err(|_| format!("abort.headers: invalid value for `{name}`"))?;
                        Ok((name, Template::parse(&value, Syntax::KeepEscape)))
                    })
                    .collect::<Result<_, String>>()?;
                Ok(Abort {
                    status,
                    body: a
                        .body
                        .map(|body| Template::parse(&body, Syntax::KeepEscape)),
                    headers,
                    when: when(a.percentage, a.vars, "abort")?,
                })
            })
            .transpose()?;
        let delay = conf
            .delay
            .map(|d| -> Result<Delay, String> {
                let duration = Duration::try_from_secs_f64(d.duration).map_err(|_| {
                    format!(
                        "delay.duration must be a number of seconds, at least 0, got {}",
                        d.duration
                    )
                })?;
                Ok(Delay {
                    duration,
                    when: when(d.percentage, d.vars, "delay")?,
                })
            })
            .transpose()?;
        Ok(Instance { abort, delay })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

impl Abort {
    fn reply(&self, vars: &dyn Vars) -> Reply {
        let mut headers = HeaderMap::new();
        for (name, template) in &self.headers {
            // Checked at build time; a substituted variable may still be unfit for a header.
            if let Ok(value) = HeaderValue::from_str(&template.render(vars)) {
                headers.insert(name.clone(), value);
            }
        }
        let body = self
            .body
            .as_ref()
            .map(|b| Bytes::from(b.render(vars)))
            .unwrap_or_default();
        if !body.is_empty() && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        Reply {
            status: self.status,
            headers,
            body,
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        if let Some(delay) = &self.delay {
            if delay.when.applies(req.vars) {
                tokio::time::sleep(delay.duration).await;
            }
        }
        if let Some(abort) = &self.abort {
            if abort.when.applies(req.vars) {
                return Flow::Respond(abort.reply(req.vars));
            }
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::{header, Fake};
    use plugin_api::PluginKind;
    use serde_json::json;

    async fn run(conf: Value, vars: &[(&'static str, &'static str)]) -> Option<Reply> {
        let plugin = FaultInjection.build(&conf).expect("valid");
        Fake::new(vars).rewrite(&*plugin).await
    }

    #[tokio::test]
    async fn abort() {
        let reply = run(json!({"abort": {"http_status": 503}}), &[])
            .await
            .expect("aborted");
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reply.body.is_empty());
        assert!(reply.headers.is_empty());

        let reply = run(
            json!({"abort": {"http_status": 418, "body": "teapot at $uri${missing}!", "headers": {"X-Fault": "yes $arg_a"}}}),
            &[("uri", "/t"), ("arg_a", "1")],
        )
        .await
        .expect("aborted");
        assert_eq!(reply.status.as_u16(), 418);
        assert_eq!(reply.body, "teapot at /t!");
        assert_eq!(header(&reply.headers, "x-fault"), Some("yes 1"));
        assert_eq!(header(&reply.headers, "content-type"), Some("text/plain"));

        let reply = run(
            json!({"abort": {"http_status": 200, "body": "{}", "headers": {"Content-Type": "application/json"}}}),
            &[],
        )
        .await
        .expect("aborted");
        assert_eq!(
            header(&reply.headers, "content-type"),
            Some("application/json")
        );
    }

    #[tokio::test]
    async fn percentage() {
        assert!(
            run(json!({"abort": {"http_status": 500, "percentage": 0}}), &[])
                .await
                .is_none()
        );
        assert!(run(
            json!({"abort": {"http_status": 500, "percentage": 100}}),
            &[]
        )
        .await
        .is_some());
        let hits = {
            let plugin = FaultInjection
                .build(&json!({"abort": {"http_status": 500, "percentage": 50}}))
                .expect("valid");
            let mut hits = 0;
            for _ in 0..400 {
                if Fake::new(&[]).rewrite(&*plugin).await.is_some() {
                    hits += 1;
                }
            }
            hits
        };
        assert!((100..300).contains(&hits), "about half: {hits}");
    }

    #[tokio::test]
    async fn vars_any_rule_matches() {
        let conf = json!({"abort": {"http_status": 403, "vars": [[["arg_name", "==", "jack"], ["arg_age", ">", 18]], [["http_x_fault", "==", "1"]]]}});
        assert!(
            run(conf.clone(), &[("arg_name", "jack"), ("arg_age", "20")])
                .await
                .is_some()
        );
        assert!(
            run(conf.clone(), &[("arg_name", "jack"), ("arg_age", "10")])
                .await
                .is_none()
        );
        assert!(run(conf.clone(), &[("http_x_fault", "1")]).await.is_some());
        assert!(run(conf, &[]).await.is_none());
    }

    #[tokio::test]
    async fn delay() {
        let ms = |start: std::time::Instant| start.elapsed().as_millis();
        let start = std::time::Instant::now();
        assert!(run(json!({"delay": {"duration": 0.15}}), &[])
            .await
            .is_none());
        assert!(ms(start) >= 150, "{}", ms(start));

        let conf = json!({"delay": {"duration": 5, "vars": [[["arg_slow", "==", "1"]]]}});
        let start = std::time::Instant::now();
        assert!(run(conf, &[]).await.is_none());
        assert!(ms(start) < 1000, "vars did not match");
        let conf = json!({"delay": {"duration": 0.1, "vars": [[["arg_slow", "==", "1"]]]}});
        let start = std::time::Instant::now();
        assert!(run(conf, &[("arg_slow", "1")]).await.is_none());
        assert!(ms(start) >= 100);

        let start = std::time::Instant::now();
        assert!(run(json!({"delay": {"duration": 5, "percentage": 0}}), &[])
            .await
            .is_none());
        assert!(ms(start) < 1000, "not sampled");

        let start = std::time::Instant::now();
        let reply = run(
            json!({"delay": {"duration": 0.1}, "abort": {"http_status": 500}}),
            &[],
        )
        .await;
        assert!(reply.is_some(), "delayed then aborted");
        assert!(ms(start) >= 100);
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({"abort": {"http_status": 200}}),
            json!({"delay": {"duration": 0}}),
            json!({"abort": {"http_status": 500, "body": "", "headers": {"X-A": "b"}, "percentage": 100, "vars": [[["arg_a", "==", "1"]]]}, "delay": {"duration": 0.5, "percentage": 1, "vars": []}}),
        ] {
            assert!(FaultInjection.build(&good).is_ok(), "{good}");
        }
        for bad in [
            json!({}),
            json!({"abort": {}}),
            json!({"abort": {"http_status": 199}}),
            json!({"abort": {"http_status": 1000}}),
            json!({"abort": {"http_status": 500, "percentage": 101}}),
            json!({"abort": {"http_status": 500, "percentage": -1}}),
            json!({"abort": {"http_status": 500, "headers": {"bad name": "x"}}}),
            json!({"abort": {"http_status": 500, "headers": {"X-A": "a\nb"}}}),
            json!({"abort": {"http_status": 500, "vars": [["arg_a", "==", "1"]]}}),
            json!({"abort": {"http_status": 500, "vars": [[["arg_a", "~~", "(bad"]]]}}),
            json!({"abort": {"http_status": 500, "extra": 1}}),
            json!({"delay": {}}),
            json!({"delay": {"duration": -1}}),
            json!({"delay": {"duration": "1"}}),
            json!({"delay": {"duration": 1, "percentage": 200}}),
            json!({"abort": {"http_status": 500}, "extra": 1}),
        ] {
            assert!(FaultInjection.build(&bad).is_err(), "{bad}");
        }
    }
}
