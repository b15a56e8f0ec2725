//! `limit-conn` (priority 1003, access + log): at most `conn` concurrent requests per key, as
//! nginx's `limit_conn`.
//!
//! Config: `default_conn_delay` (required, seconds, > 0) and either `conn` (> 0), `burst` (>= 0)
//! and `key`, or `rules`: a list of `{conn, burst, key}` where `key` is a template of request
//! variables; a rule applies when its numbers resolve and its key resolves at least one
//! variable, and every applying rule counts the request. `conn` and `burst` are numbers or
//! templates resolved per request (`"${http_conn ?? 5}"`). `only_use_default_delay` (default
//! false), `key_type` `var` (default) | `var_combination` (see [`crate::support::limit_key`]),
//! `rejected_code` (default 503, 200-599), `rejected_msg` (optional, 1+ characters: the body is
//! `{"error_msg": msg}`, else empty), `allow_degradation` (default false: a `conn` or `burst`
//! that does not resolve to a valid number, or no rule applying, answers 500; true lets the
//! request through), `policy` (`local`, the default; `redis*` are refused: not supported),
//! `key_ttl` (accepted and unused: it only matters to the redis policies).
//!
//! As lua-resty-limit-traffic's `limit.conn`: the request that makes the key's count `n` is
//! rejected (and not counted) when `n > conn + burst`; within the burst it waits
//! `unit_delay * floor((n - 1) / conn)` seconds. `unit_delay` starts at `default_conn_delay` and,
//! unless `only_use_default_delay`, becomes the mean of itself and each finished request's
//! latency. The count is taken back in `log`, or when the request is dropped before that (the
//! client went away), and only for requests this instance counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::support::limit_key::{
    check_policy, non_negative_or_var, positive_or_var, rejection, unusable_limits, var_template,
    Amount, KeySource, KeyType,
};
use model::template::Template;
use plugin_api::Vars;
use plugin_api::{BuildContext, Flow, Kind, LogCtx, Phases, Plugin, Reply, RequestCtx};

/// The kind.
pub struct LimitConn;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    #[serde(default)]
    #[schemars(schema_with = "positive_or_var")]
    conn: Option<Amount>,
    #[serde(default)]
    #[schemars(schema_with = "non_negative_or_var")]
    burst: Option<Amount>,
    #[schemars(extend("exclusiveMinimum" = 0))]
    default_conn_delay: Option<f64>,
    #[serde(default)]
    only_use_default_delay: bool,
    key: Option<String>,
    #[serde(default)]
    key_type: KeyType,
    #[serde(default = "default_code")]
    #[schemars(range(min = 200, max = 599))]
    rejected_code: u16,
    #[schemars(length(min = 1))]
    rejected_msg: Option<String>,
    #[serde(default)]
    allow_degradation: bool,
    #[serde(default = "default_policy")]
    policy: String,
    /// Only used by the redis policies; accepted for compatibility.
    #[serde(default)]
    key_ttl: Option<u64>,
    rules: Option<Vec<RuleConf>>,
}

#[derive(Deserialize, JsonSchema)]
struct RuleConf {
    #[schemars(schema_with = "positive_or_var")]
    conn: Amount,
    #[schemars(schema_with = "non_negative_or_var")]
    burst: Amount,
    #[serde(deserialize_with = "var_template")]
    #[schemars(with = "String")]
    key: Template,
}

fn default_code() -> u16 {
    503
}
fn default_policy() -> String {
    "local".to_owned()
}

/// The counts of one instance, shared with the requests that hold one.
struct Counts {
    /// In-flight requests per key; a key at zero is removed, so the map never holds more keys
    /// than there are requests in flight.
    by_key: Mutex<HashMap<String, u64>>,
    /// Seconds per excess connection.
    unit_delay: Mutex<f64>,
}

impl Counts {
    /// Counts a request for `key`: its delay, or `None` (rejected, not counted).
    fn incoming(&self, key: &str, conn: u64, burst: u64) -> Option<Duration> {
        let n = {
            let mut by_key = self.by_key.lock().ok()?;
            let count = by_key.entry(key.to_owned()).or_insert(0);
            if *count + 1 > conn.saturating_add(burst) {
                if *count == 0 {
                    by_key.remove(key);
                }
                return None;
            }
            *count += 1;
            *count
        };
        if n <= conn {
            return Some(Duration::ZERO);
        }
        let unit = self.unit_delay.lock().map(|u| *u).unwrap_or_default();
        let factor = ((n - 1) / conn) as f64;
        Some(Duration::try_from_secs_f64(unit * factor).unwrap_or(Duration::ZERO))
    }

