//! `key-auth` (priority 2500, rewrite): authenticates a request by an API key.
//!
//! Route config: `header` (default `apikey`) and `query` (default `apikey`) say where the key is
//! read (the header first), `hide_credentials` (default false) removes it before the request goes
//! upstream, `anonymous_consumer` (a consumer username) is used when the key is missing or wrong,
//! `realm` (default `key`) goes into `WWW-Authenticate`. Consumer (or credential) config: `key`
//! (required, unique across consumers). Answers 401 `{"message":"Missing API key in request"}`
//! or `{"message":"Invalid API key in request"}`.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::support::query::hide_query_arg;
use plugin_api::consumer::{admit, consumer_conf};
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, RequestCtx};

/// The kind.
pub struct KeyAuth;

#[derive(Deserialize, JsonSchema)]
pub struct Conf {
    #[serde(default = "default_name")]
    header: String,
    #[serde(default = "default_name")]
    query: String,
    #[serde(default)]
    hide_credentials: bool,
    #[schemars(length(min = 1))]
    anonymous_consumer: Option<String>,
    #[serde(default = "default_realm")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[ -!#-\[\]-~]+$"))]
    realm: String,
}

#[derive(Deserialize, JsonSchema)]
struct ConsumerConf {
    key: String,
}

fn default_name() -> String {
    "apikey".to_owned()
}
fn default_realm() -> String {
    "key".to_owned()
}

/// A configured instance (the checked config).
pub struct Instance {
    header: HeaderName,
    query: String,
    /// The variable of the query argument (`arg_<query>`), named once.
    query_var: String,
    hide_credentials: bool,
    anonymous_consumer: Option<String>,
    challenge: HeaderValue,
}

impl Kind for KeyAuth {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "key-auth";
    const PRIORITY: i32 = 2500;
    const IS_AUTH: bool = true;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let header = HeaderName::from_bytes(conf.header.as_bytes())
            .map_err(|_| format!("invalid header `{}`", conf.header))?;
        if conf.query.is_empty() {
            return Err("query must not be empty".to_owned());
        }
        let challenge = HeaderValue::from_str(&format!("apikey realm=\"{}\"", conf.realm))
            .map_err(|_| format!("invalid realm `{}`", conf.realm))?;
        Ok(Instance {
            header,
            query_var: format!("arg_{}", conf.query),
            query: conf.query,
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
            if c.key.is_empty() {
                Err("key must not be empty".to_owned())
            } else {
                Ok(c.key)
            }
        }))
    }

    fn identity_schema(&self) -> Option<Value> {
        Some(plugin_api::schema::schema_of::<ConsumerConf>())
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        let from_header = req
            .headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let key = from_header
            .clone()
            .or_else(|| req.vars.get(&self.query_var).map(|k| k.into_owned()));
        let found = key
            .as_deref()
            .and_then(|k| req.consumers.authenticate("key-auth", k));
        let why = if key.is_none() {
            "Missing API key in request"
        } else {
            "Invalid API key in request"
        };
        let found = found.ok_or(why);
        let authenticated = found.is_ok();
        admit(
            req,
            found,
            self.anonymous_consumer.as_deref(),
            &self.challenge,
            |req| {
                if !self.hide_credentials || key.is_none() {
                    return;
                }
                // The key that authenticated is removed; on the anonymous fallback, the key
                // wherever it was sent.
                let in_query = req.vars.get(&self.query_var).is_some();
                if from_header.is_some() {
                    req.headers.remove(&self.header);
                }
                if (from_header.is_none() || !authenticated) && in_query {
                    hide_query_arg(req, &self.query);
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
        assert!(KeyAuth.build(&json!({})).is_ok());
        assert!(KeyAuth.build(&json!({"header": "x-key", "query": "k", "hide_credentials": true, "anonymous_consumer": "anon", "realm": "r"})).is_ok());
        assert!(KeyAuth.build(&json!({"header": "bad header"})).is_err());
        assert!(KeyAuth.build(&json!({"query": ""})).is_err());
        // Unknown fields are ignored, as APISIX does.
        assert!(KeyAuth.build(&json!({"key": "on-a-route"})).is_ok());
        assert_eq!(
            KeyAuth.consumer_identity(&json!({"key": "k1"})),
            Some(Ok("k1".to_owned()))
        );
        assert!(matches!(
            KeyAuth.consumer_identity(&json!({})),
            Some(Err(_))
        ));
        assert!(matches!(
            KeyAuth.consumer_identity(&json!({"key": ""})),
            Some(Err(_))
        ));
        assert_eq!(
            KeyAuth.consumer_identity(&json!({"key": "k", "x": 1})),
            Some(Ok("k".to_owned()))
        );
    }
}
