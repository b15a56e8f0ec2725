//! `jwt-auth` (priority 2510, rewrite): authenticates a request by a JSON Web Token.
//!
//! Route config: `header` (default `authorization`, a `Bearer ` prefix is accepted), `query`
//! (default `jwt`) and `cookie` (default `jwt`) say where the token is read, in that order;
//! `hide_credentials` (default false) removes the header; `key_claim_name` (default `key`) is
//! the claim naming the consumer; `claims_to_verify` (default `["exp", "nbf"]`);
//! `anonymous_consumer`; `realm` (default `jwt`).
//! Consumer (or credential) config: `key` (required, unique), `algorithm` (default `HS256`;
//! `HS256/384/512`, `RS256/384/512`, `PS256/384/512`, `ES256/384`, `EdDSA`), `secret` (HS*,
//! required here), `base64_secret` (default false), `public_key` (PEM, the other algorithms),
//! `exp` (default 86400, accepted for APISIX compatibility: tokens are made by the client),
//! `lifetime_grace_period` (default 0 seconds of clock leeway).
//! Answers 401 with `{"message": ...}`: `Missing JWT token in request`, `missing user key in JWT
//! token`, `Invalid user key in JWT token` or `failed to verify jwt`.

use std::collections::HashSet;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::consumers::admit;
use super::{parse_conf, Flow, Plugin, PluginKind, RequestCtx};

/// The kind.
pub struct JwtAuth;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Conf {
    #[serde(default = "default_header")]
    header: String,
    #[serde(default = "default_jwt")]
    query: String,
    #[serde(default = "default_jwt")]
    cookie: String,
    #[serde(default)]
    hide_credentials: bool,
    #[serde(default = "default_key_claim")]
    key_claim_name: String,
    #[serde(default = "default_claims")]
    claims_to_verify: Vec<String>,
    #[serde(default)]
    store_in_ctx: bool,
    anonymous_consumer: Option<String>,
    #[serde(default = "default_realm")]
    realm: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConsumerConf {
    key: String,
    #[serde(default = "default_algorithm")]
    algorithm: String,
    secret: Option<String>,
    #[serde(default)]
    base64_secret: bool,
    public_key: Option<String>,
    /// Token lifetime when APISIX signs tokens; clients sign them here, so it is only checked.
    #[serde(default = "default_exp")]
    #[allow(dead_code)]
    exp: u64,
    #[serde(default)]
    lifetime_grace_period: u64,
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
fn default_claims() -> Vec<String> {
    vec!["exp".to_owned(), "nbf".to_owned()]
}
fn default_realm() -> String {
    "jwt".to_owned()
}
fn default_algorithm() -> String {
    "HS256".to_owned()
}
fn default_exp() -> u64 {
    86400
}

struct Instance {
    header: HeaderName,
    query: String,
    cookie: String,
    hide_credentials: bool,
    key_claim_name: String,
    verify_exp: bool,
    verify_nbf: bool,
    anonymous_consumer: Option<String>,
    challenge: HeaderValue,
}

impl ConsumerConf {
    fn algorithm(&self) -> Result<Algorithm, String> {
        self.algorithm
            .parse()
            .map_err(|_| format!("unknown algorithm `{}`", self.algorithm))
    }

    /// The key that verifies this consumer's tokens.
    fn decoding_key(&self) -> Result<(Algorithm, DecodingKey), String> {
        let algorithm = self.algorithm()?;
        let pem = || {
            self.public_key
                .as_deref()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| format!("public_key is required for {}", self.algorithm))
        };
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = self
                    .secret
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| format!("secret is required for {}", self.algorithm))?;
                if self.base64_secret {
                    DecodingKey::from_base64_secret(secret).map_err(|e| format!("secret: {e}"))?
                } else {
                    DecodingKey::from_secret(secret.as_bytes())
                }
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem()?.as_bytes())
                .map_err(|e| format!("public_key: {e}"))?,
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem()?.as_bytes())
                .map_err(|e| format!("public_key: {e}"))?,
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem()?.as_bytes())
                .map_err(|e| format!("public_key: {e}"))?,
            _ => return Err(format!("algorithm `{}` is not supported", self.algorithm)),
        };
        Ok((algorithm, key))
    }
}

