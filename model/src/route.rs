//! Route: which requests match (uri, host, method, remote address, vars) and where they go.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{one_or_many, Checker, Id, Labels, Timeout, Upstream};
use crate::expr::Expr;

const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PURGE",
];

/// A route as stored (APISIX's route schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Route id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// Path pattern (exclusive with `uris`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Path patterns (exclusive with `uri`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uris: Option<Vec<String>>,
    /// Allowed methods; absent means any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Host pattern (exclusive with `hosts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Host patterns (exclusive with `host`); absent means the service's hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Client address or CIDR (exclusive with `remote_addrs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
    /// Client addresses or CIDRs (exclusive with `remote_addr`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_addrs: Option<Vec<String>>,
    /// Extra conditions in the lua-resty-expr language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vars: Option<Value>,
    /// Lua filter function (not supported by Ferrogate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_func: Option<String>,
    /// Higher wins among routes of the same path (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Proxy WebSocket upgrades; absent means the service's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_websocket: Option<bool>,
    /// Upstream timeouts, overriding the upstream's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
    /// 1 = enabled (default), 0 = left out of the router.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u8>,
    /// Plugin name to plugin config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Map<String, Value>>,
    /// Inline upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
    /// Referenced upstream (wins over the inline one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_id: Option<Id>,
    /// Referenced service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<Id>,
    /// Referenced plugin config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_config_id: Option<Id>,
    /// Lua script (not supported by Ferrogate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Lua script reference (not supported by Ferrogate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_id: Option<Id>,
    /// Creation time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// Update time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
}

impl Route {
    /// Path patterns (`uri` or `uris`).
    pub fn uri_list(&self) -> Vec<String> {
        match (&self.uri, &self.uris) {
            (Some(u), _) => vec![u.clone()],
            (None, Some(us)) => us.clone(),
            (None, None) => Vec::new(),
        }
    }

    /// Own host patterns (`host` or `hosts`), lowercased.
    pub fn host_list(&self) -> Option<Vec<String>> {
        match (&self.host, &self.hosts) {
            (Some(h), _) => Some(vec![h.to_ascii_lowercase()]),
            (None, Some(hs)) => Some(hs.iter().map(|h| h.to_ascii_lowercase()).collect()),
            (None, None) => None,
        }
    }

    /// Client address patterns (`remote_addr` or `remote_addrs`), parsed.
    pub fn remote_addr_list(&self) -> Vec<ipnet::IpNet> {
        let single = self.remote_addr.iter();
        let many = self.remote_addrs.iter().flatten();
        single.chain(many).filter_map(|a| parse_net(a)).collect()
    }

    /// The compiled `vars` expression, if any.
    ///
    /// # Errors
    /// The expression's compile error.
    pub fn compiled_vars(&self) -> Result<Option<Expr>, String> {
        match &self.vars {
            None => Ok(None),
            Some(v) => Expr::compile(v).map(Some).map_err(|e| e.to_string()),
        }
    }

