//! What the limit plugins (`limit-count`, `limit-req`, `limit-conn`) share: the key a request is
//! counted under, the `policy` and `rejected_*` checks, and a bounded map of per-key state.
//!
//! Keys follow APISIX: `key_type` `var` reads the variable named by `key`, `var_combination`
//! expands a template of `$name` / `${name}` references, `constant` uses `key` itself. A variable
//! that is not set (or a template that expands to nothing) falls back to `remote_addr`.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use model::template::{Syntax, Template};
use plugin_api::Vars;
use plugin_api::{Flow, PluginError, Reply};

/// How many keys one plugin instance keeps at most (a route config's worth of clients).
pub const MAX_KEYS: usize = 100_000;

/// APISIX's `key_type`.
#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    /// The value of the variable named by `key`.
    #[default]
    Var,
    /// `key` is a template of `$name` / `${name}` references.
    VarCombination,
    /// `key` itself: every request shares one counter.
    Constant,
}

/// Where a request's key comes from.
#[derive(Debug)]
pub enum KeySource {
    /// The variable of this name.
    Var(String),
    /// A template of `$name` / `${name}` references, parsed once.
    Template(Template),
    /// A fixed key.
    Constant(String),
}

impl KeySource {
    /// The source for `key` of type `key_type`; `allowed` lists the types the plugin accepts.
    ///
    /// # Errors
    /// An empty key, or a type the plugin does not accept.
    pub fn new(key: &str, key_type: KeyType, allowed: &[KeyType]) -> Result<KeySource, String> {
        if !allowed.contains(&key_type) {
            return Err(format!(
                "key_type {key_type:?} is not supported by this plugin"
            ));
        }
        if key.is_empty() {
            return Err("key must not be empty".to_owned());
        }
        Ok(match key_type {
            KeyType::Var => KeySource::Var(key.to_owned()),
            KeyType::VarCombination => KeySource::Template(Template::parse(key, Syntax::Plain)),
            KeyType::Constant => KeySource::Constant(key.to_owned()),
        })
    }

    /// The key of this request (`remote_addr` when the variable is missing).
    pub fn of(&self, vars: &dyn Vars) -> String {
        match self {
            KeySource::Constant(k) => k.clone(),
            KeySource::Var(name) => vars
                .get(name)
                .map(|v| v.into_owned())
                .or_else(|| vars.get("remote_addr").map(|v| v.into_owned()))
                .unwrap_or_default(),
            KeySource::Template(template) => Some(template.render(vars))
                .filter(|key| !key.is_empty())
                .or_else(|| vars.get("remote_addr").map(|v| v.into_owned()))
                .unwrap_or_default(),
        }
    }
}

/// Checks `policy`: only `local` is implemented.
///
/// # Errors
/// Any other policy.
pub fn check_policy(policy: &str) -> Result<(), String> {
    match policy {
        "local" => Ok(()),
        "redis" | "redis-cluster" | "redis-sentinel" => Err(format!(
            "policy {policy} is not supported: only local (per-node counters) is"
        )),
        other => Err(format!(
            "policy must be local, redis, redis-cluster or redis-sentinel, got {other}"
        )),
    }
}

/// The answer to a rejected request: `rejected_code` (200-599) with `{"error_msg": msg}` when
/// `rejected_msg` is set, else no body.
///
/// # Errors
/// A code out of range or an empty message.
pub fn rejection(code: u16, msg: Option<&str>) -> Result<Reply, String> {
    if !(200..=599).contains(&code) {
        return Err(format!("rejected_code must be 200-599, got {code}"));
    }
    let status = StatusCode::from_u16(code).map_err(|e| e.to_string())?;
    let body = match msg {
        Some("") => return Err("rejected_msg must not be empty".to_owned()),
        Some(m) => Bytes::from(format!("{}\n", serde_json::json!({ "error_msg": m }))),
        None => Bytes::new(),
    };
    Ok(Reply {
        status,
        headers: http::HeaderMap::new(),
        body,
    })
}

/// What a limit does when the limits of a request cannot be worked out (a variable with no
/// usable value): fails with 500 (`what` and `error` logged), or lets the request through with
/// `allow_degradation` (logged here).
pub fn unusable_limits(what: &str, error: &str, allow_degradation: bool) -> Flow {
    if allow_degradation {
        tracing::error!(error = %error, "{what}");
        return Flow::Continue;
    }
    Flow::Fail(PluginError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("{what}: {error}"),
    ))
}

/// Reads a configured string as an APISIX `resolve_var` template (`$name`, `${name}`,
/// `${name ?? default}`), parsed once here rather than per request.
///
/// # Errors
/// When the value is not a string.
pub fn var_template<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Template, D::Error> {
    let text = String::deserialize(de)?;
    Ok(Template::parse(&text, Syntax::ResolveVar))
}

/// A limit given as a number or as a template of request variables (`"${http_count ?? 5}"`),
/// resolved per request.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Amount {
    /// A fixed number.
    Fixed(u64),
    /// Resolved per request; must give a whole number.
    Var(#[serde(deserialize_with = "var_template")] Template),
}

impl Amount {
    /// The value for this request; `positive` refuses 0.
    ///
    /// # Errors
    /// A template that does not resolve to a whole number in range (the request then fails).
    pub fn resolve(&self, vars: &dyn Vars, positive: bool) -> Result<u64, String> {
        let template = match self {
            Amount::Fixed(n) => return Ok(*n),
            Amount::Var(template) => template,
        };
        let text = template.render(vars);
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("resolved value is not a number: {text:?}"))?;
        if value < 0.0 || (positive && value == 0.0) || value.is_nan() {
            return Err(format!(
                "resolved value must be a positive number, got: {text}"
            ));
        }
        if value.fract() != 0.0 {
            return Err(format!("resolved value must be an integer, got: {text}"));
        }
        // Beyond 2^53 - 1 a double no longer holds every integer.
        if value > 9_007_199_254_740_991.0 {
            return Err(format!(
                "resolved value exceeds safe integer range (2^53-1), got: {text}"
            ));
        }
        Ok(value as u64)
    }
}

