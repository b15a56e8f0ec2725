//! Upstream: the nodes a request is proxied to, how one is picked, and how to talk to it.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Checker, Checks, Id, Labels, Timeout};

/// An upstream as stored (APISIX's upstream schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Upstream id (absent for inline upstreams).
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
    /// Balancer: `roundrobin` (default), `chash`, `least_conn`, `ewma`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The nodes, as a `"host:port": weight` map or a list of node objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Nodes>,
    /// Service discovery name (not supported yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Service discovery type (not supported yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_type: Option<String>,
    /// Service discovery arguments (not supported yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_args: Option<Value>,
    /// chash key source: `vars` (default), `header`, `cookie`, `consumer`, `vars_combinations`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<String>,
    /// chash key name or template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Further tries after a failed one; absent means nodes - 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Seconds after the first try within which retries may start (0 = no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_timeout: Option<f64>,
    /// Connect / send / read timeouts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
    /// `http` (default) or `https`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host header to the upstream: `pass` (default), `node`, `rewrite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_host: Option<String>,
    /// Host header when `pass_host` is `rewrite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_host: Option<String>,
    /// TLS to the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    /// Keep-alive pool of this upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_pool: Option<KeepalivePool>,
    /// Health checks (active probes and passive counting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
    /// Beyond APISIX: what makes a failed try retried (`connect`, `timeout`, `reset`, or a
    /// status 400-599). Absent: APISIX's rule (errors and timeouts before the response head).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<RetryOn>>,
    /// Beyond APISIX: with `retry_on`, also retry non-idempotent requests (POST, PATCH, LOCK)
    /// that may have reached the node (default false; requests never sent are always retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_non_idempotent: Option<bool>,
    /// Creation time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// Update time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
}

/// One `retry_on` condition: a name or an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RetryOn {
    /// A status from the node (400-599), e.g. `502`.
    Status(i64),
    /// `connect`, `timeout`, `reset`, or a status written as a string (`"503"`).
    Name(String),
}

impl RetryOn {
    /// The status this condition names, if it names one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RetryOn::Status(s) => u16::try_from(*s).ok(),
            RetryOn::Name(n) => n.parse().ok(),
        }
    }
}

/// `nodes`: map form or list form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Nodes {
    /// `{"host:port": weight}`.
    Map(BTreeMap<String, u32>),
    /// `[{host, port, weight, priority}]`.
    List(Vec<NodeSpec>),
}

/// A node in list form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Host name or IP (IPv6 in brackets).
    pub host: String,
    /// Port; absent means the scheme's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Relative weight; 0 = never picked.
    pub weight: u32,
    /// Priority group; higher groups are used first (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// `tls`: client certificate for mTLS and verification switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Client certificate (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// Client key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// Client certificate from an SSL object (`type: client`), instead of `client_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_id: Option<Id>,
    /// Verify the upstream's certificate (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
}

/// `keepalive_pool`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepalivePool {
    /// Idle connections kept (default 320).
    #[serde(default = "default_pool_size")]
    pub size: usize,
    /// Seconds an idle connection is kept; 0 disables keep-alive (default 60).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: f64,
    /// Requests per connection (default 1000).
    #[serde(default = "default_pool_requests")]
    pub requests: u64,
}

fn default_pool_size() -> usize {
    320
}
fn default_idle_timeout() -> f64 {
    60.0
}
fn default_pool_requests() -> u64 {
    1000
}

/// A node address: host (IPv6 without brackets) and optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or IP; IPv6 keeps its brackets as written (`[::1]`).
    pub host: String,
    /// Port, if written.
    pub port: Option<u16>,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(s: &str) -> Result<HostPort, String> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(format!("invalid node address `{s}`: missing `]`"));
            };
            let host = &s[..end + 2];
            match &rest[end + 1..] {
                "" => (host, None),
                p => match p.strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None => return Err(format!("invalid node address `{s}`")),
                },
            }
        } else {
            match s.matches(':').count() {
                0 => (s, None),
                1 => {
                    let (h, p) = s.split_once(':').unwrap_or((s, ""));
                    (h, Some(p))
                }
                _ => {
                    return Err(format!(
                        "invalid node address `{s}`: IPv6 address must be enclosed with '[' and ']'"
                    ))
                }
            }
        };
        if host.is_empty() {
            return Err(format!("invalid node address `{s}`: empty host"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("invalid port in `{s}`: expected 1-65535")),
            },
        };
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

