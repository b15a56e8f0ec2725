//! `limit-count` (priority 1002, access): at most `count` requests per key in a time window.
//!
//! Config: `count` (required, > 0), `time_window` (required, seconds, > 0), `window_type` `fixed`
//! (default: the window starts with the key's first request and its count resets when it ends)
//! or `sliding` (the previous window's count, weighted by how much of it still overlaps the last
//! `time_window` seconds, is added to the current one), `key` (default `remote_addr`), `key_type`
//! `var` (default) | `var_combination` | `constant` (see [`super::limit_key`]), `rejected_code`
//! (default 503, 200-599), `rejected_msg` (optional, 1+ characters: the body is
//! `{"error_msg": msg}`, else empty), `policy` (`local`, the default; `redis*` are refused: not
//! supported), `show_limit_quota_header` (default true: `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset`, the whole seconds until the window ends, on
//! passed and rejected responses), `allow_degradation` (default false; accepted, local counters
//! cannot fail).
//!
//! Counters live in the instance (one per config version of the route) and per node; at most
//! [`MAX_KEYS`] keys are kept, expired windows first to go.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::limit_key::{check_policy, rejection, Expiring, KeySource, KeyType, Keys, MAX_KEYS};
use super::{parse_conf, Flow, Plugin, PluginKind, Reply, RequestCtx};

/// The kind.
pub struct LimitCount;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Conf {
    count: u64,
    time_window: u64,
    #[serde(default)]
    window_type: WindowType,
    #[serde(default = "default_key")]
    key: String,
    #[serde(default)]
    key_type: KeyType,
    #[serde(default = "default_code")]
    rejected_code: u16,
    rejected_msg: Option<String>,
    #[serde(default = "default_policy")]
    policy: String,
    #[serde(default = "yes")]
    show_limit_quota_header: bool,
    #[serde(default)]
    allow_degradation: bool,
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum WindowType {
    #[default]
    Fixed,
    Sliding,
}

fn default_key() -> String {
    "remote_addr".to_owned()
}
fn default_code() -> u16 {
    503
}
fn default_policy() -> String {
    "local".to_owned()
}
fn yes() -> bool {
    true
}

/// One key's window.
struct Window {
    /// When the current window started.
    start: Instant,
    /// Requests counted in it.
    count: u64,
    /// Requests counted in the window before (sliding windows only).
    previous: u64,
    /// How long the state matters after `start`: one window (fixed) or two (sliding).
    keep: Duration,
}

/// What the limiter decided for one request.
#[derive(Debug, PartialEq)]
struct Decision {
    passed: bool,
    remaining: u64,
    /// Whole seconds until the current window ends.
    reset: u64,
}

struct Limiter {
    limit: u64,
    window: Duration,
    sliding: bool,
    keys: Keys<Window>,
}

impl Limiter {
    fn new(limit: u64, window: Duration, sliding: bool, cap: usize) -> Self {
        Limiter {
            limit,
            window,
            sliding,
            keys: Keys::new(cap),
        }
    }

    fn incoming(&mut self, key: &str, now: Instant) -> Decision {
        let (limit, window, sliding) = (self.limit, self.window, self.sliding);
        let keep = if sliding {
            window.saturating_mul(2)
        } else {
            window
        };
        let w = self.keys.entry(key, now, || Window {
            start: now,
            count: 0,
            previous: 0,
            keep,
        });
        let elapsed = now.saturating_duration_since(w.start);
        if elapsed >= window {
            if sliding {
                // Move to the window holding `now`; only an adjacent one keeps its count.
                let n = elapsed.as_nanos() / window.as_nanos().max(1);
                w.previous = if n == 1 { w.count } else { 0 };
                let step = u32::try_from(n).unwrap_or(u32::MAX);
                w.start = window
                    .checked_mul(step)
                    .and_then(|d| w.start.checked_add(d))
                    .unwrap_or(now);
            } else {
                w.previous = 0;
                w.start = now;
            }
            w.count = 0;
        }
        let into = now.saturating_duration_since(w.start);
        let left = window.saturating_sub(into);
        let reset = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        // The previous window's share of the last `window` seconds.
        let carried = if sliding && w.previous > 0 {
            let overlap = left.as_secs_f64() / window.as_secs_f64();
            (w.previous as f64 * overlap).floor() as u64
        } else {
            0
        };
        let used = carried.saturating_add(w.count);
        if used >= limit {
            return Decision {
                passed: false,
                remaining: 0,
                reset,
            };
        }
        w.count += 1;
        Decision {
            passed: true,
            remaining: limit - used - 1,
            reset,
        }
    }
}

impl Expiring for Window {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.start) >= self.keep
    }

    fn touched(&self) -> Instant {
        self.start
    }
}

struct Instance {
    source: KeySource,
    limiter: Mutex<Limiter>,
    show_headers: bool,
    limit_header: HeaderValue,
    reply: Reply,
}

