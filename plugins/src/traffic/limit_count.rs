//! `limit-count` (priority 1002, access): at most `count` requests per key in a time window.
//!
//! Config: either `count` and `time_window` (seconds), each a number above 0 or a template of
//! request variables resolved per request (`"${http_count ?? 5}"`), or `rules`: a list of
//! `{count, time_window, key, header_prefix}` where `key` is a template; a rule applies to a
//! request when its key resolves at least one variable, and every applying rule counts (the
//! first to reject answers). `window_type` `fixed` (default: the window starts with the key's
//! first request and its count resets when it ends) or `sliding` (the previous window's count,
//! weighted by how much of it still overlaps the last `time_window` seconds, is added to the
//! current one), `key` (default `remote_addr`), `key_type` `var` (default) | `var_combination` |
//! `constant` (see [`crate::support::limit_key`]), `group` (routes with the same group share counters; a
//! group's config must be the same everywhere in the gateway), `rejected_code` (default 503, 200-599),
//! `rejected_msg` (optional, 1+ characters: the body is `{"error_msg": msg}`, else empty),
//! `policy` (`local`, the default; `redis*` are refused: not supported),
//! `show_limit_quota_header` (default true: `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset`, the whole seconds until the window ends, on passed and rejected
//! responses; a rule's headers are `X-<header_prefix or its position>-RateLimit-*`),
//! `allow_degradation` (default false: a variable that does not resolve to a valid number, or
//! no rule applying, answers 500; true lets the request through).
//!
//! Metadata (`plugin_metadata/limit-count`): `limit_header`, `remaining_header` and
//! `reset_header` rename the three headers (a rule's are the names with `RateLimit-` turned into
//! `<prefix>-RateLimit-`, as APISIX does). They are read when a chain is built.
//!
//! Counters live in the gateway ([`Counters`]), as APISIX's shared dictionary: a key is counted
//! under its object and a hash of the plugin config (or its group), so rewriting a route with
//! the same config keeps its counts and a changed config starts afresh. At most [`MAX_KEYS`]
//! keys are kept, expired windows first to go.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::support::limit_key::{
    check_policy, positive_or_var, rejection, unusable_limits, Amount, Expiring, KeySource,
    KeyType, Keys, MAX_KEYS,
};
use model::template::{Syntax, Template};
use plugin_api::metadata::Metadata;
use plugin_api::schema::Raw;
use plugin_api::Vars;
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx};

/// The kind.
#[derive(Default)]
pub struct LimitCount {
    /// The counters of every instance of this gateway.
    counters: Arc<Counters>,
    /// The first config seen for each `group` in this gateway: every other use of the group
    /// must be the same.
    groups: Mutex<HashMap<String, Conf>>,
}

/// APISIX's `oneOf`: `count` and `time_window`, or `rules`. The first excludes `rules` so that a
/// config with both passes the schema and gets APISIX's own message from the kind's check.
#[derive(Deserialize, JsonSchema, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["count", "time_window"], "not": {"required": ["rules"]}},
    {"required": ["rules"]}
]))]
pub struct Conf {
    #[serde(default)]
    #[schemars(schema_with = "positive_or_var")]
    count: Option<Amount>,
    #[serde(default)]
    #[schemars(schema_with = "positive_or_var")]
    time_window: Option<Amount>,
    #[serde(default)]
    window_type: WindowType,
    rules: Option<Vec<RuleConf>>,
    group: Option<String>,
    #[serde(default = "default_key")]
    key: String,
    #[serde(default)]
    key_type: KeyType,
    #[serde(default = "default_code")]
    #[schemars(range(min = 200, max = 599))]
    rejected_code: u16,
    #[schemars(length(min = 1))]
    rejected_msg: Option<String>,
    #[serde(default = "default_policy")]
    policy: String,
    #[serde(default = "plugin_api::schema::yes")]
    show_limit_quota_header: bool,
    #[serde(default)]
    allow_degradation: bool,
    /// Only used by the redis policies; accepted for compatibility.
    sync_interval: Option<f64>,
}

