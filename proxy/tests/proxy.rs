//! End-to-end proxying through a real gateway to real upstreams on loopback.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn proxies_with_forwarding_headers() {
    let up = upstream("a", Behaviour::Echo).await;
    let gw = gateway(&format!(
        "routes:\n  - id: 1\n    uri: /echo*\n    upstream: {{nodes: {{\"{}\": 1}}}}\n#END\n",
        up.node()
    ))
    .await;
    let got = get_with(
        &gw.url("/echo/x?a=1"),
        &[
            ("host", "api.test:8080"),
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=x"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(got
        .header("server")
        .is_some_and(|s| s.starts_with("ferrogate")));
    let echo = got.json();
    assert_eq!(echo["uri"], "/echo/x?a=1");
    assert_eq!(
        got.upstream_header("host").as_deref(),
        Some("api.test:8080")
    );
    assert_eq!(
        got.upstream_header("x-forwarded-for").as_deref(),
        Some("1.2.3.4, 127.0.0.1")
    );
    assert_eq!(
        got.upstream_header("x-real-ip").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        got.upstream_header("x-forwarded-proto").as_deref(),
        Some("http")
    );
    assert_eq!(
        got.upstream_header("x-forwarded-host").as_deref(),
        Some("api.test:8080")
    );
    assert_eq!(
        got.upstream_header("x-forwarded-port").as_deref(),
        Some("8080")
    );
    assert_eq!(got.upstream_header("forwarded"), None);
    gw.gateway.shutdown().await;
}

#[tokio::test]
async fn request_and_response_bodies_stream_both_ways() {
    let up = upstream("a", Behaviour::Echo).await;
    let gw = gateway(&format!(
        "routes:\n  - id: 1\n    uri: /post\n    upstream: {{nodes: {{\"{}\": 1}}}}\n#END\n",
        up.node()
    ))
    .await;
    let body = "x".repeat(300_000);
    let req = http::Request::post(gw.url("/post"))
        .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
        .expect("request");
    let got = send(&client(), req).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["body"].as_str().map(str::len), Some(body.len()));
    assert_eq!(got.json()["method"], "POST");
}

