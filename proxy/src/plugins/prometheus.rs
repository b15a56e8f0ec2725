//! `prometheus` (priority 500, log phase): request metrics in a process-wide registry, served in
//! Prometheus' text format by the exporter (see [`serve`]).
//!
//! Config: `prefer_name` (default false: the `route` label is the route's name when it has one,
//! else its id).
//!
//! Metrics (APISIX's names; the labels are a subset of APISIX's: `code`, `route`, `service`,
//! `node`, the upstream node's host without port, empty when a plugin answered):
//! - `apisix_http_status{code,route,service,node}` counter;
//! - `apisix_http_latency{type="request",route,service,node}` histogram in milliseconds, with
//!   APISIX's default buckets (1 to 60000);
//! - `apisix_bandwidth{type="egress",route,service,node}` counter of response body bytes (APISIX
//!   counts the headers too);
//! - `apisix_upstream_status{name,ip,port}` gauge, 1 healthy and 0 unhealthy, for every node of
//!   every upstream with health checks (from the gateway's current snapshot, not the registry);
//! - `apisix_nginx_http_current_connections{state}` gauge, nginx's stub_status states from the
//!   proxy listeners' counts: `accepted`, `handled` (= accepted), `active` (open connections),
//!   `writing` (requests being handled), `waiting` (open connections without one), `reading`
//!   (not tracked separately: 0);
//! - `apisix_http_requests_total` gauge, requests received;
//! - `apisix_etcd_reachable` gauge, 1 when the last read or watch of etcd worked (only with the
//!   etcd config provider).
//!
//! The node-level figures come from the gateway at each scrape ([`NodeStatus`]).
//!
//! Cardinality is bounded: at most [`MAX_SERIES`] label sets per metric; a request with a new label
//! set beyond that is counted under `route="other",service="other",node="other"` (the status code
//! is kept: it is bounded by nature).
//!
//! The registry is plain atomics behind a read-mostly lock and the exposition is written by hand:
//! three fixed metric families do not need a metrics crate. `log` takes the read lock and bumps
//! atomics; the write lock is taken only on the first request of a label set.
//!
//! The exporter (`plugin_attr.prometheus` in config.yaml, see [`crate::config::PrometheusAttr`])
//! serves `GET <export_uri>` (default `/apisix/prometheus/metrics`) on `export_addr` (default
//! `127.0.0.1:9091`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use arc_swap::ArcSwap;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;

use super::{parse_conf, LogCtx, Plugin, PluginKind};
use crate::admin::listener::{self, json, Reply};
use crate::upstream::health::Checker;

/// The most label sets kept per metric; beyond, new ones are aggregated under `other`.
pub const MAX_SERIES: usize = 10_000;

/// APISIX's default latency buckets, in milliseconds.
const BUCKETS: [u64; 26] = [
    1, 2, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 1000, 2000,
    5000, 10000, 30000, 60000,
];

/// The kind.
pub struct Prometheus;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Conf {
    #[serde(default)]
    prefer_name: bool,
}

struct Instance {
    prefer_name: bool,
    /// The series this instance recorded into lately, found again without allocating or
    /// touching the registry's lock (bounded: [`RECENT`] entries).
    recent: ArcSwap<Vec<Recent>>,
}

/// How many label sets an instance remembers.
const RECENT: usize = 32;

/// A label set an instance recorded into, with its series.
#[derive(Clone)]
struct Recent {
    code: u16,
    labels: Labels,
    status: Arc<AtomicU64>,
    traffic: Arc<Traffic>,
}

impl PluginKind for Prometheus {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn priority(&self) -> i32 {
        500
    }

    fn schema(&self) -> Value {
        crate::model::schema_of::<Conf>()
    }

    fn build(&self, conf: &Value) -> Result<Arc<dyn Plugin>, String> {
        let conf: Conf = parse_conf(conf)?;
        Ok(Arc::new(Instance {
            prefer_name: conf.prefer_name,
            recent: ArcSwap::default(),
        }))
    }
}

/// `route`, `service`, `node`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Labels {
    route: String,
    service: String,
    node: String,
}

impl Labels {
    fn other() -> Labels {
        Labels {
            route: "other".to_owned(),
            service: "other".to_owned(),
            node: "other".to_owned(),
        }
    }
}

/// One latency histogram and the egress counter of a label set.
#[derive(Default)]
struct Traffic {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Microseconds (shown as milliseconds).
    sum_us: AtomicU64,
    egress: AtomicU64,
}