#[derive(Deserialize, JsonSchema, Clone, PartialEq)]
struct RuleConf {
    #[schemars(schema_with = "positive_or_var")]
    count: Amount,
    #[schemars(schema_with = "positive_or_var")]
    time_window: Amount,
    key: String,
    header_prefix: Option<String>,
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

/// One key's window.
struct Window {
    /// When the current window started.
    start: Instant,
    /// Its length (the `time_window` of the request that opened it).
    length: Duration,
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

/// The counters of one gateway, shared by every `limit-count` instance it builds (APISIX's
/// `plugin-limit-count` shared dictionary).
pub struct Counters {
    keys: Mutex<Keys<Window>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters::with_cap(MAX_KEYS)
    }
}

impl Counters {
    fn with_cap(cap: usize) -> Self {
        Counters {
            keys: Mutex::new(Keys::new(cap)),
        }
    }
}

/// Counts one request of `key` against `limit` per `window`.
fn incoming(
    keys: &mut Keys<Window>,
    key: &str,
    now: Instant,
    limit: u64,
    window: Duration,
    sliding: bool,
) -> Decision {
    let keep = if sliding {
        window.saturating_mul(2)
    } else {
        window
    };
    let w = keys.entry(key, now, || Window {
        start: now,
        length: window,
        count: 0,
        previous: 0,
        keep,
    });
    let elapsed = now.saturating_duration_since(w.start);
    if elapsed >= w.length {
        if sliding {
            // Move to the window holding `now`; only an adjacent one keeps its count.
            let n = elapsed.as_nanos() / w.length.as_nanos().max(1);
            w.previous = if n == 1 { w.count } else { 0 };
            let step = u32::try_from(n).unwrap_or(u32::MAX);
            w.start = w
                .length
                .checked_mul(step)
                .and_then(|d| w.start.checked_add(d))
                .unwrap_or(now);
        } else {
            w.previous = 0;
            w.start = now;
            w.length = window;
            w.keep = keep;
        }
        w.count = 0;
    }
    let into = now.saturating_duration_since(w.start);
    let left = w.length.saturating_sub(into);
    let reset = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    // The previous window's share of the last `window` seconds.
    let carried = if sliding && w.previous > 0 {
        let overlap = left.as_secs_f64() / w.length.as_secs_f64();
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

impl Expiring for Window {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.start) >= self.keep
    }

    fn touched(&self) -> Instant {
        self.start
    }
}

/// Where the counted key comes from.
enum Mode {
    /// `count`, `time_window` and `key`.
    Single {
        count: Amount,
        time_window: Amount,
        source: KeySource,
    },
    /// `rules`: each with its key template and header names.
    Rules(Vec<Rule>),
}

struct Rule {
    count: Amount,
    time_window: Amount,
    key: Template,
    /// Its `header_prefix` (or its position).
    prefix: String,
    headers: HeaderNames,
}

#[derive(Clone)]
struct HeaderNames {
    limit: HeaderName,
    remaining: HeaderName,
    reset: HeaderName,
}

/// The checked metadata: the three header names as written.
pub struct LimitHeaders {
    limit: String,
    remaining: String,
    reset: String,
}

impl Default for LimitHeaders {
    fn default() -> Self {
        LimitHeaders {
            limit: "X-RateLimit-Limit".to_owned(),
            remaining: "X-RateLimit-Remaining".to_owned(),
            reset: "X-RateLimit-Reset".to_owned(),
        }
    }
}

impl HeaderNames {
    /// The names of `base`, or for a rule's `prefix` the names with their first `RateLimit-`
    /// turned into `<prefix>-RateLimit-`.
    fn new(base: &LimitHeaders, prefix: Option<&str>) -> Result<Self, String> {
        let name = |text: &str| {
            let text = match prefix {
                Some(p) => text.replacen("RateLimit-", &format!("{p}-RateLimit-"), 1),
                None => text.to_owned(),
            };
            HeaderName::from_bytes(text.as_bytes())
                .map_err(|_| format!("`{text}` is not a valid header name"))
        };
        Ok(HeaderNames {
            limit: name(&base.limit)?,
            remaining: name(&base.remaining)?,
            reset: name(&base.reset)?,
        })
    }
}

struct Instance {
    mode: Mode,
    /// What every counted key starts with: the object and config version, or the group.
    prefix: String,
    sliding: bool,
    counters: Arc<Counters>,
    show_headers: bool,
    headers: HeaderNames,
    allow_degradation: bool,
    reply: Reply,
}

impl Kind for LimitCount {
    type Conf = Raw<Conf>;
    type Checked = Checked;
    const NAME: &'static str = "limit-count";
    const PRIORITY: i32 = 1002;

