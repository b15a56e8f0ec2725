//! The logger plugins through the running gateway (embedded store, Admin API): file-logger's
//! lines appear in its file, http-logger's batches reach a real HTTP collector.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::admin::*;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// The JSON lines of `path` once it has at least `want` (or what it has after 2 s).
async fn lines(path: &std::path::Path, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= want || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn file_logger_writes_a_json_line_per_request() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("logs/file.log");
    let route = json!({
        "uri": "/fl/*",
        "name": "logged",
        "plugins": {"file-logger": {"path": path.to_str().expect("utf-8")}},
        "upstream": {"nodes": {up.node(): 1}}
    });
    apply(&gw, &admin, "/routes/fl", route, "/fl/ready", 200).await;
    // The probe that answered 200 went through the route: wait for its line, count from there.
    let before = lines(&path, 1).await.len();
    assert_eq!(before, 1);
    assert_eq!(get(&gw.url("/fl/a?x=1")).await.status, 200);
    assert_eq!(
        get_with(&gw.url("/fl/b"), &[("x-test", "yes")])
            .await
            .status,
        200
    );
    let got = lines(&path, before + 2).await;
    assert_eq!(got.len(), before + 2, "{got:?}");
    let (a, b) = (&got[before], &got[before + 1]);
    assert_eq!(a["request"]["method"], "GET");
    assert_eq!(a["request"]["uri"], "/fl/a?x=1");
    assert_eq!(a["request"]["querystring"], json!({"x": "1"}));
    assert_eq!(a["response"]["status"], 200);
    assert_eq!(a["route_id"], "fl");
    assert_eq!(a["route_name"], "logged");
    assert_eq!(a["upstream"], up.node());
    assert_eq!(a["client_ip"], "127.0.0.1");
    assert!(a["latency"].as_f64().is_some());
    assert!(a["start_time"].as_u64().is_some());
    assert_eq!(b["request"]["uri"], "/fl/b");
    assert_eq!(b["request"]["headers"]["x-test"], "yes");

    // A custom format, and a status from the upstream.
    let route = json!({
        "uri": "/fl/*",
        "plugins": {"file-logger": {
            "path": path.to_str().expect("utf-8"),
            "log_format": {"uri": "$request_uri", "status": "$status", "ua": "$http_user_agent", "route": "$route_id"}
        }},
        "upstream": {"nodes": {up.node(): 1}}
    });
    let put = admin.put("/routes/fl", route).await;
    assert!(put.status.is_success(), "{:?}", put.body);
    // Wait until a request is logged with the new format.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        get_with(&gw.url("/fl/custom"), &[("user-agent", "probe/1")]).await;
        let got = lines(&path, 0).await;
        if got.last().is_some_and(|l| l.get("ua").is_some()) {
            break;
        }
        assert!(Instant::now() < deadline, "the new format never showed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = lines(&path, 0).await;
    assert_eq!(
        got.last(),
        Some(&json!({"uri": "/fl/custom", "status": "200", "ua": "probe/1", "route": "fl"}))
    );

    // Shutdown waits for the writer: lines of the last requests are in the file once it returns.
    for i in 0..20 {
        get(&gw.url(&format!("/fl/last{i}"))).await;
    }
    gw.gateway.shutdown().await;
    let text = std::fs::read_to_string(&path).expect("log");
    for i in 0..20 {
        assert!(
            text.contains(&format!("/fl/last{i}\"")),
            "line {i} lost at shutdown"
        );
    }
}

#[tokio::test]
async fn file_logger_logs_bodies_and_only_matching_requests() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bodies.log");
    let route = json!({
        "uri": "/fb",
        "plugins": {"file-logger": {
            "path": path.to_str().expect("utf-8"),
            "include_req_body": true,
            "include_resp_body": true,
            "include_resp_body_expr": [["arg_resp", "==", "yes"]],
            "max_req_body_bytes": 5,
            "match": [["http_x_skip", "!", "==", "1"]]
        }},
        "upstream": {"nodes": {up.node(): 1}}
    });
    apply(&gw, &admin, "/routes/fb", route, "/fb", 200).await;
    let before = lines(&path, 1).await.len();
    let post = |uri: &str, skip: bool| {
        let mut req = http::Request::post(gw.url(uri));
        if skip {
            req = req.header("x-skip", "1");
        }
        req.body(Full::new(Bytes::from_static(b"hello body")))
            .expect("request")
    };
    let client = client();
    let got = send(&client, post("/fb?resp=yes", false)).await;
    assert_eq!(got.status, 200);
    let echoed = String::from_utf8_lossy(&got.body).into_owned();
    assert!(echoed.contains("hello body"), "{echoed}");
    // Not logged: `match` does not hold.
    assert_eq!(send(&client, post("/fb?resp=yes", true)).await.status, 200);
    // Logged without the response body: its condition does not hold.
    assert_eq!(send(&client, post("/fb", false)).await.status, 200);
    let got = lines(&path, before + 2).await;
    assert_eq!(got.len(), before + 2, "{got:?}");
    let (with, without) = (&got[before], &got[before + 1]);
    assert_eq!(
        with["request"]["body"], "hello",
        "capped at max_req_body_bytes"
    );
    assert_eq!(with["response"]["body"], echoed.as_str());
    assert_eq!(without["request"]["uri"], "/fb");
    assert_eq!(without["request"]["body"], "hello");
    assert!(without["response"].get("body").is_none(), "{without}");
}

