//! `jwt-auth` (priority 2510, rewrite): authenticates a request by a JSON Web Token.
//!
//! Route config: `header` (default `authorization`; a `Bearer ` or `bearer ` prefix is
//! removed), `query` (default `jwt`) and `cookie` (default `jwt`) say where the token is read,
//! in that order; `hide_credentials` (default false) removes the token from where it was found
//! before the request goes upstream; `key_claim_name` (default `key`) is the claim naming the
//! consumer; `claims_to_verify` (`exp` and/or `nbf`: each listed claim must be in the token and
//! valid; when absent or empty, `exp` and `nbf` are checked only when the token has them);
//! `anonymous_consumer`; `realm` (default `jwt`).
//!
//! Consumer (or credential) config: `key` (required, unique), `algorithm` (default `HS256`;
//! `HS256/384/512`, `RS256/384/512`, `PS256/384/512`, `ES256/384/512`, `EdDSA`), `secret` (the
//! HS* algorithms), `base64_secret` (default false), `public_key` (PEM, required by the other
//! algorithms), `exp` (default 86400, accepted for APISIX compatibility: tokens are made by the
//! client), `lifetime_grace_period` (default 0: seconds of clock leeway for `exp` and `nbf`).
//! A token must be signed with its consumer's algorithm (the `alg` of its header).
//!
//! Answers 401 with `{"message": ...}`: `Missing JWT token in request`, `JWT token invalid` (not
//! three base64url parts with JSON objects for header and payload), `missing user key in JWT
//! token`, `Invalid user key in JWT token` or `failed to verify jwt` (the algorithm, the
//! signature or a claim), as APISIX does.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use http::header::{HeaderName, HeaderValue, COOKIE};
use jsonwebtoken::{Algorithm, DecodingKey};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::support::query::hide_query_arg;
use plugin_api::consumer::{admit, consumer_conf, Authenticated};
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, RequestCtx};

/// The kind.
pub struct JwtAuth;

#[derive(Deserialize, JsonSchema)]
pub struct Conf {
    #[serde(default = "default_header")]
    header: String,
    #[serde(default = "default_jwt")]
    query: String,
    #[serde(default = "default_jwt")]
    cookie: String,
    #[serde(default)]
    hide_credentials: bool,
    #[serde(default = "default_key_claim")]
    #[schemars(length(min = 1))]
    key_claim_name: String,
    /// The claims every token must carry, valid.
    #[schemars(extend("uniqueItems" = true))]
    claims_to_verify: Option<Vec<Claim>>,
    #[serde(default)]
    store_in_ctx: bool,
    #[schemars(length(min = 1))]
    anonymous_consumer: Option<String>,
    #[serde(default = "default_realm")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[ -!#-\[\]-~]+$"))]
    realm: String,
}

/// A time claim the plugin checks.
#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
enum Claim {
    Exp,
    Nbf,
}

/// The signature algorithms a consumer may use.
#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Debug, Default)]
#[allow(clippy::upper_case_acronyms)]
enum JwtAlgorithm {
    #[default]
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
    ES512,
    PS256,
    PS384,
    PS512,
    EdDSA,
}

impl JwtAlgorithm {
    fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    /// The name in a token's header.
    fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The verifier's algorithm; `None` for ES512, which it lacks (such tokens never pass).
    fn verifier(self) -> Option<Algorithm> {
        Some(match self {
            Self::HS256 => Algorithm::HS256,
            Self::HS384 => Algorithm::HS384,
            Self::HS512 => Algorithm::HS512,
            Self::RS256 => Algorithm::RS256,
            Self::RS384 => Algorithm::RS384,
            Self::RS512 => Algorithm::RS512,
            Self::ES256 => Algorithm::ES256,
            Self::ES384 => Algorithm::ES384,
            Self::ES512 => return None,
            Self::PS256 => Algorithm::PS256,
            Self::PS384 => Algorithm::PS384,
            Self::PS512 => Algorithm::PS512,
            Self::EdDSA => Algorithm::EdDSA,
        })
    }
}

