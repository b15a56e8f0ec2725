//! `prometheus` (priority 500, log phase): request metrics in the registry of its gateway
//! ([`Metrics`], owned by the kind: two gateways in one process count apart), served in
//! Prometheus' text format by that gateway's exporter (see [`serve`]).
//!
//! Config: `prefer_name` (default false; true: the `route` and `service` labels are the route's
//! and its service's names when they have one, else their ids).
//!
//! Metadata (`plugin_metadata/prometheus`): `disabled_labels`, per metric (`http_status`,
//! `http_latency`, `bandwidth`; APISIX's AI metrics are accepted and have nothing to empty
//! here), the labels whose values are emptied, which bounds the series. A label that makes a
//! series what it is (`code`, `type`) cannot be disabled. Instances read it when their chain is
//! built.
//!
//! As APISIX's (`run_policy = "prefer_route"`), an instance in a global rule stands aside for
//! requests to a route that has the plugin too, so they are counted once.
//!
//! Metrics (APISIX 3.18's names, labels and label order):
//! - `apisix_http_status{code,route,matched_uri,matched_host,service,consumer,node,request_type,
//!   request_llm_model,llm_model,response_source}` counter;
//! - `apisix_http_latency{type,route,service,consumer,node,request_type,request_llm_model,
//!   llm_model}` histogram in milliseconds with APISIX's default buckets (1 to 60000): `type`
//!   `request` (the whole request), `upstream` (the node's time to answer, only when one
//!   answered) and `apisix` (request minus upstream, at least 0);
//! - `apisix_bandwidth{type,route,service,consumer,node,request_type,request_llm_model,llm_model}`
//!   counter, `type="ingress"`: the request's size (request line, headers, body), and
//!   `type="egress"`: response body bytes (APISIX counts the headers too);
//! - `apisix_batch_process_entries{name,route_id,server_addr}` gauge: the entries waiting in each
//!   logger's batch queue (see `watch_batch`), labelled with the queue's name and the route and
//!   server address of the request that started it;
//! - `apisix_upstream_status{name,ip,port}` gauge, 1 healthy and 0 unhealthy, for every node of
//!   every upstream with health checks (from the gateway's current snapshot, not the registry);
//! - `apisix_nginx_http_current_connections{state}` gauge, nginx's stub_status states from the
//!   proxy listeners' counts: `accepted`, `handled` (= accepted), `active` (open connections),
//!   `writing` (requests being handled), `waiting` (open connections without one), `reading`
//!   (not tracked separately: 0);
//! - `apisix_http_requests_total` gauge, requests received;
//! - `apisix_etcd_reachable` gauge, 1 when the last read or watch of etcd worked (only with the
//!   etcd config provider);
//! - `apisix_node_info{hostname,version}` gauge, always 1 (the version is Ferrogate's).
//!
//! Label values as APISIX's: `consumer` the authenticated consumer's name; `node` the address of
//! the upstream node that answered (the node's host when it failed, empty when no upstream was
//! tried); `request_type` `traditional_http` (no AI proxying here), `request_llm_model` and
//! `llm_model` empty; `response_source` `upstream` (the upstream answered), `nginx` (the gateway
//! answered for a failed upstream: 502, 504) or `apisix` (a plugin answered, no route);
//! `matched_uri` and `matched_host` the route's `uri` and host patterns that matched the request
//! (`/foo*`, `*.foo.com`; empty without a route, and `matched_host` for a route without hosts).
//!
//! The node-level figures come from the gateway at each scrape ([`NodeStatus`]).
//!
//! Cardinality is bounded: at most [`MAX_SERIES`] label sets per metric; a request with a new label
//! set beyond that is counted under `route="other",service="other",consumer="other",
//! node="other"` (the status code and response source are kept: they are bounded by nature).
//!
//! The registry is plain atomics behind a read-mostly lock and the exposition is written by hand:
//! three fixed metric families do not need a metrics crate. `log` takes the read lock and bumps
//! atomics; the write lock is taken only on the first request of a label set, and each instance
//! remembers its recent label sets, so a request of a known set allocates nothing.
//!
//! The exporter (`plugin_attr.prometheus` in config.yaml, see [`crate::config::PrometheusAttr`])
//! serves `GET <export_uri>` (default `/apisix/prometheus/metrics`) on `export_addr` (default
//! `127.0.0.1:9091`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::listener::{self, json, FullResponse};
use crate::upstream::health::HealthChecker;
use plugin_api::metadata::Metadata;
use plugin_api::Balancer;
use plugin_api::{BatchQueue, BatchWatch, BuildContext, Kind, LogCtx, Phases, Plugin};

