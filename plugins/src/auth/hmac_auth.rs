//! `hmac-auth` (priority 2530, rewrite): authenticates a request by an HMAC signature
//! (APISIX 3.x, after draft-cavage-http-signatures).
//!
//! The client sends `Authorization: Signature keyId="...",algorithm="hmac-sha256",
//! headers="@request-target date",signature="<base64>"`. The signing string is the `keyId`, then
//! one line per name in `headers`: `@request-target` gives `METHOD request_uri` (the method as
//! sent, the URI with its query, as received), any other name gives `name: value` (the request's
//! header; a header the request lacks is left out, as APISIX does); lines are joined with `\n`
//! and end with `\n`. The signature is the HMAC of that string with the consumer's `secret_key`.
//!
//! Route config: `allowed_algorithms` (default `hmac-sha1`, `hmac-sha256`, `hmac-sha512`),
//! `clock_skew` (seconds, default 300, at least 1: the `Date` header must be within that of the
//! gateway's clock), `signed_headers` (names that must be in the signature's `headers`; default
//! `["date"]`, `[]` for none),
//! `validate_request_body` (see below), `max_req_body_size`, `hide_credentials` (removes
//! `Authorization` before the request goes upstream), `anonymous_consumer`, `realm` (default
//! `hmac`, in `WWW-Authenticate: hmac realm="..."`). Consumer (or credential) config: `key_id`
//! (the identity, unique) and `secret_key`.
//!
//! `validate_request_body` (default false): the request must also carry
//! `Digest: SHA-256=<base64 of the body's SHA-256>`; the body is read whole for it (at most
//! `max_req_body_size` bytes, default 64 MiB: a larger body fails the check) and still goes
//! upstream as received.
//!
//! Answers 401 `{"message":"client request can't be validated: missing Authorization header"}`,
//! `{"message":"client request can't be validated: Authorization header does not start with
//! 'Signature'"}`, or, for any other failure (unknown key, algorithm not allowed, clock skew,
//! missing signed header, wrong signature), `{"message":"client request can't be validated"}`
//! as APISIX does (the reason is logged at debug level).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use http::header::{HeaderValue, AUTHORIZATION, DATE};
use http::HeaderMap;
use ring::hmac;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use plugin_api::consumer::{admit, constant_time_eq, consumer_conf, Authenticated, ConsumerIndex};
use plugin_api::Vars;
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, RequestCtx};

/// The kind.
pub struct HmacAuth;

/// A signature algorithm.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug)]
enum Algorithm {
    #[serde(rename = "hmac-sha1")]
    Sha1,
    #[serde(rename = "hmac-sha256")]
    Sha256,
    #[serde(rename = "hmac-sha512")]
    Sha512,
}

impl Algorithm {
    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "hmac-sha1" => Some(Algorithm::Sha1),
            "hmac-sha256" => Some(Algorithm::Sha256),
            "hmac-sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::Sha256 => hmac::HMAC_SHA256,
            Algorithm::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[schemars(title = "work with route or service object")]
pub struct Conf {
    /// The algorithms a client may sign with (at least one).
    #[serde(default = "default_algorithms")]
    #[schemars(length(min = 1))]
    allowed_algorithms: Vec<Algorithm>,
    /// Largest allowed difference, in seconds, between the `Date` header and the gateway's clock.
    #[serde(default = "default_clock_skew")]
    #[schemars(range(min = 1))]
    clock_skew: u64,
    /// Headers every signature must cover (default `date`; `[]` for none).
    #[serde(default = "default_signed_headers")]
    #[schemars(inner(length(min = 1, max = 50)))]
    signed_headers: Vec<String>,
    /// Check the `Digest` header against the body.
    #[serde(default)]
    #[schemars(description = "A boolean value telling the plugin to enable body validation")]
    validate_request_body: bool,
    /// Largest body read for `validate_request_body`, in bytes.
    #[serde(default = "default_max_body")]
    #[schemars(range(min = 1))]
    max_req_body_size: u64,
    /// Remove `Authorization` before the request goes upstream.
    #[serde(default)]
    hide_credentials: bool,
    /// The consumer used when authentication fails.
    #[schemars(length(min = 1))]
    anonymous_consumer: Option<String>,
    /// The realm of `WWW-Authenticate`.
    #[serde(default = "default_realm")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[ -!#-\[\]-~]+$"))]
    realm: String,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(title = "work with consumer object")]
struct ConsumerConf {
    /// The consumer's identity, sent as `keyId`.
    #[schemars(length(min = 1, max = 256))]
    key_id: String,
    /// The HMAC key.
    #[schemars(length(min = 1, max = 256))]
    secret_key: String,
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]
}
fn default_signed_headers() -> Vec<String> {
    vec!["date".to_owned()]
}
fn default_clock_skew() -> u64 {
    300
}
fn default_max_body() -> u64 {
    64 * 1024 * 1024
}
fn default_realm() -> String {
    "hmac".to_owned()
}

