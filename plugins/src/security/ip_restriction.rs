//! `ip-restriction` (priority 3000, access): allow or deny clients by address.
//!
//! Config: exactly one of `whitelist` / `blacklist` (IPv4/IPv6 addresses or CIDRs, at least one),
//! `message` (default `Your IP address is not allowed`, 1-1024 characters), `response_code`
//! (403, the default, or 404). A refused client gets `{"message": message}`.

use std::net::IpAddr;
use std::sync::Arc;

use http::StatusCode;
use ipnet::IpNet;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::support::schema::ip_list;
use model::parse_net;
use plugin_api::{BuildContext, Flow, Kind, Phases, Plugin, Reply, RequestCtx};

/// The kind.
pub struct IpRestriction;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["whitelist"]}, {"required": ["blacklist"]}]))]
pub struct Conf {
    #[serde(default)]
    #[schemars(schema_with = "ip_list")]
    whitelist: Option<Vec<String>>,
    #[serde(default)]
    #[schemars(schema_with = "ip_list")]
    blacklist: Option<Vec<String>>,
    #[serde(default = "default_message")]
    #[schemars(length(min = 1, max = 1024))]
    message: String,
    #[serde(default = "default_code")]
    #[schemars(range(min = 403, max = 404))]
    response_code: u16,
}

fn default_message() -> String {
    "Your IP address is not allowed".to_owned()
}
fn default_code() -> u16 {
    403
}

/// A configured instance (the checked config).
pub struct Instance {
    nets: Vec<IpNet>,
    /// true: only `nets` may pass; false: `nets` may not.
    allow: bool,
    reply: Reply,
}

fn nets(list: &[String], field: &str) -> Result<Vec<IpNet>, String> {
    if list.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    list.iter()
        .map(|n| parse_net(n).ok_or_else(|| format!("invalid ip address: {n}")))
        .collect()
}

impl Kind for IpRestriction {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "ip-restriction";
    const PRIORITY: i32 = 3000;

    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let (nets, allow) = match (&conf.whitelist, &conf.blacklist) {
            (Some(w), None) => (nets(w, "whitelist")?, true),
            (None, Some(b)) => (nets(b, "blacklist")?, false),
            _ => return Err("exactly one of whitelist or blacklist is required".to_owned()),
        };
        if conf.message.is_empty() || conf.message.chars().count() > 1024 {
            return Err("message must be 1-1024 characters".to_owned());
        }
        let status = match conf.response_code {
            403 => StatusCode::FORBIDDEN,
            404 => StatusCode::NOT_FOUND,
            other => return Err(format!("response_code must be 403 or 404, got {other}")),
        };
        Ok(Instance {
            nets,
            allow,
            reply: Reply::message(status, &conf.message),
        })
    }

    fn instance(&self, checked: Instance, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(checked))
    }
}

impl Instance {
    fn admits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip)) == self.allow
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::ACCESS
    }

    async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        if self.admits(req.client) {
            Flow::Continue
        } else {
            Flow::Respond(self.reply.clone())
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

    fn admits(conf: Value, ip: &str) -> bool {
        let conf: Conf = parse_conf(&conf).expect("valid");
        let (list, allow) = match (&conf.whitelist, &conf.blacklist) {
            (Some(w), _) => (w, true),
            (_, Some(b)) => (b, false),
            _ => unreachable!("tests give one list"),
        };
        Instance {
            nets: nets(list, "list").expect("nets"),
            allow,
            reply: Reply::message(StatusCode::FORBIDDEN, "no"),
        }
        .admits(ip.parse().expect("ip"))
    }

    #[test]
    fn lists() {
        assert!(admits(json!({"whitelist": ["127.0.0.0/8"]}), "127.0.0.2"));
        assert!(admits(
            json!({"whitelist": ["127.0.0.0/8"]}),
            "::ffff:127.0.0.2"
        ));
        assert!(!admits(json!({"whitelist": ["127.0.0.0/8"]}), "10.0.0.1"));
        assert!(!admits(
            json!({"blacklist": ["10.0.0.1", "2001:db8::/32"]}),
            "2001:db8::5"
        ));
        assert!(admits(json!({"blacklist": ["10.0.0.1"]}), "10.0.0.2"));
    }

    #[test]
    fn configs_are_checked() {
        assert!(IpRestriction
            .build(&json!({"whitelist": ["1.2.3.4"]}))
            .is_ok());
        for bad in [
            json!({}),
            json!({"whitelist": ["1.2.3.4"], "blacklist": ["1.2.3.5"]}),
            json!({"whitelist": []}),
            json!({"whitelist": ["1.2.3.400"]}),
            json!({"whitelist": ["1.2.3.4"], "response_code": 500}),
            json!({"whitelist": ["1.2.3.4"], "message": ""}),
            json!({"whitelist": ["1.2.3.4"], "extra": 1}),
        ] {
            assert!(IpRestriction.build(&bad).is_err(), "{bad}");
        }
    }
}
