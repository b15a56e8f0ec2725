//! Graceful shutdown: stop accepting, let requests in flight finish, bounded by a deadline.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn requests_in_flight_finish_and_new_connections_are_refused() {
    let slow = upstream("slow", Behaviour::Slow(Duration::from_millis(400))).await;
    let gw = gateway(&format!(
        "routes:\n  - {{id: 1, uri: /slow, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
        slow.node()
    ))
    .await;
    let addr = gw.addr();
    let url = gw.url("/slow");
    let in_flight = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    gw.gateway.shutdown().await;
    let got = in_flight.await.expect("task");
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["server"], "slow");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "shutdown waited for the request"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn shutdown_deadline_bounds_the_wait() {
    let hang = upstream("hang", Behaviour::Hang).await;
    let gw = gateway_with(
        &format!(
            "routes:\n  - {{id: 1, uri: /hang, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
            hang.node()
        ),
        "nginx_config:\n  worker_shutdown_timeout: 0.3\n  http: {enable_access_log: false}\n",
    )
    .await;
    let url = gw.url("/hang");
    let _stuck = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    gw.gateway.shutdown().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
}