/// A configured instance (the checked config).
pub struct Instance {
    allowed: Vec<Algorithm>,
    clock_skew: Duration,
    signed_headers: Vec<String>,
    /// `validate_request_body`: the most bytes read.
    validate_body: Option<usize>,
    hide_credentials: bool,
    anonymous_consumer: Option<String>,
    challenge: HeaderValue,
}

const PREFIX: &str = "client request can't be validated";

impl Kind for HmacAuth {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "hmac-auth";
    const PRIORITY: i32 = 2530;
    const IS_AUTH: bool = true;

    fn conf_schema(&self) -> Value {
        // In the shape APISIX's Admin API shows it: definitions inlined, with its title.
        let mut schema =
            plugin_api::schema::from_rust_types(&plugin_api::schema::schema_of::<Conf>());
        if let Value::Object(map) = &mut schema {
            map.insert(
                "title".to_owned(),
                "work with route or service object".into(),
            );
        }
        schema
    }

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        if conf.allowed_algorithms.is_empty() {
            return Err("property \"allowed_algorithms\" validation failed: expect array to have at least 1 items".to_owned());
        }
        if conf.clock_skew < 1 {
            return Err(
                "property \"clock_skew\" validation failed: expected 0 to be at least 1".to_owned(),
            );
        }
        if conf.max_req_body_size < 1 {
            return Err(
                "property \"max_req_body_size\" validation failed: expected 0 to be at least 1"
                    .to_owned(),
            );
        }
        let signed_headers = conf.signed_headers;
        if let Some(bad) = signed_headers
            .iter()
            .find(|h| h.is_empty() || h.chars().count() > 50)
        {
            return Err(format!(
                "property \"signed_headers\" validation failed: `{bad}` must be 1-50 characters"
            ));
        }
        let challenge = HeaderValue::from_str(&format!("hmac realm=\"{}\"", conf.realm))
            .map_err(|_| format!("invalid realm `{}`", conf.realm))?;
        Ok(Instance {
            allowed: conf.allowed_algorithms,
            clock_skew: Duration::from_secs(conf.clock_skew),
            signed_headers,
            validate_body: conf
                .validate_request_body
                .then(|| usize::try_from(conf.max_req_body_size).unwrap_or(usize::MAX)),
            hide_credentials: conf.hide_credentials,
            anonymous_consumer: conf.anonymous_consumer,
            challenge,
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }

    fn identity(&self, conf: &Value) -> Option<Result<String, String>> {
        Some(consumer_conf::<ConsumerConf>(conf).and_then(|c| {
            let ok = |s: &str| (1..=256).contains(&s.chars().count());
            if ok(&c.key_id) && ok(&c.secret_key) {
                Ok(c.key_id)
            } else {
                Err("key_id and secret_key must be 1-256 characters".to_owned())
            }
        }))
    }

    fn identity_schema(&self) -> Option<Value> {
        Some(plugin_api::schema::schema_of::<ConsumerConf>())
    }
}

/// The fields of an `Authorization: Signature ...` value.
#[derive(Debug, Default, PartialEq)]
struct Params {
    key_id: Option<String>,
    algorithm: Option<String>,
    signature: Option<String>,
    headers: Option<Vec<String>>,
}

/// Parses `Signature k="v",k="v"` as APISIX does: the text after `Signature` and one character,
/// split at commas, each part `key="value"` (other parts and keys ignored).
fn parse_authorization(value: &str) -> Result<Params, &'static str> {
    let Some(rest) = value.strip_prefix("Signature") else {
        return Err("Authorization header does not start with 'Signature'");
    };
    let mut chars = rest.chars();
    chars.next();
    let mut params = Params::default();
    for field in chars.as_str().split(',') {
        let field = field.trim_start();
        let Some((key, quoted)) = field.split_once("=\"") else {
            continue;
        };
        if key.is_empty() || !key.chars().all(char::is_alphanumeric) {
            continue;
        }
        let Some(end) = quoted.find('"') else {
            continue;
        };
        let value = quoted[..end].to_owned();
        match key {
            "keyId" => params.key_id = Some(value),
            "algorithm" => params.algorithm = Some(value),
            "signature" => params.signature = Some(value),
            "headers" => params.headers = Some(value.split(' ').map(str::to_owned).collect()),
            _ => {}
        }
    }
    Ok(params)
}

