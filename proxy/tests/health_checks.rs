//! Health checks and `retry_on` against real upstream nodes that are killed (listener and every
//! connection dropped) and restarted on the same port.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;
use tokio::task::{JoinHandle, JoinSet};

/// An upstream node that can be killed and restarted on the same port. Traffic is answered with
/// `status`, `/health` with `health`.
struct Node {
    name: &'static str,
    port: u16,
    status: Arc<AtomicU16>,
    health: Arc<AtomicU16>,
    /// Requests to `/health`.
    probes: Arc<AtomicUsize>,
    /// Other requests.
    hits: Arc<AtomicUsize>,
    /// Method, Host and `X-Probe` of the last `/health` request.
    last_probe: Arc<Mutex<Option<(String, String, String)>>>,
    task: Option<JoinHandle<()>>,
}

impl Node {
    async fn start(name: &'static str) -> Node {
        let mut node = Node {
            name,
            port: 0,
            status: Arc::new(AtomicU16::new(200)),
            health: Arc::new(AtomicU16::new(200)),
            probes: Arc::default(),
            hits: Arc::default(),
            last_probe: Arc::default(),
            task: None,
        };
        node.listen().await;
        node
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn listen(&mut self) {
        let mut tries = 0;
        let listener = loop {
            let socket = TcpSocket::new_v4().expect("socket");
            socket.set_reuseaddr(true).expect("reuseaddr");
            let bound = socket
                .bind(format!("127.0.0.1:{}", self.port).parse().expect("addr"))
                .and_then(|()| socket.listen(128));
            match bound {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.port),
            }
        };
        self.port = listener.local_addr().expect("addr").port();
        let (name, status, health, probes, hits, last_probe) = (
            self.name,
            self.status.clone(),
            self.health.clone(),
            self.probes.clone(),
            self.hits.clone(),
            self.last_probe.clone(),
        );
        self.task = Some(tokio::spawn(async move {
            // Dropping this task (kill) drops the set, which aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { return };
                        let (status, health, probes, hits, last_probe) = (
                            status.clone(),
                            health.clone(),
                            probes.clone(),
                            hits.clone(),
                            last_probe.clone(),
                        );
                        connections.spawn(async move {
                            let service = service_fn(move |req: Request<Incoming>| {
                                let code = if req.uri().path() == "/health" {
                                    probes.fetch_add(1, Ordering::SeqCst);
                                    let header = |n: &str| {
                                        req.headers()
                                            .get(n)
                                            .and_then(|v| v.to_str().ok())
                                            .unwrap_or("")
                                            .to_owned()
                                    };
                                    if let Ok(mut last) = last_probe.lock() {
                                        *last = Some((
                                            req.method().to_string(),
                                            header("host"),
                                            header("x-probe"),
                                        ));
                                    }
                                    health.load(Ordering::SeqCst)
                                } else {
                                    hits.fetch_add(1, Ordering::SeqCst);
                                    status.load(Ordering::SeqCst)
                                };
                                async move {
                                    Ok::<_, std::convert::Infallible>(
                                        Response::builder()
                                            .status(code)
                                            .header("x-upstream", name)
                                            .body(Full::new(Bytes::from(name)))
                                            .expect("response"),
                                    )
                                }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next() => {}
                }
            }
        }));
    }

    /// Drops the listener and every open connection.
    async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn restart(&mut self) {
        self.listen().await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

const CONTROL: &str = "apisix:\n  enable_control: true\n  control: {ip: 127.0.0.1, port: 0}\n";

fn nodes_yaml(nodes: &[&str]) -> String {
    let list: Vec<String> = nodes.iter().map(|n| format!("\"{n}\": 1")).collect();
    format!("{{{}}}", list.join(", "))
}

/// The checker of `key` from `/v1/healthcheck`: `(node, status)` pairs.
async fn statuses(gw: &TestGateway, key: &str) -> Vec<(String, String)> {
    let control = gw.gateway.control_addr().expect("control API");
    let got = get(&format!("http://{control}/v1/healthcheck")).await;
    assert_eq!(got.status, 200);
    let all = got.json();
    let Some(checker) = all
        .as_array()
        .expect("a list")
        .iter()
        .find(|c| c["name"] == key)
    else {
        return Vec::new();
    };
    checker["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                format!("{}:{}", n["ip"].as_str().unwrap_or(""), n["port"]),
                n["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn wait_for_status(gw: &TestGateway, key: &str, node: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = statuses(gw, key).await;
        if now
            .iter()
            .any(|(n, s)| n == node && want.contains(&s.as_str()))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{node} never became {want:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends GETs in a loop on one keep-alive client until stopped; returns (status, upstream) pairs.
fn load(url: String, stop: Arc<AtomicBool>) -> JoinHandle<Vec<(u16, String, Instant)>> {
    tokio::spawn(async move {
        let client = client();
        let mut seen = Vec::new();
        let mut n = 0u32;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            // Varying keys, for chash.
            let req = Request::get(format!("{url}?k={n}"))
                .body(Full::new(Bytes::new()))
                .expect("request");
            let got = send(&client, req).await;
            seen.push((
                got.status.as_u16(),
                got.header("x-upstream").unwrap_or("").to_owned(),
                Instant::now(),
            ));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen
    })
}

#[tokio::test]
async fn a_killed_node_is_ejected_and_restored_with_zero_failed_requests() {
    kill_and_restore("").await;
}

#[tokio::test]
async fn kill_and_restore_with_chash() {
    kill_and_restore("    type: chash\n    hash_on: vars\n    key: arg_k\n").await;
}

#[tokio::test]
async fn kill_and_restore_with_least_conn() {
    kill_and_restore("    type: least_conn\n").await;
}

/// Three nodes under steady GET traffic; one is killed, ejected, restarted and restored; every
/// request must succeed and the ejected node must get nothing while it is out.
async fn kill_and_restore(balancer: &str) {
    let a = Node::start("a").await;
    let mut b = Node::start("b").await;
    let c = Node::start("c").await;
    let config = format!(
        "upstreams:\n  - id: u1\n{balancer}    nodes: {}\n    checks:\n      active:\n        http_path: /health\n        timeout: 0.5\n        healthy: {{interval: 0.1, successes: 2}}\n        unhealthy: {{interval: 0.1, tcp_failures: 2}}\nroutes:\n  - id: 1\n    uri: /r\n    upstream_id: u1\n#END\n",
        nodes_yaml(&[&a.addr(), &b.addr(), &c.addr()])
    );
    let gw = gateway_with(&config, CONTROL).await;
    let key = "/apisix/upstreams/u1";
    // Eager: probed and listed before any request.
    let before = statuses(&gw, key).await;
    assert_eq!(before.len(), 3, "{before:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.probes.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no probe before traffic");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..3).map(|_| load(gw.url("/r"), stop.clone())).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    b.kill().await;
    wait_for_status(&gw, key, &b.addr(), &["unhealthy"]).await;
    let ejected = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let restarting = Instant::now();
    b.restart().await;
    wait_for_status(&gw, key, &b.addr(), &["healthy"]).await;
    let hits_at_restore = b.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);

    let mut seen = Vec::new();
    for l in loops {
        seen.extend(l.await.expect("load loop"));
    }
    let failed: Vec<_> = seen.iter().filter(|(s, _, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        seen.len()
    );
    let while_ejected: Vec<_> = seen
        .iter()
        .filter(|(_, _, at)| *at > ejected && *at < restarting)
        .collect();
    assert!(while_ejected.len() > 10, "{}", while_ejected.len());
    assert!(
        while_ejected.iter().all(|(_, up, _)| up != "b"),
        "an ejected node got traffic"
    );
    assert!(
        b.hits.load(Ordering::SeqCst) > hits_at_restore,
        "the restored node gets traffic again"
    );
}

#[tokio::test]
async fn passive_checks_eject_a_node_answering_500() {
    let a = Node::start("a").await;
    let b = Node::start("b").await;
    b.status.store(500, Ordering::SeqCst);
    // Active TCP probes rarely, so only real traffic decides here.
    let config = format!(
        "routes:\n  - id: 7\n    uri: /r\n    upstream:\n      nodes: {}\n      checks:\n        active:\n          type: tcp\n          healthy: {{interval: 100}}\n          unhealthy: {{interval: 100}}\n        passive:\n          unhealthy: {{http_failures: 2}}\n#END\n",
        nodes_yaml(&[&a.addr(), &b.addr()])
    );
    let gw = gateway_with(&config, CONTROL).await;
    let key = "/apisix/routes/7";
    // Let the first (and, at a 100 s interval, only) TCP probe pass: its success would reset
    // the failure count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut five_hundreds = 0;
    for _ in 0..10 {
        if get(&gw.url("/r")).await.status == 500 {
            five_hundreds += 1;
        }
    }
    assert_eq!(five_hundreds, 2, "the node is ejected after 2 failures");
    for _ in 0..20 {
        let got = get(&gw.url("/r")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-upstream"), Some("a"));
    }
    let now = statuses(&gw, key).await;
    assert!(now.contains(&(b.addr(), "unhealthy".to_owned())), "{now:?}");
    let control = gw.gateway.control_addr().expect("control API");
    let one = get(&format!("http://{control}/v1/healthcheck/routes/7")).await;
    assert_eq!(one.status, 200);
    let one = one.json();
    assert_eq!(one["name"], key);
    assert_eq!(one["type"], "tcp");
    assert_eq!(one["nodes"][0]["counter"]["http_failure"], 0);
    let missing = get(&format!("http://{control}/v1/healthcheck/upstreams/none")).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn tcp_checks_follow_the_listener() {
    let a = Node::start("a").await;
    let mut b = Node::start("b").await;
    let config = format!(
        "routes:\n  - id: 1\n    uri: /r\n    upstream:\n      nodes: {}\n      checks:\n        active:\n          type: tcp\n          timeout: 0.5\n          healthy: {{interval: 0.1, successes: 1}}\n          unhealthy: {{interval: 0.1, tcp_failures: 1}}\n#END\n",
        nodes_yaml(&[&a.addr(), &b.addr()])
    );
    let gw = gateway_with(&config, CONTROL).await;
    let key = "/apisix/routes/1";
    wait_for_status(&gw, key, &b.addr(), &["healthy"]).await;
    b.kill().await;
    wait_for_status(&gw, key, &b.addr(), &["unhealthy"]).await;
    for _ in 0..10 {
        assert_eq!(get(&gw.url("/r")).await.header("x-upstream"), Some("a"));
    }
    b.restart().await;
    wait_for_status(&gw, key, &b.addr(), &["healthy"]).await;
    let mut seen_b = false;
    for _ in 0..10 {
        seen_b |= get(&gw.url("/r")).await.header("x-upstream") == Some("b");
    }
    assert!(seen_b);
    assert_eq!(
        b.probes.load(Ordering::SeqCst),
        0,
        "TCP checks send no HTTP"
    );
}

#[tokio::test]
async fn all_unhealthy_falls_back_to_all_nodes() {
    let a = Node::start("a").await;
    let b = Node::start("b").await;
    a.health.store(503, Ordering::SeqCst);
    b.health.store(503, Ordering::SeqCst);
    let config = format!(
        "routes:\n  - id: 1\n    uri: /r\n    upstream:\n      nodes: {}\n      checks:\n        active:\n          http_path: /health\n          healthy: {{interval: 0.1}}\n          unhealthy: {{interval: 0.1, http_failures: 1}}\n#END\n",
        nodes_yaml(&[&a.addr(), &b.addr()])
    );
    let gw = gateway_with(&config, CONTROL).await;
    wait_for_status(&gw, "/apisix/routes/1", &a.addr(), &["unhealthy"]).await;
    wait_for_status(&gw, "/apisix/routes/1", &b.addr(), &["unhealthy"]).await;
    let mut names = Vec::new();
    for _ in 0..10 {
        let got = get(&gw.url("/r")).await;
        assert_eq!(got.status, 200);
        names.push(got.header("x-upstream").unwrap_or("").to_owned());
    }
    assert!(names.iter().any(|n| n == "a") && names.iter().any(|n| n == "b"));
}

#[tokio::test]
async fn checkers_follow_config_changes() {
    let a = Node::start("a").await;
    let b = Node::start("b").await;
    let route = |nodes: &[&str], path: &str| {
        format!(
            "routes:\n  - id: 1\n    uri: /r\n    upstream:\n      nodes: {}\n      checks:\n        active:\n          http_path: {path}\n          healthy: {{interval: 0.1}}\n          unhealthy: {{interval: 0.1}}\n#END\n",
            nodes_yaml(nodes)
        )
    };
    let gw = gateway_with(&route(&[&a.addr(), &b.addr()], "/health"), CONTROL).await;
    let key = "/apisix/routes/1";
    assert_eq!(statuses(&gw, key).await.len(), 2);

    // A removed node is no longer probed or listed.
    let version = gw.gateway.snapshot_version();
    gw.write_routes(&route(&[&a.addr()], "/health"));
    gw.wait_for_version(version).await;
    let listed = statuses(&gw, key).await;
    assert_eq!(listed, vec![(a.addr(), "healthy".to_owned())]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let probes = b.probes.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.probes.load(Ordering::SeqCst), probes, "b is still probed");

    // Changed checks restart the checker: the new path is probed.
    let version = gw.gateway.snapshot_version();
    gw.write_routes(&route(&[&a.addr()], "/other"));
    gw.wait_for_version(version).await;
    let hits = a.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(a.hits.load(Ordering::SeqCst) > hits, "/other is probed");

    // A removed route stops its checker.
    let version = gw.gateway.snapshot_version();
    gw.write_routes("routes: []\n#END\n");
    gw.wait_for_version(version).await;
    assert!(statuses(&gw, key).await.is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (probes, hits) = (
        a.probes.load(Ordering::SeqCst),
        a.hits.load(Ordering::SeqCst),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        (
            a.probes.load(Ordering::SeqCst),
            a.hits.load(Ordering::SeqCst)
        ),
        (probes, hits)
    );
}

#[tokio::test]
async fn upstream_status_metric() {
    let a = Node::start("a").await;
    let mut b = Node::start("b").await;
    let config = format!(
        "routes:\n  - id: 1\n    uri: /r\n    upstream:\n      nodes: {}\n      checks:\n        active:\n          type: tcp\n          healthy: {{interval: 0.1}}\n          unhealthy: {{interval: 0.1, tcp_failures: 1}}\n#END\n",
        nodes_yaml(&[&a.addr(), &b.addr()])
    );
    let gw = gateway_with(
        &config,
        "apisix:\n  enable_control: true\n  control: {ip: 127.0.0.1, port: 0}\nplugin_attr:\n  prometheus:\n    export_addr: {ip: 127.0.0.1, port: 0}\n",
    )
    .await;
    b.kill().await;
    wait_for_status(&gw, "/apisix/routes/1", &b.addr(), &["unhealthy"]).await;
    let exporter = gw.gateway.prometheus_addr().expect("exporter");
    let text = String::from_utf8_lossy(
        &get(&format!("http://{exporter}/apisix/prometheus/metrics"))
            .await
            .body,
    )
    .into_owned();
    let line = |port: u16, v: u8| {
        format!(
            "apisix_upstream_status{{name=\"/apisix/routes/1\",ip=\"127.0.0.1\",port=\"{port}\"}} {v}"
        )
    };
    assert!(text.contains(&line(a.port, 1)), "{text}");
    assert!(text.contains(&line(b.port, 0)), "{text}");
}

fn retry_route(nodes: &[String], extra: &str) -> String {
    let list: Vec<&str> = nodes.iter().map(String::as_str).collect();
    format!(
        "routes:\n  - id: 1\n    uri: /r\n    upstream:\n      type: roundrobin\n      nodes: {}\n{extra}#END\n",
        nodes_yaml(&list)
    )
}

async fn statuses_of(gw: &TestGateway, method: http::Method, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            request(method.clone(), &gw.url("/r"), &[])
                .await
                .status
                .as_u16(),
        );
    }
    out
}

#[tokio::test]
async fn retry_on_statuses() {
    let bad = upstream("bad", Behaviour::Status(502)).await;
    let good = upstream("good", Behaviour::Echo).await;
    let nodes = [bad.node(), good.node()];
    // APISIX's rule: a 502 answer is an answer.
    let gw = gateway(&retry_route(&nodes, "")).await;
    assert!(statuses_of(&gw, http::Method::GET, 6).await.contains(&502));
    drop(gw);

    let gw = gateway(&retry_route(&nodes, "      retry_on: [502, connect]\n")).await;
    assert!(statuses_of(&gw, http::Method::GET, 6)
        .await
        .iter()
        .all(|s| *s == 200));
    // POST may have been processed: not retried without the opt-in.
    assert!(statuses_of(&gw, http::Method::POST, 6).await.contains(&502));
    drop(gw);

    let gw = gateway(&retry_route(
        &nodes,
        "      retry_on: [\"502\"]\n      retry_non_idempotent: true\n",
    ))
    .await;
    assert!(statuses_of(&gw, http::Method::POST, 6)
        .await
        .iter()
        .all(|s| *s == 200));
    drop(gw);

    // Every node answers a retried status: the client gets it, not a 502 of the gateway's.
    let unavailable = upstream("u1", Behaviour::Status(503)).await;
    let unavailable2 = upstream("u2", Behaviour::Status(503)).await;
    let gw = gateway(&retry_route(
        &[unavailable.node(), unavailable2.node()],
        "      retry_on: [503]\n",
    ))
    .await;
    let got = get(&gw.url("/r")).await;
    assert_eq!(got.status, 503);
    assert_eq!(unavailable.hits() + unavailable2.hits(), 2);
}

#[tokio::test]
async fn retry_on_conditions() {
    let hang = upstream("hang", Behaviour::Hang).await;
    let good = upstream("good", Behaviour::Echo).await;
    let nodes = [hang.node(), good.node()];
    let timeout = "      timeout: {connect: 1, send: 0.1, read: 0.2}\n";
    // `connect` only: a read timeout is not retried.
    let gw = gateway(&retry_route(
        &nodes,
        &format!("{timeout}      retry_on: [connect]\n"),
    ))
    .await;
    assert!(statuses_of(&gw, http::Method::GET, 4).await.contains(&504));
    drop(gw);
    // `timeout`: retried on the other node.
    let gw = gateway(&retry_route(
        &nodes,
        &format!("{timeout}      retry_on: [timeout]\n"),
    ))
    .await;
    assert!(statuses_of(&gw, http::Method::GET, 4)
        .await
        .iter()
        .all(|s| *s == 200));
    drop(gw);
    // A refused connection is not retried without `connect`.
    let gw = gateway(&retry_route(
        &[refused_node().await, good.node()],
        "      retry_on: [timeout]\n",
    ))
    .await;
    assert!(statuses_of(&gw, http::Method::GET, 4).await.contains(&502));
    drop(gw);
    let reset = upstream("reset", Behaviour::Reset).await;
    let gw = gateway(&retry_route(
        &[reset.node(), good.node()],
        "      retry_on: [reset]\n",
    ))
    .await;
    assert!(statuses_of(&gw, http::Method::GET, 4)
        .await
        .iter()
        .all(|s| *s == 200));
}

#[tokio::test]
async fn the_admin_api_validates_checks_and_retry_on() {
    let (_gw, admin) = admin::embedded_gateway().await;
    let put = |body: &str| {
        let body: serde_json::Value = serde_json::from_str(body).expect("json");
        let admin = &admin;
        async move { admin.put("/upstreams/1", body).await }
    };
    let got = put(r#"{"nodes":{"127.0.0.1:1":1},"checks":{"passive":{}}}"#).await;
    assert_eq!(got.status, 400, "{:?}", got.body);
    let body = String::from_utf8_lossy(&got.body).into_owned();
    assert!(
        body.contains(
            r#"object matches none of the required: [\"active\"] or [\"active\",\"passive\"]"#
        ),
        "{body}"
    );
    let got = put(
        r#"{"nodes":{"127.0.0.1:1":1},"checks":{"active":{"healthy":{"successes":0}}},"retry_on":["sometimes"]}"#,
    )
    .await;
    assert_eq!(got.status, 400);
    let body = String::from_utf8_lossy(&got.body).into_owned();
    assert!(
        body.contains(r#"property \"successes\" validation failed: expected 0 to be at least 1"#),
        "{body}"
    );
    let got = put(r#"{"nodes":{"127.0.0.1:1":1},"checks":{"active":{"type":"udp"}}}"#).await;
    assert_eq!(got.status, 400);
    let got = put(
        r#"{"nodes":{"127.0.0.1:1":1},"checks":{"active":{"type":"tcp"}},"retry_on":["connect",502]}"#,
    )
    .await;
    assert!(got.status.is_success(), "{:?}", got.body);
    let stored = got.json();
    assert_eq!(stored["value"]["checks"]["active"]["type"], "tcp");
    assert_eq!(stored["value"]["retry_on"][1], 502);
}

#[tokio::test]
async fn checkers_start_when_the_admin_api_writes_the_upstream() {
    let a = Node::start("a").await;
    let mut b = Node::start("b").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_in(dir, &format!("{}{CONTROL}", admin::embedded_config())).await;
    let admin = admin::Admin::for_gateway(&gw);
    let put = admin
        .put(
            "/upstreams/u",
            serde_json::json!({
                "nodes": {a.addr(): 1, b.addr(): 1},
                "checks": {"active": {"http_path": "/health",
                    "healthy": {"interval": 0.1}, "unhealthy": {"interval": 0.1, "tcp_failures": 1}}}
            }),
        )
        .await;
    assert!(put.status.is_success(), "{:?}", put.body);
    let put = admin
        .put(
            "/routes/r",
            serde_json::json!({"uri": "/r", "upstream_id": "u"}),
        )
        .await;
    assert!(put.status.is_success(), "{:?}", put.body);
    // No request yet: the checker runs anyway.
    b.kill().await;
    wait_for_status(&gw, "/apisix/upstreams/u", &b.addr(), &["unhealthy"]).await;
    let control = gw.gateway.control_addr().expect("control API");
    let one = get(&format!("http://{control}/v1/healthcheck/upstreams/u")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["nodes"].as_array().map(Vec::len), Some(2));
    for _ in 0..6 {
        let got = get(&gw.url("/r")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-upstream"), Some("a"));
    }
}

#[tokio::test]
async fn probes_send_the_configured_request_and_time_out() {
    let a = Node::start("a").await;
    let elsewhere = Node::start("elsewhere").await;
    let hang = upstream("hang", Behaviour::Hang).await;
    let config = format!(
        "routes:\n  - id: 1\n    uri: /r\n    upstream:\n      nodes: {}\n      checks:\n        active:\n          http_method: HEAD\n          http_path: /health\n          host: probe.example\n          port: {}\n          req_headers: [\"X-Probe: yes\"]\n          healthy: {{interval: 0.1}}\n          unhealthy: {{interval: 0.1}}\n  - id: 2\n    uri: /h\n    upstream:\n      nodes: {}\n      checks:\n        active:\n          timeout: 0.2\n          healthy: {{interval: 0.1}}\n          unhealthy: {{interval: 0.1, timeouts: 2}}\n#END\n",
        nodes_yaml(&[&a.addr()]),
        elsewhere.port,
        nodes_yaml(&[&hang.node()]),
    );
    let gw = gateway_with(&config, CONTROL).await;
    wait_for_status(&gw, "/apisix/routes/2", &hang.node(), &["unhealthy"]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while elsewhere.probes.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the port override is not probed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.probes.load(Ordering::SeqCst), 0);
    let last = elsewhere.last_probe.lock().expect("lock").clone();
    assert_eq!(
        last,
        Some((
            "HEAD".to_owned(),
            "probe.example".to_owned(),
            "yes".to_owned()
        ))
    );
}

mod https {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    /// An https server with a self-signed certificate for `localhost`; counts requests.
    async fn tls_node(hits: Arc<AtomicUsize>) -> u16 {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key"),
            )
            .expect("config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, hits) = (acceptor.clone(), hits.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |_req: Request<Incoming>| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn https_probes_verify_certificates_unless_told_not_to() {
        let hits = Arc::new(AtomicUsize::new(0));
        let port = tls_node(hits.clone()).await;
        let route = |id: u8, verify: bool| {
            format!(
                "  - id: {id}\n    uri: /{id}\n    upstream:\n      scheme: https\n      nodes: [{{host: localhost, port: {port}, weight: 1}}]\n      checks:\n        active:\n          type: https\n          https_verify_certificate: {verify}\n          healthy: {{interval: 0.1}}\n          unhealthy: {{interval: 0.1, tcp_failures: 1}}\n"
            )
        };
        let config = format!("routes:\n{}{}#END\n", route(1, true), route(2, false));
        let gw = gateway_with(&config, CONTROL).await;
        let node = format!("localhost:{port}");
        wait_for_status(&gw, "/apisix/routes/1", &node, &["unhealthy"]).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while hits.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "no https probe got through");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let unverified = statuses(&gw, "/apisix/routes/2").await;
        assert_eq!(unverified, vec![(node, "healthy".to_owned())]);
    }
}

#[tokio::test]
async fn disable_upstream_healthcheck_turns_checkers_off() {
    let a = Node::start("a").await;
    let config = format!(
        "routes:\n  - id: 1\n    uri: /r\n    upstream:\n      nodes: {}\n      checks:\n        active:\n          http_path: /health\n          healthy: {{interval: 0.1}}\n#END\n",
        nodes_yaml(&[&a.addr()])
    );
    let gw = gateway_with(
        &config,
        &format!("{CONTROL}  disable_upstream_healthcheck: true\n"),
    )
    .await;
    assert_eq!(get(&gw.url("/r")).await.status, 200);
    let control = gw.gateway.control_addr().expect("control API");
    assert_eq!(
        get(&format!("http://{control}/v1/healthcheck"))
            .await
            .json(),
        serde_json::json!([])
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.probes.load(Ordering::SeqCst), 0);
}
