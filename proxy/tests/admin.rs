//! The Admin API on the embedded store, as an APISIX user drives it: real gateway, real HTTP,
//! real upstreams; every answer checked against APISIX's envelopes, codes and messages.

mod common;

use std::time::Duration;

use common::admin::*;
use common::*;
use http::Method;
use serde_json::{json, Value};

/// Runs each named test on the embedded store and on a real etcd.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test]
            async fn embedded() {
                super::$name(Backend::Embedded).await;
            }

            #[tokio::test]
            async fn etcd() {
                super::$name(Backend::Etcd).await;
            }
        }
    )*};
}

on_both_backends!(
    route_lifecycle_with_apisix_envelopes,
    post_ids_and_id_rules,
    invalid_bodies_are_refused_and_change_nothing,
    references_are_checked_on_write_and_delete,
    patch_merges_and_replaces_sub_paths,
    lists_page_and_filter,
    auth_roles_and_headers,
    consumers_and_credentials,
    other_resources_round_trip,
    ttl_expires_the_object,
);

/// Polls the proxy until `path` answers `status` (a write is live), or fails after 2 s.
async fn until_status(gw: &TestGateway, path: &str, status: u16) {
    for _ in 0..200 {
        if get(&gw.url(path)).await.status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path} never answered {status}");
}

fn route(uri: &str, node: &str) -> Value {
    json!({"uri": uri, "upstream": {"type": "roundrobin", "nodes": {node: 1}}})
}

async fn route_lifecycle_with_apisix_envelopes(backend: Backend) {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = admin_gateway(backend).await;

    let created = admin.put("/routes/1", route("/hello", &up.node())).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.header("x-api-version"), Some("v3"));
    assert_eq!(created.header("content-type"), Some("application/json"));
    let body = created.json();
    assert_eq!(body["key"], "/apisix/routes/1");
    assert_eq!(body["value"]["id"], "1");
    assert_eq!(body["value"]["uri"], "/hello");
    let created_at = body["value"]["create_time"].as_i64().expect("create_time");
    assert!(body["value"]["update_time"].is_i64());
    until_status(&gw, "/hello", 200).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let replaced = admin.put("/routes/1", route("/hello2", &up.node())).await;
    assert_eq!(replaced.status, 200, "replacing answers 200");
    let value = &replaced.json()["value"];
    assert_eq!(value["create_time"].as_i64(), Some(created_at));
    assert!(value["update_time"].as_i64().expect("update_time") > created_at);
    until_status(&gw, "/hello2", 200).await;
    assert_eq!(get(&gw.url("/hello")).await.status, 404);

    let one = admin.get("/routes/1").await;
    assert_eq!(one.status, 200);
    let one = one.json();
    assert!(
        one["createdIndex"].as_i64().expect("createdIndex")
            < one["modifiedIndex"].as_i64().expect("modifiedIndex")
    );
    let list = admin.get("/routes").await.json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["list"][0]["key"], "/apisix/routes/1");

    let deleted = admin.delete("/routes/1").await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.json(),
        json!({"deleted": "1", "key": "/apisix/routes/1"})
    );
    let missing = admin.get("/routes/1").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), json!({"message": "Key not found"}));
    assert_eq!(admin.delete("/routes/1").await.status, 404);
    until_status(&gw, "/hello2", 404).await;
    assert_eq!(
        admin.get("/routes").await.json(),
        json!({"list": [], "total": 0})
    );
}