/// The `Digest` header value of `body`: `SHA-256=` and the base64 of its SHA-256.
fn body_digest(body: &[u8]) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA256, body);
    format!(
        "SHA-256={}",
        base64::engine::general_purpose::STANDARD.encode(sum.as_ref())
    )
}

/// The string a client signs (see the module docs).
fn signing_string(key_id: &str, names: &[String], headers: &HeaderMap, vars: &dyn Vars) -> String {
    let mut out = String::with_capacity(128);
    out.push_str(key_id);
    out.push('\n');
    for name in names {
        let mut values = headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_some() {
            out.push_str(name);
            out.push_str(": ");
            for (i, v) in values.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
            out.push('\n');
        } else if name == "@request-target" {
            let method = vars.get("request_method").unwrap_or_default();
            let uri = vars.get("request_uri").unwrap_or_default();
            out.push_str(&method);
            out.push(' ');
            out.push_str(if uri.is_empty() { "/" } else { &uri });
            out.push('\n');
        }
    }
    out
}

impl Instance {
    /// The consumer a signed request authenticates as, or why it does not.
    fn validate(
        &self,
        params: &Params,
        headers: &HeaderMap,
        vars: &dyn Vars,
        consumers: &dyn ConsumerIndex,
        now: SystemTime,
    ) -> Result<Arc<Authenticated>, String> {
        let (Some(key_id), Some(signature)) = (&params.key_id, &params.signature) else {
            return Err("keyId or signature missing".to_owned());
        };
        let Some(algorithm) = &params.algorithm else {
            return Err("algorithm missing".to_owned());
        };
        let found = consumers
            .authenticate("hmac-auth", key_id)
            .ok_or("Invalid key_id")?;
        let algorithm = Algorithm::from_name(algorithm)
            .filter(|a| self.allowed.contains(a))
            .ok_or("Invalid algorithm")?;
        let date = headers
            .get(DATE)
            .ok_or("Date header missing. failed to validate clock skew")?;
        let sent = date
            .to_str()
            .ok()
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .ok_or("Invalid GMT format time")?;
        let skew = now
            .duration_since(sent)
            .or_else(|_| sent.duration_since(now))
            .unwrap_or_default();
        // Whole seconds, as nginx's clock.
        if skew.as_secs() > self.clock_skew.as_secs() {
            return Err("Clock skew exceeded".to_owned());
        }
        let names = params.headers.as_deref().unwrap_or_default();
        if let Some(missing) = self.signed_headers.iter().find(|h| !names.contains(*h)) {
            return Err(format!("expected header \"{missing}\" missing in signing"));
        }
        let secret = found
            .conf
            .get("secret_key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let given = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| "Invalid signature")?;
        let message = signing_string(key_id, names, headers, vars);
        let key = hmac::Key::new(algorithm.ring(), secret.as_bytes());
        // ring compares in constant time.
        hmac::verify(&key, message.as_bytes(), &given).map_err(|_| "Invalid signature")?;
        Ok(found)
    }

    /// With `validate_request_body`: whether `Digest` is the body's SHA-256.
    async fn check_digest(&self, req: &mut RequestCtx<'_>) -> Result<(), String> {
        let Some(limit) = self.validate_body else {
            return Ok(());
        };
        let given = req.headers.get("digest").cloned().ok_or("Invalid digest")?;
        let body = req.body.read(limit).await.map_err(|e| e.to_string())?;
        if constant_time_eq(body_digest(&body).as_bytes(), given.as_bytes()) {
            Ok(())
        } else {
            Err("Invalid digest".to_owned())
        }
    }

    async fn authenticate(
        &self,
        req: &mut RequestCtx<'_>,
        now: SystemTime,
    ) -> Result<Arc<Authenticated>, String> {
        let Some(value) = req.headers.get(AUTHORIZATION) else {
            return Err(format!("{PREFIX}: missing Authorization header"));
        };
        let params = parse_authorization(&String::from_utf8_lossy(value.as_bytes()))
            .map_err(|why| format!("{PREFIX}: {why}"))?;
        let checked = match self.validate(&params, req.headers, req.vars, req.consumers, now) {
            Ok(found) => self.check_digest(req).await.map(|()| found),
            Err(why) => Err(why),
        };
        checked.map_err(|why| {
            tracing::debug!(reason = %why, "hmac-auth: {PREFIX}");
            PREFIX.to_owned()
        })
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        let found = self.authenticate(req, SystemTime::now()).await;
        let found = found.as_ref().map(Arc::clone).map_err(String::as_str);
        admit(
            req,
            found,
            self.anonymous_consumer.as_deref(),
            &self.challenge,
            |req| {
                if self.hide_credentials {
                    req.headers.remove(AUTHORIZATION);
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::{header, Consumers, Fake};
    use plugin_api::PluginKind;
    use plugin_api::Reply;
    use serde_json::json;

    const KEY: &str = "john-key";
    const SECRET: &str = "john-secret-key";

    fn consumers() -> Consumers {
        let mut consumers = Consumers::default();
        consumers.add(
            "hmac-auth",
            KEY,
            "john",
            json!({"key_id": KEY, "secret_key": SECRET}),
        );
        consumers.add_consumer("anon");
        consumers
    }

    fn sign(alg: hmac::Algorithm, secret: &str, text: &str) -> String {
        let tag = hmac::sign(&hmac::Key::new(alg, secret.as_bytes()), text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    }

    fn now_date() -> String {
        httpdate::fmt_http_date(SystemTime::now())
    }

    /// A GET /get?a=1 with `Date` and the given `Authorization`.
    fn fake(authorization: Option<String>, date: Option<&str>) -> Fake {
        let mut fake = Fake::new(&[("request_method", "GET"), ("request_uri", "/get?a=1")]);
        fake.consumers = consumers();
        if let Some(d) = date {
            fake.headers.insert(DATE, d.parse().expect("date"));
        }
        if let Some(a) = authorization {
            fake.headers.insert(AUTHORIZATION, a.parse().expect("auth"));
        }
        fake
    }

    fn signed(alg: &str, date: &str) -> String {
        let ring_alg = Algorithm::from_name(alg).map_or(hmac::HMAC_SHA256, Algorithm::ring);
        let text = format!("{KEY}\nGET /get?a=1\ndate: {date}\n");
        format!(
            "Signature keyId=\"{KEY}\",algorithm=\"{alg}\",headers=\"@request-target date\",signature=\"{}\"",
            sign(ring_alg, SECRET, &text)
        )
    }

    fn build(conf: Value) -> Arc<dyn Plugin> {
        HmacAuth.build(&conf).expect("valid config")
    }

    fn message(reply: &Reply) -> String {
        let v: Value = serde_json::from_slice(&reply.body).expect("json");
        v["message"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn configs_are_checked() {
        assert!(HmacAuth.build(&json!({})).is_ok());
        assert!(HmacAuth
            .build(&json!({"allowed_algorithms": ["hmac-sha256"], "clock_skew": 10, "signed_headers": ["date", "x-custom"], "validate_request_body": false, "max_req_body_size": 1024, "hide_credentials": true, "anonymous_consumer": "anon", "realm": "r"}))
            .is_ok());
        for bad in [
            json!({"allowed_algorithms": []}),
            json!({"allowed_algorithms": ["hmac-md5"]}),
            json!({"allowed_algorithms": "hmac-sha1"}),
            json!({"clock_skew": 0}),
            json!({"clock_skew": -1}),
            json!({"clock_skew": 1.5}),
            json!({"signed_headers": [""]}),
            json!({"signed_headers": ["x".repeat(51)]}),
            json!({"max_req_body_size": 0}),
            json!({"validate_request_body": "yes"}),
            json!({"realm": "bad\nrealm"}),
        ] {
            assert!(HmacAuth.build(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            HmacAuth.consumer_identity(&json!({"key_id": "k", "secret_key": "s"})),
            Some(Ok("k".to_owned()))
        );
        for bad in [
            json!({"key_id": "k"}),
            json!({"secret_key": "s"}),
            json!({"key_id": "", "secret_key": "s"}),
            json!({"key_id": "k", "secret_key": "s".repeat(257)}),
        ] {
            assert!(
                matches!(HmacAuth.consumer_identity(&bad), Some(Err(_))),
                "{bad}"
            );
        }
        let schema = HmacAuth.schema().to_string();
        assert!(schema.contains("hmac-sha512"), "{schema}");
    }

    #[test]
    fn authorization_values() {
        let p = parse_authorization(
            "Signature keyId=\"k\",algorithm=\"hmac-sha1\", headers=\"@request-target date\",signature=\"c2ln\",other=\"x\"",
        )
        .expect("parsed");
        assert_eq!(
            p,
            Params {
                key_id: Some("k".into()),
                algorithm: Some("hmac-sha1".into()),
                signature: Some("c2ln".into()),
                headers: Some(vec!["@request-target".into(), "date".into()]),
            }
        );
        assert_eq!(parse_authorization("Signature "), Ok(Params::default()));
        assert_eq!(
            parse_authorization("Signature keyId=k,signature=\"s"),
            Ok(Params::default()),
            "unquoted and unterminated values are ignored"
        );
        assert!(parse_authorization("Bearer x").is_err());
        assert!(
            parse_authorization("signature keyId=\"k\"").is_err(),
            "case-sensitive as APISIX"
        );
    }

    #[test]
    fn signing_strings() {
        let vars: std::collections::HashMap<&str, &str> =
            [("request_method", "POST"), ("request_uri", "/p?q=1")].into();
        let mut headers = HeaderMap::new();
        headers.insert("date", "D".parse().expect("v"));
        headers.append("x-multi", "a".parse().expect("v"));
        headers.append("x-multi", "b".parse().expect("v"));
        let names: Vec<String> = ["@request-target", "date", "x-absent", "x-multi", "X-Multi"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            signing_string("k", &names, &headers, &vars),
            "k\nPOST /p?q=1\ndate: D\nx-multi: a, b\nX-Multi: a, b\n"
        );
        assert_eq!(signing_string("k", &[], &headers, &vars), "k\n");
        let empty: std::collections::HashMap<&str, &str> = [("request_method", "GET")].into();
        assert_eq!(
            signing_string("k", &names[..1], &headers, &empty),
            "k\nGET /\n",
            "an empty URI signs as /"
        );
    }

    #[tokio::test]
    async fn every_algorithm_signs() {
        let plugin = build(json!({}));
        let date = now_date();
        for alg in ["hmac-sha1", "hmac-sha256", "hmac-sha512"] {
            let mut f = fake(Some(signed(alg, &date)), Some(&date));
            assert!(f.rewrite(&*plugin).await.is_none(), "{alg}");
            let found = f.consumer.as_ref().expect("authenticated");
            assert_eq!(found.consumer.username, "john");
            assert!(f.headers.contains_key(AUTHORIZATION), "kept by default");
        }
    }

    #[tokio::test]
    async fn refusals() {
        let plugin =
            build(json!({"allowed_algorithms": ["hmac-sha256"], "signed_headers": ["date"]}));
        let date = now_date();
        let refused = |reply: Option<Reply>| {
            let reply = reply.expect("refused");
            assert_eq!(reply.status, 401);
            assert_eq!(
                header(&reply.headers, "www-authenticate"),
                Some("hmac realm=\"hmac\"")
            );
            message(&reply)
        };
        let mut f = fake(None, Some(&date));
        assert_eq!(
            refused(f.rewrite(&*plugin).await),
            "client request can't be validated: missing Authorization header"
        );
        let mut f = fake(Some("Basic abc".into()), Some(&date));
        assert_eq!(
            refused(f.rewrite(&*plugin).await),
            "client request can't be validated: Authorization header does not start with 'Signature'"
        );
        let good = signed("hmac-sha256", &date);
        let stale = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(400));
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(400));
        let cases: Vec<(String, Option<&str>)> = vec![
            (
                "Signature keyId=\"john-key\",algorithm=\"hmac-sha256\"".into(),
                Some(&date),
            ),
            (
                "Signature signature=\"x\",algorithm=\"hmac-sha256\"".into(),
                Some(&date),
            ),
            (
                "Signature keyId=\"john-key\",signature=\"x\"".into(),
                Some(&date),
            ),
            (good.replace(KEY, "nobody"), Some(&date)),
            (signed("hmac-sha1", &date), Some(&date)),
            (signed("hmac-md5", &date), Some(&date)),
            (good.clone(), None),
            (good.clone(), Some("yesterday")),
            (signed("hmac-sha256", &stale), Some(&stale)),
            (signed("hmac-sha256", &future), Some(&future)),
            (
                good.replace("@request-target date", "@request-target"),
                Some(&date),
            ),
            (
                good.replace(",headers=\"@request-target date\"", ""),
                Some(&date),
            ),
            (good.replace("signature=\"", "signature=\"A"), Some(&date)),
            (good.replace("signature=\"", "signature=\"!"), Some(&date)),
        ];
        for (auth, d) in cases {
            let mut f = fake(Some(auth.clone()), d);
            assert_eq!(
                refused(f.rewrite(&*plugin).await),
                "client request can't be validated",
                "{auth} {d:?}"
            );
            assert!(f.consumer.is_none());
        }
        // The signature covers the request line: another URI does not pass.
        let mut f = fake(Some(good.clone()), Some(&date));
        f.vars.insert("request_uri", "/get?a=2");
        assert!(f.rewrite(&*plugin).await.is_some());
        // A different date than the one signed.
        let other = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(5));
        if other != date {
            let mut f = fake(Some(good.clone()), Some(&other));
            assert!(f.rewrite(&*plugin).await.is_some());
        }
        // Within the skew.
        let mut f = fake(Some(good), Some(&date));
        assert!(f.rewrite(&*plugin).await.is_none());
    }

    #[tokio::test]
    async fn clock_skew_is_configurable() {
        let plugin = build(json!({"clock_skew": 1000}));
        let old = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(400));
        let mut f = fake(Some(signed("hmac-sha256", &old)), Some(&old));
        assert!(f.rewrite(&*plugin).await.is_none());
    }

    #[tokio::test]
    async fn signed_headers_must_be_covered() {
        let plugin = build(json!({"signed_headers": ["x-custom"]}));
        let date = now_date();
        let text = format!("{KEY}\nGET /get?a=1\ndate: {date}\nx-custom: v\n");
        let auth = format!(
            "Signature keyId=\"{KEY}\",algorithm=\"hmac-sha512\",headers=\"@request-target date x-custom\",signature=\"{}\"",
            sign(hmac::HMAC_SHA512, SECRET, &text)
        );
        let mut f = fake(Some(auth.clone()), Some(&date));
        f.headers.insert("x-custom", "v".parse().expect("v"));
        assert!(f.rewrite(&*plugin).await.is_none());
        // The header's value is signed.
        let mut f = fake(Some(auth), Some(&date));
        f.headers.insert("x-custom", "changed".parse().expect("v"));
        assert!(f.rewrite(&*plugin).await.is_some());
        // Without x-custom in `headers`.
        let mut f = fake(Some(signed("hmac-sha256", &date)), Some(&date));
        assert!(f.rewrite(&*plugin).await.is_some());
    }

    #[tokio::test]
    async fn the_body_digest_is_checked() {
        use bytes::Bytes;
        use plugin_api::body::{Held, RequestBody};
        assert_eq!(
            body_digest(b"{\"name\": \"world\"}"),
            "SHA-256=78qzJuLwSpZ8HacsTdFCQJWxzPMOf8bYctRk2ySLpS8=",
            "APISIX's documented example"
        );
        let plugin = build(json!({"validate_request_body": true, "max_req_body_size": 32}));
        let date = now_date();
        let body = "{\"name\": \"world\"}";
        let run = |digest: Option<String>, body: String| {
            let mut f = fake(Some(signed("hmac-sha256", &date)), Some(&date));
            if let Some(d) = digest {
                f.headers.insert("digest", d.parse().expect("digest"));
            }
            f.body = Held(Bytes::from(body));
            f
        };
        let mut f = run(Some(body_digest(body.as_bytes())), body.into());
        assert!(f.rewrite(&*plugin).await.is_none());
        assert_eq!(
            f.body.read(32).await.expect("kept"),
            body,
            "the body still goes upstream"
        );
        let mut f = run(Some(body_digest(b"")), String::new());
        assert!(
            f.rewrite(&*plugin).await.is_none(),
            "an empty body has a digest too"
        );

        let big = "x".repeat(33);
        for (digest, body) in [
            (None, body.to_owned()),
            (
                Some(body_digest(body.as_bytes())),
                "{\"name\": \"tampered\"}".to_owned(),
            ),
            (
                Some(body_digest(body.as_bytes()).replace("SHA-256", "sha-256")),
                body.to_owned(),
            ),
            (Some(body_digest(big.as_bytes())), big.clone()),
        ] {
            let mut f = run(digest.clone(), body);
            let reply = f.rewrite(&*plugin).await.expect("refused");
            assert_eq!(
                message(&reply),
                "client request can't be validated",
                "{digest:?}"
            );
        }
        // Without validate_request_body neither Digest nor the body is looked at.
        let mut f = run(None, "anything".into());
        assert!(f.rewrite(&*build(json!({}))).await.is_none());
    }

    #[tokio::test]
    async fn hide_credentials_and_anonymous() {
        let plugin = build(json!({"hide_credentials": true, "realm": "api"}));
        let date = now_date();
        let mut f = fake(Some(signed("hmac-sha256", &date)), Some(&date));
        assert!(f.rewrite(&*plugin).await.is_none());
        assert!(!f.headers.contains_key(AUTHORIZATION));

        let mut f = fake(None, Some(&date));
        let reply = f.rewrite(&*plugin).await.expect("refused");
        assert_eq!(
            header(&reply.headers, "www-authenticate"),
            Some("hmac realm=\"api\"")
        );

        let anon = build(json!({"anonymous_consumer": "anon"}));
        let mut f = fake(Some("Signature keyId=\"nobody\"".into()), Some(&date));
        assert!(f.rewrite(&*anon).await.is_none());
        assert_eq!(
            f.consumer.as_ref().map(|c| c.consumer.username.as_str()),
            Some("anon")
        );
        let missing = build(json!({"anonymous_consumer": "ghost"}));
        let mut f = fake(None, Some(&date));
        let reply = f.rewrite(&*missing).await.expect("refused");
        assert_eq!(message(&reply), "Invalid user authorization");
    }
}
