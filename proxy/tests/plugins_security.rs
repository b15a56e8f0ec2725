//! The security and traffic plugins through the running gateway (embedded store, Admin API):
//! uri-blocker, ua-restriction, cors, fault-injection, mocking and redirect, checked as a client
//! sees them, with the upstream's hit count telling whether the request went through.

mod common;

use std::time::{Duration, Instant};

use common::admin::*;
use common::*;
use http::Method;
use serde_json::{json, Value};

/// A route on `uri` to `up` with `plugins`.
fn route(uri: &str, up: &Upstream, plugins: Value) -> Value {
    json!({"uri": uri, "plugins": plugins, "upstream": {"nodes": {up.node(): 1}}})
}

#[tokio::test]
async fn uri_blocker() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let conf = json!({"uri-blocker": {"block_rules": ["^/ub/admin", "token=[0-9]+"]}});
    apply(
        &gw,
        &admin,
        "/routes/ub",
        route("/ub/*", &up, conf),
        "/ub/admin",
        403,
    )
    .await;
    let before = up.hits();
    let got = get(&gw.url("/ub/admin/x")).await;
    assert_eq!(got.status, 403);
    assert!(got.body.is_empty(), "no body without rejected_msg");
    let got = get(&gw.url("/ub/search?token=42")).await;
    assert_eq!(got.status, 403, "the query is matched too");
    assert_eq!(
        get(&gw.url("/ub/ADMIN")).await.status,
        200,
        "case-sensitive"
    );
    assert_eq!(get(&gw.url("/ub/open?token=x")).await.status, 200);
    assert_eq!(
        up.hits(),
        before + 2,
        "only the allowed requests reached the upstream"
    );

    let conf = json!({"uri-blocker": {"block_rules": ["^/ub/admin"], "rejected_code": 410, "rejected_msg": "gone", "case_insensitive": true}});
    apply(
        &gw,
        &admin,
        "/routes/ub",
        route("/ub/*", &up, conf),
        "/ub/ADMIN",
        410,
    )
    .await;
    let got = get(&gw.url("/ub/Admin")).await;
    assert_eq!(got.status, 410);
    assert_eq!(got.json(), json!({"error_msg": "gone"}));
    assert_eq!(got.header("content-type"), Some("application/json"));

    let bad = admin
        .put(
            "/routes/ub",
            route(
                "/ub/*",
                &up,
                json!({"uri-blocker": {"block_rules": ["(x"]}}),
            ),
        )
        .await;
    assert_eq!(bad.status, 400, "a bad regex is refused: {:?}", bad.body);
}

