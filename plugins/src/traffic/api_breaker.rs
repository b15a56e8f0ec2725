//! `api-breaker` (priority 1005, access + log): a circuit breaker on the route's response
//! statuses.
//!
//! Config: `break_response_code` (required, 200-599), `break_response_body` (optional),
//! `break_response_headers` (optional, `[{key, value}]`, both 1+ characters; `$var` references in
//! values are expanded; as in APISIX they are sent only with a `break_response_body`),
//! `max_breaker_sec` (default 300, >= 3), `unhealthy: {http_statuses (default [500], 500-599,
//! 1+ unique), failures (default 3, >= 1)}`, `healthy: {http_statuses (default [200], 200-499,
//! 1+ unique), successes (default 3, >= 1)}`.
//!
//! APISIX's counting, per instance (one per config version of the route): each unhealthy status
//! adds to the unhealthy count, and every `failures`-th one trips the breaker. While tripped,
//! requests get the break response for `2^floor(unhealthy / failures)` seconds (2, 4, 8, ...),
//! at most `max_breaker_sec`. Once the count is non-zero, healthy statuses add to a healthy
//! count, and `successes` of them clear everything. Other statuses change nothing, and the break
//! responses themselves are not counted. The status counted is the upstream's, as APISIX's
//! (the gateway's 502/504 when every try failed), whatever a plugin changed it to for the client;
//! requests that never went upstream (a plugin answered) are not counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;

use model::HashOn;
use plugin_api::{BuildContext, Flow, Kind, LogCtx, Phases, Plugin, Reply, RequestCtx};

/// The kind.
pub struct ApiBreaker;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    #[schemars(range(min = 200, max = 599))]
    break_response_code: u16,
    break_response_body: Option<String>,
    break_response_headers: Option<Vec<HeaderConf>>,
    #[serde(default = "default_max")]
    #[schemars(range(min = 3))]
    max_breaker_sec: u64,
    #[serde(default)]
    unhealthy: Unhealthy,
    #[serde(default)]
    healthy: Healthy,
}