/// The most label sets kept per metric; beyond, new ones are aggregated under `other`.
pub const MAX_SERIES: usize = 10_000;

/// APISIX's default latency buckets (3.18), in milliseconds.
const BUCKETS: [u64; 15] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000,
];

/// The labels every request has the same value for here: no AI proxying.
const FIXED: &str = r#"request_type="traditional_http",request_llm_model="",llm_model="""#;

/// The kind: records into the metrics of its gateway.
#[derive(Default)]
pub struct Prometheus {
    metrics: Arc<Metrics>,
}

impl Prometheus {
    /// The kind recording into `metrics` (its gateway's, which the exporter serves).
    pub fn new(metrics: Arc<Metrics>) -> Prometheus {
        Prometheus { metrics }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    #[serde(default)]
    prefer_name: bool,
}

/// A checked config.
pub struct Checked {
    prefer_name: bool,
}

/// A configured instance.
pub struct Instance {
    prefer_name: bool,
    metrics: Arc<Metrics>,
    /// The labels the plugin metadata empties, per metric.
    disabled: Disabled,
    /// The series this instance recorded into lately, found again without allocating or
    /// touching the registry's lock (bounded: [`RECENT`] entries).
    recent: ArcSwap<Vec<Recent>>,
}

/// How many label sets an instance remembers.
const RECENT: usize = 32;

/// A label set an instance recorded into (as the request had it, before any label was
/// emptied), with its series.
#[derive(Clone)]
struct Recent {
    key: StatusKey,
    series: Series,
}

/// The series one request counts in.
#[derive(Clone)]
struct Series {
    status: Arc<AtomicU64>,
    latency: Arc<Latency>,
    bandwidth: Arc<Bandwidth>,
}

impl Kind for Prometheus {
    type Conf = Conf;
    type Checked = Checked;
    const NAME: &'static str = "prometheus";
    const PRIORITY: i32 = 500;

    fn check(&self, conf: Conf) -> Result<Checked, String> {
        Ok(Checked {
            prefer_name: conf.prefer_name,
        })
    }

    fn instance(&self, checked: Checked, ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        Ok(Arc::new(Instance {
            prefer_name: checked.prefer_name,
            metrics: self.metrics.clone(),
            disabled: ctx
                .metadata::<Disabled>(Self::NAME)
                .copied()
                .unwrap_or_default(),
            recent: ArcSwap::default(),
        }))
    }

    fn plugin_metadata_schema(&self) -> Option<serde_json::Value> {
        let properties: serde_json::Map<String, serde_json::Value> = METRIC_LABELS
            .iter()
            .map(|(metric, labels, structural)| {
                let allowed: Vec<&str> = labels
                    .iter()
                    .copied()
                    .filter(|l| Some(*l) != *structural)
                    .collect();
                (
                    (*metric).to_owned(),
                    serde_json::json!({"type": "array", "items": {"type": "string", "enum": allowed}}),
                )
            })
            .collect();
        Some(serde_json::json!({
            "type": "object",
            "properties": {
                "disabled_labels": {
                    "type": "object",
                    "properties": properties,
                    "additionalProperties": false
                }
            }
        }))
    }

    fn plugin_metadata(&self, metadata: &serde_json::Value) -> Result<Option<Metadata>, String> {
        let mask = |metric: &str| -> u16 {
            metadata
                .get("disabled_labels")
                .and_then(|d| d.get(metric))
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().and_then(label_bit))
                .fold(0, |mask, bit| mask | bit)
        };
        Ok(Some(Metadata::new(Disabled {
            status: mask("http_status"),
            latency: mask("http_latency"),
            bandwidth: mask("bandwidth"),
        })))
    }
}

