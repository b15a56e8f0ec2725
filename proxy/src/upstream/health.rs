//! Health of upstream nodes: per-node state, active probes and passive counting
//! (lua-resty-healthcheck's model, as APISIX uses it).
//!
//! Every upstream with `checks` has one [`HealthChecker`], keyed like its backend
//! (`/apisix/upstreams/1`, `/apisix/routes/1` for an inline upstream). It owns one [`NodeHealth`]
//! per node (by host and port), shared by every backend built from that upstream and read by the
//! balancer on each pick (one atomic load per node).
//!
//! State: a node is `healthy`, `mostly_healthy` (healthy, with failures counted),
//! `mostly_unhealthy` (unhealthy, with successes counted) or `unhealthy`. A success resets the
//! failure counters and a failure the success counter; when a counter reaches its threshold the
//! node flips and every counter is reset. A threshold of 0 disables that counter. Reports that
//! cannot change anything (a success on a healthy node) take no lock.
//!
//! Lifecycle (see [`Registry`]): the snapshot builder asks for the checker of an upstream when it
//! builds its backend, so a checker starts as soon as a snapshot with the upstream is built, not
//! on the first request. A backend rebuilt with the same `checks` keeps the checker and the state
//! of the nodes it keeps; removed nodes stop being probed at once. Changed `checks` replace the
//! checker (fresh state); an upstream no route uses any more stops its checker.
//!
//! Active probes run in one tokio task per checker: each node is probed every
//! `healthy.interval` while healthy and `unhealthy.interval` while not, at most `concurrency` at
//! a time, each bounded by `timeout`, on a fresh connection (never a pooled one).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONNECTION, HOST};
use http::{Method, Request, Uri};
use serde::Serialize;
use tokio::sync::Notify;

use super::body::BodySlot;
use super::client::{ClientCache, ClientKey, HttpClient};
use model::{self, Checks, ProbeKind};

/// The four states of lua-resty-healthcheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Healthy, no failure counted.
    Healthy,
    /// Healthy, with failures counted.
    MostlyHealthy,
    /// Unhealthy, with successes counted.
    MostlyUnhealthy,
    /// Unhealthy, no success counted.
    Unhealthy,
}

impl Status {
    fn from_u8(v: u8) -> Status {
        match v {
            1 => Status::MostlyHealthy,
            2 => Status::MostlyUnhealthy,
            3 => Status::Unhealthy,
            _ => Status::Healthy,
        }
    }

    /// Whether the balancer may pick the node.
    pub fn is_healthy(self) -> bool {
        matches!(self, Status::Healthy | Status::MostlyHealthy)
    }

    /// The name used by the control API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::MostlyHealthy => "mostly_healthy",
            Status::MostlyUnhealthy => "mostly_unhealthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// What one probe or request said about a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A status in the `healthy.http_statuses` list (or a TCP connect that worked).
    Success,
    /// A status in the `unhealthy.http_statuses` list.
    HttpFailure,
    /// No connection, or it broke.
    TcpFailure,
    /// No answer in time.
    Timeout,
}

/// The counters shown by the control API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Successes since the last failure.
    pub success: u32,
    /// HTTP failures since the last success.
    pub http_failure: u32,
    /// TCP failures since the last success.
    pub tcp_failure: u32,
    /// Timeouts since the last success.
    pub timeout_failure: u32,
}

/// When counters flip a node (0 = that counter is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Successes that make a node healthy.
    pub successes: u32,
    /// HTTP failures that make it unhealthy.
    pub http_failures: u32,
    /// TCP failures that make it unhealthy.
    pub tcp_failures: u32,
    /// Timeouts that make it unhealthy.
    pub timeouts: u32,
}

impl Thresholds {
    fn limit(&self, outcome: Outcome) -> u32 {
        match outcome {
            Outcome::Success => self.successes,
            Outcome::HttpFailure => self.http_failures,
            Outcome::TcpFailure => self.tcp_failures,
            Outcome::Timeout => self.timeouts,
        }
    }
}

