//! `csrf` (priority 2980): double-submit cookie protection against cross-site request forgery.
//!
//! Config: `key` (required, the secret tokens are signed with), `name` (default
//! `apisix-csrf-token`: the cookie and the header), `expires` (default 7200 seconds; 0 never
//! expires).
//!
//! Every response gets `Set-Cookie: <name>=<token>;path=/;SameSite=Lax;Expires=<now+expires>`
//! with a fresh token (as APISIX, whose `header_filter` sets it on every response). Safe methods
//! (GET, HEAD, OPTIONS) pass; any other needs the header `<name>` equal to the cookie `<name>`,
//! holding a token this key signed and not older than `expires`, else 401 with `{"error_msg":
//! ...}`: `no csrf token in headers`, `no csrf cookie`, `csrf token mismatch`, `csrf token has
//! expired` or `Failed to verify the csrf token signature`.
//!
//! A token is the standard base64 of the JSON `{"random": <a number below 1>, "expires": <unix
//! seconds it was issued>, "sign": <hex>}` (`expires` is the issue time, as in APISIX), signed
//! as APISIX signs it, so tokens pass between the two: the hex SHA-256 of
//! `{expires:<expires>,random:<random>,key:<key>}`, numbers as Lua prints them, compared in
//! constant time.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderValue, SET_COOKIE};
use http::{HeaderMap, StatusCode};
use rand::Rng;
use ring::digest;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use plugin_api::consumer::constant_time_eq;
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx, ResponseCtx};

/// The kind.
pub struct Csrf;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    key: String,
    #[serde(default = "default_name")]
    name: String,
    #[serde(default = "default_expires")]
    expires: u64,
}

fn default_name() -> String {
    "apisix-csrf-token".to_owned()
}
fn default_expires() -> u64 {
    7200
}

/// A configured instance (the checked config).
pub struct Instance {
    key: String,
    name: String,
    /// `http_<name>` for the vars lookup (lowercase, `_` for `-`).
    header_var: String,
    /// `cookie_<name>`.
    cookie_var: String,
    expires: u64,
}

impl Kind for Csrf {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "csrf";
    const PRIORITY: i32 = 2980;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        Instance::new(conf)
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

/// Why a token was refused.
#[derive(Debug, PartialEq)]
enum Refused {
    Expired,
    Invalid,
}

impl Instance {
    fn new(conf: Conf) -> Result<Instance, String> {
        if conf.key.is_empty() {
            return Err("property \"key\" validation failed: must not be empty".to_owned());
        }
        let valid_name = !conf.name.is_empty()
            && conf
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(format!(
                "property \"name\" validation failed: `{}` is not a cookie and header name",
                conf.name
            ));
        }
        let var = conf.name.to_ascii_lowercase().replace('-', "_");
        Ok(Instance {
            key: conf.key.clone(),
            header_var: format!("http_{var}"),
            cookie_var: format!("cookie_{}", conf.name),
            name: conf.name,
            expires: conf.expires,
        })
    }

