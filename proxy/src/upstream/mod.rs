//! Upstreams at run time: node selection, connection pools, retries and timeouts.
//!
//! A [`Backend`] is built once per upstream version when a snapshot is built and shared by every
//! route that uses it, so balancer state (round-robin position, active counts, latencies) is shared
//! too. [`forward()`] sends one client request to the backend with APISIX's retry rules.
//!
//! Layout:
//! - `balancer`: the node pickers (roundrobin, chash, least_conn, ewma) and priority groups.
//! - `client`: hyper-util clients with rustls, cached per connection policy.
//! - `body`: the client's request body, buffered before connecting or streamed (capped per
//!   client), re-sendable until a try starts streaming it; client body faults.
//! - `forward`: tries, retries (APISIX's rule, or the upstream's `retry_on`), timeouts and
//!   failure classification.
//! - `health`: node health from active probes and passive counting, shared with the balancer.

pub mod balancer;
pub mod body;
pub mod client;
pub mod forward;
pub mod health;

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use http::uri::{Authority, Scheme};

use balancer::{Balancer, HashOn, Kind, Latencies, Node};
pub use forward::{forward, FailKind, ForwardError, Proxied, RequestTemplate};
use health::{HealthChecker, NodeHealth, Outcome};
use model;
use model::expr::Vars;

/// `retry_on` (beyond APISIX): which failed tries are retried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The connection could not be established.
    pub connect: bool,
    /// No connection, or no response head, in time.
    pub timeout: bool,
    /// The connection broke or the answer was not HTTP.
    pub reset: bool,
    /// Statuses that make a try fail (the last one is still answered with it).
    pub statuses: Vec<u16>,
    /// Retry POST, PATCH and LOCK even when they may have reached the node.
    pub non_idempotent: bool,
}

impl RetryPolicy {
    /// The policy of `retry_on`, if set.
    pub fn from_model(u: &model::Upstream) -> Option<RetryPolicy> {
        let list = u.retry_on.as_ref()?;
        let mut p = RetryPolicy {
            non_idempotent: u.retry_non_idempotent.unwrap_or(false),
            ..RetryPolicy::default()
        };
        for on in list {
            match (on.status(), on) {
                (Some(s), _) => p.statuses.push(s),
                (None, model::RetryOn::Name(n)) => match n.as_str() {
                    "connect" => p.connect = true,
                    "timeout" => p.timeout = true,
                    "reset" => p.reset = true,
                    _ => {}
                },
                (None, model::RetryOn::Status(_)) => {}
            }
        }
        Some(p)
    }
}

/// A backend's health checker and its nodes' health, in node order.
struct BackendHealth {
    checker: Arc<HealthChecker>,
    nodes: Vec<Arc<NodeHealth>>,
}

/// Timeouts of one try (APISIX: route `timeout` > upstream `timeout` > 60 s each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time to establish a connection.
    pub connect: Duration,
    /// Longest wait for the connection to take the next part of the request (see `forward`).
    pub send: Duration,
    /// Time allowed between two reads from the upstream, and from the request sent until the
    /// response head.
    pub read: Duration,
}

impl Timeouts {
    /// nginx's defaults: 60 s each.
    pub const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(60),
        send: Duration::from_secs(60),
        read: Duration::from_secs(60),
    };

    /// Converts a model timeout (seconds).
    pub fn from_model(t: &model::Timeout) -> Timeouts {
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(60));
        Timeouts {
            connect: secs(t.connect),
            send: secs(t.send),
            read: secs(t.read),
        }
    }
}

/// What Host header the upstream gets.
#[derive(Debug, Clone)]
pub enum PassHost {
    /// The client's Host.
    Pass,
    /// The node's host (and port unless it is the scheme's default).
    Node,
    /// A fixed value (`upstream_host`).
    Rewrite(HeaderValue),
}

/// How to reach one node.
#[derive(Debug, Clone)]
pub struct NodeAddr {
    /// `host:port` for the request URI (IPv6 in brackets).
    pub authority: Authority,
    /// Host header for `pass_host: node`.
    pub host_header: HeaderValue,
}

/// An upstream ready to serve requests.
pub struct Backend {
    /// Where it comes from, as APISIX's key (`/apisix/upstreams/1`, `/apisix/routes/1` for inline).
    pub key: String,
    /// The definition it was built from (a new snapshot reuses the backend while this is equal).
    pub definition: model::Upstream,
    balancer: Balancer,
    nodes: Vec<NodeAddr>,
    /// Further tries after a failed one.
    pub retries: u32,
    /// Deadline for starting retries, from the first try.
    pub retry_timeout: Option<Duration>,
    /// The upstream's own timeouts (routes may override).
    pub timeouts: Timeouts,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host header policy.
    pub pass_host: PassHost,
    /// `retry_on`, if set (else APISIX's rule).
    pub retry_on: Option<RetryPolicy>,
    health: Option<BackendHealth>,
}

impl Backend {
    /// Builds a backend from a validated upstream, without health checks. Nodes whose address
    /// cannot form a URI are left out with an error log.
    pub fn new(key: String, definition: &model::Upstream) -> Backend {
        Backend::with_checker(key, definition, None, &Latencies::default())
    }

