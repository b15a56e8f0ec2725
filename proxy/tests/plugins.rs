//! Plugins through the running gateway: configured with the Admin API (and the standalone file),
//! checked with real requests against a real upstream.

mod common;

use std::time::Duration;

use common::admin::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn request_id_goes_upstream_and_back() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let route =
        json!({"uri": "/id", "plugins": {"request-id": {}}, "upstream": {"nodes": {up.node(): 1}}});
    apply(&gw, &admin, "/routes/id", route, "/id", 200).await;
    let got = get(&gw.url("/id")).await;
    let sent = got
        .upstream_header("x-request-id")
        .expect("upstream got an id");
    assert_eq!(
        got.header("x-request-id"),
        Some(sent.as_str()),
        "same id in the response"
    );
    assert_eq!(sent.len(), 36, "a uuid: {sent}");
    let kept = get_with(&gw.url("/id"), &[("x-request-id", "mine-1")]).await;
    assert_eq!(
        kept.upstream_header("x-request-id").as_deref(),
        Some("mine-1")
    );
    assert_eq!(kept.header("x-request-id"), Some("mine-1"));

    let custom = json!({"uri": "/id", "plugins": {"request-id": {"header_name": "X-Trace", "include_in_response": false, "algorithm": "nanoid"}}, "upstream": {"nodes": {up.node(): 1}}});
    assert!(admin.put("/routes/id", custom).await.status.is_success());
    for _ in 0..200 {
        if get(&gw.url("/id"))
            .await
            .upstream_header("x-trace")
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = get(&gw.url("/id")).await;
    assert_eq!(got.upstream_header("x-trace").map(|v| v.len()), Some(21));
    assert!(got.header("x-trace").is_none(), "not in the response");
}

#[tokio::test]
async fn ip_restriction_and_meta() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let blocked = json!({"uri": "/ip", "plugins": {"ip-restriction": {"blacklist": ["127.0.0.0/8"]}}, "upstream": {"nodes": {up.node(): 1}}});
    apply(&gw, &admin, "/routes/ip", blocked, "/ip", 403).await;
    let got = get(&gw.url("/ip")).await;
    assert_eq!(
        got.json(),
        json!({"message": "Your IP address is not allowed"})
    );
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(up.hits(), 0, "the upstream never saw a refused request");

    let custom = json!({"uri": "/ip", "plugins": {"ip-restriction": {"blacklist": ["127.0.0.1"], "response_code": 404, "message": "go away", "_meta": {"error_response": {"error": "custom"}}}}, "upstream": {"nodes": {up.node(): 1}}});
    apply(&gw, &admin, "/routes/ip", custom, "/ip", 404).await;
    assert_eq!(get(&gw.url("/ip")).await.json(), json!({"error": "custom"}));

    let filtered = json!({"uri": "/ip", "plugins": {"ip-restriction": {"blacklist": ["127.0.0.1"], "_meta": {"filter": [["arg_block", "==", "yes"]]}}}, "upstream": {"nodes": {up.node(): 1}}});
    apply(&gw, &admin, "/routes/ip", filtered, "/ip", 200).await;
    assert_eq!(
        get(&gw.url("/ip?block=yes")).await.status,
        403,
        "the filter holds"
    );

    let allowed = json!({"uri": "/ip", "plugins": {"ip-restriction": {"whitelist": ["127.0.0.1"]}}, "upstream": {"nodes": {up.node(): 1}}});
    apply(&gw, &admin, "/routes/ip", allowed, "/ip?block=yes", 200).await;

    let disabled = json!({"uri": "/ip", "plugins": {"ip-restriction": {"blacklist": ["127.0.0.1"], "_meta": {"disable": true}}}, "upstream": {"nodes": {up.node(): 1}}});
    assert!(admin.put("/routes/ip", disabled).await.status.is_success());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        get(&gw.url("/ip")).await.status,
        200,
        "a disabled plugin does not run"
    );
}