    /// Checks the rules the type cannot express.
    pub fn validate(&self, check: &mut Checker<'_>) {
        match (&self.uri, &self.uris) {
            (Some(_), Some(_)) => check.error("", "only one of uri or uris is allowed"),
            (None, None) => check.error("uri", "one of uri or uris is required"),
            _ => {}
        }
        for (i, u) in self.uri_list().iter().enumerate() {
            if u.is_empty() || u.len() > 4096 {
                check.error(&format!("uris[{i}]"), "must be 1-4096 characters");
            }
        }
        let hosts = one_or_many(
            check,
            "host",
            self.host.as_ref(),
            "hosts",
            self.hosts.as_ref(),
        );
        check.hosts(if self.host.is_some() { "host" } else { "hosts" }, &hosts);
        let addrs = one_or_many(
            check,
            "remote_addr",
            self.remote_addr.as_ref(),
            "remote_addrs",
            self.remote_addrs.as_ref(),
        );
        for (i, a) in addrs.iter().enumerate() {
            if parse_net(a).is_none() {
                check.error(
                    &format!("remote_addrs[{i}]"),
                    format!("invalid IP address or CIDR `{a}`"),
                );
            }
        }
        for (i, m) in self.methods.iter().flatten().enumerate() {
            if !METHODS.contains(&m.as_str()) {
                check.error(
                    &format!("methods[{i}]"),
                    format!(
                        "invalid method `{m}`; expected one of {}",
                        METHODS.join(", ")
                    ),
                );
            }
        }
        if let Err(e) = self.compiled_vars() {
            check.error(
                "vars",
                format!("failed to validate the 'vars' expression: {e}"),
            );
        }
        if self.status.is_some_and(|s| s > 1) {
            check.error("status", "must be 0 or 1");
        }
        check.timeout(self.timeout.as_ref());
        if self.filter_func.is_some() {
            check.error(
                "filter_func",
                "Lua filter functions are not supported; use `vars`",
            );
        }
        if self.script.is_some() || self.script_id.is_some() {
            check.error("script", "Lua scripts are not supported");
        }
        check.plugins(self.plugins.as_ref());
        if let Some(u) = &self.upstream {
            u.validate(&mut check.nested("upstream"));
        }
        if self.plugins.is_none()
            && self.upstream.is_none()
            && self.upstream_id.is_none()
            && self.service_id.is_none()
            && self.plugin_config_id.is_none()
        {
            check.error(
                "",
                "one of plugins, upstream, upstream_id, service_id or plugin_config_id is required",
            );
        }
        check.metadata(
            self.name.as_deref(),
            self.desc.as_deref(),
            self.labels.as_ref(),
        );
    }
}

/// Parses an IP address or CIDR (`10.0.0.1`, `10.0.0.0/8`, `::1`, `fe80::/10`).
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigError;

    fn problems(json: &str) -> Vec<String> {
        let route: Route = serde_json::from_str(json).expect("parses");
        let mut errors: Vec<ConfigError> = Vec::new();
        route.validate(&mut Checker::new(
            "routes[0]",
            &mut errors,
            &crate::NoPlugins,
        ));
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_route_has_no_problems() {
        let p = problems(
            r#"{"uri":"/a","hosts":["a.com","*.b.com"],"methods":["GET"],"remote_addrs":["10.0.0.0/8","::1"],
               "vars":[["arg_x","==","1"]],"upstream":{"nodes":{"127.0.0.1:80":1}}}"#,
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let p = problems(
            r#"{"uri":"/a","uris":["/b"],"host":"a.com","hosts":["b.com"],"methods":["FETCH"],
               "remote_addr":"300.1.1.1","vars":[["arg_x","=~","1"]],"status":3,
               "timeout":{"connect":0,"send":1,"read":1},"upstream":{"nodes":{"[::1:80":1}}}"#,
        );
        assert_eq!(
            p,
            vec![
                "routes[0]: only one of uri or uris is allowed",
                "routes[0]: only one of host or hosts is allowed",
                "routes[0].remote_addrs[0]: invalid IP address or CIDR `300.1.1.1`",
                "routes[0].methods[0]: invalid method `FETCH`; expected one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS, CONNECT, TRACE, PURGE",
                &p[4],
                "routes[0].status: must be 0 or 1",
                "routes[0].timeout.connect: must be a number greater than 0",
                &p[7],
            ]
        );
        assert!(p[4].starts_with("routes[0].vars: failed to validate the 'vars' expression"));
        assert!(p[7].starts_with("routes[0].upstream.nodes"), "{}", p[7]);
    }

    #[test]
    fn needs_a_target_and_a_uri() {
        assert_eq!(
            problems(r#"{"name":"x"}"#),
            vec![
                "routes[0].uri: one of uri or uris is required",
                "routes[0]: one of plugins, upstream, upstream_id, service_id or plugin_config_id is required",
            ]
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<Route>(r#"{"uri":"/a","upstreams":{}}"#).is_err());
    }
}