/// The process-wide registry.
#[derive(Default)]
pub struct Metrics {
    status: RwLock<HashMap<(u16, Labels), Arc<AtomicU64>>>,
    traffic: RwLock<HashMap<Labels, Arc<Traffic>>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The registry every `prometheus` instance records into.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The series for `key`, created when missing (or `other`'s when the map is full).
fn series<K, V>(map: &RwLock<HashMap<K, Arc<V>>>, key: K, other: impl FnOnce() -> K) -> Arc<V>
where
    K: Eq + std::hash::Hash,
    V: Default,
{
    {
        let read = map.read().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = read.get(&key) {
            return v.clone();
        }
    }
    let mut write = map.write().unwrap_or_else(|e| e.into_inner());
    let key = if write.len() >= MAX_SERIES && !write.contains_key(&key) {
        other()
    } else {
        key
    };
    write.entry(key).or_default().clone()
}

/// Counts one finished request in its series.
fn bump(status: &AtomicU64, traffic: &Traffic, latency_us: u64, bytes: u64) {
    status.fetch_add(1, Ordering::Relaxed);
    // Stored per bucket (`le`: at most the bound), made cumulative when rendered.
    if let Some(i) = BUCKETS.iter().position(|b| latency_us <= b * 1000) {
        traffic.buckets[i].fetch_add(1, Ordering::Relaxed);
    }
    traffic.count.fetch_add(1, Ordering::Relaxed);
    traffic.sum_us.fetch_add(latency_us, Ordering::Relaxed);
    traffic.egress.fetch_add(bytes, Ordering::Relaxed);
}

impl Metrics {
    /// The series of a label set, created when missing.
    fn series(&self, code: u16, labels: &Labels) -> (Arc<AtomicU64>, Arc<Traffic>) {
        let status = series(&self.status, (code, labels.clone()), || {
            (code, Labels::other())
        });
        let traffic = series(&self.traffic, labels.clone(), Labels::other);
        (status, traffic)
    }

    /// Records one finished request (the tests' shorthand).
    #[cfg(test)]
    fn record(&self, code: u16, labels: Labels, latency_us: u64, bytes: u64) {
        let (status, traffic) = self.series(code, &labels);
        bump(&status, &traffic, latency_us, bytes);
    }

    /// The text exposition (format 0.0.4), series sorted by labels.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut traffic: Vec<(Labels, Arc<Traffic>)> = self
            .traffic
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        traffic.sort_by(|a, b| a.0.cmp(&b.0));
        let mut status: Vec<((u16, Labels), u64)> = self
            .status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect();
        status.sort_by(|a, b| a.0.cmp(&b.0));

        out.push_str("# HELP apisix_bandwidth Total bandwidth in bytes consumed per service in APISIX\n# TYPE apisix_bandwidth counter\n");
        for (l, t) in &traffic {
            let _ = writeln!(
                out,
                "apisix_bandwidth{{type=\"egress\",{}}} {}",
                labels(l),
                t.egress.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP apisix_http_latency HTTP request latency in milliseconds per service in APISIX\n# TYPE apisix_http_latency histogram\n");
        for (l, t) in &traffic {
            let l = labels(l);
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(&t.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "apisix_http_latency_bucket{{type=\"request\",{l},le=\"{b}\"}} {cumulative}"
                );
            }
            let count = t.count.load(Ordering::Relaxed);
            let sum_us = t.sum_us.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "apisix_http_latency_bucket{{type=\"request\",{l},le=\"+Inf\"}} {count}\n\
                 apisix_http_latency_sum{{type=\"request\",{l}}} {}.{:03}\n\
                 apisix_http_latency_count{{type=\"request\",{l}}} {count}",
                sum_us / 1000,
                sum_us % 1000
            );
        }
        out.push_str("# HELP apisix_http_status HTTP status codes per service in APISIX\n# TYPE apisix_http_status counter\n");
        for ((code, l), n) in &status {
            let _ = writeln!(
                out,
                "apisix_http_status{{code=\"{code}\",{}}} {n}",
                labels(l)
            );
        }
        out
    }
}

fn labels(l: &Labels) -> String {
    format!(
        "route=\"{}\",service=\"{}\",node=\"{}\"",
        escape(&l.route),
        escape(&l.service),
        escape(&l.node)
    )
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `host:port` (or `[v6]:port`) without the port.
fn node_host(node: &str) -> &str {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').map_or(node, |(h, _)| h);
    }
    match node.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => node,
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn log(&self, done: &LogCtx<'_>) {
        let req = done.request;
        let route = match (&req.route_name, self.prefer_name) {
            (Some(name), true) if !name.is_empty() => name.as_str(),
            _ => req.route_id.as_str(),
        };
        let service = req.service_id.as_deref().unwrap_or("");
        let node = done.upstream.map(node_host).unwrap_or("");
        let code = done.status.as_u16();
        let latency_us = u64::try_from(done.latency.as_micros()).unwrap_or(u64::MAX);
        let recent = self.recent.load();
        let known = recent.iter().find(|r| {
            r.code == code
                && r.labels.node == node
                && r.labels.route == route
                && r.labels.service == service
        });
        if let Some(r) = known {
            bump(&r.status, &r.traffic, latency_us, done.bytes_sent);
            return;
        }
        let labels = Labels {
            route: route.to_owned(),
            service: service.to_owned(),
            node: node.to_owned(),
        };
        let (status, traffic) = METRICS.series(code, &labels);
        bump(&status, &traffic, latency_us, done.bytes_sent);
        if recent.len() < RECENT {
            let entry = Recent {
                code,
                labels,
                status,
                traffic,
            };
            self.recent.rcu(|old| {
                let mut next = Vec::clone(old);
                if next.len() < RECENT {
                    next.push(entry.clone());
                }
                next
            });
        }
    }
}

/// What the exporter reads from its gateway at each scrape.
#[derive(Default)]
pub struct NodeStatus {
    /// The health checkers in use (`apisix_upstream_status`).
    pub upstreams: Vec<Arc<Checker>>,
    /// Connection and request counts of the proxy listeners.
    pub counts: crate::server::CountsNow,
    /// Whether etcd is reachable; `None` when the gateway does not use etcd.
    pub etcd_reachable: Option<bool>,
}

/// Serves the exporter on `listener` until `stop` completes: `GET uri` answers the metrics, with
/// the node-level ones from `node()`.
pub async fn serve(
    listener: TcpListener,
    uri: String,
    node: impl Fn() -> NodeStatus + Send + Sync + 'static,
    stop: impl Future<Output = ()>,
) {
    listener::serve(
        listener,
        "prometheus exporter",
        move |req, _| {
            let reply = answer(req.method(), req.uri().path(), &uri, &node());
            async move { reply }
        },
        stop,
    )
    .await;
}

/// The node-level metrics: connections, requests, etcd.
fn render_node(node: &NodeStatus) -> String {
    let c = node.counts;
    let mut out = String::from(
        "# HELP apisix_nginx_http_current_connections Number of HTTP connections
# TYPE apisix_nginx_http_current_connections gauge
",
    );
    let waiting = c.active.saturating_sub(c.in_flight);
    for (state, value) in [
        ("accepted", c.accepted),
        ("active", c.active),
        ("handled", c.accepted),
        ("reading", 0),
        ("waiting", waiting),
        ("writing", c.in_flight),
    ] {
        let _ = writeln!(
            out,
            "apisix_nginx_http_current_connections{{state=\"{state}\"}} {value}"
        );
    }
    let _ = write!(
        out,
        "# HELP apisix_http_requests_total The total number of client requests
# TYPE apisix_http_requests_total gauge
apisix_http_requests_total {}
",
        c.requests
    );
    if let Some(up) = node.etcd_reachable {
        let _ = write!(
            out,
            "# HELP apisix_etcd_reachable Config server etcd reachable from APISIX, 0 is unreachable
# TYPE apisix_etcd_reachable gauge
apisix_etcd_reachable {}
",
            u8::from(up)
        );
    }
    out
}

/// `apisix_upstream_status` for `checkers`.
pub fn render_upstream_status(checkers: &[Arc<Checker>]) -> String {
    let mut out = String::from(
        "# HELP apisix_upstream_status Upstream status from health check
# TYPE apisix_upstream_status gauge
",
    );
    for c in checkers {
        for node in c.targets().iter() {
            let _ = writeln!(
                out,
                "apisix_upstream_status{{name=\"{}\",ip=\"{}\",port=\"{}\"}} {}",
                escape(c.key()),
                escape(&node.host),
                node.port,
                u8::from(node.is_healthy())
            );
        }
    }
    out
}

fn answer(method: &Method, path: &str, uri: &str, node: &NodeStatus) -> Reply {
    if (method != Method::GET && method != Method::HEAD) || path != uri {
        return json(StatusCode::NOT_FOUND, r#"{"error_msg":"not found"}"#);
    }
    let mut text = METRICS.render();
    if !node.upstreams.is_empty() {
        text.push_str(&render_upstream_status(&node.upstreams));
    }
    text.push_str(&render_node(node));
    let mut reply = json(StatusCode::OK, text);
    reply.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn l(route: &str) -> Labels {
        Labels {
            route: route.to_owned(),
            service: "s".to_owned(),
            node: "10.0.0.1".to_owned(),
        }
    }

    #[test]
    fn records_and_renders() {
        let m = Metrics::default();
        m.record(200, l("r"), 1_500, 10);
        m.record(200, l("r"), 1_000, 5);
        m.record(404, l("r"), 70_000_000, 0);
        let text = m.render();
        let has = |line: &str| assert!(text.lines().any(|x| x == line), "{line} in\n{text}");
        has(r#"apisix_http_status{code="200",route="r",service="s",node="10.0.0.1"} 2"#);
        has(r#"apisix_http_status{code="404",route="r",service="s",node="10.0.0.1"} 1"#);
        has(r#"apisix_bandwidth{type="egress",route="r",service="s",node="10.0.0.1"} 15"#);
        let lat = r#"type="request",route="r",service="s",node="10.0.0.1""#;
        has(&format!(r#"apisix_http_latency_bucket{{{lat},le="1"}} 1"#));
        has(&format!(r#"apisix_http_latency_bucket{{{lat},le="2"}} 2"#));
        has(&format!(
            r#"apisix_http_latency_bucket{{{lat},le="60000"}} 2"#
        ));
        has(&format!(
            r#"apisix_http_latency_bucket{{{lat},le="+Inf"}} 3"#
        ));
        has(&format!(r#"apisix_http_latency_sum{{{lat}}} 70002.500"#));
        has(&format!(r#"apisix_http_latency_count{{{lat}}} 3"#));
        assert!(text.contains("# TYPE apisix_http_latency histogram\n"));
    }

    #[test]
    fn label_sets_are_bounded() {
        let m = Metrics::default();
        for i in 0..MAX_SERIES + 5 {
            m.record(200, l(&i.to_string()), 1, 1);
        }
        assert_eq!(m.status.read().expect("lock").len(), MAX_SERIES + 1);
        assert_eq!(m.traffic.read().expect("lock").len(), MAX_SERIES + 1);
        let text = m.render();
        assert!(text.contains(
            "apisix_http_status{code=\"200\",route=\"other\",service=\"other\",node=\"other\"} 5\n"
        ));
        // Known label sets still count on their own.
        m.record(200, l("0"), 1, 1);
        assert!(m.render().contains(
            "apisix_http_status{code=\"200\",route=\"0\",service=\"s\",node=\"10.0.0.1\"} 2\n"
        ));
    }

    #[test]
    fn labels_are_escaped_and_nodes_lose_their_port() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(node_host("10.0.0.1:8080"), "10.0.0.1");
        assert_eq!(node_host("[::1]:80"), "::1");
        assert_eq!(node_host("example.com"), "example.com");
    }

    #[test]
    fn configs_are_checked_and_the_exporter_answers_its_uri() {
        assert!(Prometheus.build(&json!({})).is_ok());
        assert!(Prometheus.build(&json!({"prefer_name": true})).is_ok());
        assert!(Prometheus.build(&json!({"prefer_name": 1})).is_err());
        assert!(Prometheus.build(&json!({"x": 1})).is_err());
        let uri = "/apisix/prometheus/metrics";
        let none = NodeStatus::default();
        assert_eq!(
            answer(&Method::GET, uri, uri, &none).status(),
            StatusCode::OK
        );
        assert_eq!(
            answer(&Method::GET, "/other", uri, &none).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            answer(&Method::POST, uri, uri, &none).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn node_metrics() {
        let node = NodeStatus {
            upstreams: Vec::new(),
            counts: crate::server::CountsNow {
                accepted: 10,
                active: 3,
                requests: 42,
                in_flight: 1,
            },
            etcd_reachable: Some(false),
        };
        let text = render_node(&node);
        for line in [
            "apisix_nginx_http_current_connections{state=\"accepted\"} 10",
            "apisix_nginx_http_current_connections{state=\"handled\"} 10",
            "apisix_nginx_http_current_connections{state=\"active\"} 3",
            "apisix_nginx_http_current_connections{state=\"writing\"} 1",
            "apisix_nginx_http_current_connections{state=\"waiting\"} 2",
            "apisix_http_requests_total 42",
            "apisix_etcd_reachable 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let without_etcd = render_node(&NodeStatus::default());
        assert!(!without_etcd.contains("apisix_etcd_reachable"));
    }
}
