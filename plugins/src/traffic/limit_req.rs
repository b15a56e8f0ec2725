//! `limit-req` (priority 1001, access): a leaky bucket per key, as nginx's `limit_req`.
//!
//! Config: `rate` (required, requests per second, > 0), `burst` (required, >= 0: how many
//! requests over the rate may wait), `key` (required), `key_type` `var` (default) |
//! `var_combination` (see [`crate::support::limit_key`]), `rejected_code` (default 503, 200-599),
//! `rejected_msg` (optional, 1+ characters: the body is `{"error_msg": msg}`, else empty),
//! `nodelay` (default false: a request over the rate but within the burst waits `excess / rate`
//! seconds before going on; true: it goes on at once), `allow_degradation` (default false;
//! accepted, local buckets cannot fail), `policy` (`local`, the default; `redis*` are refused: not
//! supported).
//!
//! The bucket (lua-resty-limit-traffic's `limit.req`): each request adds 1 to the key's `excess`,
//! which drains at `rate` per second; a request that would leave more than `burst` is rejected
//! and not counted. Buckets live in the instance (one per config version of the route) and per
//! node; at most [`MAX_KEYS`] keys are kept, drained buckets first to go.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use crate::support::limit_key::{
    check_policy, rejection, Expiring, KeySource, KeyType, Keys, MAX_KEYS,
};
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx};

/// The kind.
pub struct LimitReq;

/// APISIX's `key_type` for this plugin: `constant` is not among its values.
fn key_type_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": ["var", "var_combination"], "default": "var"})
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    #[schemars(extend("exclusiveMinimum" = 0))]
    rate: f64,
    #[schemars(range(min = 0))]
    burst: f64,
    key: String,
    #[serde(default)]
    #[schemars(schema_with = "key_type_schema")]
    key_type: KeyType,
    #[serde(default = "default_code")]
    #[schemars(range(min = 200, max = 599))]
    rejected_code: u16,
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    rejected_msg: Option<String>,
    #[serde(default)]
    nodelay: bool,
    #[serde(default)]
    allow_degradation: bool,
    #[serde(default = "default_policy")]
    policy: String,
}

fn default_code() -> u16 {
    503
}
fn default_policy() -> String {
    "local".to_owned()
}

/// One key's bucket.
struct Bucket {
    /// Requests over the rate still in the bucket.
    excess: f64,
    /// When it was last updated.
    last: Instant,
    /// How long it takes to drain: after that it is the same as a fresh bucket.
    drained_after: Duration,
}

impl Expiring for Bucket {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= self.drained_after
    }

    fn touched(&self) -> Instant {
        self.last
    }
}

struct Limiter {
    rate: f64,
    burst: f64,
    keys: Keys<Bucket>,
}

impl Limiter {
    fn new(rate: f64, burst: f64, cap: usize) -> Self {
        Limiter {
            rate,
            burst,
            keys: Keys::new(cap),
        }
    }

    /// The delay before the request may go on, or `None`: rejected.
    fn incoming(&mut self, key: &str, now: Instant) -> Option<Duration> {
        let (rate, burst) = (self.rate, self.burst);
        let mut fresh = false;
        let bucket = self.keys.entry(key, now, || {
            fresh = true;
            Bucket {
                excess: 0.0,
                last: now,
                drained_after: Duration::ZERO,
            }
        });
        let excess = if fresh {
            0.0
        } else {
            let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
            let excess = (bucket.excess - rate * elapsed + 1.0).max(0.0);
            if excess > burst {
                return None;
            }
            excess
        };
        bucket.excess = excess;
        bucket.last = now;
        bucket.drained_after =
            Duration::try_from_secs_f64((excess + 1.0) / rate).unwrap_or(Duration::MAX);
        Some(Duration::try_from_secs_f64(excess / rate).unwrap_or(Duration::MAX))
    }
}

/// A configured instance (the checked config).
pub struct Instance {
    source: KeySource,
    limiter: Mutex<Limiter>,
    nodelay: bool,
    reply: Reply,
}