/// A consumer's config. Other fields are accepted and ignored, as APISIX does.
#[derive(Deserialize, JsonSchema)]
#[schemars(extend("dependencies" = {
    "algorithm": {"oneOf": [
        {"properties": {"algorithm": {"enum": ["HS256", "HS384", "HS512"], "default": "HS256"}}},
        {
            "properties": {
                "public_key": {"type": "string", "minLength": 1},
                "algorithm": {"enum": ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
                    "PS256", "PS384", "PS512", "EdDSA"]}
            },
            "required": ["public_key"]
        }
    ]}
}))]
struct ConsumerConf {
    #[schemars(length(min = 1))]
    key: String,
    #[schemars(length(min = 1))]
    secret: Option<String>,
    #[serde(default)]
    algorithm: JwtAlgorithm,
    /// Token lifetime when APISIX signs tokens; clients sign them here, so it is only checked.
    #[serde(default = "default_exp", rename = "exp")]
    #[schemars(range(min = 1))]
    _exp: u64,
    #[serde(default)]
    base64_secret: bool,
    #[serde(default)]
    lifetime_grace_period: u64,
    public_key: Option<String>,
}

fn default_header() -> String {
    "authorization".to_owned()
}
fn default_jwt() -> String {
    "jwt".to_owned()
}
fn default_key_claim() -> String {
    "key".to_owned()
}
fn default_realm() -> String {
    "jwt".to_owned()
}
fn default_exp() -> u64 {
    86400
}

/// Decodes base64 with or without its padding.
fn decode_base64(text: &str, url: bool) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    if url {
        URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
    } else {
        STANDARD.decode(text).ok().or_else(|| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(text)
                .ok()
        })
    }
}

impl ConsumerConf {
    /// APISIX's checks after the schema.
    fn check(&self) -> Result<(), String> {
        if self.algorithm.is_hmac() && self.secret.is_none() {
            return Err(
                "property \"secret\" is required when using HS based algorithms".to_owned(),
            );
        }
        if self.base64_secret
            && self
                .secret
                .as_deref()
                .is_some_and(|s| decode_base64(s, false).is_none())
        {
            return Err("base64_secret required but the secret is not in base64 format".to_owned());
        }
        if !self.algorithm.is_hmac() && self.public_key.is_none() {
            return Err("missing valid public key".to_owned());
        }
        Ok(())
    }

    /// The key that verifies this consumer's tokens (`None`: none can be made from the config).
    fn decoding_key(&self) -> Option<DecodingKey> {
        if self.algorithm.is_hmac() {
            let secret = self.secret.as_deref()?;
            return Some(if self.base64_secret {
                DecodingKey::from_secret(&decode_base64(secret, false)?)
            } else {
                DecodingKey::from_secret(secret.as_bytes())
            });
        }
        let pem = self.public_key.as_deref()?.as_bytes();
        match self.algorithm.verifier()? {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem).ok(),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem).ok(),
            _ => DecodingKey::from_rsa_pem(pem).ok(),
        }
    }
}

/// A configured instance (the checked config).
pub struct Instance {
    header: HeaderName,
    query: String,
    cookie: String,
    /// The variables of the query argument and the cookie (`arg_<query>`, `cookie_<cookie>`),
    /// named once.
    query_var: String,
    cookie_var: String,
    hide_credentials: bool,
    key_claim_name: String,
    /// Claims that must be present and valid; empty: `exp` and `nbf` when present.
    claims: Vec<Claim>,
    anonymous_consumer: Option<String>,
    challenge: HeaderValue,
}

impl Kind for JwtAuth {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "jwt-auth";
    const PRIORITY: i32 = 2510;
    const IS_AUTH: bool = true;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let header = HeaderName::from_bytes(conf.header.as_bytes())
            .map_err(|_| format!("invalid header `{}`", conf.header))?;
        if conf.store_in_ctx {
            return Err("store_in_ctx is not supported (no Lua context to store into)".to_owned());
        }
        let challenge = HeaderValue::from_str(&format!("Bearer realm=\"{}\"", conf.realm))
            .map_err(|_| format!("invalid realm `{}`", conf.realm))?;
        Ok(Instance {
            header,
            query_var: format!("arg_{}", conf.query),
            cookie_var: format!("cookie_{}", conf.cookie),
            query: conf.query,
            cookie: conf.cookie,
            hide_credentials: conf.hide_credentials,
            key_claim_name: conf.key_claim_name,
            claims: conf.claims_to_verify.unwrap_or_default(),
            anonymous_consumer: conf.anonymous_consumer,
            challenge,
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }

    fn identity(&self, conf: &Value) -> Option<Result<String, String>> {
        Some(consumer_conf::<ConsumerConf>(conf).and_then(|c| c.check().map(|()| c.key)))
    }

    fn identity_schema(&self) -> Option<Value> {
        Some(plugin_api::schema::schema_of::<ConsumerConf>())
    }
}

/// A token split into its parts.
struct Token<'t> {
    header: Map<String, Value>,
    payload: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    signed: &'t str,
    signature: &'t str,
}

