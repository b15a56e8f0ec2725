//! A client's own body errors never count against an upstream; request bodies are buffered
//! before the upstream is connected; HTTP/2 streams and streamed bodies are capped; the client
//! body timeout. See main.rs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// An upstream that counts what reaches it: connections (health probes included), request heads,
/// and requests whose body arrived whole; it answers 200 with the body it got.
struct Recorder {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    heads: Arc<AtomicUsize>,
    whole: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(AtomicUsize::new(0));
        let whole = Arc::new(AtomicUsize::new(0));
        let (c, h, w) = (connections.clone(), heads.clone(), whole.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (h, w) = (h.clone(), w.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let w = w.clone();
                        async move {
                            let body = req.into_body().collect().await;
                            let body = match body {
                                Ok(b) => {
                                    w.fetch_add(1, Ordering::SeqCst);
                                    b.to_bytes()
                                }
                                Err(_) => Bytes::new(),
                            };
                            Ok::<_, Infallible>(Response::new(Full::new(body)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Recorder {
            addr,
            connections,
            heads,
            whole,
            task,
        }
    }

    fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Two routes on their own upstreams, each with api-breaker (tripping on the gateway's own
/// 400/408/502/504 too, after 3) and passive health checks that eject a node at its first
/// failure: `/buffered` (the default) and `/streamed` (`proxy-control` off).
fn routes(buffered: &Recorder, streamed: &Recorder) -> String {
    let upstream = |id: &str, node: SocketAddr| {
        format!(
            "  - id: {id}\n    nodes: {{\"{node}\": 1}}\n    checks:\n      active:\n        type: tcp\n        healthy: {{interval: 100}}\n        unhealthy: {{interval: 100}}\n      passive:\n        unhealthy: {{tcp_failures: 1, timeouts: 1, http_failures: 1}}\n"
        )
    };
    let breaker = "\"api-breaker\": {\"break_response_code\": 503, \"break_response_body\": \"open\", \"unhealthy\": {\"http_statuses\": [500, 502, 504], \"failures\": 3}}";
    format!(
        "upstreams:\n{}{}routes:\n  - id: b\n    uri: /buffered\n    upstream_id: ub\n    plugins: {{{breaker}}}\n  - id: s\n    uri: /streamed\n    upstream_id: us\n    plugins: {{{breaker}, \"proxy-control\": {{\"request_buffering\": false}}}}\n#END\n",
        upstream("ub", buffered.addr),
        upstream("us", streamed.addr),
    )
}

const CONTROL: &str = "apisix:\n  enable_control: true\n  control: {ip: 127.0.0.1, port: 0}\n";

/// The health status of every node of upstream `id`, from the control API.
async fn node_statuses(gw: &TestGateway, id: &str) -> Vec<String> {
    let control = gw.gateway.control_addr().expect("control API");
    let got = get(&format!("http://{control}/v1/healthcheck/upstreams/{id}")).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    got.json()["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Opens a connection and writes `bytes` (a request head and maybe part of its body).
async fn start_request(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    s
}

/// Everything the gateway sends on `s` until it closes, or `wait` passes.
async fn read_answer(mut s: TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A POST with a complete body through the gateway.
async fn post(gw: &TestGateway, path: &str, body: &'static str) -> Got {
    let req = Request::post(gw.url(path))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request");
    send(&client(), req).await
}

#[tokio::test]
async fn body_errors_are_the_clients_and_count_against_no_upstream() {
    let buffered = Recorder::start().await;
    let streamed = Recorder::start().await;
    let gw = gateway_with(&routes(&buffered, &streamed), CONTROL).await;
    let addr = gw.addr();
    for path in ["/buffered", "/streamed"] {
        for _ in 0..5 {
            // A malformed chunk size.
            let s = start_request(
                addr,
                format!("POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n").as_bytes(),
            )
            .await;
            let answer = read_answer(s, Duration::from_secs(3)).await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
            // A body shorter than its Content-Length: the client stops sending.
            let mut s = start_request(
                addr,
                format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b")
                    .as_bytes(),
            )
            .await;
            s.shutdown().await.expect("half close");
            let answer = read_answer(s, Duration::from_secs(3)).await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
            // An upload aborted half way: the connection goes away.
            let s = start_request(
                addr,
                format!(
                    "POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n{}",
                    "x".repeat(5000)
                )
                .as_bytes(),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        Recorder::count(&buffered.heads),
        0,
        "a buffered route sends nothing upstream for a body that never completed"
    );
    assert!(
        Recorder::count(&streamed.heads) >= 10,
        "the streamed route's upstream saw the requests whose bodies then failed"
    );
    for (path, recorder, id) in [
        ("/buffered", &buffered, "ub"),
        ("/streamed", &streamed, "us"),
    ] {
        for _ in 0..3 {
            let got = post(&gw, path, "a normal body").await;
            assert_eq!(got.status, 200, "{path}: the breaker did not open");
            assert_eq!(&got.body[..], b"a normal body");
        }
        assert!(Recorder::count(&recorder.whole) >= 3, "{path}");
        assert_eq!(
            node_statuses(&gw, id).await,
            vec!["healthy".to_owned()],
            "{path}: no client fault marked the node unhealthy"
        );
    }
    assert_eq!(
        Recorder::count(&buffered.heads),
        3,
        "only the normal requests reached the buffered route's upstream"
    );
}

/// A request body that sends its first bytes, then nothing, ever (or ends, when `complete`).
struct Stalled {
    first: Option<Bytes>,
    complete: bool,
}

impl Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.first.take() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None if self.complete => Poll::Ready(None),
            // Never woken: the body stays unfinished.
            None => Poll::Pending,
        }
    }
}

/// `writing` (requests being handled) from the Prometheus exporter.
async fn requests_in_flight(gw: &TestGateway) -> u64 {
    let exporter = gw.gateway.prometheus_addr().expect("exporter");
    let text = get(&format!("http://{exporter}/apisix/prometheus/metrics")).await;
    let text = String::from_utf8_lossy(&text.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("apisix_nginx_http_current_connections{state=\"writing\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no writing gauge in {text}"))
}

#[tokio::test]
async fn unfinished_http2_streams_hold_no_upstream_connection() {
    let up = Recorder::start().await;
    let config = format!(
        "routes:\n  - id: 1\n    uri: /up\n    upstream:\n      nodes: {{\"{}\": 1}}\n#END\n",
        up.addr
    );
    let gw = gateway_with(
        &config,
        "apisix:\n  node_listen:\n    - {ip: 127.0.0.1, port: 0, enable_http2: true}\nnginx_config:\n  http:\n    http2_max_concurrent_streams: 128\nplugin_attr:\n  prometheus:\n    export_addr: {ip: 127.0.0.1, port: 0}\n",
    )
    .await;
    let h2: Client<_, Stalled> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    // One complete request first, so every later stream shares its connection.
    let warm = h2
        .request(
            Request::post(gw.url("/up"))
                .body(Stalled {
                    first: Some(Bytes::from_static(b"warm")),
                    complete: true,
                })
                .expect("request"),
        )
        .await
        .expect("h2c request");
    assert_eq!(warm.status(), 200);
    assert_eq!(Recorder::count(&up.connections), 1);
    let mut stalled = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let h2 = h2.clone();
        let req = Request::post(gw.url("/up"))
            .body(Stalled {
                first: Some(Bytes::from_static(b"part of an upload")),
                complete: false,
            })
            .expect("request");
        stalled.spawn(async move { h2.request(req).await.map(|r| r.status()) });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        Recorder::count(&up.heads),
        1,
        "no unfinished body reached the upstream"
    );
    assert_eq!(
        Recorder::count(&up.connections),
        1,
        "nor opened a connection"
    );
    let in_flight = requests_in_flight(&gw).await;
    assert!(
        (100..=128).contains(&in_flight),
        "one connection has at most 128 streams: {in_flight} requests in flight"
    );
    for _ in 0..5 {
        let got = post(&gw, "/up", "normal").await;
        assert_eq!(got.status, 200);
        assert_eq!(&got.body[..], b"normal");
    }
    assert_eq!(stalled.len(), 200, "the stalled streams are still waiting");
    stalled.abort_all();
}

#[tokio::test]
async fn client_body_timeout_answers_408() {
    let up = Recorder::start().await;
    let config = format!(
        "routes:\n  - id: 1\n    uri: /up\n    upstream:\n      nodes: {{\"{}\": 1}}\n#END\n",
        up.addr
    );
    let gw = gateway_with(
        &config,
        "nginx_config:\n  http:\n    client_body_timeout: 1s\n",
    )
    .await;
    let started = Instant::now();
    let s = start_request(
        gw.addr(),
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
    )
    .await;
    let answer = read_answer(s, Duration::from_secs(5)).await;
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(Recorder::count(&up.connections), 0);
    // A body that keeps coming, slower than the timeout overall but never pausing that long,
    // goes through: the timeout is between two reads.
    let mut s = start_request(
        gw.addr(),
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nConnection: close\r\n\r\nab",
    )
    .await;
    for part in [&b"cd"[..], b"ef"] {
        tokio::time::sleep(Duration::from_millis(600)).await;
        s.write_all(part).await.expect("write");
    }
    let answer = read_answer(s, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("abcdef"), "{answer}");
}

#[tokio::test]
async fn request_buffering_false_streams_and_is_capped_per_client() {
    let buffered = Recorder::start().await;
    let streamed = Recorder::start().await;
    let gw = gateway_with(
        &routes(&buffered, &streamed),
        "nginx_config:\n  http:\n    streamed_bodies_per_client: 2\n    client_max_body_size: 1k\n",
    )
    .await;
    let head = |path: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello")
    };
    // Streamed: the upstream sees the request before its body ends.
    let mut first = start_request(gw.addr(), head("/streamed").as_bytes()).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Recorder::count(&streamed.heads) == 0 {
        assert!(Instant::now() < deadline, "the head was not streamed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Buffered: nothing reaches the upstream until the body is complete.
    let mut held = start_request(gw.addr(), head("/buffered").as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(Recorder::count(&buffered.heads), 0);
    // A second streamed body from this client is allowed, a third is refused.
    let second = start_request(gw.addr(), head("/streamed").as_bytes()).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Recorder::count(&streamed.heads) < 2 {
        assert!(
            Instant::now() < deadline,
            "the second head was not streamed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = start_request(gw.addr(), head("/streamed").as_bytes()).await;
    let answer = read_answer(third, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert_eq!(Recorder::count(&streamed.heads), 2);
    // Buffered bodies do not count: they hold no upstream connection.
    assert_eq!(post(&gw, "/buffered", "fine").await.status, 200);
    for s in [&mut first, &mut held] {
        s.write_all(b"world").await.expect("write");
    }
    let answer = read_answer(first, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("helloworld"), "{answer}");
    let answer = read_answer(held, Duration::from_secs(3)).await;
    assert!(answer.ends_with("helloworld"), "{answer}");
    drop(second);
    // Places are given back when the bodies end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(post(&gw, "/streamed", "again").await.status, 200);
    // Larger than client_max_body_size: 413, streamed or not, nothing sent upstream.
    let heads = Recorder::count(&buffered.heads);
    let big = "x".repeat(2048);
    for path in ["/buffered", "/streamed"] {
        let s = start_request(
            gw.addr(),
            format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 2048\r\n\r\n{big}")
                .as_bytes(),
        )
        .await;
        let answer = read_answer(s, Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
    }
    assert_eq!(Recorder::count(&buffered.heads), heads);
}