/// The health of one node (host and port as configured).
#[derive(Debug)]
pub struct NodeHealth {
    /// Host as configured (IPv6 in brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    state: AtomicU8,
    counters: Mutex<Counters>,
}

impl NodeHealth {
    /// A healthy node with zero counters.
    pub fn new(host: String, port: u16) -> NodeHealth {
        NodeHealth {
            host,
            port,
            state: AtomicU8::new(Status::Healthy as u8),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// The current state.
    pub fn status(&self) -> Status {
        Status::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether the balancer may pick the node.
    pub fn is_healthy(&self) -> bool {
        self.status().is_healthy()
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        *self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts `outcome` against `limits`. Returns the new healthiness when the node flipped.
    pub fn report(&self, outcome: Outcome, limits: &Thresholds) -> Option<bool> {
        let limit = limits.limit(outcome);
        if limit == 0 {
            return None;
        }
        let success = outcome == Outcome::Success;
        // Nothing to count: a success on a fully healthy node, a failure on a fully unhealthy one.
        let fully = if success {
            Status::Healthy
        } else {
            Status::Unhealthy
        };
        if self.status() == fully {
            return None;
        }
        // Any counter values are valid, so a poisoned lock is reused.
        let mut c = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.status();
        if current == fully {
            return None;
        }
        let count = if success {
            *c = Counters {
                success: c.success.saturating_add(1),
                ..Counters::default()
            };
            c.success
        } else {
            c.success = 0;
            let slot = match outcome {
                Outcome::HttpFailure => &mut c.http_failure,
                Outcome::TcpFailure => &mut c.tcp_failure,
                _ => &mut c.timeout_failure,
            };
            *slot = slot.saturating_add(1);
            *slot
        };
        let next = if count >= limit {
            *c = Counters::default();
            fully
        } else if success {
            if current.is_healthy() {
                current
            } else {
                Status::MostlyUnhealthy
            }
        } else if current.is_healthy() {
            Status::MostlyHealthy
        } else {
            current
        };
        self.state.store(next as u8, Ordering::Release);
        (next.is_healthy() != current.is_healthy()).then_some(next.is_healthy())
    }
}

/// The health checker of one upstream.
pub struct HealthChecker {
    key: String,
    checks: Checks,
    active: Thresholds,
    passive: Option<Thresholds>,
    /// The nodes probed now.
    targets: ArcSwap<Vec<Arc<NodeHealth>>>,
    /// Wakes the probe task when the targets change.
    changed: Arc<Notify>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for HealthChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthChecker")
            .field("key", &self.key)
            .finish()
    }
}

impl HealthChecker {
    /// A checker for `checks` (not probing yet: see [`HealthChecker::start`]).
    pub fn new(key: String, checks: Checks) -> HealthChecker {
        let active = checks.active.as_ref().map_or(
            Thresholds {
                successes: 0,
                http_failures: 0,
                tcp_failures: 0,
                timeouts: 0,
            },
            |a| Thresholds {
                successes: a.healthy.successes,
                http_failures: a.unhealthy.http_failures,
                tcp_failures: a.unhealthy.tcp_failures,
                timeouts: a.unhealthy.timeouts,
            },
        );
        let passive = checks.passive.as_ref().map(|p| Thresholds {
            successes: p.healthy.successes,
            http_failures: p.unhealthy.http_failures,
            tcp_failures: p.unhealthy.tcp_failures,
            timeouts: p.unhealthy.timeouts,
        });
        HealthChecker {
            key,
            checks,
            active,
            passive,
            targets: ArcSwap::from_pointee(Vec::new()),
            changed: Arc::new(Notify::new()),
            task: Mutex::new(None),
        }
    }

    /// The upstream key (`/apisix/upstreams/1`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The config it runs.
    pub fn checks(&self) -> &Checks {
        &self.checks
    }

    /// The nodes probed now, in the upstream's order.
    pub fn targets(&self) -> Arc<Vec<Arc<NodeHealth>>> {
        self.targets.load_full()
    }

    /// Makes `nodes` the probed set and returns their health, in the same order: nodes already
    /// known keep their state, others start healthy, and nodes not listed are no longer probed.
    pub fn set_targets(&self, nodes: &[(String, u16)]) -> Vec<Arc<NodeHealth>> {
        let old = self.targets.load();
        let mut seen: Vec<Arc<NodeHealth>> = Vec::with_capacity(nodes.len());
        let health: Vec<Arc<NodeHealth>> = nodes
            .iter()
            .map(|(host, port)| {
                let found = seen
                    .iter()
                    .chain(old.iter())
                    .find(|t| t.host == *host && t.port == *port)
                    .cloned();
                let t = found.unwrap_or_else(|| Arc::new(NodeHealth::new(host.clone(), *port)));
                if !seen.iter().any(|s| Arc::ptr_eq(s, &t)) {
                    seen.push(t.clone());
                }
                t
            })
            .collect();
        self.targets.store(Arc::new(seen));
        self.changed.notify_one();
        health
    }

    /// Counts the outcome of a real request (passive checks; nothing without them).
    pub fn report_passive(&self, node: &NodeHealth, outcome: Outcome) {
        if let Some(limits) = &self.passive {
            if let Some(healthy) = node.report(outcome, limits) {
                log_flip(&self.key, node, healthy, outcome, "passive");
            }
        }
    }

    /// Counts the status of a real request against the passive lists.
    pub fn report_passive_status(&self, node: &NodeHealth, status: u16) {
        let Some(passive) = &self.checks.passive else {
            return;
        };
        if passive.kind == ProbeKind::Tcp {
            return;
        }
        if passive.healthy.http_statuses.contains(&status) {
            self.report_passive(node, Outcome::Success);
        } else if passive.unhealthy.http_statuses.contains(&status) {
            self.report_passive(node, Outcome::HttpFailure);
        }
    }

    /// Starts the probe task on the current tokio runtime (none: not started, with a warning).
    /// `client` sends HTTP(S) probes.
    pub fn start(self: &Arc<Self>, client: Option<HttpClient>) {
        let Some(active) = self.checks.active.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(upstream = %self.key, "no runtime: active health checks not started");
            return;
        };
        let prober = Prober::new(active, client);
        let handle = runtime.spawn(probe_loop(Arc::downgrade(self), prober));
        let old = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(handle.abort_handle());
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Stops probing (state stays readable).
    pub fn stop(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }

    /// The control API's view: `{name, type, nodes: [{ip, port, hostname, status, counter}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .targets()
            .iter()
            .map(|t| {
                serde_json::json!({
                    "ip": t.host,
                    "port": t.port,
                    "hostname": t.host,
                    "status": t.status().as_str(),
                    "counter": t.counters(),
                })
            })
            .collect();
        serde_json::json!({
            "name": self.key,
            "type": self.checks.kind().as_str(),
            "nodes": nodes,
        })
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_flip(key: &str, node: &NodeHealth, healthy: bool, outcome: Outcome, by: &str) {
    if healthy {
        tracing::info!(upstream = %key, node = %format!("{}:{}", node.host, node.port), by, "upstream node is healthy again");
    } else {
        tracing::warn!(upstream = %key, node = %format!("{}:{}", node.host, node.port), by, last = ?outcome, "upstream node is unhealthy");
    }
}

/// Sends active probes of one checker.
struct Prober {
    active: model::ActiveCheck,
    client: Option<HttpClient>,
    headers: HeaderMap,
    body: Bytes,
    method: Method,
    timeout: Duration,
}

impl Prober {
    fn new(active: model::ActiveCheck, client: Option<HttpClient>) -> Prober {
        let mut headers = HeaderMap::new();
        for line in &active.req_headers {
            if let Some((name, value)) = model::parse_header(line) {
                headers.append(name, value);
            }
        }
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("ferrogate-healthcheck/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(host) = active
            .host
            .as_deref()
            .and_then(|h| HeaderValue::from_str(h).ok())
        {
            headers.insert(HOST, host);
        }
        Prober {
            body: Bytes::from(active.http_req_body.clone()),
            method: Method::from_bytes(active.http_method.as_bytes()).unwrap_or(Method::GET),
            timeout: Duration::try_from_secs_f64(active.timeout).unwrap_or(Duration::from_secs(1)),
            headers,
            client,
            active,
        }
    }

    fn interval(&self, healthy: bool) -> Duration {
        let secs = if healthy {
            self.active.healthy.interval
        } else {
            self.active.unhealthy.interval
        };
        Duration::try_from_secs_f64(secs.max(model::checks::MIN_INTERVAL))
            .unwrap_or(Duration::from_secs(1))
    }

    /// One probe; `None` when the answer counts neither way.
    async fn probe(&self, node: &NodeHealth) -> Option<Outcome> {
        let port = self.active.port.unwrap_or(node.port);
        match tokio::time::timeout(self.timeout, self.send(node, port)).await {
            Ok(outcome) => outcome,
            Err(_) => Some(Outcome::Timeout),
        }
    }

    async fn send(&self, node: &NodeHealth, port: u16) -> Option<Outcome> {
        if self.active.kind == ProbeKind::Tcp {
            let host = node.host.trim_start_matches('[').trim_end_matches(']');
            return Some(match tokio::net::TcpStream::connect((host, port)).await {
                Ok(_) => Outcome::Success,
                Err(_) => Outcome::TcpFailure,
            });
        }
        let Some(client) = &self.client else {
            return Some(Outcome::TcpFailure);
        };
        let scheme = if self.active.kind == ProbeKind::Https {
            "https"
        } else {
            "http"
        };
        let uri: Uri = format!("{scheme}://{}:{port}{}", node.host, self.active.http_path)
            .parse()
            .ok()?;
        let body = BodySlot::from_bytes(self.body.clone()).replay()?;
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers.clone();
        if !self.body.is_empty() {
            request.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                HeaderValue::from(self.body.len()),
            );
        }
        match client.request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                if self.active.healthy.http_statuses.contains(&status) {
                    Some(Outcome::Success)
                } else if self.active.unhealthy.http_statuses.contains(&status) {
                    Some(Outcome::HttpFailure)
                } else {
                    None
                }
            }
            Err(_) => Some(Outcome::TcpFailure),
        }
    }
}

/// Probes the checker's targets until the checker is dropped or stopped.
async fn probe_loop(checker: Weak<HealthChecker>, prober: Prober) {
    let prober = Arc::new(prober);
    let concurrency = usize::try_from(prober.active.concurrency.max(1)).unwrap_or(1);
    // Next probe time per node (by address of its health; entries for dropped nodes are pruned).
    let mut next: HashMap<usize, (Weak<NodeHealth>, Instant)> = HashMap::new();
    loop {
        let Some(c) = checker.upgrade() else {
            return;
        };
        let targets = c.targets();
        let now = Instant::now();
        next.retain(|_, (w, _)| w.strong_count() > 0);
        let due: Vec<Arc<NodeHealth>> = targets
            .iter()
            .filter(|t| {
                next.get(&(Arc::as_ptr(t) as usize))
                    .is_none_or(|(_, at)| *at <= now)
            })
            .cloned()
            .collect();
        let mut running = tokio::task::JoinSet::new();
        for node in due {
            while running.len() >= concurrency {
                if let Some(Ok((node, outcome))) = running.join_next().await {
                    record(&c, &prober, &mut next, node, outcome);
                }
            }
            let prober = prober.clone();
            running.spawn(async move {
                let outcome = prober.probe(&node).await;
                (node, outcome)
            });
        }
        while let Some(done) = running.join_next().await {
            if let Ok((node, outcome)) = done {
                record(&c, &prober, &mut next, node, outcome);
            }
        }
        let wake = targets
            .iter()
            .filter_map(|t| next.get(&(Arc::as_ptr(t) as usize)).map(|(_, at)| *at))
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        // Sleep without holding the checker, so dropping it ends the loop.
        let changed = c.changed.clone();
        drop(c);
        drop(targets);
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = changed.notified() => {}
        }
    }
}

fn record(
    checker: &HealthChecker,
    prober: &Prober,
    next: &mut HashMap<usize, (Weak<NodeHealth>, Instant)>,
    node: Arc<NodeHealth>,
    outcome: Option<Outcome>,
) {
    if let Some(outcome) = outcome {
        if let Some(healthy) = node.report(outcome, &checker.active) {
            log_flip(&checker.key, &node, healthy, outcome, "active");
        }
    }
    let at = Instant::now() + prober.interval(node.is_healthy());
    next.insert(Arc::as_ptr(&node) as usize, (Arc::downgrade(&node), at));
}

/// The checkers of one builder, by upstream key.
pub struct Registry {
    checkers: HashMap<String, Arc<HealthChecker>>,
    enabled: bool,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            checkers: HashMap::new(),
            enabled: true,
        }
    }
}