impl<'t> Token<'t> {
    /// Three base64url parts, the first two JSON objects.
    fn parse(text: &'t str) -> Option<Token<'t>> {
        let (signed, signature) = text.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        let object = |part: &str| match serde_json::from_slice(&decode_base64(part, true)?) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        Some(Token {
            header: object(header)?,
            payload: object(payload)?,
            signed,
            signature,
        })
    }

    /// Whether the time claims hold at `now` (seconds), with `leeway` seconds of grace.
    fn claims_hold(&self, required: &[Claim], now: f64, leeway: f64) -> bool {
        let holds = |claim: Claim, value: &Value| {
            value.as_f64().is_some_and(|t| match claim {
                Claim::Nbf => t < now + leeway,
                Claim::Exp => t > now - leeway,
            })
        };
        let value = |claim: Claim| {
            let name = match claim {
                Claim::Exp => "exp",
                Claim::Nbf => "nbf",
            };
            self.payload.get(name).filter(|v| !v.is_null())
        };
        if required.is_empty() {
            [Claim::Nbf, Claim::Exp]
                .into_iter()
                .all(|c| value(c).is_none_or(|v| holds(c, v)))
        } else {
            required
                .iter()
                .all(|c| value(*c).is_some_and(|v| holds(*c, v)))
        }
    }
}

/// Where the token was found.
#[derive(Clone, Copy, PartialEq)]
enum Source {
    Header,
    Query,
    Cookie,
}

impl Instance {
    /// The token and where it was found.
    fn token(&self, req: &RequestCtx<'_>) -> Option<(String, Source)> {
        if let Some(v) = req.headers.get(&self.header) {
            let v = String::from_utf8_lossy(v.as_bytes());
            let token = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(&v);
            return Some((token.to_owned(), Source::Header));
        }
        if let Some(t) = req.vars.get(&self.query_var) {
            return Some((t.into_owned(), Source::Query));
        }
        req.vars
            .get(&self.cookie_var)
            .map(|t| (t.into_owned(), Source::Cookie))
    }