    fn check(&self, conf: Raw<Conf>) -> Result<Checked, String> {
        check(conf.conf, &conf.raw, self)
    }

    fn instance(&self, checked: Checked, ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(build(checked, ctx)?))
    }

    fn plugin_metadata_schema(&self) -> Option<Value> {
        let defaults = LimitHeaders::default();
        Some(serde_json::json!({
            "type": "object",
            "properties": {
                "limit_header": {"type": "string", "default": defaults.limit},
                "remaining_header": {"type": "string", "default": defaults.remaining},
                "reset_header": {"type": "string", "default": defaults.reset},
            }
        }))
    }

    fn plugin_metadata(&self, metadata: &Value) -> Result<Option<Metadata>, String> {
        let defaults = LimitHeaders::default();
        let field = |name: &str, default: String| {
            metadata
                .get(name)
                .and_then(Value::as_str)
                .map_or(default, str::to_owned)
        };
        let headers = LimitHeaders {
            limit: field("limit_header", defaults.limit),
            remaining: field("remaining_header", defaults.remaining),
            reset: field("reset_header", defaults.reset),
        };
        HeaderNames::new(&headers, None)?;
        Ok(Some(Metadata::new(headers)))
    }
}

/// A hash of the config: counts survive a rewrite of their object with the same config.
fn conf_version(conf: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    conf.to_string().hash(&mut h);
    h.finish()
}

/// A checked config: the instance, but for the key prefix of a config outside a group, which
/// names the config's owner.
pub struct Checked {
    /// The instance (its prefix set for a group only).
    instance: Instance,
    /// For a config outside a group: the hash of the config as written.
    version: Option<u64>,
}

/// Checks a config (`raw` as written) and compiles it for `kind`'s counters and groups.
fn check(conf: Conf, raw: &Value, kind: &LimitCount) -> Result<Checked, String> {
    let single = conf.count.is_some() && conf.time_window.is_some();
    if let Some(rules) = &conf.rules {
        if conf.count.is_some() || conf.time_window.is_some() {
            return Err("count/time_window and rules cannot be specified at the same time".into());
        }
        if conf.group.is_some() {
            return Err("group and rules cannot be specified at the same time".into());
        }
        for (i, rule) in rules.iter().enumerate() {
            if rules[..i].iter().any(|r| r.key == rule.key) {
                return Err(format!("duplicate key '{}' in rules", rule.key));
            }
        }
    } else if !single {
        return Err("value should match only one schema, but matches none".into());
    }
    for amount in [&conf.count, &conf.time_window].into_iter().flatten() {
        if *amount == Amount::Fixed(0) {
            return Err("count and time_window must be greater than 0".to_owned());
        }
    }
    check_policy(&conf.policy)?;
    if let Some(group) = &conf.group {
        let mut groups = kind
            .groups
            .lock()
            .map_err(|_| "group registry unavailable")?;
        match groups.get(group) {
            Some(first) if *first != conf => return Err("group conf mismatched".to_owned()),
            Some(_) => {}
            None => {
                groups.insert(group.clone(), conf.clone());
            }
        }
    }
    let reply = rejection(conf.rejected_code, conf.rejected_msg.as_deref())?;
    let mode = match (conf.rules, conf.count, conf.time_window) {
        (Some(rules), _, _) => Mode::Rules(
            rules
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let prefix = r.header_prefix.unwrap_or_else(|| (i + 1).to_string());
                    Ok(Rule {
                        headers: HeaderNames::new(&LimitHeaders::default(), Some(&prefix))
                            .map_err(|e| format!("header_prefix {prefix:?}: {e}"))?,
                        prefix,
                        count: r.count,
                        time_window: r.time_window,
                        key: Template::parse(&r.key, Syntax::ResolveVar),
                    })
                })
                .collect::<Result<_, String>>()?,
        ),
        (None, Some(count), Some(time_window)) => Mode::Single {
            count,
            time_window,
            source: KeySource::new(
                &conf.key,
                conf.key_type,
                &[KeyType::Var, KeyType::VarCombination, KeyType::Constant],
            )?,
        },
        _ => return Err("value should match only one schema, but matches none".into()),
    };
    let (prefix, version) = match &conf.group {
        Some(group) => (format!("{group}:"), None),
        None => (String::new(), Some(conf_version(raw))),
    };
    let instance = Instance {
        mode,
        prefix,
        sliding: conf.window_type == WindowType::Sliding,
        counters: kind.counters.clone(),
        show_headers: conf.show_limit_quota_header,
        headers: HeaderNames::new(&LimitHeaders::default(), None)?,
        allow_degradation: conf.allow_degradation,
        reply,
    };
    Ok(Checked { instance, version })
}