    /// Builds a backend whose nodes' health comes from `checker` (which then probes exactly
    /// these nodes) and whose ewma latencies are kept in `latencies`.
    pub fn with_checker(
        key: String,
        definition: &model::Upstream,
        checker: Option<Arc<HealthChecker>>,
        latencies: &Latencies,
    ) -> Backend {
        let https = definition.is_tls();
        let default_port = if https { 443 } else { 80 };
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for spec in definition.node_list() {
            let port = spec.port.unwrap_or(default_port);
            let authority = format!("{}:{port}", spec.host);
            let host_header = if port == default_port {
                spec.host.clone()
            } else {
                authority.clone()
            };
            match (
                authority.parse::<Authority>(),
                HeaderValue::from_str(&host_header),
            ) {
                (Ok(authority), Ok(host_header)) => {
                    addrs.push(NodeAddr {
                        authority,
                        host_header,
                    });
                    nodes.push(Node {
                        host: spec.host,
                        port,
                        weight: spec.weight,
                        priority: spec.priority.unwrap_or(0),
                    });
                }
                _ => {
                    tracing::error!(upstream = %key, node = %authority, "invalid node address, node skipped")
                }
            }
        }
        let hash_on = (definition.kind() == "chash").then(|| {
            let key = definition.key.clone().unwrap_or_default();
            match definition.hash_on.as_deref().unwrap_or("vars") {
                "header" => HashOn::Header(key),
                "cookie" => HashOn::Cookie(key),
                "consumer" => HashOn::Consumer,
                "vars_combinations" => HashOn::combination(&key),
                _ => HashOn::Vars(key),
            }
        });
        let kind = match (definition.kind(), hash_on) {
            ("least_conn", _) => Kind::LeastConn,
            ("ewma", _) => Kind::Ewma,
            (_, Some(h)) => Kind::Chash(h),
            _ => Kind::RoundRobin,
        };
        let pass_host = match definition.pass_host.as_deref() {
            Some("node") => PassHost::Node,
            Some("rewrite") => definition
                .upstream_host
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok())
                .map_or(PassHost::Pass, PassHost::Rewrite),
            _ => PassHost::Pass,
        };
        let health = checker.map(|checker| {
            let addrs: Vec<(String, u16)> =
                nodes.iter().map(|n| (n.host.clone(), n.port)).collect();
            let nodes = checker.set_targets(&addrs);
            BackendHealth { checker, nodes }
        });
        let node_count = nodes.len();
        let mut balancer = Balancer::new(kind, nodes).with_latencies(latencies);
        if let Some(h) = &health {
            balancer = balancer.with_health(h.nodes.clone());
        }
        let retries = definition
            .retries
            .unwrap_or_else(|| u32::try_from(node_count.saturating_sub(1)).unwrap_or(u32::MAX));
        Backend {
            key,
            definition: definition.clone(),
            balancer,
            nodes: addrs,
            retries,
            retry_timeout: definition
                .retry_timeout
                .filter(|t| *t > 0.0)
                .and_then(|t| Duration::try_from_secs_f64(t).ok()),
            timeouts: definition
                .timeout
                .as_ref()
                .map_or(Timeouts::DEFAULT, Timeouts::from_model),
            scheme: if https { Scheme::HTTPS } else { Scheme::HTTP },
            pass_host,
            retry_on: RetryPolicy::from_model(definition),
            health,
        }
    }

    /// The health checker, if the upstream has `checks`.
    pub fn checker(&self) -> Option<&Arc<HealthChecker>> {
        self.health.as_ref().map(|h| &h.checker)
    }

    /// Counts a failed try on node `idx` (passive checks).
    pub fn report(&self, idx: usize, outcome: Outcome) {
        if let Some(h) = &self.health {
            if let Some(node) = h.nodes.get(idx) {
                h.checker.report_passive(node, outcome);
            }
        }
    }

    /// Counts the status node `idx` answered with (passive checks).
    pub fn report_status(&self, idx: usize, status: u16) {
        if let Some(h) = &self.health {
            if let Some(node) = h.nodes.get(idx) {
                h.checker.report_passive_status(node, status);
            }
        }
    }

    /// The chash key of a request: from `hash_on`/`key`, or the client address when that is
    /// missing (as APISIX). None for other balancers.
    pub fn hash_key(&self, vars: &dyn Vars) -> Option<String> {
        let hash_on = self.balancer.hash_on()?;
        hash_on
            .key(vars)
            .or_else(|| vars.get("remote_addr").map(|v| v.into_owned()))
    }

    /// The node addresses, in balancer order.
    pub fn nodes(&self) -> &[NodeAddr] {
        &self.nodes
    }

    /// Makes `pass_host: node` send each node's host without its port.
    pub fn strip_node_ports(&mut self) {
        for addr in &mut self.nodes {
            if let Ok(host) = HeaderValue::from_str(addr.authority.host()) {
                addr.host_header = host;
            }
        }
    }
}