/// APISIX's request metrics with their labels (in order) and the label that makes a series
/// what it is, which cannot be disabled. Only the first three are recorded here; the others
/// (AI proxying) are named so that metadata written for APISIX is accepted.
const METRIC_LABELS: [(&str, &[&str], Option<&str>); 13] = [
    (
        "http_status",
        &[
            "code",
            "route",
            "matched_uri",
            "matched_host",
            "service",
            "consumer",
            "node",
            "request_type",
            "request_llm_model",
            "llm_model",
            "response_source",
        ],
        Some("code"),
    ),
    ("http_latency", COMMON_LABELS, Some("type")),
    ("bandwidth", COMMON_LABELS, Some("type")),
    (
        "llm_latency",
        &[
            "type",
            "route_id",
            "service_id",
            "consumer",
            "node",
            "request_type",
            "request_llm_model",
            "llm_model",
        ],
        Some("type"),
    ),
    ("llm_prompt_tokens", LLM_LABELS, None),
    ("llm_completion_tokens", LLM_LABELS, None),
    (
        "llm_active_connections",
        &[
            "route",
            "route_id",
            "matched_uri",
            "matched_host",
            "service",
            "service_id",
            "consumer",
            "node",
            "request_type",
            "request_llm_model",
            "llm_model",
        ],
        None,
    ),
    ("llm_prompt_tokens_dist", LLM_LABELS, None),
    ("llm_completion_tokens_dist", LLM_LABELS, None),
    (
        "ai_cache_hits_total",
        &[
            "layer",
            "route",
            "route_id",
            "service",
            "service_id",
            "consumer",
            "node",
            "request_type",
            "request_llm_model",
            "llm_model",
        ],
        Some("layer"),
    ),
    ("ai_cache_misses_total", CACHE_LABELS, None),
    ("ai_cache_bypasses_total", CACHE_LABELS, None),
    ("ai_cache_embedding_latency", CACHE_LABELS, None),
];

/// The labels of `apisix_http_latency` and `apisix_bandwidth`.
const COMMON_LABELS: &[&str] = &[
    "type",
    "route",
    "service",
    "consumer",
    "node",
    "request_type",
    "request_llm_model",
    "llm_model",
];

/// The labels of the LLM token metrics.
const LLM_LABELS: &[&str] = &[
    "route_id",
    "service_id",
    "consumer",
    "node",
    "request_type",
    "request_llm_model",
    "llm_model",
];

/// The labels of the AI cache metrics.
const CACHE_LABELS: &[&str] = &[
    "route",
    "route_id",
    "service",
    "service_id",
    "consumer",
    "node",
    "request_type",
    "request_llm_model",
    "llm_model",
];

/// The labels recorded here that metadata may empty, as bits of a mask.
const LABEL_BITS: [(&str, u16); 10] = [
    ("route", 1),
    ("matched_uri", 1 << 1),
    ("matched_host", 1 << 2),
    ("service", 1 << 3),
    ("consumer", 1 << 4),
    ("node", 1 << 5),
    ("request_type", 1 << 6),
    ("request_llm_model", 1 << 7),
    ("llm_model", 1 << 8),
    ("response_source", 1 << 9),
];

/// The bit of label `name` (`None` for a label this gateway does not record).
fn label_bit(name: &str) -> Option<u16> {
    LABEL_BITS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The bit of a label this gateway records.
fn bit(name: &str) -> u16 {
    label_bit(name).unwrap_or(0)
}

/// The labels whose values the plugin metadata empties (`disabled_labels`), per metric.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Disabled {
    status: u16,
    latency: u16,
    bandwidth: u16,
}

/// Who made the response (APISIX's `response_source`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Source {
    /// The gateway itself: a plugin answered, or no route matched.
    Apisix,
    /// The gateway, for an upstream that failed (nginx's 502 / 504).
    Nginx,
    /// The upstream.
    Upstream,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Apisix => "apisix",
            Source::Nginx => "nginx",
            Source::Upstream => "upstream",
        }
    }
}

/// `route`, `service`, `consumer`, `node` and whether `request_type` is shown: the labels of
/// `apisix_http_latency` and `apisix_bandwidth` (besides `type`; the LLM ones are always
/// empty).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
struct Labels {
    route: String,
    service: String,
    consumer: String,
    node: String,
    /// `request_type="traditional_http"`; false when the metadata empties it.
    request_type: bool,
}

impl Labels {
    fn other() -> Labels {
        Labels {
            route: "other".to_owned(),
            service: "other".to_owned(),
            consumer: "other".to_owned(),
            node: "other".to_owned(),
            request_type: true,
        }
    }
}

/// The labels of one `apisix_http_status` series.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
struct StatusKey {
    code: u16,
    labels: Labels,
    matched_uri: String,
    matched_host: String,
    /// `None`: emptied by the metadata.
    source: Option<Source>,
}

/// The label values of one finished request, borrowed.
struct Values<'a> {
    code: u16,
    route: &'a str,
    matched_uri: &'a str,
    matched_host: &'a str,
    service: &'a str,
    consumer: &'a str,
    node: &'a str,
    source: Source,
}