/// What the collector received: one body per POST.
type Received = Arc<Mutex<Vec<String>>>;

/// A collector on 127.0.0.1:0 recording the bodies it is sent; its URL.
async fn collector() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received: Received = Arc::default();
    let got = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let got = got.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let got = got.clone();
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        got.lock()
                            .expect("lock")
                            .push(String::from_utf8_lossy(&body).into_owned());
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/collect"), received)
}

/// Every entry the collector received so far, batch by batch.
fn batches(received: &Received) -> Vec<Vec<Value>> {
    received
        .lock()
        .expect("lock")
        .iter()
        .map(|b| match serde_json::from_str(b).expect("a JSON body") {
            Value::Array(items) => items,
            other => panic!("not a JSON array: {other}"),
        })
        .collect()
}

#[tokio::test]
async fn http_logger_delivers_batches() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let (uri, received) = collector().await;
    // The probe goes through a route without the logger.
    apply(
        &gw,
        &admin,
        "/routes/probe",
        json!({"uri": "/probe", "upstream": {"nodes": {up.node(): 1}}}),
        "/probe",
        200,
    )
    .await;
    let route = json!({
        "uri": "/hl/*",
        "plugins": {"http-logger": {"uri": uri, "batch_max_size": 2, "inactive_timeout": 1}},
        "upstream": {"nodes": {up.node(): 1}}
    });
    let put = admin.put("/routes/hl", route).await;
    assert!(put.status.is_success(), "{:?}", put.body);
    // Wait until the route is live (the waiting requests are logged too).
    let deadline = Instant::now() + Duration::from_secs(2);
    while get(&gw.url("/hl/warmup")).await.status != 200 {
        assert!(Instant::now() < deadline, "the route never went live");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Flush the warm-up entries: wait for inactivity to send them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let warmup: usize = batches(&received).iter().map(Vec::len).sum();
    assert!(warmup >= 1, "the warm-up request was delivered");
    let sent_before = received.lock().expect("lock").len();

    let start = Instant::now();
    for path in ["/hl/1", "/hl/2", "/hl/3"] {
        assert_eq!(get(&gw.url(path)).await.status, 200);
    }
    let wait = |n: usize| {
        let received = received.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(3);
            while received.lock().expect("lock").len() < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait(sent_before + 1).await;
    let got = batches(&received);
    assert_eq!(got.len(), sent_before + 1, "a full batch is sent at once");
    assert!(start.elapsed() < Duration::from_millis(900));
    let first = &got[sent_before];
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["request"]["uri"], "/hl/1");
    assert_eq!(first[1]["request"]["uri"], "/hl/2");
    assert_eq!(first[0]["response"]["status"], 200);
    assert_eq!(first[0]["route_id"], "hl");
    assert_eq!(first[0]["upstream"], up.node());
    wait(sent_before + 2).await;
    let got = batches(&received);
    assert_eq!(
        got.len(),
        sent_before + 2,
        "the rest after inactive_timeout"
    );
    assert_eq!(got[sent_before + 1].len(), 1);
    assert_eq!(got[sent_before + 1][0]["request"]["uri"], "/hl/3");

    let bad = admin
        .put(
            "/routes/hl2",
            json!({"uri": "/x", "plugins": {"http-logger": {"uri": "ftp://x"}}, "upstream": {"nodes": {up.node(): 1}}}),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
}
