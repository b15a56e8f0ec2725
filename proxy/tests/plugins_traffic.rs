//! The traffic plugins (`limit-count`, `limit-req`, `limit-conn`, `api-breaker`, `traffic-split`) through the
//! running gateway: configured with the Admin API on the embedded store, checked with real
//! requests as a client sees them.

mod common;

use std::time::{Duration, Instant};

use common::admin::*;
use common::*;
use serde_json::{json, Value};

/// Writes route `id` and waits until the gateway serves the new config (without sending a
/// request through it, which would use up the limits under test).
async fn install(gw: &TestGateway, admin: &Admin, id: &str, route: Value) {
    let before = gw.gateway.snapshot_version();
    let put = admin.put(&format!("/routes/{id}"), route).await;
    assert!(put.status.is_success(), "{id}: {:?}", put.body);
    gw.wait_for_version(before).await;
}

/// Sends `n` requests to `path` at once.
async fn concurrent(gw: &TestGateway, path: &str, n: usize) -> Vec<Got> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let url = gw.url(path);
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("request task"));
    }
    out
}

#[tokio::test]
async fn limit_count_headers_and_rejections() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let route = json!({"uri": "/count", "plugins": {"limit-count": {"count": 2, "time_window": 60, "rejected_code": 429, "rejected_msg": "slow down"}}, "upstream": {"nodes": {up.node(): 1}}});
    install(&gw, &admin, "count", route).await;
    for remaining in ["1", "0"] {
        let got = get(&gw.url("/count")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-ratelimit-limit"), Some("2"));
        assert_eq!(got.header("x-ratelimit-remaining"), Some(remaining));
        let reset: u64 = got
            .header("x-ratelimit-reset")
            .and_then(|r| r.parse().ok())
            .expect("reset");
        assert!((59..=60).contains(&reset), "{reset}");
    }
    let got = get(&gw.url("/count")).await;
    assert_eq!(got.status, 429);
    assert_eq!(got.json(), json!({"error_msg": "slow down"}));
    assert_eq!(got.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(got.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(
        up.hits(),
        2,
        "the rejected request did not reach the upstream"
    );

    // Per-header keys, the default 503 with no body, headers off.
    let route = json!({"uri": "/count", "plugins": {"limit-count": {"count": 1, "time_window": 60, "key": "http_x_user", "show_limit_quota_header": false}}, "upstream": {"nodes": {up.node(): 1}}});
    install(&gw, &admin, "count", route).await;
    let bob = get_with(&gw.url("/count"), &[("x-user", "bob")]).await;
    assert_eq!(bob.status, 200);
    assert!(bob.header("x-ratelimit-limit").is_none());
    assert_eq!(
        get_with(&gw.url("/count"), &[("x-user", "amy")])
            .await
            .status,
        200
    );
    let again = get_with(&gw.url("/count"), &[("x-user", "bob")]).await;
    assert_eq!(again.status, 503);
    assert!(again.body.is_empty(), "{:?}", again.body);

    // Configs the plugin refuses never reach the data plane.
    let bad = admin
        .put(
            "/routes/bad",
            json!({"uri": "/bad", "plugins": {"limit-count": {"count": 1, "time_window": 60, "policy": "redis"}}, "upstream": {"nodes": {up.node(): 1}}}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let why = bad.json()["error_msg"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(why.contains("not supported"), "{why}");
}

#[tokio::test]
async fn limit_req_rejects_or_delays() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let route = json!({"uri": "/req", "plugins": {"limit-req": {"rate": 1, "burst": 0, "key": "remote_addr", "rejected_msg": "too fast"}}, "upstream": {"nodes": {up.node(): 1}}});
    install(&gw, &admin, "req", route).await;
    assert_eq!(get(&gw.url("/req")).await.status, 200);
    let got = get(&gw.url("/req")).await;
    assert_eq!(got.status, 503);
    assert_eq!(got.json(), json!({"error_msg": "too fast"}));

    // Within the burst the second request waits 1 / rate; with nodelay it does not.
    let route = json!({"uri": "/req", "plugins": {"limit-req": {"rate": 5, "burst": 1, "key": "remote_addr"}}, "upstream": {"nodes": {up.node(): 1}}});
    install(&gw, &admin, "req", route).await;
    let start = Instant::now();
    assert_eq!(get(&gw.url("/req")).await.status, 200);
    assert_eq!(get(&gw.url("/req")).await.status, 200);
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    let route = json!({"uri": "/req", "plugins": {"limit-req": {"rate": 5, "burst": 1, "key": "remote_addr", "nodelay": true}}, "upstream": {"nodes": {up.node(): 1}}});
    install(&gw, &admin, "req", route).await;
    let start = Instant::now();
    assert_eq!(get(&gw.url("/req")).await.status, 200);
    assert_eq!(get(&gw.url("/req")).await.status, 200);
    assert!(
        start.elapsed() < Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(get(&gw.url("/req")).await.status, 503, "beyond the burst");
}

#[tokio::test]
async fn limit_conn_counts_requests_in_flight() {
    let up = upstream("slow", Behaviour::Slow(Duration::from_millis(300))).await;
    let (gw, admin) = embedded_gateway().await;
    let route = json!({"uri": "/conn", "plugins": {"limit-conn": {"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr", "rejected_code": 429}}, "upstream": {"nodes": {up.node(): 1}}});
    install(&gw, &admin, "conn", route).await;
    let mut statuses: Vec<u16> = concurrent(&gw, "/conn", 2)
        .await
        .iter()
        .map(|g| g.status.as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 429]);
    // Both finished: the count is back to zero.
    assert_eq!(get(&gw.url("/conn")).await.status, 200);

    // Within the burst: delayed by default_conn_delay, then served.
    let route = json!({"uri": "/conn", "plugins": {"limit-conn": {"conn": 1, "burst": 1, "default_conn_delay": 0.2, "only_use_default_delay": true, "key": "remote_addr", "rejected_code": 429}}, "upstream": {"nodes": {up.node(): 1}}});
    install(&gw, &admin, "conn", route).await;
    let start = Instant::now();
    let got = concurrent(&gw, "/conn", 2).await;
    assert!(got.iter().all(|g| g.status == 200));
    assert!(
        start.elapsed() >= Duration::from_millis(480),
        "one waited 0.2 s before its 0.3 s upstream: {:?}",
        start.elapsed()
    );

    // A request counted by limit-conn and then refused by limit-count gives its count back.
    let route = json!({"uri": "/conn", "plugins": {
        "limit-conn": {"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr", "rejected_code": 429},
        "limit-count": {"count": 1, "time_window": 60, "rejected_code": 403}
    }, "upstream": {"nodes": {up.node(): 1}}});
    install(&gw, &admin, "conn", route).await;
    assert_eq!(get(&gw.url("/conn")).await.status, 200);
    for _ in 0..3 {
        assert_eq!(
            get(&gw.url("/conn")).await.status,
            403,
            "limit-count answers, limit-conn has no leaked count"
        );
    }
}

#[tokio::test]
async fn api_breaker_opens_and_closes() {
    let up = upstream("bad", Behaviour::Status(500)).await;
    let (gw, admin) = embedded_gateway().await;
    let route = json!({"uri": "/breaker", "plugins": {"api-breaker": {
        "break_response_code": 502,
        "break_response_body": "{\"message\": \"breaker open\"}",
        "break_response_headers": [{"key": "Content-Type", "value": "application/json"}, {"key": "X-Breaker", "value": "open for $remote_addr"}],
        "unhealthy": {"http_statuses": [500], "failures": 2}
    }}, "upstream": {"nodes": {up.node(): 1}}});
    install(&gw, &admin, "breaker", route).await;
    assert_eq!(get(&gw.url("/breaker")).await.status, 500);
    assert_eq!(get(&gw.url("/breaker")).await.status, 500);
    let got = get(&gw.url("/breaker")).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.json(), json!({"message": "breaker open"}));
    assert_eq!(got.header("x-breaker"), Some("open for 127.0.0.1"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(up.hits(), 2, "the open breaker kept the upstream out");
    // Open for 2 s after the first trip, then requests go through again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get(&gw.url("/breaker")).await.status, 500);
    assert_eq!(up.hits(), 3);
}

/// The name of the echo upstream that answered.
fn server(got: &Got) -> String {
    assert_eq!(got.status, 200, "{:?}", got.body);
    got.json()["server"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn traffic_split_weights_matches_and_upstream_changes() {
    let a = upstream("a", Behaviour::Echo).await;
    let b = upstream("b", Behaviour::Echo).await;
    let own = upstream("own", Behaviour::Echo).await;
    let d = upstream("d", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let before = gw.gateway.snapshot_version();
    let put = admin
        .put("/upstreams/ua", json!({"nodes": {a.node(): 1}}))
        .await;
    assert!(put.status.is_success(), "{:?}", put.body);
    gw.wait_for_version(before).await;

    // 1:1 between a stored upstream and an inline one: they alternate.
    let split = json!({"rules": [{"weighted_upstreams": [
        {"upstream_id": "ua", "weight": 1},
        {"upstream": {"nodes": {b.node(): 1}}, "weight": 1}
    ]}]});
    install(&gw, &admin, "ts", json!({"uri": "/ts", "plugins": {"traffic-split": split}, "upstream": {"nodes": {own.node(): 1}}})).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(server(&get(&gw.url("/ts")).await));
    }
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "a").count(), 3, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "b").count(), 3, "{seen:?}");
    assert_eq!(own.hits(), 0);

    // A header match picks the stored upstream; otherwise the weight-only entry: the route's own.
    let split = json!({"rules": [
        {"match": [{"vars": [["http_x_canary", "==", "1"]]}], "weighted_upstreams": [{"upstream_id": "ua"}]},
        {"weighted_upstreams": [{"weight": 1}]}
    ]});
    install(&gw, &admin, "ts", json!({"uri": "/ts", "plugins": {"traffic-split": split}, "upstream": {"nodes": {own.node(): 1}}})).await;
    for _ in 0..2 {
        assert_eq!(
            server(&get_with(&gw.url("/ts"), &[("x-canary", "1")]).await),
            "a"
        );
        assert_eq!(server(&get(&gw.url("/ts")).await), "own");
        assert_eq!(
            server(&get_with(&gw.url("/ts"), &[("x-canary", "2")]).await),
            "own"
        );
    }

    // Changing the stored upstream takes effect for the route's split.
    let put = admin
        .put("/upstreams/ua", json!({"nodes": {d.node(): 1}}))
        .await;
    assert!(put.status.is_success(), "{:?}", put.body);
    let mut moved = false;
    for _ in 0..200 {
        if server(&get_with(&gw.url("/ts"), &[("x-canary", "1")]).await) == "d" {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(moved, "the changed upstream was never used");

    // The upstream cannot be deleted while the split uses it.
    let refused = admin.delete("/upstreams/ua").await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json()["error_msg"],
        "can not delete this upstream, plugin in route [ts] is still using it now"
    );
    let put = admin
        .put("/plugin_configs/pc", json!({"plugins": {"traffic-split": {"rules": [{"weighted_upstreams": [{"upstream_id": "ua"}]}]}}}))
        .await;
    assert!(put.status.is_success(), "{:?}", put.body);
    install(
        &gw,
        &admin,
        "ts",
        json!({"uri": "/ts", "upstream": {"nodes": {own.node(): 1}}}),
    )
    .await;
    let refused = admin.delete("/upstreams/ua").await;
    assert_eq!(
        refused.json()["error_msg"],
        "can not delete this upstream, plugin in plugin_config [pc] is still using it now"
    );
    assert!(admin.delete("/plugin_configs/pc").await.status.is_success());
    assert!(admin.delete("/upstreams/ua").await.status.is_success());
}

#[tokio::test]
async fn traffic_split_to_a_missing_upstream_is_a_500() {
    let own = upstream("own", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    for bad in [
        json!({"rules": [{"weighted_upstreams": [{"weight": -1}]}]}),
        json!({"rules": [{"match": [{"vars": [["arg_x", "~~~", "1"]]}]}]}),
        json!({"rules": [{"weighted_upstreams": [{"upstream": {"nodes": {own.node(): 1}, "type": "nope"}}]}]}),
    ] {
        let got = admin
            .put("/routes/bad", json!({"uri": "/bad", "plugins": {"traffic-split": bad}, "upstream": {"nodes": {own.node(): 1}}}))
            .await;
        assert_eq!(got.status, 400, "{bad}");
        assert!(got.json()["error_msg"]
            .as_str()
            .expect("message")
            .contains("failed to check the configuration of plugin traffic-split"));
    }
    let put = admin
        .put("/upstreams/gone", json!({"nodes": {own.node(): 1}}))
        .await;
    assert!(put.status.is_success());
    let split = json!({"rules": [
        {"match": [{"vars": [["arg_y", "==", "1"]]}], "weighted_upstreams": [{"weight": 1}]},
        {"match": [{"vars": [["arg_x", "==", "1"]]}], "weighted_upstreams": [{"upstream_id": "gone"}]}
    ]});
    apply(&gw, &admin, "/routes/m", json!({"uri": "/m", "plugins": {"traffic-split": split}, "upstream": {"nodes": {own.node(): 1}}}), "/m?x=1", 200).await;
    let forced = admin.delete("/upstreams/gone?force=true").await;
    assert!(forced.status.is_success(), "{:?}", forced.body);
    for _ in 0..200 {
        // As APISIX, the stored upstreams of every rule tried must exist.
        if get(&gw.url("/m?x=1")).await.status == 500 {
            assert_eq!(get(&gw.url("/m")).await.status, 500, "every rule tried");
            assert_eq!(
                get(&gw.url("/m?y=1")).await.status,
                200,
                "a rule before the one naming it: the route's own upstream"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a split to a deleted upstream never answered 500");
}