/// The instance of a checked config, for the object `ctx` names, with the header names of the
/// plugin metadata `ctx` holds.
fn build(checked: Checked, ctx: &BuildContext) -> Result<Instance, String> {
    let mut instance = checked.instance;
    if let Some(version) = checked.version {
        instance.prefix = format!("{}:{version}:", ctx.owner);
    }
    if let Some(base) = ctx.metadata::<LimitHeaders>(LimitCount::NAME) {
        instance.headers = HeaderNames::new(base, None)?;
        if let Mode::Rules(rules) = &mut instance.mode {
            for rule in rules {
                rule.headers = HeaderNames::new(base, Some(&rule.prefix))?;
            }
        }
    }
    Ok(instance)
}

/// One limit to apply to a request.
struct Check<'a> {
    key: String,
    limit: u64,
    window: u64,
    headers: &'a HeaderNames,
}

impl Instance {
    /// The limits this request is counted against, or why it cannot be counted.
    fn checks(&self, vars: &dyn Vars) -> Result<Vec<Check<'_>>, String> {
        match &self.mode {
            Mode::Single {
                count,
                time_window,
                source,
            } => Ok(vec![Check {
                limit: count.resolve(vars, true)?,
                window: time_window.resolve(vars, true)?,
                key: source.of(vars),
                headers: &self.headers,
            }]),
            Mode::Rules(rules) => {
                let mut checks = Vec::new();
                for rule in rules {
                    // A rule keyed on variables this request does not have does not apply.
                    let mut key = String::new();
                    let resolved = rule.key.render_into(vars, &mut key);
                    if resolved == 0 {
                        continue;
                    }
                    checks.push(Check {
                        limit: rule.count.resolve(vars, true)?,
                        window: rule.time_window.resolve(vars, true)?,
                        key,
                        headers: &rule.headers,
                    });
                }
                if checks.is_empty() {
                    return Err("no rule applies".to_owned());
                }
                Ok(checks)
            }
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let checks = match self.checks(req.vars) {
            Ok(checks) => checks,
            Err(e) => {
                return unusable_limits(
                    "limit-count: failed to get rate limit rules",
                    &e,
                    self.allow_degradation,
                )
            }
        };
        let now = Instant::now();
        for check in checks {
            let decision = match self.counters.keys.lock() {
                Ok(mut keys) => incoming(
                    &mut keys,
                    &format!("{}{}", self.prefix, check.key),
                    now,
                    check.limit,
                    Duration::from_secs(check.window),
                    self.sliding,
                ),
                // A panic elsewhere poisoned the counters; let traffic through rather than block it.
                Err(_) => return Flow::Continue,
            };
            if self.show_headers {
                let h = &mut *req.response_headers;
                h.insert(check.headers.limit.clone(), HeaderValue::from(check.limit));
                h.insert(
                    check.headers.remaining.clone(),
                    HeaderValue::from(decision.remaining),
                );
                h.insert(
                    check.headers.reset.clone(),
                    HeaderValue::from(decision.reset),
                );
            }
            if !decision.passed {
                return Flow::Respond(self.reply.clone());
            }
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::PluginKind;

    thread_local! {
        /// The kind (counters and groups) of the test running on this thread.
        static KIND: LimitCount = LimitCount::default();
    }

    /// Builds an instance counting in this test's counters.
    use plugin_api::parse_conf;

    fn build(raw: &Value, ctx: &BuildContext) -> Result<Instance, String> {
        let checked = KIND.with(|kind| super::check(parse_conf(raw)?, raw, kind))?;
        super::build(checked, ctx)
    }
    use http::HeaderMap;
    use plugin_api::testing;
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
        let mut l = Keys::new(100);
        let mut inc = |k: &str, at| incoming(&mut l, k, at, 2, secs(10), false);
        assert_eq!(inc("a", t0), decision(true, 1, 10));
        assert_eq!(inc("a", t0 + secs(1)), decision(true, 0, 9));
        assert_eq!(
            inc("a", t0 + Duration::from_millis(1500)),
            decision(false, 0, 9),
            "partial seconds round up"
        );
        assert_eq!(inc("b", t0 + secs(2)), decision(true, 1, 10), "own key");
        // The window ends; the next one starts with the next request.
        assert_eq!(inc("a", t0 + secs(13)), decision(true, 1, 10));
        assert_eq!(inc("a", t0 + secs(22)), decision(true, 0, 1));
        assert_eq!(inc("a", t0 + secs(22)), decision(false, 0, 1));
    }

    #[test]
    fn sliding_windows_carry_the_overlap() {
        let t0 = Instant::now();
        let mut l = Keys::new(100);
        let mut inc = |k: &str, at| incoming(&mut l, k, at, 4, secs(10), true);
        for left in (0..4).rev() {
            assert_eq!(inc("a", t0), decision(true, left, 10));
        }
        assert!(!inc("a", t0 + secs(9)).passed);
        // A fixed window would reopen at 10 s; the sliding one still sees the 4 requests.
        assert!(!inc("a", t0 + secs(10)).passed);
        // Half the previous window overlaps: 2 carried, 2 more allowed.
        assert_eq!(inc("a", t0 + secs(15)), decision(true, 1, 5));
        assert_eq!(inc("a", t0 + secs(15)), decision(true, 0, 5));
        assert!(!inc("a", t0 + secs(15)).passed);
        // Two windows later nothing is carried.
        assert_eq!(inc("a", t0 + secs(31)), decision(true, 3, 9));
    }

    #[test]
    fn keys_are_bounded() {
        let t0 = Instant::now();
        let mut l = Keys::new(64);
        for i in 0..10_000u64 {
            let at = t0 + Duration::from_millis(i);
            incoming(&mut l, &i.to_string(), at, 1, secs(60), false);
            assert!(l.len() <= 64);
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
        let i = build(&json!({"count": 1, "time_window": 60, "rejected_code": 429, "rejected_msg": "too many"}), &BuildContext::default())
        .expect("valid");
        let (reply, h) = access(&i, &[("remote_addr", "1.1.1.1")]);
        assert!(reply.is_none());
        assert_eq!(h["x-ratelimit-limit"], "1");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        assert_eq!(h["x-ratelimit-reset"], "60");
        let (reply, h) = access(&i, &[("remote_addr", "1.1.1.1")]);
        let reply = reply.expect("rejected");
        assert_eq!(reply.status, 429);
        assert_eq!(&reply.body[..], b"{\"error_msg\":\"too many\"}\n");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        let (reply, _) = access(&i, &[("remote_addr", "2.2.2.2")]);
        assert!(reply.is_none(), "another client has its own count");
    }

    #[test]
    fn metadata_names_the_headers() {
        let kind = LimitCount::default();
        let metadata = json!({"limit_header": "APISIX-RATELIMIT-QUOTA", "remaining_header": "X-Left-RateLimit-Remaining"});
        let checked = kind.check_metadata(&metadata).expect("valid");
        let mut set = plugin_api::metadata::MetadataSet::default();
        set.set(LimitCount::NAME, checked);
        let ctx = BuildContext {
            owner: "route#1".into(),
            metadata: set,
            ..BuildContext::default()
        };
        let i = build(&json!({"count": 2, "time_window": 60}), &ctx).expect("valid");
        let (_, h) = access(&i, &[("remote_addr", "1.1.1.1")]);
        assert_eq!(h["apisix-ratelimit-quota"], "2");
        assert_eq!(h["x-left-ratelimit-remaining"], "1");
        assert_eq!(
            h["x-ratelimit-reset"], "60",
            "a name left out keeps its default"
        );
        assert!(!h.contains_key("x-ratelimit-limit"));
        // A rule's names put its prefix before `RateLimit-`, where there is one.
        let rules = json!({"rules": [{"count": 1, "time_window": 60, "key": "$remote_addr", "header_prefix": "p"}]});
        let i = build(&rules, &ctx).expect("valid");
        let (_, h) = access(&i, &[("remote_addr", "1.1.1.1")]);
        assert_eq!(h["apisix-ratelimit-quota"], "1");
        assert_eq!(h["x-left-p-ratelimit-remaining"], "0");
        assert_eq!(h["x-p-ratelimit-reset"], "60");
        // The metadata is checked.
        assert!(kind.check_metadata(&json!({"limit_header": 1})).is_err());
        assert!(kind
            .check_metadata(&json!({"limit_header": "bad header"}))
            .is_err());
        assert!(kind.metadata_schema().is_some());
    }

    #[test]
    fn defaults_keys_and_quiet_mode() {
        // Default: remote_addr, 503 without a body, headers on.
        let i = build(
            &json!({"count": 1, "time_window": 1}),
            &BuildContext::default(),
        )
        .expect("valid");
        assert!(access(&i, &[("remote_addr", "1.1.1.1")]).0.is_none());
        let (reply, h) = access(&i, &[("remote_addr", "1.1.1.1")]);
        let reply = reply.expect("rejected");
        assert_eq!(reply.status, 503);
        assert!(reply.body.is_empty());
        assert!(h.contains_key("x-ratelimit-limit"));

        let quiet = build(
            &json!({"count": 1, "time_window": 1, "show_limit_quota_header": false}),
            &BuildContext::default(),
        )
        .expect("valid");
        assert!(access(&quiet, &[]).1.is_empty());

        let constant = build(
            &json!({"count": 1, "time_window": 60, "key": "all", "key_type": "constant"}),
            &BuildContext::default(),
        )
        .expect("valid");
        assert!(access(&constant, &[("remote_addr", "1.1.1.1")]).0.is_none());
        assert!(access(&constant, &[("remote_addr", "2.2.2.2")]).0.is_some());

        let combo = build(&json!({"count": 1, "time_window": 60, "key": "$remote_addr $http_x_user", "key_type": "var_combination"}), &BuildContext::default())
        .expect("valid");
        let bob = [("remote_addr", "1.1.1.1"), ("http_x_user", "bob")];
        let amy = [("remote_addr", "1.1.1.1"), ("http_x_user", "amy")];
        assert!(access(&combo, &bob).0.is_none());
        assert!(access(&combo, &amy).0.is_none());
        assert!(access(&combo, &bob).0.is_some());

        let header = build(
            &json!({"count": 1, "time_window": 60, "key": "http_x_user"}),
            &BuildContext::default(),
        )
        .expect("valid");
        assert!(access(&header, &bob).0.is_none());
        assert!(access(&header, &amy).0.is_none());
        // Without the header the key falls back to remote_addr.
        assert!(access(&header, &[("remote_addr", "3.3.3.3")]).0.is_none());
        assert!(access(&header, &[("remote_addr", "3.3.3.3")]).0.is_some());
    }

    #[test]
    fn variables_rules_and_shared_counters() {
        let ctx = BuildContext {
            owner: "route#1".into(),
            ..BuildContext::default()
        };
        let conf = json!({"count": "${http_count ?? 2}", "time_window": 60});
        let i = build(&conf, &ctx).expect("valid");
        let (reply, h) = access(&i, &[("remote_addr", "1.1.1.1"), ("http_count", "3")]);
        assert!(reply.is_none());
        assert_eq!(
            (&h["x-ratelimit-limit"], &h["x-ratelimit-remaining"]),
            (&"3".parse().expect("v"), &"2".parse().expect("v"))
        );
        // The same config rebuilt (the route rewritten) keeps its counts; another starts afresh.
        let again = build(&conf, &ctx).expect("valid");
        let (_, h) = access(&again, &[("remote_addr", "1.1.1.1")]);
        assert_eq!(h["x-ratelimit-remaining"], "0");
        let changed = build(&json!({"count": 2, "time_window": 60}), &ctx).expect("valid");
        let (_, h) = access(&changed, &[("remote_addr", "1.1.1.1")]);
        assert_eq!(h["x-ratelimit-remaining"], "1");
        // A variable that is not a positive whole number fails the request.
        let (reply, _) = access(&i, &[("remote_addr", "1.1.1.1"), ("http_count", "1.5")]);
        assert_eq!(reply.expect("failed").status, 500);

        let rules = json!({"rules": [
            {"count": 1, "time_window": 60, "key": "${http_user}", "header_prefix": "u"},
            {"count": 5, "time_window": 60, "key": "${http_project}"}
        ]});
        let i = build(&rules, &ctx).expect("valid");
        let (reply, h) = access(&i, &[("http_user", "jack"), ("http_project", "p")]);
        assert!(reply.is_none());
        assert_eq!(h["x-u-ratelimit-remaining"], "0");
        assert_eq!(h["x-2-ratelimit-remaining"], "4");
        assert!(
            access(&i, &[("http_user", "jack")]).0.is_some(),
            "rule 1 rejects"
        );
        assert!(access(&i, &[("http_user", "rose")]).0.is_none(), "own key");
        let (reply, _) = access(&i, &[("remote_addr", "1.1.1.1")]);
        assert_eq!(reply.expect("no rule applies").status, 500);
        let lenient = build(
            &json!({"allow_degradation": true, "rules": [{"count": 1, "time_window": 1, "key": "$http_x"}]}),
            &ctx,
        )
        .expect("valid");
        assert!(access(&lenient, &[]).0.is_none());
    }

    #[test]
    fn configs_are_checked() {
        for good in [
            json!({"count": 1, "time_window": 1}),
            json!({"count": 5, "time_window": 60, "window_type": "sliding", "policy": "local", "allow_degradation": true, "rejected_code": 200}),
        ] {
            assert!(LimitCount::default().build(&good).is_ok(), "{good}");
        }
        for (bad, why) in [
            (json!({"time_window": 1}), "matches none"),
            (json!({"count": 1}), "matches none"),
            (
                json!({"count": 1, "rules": [{"count": 1, "time_window": 1, "key": "$a"}]}),
                "cannot be specified at the same time",
            ),
            (
                json!({"rules": [{"count": 1, "time_window": 1, "key": "$a"}, {"count": 2, "time_window": 1, "key": "$a"}]}),
                "duplicate key '$a' in rules",
            ),
            (
                json!({"group": "g", "rules": [{"count": 1, "time_window": 1, "key": "$a"}]}),
                "group and rules",
            ),
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
            let err = match LimitCount::default().build(&bad) {
                Ok(_) => panic!("accepted {bad}"),
                Err(e) => e,
            };
            assert!(err.contains(why), "{bad}: {err}");
        }
        // A group's config must stay the same within a gateway (one kind); another gateway's
        // groups are its own.
        let kind = LimitCount::default();
        let group = json!({"count": 1, "time_window": 60, "group": "configs_are_checked"});
        assert!(kind.build(&group).is_ok());
        assert!(kind.build(&group).is_ok());
        let other = json!({"count": 2, "time_window": 60, "group": "configs_are_checked"});
        assert_eq!(
            kind.build(&other).err().as_deref(),
            Some("group conf mismatched")
        );
        assert!(
            LimitCount::default().build(&other).is_ok(),
            "another gateway"
        );
        assert_eq!(LimitCount::default().priority(), 1002);
        assert_eq!(LimitCount::default().name(), "limit-count");
    }
}