impl Values<'_> {
    fn is(&self, key: &StatusKey) -> bool {
        key.code == self.code
            && key.source == Some(self.source)
            && key.labels.node == self.node
            && key.labels.route == self.route
            && key.labels.service == self.service
            && key.labels.consumer == self.consumer
            && key.matched_uri == self.matched_uri
            && key.matched_host == self.matched_host
    }

    /// The latency and bandwidth labels, with the labels of `mask` emptied.
    fn labels(&self, mask: u16) -> Labels {
        let keep = |name: &str, value: &str| {
            if mask & bit(name) == 0 {
                value.to_owned()
            } else {
                String::new()
            }
        };
        Labels {
            route: keep("route", self.route),
            service: keep("service", self.service),
            consumer: keep("consumer", self.consumer),
            node: keep("node", self.node),
            request_type: mask & bit("request_type") == 0,
        }
    }

    /// The status labels, with the labels of `mask` emptied.
    fn key(&self, mask: u16) -> StatusKey {
        let keep = |name: &str, value: &str| {
            if mask & bit(name) == 0 {
                value.to_owned()
            } else {
                String::new()
            }
        };
        StatusKey {
            code: self.code,
            labels: self.labels(mask),
            matched_uri: keep("matched_uri", self.matched_uri),
            matched_host: keep("matched_host", self.matched_host),
            source: (mask & bit("response_source") == 0).then_some(self.source),
        }
    }
}

/// One latency histogram.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Microseconds (shown as milliseconds).
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        // Stored per bucket (`le`: at most the bound), made cumulative when rendered.
        if let Some(i) = BUCKETS.iter().position(|b| us <= b * 1000) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// The latency histograms of a label set.
#[derive(Default)]
struct Latency {
    request: Histogram,
    upstream: Histogram,
    apisix: Histogram,
}

/// The bandwidth counters of a label set.
#[derive(Default)]
struct Bandwidth {
    ingress: AtomicU64,
    egress: AtomicU64,
}

/// What one finished request adds.
struct Sample {
    latency: Duration,
    /// The upstream's part, when one answered.
    upstream: Option<Duration>,
    /// The request's size.
    received: u64,
    bytes: u64,
}

/// The metrics of one gateway: what its `prometheus` instances record and its exporter serves.
#[derive(Default)]
pub struct Metrics {
    status: RwLock<HashMap<StatusKey, Arc<AtomicU64>>>,
    latency: RwLock<HashMap<Labels, Arc<Latency>>>,
    bandwidth: RwLock<HashMap<Labels, Arc<Bandwidth>>>,
    batches: Mutex<Vec<Batch>>,
}

/// A watched batch queue and its labels.
struct Batch {
    name: String,
    route_id: String,
    server_addr: String,
    queue: Weak<dyn BatchQueue>,
}

/// Reports plugins' batch queues in `apisix_batch_process_entries` of a gateway's metrics.
pub struct Batches(pub Arc<Metrics>);

impl BatchWatch for Batches {
    fn watch(&self, name: &str, route_id: &str, server_addr: &str, queue: Weak<dyn BatchQueue>) {
        self.0.watch_batch(name, route_id, server_addr, queue);
    }
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
fn bump(series: &Series, sample: &Sample) {
    series.status.fetch_add(1, Ordering::Relaxed);
    let latency = &series.latency;
    latency.request.observe(sample.latency);
    // As APISIX's `latency_details_in_ms`: `apisix` is the request minus the upstream, never
    // below 0.
    let own = match sample.upstream {
        Some(upstream) => {
            latency.upstream.observe(upstream);
            sample.latency.saturating_sub(upstream)
        }
        None => sample.latency,
    };
    latency.apisix.observe(own);
    let bandwidth = &series.bandwidth;
    bandwidth
        .ingress
        .fetch_add(sample.received, Ordering::Relaxed);
    bandwidth.egress.fetch_add(sample.bytes, Ordering::Relaxed);
}

impl Metrics {
    /// Reports `queue` in `apisix_batch_process_entries{name,route_id,server_addr}` for as long
    /// as it lives (at most [`MAX_SERIES`] queues at a time).
    fn watch_batch(
        &self,
        name: &str,
        route_id: &str,
        server_addr: &str,
        queue: Weak<dyn BatchQueue>,
    ) {
        let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        batches.retain(|b| b.queue.strong_count() > 0);
        if batches.len() < MAX_SERIES {
            batches.push(Batch {
                name: name.to_owned(),
                route_id: route_id.to_owned(),
                server_addr: server_addr.to_owned(),
                queue,
            });
        }
    }