impl PluginKind for JwtAuth {
    fn name(&self) -> &'static str {
        "jwt-auth"
    }

    fn priority(&self) -> i32 {
        2510
    }

    fn schema(&self) -> Value {
        crate::model::schema_of::<Conf>()
    }

    fn build(&self, conf: &Value) -> Result<Arc<dyn Plugin>, String> {
        let conf: Conf = parse_conf(conf)?;
        let header = HeaderName::from_bytes(conf.header.as_bytes())
            .map_err(|_| format!("invalid header `{}`", conf.header))?;
        for claim in &conf.claims_to_verify {
            if claim != "exp" && claim != "nbf" {
                return Err(format!("claims_to_verify: only exp and nbf, not `{claim}`"));
            }
        }
        if conf.store_in_ctx {
            return Err("store_in_ctx is not supported (no Lua context to store into)".to_owned());
        }
        let challenge = HeaderValue::from_str(&format!("Bearer realm=\"{}\"", conf.realm))
            .map_err(|_| format!("invalid realm `{}`", conf.realm))?;
        Ok(Arc::new(Instance {
            header,
            query: conf.query,
            cookie: conf.cookie,
            hide_credentials: conf.hide_credentials,
            key_claim_name: conf.key_claim_name,
            verify_exp: conf.claims_to_verify.iter().any(|c| c == "exp"),
            verify_nbf: conf.claims_to_verify.iter().any(|c| c == "nbf"),
            anonymous_consumer: conf.anonymous_consumer,
            challenge,
        }))
    }

    fn is_auth(&self) -> bool {
        true
    }

    fn consumer_identity(&self, conf: &Value) -> Option<Result<String, String>> {
        Some(parse_conf::<ConsumerConf>(conf).and_then(|c| {
            if c.key.is_empty() {
                return Err("key must not be empty".to_owned());
            }
            c.decoding_key()?;
            Ok(c.key)
        }))
    }

    fn consumer_schema(&self) -> Option<Value> {
        Some(crate::model::schema_of::<ConsumerConf>())
    }
}

impl Instance {
    /// The token and whether it came from the header.
    fn token(&self, req: &RequestCtx<'_>) -> Option<(String, bool)> {
        if let Some(v) = req.headers.get(&self.header).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            let token = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v);
            return Some((token.trim().to_owned(), true));
        }
        req.vars
            .get(&format!("arg_{}", self.query))
            .or_else(|| req.vars.get(&format!("cookie_{}", self.cookie)))
            .map(|t| (t.into_owned(), false))
    }

    /// Checks `token`: who it authenticates, or the refusal message.
    fn verify(
        &self,
        req: &RequestCtx<'_>,
        token: &str,
    ) -> Result<Arc<super::consumers::Authenticated>, &'static str> {
        let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| "failed to verify jwt")?;
        let key = claims
            .get(&self.key_claim_name)
            .and_then(Value::as_str)
            .ok_or("missing user key in JWT token")?;
        let found = req
            .consumers
            .authenticate("jwt-auth", key)
            .ok_or("Invalid user key in JWT token")?;
        let conf: ConsumerConf =
            serde_json::from_value(found.conf.clone()).map_err(|_| "failed to verify jwt")?;
        let (algorithm, decoding) = conf.decoding_key().map_err(|_| "failed to verify jwt")?;
        let mut validation = Validation::new(algorithm);
        validation.leeway = conf.lifetime_grace_period;
        validation.validate_exp = self.verify_exp;
        validation.validate_nbf = self.verify_nbf;
        validation.required_spec_claims = HashSet::new();
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(token, &decoding, &validation)
            .map_err(|_| "failed to verify jwt")?;
        Ok(found)
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
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
                if self.hide_credentials && token.as_ref().is_some_and(|(_, header)| *header) {
                    req.headers.remove(&self.header);
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        for bad in [
            json!({"key": "k"}),
            json!({"key": "", "secret": "s"}),
            json!({"key": "k", "algorithm": "RS256"}),
            json!({"key": "k", "algorithm": "RS256", "public_key": "not pem"}),
            json!({"key": "k", "algorithm": "HS999", "secret": "s"}),
            json!({"key": "k", "secret": "s", "base64_secret": true, "x": 1}),
        ] {
            assert!(
                matches!(JwtAuth.consumer_identity(&bad), Some(Err(_))),
                "{bad}"
            );
        }
    }
}
