//! `consumer-restriction` (priority 2400, access): allows or refuses requests by who they
//! authenticated as (or by service or route).
//!
//! Config: `type` `consumer_name` (default) | `consumer_group_id` | `service_id` | `route_id`
//! says which value of the request is checked; `blacklist` and `whitelist` (each at least one
//! entry) and `allowed_by_methods` (`[{user, methods}]`: the methods a value may call), at least
//! one of them; `rejected_code` (default 403, at least 200); `rejected_msg` (default `The <type>
//! is forbidden.`). As APISIX: a blacklisted value is refused, then a whitelisted one passes;
//! with a whitelist, any other value is refused; else a value named as a `user` of
//! `allowed_by_methods` may only use its methods. A request without the value (no consumer, no
//! service) answers 401 `{"message":"The request is rejected, please check the <type> for this
//! request"}`.

use std::sync::Arc;

use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;

use plugin_api::{BuildContext, Flow, Phases, Plugin, Reply, RequestCtx};

/// The kind.
pub struct ConsumerRestriction;

#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum Kind {
    #[default]
    ConsumerName,
    ServiceId,
    RouteId,
    ConsumerGroupId,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ConsumerName => "consumer_name",
            Kind::ConsumerGroupId => "consumer_group_id",
            Kind::ServiceId => "service_id",
            Kind::RouteId => "route_id",
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[schemars(extend("anyOf" = [
    {"required": ["blacklist"]},
    {"required": ["whitelist"]},
    {"required": ["allowed_by_methods"]}
]))]
pub struct Conf {
    #[serde(default, rename = "type")]
    kind: Kind,
    #[schemars(length(min = 1))]
    blacklist: Option<Vec<String>>,
    #[schemars(length(min = 1))]
    whitelist: Option<Vec<String>>,
    allowed_by_methods: Option<Vec<UserMethods>>,
    #[serde(default = "default_code")]
    #[schemars(range(min = 200))]
    rejected_code: u16,
    rejected_msg: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct UserMethods {
    user: Option<String>,
    #[schemars(length(min = 1))]
    methods: Vec<HttpMethod>,
}

/// The methods APISIX's schemas name.
#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Debug)]
#[allow(clippy::upper_case_acronyms)]
enum HttpMethod {
    GET,
    POST,
    PUT,
    DELETE,
    PATCH,
    HEAD,
    OPTIONS,
    CONNECT,
    TRACE,
    PURGE,
}

impl HttpMethod {
    fn is(self, method: &str) -> bool {
        let name = match self {
            HttpMethod::GET => "GET",
            HttpMethod::POST => "POST",
            HttpMethod::PUT => "PUT",
            HttpMethod::DELETE => "DELETE",
            HttpMethod::PATCH => "PATCH",
            HttpMethod::HEAD => "HEAD",
            HttpMethod::OPTIONS => "OPTIONS",
            HttpMethod::CONNECT => "CONNECT",
            HttpMethod::TRACE => "TRACE",
            HttpMethod::PURGE => "PURGE",
        };
        name == method
    }
}

fn default_code() -> u16 {
    403
}

/// A configured instance (the checked config).
pub struct Instance {
    kind: Kind,
    whitelist: Option<Vec<String>>,
    blacklist: Option<Vec<String>>,
    allowed_by_methods: Vec<UserMethods>,
    refusal: Reply,
}

impl plugin_api::Kind for ConsumerRestriction {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "consumer-restriction";
    const PRIORITY: i32 = 2400;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let lists = [&conf.whitelist, &conf.blacklist];
        if lists.iter().any(|l| l.as_ref().is_some_and(Vec::is_empty)) {
            return Err("whitelist and blacklist need at least one entry".to_owned());
        }
        if conf.whitelist.is_none() && conf.blacklist.is_none() && conf.allowed_by_methods.is_none()
        {
            return Err("one of whitelist, blacklist or allowed_by_methods is required".to_owned());
        }
        let status = StatusCode::from_u16(conf.rejected_code)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .ok_or_else(|| format!("invalid rejected_code {}", conf.rejected_code))?;
        let message = conf
            .rejected_msg
            .unwrap_or_else(|| format!("The {} is forbidden.", conf.kind.name()));
        Ok(Instance {
            kind: conf.kind,
            whitelist: conf.whitelist,
            blacklist: conf.blacklist,
            allowed_by_methods: conf.allowed_by_methods.unwrap_or_default(),
            refusal: Reply::message(status, &message),
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

impl Instance {
    /// Whether `value` may call `method`.
    fn admits(&self, value: &str, method: &str) -> bool {
        let listed =
            |list: &Option<Vec<String>>| list.as_ref().map(|l| l.iter().any(|v| v == value));
        if listed(&self.blacklist) == Some(true) {
            return false;
        }
        let whitelisted = listed(&self.whitelist);
        if whitelisted == Some(true) {
            return true;
        }
        let by_method = self
            .allowed_by_methods
            .iter()
            .find(|m| m.user.as_deref() == Some(value))
            .is_none_or(|rule| rule.methods.iter().any(|m| m.is(method)));
        whitelisted.is_none() && by_method
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        let consumer = req.consumer.as_ref().map(|c| &c.consumer);
        let value = match self.kind {
            Kind::ConsumerName => consumer.map(|c| c.username.clone()),
            Kind::ConsumerGroupId => consumer.and_then(|c| c.group_id.clone()),
            Kind::ServiceId => req.vars.get("service_id").map(|v| v.into_owned()),
            Kind::RouteId => req.vars.get("route_id").map(|v| v.into_owned()),
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Flow::Respond(Reply::message(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "The request is rejected, please check the {} for this request",
                    self.kind.name()
                ),
            ));
        };
        let method = req
            .vars
            .get("request_method")
            .map(|m| m.into_owned())
            .unwrap_or_default();
        if self.admits(&value, &method) {
            Flow::Continue
        } else {
            Flow::Respond(self.refusal.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::parse_conf;
    use plugin_api::PluginKind;
    use serde_json::json;
    use serde_json::Value;

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
        assert!(w.admits("jack", "GET"));
        assert!(!w.admits("rose", "GET"));
        let b = instance(json!({"blacklist": ["jack"]}));
        assert!(!b.admits("jack", "GET"));
        assert!(b.admits("rose", "GET"));
        let m = instance(json!({"allowed_by_methods": [{"user": "jack", "methods": ["GET"]}]}));
        assert!(m.admits("jack", "GET"));
        assert!(!m.admits("jack", "POST"));
        assert!(m.admits("rose", "POST"));
        // A whitelisted value skips allowed_by_methods; the blacklist comes first.
        let wm = instance(
            json!({"whitelist": ["jack"], "allowed_by_methods": [{"user": "jack", "methods": ["POST"]}]}),
        );
        assert!(wm.admits("jack", "GET"));
        assert!(!wm.admits("rose", "GET"));
        let both = instance(json!({"whitelist": ["jack"], "blacklist": ["jack"]}));
        assert!(!both.admits("jack", "GET"));
    }

    #[test]
    fn configs_are_checked() {
        assert!(ConsumerRestriction
            .build(&json!({"whitelist": ["a"]}))
            .is_ok());
        assert!(ConsumerRestriction
            .build(&json!({"whitelist": ["a"], "blacklist": ["b"]}))
            .is_ok());
        assert!(ConsumerRestriction.build(&json!({"type": "route_id", "blacklist": ["1"], "rejected_code": 401, "rejected_msg": "x"})).is_ok());
        for bad in [
            json!({}),
            json!({"whitelist": []}),
            json!({"type": "nobody", "whitelist": ["a"]}),
            json!({"whitelist": ["a"], "rejected_code": 99}),
            json!({"allowed_by_methods": [{"user": "a", "methods": ["FETCH"]}]}),
        ] {
            assert!(ConsumerRestriction.build(&bad).is_err(), "{bad}");
        }
    }
}