    /// Takes back one request for `key`; `latency` (when adapting) updates the unit delay.
    fn leaving(&self, key: &str, latency: Option<Duration>) {
        if let Ok(mut by_key) = self.by_key.lock() {
            if let Some(count) = by_key.get_mut(key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    by_key.remove(key);
                }
            }
        }
        if let (Some(latency), Ok(mut unit)) = (latency, self.unit_delay.lock()) {
            *unit = (latency.as_secs_f64() + *unit) / 2.0;
        }
    }

    #[cfg(test)]
    fn count(&self, key: &str) -> u64 {
        self.by_key
            .lock()
            .map(|m| m.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// One counted request: released once, in `log` or when the request's state is dropped.
struct Held {
    counts: Arc<Counts>,
    key: String,
    /// When the request went on (after its delay), for the latency.
    since: Instant,
    adapt: bool,
    released: AtomicBool,
}

impl Held {
    fn release(&self, finished: bool) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let latency = (finished && self.adapt).then(|| self.since.elapsed());
        self.counts.leaving(&self.key, latency);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release(false);
    }
}

/// The requests counted by `limit-conn` instances, kept in the request's state.
#[derive(Clone, Default)]
struct HeldConns(Vec<Arc<Held>>);

/// Where the counted keys come from.
enum Mode {
    /// `conn`, `burst` and `key`.
    Single {
        conn: Amount,
        burst: Amount,
        source: KeySource,
    },
    /// `rules`, each keyed by a template.
    Rules(Vec<RuleConf>),
}

/// One key to count a request under.
struct Check {
    key: String,
    conn: u64,
    burst: u64,
}

/// A configured instance (the checked config).
pub struct Instance {
    mode: Mode,
    counts: Arc<Counts>,
    adapt: bool,
    allow_degradation: bool,
    reply: Reply,
}

impl Instance {
    /// The keys this request is counted under, or why it cannot be counted.
    fn checks(&self, vars: &dyn Vars) -> Result<Vec<Check>, String> {
        match &self.mode {
            Mode::Single {
                conn,
                burst,
                source,
            } => Ok(vec![Check {
                conn: conn.resolve(vars, true)?,
                burst: burst.resolve(vars, false)?,
                key: source.of(vars),
            }]),
            Mode::Rules(rules) => {
                // A rule whose numbers or key do not resolve for this request does not apply.
                let checks: Vec<Check> = rules
                    .iter()
                    .filter_map(|rule| {
                        let conn = rule.conn.resolve(vars, true).ok()?;
                        let burst = rule.burst.resolve(vars, false).ok()?;
                        let mut key = String::new();
                        let resolved = rule.key.render_into(vars, &mut key);
                        (resolved > 0).then_some(Check { key, conn, burst })
                    })
                    .collect();
                if checks.is_empty() {
                    return Err("no rule applies".to_owned());
                }
                Ok(checks)
            }
        }
    }
}

impl Kind for LimitConn {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "limit-conn";
    const PRIORITY: i32 = 1003;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        check(conf)
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

/// Checks a config and compiles it.
fn check(conf: Conf) -> Result<Instance, String> {
    if conf.conn == Some(Amount::Fixed(0)) {
        return Err("conn must be greater than 0".to_owned());
    }
    // APISIX's `oneOf`: conn, burst, default_conn_delay and key, or default_conn_delay and rules.
    let delay = conf.default_conn_delay;
    let mode = match (delay, conf.conn, conf.burst, conf.key, conf.rules) {
        (Some(_), Some(_), Some(_), Some(_), Some(_)) => {
            return Err(
                "value should match only one schema, but matches both schemas 1 and 2".into(),
            )
        }
        (Some(_), Some(conn), Some(burst), Some(key), None) => Mode::Single {
            conn,
            burst,
            source: KeySource::new(
                &key,
                conf.key_type,
                &[KeyType::Var, KeyType::VarCombination],
            )?,
        },
        (Some(_), _, _, _, Some(rules)) => Mode::Rules(rules),
        _ => return Err("value should match only one schema, but matches none".into()),
    };
    let delay = delay.unwrap_or_default();
    if !(delay.is_finite() && delay > 0.0) {
        return Err(format!(
            "default_conn_delay must be greater than 0, got {delay}"
        ));
    }
    check_policy(&conf.policy)?;
    let reply = rejection(conf.rejected_code, conf.rejected_msg.as_deref())?;
    let _ = conf.key_ttl;
    Ok(Instance {
        mode,
        counts: Arc::new(Counts {
            by_key: Mutex::new(HashMap::new()),
            unit_delay: Mutex::new(delay),
        }),
        adapt: !conf.only_use_default_delay,
        allow_degradation: conf.allow_degradation,
        reply,
    })
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS | Phases::LOG
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let checks = match self.checks(req.vars) {
            Ok(checks) => checks,
            Err(e) => {
                return unusable_limits(
                    "limit-conn: failed to get limit conn rules",
                    &e,
                    self.allow_degradation,
                )
            }
        };
        for check in checks {
            let Some(delay) = self.counts.incoming(&check.key, check.conn, check.burst) else {
                return Flow::Respond(self.reply.clone());
            };
            let held = Arc::new(Held {
                counts: self.counts.clone(),
                key: check.key,
                since: {
                    let now = Instant::now();
                    now.checked_add(delay).unwrap_or(now)
                },
                adapt: self.adapt,
                released: AtomicBool::new(false),
            });
            // Kept before the wait: a request dropped while it waits gives its count back.
            match req.state.get_mut::<HeldConns>() {
                Some(list) => list.0.push(held),
                None => {
                    req.state.insert(HeldConns(vec![held]));
                }
            }
            if delay >= Duration::from_millis(1) {
                tokio::time::sleep(delay).await;
            }
        }
        Flow::Continue
    }

    fn log(&self, done: &LogCtx<'_>) {
        if let Some(list) = done.state.get::<HeldConns>() {
            for held in list
                .0
                .iter()
                .filter(|h| Arc::ptr_eq(&h.counts, &self.counts))
            {
                held.release(true);
            }
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

    fn counts(unit: f64) -> Counts {
        Counts {
            by_key: Mutex::new(HashMap::new()),
            unit_delay: Mutex::new(unit),
        }
    }

    fn ms(d: Option<Duration>) -> Option<u64> {
        d.map(|d| (d.as_secs_f64() * 1000.0).round() as u64)
    }

    #[test]
    fn counts_delay_and_reject() {
        let c = counts(0.1);
        assert_eq!(ms(c.incoming("a", 2, 1)), Some(0));
        assert_eq!(ms(c.incoming("a", 2, 1)), Some(0));
        assert_eq!(ms(c.incoming("a", 2, 1)), Some(100), "in the burst");
        assert_eq!(ms(c.incoming("a", 2, 1)), None, "beyond the burst");
        assert_eq!(c.count("a"), 3, "the rejected one is not counted");
        assert_eq!(ms(c.incoming("b", 2, 1)), Some(0), "own key");
        c.leaving("a", None);
        assert_eq!(ms(c.incoming("a", 2, 1)), Some(100));
        for _ in 0..3 {
            c.leaving("a", None);
        }
        assert_eq!(c.count("a"), 0);
        c.leaving("a", None);
        assert!(
            !c.by_key.lock().expect("lock").contains_key("a"),
            "zero counts go"
        );
        // The delay grows with the excess: unit * floor((n - 1) / conn).
        let c = counts(0.1);
        let got: Vec<_> = (0..5).map(|_| ms(c.incoming("a", 1, 3))).collect();
        assert_eq!(got, [Some(0), Some(100), Some(200), Some(300), None]);
    }

    #[test]
    fn latency_adapts_the_unit_delay() {
        let c = counts(0.1);
        c.incoming("a", 1, 0);
        c.leaving("a", Some(Duration::from_millis(300)));
        assert!((*c.unit_delay.lock().expect("lock") - 0.2).abs() < 1e-9);
    }

    fn instance(conf: Value) -> Instance {
        build(&conf).expect("valid")
    }

    #[tokio::test]
    async fn access_and_log_count_each_request_once() {
        let i = instance(
            json!({"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr", "rejected_msg": "busy"}),
        );
        let vars = [("remote_addr", "1.1.1.1")];
        let mut first = http::Extensions::new();
        assert!(testing::access(&i, &vars, &mut first).await.0.is_none());
        let mut second = http::Extensions::new();
        let reply = testing::access(&i, &vars, &mut second)
            .await
            .0
            .expect("rejected");
        assert_eq!(reply.status, 503);
        assert_eq!(&reply.body[..], b"{\"error_msg\":\"busy\"}\n");
        // The rejected request's log takes nothing back.
        testing::log(&i, 503, &second);
        assert_eq!(i.counts.count("1.1.1.1"), 1);
        // Another instance's log does not touch this one's counts.
        let other = instance(
            json!({"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr"}),
        );
        testing::log(&other, 200, &first);
        assert_eq!(i.counts.count("1.1.1.1"), 1);
        testing::log(&i, 200, &first);
        testing::log(&i, 200, &first);
        assert_eq!(i.counts.count("1.1.1.1"), 0, "released once");
        drop(first);
        assert_eq!(i.counts.count("1.1.1.1"), 0);
        // A request dropped before its log (the client went away) gives its count back.
        let mut gone = http::Extensions::new();
        assert!(testing::access(&i, &vars, &mut gone).await.0.is_none());
        assert_eq!(i.counts.count("1.1.1.1"), 1);
        drop(gone);
        assert_eq!(i.counts.count("1.1.1.1"), 0);
    }

    #[tokio::test]
    async fn burst_requests_wait() {
        let i = instance(
            json!({"conn": 1, "burst": 1, "default_conn_delay": 0.05, "only_use_default_delay": true, "key": "$remote_addr", "key_type": "var_combination"}),
        );
        let vars = [("remote_addr", "1.1.1.1")];
        let mut first = http::Extensions::new();
        let start = Instant::now();
        assert!(testing::access(&i, &vars, &mut first).await.0.is_none());
        assert!(start.elapsed() < Duration::from_millis(40));
        let mut second = http::Extensions::new();
        assert!(testing::access(&i, &vars, &mut second).await.0.is_none());
        assert!(start.elapsed() >= Duration::from_millis(45));
        assert!(testing::access(&i, &vars, &mut http::Extensions::new())
            .await
            .0
            .is_some());
        testing::log(&i, 200, &second);
        testing::log(&i, 200, &first);
        assert!(
            (*i.counts.unit_delay.lock().expect("lock") - 0.05).abs() < 1e-9,
            "only_use_default_delay keeps the unit"
        );
    }

    #[tokio::test]
    async fn variables_and_rules() {
        let i = instance(
            json!({"conn": "${http_conn ?? 1}", "burst": "${http_burst ?? 0}", "default_conn_delay": 0.1, "key": "remote_addr"}),
        );
        let one = [("remote_addr", "1.1.1.1")];
        let mut held = http::Extensions::new();
        assert!(testing::access(&i, &one, &mut held).await.0.is_none());
        assert!(testing::access(&i, &one, &mut http::Extensions::new())
            .await
            .0
            .is_some());
        let two = [("remote_addr", "1.1.1.1"), ("http_conn", "2")];
        assert!(testing::access(&i, &two, &mut http::Extensions::new())
            .await
            .0
            .is_none());
        let bad = [("remote_addr", "1.1.1.1"), ("http_burst", "-1")];
        let reply = testing::access(&i, &bad, &mut http::Extensions::new())
            .await
            .0;
        assert_eq!(reply.expect("failed").status, 500);

        let rules = instance(
            json!({"default_conn_delay": 0.1, "rules": [{"conn": 1, "burst": 0, "key": "${http_user}"}, {"conn": "$http_n", "burst": 0, "key": "${http_project}"}]}),
        );
        let jack = [("http_user", "jack")];
        let mut held = http::Extensions::new();
        assert!(testing::access(&rules, &jack, &mut held).await.0.is_none());
        assert!(testing::access(&rules, &jack, &mut http::Extensions::new())
            .await
            .0
            .is_some());
        // A rule whose conn does not resolve does not apply; no rule applying fails.
        let project = [("http_project", "p")];
        let reply = testing::access(&rules, &project, &mut http::Extensions::new())
            .await
            .0;
        assert_eq!(reply.expect("no rule").status, 500);
    }

    #[test]
    fn configs_are_checked() {
        let base = json!({"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr"});
        assert!(LimitConn.build(&base).is_ok());
        assert!(LimitConn
            .build(&json!({"conn": 3, "burst": 2, "default_conn_delay": 1, "only_use_default_delay": true, "key": "$a", "key_type": "var_combination", "rejected_code": 429, "rejected_msg": "x", "allow_degradation": true, "policy": "local", "key_ttl": 60}))
            .is_ok());
        for (field, value, why) in [
            ("conn", json!(0), "conn"),
            ("conn", json!(1.5), "conn"),
            ("burst", json!(-1), "burst"),
            ("default_conn_delay", json!(0), "default_conn_delay"),
            ("default_conn_delay", json!(-0.5), "default_conn_delay"),
            (
                "only_use_default_delay",
                json!("yes"),
                "only_use_default_delay",
            ),
            ("key", json!(""), "key"),
            ("key_type", json!("constant"), "key_type"),
            ("rejected_code", json!(600), "rejected_code"),
            ("rejected_msg", json!(""), "rejected_msg"),
            ("policy", json!("redis"), "not supported"),
            ("extra", json!(1), "extra"),
            ("key_ttl", json!(-1), "key_ttl"),
        ] {
            let mut bad = base.clone();
            bad[field] = value;
            let err = match LimitConn.build(&bad) {
                Ok(_) => panic!("accepted {bad}"),
                Err(e) => e,
            };
            assert!(err.contains(why), "{bad}: {err}");
        }
        let both =
            json!({"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "k", "rules": []});
        let err = LimitConn.build(&both).err().unwrap_or_default();
        assert!(err.contains("matches both schemas"), "{err}");
        for missing in ["conn", "burst", "default_conn_delay", "key"] {
            let mut bad = base.clone();
            bad.as_object_mut().expect("object").remove(missing);
            assert!(LimitConn.build(&bad).is_err(), "{missing} is required");
        }
        assert_eq!(LimitConn.priority(), 1003);
    }
}