#[derive(Deserialize, JsonSchema)]
struct HeaderConf {
    #[schemars(length(min = 1))]
    key: String,
    #[schemars(length(min = 1))]
    value: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Unhealthy {
    #[serde(default = "default_unhealthy_statuses")]
    #[schemars(length(min = 1), inner(range(min = 500, max = 599)), extend("uniqueItems" = true))]
    http_statuses: Vec<u16>,
    #[serde(default = "three")]
    #[schemars(range(min = 1))]
    failures: u64,
}

impl Default for Unhealthy {
    fn default() -> Self {
        Unhealthy {
            http_statuses: default_unhealthy_statuses(),
            failures: three(),
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Healthy {
    #[serde(default = "default_healthy_statuses")]
    #[schemars(length(min = 1), inner(range(min = 200, max = 499)), extend("uniqueItems" = true))]
    http_statuses: Vec<u16>,
    #[serde(default = "three")]
    #[schemars(range(min = 1))]
    successes: u64,
}

impl Default for Healthy {
    fn default() -> Self {
        Healthy {
            http_statuses: default_healthy_statuses(),
            successes: three(),
        }
    }
}

fn default_max() -> u64 {
    300
}
fn default_unhealthy_statuses() -> Vec<u16> {
    vec![500]
}
fn default_healthy_statuses() -> Vec<u16> {
    vec![200]
}
fn three() -> u64 {
    3
}

/// The breaker's counts.
#[derive(Debug, Default)]
struct Breaker {
    unhealthy: u64,
    healthy: u64,
    /// When it last tripped.
    tripped: Option<Instant>,
}

/// The rules the counts follow.
struct Rules {
    unhealthy: Vec<u16>,
    failures: u64,
    healthy: Vec<u16>,
    successes: u64,
    max_open: Duration,
}

impl Breaker {
    /// Whether requests are refused at `now`.
    fn open(&self, rules: &Rules, now: Instant) -> bool {
        let Some(tripped) = self.tripped else {
            return false;
        };
        if self.unhealthy == 0 {
            return false;
        }
        // As APISIX: whole multiples of `failures` double the time.
        let trips = (self.unhealthy / rules.failures.max(1)).max(1);
        let secs = 1u64
            .checked_shl(u32::try_from(trips).unwrap_or(u32::MAX))
            .unwrap_or(u64::MAX);
        let open_for = Duration::from_secs(secs).min(rules.max_open);
        now.saturating_duration_since(tripped) < open_for
    }

    /// Counts a finished request's status.
    fn record(&mut self, rules: &Rules, status: u16, now: Instant) {
        if rules.unhealthy.contains(&status) {
            self.unhealthy += 1;
            if self.unhealthy % rules.failures == 0 {
                self.tripped = Some(now);
            }
            return;
        }
        if !rules.healthy.contains(&status) || self.unhealthy == 0 {
            return;
        }
        self.healthy += 1;
        if self.healthy >= rules.successes {
            *self = Breaker::default();
        }
    }
}

/// A configured instance (the checked config).
pub struct Instance {
    rules: Rules,
    state: Mutex<Breaker>,
    status: StatusCode,
    body: Option<Bytes>,
    headers: Vec<(HeaderName, HashOn)>,
}

impl Kind for ApiBreaker {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "api-breaker";
    const PRIORITY: i32 = 1005;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        check(conf)
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

fn statuses(list: &[u16], range: std::ops::RangeInclusive<u16>, field: &str) -> Result<(), String> {
    if list.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if let Some(bad) = list.iter().find(|s| !range.contains(s)) {
        return Err(format!(
            "{field}: {bad} is not in {}-{}",
            range.start(),
            range.end()
        ));
    }
    if list.iter().enumerate().any(|(i, s)| list[..i].contains(s)) {
        return Err(format!("{field} must not repeat a status"));
    }
    Ok(())
}

/// Checks a config and compiles it.
fn check(conf: Conf) -> Result<Instance, String> {
    if !(200..=599).contains(&conf.break_response_code) {
        return Err(format!(
            "break_response_code must be 200-599, got {}",
            conf.break_response_code
        ));
    }
    let status = StatusCode::from_u16(conf.break_response_code).map_err(|e| e.to_string())?;
    if conf.max_breaker_sec < 3 {
        return Err(format!(
            "max_breaker_sec must be at least 3, got {}",
            conf.max_breaker_sec
        ));
    }
    statuses(
        &conf.unhealthy.http_statuses,
        500..=599,
        "unhealthy.http_statuses",
    )?;
    statuses(
        &conf.healthy.http_statuses,
        200..=499,
        "healthy.http_statuses",
    )?;
    if conf.unhealthy.failures == 0 {
        return Err("unhealthy.failures must be at least 1".to_owned());
    }
    if conf.healthy.successes == 0 {
        return Err("healthy.successes must be at least 1".to_owned());
    }
    let mut headers = Vec::new();
    for h in conf.break_response_headers.unwrap_or_default() {
        if h.key.is_empty() || h.value.is_empty() {
            return Err("break_response_headers: key and value must not be empty".to_owned());
        }
        let name = HeaderName::from_bytes(h.key.as_bytes())
            .map_err(|_| format!("break_response_headers: invalid header name `{}`", h.key))?;
        if h.value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(format!(
                "break_response_headers: invalid value for `{}`",
                h.key
            ));
        }
        headers.push((name, HashOn::combination(&h.value)));
    }
    Ok(Instance {
        rules: Rules {
            unhealthy: conf.unhealthy.http_statuses,
            failures: conf.unhealthy.failures,
            healthy: conf.healthy.http_statuses,
            successes: conf.healthy.successes,
            max_open: Duration::from_secs(conf.max_breaker_sec),
        },
        state: Mutex::new(Breaker::default()),
        status,
        body: conf.break_response_body.map(Bytes::from),
        headers,
    })
}

impl Instance {
    fn break_reply(&self, req: &RequestCtx<'_>) -> Reply {
        let mut headers = HeaderMap::new();
        let Some(body) = &self.body else {
            return Reply {
                status: self.status,
                headers,
                body: Bytes::new(),
            };
        };
        for (name, value) in &self.headers {
            let value = value.key(req.vars).unwrap_or_default();
            if let Ok(value) = HeaderValue::from_str(&value) {
                // nginx keeps one Content-Type: the last one set wins.
                if *name == CONTENT_TYPE {
                    headers.insert(name.clone(), value);
                } else {
                    headers.append(name.clone(), value);
                }
            }
        }
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        Reply {
            status: self.status,
            headers,
            body: body.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS | Phases::LOG
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let open = self
            .state
            .lock()
            .map(|b| b.open(&self.rules, Instant::now()))
            .unwrap_or(false);
        if !open {
            return Flow::Continue;
        }
        Flow::Respond(self.break_reply(req))
    }

    /// Counts the upstream's status: requests that never went upstream (a break response,
    /// another plugin's answer) are not counted.
    fn log(&self, done: &LogCtx<'_>) {
        let Some(status) = done.upstream_status else {
            return;
        };
        if let Ok(mut breaker) = self.state.lock() {
            breaker.record(&self.rules, status.as_u16(), Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::parse_conf;
    use plugin_api::PluginKind;
    use serde_json::Value;

    fn build(conf: &Value) -> Result<Instance, String> {
        check(parse_conf(conf)?)
    }
    use plugin_api::testing;
    use serde_json::json;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn rules(failures: u64, successes: u64, max: u64) -> Rules {
        Rules {
            unhealthy: vec![500, 503],
            failures,
            healthy: vec![200],
            successes,
            max_open: secs(max),
        }
    }

    #[test]
    fn trips_after_failures_and_doubles() {
        let r = rules(3, 3, 300);
        let t0 = Instant::now();
        let mut b = Breaker::default();
        b.record(&r, 500, t0);
        b.record(&r, 503, t0);
        assert!(!b.open(&r, t0), "two failures are not enough");
        b.record(&r, 404, t0);
        b.record(&r, 500, t0);
        assert!(b.open(&r, t0));
        assert!(b.open(&r, t0 + Duration::from_millis(1999)));
        assert!(!b.open(&r, t0 + secs(2)), "open 2 s after the first trip");
        // Failures in between do not re-trip until the next multiple of `failures` (they do
        // lengthen the last trip, as in APISIX: 2^ceil(5 / 3) = 4 s from t0).
        assert!(!b.open(&r, t0 + secs(3)));
        let t1 = t0 + secs(5);
        b.record(&r, 500, t1);
        b.record(&r, 500, t1);
        assert!(!b.open(&r, t1));
        b.record(&r, 500, t1);
        assert!(b.open(&r, t1 + Duration::from_millis(3999)));
        assert!(!b.open(&r, t1 + secs(4)), "4 s the second time");
        let t2 = t1 + secs(9);
        for _ in 0..3 {
            b.record(&r, 500, t2);
        }
        assert!(b.open(&r, t2 + Duration::from_millis(7999)));
        assert!(!b.open(&r, t2 + secs(8)), "then 8 s");
    }

    #[test]
    fn capped_by_max_breaker_sec() {
        let r = rules(1, 1, 5);
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..100 {
            b.record(&r, 500, t0);
        }
        assert!(b.open(&r, t0 + Duration::from_millis(4999)));
        assert!(!b.open(&r, t0 + secs(5)));
    }

    #[test]
    fn successes_reset() {
        let r = rules(2, 2, 300);
        let t0 = Instant::now();
        let mut b = Breaker::default();
        b.record(&r, 200, t0);
        assert_eq!(b.healthy, 0, "healthy statuses count only after a failure");
        b.record(&r, 500, t0);
        b.record(&r, 200, t0);
        assert_eq!((b.unhealthy, b.healthy), (1, 1));
        b.record(&r, 201, t0);
        assert_eq!(b.healthy, 1, "not a healthy status");
        b.record(&r, 200, t0);
        assert_eq!((b.unhealthy, b.healthy, b.tripped), (0, 0, None));
        // Tripped, then healed: closed at once.
        b.record(&r, 500, t0);
        b.record(&r, 500, t0);
        assert!(b.open(&r, t0));
        b.record(&r, 200, t0);
        b.record(&r, 200, t0);
        assert!(!b.open(&r, t0));
    }

    #[tokio::test]
    async fn break_responses() {
        let i = build(&json!({
            "break_response_code": 502,
            "break_response_body": "{\"down\": true}",
            "break_response_headers": [{"key": "X-Breaker", "value": "on $remote_addr"}, {"key": "Content-Type", "value": "application/json"}],
            "unhealthy": {"failures": 1}
        }))
        .expect("valid");
        let vars = [("remote_addr", "1.1.1.1")];
        let mut state = http::Extensions::new();
        assert!(testing::access(&i, &vars, &mut state).await.0.is_none());
        testing::log(&i, 500, &state);
        let mut broken = http::Extensions::new();
        let reply = testing::access(&i, &vars, &mut broken)
            .await
            .0
            .expect("open");
        assert_eq!(reply.status, 502);
        assert_eq!(&reply.body[..], br#"{"down": true}"#);
        assert_eq!(reply.headers["x-breaker"], "on 1.1.1.1");
        assert_eq!(reply.headers["content-type"], "application/json");
        // The break response itself is not counted.
        testing::log_plugin_answered(&i, 502, &broken);
        assert_eq!(i.state.lock().expect("lock").unhealthy, 1);

        // Without a body: the bare status, no headers (as APISIX).
        let bare = build(&json!({
            "break_response_code": 503,
            "break_response_headers": [{"key": "X-Breaker", "value": "on"}],
            "unhealthy": {"http_statuses": [502], "failures": 1}
        }))
        .expect("valid");
        testing::log(&bare, 500, &http::Extensions::new());
        assert!(testing::access(&bare, &vars, &mut http::Extensions::new())
            .await
            .0
            .is_none());
        testing::log(&bare, 502, &http::Extensions::new());
        let reply = testing::access(&bare, &vars, &mut http::Extensions::new())
            .await
            .0
            .expect("open");
        assert_eq!(reply.status, 503);
        assert!(reply.body.is_empty() && reply.headers.is_empty());
    }

    #[test]
    fn defaults() {
        let i = build(&json!({"break_response_code": 502})).expect("valid");
        assert_eq!(i.rules.unhealthy, [500]);
        assert_eq!(i.rules.failures, 3);
        assert_eq!(i.rules.healthy, [200]);
        assert_eq!(i.rules.successes, 3);
        assert_eq!(i.rules.max_open, secs(300));
        assert!(i.body.is_none() && i.headers.is_empty());
        let partial = build(&json!({"break_response_code": 502, "unhealthy": {"failures": 5}, "healthy": {"http_statuses": [200, 204]}})).expect("valid");
        assert_eq!(partial.rules.unhealthy, [500]);
        assert_eq!(partial.rules.successes, 3);
    }

    #[test]
    fn configs_are_checked() {
        assert!(ApiBreaker
            .build(&json!({"break_response_code": 200, "max_breaker_sec": 3}))
            .is_ok());
        for (bad, why) in [
            (json!({}), "break_response_code"),
            (json!({"break_response_code": 199}), "break_response_code"),
            (json!({"break_response_code": 600}), "break_response_code"),
            (
                json!({"break_response_code": 502, "max_breaker_sec": 2}),
                "max_breaker_sec",
            ),
            (
                json!({"break_response_code": 502, "unhealthy": {"http_statuses": []}}),
                "unhealthy.http_statuses",
            ),
            (
                json!({"break_response_code": 502, "unhealthy": {"http_statuses": [404]}}),
                "unhealthy.http_statuses",
            ),
            (
                json!({"break_response_code": 502, "unhealthy": {"http_statuses": [500, 500]}}),
                "repeat",
            ),
            (
                json!({"break_response_code": 502, "unhealthy": {"failures": 0}}),
                "failures",
            ),
            (
                json!({"break_response_code": 502, "healthy": {"http_statuses": [500]}}),
                "healthy.http_statuses",
            ),
            (
                json!({"break_response_code": 502, "healthy": {"successes": 0}}),
                "successes",
            ),
            (
                json!({"break_response_code": 502, "healthy": {"extra": 1}}),
                "extra",
            ),
            (
                json!({"break_response_code": 502, "break_response_headers": [{"key": "", "value": "v"}]}),
                "break_response_headers",
            ),
            (
                json!({"break_response_code": 502, "break_response_headers": [{"key": "k"}]}),
                "value",
            ),
            (
                json!({"break_response_code": 502, "break_response_headers": [{"key": "bad key", "value": "v"}]}),
                "invalid header name",
            ),
            (
                json!({"break_response_code": 502, "break_response_body": 5}),
                "break_response_body",
            ),
            (json!({"break_response_code": 502, "extra": 1}), "extra"),
        ] {
            let err = match ApiBreaker.build(&bad) {
                Ok(_) => panic!("accepted {bad}"),
                Err(e) => e,
            };
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert_eq!(ApiBreaker.priority(), 1005);
    }
}