    /// Checks `token`: who it authenticates, or the refusal message.
    fn verify(&self, req: &RequestCtx<'_>, text: &str) -> Result<Arc<Authenticated>, &'static str> {
        const FAILED: &str = "failed to verify jwt";
        let token = Token::parse(text).ok_or("JWT token invalid")?;
        let key = token
            .payload
            .get(&self.key_claim_name)
            .filter(|v| !v.is_null() && *v != &Value::Bool(false))
            .ok_or("missing user key in JWT token")?;
        let found = key
            .as_str()
            .and_then(|k| req.consumers.authenticate("jwt-auth", k))
            .ok_or("Invalid user key in JWT token")?;
        let conf: ConsumerConf = serde_json::from_value(found.conf.clone()).map_err(|_| FAILED)?;
        let decoding = conf.decoding_key().ok_or(FAILED)?;
        if token.header.get("alg").and_then(Value::as_str) != Some(conf.algorithm.name()) {
            return Err(FAILED);
        }
        let algorithm = conf.algorithm.verifier().ok_or(FAILED)?;
        let signed = jsonwebtoken::crypto::verify(
            token.signature,
            token.signed.as_bytes(),
            &decoding,
            algorithm,
        );
        if !matches!(signed, Ok(true)) {
            return Err(FAILED);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Whole seconds, as nginx's clock; the grace period is at most a few days.
        #[allow(clippy::cast_precision_loss)]
        let (now, leeway) = (now as f64, conf.lifetime_grace_period as f64);
        if !token.claims_hold(&self.claims, now, leeway) {
            return Err(FAILED);
        }
        Ok(found)
    }
}

/// The `Cookie` header without cookie `name`.
fn without_cookie(header: &str, name: &str) -> String {
    header
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .collect::<Vec<_>>()
        .join("; ")
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        let token = self.token(req);
        let found = match &token {
            Some((t, _)) => self.verify(req, t),
            None => Err("Missing JWT token in request"),
        };
        admit(
            req,
            found,
            self.anonymous_consumer.as_deref(),
            &self.challenge,
            |req| {
                if !self.hide_credentials {
                    return;
                }
                match token.as_ref().map(|(_, source)| *source) {
                    Some(Source::Header) => {
                        req.headers.remove(&self.header);
                    }
                    Some(Source::Query) => hide_query_arg(req, &self.query),
                    Some(Source::Cookie) => {
                        let kept = req.headers.get(COOKIE).map(|v| {
                            without_cookie(&String::from_utf8_lossy(v.as_bytes()), &self.cookie)
                        });
                        match kept.as_deref().map(HeaderValue::from_str) {
                            Some(Ok(v)) if !v.is_empty() => {
                                req.headers.insert(COOKIE, v);
                            }
                            _ => {
                                req.headers.remove(COOKIE);
                            }
                        }
                    }
                    None => {}
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::PluginKind;
    use serde_json::json;

    #[test]
    fn configs_are_checked() {
        assert!(JwtAuth.build(&json!({})).is_ok());
        assert!(JwtAuth
            .build(&json!({"claims_to_verify": ["exp"], "hide_credentials": true}))
            .is_ok());
        assert!(JwtAuth
            .build(&json!({"claims_to_verify": ["iat"]}))
            .is_err());
        assert!(JwtAuth.build(&json!({"header": "bad header"})).is_err());
        assert!(JwtAuth.build(&json!({"store_in_ctx": true})).is_err());
        assert_eq!(
            JwtAuth.consumer_identity(&json!({"key": "k", "secret": "s"})),
            Some(Ok("k".into()))
        );
        // The key is only parsed when a token is checked, as APISIX does.
        assert_eq!(
            JwtAuth.consumer_identity(
                &json!({"key": "k", "algorithm": "RS256", "public_key": "not pem"})
            ),
            Some(Ok("k".into()))
        );
        for (bad, why) in [
            (json!({"key": "k"}), "property \"secret\" is required when using HS based algorithms"),
            (json!({"key": "", "secret": "s"}), "property \"key\" validation failed: string too short, expected at least 1, got 0"),
            (json!({"key": "k", "algorithm": "RS256"}), "failed to validate dependent schema for \"algorithm\": value should match only one schema, but matches none"),
            (json!({"key": "k", "secret": "{^c0j4&]2!=J=", "base64_secret": true}), "base64_secret required but the secret is not in base64 format"),
        ] {
            assert_eq!(JwtAuth.consumer_identity(&bad), Some(Err(why.to_owned())), "{bad}");
        }
        assert!(matches!(
            JwtAuth.consumer_identity(&json!({"key": "k", "algorithm": "HS999", "secret": "s"})),
            Some(Err(_))
        ));
    }

    #[test]
    fn tokens_and_claims() {
        assert!(Token::parse("a.b").is_none());
        assert!(Token::parse("invalid-eyJhbGciOiJIUzI1NiJ9.e30.x").is_none());
        // {"alg":"HS256"} . {"exp":100,"nbf":50}
        let t =
            Token::parse("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjEwMCwibmJmIjo1MH0.sig").expect("token");
        assert_eq!(t.signature, "sig");
        assert!(t.claims_hold(&[], 60.0, 0.0));
        assert!(!t.claims_hold(&[], 100.0, 0.0), "expired");
        assert!(t.claims_hold(&[], 100.0, 1.0), "grace period");
        assert!(!t.claims_hold(&[], 50.0, 0.0), "not yet valid");
        let none = Token::parse("eyJhbGciOiJIUzI1NiJ9.e30.sig").expect("token");
        assert!(
            none.claims_hold(&[], 60.0, 0.0),
            "absent claims are not checked by default"
        );
        assert!(
            !none.claims_hold(&[Claim::Nbf], 60.0, 0.0),
            "a configured claim is required"
        );
    }

    #[test]
    fn cookies_are_removed_by_name() {
        assert_eq!(
            without_cookie("hello=world; jwt=abc; foo=bar", "jwt"),
            "hello=world; foo=bar"
        );
        assert_eq!(without_cookie("jwt=abc", "jwt"), "");
    }
}
