//! Retries and timeouts against real upstreams that refuse, hang, reset or answer slowly.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;

fn route(nodes: &[String], extra: &str) -> String {
    let nodes: Vec<String> = nodes.iter().map(|n| format!("\"{n}\": 1")).collect();
    format!(
        "routes:\n  - id: 1\n    uri: /r\n    upstream:\n      nodes: {{{}}}\n{extra}#END\n",
        nodes.join(", ")
    )
}

#[tokio::test]
async fn connect_failures_are_retried_on_the_next_node() {
    let good = upstream("good", Behaviour::Echo).await;
    let gw = gateway(&route(&[refused_node().await, good.node()], "")).await;
    for _ in 0..6 {
        let got = get(&gw.url("/r")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.json()["server"], "good");
    }
    // A POST is retried too when the connection never opened: nothing was sent.
    let req = http::Request::post(gw.url("/r"))
        .body(Full::new(Bytes::from_static(b"payload")))
        .expect("request");
    for _ in 0..4 {
        let got = send(&client(), req.clone()).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.json()["body"], "payload");
    }
}

#[tokio::test]
async fn retries_zero_gives_502_on_connect_failure() {
    let good = upstream("good", Behaviour::Echo).await;
    let gw = gateway(&route(
        &[refused_node().await, good.node()],
        "      retries: 0\n",
    ))
    .await;
    let statuses: Vec<u16> = futures_statuses(&gw, 6).await;
    assert!(statuses.contains(&502), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
}

async fn futures_statuses(gw: &TestGateway, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(&gw.url("/r")).await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn read_timeout_on_the_last_try_is_504() {
    let hang = upstream("hang", Behaviour::Hang).await;
    let gw = gateway(&route(
        &[hang.node()],
        "      timeout: {connect: 1, send: 0.1, read: 0.2}\n",
    ))
    .await;
    let start = Instant::now();
    let got = get(&gw.url("/r")).await;
    assert_eq!(got.status, 504);
    assert_eq!(got.json()["error_msg"], "504 Gateway Time-out");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn route_timeout_overrides_upstream_timeout() {
    let slow = upstream("slow", Behaviour::Slow(Duration::from_millis(400))).await;
    let yaml = format!(
        "routes:\n  - id: strict\n    uri: /strict\n    timeout: {{connect: 1, send: 0.05, read: 0.1}}\n    upstream: {{timeout: {{connect: 5, send: 5, read: 5}}, nodes: {{\"{0}\": 1}}}}\n  - id: lax\n    uri: /lax\n    upstream: {{timeout: {{connect: 5, send: 5, read: 5}}, nodes: {{\"{0}\": 1}}}}\n#END\n",
        slow.node()
    );
    let gw = gateway(&yaml).await;
    assert_eq!(get(&gw.url("/strict")).await.status, 504);
    assert_eq!(get(&gw.url("/lax")).await.status, 200);
}

#[tokio::test]
async fn timed_out_get_is_retried_but_post_is_not() {
    let hang = upstream("hang", Behaviour::Hang).await;
    let good = upstream("good", Behaviour::Echo).await;
    let gw = gateway(&route(
        &[hang.node(), good.node()],
        "      timeout: {connect: 1, send: 0.1, read: 0.2}\n",
    ))
    .await;
    for _ in 0..4 {
        let got = get(&gw.url("/r")).await;
        assert_eq!(got.status, 200, "GET retried after the timeout");
    }
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let req = http::Request::post(gw.url("/r"))
            .body(Full::new(Bytes::from_static(b"once")))
            .expect("request");
        statuses.push(send(&client(), req).await.status.as_u16());
    }
    // Round robin sends half the POSTs to the hanging node first; those are not re-sent.
    assert!(statuses.contains(&504), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
}

#[tokio::test]
async fn reset_connections_are_502_and_retried_for_get() {
    let reset = upstream("reset", Behaviour::Reset).await;
    let gw = gateway(&route(&[reset.node()], "")).await;
    let got = get(&gw.url("/r")).await;
    assert_eq!(got.status, 502);
    drop(gw);

    let good = upstream("good", Behaviour::Echo).await;
    let gw = gateway(&route(&[reset.node(), good.node()], "")).await;
    for _ in 0..4 {
        assert_eq!(get(&gw.url("/r")).await.status, 200);
    }
}

#[tokio::test]
async fn streamed_bodies_are_not_resent() {
    // The hanging node reads nothing; the body is handed to it, so a retry would lose it.
    // Bodies larger than client_body_buffer_size stream instead of being buffered.
    let reset = upstream("reset", Behaviour::Reset).await;
    let good = upstream("good", Behaviour::Echo).await;
    let gw = gateway_with(
        &route(&[reset.node(), good.node()], "      type: roundrobin\n"),
        "nginx_config:\n  http:\n    client_body_buffer_size: 64k\n",
    )
    .await;
    let body = "z".repeat(200_000);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let req = http::Request::put(gw.url("/r"))
            .body(Full::new(Bytes::from(body.clone())))
            .expect("request");
        let got = send(&client(), req).await;
        if got.status == 200 {
            assert_eq!(got.json()["body"].as_str().map(str::len), Some(body.len()));
        }
        seen.push(got.status.as_u16());
    }
    // PUT is idempotent, but once the body started streaming to the reset node it cannot be
    // sent again: those requests fail with 502 instead of reaching the good node without a body.
    assert!(seen.contains(&502), "{seen:?}");
    assert!(seen.contains(&200), "{seen:?}");
}

#[tokio::test]
async fn buffered_bodies_are_resent() {
    // A body read whole before connecting (the default, up to client_body_buffer_size) is
    // held in memory: a retry sends it again, as nginx does with a buffered body.
    let reset = upstream("reset", Behaviour::Reset).await;
    let good = upstream("good", Behaviour::Echo).await;
    let gw = gateway(&route(
        &[reset.node(), good.node()],
        "      type: roundrobin\n",
    ))
    .await;
    let body = "z".repeat(200_000);
    for _ in 0..4 {
        let req = http::Request::put(gw.url("/r"))
            .body(Full::new(Bytes::from(body.clone())))
            .expect("request");
        let got = send(&client(), req).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.json()["body"].as_str().map(str::len), Some(body.len()));
    }
}

#[tokio::test]
async fn retry_timeout_stops_retries() {
    let hang1 = upstream("hang1", Behaviour::Hang).await;
    let hang2 = upstream("hang2", Behaviour::Hang).await;
    let good = upstream("good", Behaviour::Echo).await;
    let gw = gateway(&format!(
        "routes:\n  - id: 1\n    uri: /r\n    upstream:\n      retry_timeout: 0.15\n      timeout: {{connect: 1, send: 0.1, read: 0.2}}\n      nodes: [{{host: 127.0.0.1, port: {}, weight: 1, priority: 2}}, {{host: 127.0.0.1, port: {}, weight: 1, priority: 1}}, {{host: 127.0.0.1, port: {}, weight: 1, priority: 0}}]\n#END\n",
        hang1.addr.port(),
        hang2.addr.port(),
        good.addr.port()
    ))
    .await;
    // Priority groups make the order hang1, hang2, good; the first try already outlasts
    // retry_timeout, so no second try starts.
    let got = get(&gw.url("/r")).await;
    assert_eq!(got.status, 502);
    assert_eq!(hang2.hits(), 0);
    assert_eq!(good.hits(), 0);
}

#[tokio::test]
async fn backup_nodes_serve_only_when_primaries_fail() {
    let primary = upstream("primary", Behaviour::Echo).await;
    let backup = upstream("backup", Behaviour::Echo).await;
    let yaml = |primary_port: u16| {
        format!(
            "routes:\n  - id: 1\n    uri: /r\n    upstream:\n      nodes: [{{host: 127.0.0.1, port: {primary_port}, weight: 1}}, {{host: 127.0.0.1, port: {}, weight: 1, priority: -1}}]\n#END\n",
            backup.addr.port()
        )
    };
    let gw = gateway(&yaml(primary.addr.port())).await;
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/r")).await.json()["server"], "primary");
    }
    let dead: u16 = refused_node()
        .await
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let v = gw.gateway.snapshot_version();
    gw.write_routes(&yaml(dead));
    gw.wait_for_version(v).await;
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/r")).await.json()["server"], "backup");
    }
}