async fn post_ids_and_id_rules(backend: Backend) {
    let (_gw, admin) = admin_gateway(backend).await;
    let node = "127.0.0.1:1980";
    let a = admin.post("/routes", route("/a", node)).await;
    assert_eq!(a.status, 201);
    let id = a.json()["value"]["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 20);
    assert!(id.bytes().all(|b| b.is_ascii_digit()));
    let b = admin.post("/routes", route("/b", node)).await.json();
    assert!(b["value"]["id"].as_str().expect("id") > id.as_str());

    let cases = [
        (
            Method::POST,
            "/routes",
            json!({"id": "x", "uri": "/x", "upstream_id": "u"}),
            "wrong route id, do not need it",
        ),
        (
            Method::PUT,
            "/routes",
            route("/x", node),
            "missing route id",
        ),
        (
            Method::PUT,
            "/routes/1",
            json!({"id": "2", "uri": "/x", "upstream": {"nodes": {node: 1}}}),
            "wrong route id",
        ),
        (
            Method::PUT,
            "/routes/1",
            json!({"uri": "/x", "create_time": 1, "upstream": {"nodes": {node: 1}}}),
            "the property is forbidden:  create_time",
        ),
        (
            Method::PUT,
            "/services/s",
            json!({"upstream": {"nodes": {node: 1}, "update_time": 1}}),
            "the property is forbidden:  update_time",
        ),
        (
            Method::PATCH,
            "/routes",
            json!({"uri": "/x"}),
            "missing route id",
        ),
    ];
    for (method, path, body, message) in cases {
        let got = admin.call(method.clone(), path, &body.to_string()).await;
        assert_eq!(got.status, 400, "{method} {path}");
        assert_eq!(got.json()["error_msg"], message, "{method} {path}");
    }
    // A route id given in the body of a PUT to the collection is used.
    let put = admin
        .put(
            "/routes",
            json!({"id": 7, "uri": "/seven", "upstream": {"nodes": {node: 1}}}),
        )
        .await;
    assert_eq!(put.status, 201);
    assert_eq!(put.json()["key"], "/apisix/routes/7");
    assert_eq!(
        admin.get("/routes").await.json()["total"],
        3,
        "rejected writes wrote nothing"
    );
}

async fn invalid_bodies_are_refused_and_change_nothing(backend: Backend) {
    let (_gw, admin) = admin_gateway(backend).await;
    assert_eq!(
        admin
            .put("/routes/1", route("/ok", "127.0.0.1:1980"))
            .await
            .status,
        201
    );
    let before = admin.get("/routes/1").await.json();

    let broken = admin.call(Method::PUT, "/routes/1", "{\"uri\": ").await;
    assert_eq!(broken.status, 400);
    let msg = broken.json()["error_msg"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(msg.starts_with("invalid request body: "), "{msg}");

    let typo = admin
        .put("/routes/1", json!({"uri": "/ok", "upstrem": {}}))
        .await;
    assert_eq!(typo.status, 400);
    let msg = typo.json()["error_msg"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(
        msg.starts_with("invalid configuration: ") && msg.contains("upstrem"),
        "{msg}"
    );

    let both = admin
        .put(
            "/routes/1",
            json!({"uri": "/ok", "host": "a.com", "hosts": ["b.com"], "upstream_id": "u"}),
        )
        .await;
    assert_eq!(both.status, 400);
    assert!(both.json()["error_msg"]
        .as_str()
        .expect("message")
        .contains("only one of host or hosts is allowed"));

    let plugin = admin
        .put(
            "/routes/1",
            json!({"uri": "/ok", "plugins": {"no-such-plugin": {}}, "upstream_id": "u"}),
        )
        .await;
    assert_eq!(plugin.status, 400);
    assert!(plugin.json()["error_msg"]
        .as_str()
        .expect("message")
        .contains("unknown plugin [no-such-plugin]"));

    let not_object = admin.call(Method::PUT, "/routes/1", "[1]").await;
    assert_eq!(not_object.status, 400);
    let empty = admin.call(Method::PUT, "/routes/1", "").await;
    assert_eq!(empty.status, 400);

    let huge = format!(
        "{{\"uri\":\"/ok\",\"desc\":\"{}\"}}",
        "x".repeat(MAX_ADMIN_BODY + 1)
    );
    let too_big = admin.call(Method::PUT, "/routes/1", &huge).await;
    assert_eq!(too_big.status, 413);

    assert_eq!(
        admin.get("/routes/1").await.json(),
        before,
        "nothing changed"
    );
}

/// APISIX's Admin API body limit (1.5 MiB).
const MAX_ADMIN_BODY: usize = 1536 * 1024;

async fn references_are_checked_on_write_and_delete(backend: Backend) {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = admin_gateway(backend).await;
    let dangling = admin
        .put("/routes/r1", json!({"uri": "/r", "upstream_id": "u1"}))
        .await;
    assert_eq!(dangling.status, 400);
    assert_eq!(
        dangling.json()["error_msg"],
        "failed to fetch upstream info by upstream id [u1], response code: 404"
    );
    let svc = admin
        .put("/routes/r1", json!({"uri": "/r", "service_id": "s1"}))
        .await;
    assert_eq!(
        svc.json()["error_msg"],
        "failed to fetch service info by service id [s1], response code: 404"
    );

    assert_eq!(
        admin
            .put("/upstreams/u1", json!({"nodes": {up.node(): 1}}))
            .await
            .status,
        201
    );
    assert_eq!(
        admin
            .put("/services/s1", json!({"upstream_id": "u1"}))
            .await
            .status,
        201
    );
    assert_eq!(
        admin
            .put("/routes/r1", json!({"uri": "/r", "service_id": "s1"}))
            .await
            .status,
        201
    );
    until_status(&gw, "/r", 200).await;

    let refused = admin.delete("/upstreams/u1").await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json()["error_msg"],
        "can not delete this upstream, service [s1] is still using it now"
    );
    let refused = admin.delete("/services/s1").await;
    assert_eq!(
        refused.json()["error_msg"],
        "can not delete this service directly, route [r1] is still using it now"
    );
    let forced = admin
        .call(Method::DELETE, "/services/s1?force=true", "")
        .await;
    assert_eq!(forced.status, 200);
    // APISIX: a route whose service is gone answers 404.
    until_status(&gw, "/r", 404).await;
}

async fn patch_merges_and_replaces_sub_paths(backend: Backend) {
    let a = upstream("a", Behaviour::Echo).await;
    let b = upstream("b", Behaviour::Echo).await;
    let (gw, admin) = admin_gateway(backend).await;
    let put = admin
        .put(
            "/routes/p",
            json!({"uri": "/p", "methods": ["GET", "POST"], "desc": "d", "upstream": {"nodes": {a.node(): 1}}}),
        )
        .await;
    assert_eq!(put.status, 201);
    let before = admin.get("/routes/p").await.json();

    let patched = admin
        .patch(
            "/routes/p",
            json!({"methods": ["GET"], "desc": null, "upstream": {"nodes": {a.node(): null, b.node(): 1}}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let value = &patched.json()["value"];
    assert_eq!(value["methods"], json!(["GET"]), "arrays are replaced");
    assert!(value.get("desc").is_none(), "null deletes");
    assert_eq!(value["upstream"]["nodes"], json!({b.node(): 1}));
    assert_eq!(value["create_time"], before["value"]["create_time"]);
    let after = admin.get("/routes/p").await.json();
    assert!(after["modifiedIndex"].as_i64() > before["modifiedIndex"].as_i64());
    for _ in 0..200 {
        let got = get(&gw.url("/p")).await;
        if got.header("x-upstream") == Some("b") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(get(&gw.url("/p")).await.header("x-upstream"), Some("b"));

    let sub = admin.patch("/routes/p/uri", json!("/q")).await;
    assert_eq!(sub.status, 200);
    assert_eq!(sub.json()["value"]["uri"], "/q");
    let sub = admin
        .patch("/routes/p/upstream/nodes", json!({a.node(): 2}))
        .await;
    assert_eq!(
        sub.json()["value"]["upstream"]["nodes"],
        json!({a.node(): 2})
    );
    let bad = admin.patch("/routes/p/uri/deeper", json!(1)).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error_msg"], "invalid sub-path: /uri/deeper");
    let invalid = admin.patch("/routes/p", json!({"uri": 5})).await;
    assert_eq!(invalid.status, 400, "the merged result is validated");
    let empty = admin.call(Method::PATCH, "/routes/p", "").await;
    assert_eq!(empty.json()["error_msg"], "missing new configuration");
    assert_eq!(
        admin
            .patch("/routes/nope", json!({"uri": "/x"}))
            .await
            .status,
        404
    );
    assert_eq!(admin.get("/routes/p").await.json()["value"]["uri"], "/q");
}

async fn lists_page_and_filter(backend: Backend) {
    let (_gw, admin) = admin_gateway(backend).await;
    for i in 0..25 {
        let name = if i % 5 == 0 { "five" } else { "other" };
        let body = json!({"uri": format!("/r{i}"), "name": name, "labels": {"n": format!("{i}")}, "upstream": {"nodes": {"127.0.0.1:1980": 1}}});
        assert_eq!(admin.put(&format!("/routes/r{i}"), body).await.status, 201);
    }
    let bad = admin.get("/routes?page=1&page_size=5").await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body, "page_size must be between 10 and 500",
        "APISIX answers with the bare message"
    );
    let page = admin.get("/routes?page=3&page_size=10").await.json();
    assert_eq!(page["total"], 25);
    let keys: Vec<&str> = page["list"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["key"].as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "/apisix/routes/r20",
            "/apisix/routes/r21",
            "/apisix/routes/r22",
            "/apisix/routes/r23",
            "/apisix/routes/r24"
        ],
        "paged by creation order"
    );
    let named = admin.get("/routes?name=^five$").await.json();
    assert_eq!(named["total"], 5);
    let uri = admin.get("/routes?uri=/r1[0-9]").await.json();
    assert_eq!(uri["total"], 10);
}

async fn auth_roles_and_headers(backend: Backend) {
    let (_gw, admin) = admin_gateway(backend).await;
    let anonymous = admin.with_key("");
    let got = anonymous.get("/routes").await;
    assert_eq!(got.status, 401);
    assert_eq!(
        got.json(),
        json!({"error_msg": "failed to check token", "description": "missing apikey"})
    );
    let got = admin.with_key("wrong").get("/routes").await;
    assert_eq!(got.json()["description"], "wrong apikey");
    let viewer = admin.with_key(VIEWER_KEY);
    assert_eq!(viewer.get("/routes").await.status, 200);
    let got = viewer.put("/routes/1", route("/a", "127.0.0.1:1980")).await;
    assert_eq!(got.status, 401);
    assert_eq!(got.json()["description"], "invalid method for role viewer");
    let query = anonymous.get(&format!("/routes?api_key={ADMIN_KEY}")).await;
    assert_eq!(query.status, 200);
    let head = anonymous.call(Method::HEAD, "", "").await;
    assert_eq!(head.status, 200, "HEAD /apisix/admin needs no key");
    // No `cors_origins`: preflights are answered, without CORS (tests/attacks/admin.rs).
    let cors = anonymous.call(Method::OPTIONS, "/routes", "").await;
    assert_eq!(cors.status, 200);
    assert_eq!(cors.header("access-control-allow-origin"), None);
    let unknown = admin.get("/nothing").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json()["error_msg"],
        "Unsupported resource type: nothing"
    );
    let stream = admin.get("/stream_routes").await;
    assert_eq!(
        stream.json()["error_msg"],
        "stream mode is disabled, can not add stream routes"
    );
}

#[tokio::test]
async fn the_server_header_follows_enable_server_tokens() {
    for (tokens, want) in [
        (true, concat!("ferrogate/", env!("CARGO_PKG_VERSION"))),
        (false, "ferrogate"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let gw = start_in(
            dir,
            &format!(
                "{}apisix:\n  enable_server_tokens: {tokens}\n",
                embedded_config()
            ),
        )
        .await;
        let admin = Admin::for_gateway(&gw);
        let answered = admin.get("/routes").await;
        assert_eq!(answered.status, 200);
        assert_eq!(
            answered.header("server"),
            Some(want),
            "admin, tokens {tokens}"
        );
        let denied = admin.with_key("").get("/routes").await;
        assert_eq!(
            denied.header("server"),
            Some(want),
            "a refusal, tokens {tokens}"
        );
    }
}

#[tokio::test]
async fn clients_outside_allow_admin_get_403() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_in(
        dir,
        &format!("{}    allow_admin: [10.0.0.0/8]\n", embedded_config()),
    )
    .await;
    let admin = Admin::for_gateway(&gw);
    let got = admin.get("/routes").await;
    assert_eq!(got.status, 403);
}

#[tokio::test]
async fn a_key_is_generated_when_none_is_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_in(
        dir,
        "deployment:\n  role_traditional: {config_provider: embedded}\n  admin:\n    admin_listen: {ip: 127.0.0.1, port: 0}\n",
    )
    .await;
    let key = std::fs::read_to_string(gw.dir.path().join("data/admin_key"))
        .expect("key kept in the data directory");
    let admin = Admin::for_gateway(&gw);
    assert_eq!(admin.with_key("").get("/routes").await.status, 401);
    assert_eq!(admin.with_key(key.trim()).get("/routes").await.status, 200);
}

async fn consumers_and_credentials(backend: Backend) {
    let (_gw, admin) = admin_gateway(backend).await;
    let jack = admin
        .put("/consumers", json!({"username": "jack", "desc": "d"}))
        .await;
    assert_eq!(jack.status, 201, "{:?}", jack.body);
    assert_eq!(jack.json()["key"], "/apisix/consumers/jack");
    let wrong = admin
        .put("/consumers/jack", json!({"username": "jill"}))
        .await;
    assert_eq!(wrong.json()["error_msg"], "wrong username");
    let post = admin.post("/consumers", json!({"username": "x"})).await;
    assert_eq!(post.status, 405);
    assert_eq!(
        post.json()["error_msg"],
        "not supported `POST` method for consumer"
    );

    let orphan = admin
        .put("/consumers/nobody/credentials/c1", json!({"plugins": {}}))
        .await;
    assert_eq!(orphan.status, 404);
    assert_eq!(orphan.json()["error_msg"], "consumer not found");
    let cred = admin
        .put("/consumers/jack/credentials/c1", json!({"plugins": {}}))
        .await;
    assert_eq!(cred.status, 201, "{:?}", cred.body);
    assert_eq!(cred.json()["key"], "/apisix/consumers/jack/credentials/c1");
    assert_eq!(
        admin.get("/consumers/jack/credentials").await.json()["total"],
        1
    );
    assert_eq!(
        admin.get("/consumers").await.json()["total"],
        1,
        "credentials are not consumers"
    );

    assert_eq!(
        admin
            .put("/consumer_groups/g", json!({"plugins": {}}))
            .await
            .status,
        201
    );
    let grouped = admin
        .put(
            "/consumers/jill",
            json!({"username": "jill", "group_id": "nope"}),
        )
        .await;
    assert_eq!(grouped.status, 400);
    assert_eq!(
        admin
            .put(
                "/consumers/jill",
                json!({"username": "jill", "group_id": "g"})
            )
            .await
            .status,
        201
    );
    let refused = admin.delete("/consumer_groups/g").await;
    assert_eq!(
        refused.json()["error_msg"],
        "can not delete this consumer group, consumer [jill] is still using it now"
    );

    assert_eq!(admin.delete("/consumers/jack").await.status, 200);
    assert_eq!(
        admin.get("/consumers/jack/credentials/c1").await.status,
        404,
        "credentials go with their consumer"
    );
}

async fn other_resources_round_trip(backend: Backend) {
    let (_gw, admin) = admin_gateway(backend).await;
    for (path, body) in [
        ("/global_rules/g1", json!({"plugins": {}})),
        ("/plugin_configs/pc1", json!({"plugins": {}, "desc": "x"})),
        (
            "/upstreams/u1",
            json!({"type": "chash", "hash_on": "header", "key": "x-user", "nodes": {"127.0.0.1:1980": 1}}),
        ),
    ] {
        let got = admin.put(path, body.clone()).await;
        assert_eq!(got.status, 201, "{path}: {:?}", got.body);
        let stored = admin.get(path).await.json();
        for (k, v) in body.as_object().expect("object") {
            assert_eq!(&stored["value"][k], v, "{path} {k}");
        }
    }
    let meta = admin
        .put(
            "/plugin_metadata/http-logger",
            json!({"log_format": {"host": "$host"}}),
        )
        .await;
    assert_eq!(meta.status, 201, "{:?}", meta.body);
    assert_eq!(meta.json()["key"], "/apisix/plugin_metadata/http-logger");
    let unknown = admin.put("/plugin_metadata/nope", json!({})).await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error_msg"], "invalid plugin name");
    let post = admin.post("/global_rules", json!({"plugins": {}})).await;
    assert_eq!(post.status, 405);
    let schema = admin.get("/schema/route").await;
    assert_eq!(schema.status, 200);
    assert_eq!(schema.json()["additionalProperties"], false);
    assert_eq!(admin.get("/schema/nothing").await.status, 400);
    let valid = admin
        .call(
            Method::POST,
            "/schema/validate/routes",
            &route("/a", "127.0.0.1:1").to_string(),
        )
        .await;
    assert_eq!(valid.status, 200);
    let invalid = admin
        .call(Method::POST, "/schema/validate/routes", "{\"uri\": 1}")
        .await;
    assert_eq!(invalid.status, 400);
    assert_eq!(
        admin.get("/plugins/list").await.json(),
        json!([
            "real-ip",
            "proxy-control",
            "request-id",
            "ext-plugin-pre-req",
            "fault-injection",
            "mocking",
            "cors",
            "ip-restriction",
            "ua-restriction",
            "referer-restriction",
            "csrf",
            "uri-blocker",
            "hmac-auth",
            "basic-auth",
            "jwt-auth",
            "key-auth",
            "consumer-restriction",
            "proxy-rewrite",
            "api-breaker",
            "limit-conn",
            "limit-count",
            "limit-req",
            "gzip",
            "traffic-split",
            "redirect",
            "response-rewrite",
            "prometheus",
            "echo",
            "http-logger",
            "file-logger",
            "ext-plugin-post-req",
            "ext-plugin-post-resp"
        ]),
        "by priority, highest first"
    );
    let schema = admin.get("/plugins/ip-restriction").await.json();
    assert_eq!(
        schema["$comment"],
        "this is a mark for our injected plugin schema"
    );
    assert!(schema["properties"]["_meta"].is_object());
    assert!(schema["properties"]["whitelist"].is_object());
    assert_eq!(admin.get("/schema/plugins/request-id").await.status, 200);
    assert_eq!(admin.get("/plugins/nope").await.status, 404);
    let bad = admin
        .put(
            "/routes/pl",
            json!({"uri": "/pl", "plugins": {"ip-restriction": {"whitelist": ["300.1.1.1"]}}, "upstream": {"nodes": {"127.0.0.1:1": 1}}}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let message = bad.json()["error_msg"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(
        message.contains("failed to check the configuration of plugin ip-restriction err: property \"whitelist\" validation failed: failed to validate item 1: object matches none of the required"),
        "{message}"
    );
    let disabled = admin
        .put(
            "/routes/pl",
            json!({"uri": "/pl", "plugins": {"ip-restriction": {"_meta": {"disable": true}}}, "upstream": {"nodes": {"127.0.0.1:1": 1}}}),
        )
        .await;
    assert_eq!(
        disabled.status, 201,
        "a disabled plugin's config is not checked"
    );
    assert_eq!(
        admin.call(Method::PUT, "/plugins/reload", "").await.status,
        200
    );
}

async fn ttl_expires_the_object(backend: Backend) {
    let (gw, admin) = admin_gateway(backend).await;
    let up = upstream("a", Behaviour::Echo).await;
    let bad = admin
        .call(
            Method::PUT,
            "/routes/t?ttl=soon",
            &route("/t", &up.node()).to_string(),
        )
        .await;
    assert_eq!(
        bad.json()["error_msg"],
        "invalid argument ttl: should be a number"
    );
    let got = admin
        .call(
            Method::PUT,
            "/routes/t?ttl=1",
            &route("/t", &up.node()).to_string(),
        )
        .await;
    assert_eq!(got.status, 201);
    until_status(&gw, "/t", 200).await;
    let written = std::time::Instant::now();
    // etcd rounds lease TTLs up to its minimum (2 s with default timings).
    while admin.get("/routes/t").await.status != 404 {
        assert!(
            written.elapsed() < Duration::from_secs(5),
            "the route outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        written.elapsed() >= Duration::from_millis(900),
        "expired early"
    );
    until_status(&gw, "/t", 404).await;
}

#[tokio::test]
async fn writes_survive_a_restart() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    assert_eq!(
        admin
            .put("/routes/keep", route("/keep", &up.node()))
            .await
            .status,
        201
    );
    let before = admin.get("/routes/keep").await.json();
    let TestGateway { gateway, dir, .. } = gw;
    gateway.shutdown().await;
    let (gw, admin) = restart(dir).await;
    assert_eq!(admin.get("/routes/keep").await.json(), before);
    assert_eq!(
        get(&gw.url("/keep")).await.status,
        200,
        "served from the first moment"
    );
    let next = admin
        .post("/routes", route("/next", &up.node()))
        .await
        .json();
    assert!(next["value"]["id"].as_str().expect("id") > "00000000000000000000");
    assert!(
        admin
            .get(&format!(
                "/routes/{}",
                next["value"]["id"].as_str().expect("id")
            ))
            .await
            .json()["createdIndex"]
            .as_i64()
            > before["modifiedIndex"].as_i64()
    );
}

#[tokio::test]
async fn control_and_status_apis_show_what_serves() {
    let up = upstream("a", Behaviour::Echo).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_in(
        dir,
        &format!(
            "{}apisix:\n  enable_control: true\n  control: {{ip: 127.0.0.1, port: 0}}\n  status: {{ip: 127.0.0.1, port: 0}}\n",
            embedded_config()
        ),
    )
    .await;
    let admin = Admin::for_gateway(&gw);
    let status = gw.gateway.status_addr().expect("status API");
    assert_eq!(
        get(&format!("http://{status}/status/ready")).await.status,
        200
    );
    assert_eq!(
        admin.put("/routes/c", route("/c", &up.node())).await.status,
        201
    );
    until_status(&gw, "/c", 200).await;
    let control = gw.gateway.control_addr().expect("control API");
    let routes = get(&format!("http://{control}/v1/routes")).await.json();
    assert_eq!(routes[0]["id"], "c");
    let one = get(&format!("http://{control}/v1/route/c")).await;
    assert_eq!(one.json()["uri"], "/c");
    assert_eq!(
        get(&format!("http://{control}/v1/route/none")).await.status,
        404
    );
    assert_eq!(
        get(&format!("http://{control}/v1/healthcheck"))
            .await
            .json(),
        json!([])
    );
}

#[tokio::test]
async fn the_standalone_file_is_shown_read_only() {
    let up = upstream("a", Behaviour::Echo).await;
    let yaml = format!(
        "routes:\n  - {{id: f1, uri: /file, upstream: {{nodes: {{\"{}\": 1}}}}}}\n#END\n",
        up.node()
    );
    let keys = embedded_config().replace("config_provider: embedded", "config_provider: yaml");
    let gw = gateway_with(&yaml, &keys).await;
    let admin = Admin::for_gateway(&gw);
    let list = admin.get("/routes").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["total"], 1);
    assert_eq!(list.json()["list"][0]["value"]["uri"], "/file");
    let refused = admin.put("/routes/f2", route("/other", &up.node())).await;
    assert_eq!(refused.status, 400);
    let message = refused.json()["error_msg"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(
        message.contains("config_provider: yaml") && message.contains("read-only"),
        "{message}"
    );
    assert_eq!(admin.delete("/routes/f1").await.status, 400);
    assert_eq!(
        get(&gw.url("/file")).await.status,
        200,
        "the file still serves"
    );

    gw.write_routes(&yaml.replace("/file", "/moved"));
    let start = std::time::Instant::now();
    while admin.get("/routes/f1").await.json()["value"]["uri"] != "/moved" {
        assert!(start.elapsed() < Duration::from_secs(3), "reload not shown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