impl PluginKind for LimitCount {
    fn name(&self) -> &'static str {
        "limit-count"
    }

    fn priority(&self) -> i32 {
        1002
    }

    fn schema(&self) -> Value {
        crate::model::schema_of::<Conf>()
    }

    fn build(&self, conf: &Value) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(build(conf, MAX_KEYS)?))
    }
}

fn build(conf: &Value, cap: usize) -> Result<Instance, String> {
    let conf: Conf = parse_conf(conf)?;
    if conf.count == 0 {
        return Err("count must be greater than 0".to_owned());
    }
    if conf.time_window == 0 {
        return Err("time_window must be greater than 0".to_owned());
    }
    check_policy(&conf.policy)?;
    let source = KeySource::new(
        &conf.key,
        conf.key_type,
        &[KeyType::Var, KeyType::VarCombination, KeyType::Constant],
    )?;
    let reply = rejection(conf.rejected_code, conf.rejected_msg.as_deref())?;
    let _ = conf.allow_degradation;
    Ok(Instance {
        source,
        limiter: Mutex::new(Limiter::new(
            conf.count,
            Duration::from_secs(conf.time_window),
            conf.window_type == WindowType::Sliding,
            cap,
        )),
        show_headers: conf.show_limit_quota_header,
        limit_header: HeaderValue::from(conf.count),
        reply,
    })
}

