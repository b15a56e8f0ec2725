//! csrf and prometheus through the running gateway (embedded store, Admin API), checked as a
//! client sees them.

mod common;

use std::time::Duration;

use common::admin::*;
use common::*;
use http::Method;
use serde_json::json;

#[tokio::test]
async fn csrf() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let route = json!({"uri": "/csrf", "plugins": {"csrf": {"key": "s3cret"}},
        "upstream": {"nodes": {up.node(): 1}}});
    apply(&gw, &admin, "/routes/csrf", route, "/csrf", 200).await;

    let got = get(&gw.url("/csrf")).await;
    assert_eq!(got.status, 200);
    let cookie = got.header("set-cookie").expect("a csrf cookie").to_owned();
    assert!(cookie.contains(";path=/;SameSite=Lax;Expires="), "{cookie}");
    let token = cookie
        .split(';')
        .next()
        .and_then(|p| p.strip_prefix("apisix-csrf-token="))
        .expect("the token")
        .to_owned();

    let before = up.hits();
    let got = request(Method::POST, &gw.url("/csrf"), &[]).await;
    assert_eq!(got.status, 401);
    assert_eq!(got.json(), json!({"error_msg": "no csrf token in headers"}));
    let cookie_header = format!("apisix-csrf-token={token}");
    let got = request(
        Method::POST,
        &gw.url("/csrf"),
        &[("apisix-csrf-token", "other"), ("cookie", &cookie_header)],
    )
    .await;
    assert_eq!(got.status, 401);
    assert_eq!(got.json(), json!({"error_msg": "csrf token mismatch"}));
    assert_eq!(up.hits(), before, "refused requests stay at the gateway");

    let got = request(
        Method::POST,
        &gw.url("/csrf"),
        &[("apisix-csrf-token", &token), ("cookie", &cookie_header)],
    )
    .await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert_eq!(up.hits(), before + 1);
}

#[tokio::test]
async fn prometheus() {
    let up = upstream("a", Behaviour::Echo).await;
    let gw = gateway_with(
        &format!(
            "routes:\n  - id: r1\n    uri: /metered\n    plugins: {{prometheus: {{}}}}\n    upstream: {{nodes: {{\"{}\": 1}}}}\n#END\n",
            up.node()
        ),
        "plugin_attr:\n  prometheus:\n    export_addr: {ip: 127.0.0.1, port: 0}\n",
    )
    .await;
    let exporter = gw
        .gateway
        .prometheus_addr()
        .expect("the exporter is served");
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/metered")).await.status, 200);
    }
    let node = up.node();
    let host = node.rsplit_once(':').map_or(node.as_str(), |(h, _)| h);
    let series =
        format!(r#"apisix_http_status{{code="200",route="r1",service="",node="{host}"}} 3"#);
    // The log phase runs after the response is sent: wait for the third request's record.
    let mut text = String::new();
    for _ in 0..200 {
        let got = get(&format!("http://{exporter}/apisix/prometheus/metrics")).await;
        assert_eq!(got.status, 200);
        assert_eq!(
            got.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        text = String::from_utf8_lossy(&got.body).into_owned();
        if text.lines().any(|l| l == series) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(text.lines().any(|l| l == series), "{series} in\n{text}");
    let latency = format!(
        r#"apisix_http_latency_count{{type="request",route="r1",service="",node="{host}"}} 3"#
    );
    assert!(text.lines().any(|l| l == latency), "{latency} in\n{text}");
    assert!(text.contains(r#"apisix_bandwidth{type="egress",route="r1","#));
    // Node-level figures: this gateway's connections and requests (each `get` is a new
    // connection), no etcd.
    let gauge = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{text}"))
    };
    assert!(gauge(r#"apisix_nginx_http_current_connections{state="accepted"}"#) >= 3);
    assert!(gauge("apisix_http_requests_total") >= 3);
    assert!(!text.contains("apisix_etcd_reachable"));
    let other = get(&format!("http://{exporter}/other")).await;
    assert_eq!(other.status, 404);
}
