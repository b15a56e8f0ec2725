//! `consumer-restriction` (priority 2400, access): allows or refuses requests by who they
//! authenticated as (or by service or route).
//!
//! Config: `type` `consumer_name` (default) | `consumer_group_id` | `service_id` | `route_id`;
//! `whitelist` or `blacklist` (at least one entry; one of them, or `allowed_by_methods`
//! `[{user, methods}]` which limits what a consumer may call); `rejected_code` (default 403);
//! `rejected_msg` (default `The <type> is forbidden.`). Without an authenticated consumer, the
//! consumer types answer 401 `{"message":"Missing authentication or identity verification."}`.

use std::sync::Arc;

use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{parse_conf, Flow, Plugin, PluginKind, Reply, RequestCtx};

/// The kind.
pub struct ConsumerRestriction;

#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum Kind {
    #[default]
    ConsumerName,
    ConsumerGroupId,
    ServiceId,
    RouteId,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Conf {
    #[serde(default, rename = "type")]
    kind: Kind,
    whitelist: Option<Vec<String>>,
    blacklist: Option<Vec<String>>,
    allowed_by_methods: Option<Vec<UserMethods>>,
    #[serde(default = "default_code")]
    rejected_code: u16,
    rejected_msg: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UserMethods {
    user: String,
    methods: Vec<String>,
}

fn default_code() -> u16 {
    403
}

struct Instance {
    kind: Kind,
    whitelist: Option<Vec<String>>,
    blacklist: Option<Vec<String>>,
    allowed_by_methods: Vec<UserMethods>,
    refusal: Reply,
}

impl PluginKind for ConsumerRestriction {
    fn name(&self) -> &'static str {
        "consumer-restriction"
    }

    fn priority(&self) -> i32 {
        2400
    }

    fn schema(&self) -> Value {
        crate::model::schema_of::<Conf>()
    }

    fn build(&self, conf: &Value) -> Result<Arc<dyn Plugin>, String> {
        let conf: Conf = parse_conf(conf)?;
        let lists = [&conf.whitelist, &conf.blacklist];
        if lists.iter().any(|l| l.as_ref().is_some_and(Vec::is_empty)) {
            return Err("whitelist and blacklist need at least one entry".to_owned());
        }
        if conf.whitelist.is_none() && conf.blacklist.is_none() && conf.allowed_by_methods.is_none()
        {
            return Err("one of whitelist, blacklist or allowed_by_methods is required".to_owned());
        }
        if conf.whitelist.is_some() && conf.blacklist.is_some() {
            return Err("only one of whitelist or blacklist is allowed".to_owned());
        }
        const METHODS: [&str; 10] = [
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PURGE",
        ];
        for m in conf
            .allowed_by_methods
            .iter()
            .flatten()
            .flat_map(|u| &u.methods)
        {
            if !METHODS.contains(&m.as_str()) {
                return Err(format!("allowed_by_methods: unknown method `{m}`"));
            }
        }
        let status = StatusCode::from_u16(conf.rejected_code)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .ok_or_else(|| format!("invalid rejected_code {}", conf.rejected_code))?;
        let name = match conf.kind {
            Kind::ConsumerName => "consumer_name",
            Kind::ConsumerGroupId => "consumer_group_id",
            Kind::ServiceId => "service_id",
            Kind::RouteId => "route_id",
        };
        let message = conf
            .rejected_msg
            .unwrap_or_else(|| format!("The {name} is forbidden."));
        Ok(Arc::new(Instance {
            kind: conf.kind,
            whitelist: conf.whitelist,
            blacklist: conf.blacklist,
            allowed_by_methods: conf.allowed_by_methods.unwrap_or_default(),
            refusal: Reply::message(status, &message),
        }))
    }
}

impl Instance {
    /// Whether `value` (and, for consumers, `method`) may pass.
    fn admits(&self, value: &str, user: Option<&str>, method: &str) -> bool {
        if self
            .blacklist
            .as_ref()
            .is_some_and(|b| b.iter().any(|v| v == value))
        {
            return false;
        }
        if self
            .whitelist
            .as_ref()
            .is_some_and(|w| !w.iter().any(|v| v == value))
        {
            return false;
        }
        match user.and_then(|u| self.allowed_by_methods.iter().find(|m| m.user == u)) {
            Some(rule) => rule.methods.iter().any(|m| m == method),
            None => true,
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let consumer = req.consumer.as_ref().map(|c| &c.consumer);
        let value = match self.kind {
            Kind::ConsumerName => consumer.map(|c| c.username.clone()),
            Kind::ConsumerGroupId => consumer.and_then(|c| c.group_id.clone()),
            Kind::ServiceId => req.vars.get("service_id").map(|v| v.into_owned()),
            Kind::RouteId => req.vars.get("route_id").map(|v| v.into_owned()),
        };
        let Some(value) = value else {
            if matches!(self.kind, Kind::ConsumerName | Kind::ConsumerGroupId) {
                return Flow::Respond(Reply::message(
                    StatusCode::UNAUTHORIZED,
                    "Missing authentication or identity verification.",
                ));
            }
            return Flow::Respond(self.refusal.clone());
        };
        let method = req
            .vars
            .get("request_method")
            .map(|m| m.into_owned())
            .unwrap_or_default();
        let user = consumer.map(|c| c.username.as_str());
        if self.admits(&value, user, &method) {
            Flow::Continue
        } else {
            Flow::Respond(self.refusal.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn instance(conf: Value) -> Instance {
        let conf: Conf = parse_conf(&conf).expect("valid");
        Instance {
            kind: conf.kind,
            whitelist: conf.whitelist,
            blacklist: conf.blacklist,
            allowed_by_methods: conf.allowed_by_methods.unwrap_or_default(),
            refusal: Reply::message(StatusCode::FORBIDDEN, "no"),
        }
    }

    #[test]
    fn lists_and_methods() {
        let w = instance(json!({"whitelist": ["jack"]}));
        assert!(w.admits("jack", Some("jack"), "GET"));
        assert!(!w.admits("rose", Some("rose"), "GET"));
        let b = instance(json!({"blacklist": ["jack"]}));
        assert!(!b.admits("jack", Some("jack"), "GET"));
        assert!(b.admits("rose", Some("rose"), "GET"));
        let m = instance(json!({"allowed_by_methods": [{"user": "jack", "methods": ["GET"]}]}));
        assert!(m.admits("jack", Some("jack"), "GET"));
        assert!(!m.admits("jack", Some("jack"), "POST"));
        assert!(m.admits("rose", Some("rose"), "POST"));
    }

    #[test]
    fn configs_are_checked() {
        assert!(ConsumerRestriction
            .build(&json!({"whitelist": ["a"]}))
            .is_ok());
        assert!(ConsumerRestriction.build(&json!({"type": "route_id", "blacklist": ["1"], "rejected_code": 401, "rejected_msg": "x"})).is_ok());
        for bad in [
            json!({}),
            json!({"whitelist": []}),
            json!({"whitelist": ["a"], "blacklist": ["b"]}),
            json!({"type": "nobody", "whitelist": ["a"]}),
            json!({"whitelist": ["a"], "rejected_code": 99}),
            json!({"allowed_by_methods": [{"user": "a", "methods": ["FETCH"]}]}),
        ] {
            assert!(ConsumerRestriction.build(&bad).is_err(), "{bad}");
        }
    }
}
