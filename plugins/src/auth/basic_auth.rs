//! `basic-auth` (priority 2520, rewrite): authenticates a request by HTTP Basic credentials.
//!
//! Route config: `hide_credentials` (default false) removes `Authorization` before the request
//! goes upstream, `anonymous_consumer` (a consumer username) is used when the credentials are
//! missing or wrong, `realm` (default `basic`) goes into `WWW-Authenticate`. Consumer (or
//! credential) config: `username` (required, unique) and `password` (required). Answers 401
//! `{"message":"Missing authorization in request"}`, `{"message":"Invalid authorization in
//! request"}` (not `Basic <base64 of user:password>`) or `{"message":"Invalid user
//! authorization"}`.

use std::sync::Arc;

use base64::Engine;
use http::header::{HeaderValue, AUTHORIZATION};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use plugin_api::consumer::{admit, constant_time_eq, consumer_conf};
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, RequestCtx};

/// The kind.
pub struct BasicAuth;

#[derive(Deserialize, JsonSchema)]
#[schemars(title = "work with route or service object")]
pub struct Conf {
    #[serde(default)]
    hide_credentials: bool,
    #[schemars(length(min = 1))]
    anonymous_consumer: Option<String>,
    #[serde(default = "default_realm")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[ -!#-\[\]-~]+$"))]
    realm: String,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(title = "work with consumer object")]
struct ConsumerConf {
    username: String,
    password: String,
}

fn default_realm() -> String {
    "basic".to_owned()
}

/// A configured instance (the checked config).
pub struct Instance {
    hide_credentials: bool,
    anonymous_consumer: Option<String>,
    challenge: HeaderValue,
}

impl Kind for BasicAuth {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "basic-auth";
    const PRIORITY: i32 = 2520;
    const IS_AUTH: bool = true;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let challenge = HeaderValue::from_str(&format!("Basic realm=\"{}\"", conf.realm))
            .map_err(|_| format!("invalid realm `{}`", conf.realm))?;
        Ok(Instance {
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
            if c.username.is_empty() || c.password.is_empty() {
                Err("username and password must not be empty".to_owned())
            } else {
                Ok(c.username)
            }
        }))
    }

    fn identity_schema(&self) -> Option<Value> {
        Some(plugin_api::schema::schema_of::<ConsumerConf>())
    }
}

/// The user and password of an `Authorization: Basic ...` value.
fn credentials(value: &HeaderValue) -> Option<(String, String)> {
    let text = value.to_str().ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        let given = req.headers.get(AUTHORIZATION).map(credentials);
        let found = match &given {
            Some(Some((user, password))) => {
                req.consumers
                    .authenticate("basic-auth", user)
                    .filter(|found| {
                        let expected = found
                            .conf
                            .get("password")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        constant_time_eq(expected.as_bytes(), password.as_bytes())
                    })
            }
            _ => None,
        };
        let why = match given {
            None => "Missing authorization in request",
            Some(None) => "Invalid authorization in request",
            Some(Some(_)) => "Invalid user authorization",
        };
        let found = found.ok_or(why);
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
    use plugin_api::PluginKind;
    use serde_json::json;

    #[test]
    fn authorization_values() {
        let v = |s: &str| HeaderValue::from_str(s).expect("value");
        // "jack:pa:ss" — a colon in the password stays in the password.
        assert_eq!(
            credentials(&v("Basic amFjazpwYTpzcw==")),
            Some(("jack".into(), "pa:ss".into()))
        );
        assert_eq!(
            credentials(&v("basic amFjazpwYTpzcw==")),
            Some(("jack".into(), "pa:ss".into()))
        );
        assert_eq!(credentials(&v("Bearer abc")), None);
        assert_eq!(credentials(&v("Basic !!!")), None);
        assert_eq!(credentials(&v("Basic amFjaw==")), None, "no colon");
    }

    #[test]
    fn configs_are_checked() {
        assert!(BasicAuth.build(&json!({})).is_ok());
        assert!(BasicAuth
            .build(&json!({"hide_credentials": true, "realm": "x"}))
            .is_ok());
        assert!(
            BasicAuth.build(&json!({"username": "x"})).is_ok(),
            "unknown fields are ignored"
        );
        assert_eq!(
            BasicAuth.consumer_identity(&json!({"username": "u", "password": "p"})),
            Some(Ok("u".to_owned()))
        );
        assert!(matches!(
            BasicAuth.consumer_identity(&json!({"username": "u"})),
            Some(Err(_))
        ));
        assert!(matches!(
            BasicAuth.consumer_identity(&json!({"username": "", "password": "p"})),
            Some(Err(_))
        ));
    }
}