/// Schema of a positive [`Amount`]: APISIX's `oneOf` integer above 0 or string.
pub fn positive_or_var(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"oneOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "string"}]})
}

/// Schema of an [`Amount`] that may be 0: APISIX's `oneOf` integer of at least 0 or string.
pub fn non_negative_or_var(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]})
}

/// Per-key state that becomes useless after a while.
pub trait Expiring {
    /// Whether the state is the same as a fresh one at `now` (it can be dropped).
    fn expired(&self, now: Instant) -> bool;

    /// When the state was last changed (the oldest go first when the map is full).
    fn touched(&self) -> Instant;
}

/// A map of per-key state holding at most `cap` keys: when full, expired entries are dropped,
/// and if that frees too little the older half goes (amortised: one sweep per `cap / 8` new keys
/// at worst).
pub struct Keys<V> {
    map: HashMap<String, V>,
    cap: usize,
}

impl<V: Expiring> Keys<V> {
    /// An empty map of at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        Keys {
            map: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// The state of `key`, made with `fresh` if it has none (room is made first when full).
    pub fn entry(&mut self, key: &str, now: Instant, fresh: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(key) && self.map.len() >= self.cap {
            self.make_room(now);
        }
        self.map.entry(key.to_owned()).or_insert_with(fresh)
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        self.map.retain(|_, v| !v.expired(now));
        if self.map.len() < self.cap - self.cap / 8 {
            return;
        }
        let mut times: Vec<Instant> = self.map.values().map(Expiring::touched).collect();
        let mid = times.len() / 2;
        let (_, median, _) = times.select_nth_unstable(mid);
        let median = *median;
        self.map.retain(|_, v| v.touched() > median);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_come_from_vars_templates_or_constants() {
        let vars: HashMap<&str, &str> = [("remote_addr", "10.0.0.1"), ("http_x_user", "bob")]
            .into_iter()
            .collect();
        let all = [KeyType::Var, KeyType::VarCombination, KeyType::Constant];
        let of = |key: &str, t: KeyType| KeySource::new(key, t, &all).expect("valid").of(&vars);
        assert_eq!(of("http_x_user", KeyType::Var), "bob");
        assert_eq!(of("http_x_none", KeyType::Var), "10.0.0.1", "fallback");
        assert_eq!(
            of("$remote_addr $http_x_user", KeyType::VarCombination),
            "10.0.0.1 bob"
        );
        assert_eq!(of("$http_x_none", KeyType::VarCombination), "10.0.0.1");
        assert_eq!(of("everyone", KeyType::Constant), "everyone");
        assert!(KeySource::new("", KeyType::Var, &all).is_err());
        assert!(KeySource::new("k", KeyType::Constant, &[KeyType::Var]).is_err());
    }

    #[test]
    fn policy_and_rejection() {
        assert!(check_policy("local").is_ok());
        let err = check_policy("redis").expect_err("refused");
        assert!(err.contains("not supported"), "{err}");
        assert!(check_policy("memcached").is_err());
        let r = rejection(429, Some("slow down")).expect("valid");
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(&r.body[..], b"{\"error_msg\":\"slow down\"}\n");
        assert!(rejection(503, None).expect("valid").body.is_empty());
        assert!(rejection(199, None).is_err());
        assert!(rejection(600, None).is_err());
        assert!(rejection(503, Some("")).is_err());
    }

    #[test]
    fn variables_resolve_with_defaults() {
        let vars: HashMap<&str, &str> = [("http_count", "5"), ("remote_addr", "10.0.0.1")]
            .into_iter()
            .collect();
        let count: Amount = serde_json::from_str(r#""${http_count ?? 2}""#).expect("valid");
        assert_eq!(count.resolve(&vars, true), Ok(5));
        for bad in ["0", "-1", "1.5", "9999999999999999", "x"] {
            let vars: HashMap<&str, &str> = [("http_count", bad)].into_iter().collect();
            assert!(count.resolve(&vars, true).is_err(), "{bad}");
        }
        let zero: HashMap<&str, &str> = [("http_count", "0")].into_iter().collect();
        assert_eq!(count.resolve(&zero, false), Ok(0));
        assert_eq!(Amount::Fixed(3).resolve(&vars, true), Ok(3));
    }

    struct Stamp(Instant, bool);
    impl Expiring for Stamp {
        fn expired(&self, _: Instant) -> bool {
            self.1
        }
        fn touched(&self) -> Instant {
            self.0
        }
    }

    #[test]
    fn the_map_stays_bounded() {
        let t0 = Instant::now();
        let mut keys = Keys::new(16);
        for i in 0..1000u64 {
            let at = t0 + Duration::from_millis(i);
            keys.entry(&i.to_string(), at, || Stamp(at, false));
            assert!(keys.len() <= 16);
        }
        // The newest keys survive an eviction.
        assert!(keys.map.contains_key("999"));
        // Expired entries go first, live ones stay.
        let mut keys = Keys::new(4);
        keys.entry("live", t0, || Stamp(t0, false));
        for k in ["a", "b", "c"] {
            keys.entry(k, t0, || Stamp(t0, true));
        }
        keys.entry("new", t0, || Stamp(t0, false));
        assert_eq!(keys.len(), 2);
        assert!(keys.map.contains_key("live"));
    }
}