#[tokio::test]
async fn ua_restriction() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    // ua-restriction.t TEST 6-11: a denylist.
    let conf =
        json!({"ua-restriction": {"denylist": ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"]}});
    apply(
        &gw,
        &admin,
        "/routes/ua",
        route("/ua", &up, conf),
        "/ua",
        403,
    )
    .await;
    let ua = |agents: &'static [&'static str]| {
        let url = gw.url("/ua");
        async move {
            let headers: Vec<_> = agents.iter().map(|a| ("user-agent", *a)).collect();
            request(Method::GET, &url, &headers).await
        }
    };
    let before = up.hits();
    let got = get(&gw.url("/ua")).await;
    assert_eq!(got.status, 403, "no User-Agent");
    assert_eq!(got.body, "{\"message\":\"Not allowed\"}\n".as_bytes());
    for agents in [
        &["my-bot1"][..],            // TEST 7
        &["my-bot1", "my-bot2"][..], // TEST 8
        &["my-bot2", "my-bot1"][..], // TEST 9
        &["Baiduspider/3.0"][..],    // TEST 10
    ] {
        let got = ua(agents).await;
        assert_eq!(got.status, 403, "{agents:?}");
        assert_eq!(got.body, "{\"message\":\"Not allowed\"}\n".as_bytes());
    }
    assert_eq!(
        up.hits(),
        before,
        "refused requests never reach the upstream"
    );
    let got = ua(&["foo/bar"]).await; // TEST 11
    assert_eq!(got.status, 200);
    assert_eq!(
        got.upstream_header("user-agent").as_deref(),
        Some("foo/bar")
    );

    // ua-restriction.t TEST 12-17 and 30-31: an allowlist refuses every other User-Agent.
    let conf =
        json!({"ua-restriction": {"allowlist": ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"]}});
    apply(
        &gw,
        &admin,
        "/routes/ua",
        route("/ua", &up, conf),
        "/ua",
        403,
    )
    .await;
    // The denylist above also refuses a request without User-Agent: wait for the allowlist.
    for _ in 0..100 {
        if ua(&["my-bot1"]).await.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for agents in [
        &["my-bot1"][..],            // TEST 13
        &["Baiduspider/3.0"][..],    // TEST 14
        &["foo/bar", "my-bot1"][..], // TEST 16
        &["my-bot1", "foo/bar"][..], // TEST 17
    ] {
        assert_eq!(ua(agents).await.status, 200, "{agents:?}");
    }
    for agents in [&["foo/bar"][..], &[][..]] {
        // TEST 15, TEST 31
        let got = ua(agents).await;
        assert_eq!(got.status, 403, "{agents:?}");
        assert_eq!(got.body, "{\"message\":\"Not allowed\"}\n".as_bytes());
    }

    // ua-restriction.t TEST 20-21 and 32-33: a custom message, bypass_missing.
    let conf = json!({"ua-restriction": {"denylist": ["(Baiduspider)/(\\d+)\\.(\\d+)"],
        "bypass_missing": true, "message": "Do you want to do something bad?"}});
    apply(
        &gw,
        &admin,
        "/routes/ua",
        route("/ua", &up, conf),
        "/ua",
        200,
    )
    .await;
    let got = ua(&["Baiduspider/1.0"]).await;
    assert_eq!(got.status, 403);
    assert_eq!(
        got.body,
        "{\"message\":\"Do you want to do something bad?\"}\n".as_bytes()
    );

    // ua-restriction.t TEST 1 and TEST 29: exactly one of the lists.
    for (conf, why) in [
        (
            json!({"allowlist": ["my-bot1"], "denylist": ["my-bot1"]}),
            "value should match only one schema, but matches both schemas 1 and 2",
        ),
        (
            json!({}),
            "value should match only one schema, but matches none",
        ),
    ] {
        let put = admin
            .put(
                "/routes/bad",
                route("/bad", &up, json!({"ua-restriction": conf})),
            )
            .await;
        assert_eq!(put.status, 400);
        assert_eq!(
            put.json()["error_msg"],
            format!("failed to check the configuration of plugin ua-restriction err: {why}")
        );
    }
}

#[tokio::test]
async fn cors() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    apply(
        &gw,
        &admin,
        "/routes/c",
        route("/c", &up, json!({"cors": {}})),
        "/c",
        200,
    )
    .await;
    let got = get_with(&gw.url("/c"), &[("origin", "http://a.com")]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("access-control-allow-origin"), Some("*"));
    assert_eq!(got.header("access-control-allow-methods"), Some("*"));
    assert_eq!(got.header("access-control-allow-headers"), Some("*"));
    assert_eq!(got.header("access-control-max-age"), Some("5"));
    assert!(got.header("access-control-allow-credentials").is_none());
    assert_eq!(got.json()["server"], "a", "the upstream answered");

    let before = up.hits();
    let preflight = request(
        Method::OPTIONS,
        &gw.url("/c"),
        &[
            ("origin", "http://a.com"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!(preflight.status, 200);
    assert!(preflight.body.is_empty());
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        up.hits(),
        before,
        "the preflight is answered by the gateway"
    );

    let conf = json!({"cors": {"allow_origins": "**", "allow_methods": "**", "allow_headers": "**", "expose_headers": "X-Id", "max_age": 600, "allow_credential": true}});
    apply(&gw, &admin, "/routes/c", route("/c", &up, conf), "/c", 200).await;
    for _ in 0..200 {
        if get(&gw.url("/c")).await.header("access-control-max-age") == Some("600") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = request(
        Method::OPTIONS,
        &gw.url("/c"),
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "DELETE"),
            ("access-control-request-headers", "x-token"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(got.header("vary"), Some("Origin"));
    assert_eq!(
        got.header("access-control-allow-methods"),
        Some("GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE")
    );
    assert_eq!(got.header("access-control-allow-headers"), Some("x-token"));
    assert_eq!(got.header("access-control-expose-headers"), Some("X-Id"));
    assert_eq!(got.header("access-control-max-age"), Some("600"));
    assert_eq!(got.header("access-control-allow-credentials"), Some("true"));

    let conf = json!({"cors": {"allow_origins": "http://a.com,http://b.com"}, "ip-restriction": {"blacklist": ["127.0.0.1"]}});
    apply(&gw, &admin, "/routes/c", route("/c", &up, conf), "/c", 403).await;
    let got = get_with(&gw.url("/c"), &[("origin", "http://b.com")]).await;
    assert_eq!(got.status, 403);
    assert_eq!(
        got.header("access-control-allow-origin"),
        Some("http://b.com"),
        "a plugin's refusal carries the CORS headers too"
    );
    let got = get_with(&gw.url("/c"), &[("origin", "http://evil.com")]).await;
    assert!(got.header("access-control-allow-origin").is_none());

    let bad = admin
        .put(
            "/routes/c",
            route("/c", &up, json!({"cors": {"allow_credential": true}})),
        )
        .await;
    assert_eq!(
        bad.status, 400,
        "`*` with credentials is refused: {:?}",
        bad.body
    );
}

#[tokio::test]
async fn fault_injection() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let conf = json!({"fault-injection": {"abort": {"http_status": 418, "body": "fault on $uri", "headers": {"X-Fault": "yes"}, "vars": [[["arg_fail", "==", "1"]], [["http_x_fail", "==", "1"]]]}}});
    apply(
        &gw,
        &admin,
        "/routes/f",
        route("/f", &up, conf),
        "/f?fail=1",
        418,
    )
    .await;
    let before = up.hits();
    let got = get(&gw.url("/f?fail=1")).await;
    assert_eq!(got.status, 418);
    assert_eq!(got.body, "fault on /f");
    assert_eq!(got.header("x-fault"), Some("yes"));
    assert_eq!(got.header("content-type"), Some("text/plain"));
    assert_eq!(
        get_with(&gw.url("/f"), &[("x-fail", "1")]).await.status,
        418,
        "any rule"
    );
    assert_eq!(
        up.hits(),
        before,
        "aborted requests never reach the upstream"
    );
    assert_eq!(get(&gw.url("/f?fail=0")).await.status, 200);
    assert_eq!(up.hits(), before + 1);

    let conf = json!({"fault-injection": {"delay": {"duration": 0.3}}});
    apply(
        &gw,
        &admin,
        "/routes/f",
        route("/f", &up, conf),
        "/f?fail=1",
        200,
    )
    .await;
    let start = Instant::now();
    let got = get(&gw.url("/f")).await;
    assert_eq!(got.status, 200);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );

    let conf = json!({"fault-injection": {"abort": {"http_status": 503, "percentage": 0}}});
    apply(&gw, &admin, "/routes/f", route("/f", &up, conf), "/f", 200).await;

    let bad = admin
        .put(
            "/routes/f",
            route(
                "/f",
                &up,
                json!({"fault-injection": {"abort": {"http_status": 100}}}),
            ),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    let bad = admin
        .put(
            "/routes/f",
            route("/f", &up, json!({"fault-injection": {}})),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
}

#[tokio::test]
async fn mocking() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let conf = json!({"mocking": {"response_status": 201, "response_example": "{\"id\":\"$arg_id\"}", "response_headers": {"X-Mocked": "1"}}});
    apply(&gw, &admin, "/routes/m", route("/m", &up, conf), "/m", 201).await;
    let got = get(&gw.url("/m?id=7")).await;
    assert_eq!(got.status, 201);
    assert_eq!(got.json(), json!({"id": "7"}));
    assert_eq!(
        got.header("content-type"),
        Some("application/json;charset=utf8")
    );
    assert_eq!(got.header("x-mock-by"), Some("Ferrogate"));
    assert_eq!(got.header("x-mocked"), Some("1"));
    assert_eq!(up.hits(), 0, "the upstream is never called");

    let conf = json!({"mocking": {"with_mock_header": false, "response_schema": {"type": "object", "properties": {"name": {"type": "string", "example": "n"}, "age": {"type": "integer"}}}}});
    apply(&gw, &admin, "/routes/m", route("/m", &up, conf), "/m", 200).await;
    let got = get(&gw.url("/m")).await;
    let body = got.json();
    assert_eq!(body["name"], "n");
    assert!(body["age"].is_i64(), "{body}");
    assert!(got.header("x-mock-by").is_none());
    assert_eq!(up.hits(), 0);

    let bad = admin
        .put(
            "/routes/m",
            route(
                "/m",
                &up,
                json!({"mocking": {"response_example": "x", "content_type": "image/png"}}),
            ),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
}

#[tokio::test]
async fn redirect() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let conf = json!({"redirect": {"uri": "/new$uri", "append_query_string": true}});
    apply(
        &gw,
        &admin,
        "/routes/r",
        route("/r/*", &up, conf),
        "/r/x",
        302,
    )
    .await;
    let got = get(&gw.url("/r/x?a=1")).await;
    assert_eq!(got.status, 302);
    assert_eq!(got.header("location"), Some("/new/r/x?a=1"));
    assert!(got.body.is_empty());
    assert!(
        got.header("content-type").is_none(),
        "no body, no content type"
    );
    assert_eq!(up.hits(), 0);

    let conf =
        json!({"redirect": {"regex_uri": ["^/r/(.*)/v([0-9]+)$", "/api/v$2/$1"], "ret_code": 307}});
    apply(
        &gw,
        &admin,
        "/routes/r",
        route("/r/*", &up, conf),
        "/r/x/v1",
        307,
    )
    .await;
    let got = get(&gw.url("/r/users/v2")).await;
    assert_eq!(got.status, 307);
    assert_eq!(got.header("location"), Some("/api/v2/users"));
    let got = get(&gw.url("/r/x")).await;
    assert_eq!(
        got.status, 200,
        "a path the regex does not match is not redirected"
    );

    let conf = json!({"redirect": {"http_to_https": true}});
    apply(
        &gw,
        &admin,
        "/routes/r",
        route("/r/*", &up, conf),
        "/r/x",
        301,
    )
    .await;
    let host = gw.addr().ip().to_string();
    let got = get(&gw.url("/r/p?q=1")).await;
    assert_eq!(got.status, 301);
    assert_eq!(
        got.header("location"),
        Some(format!("https://{host}/r/p?q=1").as_str())
    );
    let got = request(Method::POST, &gw.url("/r/p"), &[]).await;
    assert_eq!(got.status, 308);
    // The port is the node's https port (none configured here), not the client's
    // X-Forwarded-Port; without `apisix.trusted_addresses` the client's X-Forwarded-Proto is
    // replaced by the gateway's, so it cannot claim https.
    let got = get_with(&gw.url("/r/p"), &[("x-forwarded-port", "8443")]).await;
    assert_eq!(
        got.header("location"),
        Some(format!("https://{host}/r/p").as_str())
    );
    let got = get_with(&gw.url("/r/p"), &[("x-forwarded-proto", "https")]).await;
    assert_eq!(
        got.status, 301,
        "the client's X-Forwarded-Proto is not believed"
    );
    assert_eq!(up.hits(), 1, "only the path regex_uri did not match");

    let bad = admin
        .put(
            "/routes/r",
            route(
                "/r/*",
                &up,
                json!({"redirect": {"uri": "/x", "http_to_https": true}}),
            ),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
}