    /// The series of one request's labels (each metric's as `disabled` leaves them), created
    /// when missing.
    fn series(&self, status: StatusKey, latency: Labels, bandwidth: Labels) -> Series {
        let source = status.source;
        let code = status.code;
        Series {
            status: series(&self.status, status, || StatusKey {
                code,
                labels: Labels::other(),
                matched_uri: "other".to_owned(),
                matched_host: "other".to_owned(),
                source,
            }),
            latency: series(&self.latency, latency, Labels::other),
            bandwidth: series(&self.bandwidth, bandwidth, Labels::other),
        }
    }

    /// Records one finished request (the tests' shorthand).
    #[cfg(test)]
    fn record(&self, key: StatusKey, sample: &Sample) {
        let labels = key.labels.clone();
        bump(&self.series(key, labels.clone(), labels), sample);
    }

    /// The text exposition (format 0.0.4), series sorted by labels.
    pub fn render(&self) -> String {
        fn sorted<K: Clone + Ord, V>(map: &RwLock<HashMap<K, Arc<V>>>) -> Vec<(K, Arc<V>)> {
            let mut all: Vec<(K, Arc<V>)> = map
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        }
        let mut out = String::new();
        let latency = sorted(&self.latency);
        let bandwidth = sorted(&self.bandwidth);
        let status = sorted(&self.status);

        out.push_str("# HELP apisix_bandwidth Total bandwidth in bytes consumed per service in APISIX\n# TYPE apisix_bandwidth counter\n");
        for (kind, count) in [
            (
                "egress",
                (|b: &Bandwidth| &b.egress) as fn(&Bandwidth) -> &AtomicU64,
            ),
            ("ingress", |b: &Bandwidth| &b.ingress),
        ] {
            for (l, b) in &bandwidth {
                let _ = writeln!(
                    out,
                    "apisix_bandwidth{{type=\"{kind}\",{},{}}} {}",
                    labels(l),
                    fixed(l),
                    count(b).load(Ordering::Relaxed)
                );
            }
        }
        let mut batches: std::collections::BTreeMap<(&str, &str, &str), usize> =
            std::collections::BTreeMap::new();
        let watched = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        for b in watched.iter() {
            if let Some(queue) = b.queue.upgrade() {
                *batches
                    .entry((&b.name, &b.route_id, &b.server_addr))
                    .or_default() += queue.entries();
            }
        }
        if !batches.is_empty() {
            out.push_str("# HELP apisix_batch_process_entries batch process remaining entries\n# TYPE apisix_batch_process_entries gauge\n");
        }
        for ((name, route_id, server_addr), entries) in batches {
            let _ = writeln!(
                out,
                "apisix_batch_process_entries{{name=\"{}\",route_id=\"{}\",server_addr=\"{}\"}} {entries}",
                escape(name),
                escape(route_id),
                escape(server_addr)
            );
        }
        drop(watched);
        out.push_str("# HELP apisix_http_latency HTTP request latency in milliseconds per service in APISIX\n# TYPE apisix_http_latency histogram\n");
        for (l, t) in &latency {
            let l = format!("{},{}", labels(l), fixed(l));
            for (kind, h) in [
                ("apisix", &t.apisix),
                ("request", &t.request),
                ("upstream", &t.upstream),
            ] {
                render_histogram(&mut out, kind, &l, h);
            }
        }
        out.push_str("# HELP apisix_http_status HTTP status codes per service in APISIX\n# TYPE apisix_http_status counter\n");
        for (k, n) in &status {
            let _ = writeln!(
                out,
                "apisix_http_status{{code=\"{}\",route=\"{}\",matched_uri=\"{}\",matched_host=\"{}\",service=\"{}\",consumer=\"{}\",node=\"{}\",{},response_source=\"{}\"}} {}",
                k.code,
                escape(&k.labels.route),
                escape(&k.matched_uri),
                escape(&k.matched_host),
                escape(&k.labels.service),
                escape(&k.labels.consumer),
                escape(&k.labels.node),
                fixed(&k.labels),
                k.source.map_or("", Source::as_str),
                n.load(Ordering::Relaxed),
            );
        }
        out
    }
}

/// The labels every request has the same value for here (no AI proxying), `request_type`
/// emptied when the metadata says so.
fn fixed(l: &Labels) -> &'static str {
    if l.request_type {
        FIXED
    } else {
        r#"request_type="",request_llm_model="",llm_model="""#
    }
}