impl Registry {
    /// Turns health checking on or off (off: no checker, every node counts as healthy).
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
        if !on {
            self.retain(|_| false);
        }
    }

    /// The checker for upstream `key` as `definition` configures it: the running one while its
    /// `checks` are unchanged, else a new one, started now. None (and any old one stopped) when
    /// the upstream has no `checks`.
    pub fn checker(
        &mut self,
        key: &str,
        definition: &model::Upstream,
        clients: &mut ClientCache,
    ) -> Option<Arc<HealthChecker>> {
        let Some(checks) = definition.checks.as_ref().filter(|_| self.enabled) else {
            if let Some(old) = self.checkers.remove(key) {
                old.stop();
            }
            return None;
        };
        if let Some(c) = self.checkers.get(key) {
            if c.checks == *checks {
                return Some(c.clone());
            }
        }
        let client = checks
            .active
            .as_ref()
            .filter(|a| a.kind != ProbeKind::Tcp)
            .and_then(|a| {
                let tls = definition.tls.as_ref();
                let client_key = ClientKey {
                    verify: a.https_verify_certificate,
                    client_cert: tls.and_then(|t| t.client_cert.clone().zip(t.client_key.clone())),
                    client_cert_id: None,
                    // `checks.active.host` names the node in the probe: SNI too.
                    sni: a.host.clone(),
                    http2: false,
                    pool_size: 0,
                    idle_timeout: Duration::ZERO,
                    connect_timeout: Duration::try_from_secs_f64(a.timeout)
                        .unwrap_or(Duration::from_secs(1)),
                };
                match clients.get(&client_key) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::error!(upstream = %key, error = %e, "cannot build the health probe client");
                        None
                    }
                }
            });
        let checker = Arc::new(HealthChecker::new(key.to_owned(), checks.clone()));
        checker.start(client);
        if let Some(old) = self.checkers.insert(key.to_owned(), checker.clone()) {
            old.stop();
        }
        Some(checker)
    }

    /// Stops and forgets the checkers whose key `keep` refuses.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.checkers.retain(|key, c| {
            let kept = keep(key);
            if !kept {
                c.stop();
            }
            kept
        });
    }

    /// Every checker, by key.
    pub fn list(&self) -> Vec<Arc<HealthChecker>> {
        let mut all: Vec<Arc<HealthChecker>> = self.checkers.values().cloned().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for c in self.checkers.values() {
            c.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Thresholds = Thresholds {
        successes: 2,
        http_failures: 3,
        tcp_failures: 2,
        timeouts: 1,
    };

    #[test]
    fn failures_flip_after_the_threshold_and_successes_bring_it_back() {
        let n = NodeHealth::new("127.0.0.1".into(), 80);
        assert_eq!(n.report(Outcome::Success, &LIMITS), None);
        assert_eq!(n.status(), Status::Healthy);
        assert_eq!(n.report(Outcome::HttpFailure, &LIMITS), None);
        assert_eq!(n.status(), Status::MostlyHealthy);
        assert!(n.is_healthy());
        assert_eq!(n.report(Outcome::HttpFailure, &LIMITS), None);
        assert_eq!(n.counters().http_failure, 2);
        assert_eq!(n.report(Outcome::HttpFailure, &LIMITS), Some(false));
        assert_eq!(n.status(), Status::Unhealthy);
        assert_eq!(n.counters(), Counters::default());
        // Failures on an unhealthy node count nothing.
        assert_eq!(n.report(Outcome::TcpFailure, &LIMITS), None);
        assert_eq!(n.counters(), Counters::default());
        assert_eq!(n.report(Outcome::Success, &LIMITS), None);
        assert_eq!(n.status(), Status::MostlyUnhealthy);
        assert!(!n.is_healthy());
        assert_eq!(n.report(Outcome::Success, &LIMITS), Some(true));
        assert_eq!(n.status(), Status::Healthy);
    }

    #[test]
    fn a_success_resets_failures_and_a_failure_resets_successes() {
        let n = NodeHealth::new("a".into(), 1);
        n.report(Outcome::TcpFailure, &LIMITS);
        assert_eq!(n.counters().tcp_failure, 1);
        n.report(Outcome::Success, &LIMITS);
        assert_eq!(n.counters().tcp_failure, 0);
        assert_eq!(n.status(), Status::MostlyHealthy);
        n.report(Outcome::TcpFailure, &LIMITS);
        assert_eq!(n.counters().success, 0);
        assert_eq!(n.report(Outcome::TcpFailure, &LIMITS), Some(false));
        n.report(Outcome::Success, &LIMITS);
        n.report(Outcome::Timeout, &LIMITS);
        assert_eq!(n.counters().success, 0, "a failure resets successes");
        // The timeout reached its threshold (1): back to fully unhealthy.
        assert_eq!(n.status(), Status::Unhealthy);
    }

    #[test]
    fn kinds_count_separately_and_zero_disables() {
        let n = NodeHealth::new("a".into(), 1);
        n.report(Outcome::HttpFailure, &LIMITS);
        n.report(Outcome::HttpFailure, &LIMITS);
        n.report(Outcome::TcpFailure, &LIMITS);
        assert!(n.is_healthy(), "2 http + 1 tcp is under both thresholds");
        assert_eq!(n.report(Outcome::Timeout, &LIMITS), Some(false));
        let off = Thresholds {
            timeouts: 0,
            ..LIMITS
        };
        let m = NodeHealth::new("b".into(), 1);
        for _ in 0..10 {
            assert_eq!(m.report(Outcome::Timeout, &off), None);
        }
        assert_eq!(m.status(), Status::Healthy);
    }

    #[test]
    fn targets_keep_state_of_kept_nodes() {
        let c = HealthChecker::new(
            "/apisix/upstreams/1".into(),
            serde_json::from_str(r#"{"active":{}}"#).expect("checks"),
        );
        let first = c.set_targets(&[("a".into(), 1), ("b".into(), 2)]);
        first[1].report(Outcome::Timeout, &LIMITS);
        assert!(!first[1].is_healthy());
        let second = c.set_targets(&[("b".into(), 2), ("c".into(), 3)]);
        assert!(Arc::ptr_eq(&first[1], &second[0]));
        assert!(!second[0].is_healthy());
        assert!(second[1].is_healthy());
        let probed: Vec<String> = c.targets().iter().map(|t| t.host.clone()).collect();
        assert_eq!(probed, vec!["b", "c"], "a removed node is no longer probed");
        let json = c.to_json();
        assert_eq!(json["name"], "/apisix/upstreams/1");
        assert_eq!(json["type"], "http");
        assert_eq!(json["nodes"][0]["status"], "unhealthy");
        assert_eq!(json["nodes"][1]["counter"]["success"], 0);
    }

    #[test]
    fn passive_statuses_follow_the_lists() {
        let c = HealthChecker::new(
            "k".into(),
            serde_json::from_str(r#"{"active":{},"passive":{"unhealthy":{"http_failures":2}}}"#)
                .expect("checks"),
        );
        let n = c.set_targets(&[("a".into(), 1)]);
        c.report_passive_status(&n[0], 500);
        c.report_passive_status(&n[0], 404);
        assert!(n[0].is_healthy());
        c.report_passive_status(&n[0], 500);
        assert!(!n[0].is_healthy());
    }
}