static CHASH_VAR_KEY: LazyLock<Regex> = LazyLock::new(|| {
    // A literal pattern that is known to compile.
    #[allow(clippy::unwrap_used)]
    Regex::new(r"^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname|mqtt_client_id)|arg_[0-9a-zA-z_-]+)$").unwrap()
});

impl Upstream {
    /// The balancer name (`roundrobin` by default).
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("roundrobin")
    }

    /// The scheme (`http` by default).
    pub fn scheme(&self) -> &str {
        self.scheme.as_deref().unwrap_or("http")
    }

    /// Whether connections to the nodes use TLS (`https`, `grpcs`).
    pub fn is_tls(&self) -> bool {
        matches!(self.scheme(), "https" | "grpcs")
    }

    /// Whether requests go to the nodes over HTTP/2 (`grpc` prior knowledge, `grpcs` by ALPN).
    pub fn is_grpc(&self) -> bool {
        matches!(self.scheme(), "grpc" | "grpcs")
    }

    /// Nodes in list form with defaults applied (port from the scheme, priority 0).
    /// Entries that do not parse are skipped (validation reports them).
    pub fn node_list(&self) -> Vec<NodeSpec> {
        let default_port = if self.is_tls() { 443 } else { 80 };
        match &self.nodes {
            None => Vec::new(),
            Some(Nodes::Map(map)) => map
                .iter()
                .filter_map(|(addr, weight)| {
                    let hp = HostPort::parse(addr).ok()?;
                    Some(NodeSpec {
                        host: hp.host,
                        port: Some(hp.port.unwrap_or(default_port)),
                        weight: *weight,
                        priority: Some(0),
                        metadata: None,
                    })
                })
                .collect(),
            Some(Nodes::List(list)) => list
                .iter()
                .map(|n| {
                    // Without `port`, a host written as `host:port` gives the port (as APISIX
                    // reads such a node); otherwise the scheme's default applies.
                    let (host, port) = match (n.port, HostPort::parse(&n.host)) {
                        (
                            None,
                            Ok(HostPort {
                                host,
                                port: Some(p),
                            }),
                        ) => (host, p),
                        (port, _) => (n.host.clone(), port.unwrap_or(default_port)),
                    };
                    NodeSpec {
                        host,
                        port: Some(port),
                        priority: Some(n.priority.unwrap_or(0)),
                        ..n.clone()
                    }
                })
                .collect(),
        }
    }

    /// Checks the rules the type cannot express.
    pub fn validate(&self, check: &mut Checker<'_>) {
        let kind = self.kind();
        if !matches!(kind, "roundrobin" | "chash" | "least_conn" | "ewma") {
            check.error(
                "type",
                format!(
                    "unknown balancer `{kind}`; expected roundrobin, chash, least_conn or ewma"
                ),
            );
        }
        if self.service_name.is_some()
            || self.discovery_type.is_some()
            || self.discovery_args.is_some()
        {
            check.error("discovery_type", "service discovery is not supported yet");
        } else if self.nodes.is_none() {
            check.error("nodes", "nodes is required");
        }
        match &self.nodes {
            Some(Nodes::Map(map)) => {
                for addr in map.keys() {
                    if let Err(e) = HostPort::parse(addr) {
                        check.error("nodes", e);
                    }
                }
            }
            Some(Nodes::List(list)) => {
                for (i, n) in list.iter().enumerate() {
                    match HostPort::parse(&n.host) {
                        Ok(hp) if hp.port.is_none() || n.port.is_none() => {}
                        Ok(_) => check.error(
                            &format!("nodes[{i}].host"),
                            "host must not contain a port when `port` is set",
                        ),
                        Err(e) => check.error(&format!("nodes[{i}].host"), e),
                    }
                    if n.port == Some(0) {
                        check.error(&format!("nodes[{i}].port"), "must be 1-65535");
                    }
                }
            }
            None => {}
        }
        let hash_on = self.hash_on.as_deref().unwrap_or("vars");
        if !matches!(
            hash_on,
            "vars" | "header" | "cookie" | "consumer" | "vars_combinations"
        ) {
            check.error(
                "hash_on",
                format!("unknown hash_on `{hash_on}`; expected vars, header, cookie, consumer or vars_combinations"),
            );
        }
        if kind == "chash" && hash_on != "consumer" {
            match self.key.as_deref() {
                None | Some("") => check.error("key", "missing key for chash balancer"),
                Some(key) => {
                    let ok = match hash_on {
                        "vars" => CHASH_VAR_KEY.is_match(key),
                        "header" | "cookie" => key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                        _ => true,
                    };
                    if !ok {
                        check.error("key", format!("invalid key `{key}` for hash_on {hash_on}"));
                    }
                }
            }
        }
        if self
            .retry_timeout
            .is_some_and(|t| !(t >= 0.0 && t.is_finite()))
        {
            check.error("retry_timeout", "must be a number of at least 0");
        }
        check.timeout(self.timeout.as_ref());
        let scheme = self.scheme();
        if !matches!(scheme, "http" | "https" | "grpc" | "grpcs") {
            check.error(
                "scheme",
                format!("scheme `{scheme}` is not supported; expected http, https, grpc or grpcs"),
            );
        }
        match self.pass_host.as_deref().unwrap_or("pass") {
            "pass" | "node" => {}
            "rewrite" => {
                if self.upstream_host.as_deref().unwrap_or("").is_empty() {
                    check.error(
                        "upstream_host",
                        "pass_host `rewrite` requires upstream_host",
                    );
                }
            }
            other => check.error(
                "pass_host",
                format!("unknown pass_host `{other}`; expected pass, node or rewrite"),
            ),
        }
        if let Some(tls) = &self.tls {
            if tls.client_cert.is_some() != tls.client_key.is_some() {
                check.error("tls", "client_cert and client_key must be given together");
            }
            if tls.client_cert_id.is_some() && tls.client_cert.is_some() {
                check.error(
                    "tls",
                    "client_cert_id and client_cert/client_key are exclusive",
                );
            }
            for (name, pem) in [
                ("client_cert", &tls.client_cert),
                ("client_key", &tls.client_key),
            ] {
                if pem.as_deref().is_some_and(|p| !p.contains("-----BEGIN")) {
                    check.error(&format!("tls.{name}"), "expected PEM text");
                }
            }
        }
        if let Some(pool) = &self.keepalive_pool {
            if pool.size == 0 {
                check.error("keepalive_pool.size", "must be at least 1");
            }
            if pool.requests == 0 {
                check.error("keepalive_pool.requests", "must be at least 1");
            }
            if !(pool.idle_timeout >= 0.0 && pool.idle_timeout.is_finite()) {
                check.error(
                    "keepalive_pool.idle_timeout",
                    "must be a number of at least 0",
                );
            }
        }
        if let Some(checks) = &self.checks {
            checks.validate(&mut check.nested("checks"));
        }
        for (i, on) in self.retry_on.iter().flatten().enumerate() {
            let ok = match (on, on.status()) {
                (_, Some(s)) => (400..=599).contains(&s),
                (RetryOn::Name(n), None) => matches!(n.as_str(), "connect" | "timeout" | "reset"),
                (RetryOn::Status(_), None) => false,
            };
            if !ok {
                let shown = match on {
                    RetryOn::Status(s) => s.to_string(),
                    RetryOn::Name(n) => n.clone(),
                };
                check.error(
                    &format!("retry_on[{i}]"),
                    format!("unknown retry condition `{shown}`; expected connect, timeout, reset or a status 400-599"),
                );
            }
        }
        if self.retry_non_idempotent.is_some() && self.retry_on.is_none() {
            check.error("retry_non_idempotent", "needs retry_on");
        }
        check.metadata(
            self.name.as_deref(),
            self.desc.as_deref(),
            self.labels.as_ref(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigError;

    fn problems(json: &str) -> Vec<String> {
        let u: Upstream = serde_json::from_str(json).expect("parses");
        let mut errors: Vec<ConfigError> = Vec::new();
        u.validate(&mut Checker::new(
            "upstreams[0]",
            &mut errors,
            &crate::NoPlugins,
        ));
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn host_port_forms() {
        let hp = |s| HostPort::parse(s);
        assert_eq!(hp("a.com").map(|h| h.port), Ok(None));
        assert_eq!(hp("127.0.0.1:8080").map(|h| h.port), Ok(Some(8080)));
        assert_eq!(
            hp("[::1]:81").map(|h| (h.host, h.port)),
            Ok(("[::1]".into(), Some(81)))
        );
        assert_eq!(hp("[::1]").map(|h| h.port), Ok(None));
        assert!(hp("::1").expect_err("bare v6").contains("enclosed"));
        assert!(hp("a:0").is_err());
        assert!(hp("a:99999").is_err());
        assert!(hp(":80").is_err());
    }

    #[test]
    fn node_forms_normalise() {
        let u: Upstream =
            serde_json::from_str(r#"{"scheme":"https","nodes":{"a.com":2,"10.0.0.1:8080":1}}"#)
                .expect("map form");
        let n = u.node_list();
        assert_eq!(
            (n[0].host.as_str(), n[0].port, n[0].weight),
            ("10.0.0.1", Some(8080), 1)
        );
        assert_eq!(
            (n[1].host.as_str(), n[1].port, n[1].weight),
            ("a.com", Some(443), 2)
        );
        let u: Upstream = serde_json::from_str(
            r#"{"nodes":[{"host":"b","weight":3,"priority":-1},{"host":"c","port":81,"weight":0}]}"#,
        )
        .expect("list form");
        let n = u.node_list();
        assert_eq!((n[0].port, n[0].priority), (Some(80), Some(-1)));
        assert_eq!(
            (n[1].port, n[1].priority, n[1].weight),
            (Some(81), Some(0), 0)
        );
        // Without `port`, a `host:port` host gives the port; with it, the host is refused.
        let u: Upstream =
            serde_json::from_str(r#"{"nodes":[{"host":"127.0.0.1:1980","weight":1}]}"#)
                .expect("host with port");
        let n = u.node_list();
        assert_eq!((n[0].host.as_str(), n[0].port), ("127.0.0.1", Some(1980)));
        assert!(problems(r#"{"nodes":[{"host":"127.0.0.1:1980","weight":1}]}"#).is_empty());
        assert_eq!(
            problems(r#"{"nodes":[{"host":"127.0.0.1:1980","port":80,"weight":1}]}"#),
            vec!["upstreams[0].nodes[0].host: host must not contain a port when `port` is set"]
        );
    }

    #[test]
    fn rules() {
        assert!(problems(r#"{"nodes":{"127.0.0.1:80":1}}"#).is_empty());
        assert_eq!(
            problems(r#"{"type":"chash","nodes":{}}"#),
            vec!["upstreams[0].key: missing key for chash balancer"]
        );
        assert!(problems(r#"{"type":"chash","hash_on":"consumer","nodes":{}}"#).is_empty());
        assert_eq!(
            problems(
                r#"{"type":"random","scheme":"tcp","pass_host":"rewrite","nodes":{"::1":1},"keepalive_pool":{"size":0},"checks":{"passive":{}}}"#
            ),
            vec![
                "upstreams[0].type: unknown balancer `random`; expected roundrobin, chash, least_conn or ewma",
                "upstreams[0].nodes: invalid node address `::1`: IPv6 address must be enclosed with '[' and ']'",
                "upstreams[0].scheme: scheme `tcp` is not supported; expected http, https, grpc or grpcs",
                "upstreams[0].upstream_host: pass_host `rewrite` requires upstream_host",
                "upstreams[0].keepalive_pool.size: must be at least 1",
                "upstreams[0].checks: checks.active is required",
            ]
        );
        assert_eq!(
            problems(r#"{"type":"chash","hash_on":"vars","key":"http_x","nodes":{}}"#),
            vec!["upstreams[0].key: invalid key `http_x` for hash_on vars"]
        );
        assert_eq!(
            problems(r#"{"type":"roundrobin"}"#),
            vec!["upstreams[0].nodes: nodes is required"]
        );
    }

    #[test]
    fn retry_on_and_checks() {
        assert!(problems(
            r#"{"nodes":{"a:1":1},"retry_on":["connect","timeout","reset",502,"503"],"retry_non_idempotent":true}"#
        )
        .is_empty());
        assert_eq!(
            problems(r#"{"nodes":{"a:1":1},"retry_on":["5xx",200,70000],"checks":{"active":{"concurrency":0}}}"#),
            vec![
                "upstreams[0].checks.active.concurrency: must be at least 1",
                "upstreams[0].retry_on[0]: unknown retry condition `5xx`; expected connect, timeout, reset or a status 400-599",
                "upstreams[0].retry_on[1]: unknown retry condition `200`; expected connect, timeout, reset or a status 400-599",
                "upstreams[0].retry_on[2]: unknown retry condition `70000`; expected connect, timeout, reset or a status 400-599",
            ]
        );
        assert_eq!(
            problems(r#"{"nodes":{"a:1":1},"retry_non_idempotent":true}"#),
            vec!["upstreams[0].retry_non_idempotent: needs retry_on"]
        );
        let u: Upstream = serde_json::from_str(
            r#"{"nodes":{"a:1":1},"retry_on":[502,"connect"],"checks":{"active":{"type":"tcp"}}}"#,
        )
        .expect("parses");
        let back = serde_json::to_value(&u).expect("serialises");
        assert_eq!(back["retry_on"], serde_json::json!([502, "connect"]));
        assert_eq!(back["checks"]["active"]["type"], "tcp");
        assert_eq!(back["checks"]["active"]["healthy"]["successes"], 2);
    }
}