/// One `apisix_http_latency` histogram of `type="kind"`; none before its first observation (an
/// `upstream` one exists once an upstream answered).
fn render_histogram(out: &mut String, kind: &str, l: &str, h: &Histogram) {
    let count = h.count.load(Ordering::Relaxed);
    if count == 0 {
        return;
    }
    let mut cumulative = 0;
    for (b, n) in BUCKETS.iter().zip(&h.buckets) {
        cumulative += n.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "apisix_http_latency_bucket{{type=\"{kind}\",{l},le=\"{b}\"}} {cumulative}"
        );
    }
    let sum_us = h.sum_us.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "apisix_http_latency_bucket{{type=\"{kind}\",{l},le=\"+Inf\"}} {count}\n\
         apisix_http_latency_sum{{type=\"{kind}\",{l}}} {}.{:03}\n\
         apisix_http_latency_count{{type=\"{kind}\",{l}}} {count}",
        sum_us / 1000,
        sum_us % 1000
    );
}

/// `route`, `service`, `consumer` and `node`, as label pairs.
fn labels(l: &Labels) -> String {
    format!(
        "route=\"{}\",service=\"{}\",consumer=\"{}\",node=\"{}\"",
        escape(&l.route),
        escape(&l.service),
        escape(&l.consumer),
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
    fn phases(&self) -> Phases {
        Phases::LOG
    }

    fn prefers_route(&self) -> bool {
        true
    }

    fn log(&self, done: &LogCtx<'_>) {
        let req = done.request;
        let route = match (&req.route_name, self.prefer_name) {
            (Some(name), true) if !name.is_empty() => name.as_str(),
            _ => req.route_id.as_str(),
        };
        // The node that answered (its address), else the one that failed.
        let answered = done.state.get::<Balancer>();
        let node = match answered {
            Some(b) => b.ip.as_str(),
            None => done.upstream.map(node_host).unwrap_or(""),
        };
        let source = match (answered, done.upstream_status) {
            (Some(_), _) => Source::Upstream,
            (None, Some(_)) => Source::Nginx,
            (None, None) => Source::Apisix,
        };
        let service = match (&req.service_name, self.prefer_name) {
            (Some(name), true) if !name.is_empty() => name.as_str(),
            _ => req.service_id.as_deref().unwrap_or(""),
        };
        let values = Values {
            code: done.status.as_u16(),
            route,
            matched_uri: &req.matched_uri,
            matched_host: &req.matched_host,
            service,
            consumer: done.consumer_name.unwrap_or(""),
            node,
            source,
        };
        let sample = Sample {
            latency: done.latency,
            upstream: answered.map(|b| b.time),
            received: req.request_length,
            bytes: done.bytes_sent,
        };
        let recent = self.recent.load();
        if let Some(r) = recent.iter().find(|r| values.is(&r.key)) {
            bump(&r.series, &sample);
            return;
        }
        let d = self.disabled;
        let series = self.metrics.series(
            values.key(d.status),
            values.labels(d.latency),
            values.labels(d.bandwidth),
        );
        bump(&series, &sample);
        if recent.len() < RECENT {
            let entry = Recent {
                key: values.key(0),
                series,
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
    pub upstreams: Vec<Arc<HealthChecker>>,
    /// Connection and request counts of the proxy listeners.
    pub counts: CountsNow,
    /// Whether etcd is reachable; `None` when the gateway does not use etcd.
    pub etcd_reachable: Option<bool>,
}

/// Connection and request counts of the proxy listeners at one moment, as nginx's stub_status
/// reports them (the server keeps the live counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountsNow {
    /// Connections accepted (plain and TLS) since start.
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Requests received since start.
    pub requests: u64,
    /// Requests being handled now (until their response head is ready).
    pub in_flight: u64,
}

/// Serves the exporter on `listener` until `stop` completes: `GET uri` answers `metrics` (its
/// gateway's), with the node-level ones from `node()`.
pub async fn serve(
    listener: TcpListener,
    uri: String,
    metrics: Arc<Metrics>,
    node: impl Fn() -> NodeStatus + Send + Sync + 'static,
    stop: impl Future<Output = ()>,
) {
    listener::serve(
        listener,
        "prometheus exporter",
        move |req, _| {
            let reply = answer(req.method(), req.uri().path(), &uri, &metrics, &node());
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
    let _ = write!(
        out,
        "# HELP apisix_node_info Info of APISIX node
# TYPE apisix_node_info gauge
apisix_node_info{{hostname=\"{}\",version=\"{}\"}} 1
",
        escape(plugins::support::log_entry::hostname()),
        env!("CARGO_PKG_VERSION")
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
pub fn render_upstream_status(checkers: &[Arc<HealthChecker>]) -> String {
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

fn answer(
    method: &Method,
    path: &str,
    uri: &str,
    metrics: &Metrics,
    node: &NodeStatus,
) -> FullResponse {
    if (method != Method::GET && method != Method::HEAD) || path != uri {
        return json(StatusCode::NOT_FOUND, r#"{"error_msg":"not found"}"#);
    }
    let mut text = metrics.render();
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
    use plugin_api::PluginKind;
    use serde_json::json;

    fn key(route: &str, code: u16) -> StatusKey {
        StatusKey {
            code,
            labels: Labels {
                route: route.to_owned(),
                service: "s".to_owned(),
                consumer: "jack".to_owned(),
                node: "10.0.0.1".to_owned(),
                request_type: true,
            },
            matched_uri: String::new(),
            matched_host: String::new(),
            source: Some(Source::Upstream),
        }
    }

    fn sample(latency_us: u64, upstream_us: Option<u64>, bytes: u64) -> Sample {
        Sample {
            latency: Duration::from_micros(latency_us),
            upstream: upstream_us.map(Duration::from_micros),
            received: bytes * 2,
            bytes,
        }
    }

    #[test]
    fn records_and_renders() {
        let m = Metrics::default();
        m.record(key("r", 200), &sample(1_500, Some(500), 10));
        m.record(key("r", 200), &sample(1_000, Some(1_200), 5));
        let mut plugin_answered = key("r", 404);
        plugin_answered.source = Some(Source::Apisix);
        m.record(plugin_answered, &sample(70_000_000, None, 0));
        let text = m.render();
        let has = |line: &str| assert!(text.lines().any(|x| x == line), "{line} in\n{text}");
        let fixed = r#"request_type="traditional_http",request_llm_model="",llm_model="""#;
        let common = format!(r#"route="r",service="s",consumer="jack",node="10.0.0.1",{fixed}"#);
        has(&format!(
            r#"apisix_http_status{{code="200",route="r",matched_uri="",matched_host="",service="s",consumer="jack",node="10.0.0.1",{fixed},response_source="upstream"}} 2"#
        ));
        has(&format!(
            r#"apisix_http_status{{code="404",route="r",matched_uri="",matched_host="",service="s",consumer="jack",node="10.0.0.1",{fixed},response_source="apisix"}} 1"#
        ));
        has(&format!(r#"apisix_bandwidth{{type="egress",{common}}} 15"#));
        has(&format!(
            r#"apisix_bandwidth{{type="ingress",{common}}} 30"#
        ));
        let req = format!(r#"type="request",{common}"#);
        has(&format!(r#"apisix_http_latency_bucket{{{req},le="1"}} 1"#));
        has(&format!(r#"apisix_http_latency_bucket{{{req},le="2"}} 2"#));
        has(&format!(
            r#"apisix_http_latency_bucket{{{req},le="60000"}} 2"#
        ));
        has(&format!(
            r#"apisix_http_latency_bucket{{{req},le="+Inf"}} 3"#
        ));
        has(&format!(r#"apisix_http_latency_sum{{{req}}} 70002.500"#));
        has(&format!(r#"apisix_http_latency_count{{{req}}} 3"#));
        // Only the requests an upstream answered have an upstream latency.
        let up = format!(r#"type="upstream",{common}"#);
        has(&format!(r#"apisix_http_latency_count{{{up}}} 2"#));
        has(&format!(r#"apisix_http_latency_sum{{{up}}} 1.700"#));
        // apisix = request - upstream, at least 0: 1.0 ms, 0 ms, 70000 ms.
        let own = format!(r#"type="apisix",{common}"#);
        has(&format!(r#"apisix_http_latency_count{{{own}}} 3"#));
        has(&format!(r#"apisix_http_latency_sum{{{own}}} 70001.000"#));
        has(&format!(r#"apisix_http_latency_bucket{{{own},le="1"}} 2"#));
        assert!(text.contains("# TYPE apisix_http_latency histogram\n"));
    }

    #[test]
    fn label_sets_are_bounded() {
        let m = Metrics::default();
        for i in 0..MAX_SERIES + 5 {
            m.record(key(&i.to_string(), 200), &sample(1, None, 1));
        }
        assert_eq!(m.status.read().expect("lock").len(), MAX_SERIES + 1);
        assert_eq!(m.latency.read().expect("lock").len(), MAX_SERIES + 1);
        assert_eq!(m.bandwidth.read().expect("lock").len(), MAX_SERIES + 1);
        let text = m.render();
        assert!(text.contains(
            "apisix_http_status{code=\"200\",route=\"other\",matched_uri=\"other\",matched_host=\"other\",service=\"other\",consumer=\"other\",node=\"other\","
        ), "{text}");
        assert!(text.contains("response_source=\"upstream\"} 5\n"));
        // Known label sets still count on their own.
        m.record(key("0", 200), &sample(1, None, 1));
        assert!(m.render().contains(
            "apisix_http_status{code=\"200\",route=\"0\",matched_uri=\"\",matched_host=\"\",service=\"s\",consumer=\"jack\",node=\"10.0.0.1\","
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
        let kind = Prometheus::default();
        assert!(kind.build(&json!({})).is_ok());
        assert!(kind.build(&json!({"prefer_name": true})).is_ok());
        assert!(kind.build(&json!({"prefer_name": 1})).is_err());
        assert!(kind.build(&json!({"x": 1})).is_err());
        let uri = "/apisix/prometheus/metrics";
        let none = NodeStatus::default();
        let m = Metrics::default();
        assert_eq!(
            answer(&Method::GET, uri, uri, &m, &none).status(),
            StatusCode::OK
        );
        assert_eq!(
            answer(&Method::GET, "/other", uri, &m, &none).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            answer(&Method::POST, uri, uri, &m, &none).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn disabled_labels_are_emptied_per_metric() {
        let metrics = Arc::new(Metrics::default());
        let kind = Prometheus::new(metrics.clone());
        let metadata = json!({"disabled_labels": {"http_status": ["route", "node", "response_source"], "bandwidth": ["node", "request_type"]}});
        let checked = kind.check_metadata(&metadata).expect("valid");
        let mut set = plugin_api::metadata::MetadataSet::default();
        set.set("prometheus", checked);
        let ctx = BuildContext {
            metadata: set,
            ..BuildContext::default()
        };
        let plugin = kind.build_with(&json!({}), &ctx).expect("valid");
        let mut state = http::Extensions::new();
        state.insert(Balancer {
            ip: "127.0.0.1".to_owned(),
            port: 1980,
            time: Duration::from_millis(1),
        });
        for _ in 0..2 {
            plugin_api::testing::log(&*plugin, 200, &state);
        }
        let text = metrics.render();
        let has = |line: &str| assert!(text.lines().any(|x| x == line), "{line} in\n{text}");
        has(
            r#"apisix_http_status{code="200",route="",matched_uri="",matched_host="",service="",consumer="",node="",request_type="traditional_http",request_llm_model="",llm_model="",response_source=""} 2"#,
        );
        has(
            r#"apisix_http_latency_count{type="request",route="1",service="",consumer="",node="127.0.0.1",request_type="traditional_http",request_llm_model="",llm_model=""} 2"#,
        );
        has(
            r#"apisix_bandwidth{type="ingress",route="1",service="",consumer="",node="",request_type="",request_llm_model="",llm_model=""} 0"#,
        );
        // Another gateway's kind records apart.
        assert!(!Metrics::default().render().contains("route=\"1\""));
    }

    #[test]
    fn metadata_is_checked_against_its_schema() {
        let kind = Prometheus::default();
        assert!(kind.metadata_schema().is_some());
        assert!(kind
            .check_metadata(
                &json!({"disabled_labels": {"http_latency": ["node"], "llm_latency": ["node"]}})
            )
            .is_ok());
        let err = kind
            .check_metadata(&json!({"disabled_labels": {"http_status": ["code"]}}))
            .expect_err("a structural label");
        assert!(err.contains("failed to validate item 1"), "{err}");
        let err = kind
            .check_metadata(&json!({"disabled_labels": {"unknown_metric": ["node"]}}))
            .expect_err("an unknown metric");
        assert!(err.contains("additional properties forbidden"), "{err}");
    }

    #[test]
    fn node_metrics() {
        let node = NodeStatus {
            upstreams: Vec::new(),
            counts: CountsNow {
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
            &format!(
                "apisix_node_info{{hostname=\"{}\",version=\"{}\"}} 1",
                plugins::support::log_entry::hostname(),
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let without_etcd = render_node(&NodeStatus::default());
        assert!(!without_etcd.contains("apisix_etcd_reachable"));
    }
}