#[async_trait::async_trait]
impl Plugin for Instance {
    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let key = self.source.of(req.vars);
        let decision = match self.limiter.lock() {
            Ok(mut limiter) => limiter.incoming(&key, Instant::now()),
            // A panic elsewhere poisoned the counters; let traffic through rather than block it.
            Err(_) => return Flow::Continue,
        };
        if self.show_headers {
            let h = &mut *req.response_headers;
            h.insert("x-ratelimit-limit", self.limit_header.clone());
            h.insert(
                "x-ratelimit-remaining",
                HeaderValue::from(decision.remaining),
            );
            h.insert("x-ratelimit-reset", HeaderValue::from(decision.reset));
        }
        if decision.passed {
            Flow::Continue
        } else {
            Flow::Respond(self.reply.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing;
    use http::HeaderMap;
    use serde_json::json;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn decision(passed: bool, remaining: u64, reset: u64) -> Decision {
        Decision {
            passed,
            remaining,
            reset,
        }
    }

    #[test]
    fn fixed_windows_count_and_reset() {
        let t0 = Instant::now();
        let mut l = Limiter::new(2, secs(10), false, 100);
        assert_eq!(l.incoming("a", t0), decision(true, 1, 10));
        assert_eq!(l.incoming("a", t0 + secs(1)), decision(true, 0, 9));
        assert_eq!(
            l.incoming("a", t0 + Duration::from_millis(1500)),
            decision(false, 0, 9),
            "partial seconds round up"
        );
        assert_eq!(
            l.incoming("b", t0 + secs(2)),
            decision(true, 1, 10),
            "own key"
        );
        // The window ends; the next one starts with the next request.
        assert_eq!(l.incoming("a", t0 + secs(13)), decision(true, 1, 10));
        assert_eq!(l.incoming("a", t0 + secs(22)), decision(true, 0, 1));
        assert_eq!(l.incoming("a", t0 + secs(22)), decision(false, 0, 1));
    }

    #[test]
    fn sliding_windows_carry_the_overlap() {
        let t0 = Instant::now();
        let mut l = Limiter::new(4, secs(10), true, 100);
        for left in (0..4).rev() {
            assert_eq!(l.incoming("a", t0), decision(true, left, 10));
        }
        assert!(!l.incoming("a", t0 + secs(9)).passed);
        // A fixed window would reopen at 10 s; the sliding one still sees the 4 requests.
        assert!(!l.incoming("a", t0 + secs(10)).passed);
        // Half the previous window overlaps: 2 carried, 2 more allowed.
        assert_eq!(l.incoming("a", t0 + secs(15)), decision(true, 1, 5));
        assert_eq!(l.incoming("a", t0 + secs(15)), decision(true, 0, 5));
        assert!(!l.incoming("a", t0 + secs(15)).passed);
        // Two windows later nothing is carried.
        assert_eq!(l.incoming("a", t0 + secs(31)), decision(true, 3, 9));
    }

    #[test]
    fn keys_are_bounded() {
        let t0 = Instant::now();
        let mut l = Limiter::new(1, secs(60), false, 64);
        for i in 0..10_000u64 {
            l.incoming(&i.to_string(), t0 + Duration::from_millis(i));
            assert!(l.keys.len() <= 64);
        }
    }

    fn access(instance: &Instance, vars: &[(&str, &str)]) -> (Option<Reply>, HeaderMap) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(testing::access(
                instance,
                vars,
                &mut http::Extensions::new(),
            ))
    }

    #[test]
    fn access_sets_headers_and_rejects() {
        let i = build(
            &json!({"count": 1, "time_window": 60, "rejected_code": 429, "rejected_msg": "too many"}),
            MAX_KEYS,
        )
        .expect("valid");
        let (reply, h) = access(&i, &[("remote_addr", "1.1.1.1")]);
        assert!(reply.is_none());
        assert_eq!(h["x-ratelimit-limit"], "1");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        assert_eq!(h["x-ratelimit-reset"], "60");
        let (reply, h) = access(&i, &[("remote_addr", "1.1.1.1")]);
        let reply = reply.expect("rejected");
        assert_eq!(reply.status, 429);
        assert_eq!(&reply.body[..], br#"{"error_msg":"too many"}"#);
        assert_eq!(h["x-ratelimit-remaining"], "0");
        let (reply, _) = access(&i, &[("remote_addr", "2.2.2.2")]);
        assert!(reply.is_none(), "another client has its own count");
    }

    #[test]
    fn defaults_keys_and_quiet_mode() {
        // Default: remote_addr, 503 without a body, headers on.
        let i = build(&json!({"count": 1, "time_window": 1}), MAX_KEYS).expect("valid");
        assert!(access(&i, &[("remote_addr", "1.1.1.1")]).0.is_none());
        let (reply, h) = access(&i, &[("remote_addr", "1.1.1.1")]);
        let reply = reply.expect("rejected");
        assert_eq!(reply.status, 503);
        assert!(reply.body.is_empty());
        assert!(h.contains_key("x-ratelimit-limit"));

        let quiet = build(
            &json!({"count": 1, "time_window": 1, "show_limit_quota_header": false}),
            MAX_KEYS,
        )
        .expect("valid");
        assert!(access(&quiet, &[]).1.is_empty());

        let constant = build(
            &json!({"count": 1, "time_window": 60, "key": "all", "key_type": "constant"}),
            MAX_KEYS,
        )
        .expect("valid");
        assert!(access(&constant, &[("remote_addr", "1.1.1.1")]).0.is_none());
        assert!(access(&constant, &[("remote_addr", "2.2.2.2")]).0.is_some());

        let combo = build(
            &json!({"count": 1, "time_window": 60, "key": "$remote_addr $http_x_user", "key_type": "var_combination"}),
            MAX_KEYS,
        )
        .expect("valid");
        let bob = [("remote_addr", "1.1.1.1"), ("http_x_user", "bob")];
        let amy = [("remote_addr", "1.1.1.1"), ("http_x_user", "amy")];
        assert!(access(&combo, &bob).0.is_none());
        assert!(access(&combo, &amy).0.is_none());
        assert!(access(&combo, &bob).0.is_some());

        let header = build(
            &json!({"count": 1, "time_window": 60, "key": "http_x_user"}),
            MAX_KEYS,
        )
        .expect("valid");
        assert!(access(&header, &bob).0.is_none());
        assert!(access(&header, &amy).0.is_none());
        // Without the header the key falls back to remote_addr.
        assert!(access(&header, &[("remote_addr", "3.3.3.3")]).0.is_none());
        assert!(access(&header, &[("remote_addr", "3.3.3.3")]).0.is_some());
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({"count": 1, "time_window": 1}),
            json!({"count": 5, "time_window": 60, "window_type": "sliding", "policy": "local", "allow_degradation": true, "rejected_code": 200}),
        ] {
            assert!(LimitCount.build(&good).is_ok(), "{good}");
        }
        for (bad, why) in [
            (json!({"time_window": 1}), "count"),
            (json!({"count": 1}), "time_window"),
            (json!({"count": 0, "time_window": 1}), "count"),
            (json!({"count": -1, "time_window": 1}), "count"),
            (json!({"count": 1, "time_window": 0}), "time_window"),
            (json!({"count": 1, "time_window": 1.5}), "time_window"),
            (
                json!({"count": 1, "time_window": 1, "window_type": "rolling"}),
                "window_type",
            ),
            (
                json!({"count": 1, "time_window": 1, "key_type": "header"}),
                "key_type",
            ),
            (json!({"count": 1, "time_window": 1, "key": ""}), "key"),
            (
                json!({"count": 1, "time_window": 1, "rejected_code": 600}),
                "rejected_code",
            ),
            (
                json!({"count": 1, "time_window": 1, "rejected_msg": ""}),
                "rejected_msg",
            ),
            (
                json!({"count": 1, "time_window": 1, "policy": "redis"}),
                "not supported",
            ),
            (
                json!({"count": 1, "time_window": 1, "policy": "redis-cluster"}),
                "not supported",
            ),
            (
                json!({"count": 1, "time_window": 1, "show_limit_quota_header": "no"}),
                "show_limit_quota_header",
            ),
            (json!({"count": 1, "time_window": 1, "extra": 1}), "extra"),
        ] {
            let err = match LimitCount.build(&bad) {
                Ok(_) => panic!("accepted {bad}"),
                Err(e) => e,
            };
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert_eq!(LimitCount.priority(), 1002);
        assert_eq!(LimitCount.name(), "limit-count");
    }
}