#[tokio::test]
async fn global_rules_services_and_plugin_configs_merge() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    assert!(admin
        .put("/services/s", json!({"plugins": {"request-id": {"header_name": "X-From-Service"}}, "upstream": {"nodes": {up.node(): 1}}}))
        .await
        .status
        .is_success());
    assert!(admin
        .put(
            "/plugin_configs/pc",
            json!({"plugins": {"request-id": {"header_name": "X-From-Config"}}})
        )
        .await
        .status
        .is_success());
    apply(
        &gw,
        &admin,
        "/routes/svc",
        json!({"uri": "/svc", "service_id": "s"}),
        "/svc",
        200,
    )
    .await;
    assert!(
        get(&gw.url("/svc"))
            .await
            .upstream_header("x-from-service")
            .is_some(),
        "service plugins apply"
    );
    apply(
        &gw,
        &admin,
        "/routes/svc",
        json!({"uri": "/svc", "service_id": "s", "plugin_config_id": "pc"}),
        "/svc",
        200,
    )
    .await;
    for _ in 0..200 {
        if get(&gw.url("/svc"))
            .await
            .upstream_header("x-from-config")
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = get(&gw.url("/svc")).await;
    assert!(
        got.upstream_header("x-from-config").is_some(),
        "plugin config wins over the service"
    );
    assert!(got.upstream_header("x-from-service").is_none());

    // A global rule applies to every route.
    apply(
        &gw,
        &admin,
        "/global_rules/g",
        json!({"plugins": {"ip-restriction": {"blacklist": ["127.0.0.1"]}}}),
        "/svc",
        403,
    )
    .await;
    // It runs where no route matched too (as APISIX): the 404 becomes its 403.
    assert_eq!(get(&gw.url("/no/such/route")).await.status, 403);
    assert_eq!(admin.delete("/global_rules/g").await.status, 200);
    for _ in 0..200 {
        if get(&gw.url("/svc")).await.status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("removing the global rule did not reopen the route");
}

#[tokio::test]
async fn global_rules_run_without_a_route() {
    let (gw, admin) = embedded_gateway().await;
    // A global rule that lets requests through: the 404 still comes, with its header.
    apply(
        &gw,
        &admin,
        "/global_rules/g",
        json!({"plugins": {"response-rewrite": {"headers": {"set": {"X-Global": "yes"}}}}}),
        "/nothing",
        404,
    )
    .await;
    for _ in 0..200 {
        let got = get(&gw.url("/nothing")).await;
        if got.header("x-global") == Some("yes") {
            assert_eq!(got.status, 404);
            assert!(got
                .body
                .starts_with(b"{\"error_msg\":\"404 Route Not Found"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the global rule never ran on an unmatched request");
}

#[tokio::test]
async fn plugins_from_the_standalone_file() {
    let up = upstream("a", Behaviour::Echo).await;
    let yaml = format!(
        "global_rules:\n  - id: g\n    plugins:\n      request-id: {{}}\nroutes:\n  - id: r\n    uri: /f\n    plugins:\n      ip-restriction: {{whitelist: [127.0.0.1]}}\n    upstream: {{nodes: {{\"{}\": 1}}}}\n#END\n",
        up.node()
    );
    let gw = gateway(&yaml).await;
    let got = get(&gw.url("/f")).await;
    assert_eq!(got.status, 200);
    assert!(got.header("x-request-id").is_some(), "the global rule runs");
    // An item with an invalid plugin config refuses the whole file: the route it adds never
    // serves and the current config stays.
    let version = gw.gateway.snapshot_version();
    gw.write_routes(&yaml.replace(
        "#END",
        &format!(
            "  - id: bad\n    uri: /bad\n    plugins:\n      ip-restriction: {{whitelist: []}}\n    upstream: {{nodes: {{\"{}\": 1}}}}\n#END",
            up.node()
        ),
    ));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(gw.gateway.snapshot_version(), version);
    assert_eq!(get(&gw.url("/bad")).await.status, 404);
    assert_eq!(get(&gw.url("/f")).await.status, 200);
}

/// Each gateway holds its own plugin registry, built from its `plugins:` list: two gateways in
/// one process, one with `request-id` and one without, answer for their own list.
#[tokio::test]
async fn two_gateways_in_one_process_keep_their_own_plugin_lists() {
    let up = upstream("a", Behaviour::Echo).await;
    let start = |plugins: &'static str| async move {
        let gw = start_in(
            tempfile::tempdir().expect("tempdir"),
            &format!("{}plugins: [{plugins}]\n", embedded_config()),
        )
        .await;
        let admin = Admin::for_gateway(&gw);
        (gw, admin)
    };
    let (with_gw, with_admin) = start("request-id, key-auth").await;
    let (without_gw, without_admin) = start("key-auth").await;
    let route = json!({
        "uri": "/r",
        "plugins": {"request-id": {}},
        "upstream": {"nodes": {up.node(): 1}, "type": "roundrobin"}
    });

    let written = with_admin.put("/routes/1", route.clone()).await;
    assert_eq!(written.status, 201, "{:?}", written.body);
    let refused = without_admin.put("/routes/1", route).await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(
        refused.json()["error_msg"],
        "unknown plugin [request-id]",
        "{:?}",
        refused.body
    );

    let listed = |got: Got| got.json().as_array().cloned().unwrap_or_default();
    let with_list = listed(with_admin.get("/plugins/list").await);
    let without_list = listed(without_admin.get("/plugins/list").await);
    assert!(with_list.contains(&json!("request-id")), "{with_list:?}");
    assert!(
        !without_list.contains(&json!("request-id")),
        "{without_list:?}"
    );

    // Both serve at once, each as its own list says.
    let mut answered = None;
    for _ in 0..100 {
        let got = get(&with_gw.url("/r")).await;
        if got.status == 200 {
            answered = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered = answered.expect("the route of the gateway with request-id serves");
    assert!(answered.header("x-request-id").is_some());
    assert_eq!(get(&without_gw.url("/r")).await.status, 404);
}