    /// APISIX's signature of a token's fields: a JSON number as Lua prints it, a string as is.
    fn sign(&self, random: &Value, expires: &Value) -> String {
        let lua = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n
                .as_f64()
                .map_or_else(|| n.to_string(), plugin_api::schema::lua_number),
            other => other.to_string(),
        };
        let text = format!(
            "{{expires:{},random:{},key:{}}}",
            lua(expires),
            lua(random),
            self.key
        );
        digest::digest(&digest::SHA256, text.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A fresh token issued at `now` (unix seconds).
    fn token(&self, now: u64) -> String {
        // 14 decimal digits, as many as Lua prints: the number reads back to the same text.
        let digits = rand::rng().random_range(1..100_000_000_000_000_u64);
        let random = format!("0.{digits:014}")
            .trim_end_matches('0')
            .parse::<f64>()
            .map_or(Value::Null, |f| json!(f));
        let expires = json!(now);
        let sign = self.sign(&random, &expires);
        let token = json!({"random": random, "expires": expires, "sign": sign});
        base64::engine::general_purpose::STANDARD.encode(token.to_string())
    }

    /// Checks a token's signature and age at `now` (unix seconds).
    fn check(&self, token: &str, now: u64) -> Result<(), Refused> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| Refused::Invalid)?;
        let parsed: Value = serde_json::from_slice(&raw).map_err(|_| Refused::Invalid)?;
        let random = parsed.get("random").ok_or(Refused::Invalid)?;
        let expires = parsed.get("expires").ok_or(Refused::Invalid)?;
        let issued = expires.as_u64().ok_or(Refused::Invalid)?;
        if self.expires > 0 && now.saturating_sub(issued) > self.expires {
            return Err(Refused::Expired);
        }
        let sign = parsed
            .get("sign")
            .and_then(Value::as_str)
            .ok_or(Refused::Invalid)?;
        let expected = self.sign(random, expires);
        if !constant_time_eq(expected.as_bytes(), sign.as_bytes()) {
            return Err(Refused::Invalid);
        }
        Ok(())
    }

    fn set_cookie(&self, headers: &mut HeaderMap, now: SystemTime) {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let until = httpdate::fmt_http_date(now + Duration::from_secs(self.expires));
        let cookie = format!(
            "{}={};path=/;SameSite=Lax;Expires={until}",
            self.name,
            self.token(secs)
        );
        // Base64, a checked name and a date: always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn refuse(msg: &str) -> Flow {
    Flow::Respond(Reply {
        status: StatusCode::UNAUTHORIZED,
        headers: HeaderMap::new(),
        body: Bytes::from(format!("{}\n", json!({ "error_msg": msg }))),
    })
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS | Phases::HEADER_FILTER
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let method = req.vars.get("request_method").unwrap_or_default();
        if matches!(&*method, "GET" | "HEAD" | "OPTIONS") {
            return Flow::Continue;
        }
        let header = match req.vars.get(&self.header_var) {
            Some(h) if !h.is_empty() => h,
            _ => return refuse("no csrf token in headers"),
        };
        let Some(cookie) = req.vars.get(&self.cookie_var) else {
            return refuse("no csrf cookie");
        };
        if header != cookie {
            return refuse("csrf token mismatch");
        }
        match self.check(&cookie, now_secs()) {
            Ok(()) => Flow::Continue,
            Err(Refused::Expired) => refuse("csrf token has expired"),
            Err(Refused::Invalid) => refuse("Failed to verify the csrf token signature"),
        }
    }

    fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        self.set_cookie(resp.headers, SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::parse_conf;
    use plugin_api::testing::{header, Fake};
    use plugin_api::PluginKind;

    fn instance(conf: Value) -> Instance {
        Instance::new(parse_conf(&conf).expect("valid")).expect("valid")
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    async fn post(plugin: &Instance, header: Option<&str>, cookie: Option<&str>) -> Option<String> {
        let mut vars = vec![("request_method", "POST")];
        if let Some(h) = header {
            vars.push(("http_apisix_csrf_token", leak(h.to_owned())));
        }
        if let Some(c) = cookie {
            vars.push(("cookie_apisix-csrf-token", leak(c.to_owned())));
        }
        let mut fake = Fake::new(&vars);
        fake.access(plugin)
            .await
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
    }

    #[tokio::test]
    async fn safe_methods_pass_and_every_response_gets_a_cookie() {
        let p = instance(json!({"key": "secret"}));
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert!(Fake::new(&[("request_method", m)])
                .access(&p)
                .await
                .is_none());
        }
        let mut fake = Fake::new(&[("request_method", "GET")]);
        let headers = fake.header_filter(&p, StatusCode::OK, HeaderMap::new());
        let cookie = header(&headers, "set-cookie").expect("cookie");
        let (pair, attrs) = cookie.split_once(';').expect("attributes");
        let token = pair.strip_prefix("apisix-csrf-token=").expect("name");
        assert!(attrs.starts_with("path=/;SameSite=Lax;Expires="), "{attrs}");
        assert!(attrs.ends_with(" GMT"), "{attrs}");
        assert_eq!(p.check(token, now_secs()), Ok(()));
    }

    #[tokio::test]
    async fn unsafe_methods_need_the_header_equal_to_a_signed_cookie() {
        let p = instance(json!({"key": "secret"}));
        let token = p.token(now_secs());
        assert_eq!(post(&p, Some(&token), Some(&token)).await, None);
        let msg = |m: &str| Some(format!("{}\n", json!({ "error_msg": m })));
        assert_eq!(
            post(&p, None, Some(&token)).await,
            msg("no csrf token in headers")
        );
        assert_eq!(
            post(&p, Some(""), Some(&token)).await,
            msg("no csrf token in headers")
        );
        assert_eq!(post(&p, Some(&token), None).await, msg("no csrf cookie"));
        let other = p.token(now_secs());
        assert_eq!(
            post(&p, Some(&other), Some(&token)).await,
            msg("csrf token mismatch")
        );
        let foreign = instance(json!({"key": "other"})).token(now_secs());
        assert_eq!(
            post(&p, Some(&foreign), Some(&foreign)).await,
            msg("Failed to verify the csrf token signature")
        );
        assert_eq!(
            post(&p, Some("garbage"), Some("garbage")).await,
            msg("Failed to verify the csrf token signature")
        );
        let old = p.token(now_secs() - 7201);
        assert_eq!(
            post(&p, Some(&old), Some(&old)).await,
            msg("csrf token has expired")
        );
    }

    #[test]
    fn tampered_tokens_and_expiry() {
        let p = instance(json!({"key": "k", "expires": 10}));
        let token = p.token(1000);
        assert_eq!(p.check(&token, 1010), Ok(()));
        assert_eq!(p.check(&token, 1011), Err(Refused::Expired));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&token)
            .expect("base64");
        let mut parsed: Value = serde_json::from_slice(&raw).expect("json");
        parsed["expires"] = json!(5000);
        let forged = base64::engine::general_purpose::STANDARD.encode(parsed.to_string());
        assert_eq!(p.check(&forged, 5000), Err(Refused::Invalid));
        let never = instance(json!({"key": "k", "expires": 0}));
        assert_eq!(never.check(&never.token(0), 1 << 40), Ok(()));
    }

    #[test]
    fn configs_are_checked() {
        assert!(Csrf.build(&json!({"key": "k"})).is_ok());
        assert!(Csrf.build(&json!({})).is_err(), "key is required");
        assert!(Csrf.build(&json!({"key": ""})).is_err());
        assert!(Csrf
            .build(&json!({"key": "k", "name": "bad name"}))
            .is_err());
        assert!(Csrf.build(&json!({"key": "k", "expires": -1})).is_err());
        assert!(Csrf.build(&json!({"key": "k", "extra": 1})).is_err());
        let p = instance(json!({"key": "k", "name": "X-Csrf"}));
        assert_eq!(p.header_var, "http_x_csrf");
        assert_eq!(p.cookie_var, "cookie_X-Csrf");
    }
}
