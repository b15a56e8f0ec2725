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

/// The exporter's text once `ready` holds for it (the log phase runs after the response is sent).
async fn scrape_until(exporter: std::net::SocketAddr, ready: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..200 {
        let got = get(&format!("http://{exporter}/apisix/prometheus/metrics")).await;
        assert_eq!(got.status, 200);
        assert_eq!(
            got.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        text = String::from_utf8_lossy(&got.body).into_owned();
        if ready(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    text
}

/// The label values every request has here.
const FIXED: &str = r#"request_type="traditional_http",request_llm_model="",llm_model="""#;

#[tokio::test]
async fn prometheus() {
    let up = upstream("a", Behaviour::Echo).await;
    let gw = gateway_with(
        &format!(
            "routes:\n  - id: r1\n    uri: /metered\n    plugins: {{prometheus: {{}}}}\n    upstream: {{nodes: {{\"{node}\": 1}}}}\n  \
             - id: r2\n    uri: /keyed\n    plugins: {{prometheus: {{}}, key-auth: {{}}}}\n    upstream: {{nodes: {{\"{node}\": 1}}}}\n  \
             - id: r3\n    uri: /down\n    plugins: {{prometheus: {{}}}}\n    upstream: {{nodes: {{\"127.0.0.1:1\": 1}}}}\n  \
             - id: r4\n    uris: [/foo*, /bar/*]\n    hosts: [foo.com, \"*.Bar.com\"]\n    plugins: {{prometheus: {{}}}}\n    upstream: {{nodes: {{\"{node}\": 1}}}}\n  \
             - id: r5\n    uri: /logged\n    plugins: {{http-logger: {{uri: \"http://127.0.0.1:9/\", inactive_timeout: 30}}}}\n    upstream: {{nodes: {{\"{node}\": 1}}}}\n\
             global_rules:\n  - id: g1\n    plugins: {{prometheus: {{}}}}\n\
             consumers:\n  - username: jack\n    plugins: {{key-auth: {{key: auth-one}}}}\n#END\n",
            node = up.node()
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
    // APISIX 3.18's label sets (prometheus.t, prometheus2.t TEST 7-8 for `consumer`); the
    // global rule's instance stands aside for the route's, so each request counts once.
    let series = format!(
        r#"apisix_http_status{{code="200",route="r1",matched_uri="/metered",matched_host="",service="",consumer="",node="{host}",{FIXED},response_source="upstream"}} 3"#
    );
    let text = scrape_until(exporter, |t| t.lines().any(|l| l == series)).await;
    assert!(text.lines().any(|l| l == series), "{series} in\n{text}");
    let common = format!(r#"route="r1",service="",consumer="",node="{host}",{FIXED}"#);
    for kind in ["request", "upstream", "apisix"] {
        let latency = format!(r#"apisix_http_latency_count{{type="{kind}",{common}}} 3"#);
        assert!(text.lines().any(|l| l == latency), "{latency} in\n{text}");
    }
    // Egress: the echoed bodies; ingress: the requests' heads (no bodies).
    for kind in ["egress", "ingress"] {
        let bytes = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(r#"apisix_bandwidth{{type="{kind}",{common}}} "#))?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{kind} bandwidth in\n{text}"));
        assert!(bytes > 3 * 40, "{kind}: {bytes}");
    }
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

    // The consumer label, and a response a plugin made (key-auth's 401): no node, no upstream
    // latency, `response_source="apisix"`.
    let got = request(Method::GET, &gw.url("/keyed"), &[("apikey", "auth-one")]).await;
    assert_eq!(got.status, 200);
    let got = get(&gw.url("/keyed")).await;
    assert_eq!(got.status, 401);
    assert_eq!(got.json(), json!({"message": "Missing API key in request"}));
    // An upstream that cannot be reached: the gateway's 502, `response_source="nginx"`.
    assert_eq!(get(&gw.url("/down")).await.status, 502);
    let keyed = format!(
        r#"apisix_http_status{{code="200",route="r2",matched_uri="/keyed",matched_host="",service="",consumer="jack",node="{host}",{FIXED},response_source="upstream"}} 1"#
    );
    let refused = format!(
        r#"apisix_http_status{{code="401",route="r2",matched_uri="/keyed",matched_host="",service="",consumer="",node="",{FIXED},response_source="apisix"}} 1"#
    );
    let down = format!(
        r#"apisix_http_status{{code="502",route="r3",matched_uri="/down",matched_host="",service="",consumer="",node="127.0.0.1",{FIXED},response_source="nginx"}} 1"#
    );
    let text = scrape_until(exporter, |t| {
        [&keyed, &refused, &down]
            .iter()
            .all(|s| t.lines().any(|l| l == s.as_str()))
    })
    .await;
    for s in [&keyed, &refused, &down] {
        assert!(text.lines().any(|l| l == s.as_str()), "{s} in\n{text}");
    }
    let no_node = format!(r#"route="r2",service="",consumer="",node="",{FIXED}"#);
    assert!(text
        .lines()
        .any(|l| l == format!(r#"apisix_http_latency_count{{type="request",{no_node}}} 1"#)));
    assert!(
        !text.contains(&format!(r#"type="upstream",{no_node}"#)),
        "no upstream latency without an upstream"
    );

    // The patterns that matched (prometheus2.t TEST 12-15): the route's `uri` and host patterns
    // as configured (hosts lowercased), whichever of them matched the request.
    for (path, host) in [("/foo1", "foo.com"), ("/bar/x", "a.bar.com")] {
        let got = request(Method::GET, &gw.url(path), &[("host", host)]).await;
        assert_eq!(got.status, 200);
    }
    // A logger's batch queue, under the route and server address of its first request.
    assert_eq!(get(&gw.url("/logged")).await.status, 200);
    // A request no route matched counts under the global rule's instance, without patterns.
    assert_eq!(get(&gw.url("/nowhere")).await.status, 404);
    let foo = format!(
        r#"apisix_http_status{{code="200",route="r4",matched_uri="/foo*",matched_host="foo.com",service="",consumer="",node="{host}",{FIXED},response_source="upstream"}} 1"#
    );
    let bar = format!(
        r#"apisix_http_status{{code="200",route="r4",matched_uri="/bar/*",matched_host="*.bar.com",service="",consumer="",node="{host}",{FIXED},response_source="upstream"}} 1"#
    );
    let none = format!(
        r#"apisix_http_status{{code="404",route="",matched_uri="",matched_host="",service="",consumer="",node="",{FIXED},response_source="apisix"}} 1"#
    );
    let batch = r#"apisix_batch_process_entries{name="http logger",route_id="r5",server_addr="127.0.0.1"} 1"#.to_owned();
    let text = scrape_until(exporter, |t| {
        [&foo, &bar, &none, &batch]
            .iter()
            .all(|s| t.lines().any(|l| l == s.as_str()))
    })
    .await;
    for s in [&foo, &bar, &none, &batch] {
        assert!(text.lines().any(|l| l == s.as_str()), "{s} in\n{text}");
    }
}