impl Kind for LimitReq {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "limit-req";
    const PRIORITY: i32 = 1001;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        check(conf, MAX_KEYS)
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

/// Checks a config and compiles it, keeping state for at most `cap` keys.
fn check(conf: Conf, cap: usize) -> Result<Instance, String> {
    if !(conf.rate.is_finite() && conf.rate > 0.0) {
        return Err(format!("rate must be greater than 0, got {}", conf.rate));
    }
    if !(conf.burst.is_finite() && conf.burst >= 0.0) {
        return Err(format!("burst must be at least 0, got {}", conf.burst));
    }
    check_policy(&conf.policy)?;
    let source = KeySource::new(
        &conf.key,
        conf.key_type,
        &[KeyType::Var, KeyType::VarCombination],
    )?;
    let reply = rejection(conf.rejected_code, conf.rejected_msg.as_deref())?;
    let _ = conf.allow_degradation;
    Ok(Instance {
        source,
        limiter: Mutex::new(Limiter::new(conf.rate, conf.burst, cap)),
        nodelay: conf.nodelay,
        reply,
    })
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let key = self.source.of(req.vars);
        let decided = match self.limiter.lock() {
            Ok(mut limiter) => limiter.incoming(&key, Instant::now()),
            // A panic elsewhere poisoned the buckets; let traffic through rather than block it.
            Err(_) => return Flow::Continue,
        };
        match decided {
            None => Flow::Respond(self.reply.clone()),
            Some(delay) => {
                if !self.nodelay && delay >= Duration::from_millis(1) {
                    tokio::time::sleep(delay).await;
                }
                Flow::Continue
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

    fn build(conf: &Value, cap: usize) -> Result<Instance, String> {
        check(parse_conf(conf)?, cap)
    }
    use plugin_api::testing;
    use serde_json::json;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Delays in whole milliseconds (float rounding aside).
    fn incoming(l: &mut Limiter, key: &str, at: Instant) -> Option<u64> {
        l.incoming(key, at)
            .map(|d| (d.as_secs_f64() * 1000.0).round() as u64)
    }

    #[test]
    fn the_bucket_delays_then_rejects() {
        let t0 = Instant::now();
        let mut l = Limiter::new(10.0, 2.0, 100);
        assert_eq!(incoming(&mut l, "a", t0), Some(0));
        assert_eq!(incoming(&mut l, "a", t0), Some(100), "1 over: 1/rate");
        assert_eq!(incoming(&mut l, "a", t0), Some(200), "2 over");
        assert_eq!(incoming(&mut l, "a", t0), None, "over the burst");
        assert_eq!(incoming(&mut l, "b", t0), Some(0), "own bucket");
        // A rejected request is not counted; after 100 ms one slot has drained.
        assert_eq!(incoming(&mut l, "a", t0 + ms(100)), Some(200));
        assert_eq!(incoming(&mut l, "a", t0 + ms(100)), None);
        // Fully drained: no delay again.
        assert_eq!(incoming(&mut l, "a", t0 + ms(2000)), Some(0));
    }

    #[test]
    fn without_burst_only_the_rate_passes() {
        let t0 = Instant::now();
        let mut l = Limiter::new(2.0, 0.0, 100);
        assert_eq!(incoming(&mut l, "a", t0), Some(0));
        assert_eq!(incoming(&mut l, "a", t0 + ms(100)), None);
        assert_eq!(incoming(&mut l, "a", t0 + ms(499)), None);
        assert_eq!(incoming(&mut l, "a", t0 + ms(500)), Some(0));
        // A fractional rate: one request every 2 s.
        let mut slow = Limiter::new(0.5, 0.0, 100);
        assert_eq!(incoming(&mut slow, "a", t0), Some(0));
        assert_eq!(incoming(&mut slow, "a", t0 + ms(1999)), None);
        assert_eq!(incoming(&mut slow, "a", t0 + ms(2000)), Some(0));
    }

    #[test]
    fn buckets_are_bounded_and_expire() {
        let t0 = Instant::now();
        let mut l = Limiter::new(1.0, 5.0, 32);
        for i in 0..5000u64 {
            l.incoming(&i.to_string(), t0 + ms(i));
            assert!(l.keys.len() <= 32);
        }
        let b = Bucket {
            excess: 2.0,
            last: t0,
            drained_after: Duration::from_secs(3),
        };
        assert!(!b.expired(t0 + ms(2999)));
        assert!(b.expired(t0 + ms(3000)));
    }

    #[tokio::test]
    async fn access_delays_or_not() {
        let conf =
            json!({"rate": 20, "burst": 1, "key": "remote_addr", "rejected_msg": "slow down"});
        let i = build(&conf, MAX_KEYS).expect("valid");
        let vars = [("remote_addr", "1.1.1.1")];
        let mut state = http::Extensions::new();
        let start = Instant::now();
        assert!(testing::access(&i, &vars, &mut state).await.0.is_none());
        assert!(start.elapsed() < ms(40));
        // The second waits 1/20 s.
        assert!(testing::access(&i, &vars, &mut state).await.0.is_none());
        assert!(start.elapsed() >= ms(45), "{:?}", start.elapsed());
        let mut conf = conf;
        conf["nodelay"] = json!(true);
        let quick = build(&conf, MAX_KEYS).expect("valid");
        let start = Instant::now();
        assert!(testing::access(&quick, &vars, &mut state).await.0.is_none());
        assert!(testing::access(&quick, &vars, &mut state).await.0.is_none());
        assert!(start.elapsed() < ms(40), "nodelay passes at once");
        let reply = testing::access(&quick, &vars, &mut state)
            .await
            .0
            .expect("rejected");
        assert_eq!(reply.status, 503);
        assert_eq!(&reply.body[..], b"{\"error_msg\":\"slow down\"}\n");
    }

    #[tokio::test]
    async fn keys_by_template() {
        let conf = json!({"rate": 1, "burst": 0, "key": "$http_x_user", "key_type": "var_combination", "rejected_code": 429});
        let i = build(&conf, MAX_KEYS).expect("valid");
        let mut state = http::Extensions::new();
        let bob = [("remote_addr", "1.1.1.1"), ("http_x_user", "bob")];
        let amy = [("remote_addr", "1.1.1.1"), ("http_x_user", "amy")];
        assert!(testing::access(&i, &bob, &mut state).await.0.is_none());
        assert!(testing::access(&i, &amy, &mut state).await.0.is_none());
        let reply = testing::access(&i, &bob, &mut state)
            .await
            .0
            .expect("rejected");
        assert_eq!(reply.status, 429);
        assert!(reply.body.is_empty());
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({"rate": 1, "burst": 0, "key": "remote_addr"}),
            json!({"rate": 0.5, "burst": 2.5, "key": "$a$b", "key_type": "var_combination", "nodelay": true, "allow_degradation": true, "policy": "local", "rejected_code": 429, "rejected_msg": "x"}),
        ] {
            assert!(LimitReq.build(&good).is_ok(), "{good}");
        }
        for (bad, why) in [
            (json!({"burst": 0, "key": "k"}), "rate"),
            (json!({"rate": 1, "key": "k"}), "burst"),
            (json!({"rate": 1, "burst": 0}), "key"),
            (json!({"rate": 0, "burst": 0, "key": "k"}), "rate"),
            (json!({"rate": -1, "burst": 0, "key": "k"}), "rate"),
            (json!({"rate": 1, "burst": -1, "key": "k"}), "burst"),
            (json!({"rate": 1, "burst": 0, "key": ""}), "key"),
            (
                json!({"rate": 1, "burst": 0, "key": "k", "key_type": "constant"}),
                "key_type",
            ),
            (
                json!({"rate": 1, "burst": 0, "key": "k", "rejected_code": 199}),
                "rejected_code",
            ),
            (
                json!({"rate": 1, "burst": 0, "key": "k", "rejected_msg": ""}),
                "rejected_msg",
            ),
            (
                json!({"rate": 1, "burst": 0, "key": "k", "nodelay": 1}),
                "nodelay",
            ),
            (
                json!({"rate": 1, "burst": 0, "key": "k", "allow_degradation": "x"}),
                "allow_degradation",
            ),
            (
                json!({"rate": 1, "burst": 0, "key": "k", "policy": "redis"}),
                "not supported",
            ),
            (
                json!({"rate": 1, "burst": 0, "key": "k", "extra": 1}),
                "extra",
            ),
        ] {
            let err = match LimitReq.build(&bad) {
                Ok(_) => panic!("accepted {bad}"),
                Err(e) => e,
            };
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert_eq!(LimitReq.priority(), 1001);
    }
}