#[tokio::test]
async fn gateway_errors_are_json() {
    let gw = gateway(&format!(
        "routes:\n  - id: 1\n    uri: /empty\n    upstream: {{nodes: {{}}}}\n  - id: 2\n    uri: /down\n    upstream: {{nodes: {{\"{}\": 1}}}}\n#END\n",
        refused_node().await
    ))
    .await;
    // As APISIX, only a request that tried an upstream says how those tries ended.
    let cases = [
        ("/nothing-here", 404, "404 Route Not Found", None),
        ("/empty", 503, "no valid upstream node", None),
        ("/down", 502, "502 Bad Gateway", Some("502")),
    ];
    for (path, status, msg, tried) in cases {
        let got = get(&gw.url(path)).await;
        assert_eq!(got.status, status, "{path}");
        assert_eq!(
            got.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(got.json()["error_msg"], msg, "{path}");
        assert!(got.body.ends_with(b"}\n"), "{path}");
        assert_eq!(got.header("x-apisix-upstream-status"), tried, "{path}");
    }
}

#[tokio::test]
async fn upstream_5xx_is_passed_with_status_header_and_not_retried() {
    let bad = upstream("bad", Behaviour::Status(500)).await;
    let gw = gateway(&format!(
        "routes:\n  - id: 1\n    uri: /x\n    upstream: {{retries: 3, nodes: {{\"{}\": 1}}}}\n#END\n",
        bad.node()
    ))
    .await;
    let got = get(&gw.url("/x")).await;
    assert_eq!(got.status, 500);
    assert_eq!(got.header("x-apisix-upstream-status"), Some("500"));
    assert_eq!(got.json()["server"], "bad");
    assert_eq!(bad.hits(), 1);
}

#[tokio::test]
async fn pass_host_modes() {
    let up = upstream("a", Behaviour::Echo).await;
    let node = up.node();
    let gw = gateway(&format!(
        "upstreams:\n  - id: node\n    pass_host: node\n    nodes: {{\"{node}\": 1}}\n  - id: rewrite\n    pass_host: rewrite\n    upstream_host: backend.internal\n    nodes: {{\"{node}\": 1}}\nroutes:\n  - {{id: 1, uri: /node, upstream_id: node}}\n  - {{id: 2, uri: /rewrite, upstream_id: rewrite}}\n#END\n"
    ))
    .await;
    let got = get_with(&gw.url("/node"), &[("host", "client.test")]).await;
    assert_eq!(got.upstream_header("host"), Some(node));
    let got = get_with(&gw.url("/rewrite"), &[("host", "client.test")]).await;
    assert_eq!(
        got.upstream_header("host").as_deref(),
        Some("backend.internal")
    );
}

#[tokio::test]
async fn services_supply_upstream_and_hosts() {
    let a = upstream("a", Behaviour::Echo).await;
    let b = upstream("b", Behaviour::Echo).await;
    let gw = gateway(&format!(
        "services:\n  - id: s\n    hosts: [svc.test]\n    upstream: {{nodes: {{\"{}\": 1}}}}\nroutes:\n  - {{id: own, uri: /x, service_id: s, upstream: {{nodes: {{\"{}\": 1}}}}, host: own.test}}\n  - {{id: inherit, uri: /x, service_id: s}}\n#END\n",
        a.node(),
        b.node()
    ))
    .await;
    let got = get_with(&gw.url("/x"), &[("host", "svc.test")]).await;
    assert_eq!(got.json()["server"], "a");
    let got = get_with(&gw.url("/x"), &[("host", "own.test")]).await;
    assert_eq!(got.json()["server"], "b");
    let got = get_with(&gw.url("/x"), &[("host", "other.test")]).await;
    assert_eq!(got.status, 404);
}

#[tokio::test]
async fn encoded_paths_reach_the_route_they_decode_to() {
    let public = upstream("public", Behaviour::Echo).await;
    let admin = upstream("admin", Behaviour::Echo).await;
    let gw = gateway(&format!(
        "routes:\n  - {{id: pub, uri: /public/*, upstream: {{nodes: {{\"{}\": 1}}}}}}\n  - {{id: adm, uri: /admin, remote_addrs: [10.0.0.0/8], upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
        public.node(),
        admin.node()
    ))
    .await;
    // /admin is only for 10.0.0.0/8: reaching it through /public/.. or an escape must not work.
    for path in [
        "/public/..%2Fadmin",
        "/public/%2e%2e/admin",
        "/%61dmin",
        "//admin",
        "/public/./../admin",
    ] {
        let got = get(&gw.url(path)).await;
        assert_eq!(got.status, 404, "{path} must be routed as /admin");
    }
    let got = get(&gw.url("/public/a%20b/../c")).await;
    assert_eq!(got.json()["server"], "public");
    assert_eq!(got.json()["uri"], "/public/c");
    let got = get(&gw.url("/public/x%2Fy?q=%2F")).await;
    assert_eq!(got.json()["uri"], "/public/x/y?q=%2F");
    for bad in ["/public/%zz", "/public/%00", "/../etc/passwd"] {
        assert_eq!(get(&gw.url(bad)).await.status, 400, "{bad}");
    }
    assert_eq!(admin.hits(), 0);
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_errors_not_panics() {
    let up = upstream("a", Behaviour::Echo).await;
    let gw = gateway(&format!(
        "routes:\n  - {{id: 1, uri: /ok, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
        up.node()
    ))
    .await;
    let answer = raw(gw.addr(), b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let big = format!(
        "GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let answer = raw(gw.addr(), big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let answer = raw(
        gw.addr(),
        b"GET /ok HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // Still serving.
    assert_eq!(get(&gw.url("/ok")).await.status, 200);
}

#[tokio::test]
async fn websocket_upgrade_only_when_enabled() {
    let up = upstream("ws", Behaviour::Echo).await;
    let gw = gateway(&format!(
        "routes:\n  - {{id: 1, uri: /ws, enable_websocket: true, upstream: {{nodes: {{\"{0}\": 1}}}}}}\n  - {{id: 2, uri: /plain, upstream: {{nodes: {{\"{0}\": 1}}}}}}\n#END\n",
        up.node()
    ))
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .expect("write");
    let mut head = vec![0u8; 1024];
    let n = s.read(&mut head).await.expect("read");
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    s.write_all(b"ping over the tunnel").await.expect("write");
    let mut buf = [0u8; 20];
    s.read_exact(&mut buf).await.expect("echo");
    assert_eq!(&buf, b"ping over the tunnel");

    let got = get_with(
        &gw.url("/plain"),
        &[("connection", "upgrade"), ("upgrade", "websocket")],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.upstream_header("upgrade"), None);
}

#[tokio::test]
async fn h2c_when_the_listener_enables_it() {
    let up = upstream("a", Behaviour::Echo).await;
    let dir_yaml = format!(
        "routes:\n  - {{id: 1, uri: /h2, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
        up.node()
    );
    let gw = gateway_with(
        &dir_yaml,
        "apisix:\n  node_listen:\n    - {ip: 127.0.0.1, port: 0, enable_http2: true}\n",
    )
    .await;
    let client: TestClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let req = http::Request::get(gw.url("/h2"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let got = send(&client, req).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["server"], "a");
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_after_keepalive_timeout() {
    let up = upstream("a", Behaviour::Echo).await;
    let gw = gateway_with(
        &format!(
            "routes:\n  - {{id: 1, uri: /ok, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
            up.node()
        ),
        "nginx_config:\n  http: {enable_access_log: false, keepalive_timeout: 0.3}\n",
    )
    .await;
    // A keep-alive connection that goes quiet after one request.
    let mut s = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "idle connection still open");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    // A client that sends half a head and stalls.
    let answer = raw(gw.addr(), b"GET /ok HTTP/1.1\r\nHost: x\r\n").await;
    assert!(!answer.contains("200"), "{answer}");
}

#[tokio::test]
async fn real_ip_from_a_trusted_peer_is_the_client_address() {
    let up = upstream("a", Behaviour::Echo).await;
    let gw = gateway(&format!(
        "routes:\n  - {{id: 1, uri: /in, remote_addrs: [10.9.9.0/24], upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
        up.node()
    ))
    .await;
    // 127.0.0.1 is in the default real_ip_from, so its X-Real-IP is believed.
    let got = get_with(&gw.url("/in"), &[("x-real-ip", "10.9.9.9")]).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.upstream_header("x-real-ip").as_deref(),
        Some("10.9.9.9")
    );
    assert_eq!(
        got.upstream_header("x-forwarded-for").as_deref(),
        Some("10.9.9.9")
    );
    assert_eq!(
        get(&gw.url("/in")).await.status,
        404,
        "127.0.0.1 itself is not in 10.9.9.0/24"
    );

    // With real_ip_from emptied, the header is ignored.
    let gw = gateway_with(
        &format!(
            "routes:\n  - {{id: 1, uri: /in, remote_addrs: [10.9.9.0/24], upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
            up.node()
        ),
        "nginx_config:\n  http: {enable_access_log: false, real_ip_from: []}\n",
    )
    .await;
    assert_eq!(
        get_with(&gw.url("/in"), &[("x-real-ip", "10.9.9.9")])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn chash_sends_one_key_to_one_node() {
    let a = upstream("a", Behaviour::Echo).await;
    let b = upstream("b", Behaviour::Echo).await;
    let c = upstream("c", Behaviour::Echo).await;
    let gw = gateway(&format!(
        "routes:\n  - {{id: 1, uri: /c, upstream: {{type: chash, hash_on: header, key: x-user, nodes: {{\"{}\": 1, \"{}\": 1, \"{}\": 1}}}}}}\n#END\n",
        a.node(),
        b.node(),
        c.node()
    ))
    .await;
    let mut seen = std::collections::BTreeMap::new();
    for user in 0..30 {
        let user = format!("user-{user}");
        let first = get_with(&gw.url("/c"), &[("x-user", &user)]).await.json()["server"].clone();
        for _ in 0..3 {
            let again =
                get_with(&gw.url("/c"), &[("x-user", &user)]).await.json()["server"].clone();
            assert_eq!(again, first, "{user} moved");
        }
        *seen
            .entry(first.as_str().unwrap_or("").to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "keys spread over every node: {seen:?}");
    // Without the header the client address is the key, so one client sticks to one node.
    let first = get(&gw.url("/c")).await.json()["server"].clone();
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/c")).await.json()["server"], first);
    }
}
