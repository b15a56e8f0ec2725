//! See main.rs. The Admin API against a web page the operator visits (a cross-site form or
//! `fetch`, CORS preflights, DNS rebinding), with authentication off on loopback and with keys;
//! secrets never shown to viewer keys or the control API; APISIX's id rules. Every test also
//! checks that the way scripts and curl use the Admin API keeps working.

use http::Method;
use rcgen::{CertificateParams, KeyPair};
use serde_json::{json, Value};

use crate::common::admin::{embedded_config, Admin, ADMIN_KEY, VIEWER_KEY};
use crate::common::*;

/// A gateway on the embedded store with authentication off (loopback only), and its client.
async fn open_gateway(extra: &str) -> (TestGateway, Admin) {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_in(
        dir,
        &format!("deployment:\n  role_traditional: {{config_provider: embedded}}\n  admin:\n    admin_listen: {{ip: 127.0.0.1, port: 0}}\n    admin_key_required: false\n{extra}"),
    )
    .await;
    let admin = Admin::for_gateway(&gw).with_key("");
    (gw, admin)
}

/// A gateway with the test keys and `extra` lines under `deployment.admin`, and its client.
async fn keyed_gateway(extra: &str) -> (TestGateway, Admin) {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_in(dir, &format!("{}{extra}", embedded_config())).await;
    let admin = Admin::for_gateway(&gw);
    (gw, admin)
}

/// A route whose file logger writes where the attacker wants.
fn planted_route(gw: &TestGateway) -> String {
    json!({
        "uri": "/planted",
        "plugins": {"file-logger": {"path": gw.dir.path().join("pwned.log")}},
        "upstream": {"nodes": {"127.0.0.1:1": 1}}
    })
    .to_string()
}

/// Polls the proxy until `path` answers `status`.
async fn until_proxy(gw: &TestGateway, path: &str, status: u16) {
    for _ in 0..300 {
        if get(&gw.url(path)).await.status == status {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{path} never answered {status}");
}

/// A route to `up` at `uri`, written the way APISIX's docs do it (curl `-d`, no content type
/// header beyond curl's default), must work and serve.
async fn curl_style_write_serves(gw: &TestGateway, admin: &Admin, up: &Upstream, uri: &str) {
    let body = json!({"uri": uri, "upstream": {"nodes": {up.node(): 1}}}).to_string();
    let put = admin
        .call_with(
            Method::PUT,
            &format!("/routes{uri}"),
            &[("content-type", "application/x-www-form-urlencoded")],
            &body,
        )
        .await;
    assert!(put.status.is_success(), "{:?}", put.body);
    until_proxy(gw, uri, 200).await;
}

#[tokio::test]
async fn a_cross_site_form_post_stores_nothing() {
    let up = upstream("a", Behaviour::Echo).await;
    for (gw, admin) in [open_gateway("").await, keyed_gateway("").await] {
        let body = planted_route(&gw);
        // The classic JSON CSRF: `<form enctype="text/plain">` or `fetch(.., {mode: "no-cors"})`;
        // with keys, the key rides along in the `X-API-KEY` cookie.
        let cookie = format!("X-API-KEY={ADMIN_KEY}");
        let anonymous = admin.with_key("");
        for headers in [
            vec![
                ("content-type", "text/plain"),
                ("origin", "http://evil.example"),
            ],
            vec![
                ("content-type", "text/plain;charset=UTF-8"),
                ("origin", "http://evil.example"),
                ("cookie", cookie.as_str()),
            ],
            // A Blob body has no content type.
            vec![("origin", "null"), ("cookie", cookie.as_str())],
            // A browser too old to send `Origin` on a form post still sends text/plain.
            vec![("content-type", "text/plain"), ("cookie", cookie.as_str())],
            vec![
                ("content-type", "multipart/form-data; boundary=x"),
                ("cookie", cookie.as_str()),
            ],
            vec![
                ("content-type", "application/json"),
                ("sec-fetch-site", "cross-site"),
                ("cookie", cookie.as_str()),
            ],
        ] {
            let got = anonymous
                .call_with(Method::POST, "/routes", &headers, &body)
                .await;
            assert!(
                got.status == 403 || got.status == 415,
                "{headers:?}: {} {:?}",
                got.status,
                got.body
            );
            assert!(got.json()["error_msg"].is_string());
            assert_eq!(got.header("access-control-allow-origin"), None);
        }
        assert_eq!(
            admin.get("/routes").await.json()["total"],
            0,
            "nothing stored"
        );
        assert_eq!(get(&gw.url("/planted")).await.status, 404);
        assert!(!gw.dir.path().join("pwned.log").exists());
        // The operator's own tools keep working.
        curl_style_write_serves(&gw, &admin, &up, "/mine").await;
    }
}

#[tokio::test]
async fn preflights_get_cors_only_for_listed_origins() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = keyed_gateway("    cors_origins: [\"https://dash.example\"]\n").await;
    let preflight = |origin: &'static str| {
        let anonymous = admin.with_key("");
        async move {
            anonymous
                .call_with(
                    Method::OPTIONS,
                    "/routes",
                    &[
                        ("origin", origin),
                        ("access-control-request-method", "PUT"),
                        ("access-control-request-headers", "content-type,x-api-key"),
                    ],
                    "",
                )
                .await
        }
    };
    let evil = preflight("http://evil.example").await;
    assert_eq!(evil.status, 200);
    assert_eq!(evil.header("access-control-allow-origin"), None);
    assert_eq!(evil.header("access-control-allow-methods"), None);
    assert_eq!(evil.header("vary"), Some("Origin"));

    let dash = preflight("https://dash.example").await;
    assert_eq!(dash.status, 200);
    assert_eq!(
        dash.header("access-control-allow-origin"),
        Some("https://dash.example")
    );
    assert_eq!(
        dash.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(dash
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("PUT")));
    assert_eq!(
        dash.header("access-control-allow-headers"),
        Some("content-type,x-api-key")
    );

    // The listed origin writes JSON with its key, and reads the answer.
    let body = json!({"uri": "/dash", "upstream": {"nodes": {up.node(): 1}}}).to_string();
    let json_type = ("content-type", "application/json");
    let put = admin
        .call_with(
            Method::PUT,
            "/routes/dash",
            &[("origin", "https://dash.example"), json_type],
            &body,
        )
        .await;
    assert_eq!(put.status, 201, "{:?}", put.body);
    assert_eq!(
        put.header("access-control-allow-origin"),
        Some("https://dash.example")
    );
    // Even a listed origin must send JSON, and an unlisted one cannot write at all.
    let form = admin
        .call_with(
            Method::PUT,
            "/routes/dash2",
            &[
                ("origin", "https://dash.example"),
                ("content-type", "text/plain"),
            ],
            &body,
        )
        .await;
    assert_eq!(form.status, 415);
    let foreign = admin
        .call_with(
            Method::PUT,
            "/routes/evil",
            &[("origin", "http://evil.example"), json_type],
            &body,
        )
        .await;
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    let deleted = admin
        .call_with(
            Method::DELETE,
            "/routes/dash",
            &[("origin", "http://evil.example")],
            "",
        )
        .await;
    assert_eq!(deleted.status, 403);
    // A read from an unlisted page is answered without CORS: the browser keeps it from the page.
    let read = admin
        .call_with(
            Method::GET,
            "/routes",
            &[("origin", "http://evil.example")],
            "",
        )
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.header("access-control-allow-origin"), None);
    assert_eq!(admin.get("/routes").await.json()["total"], 1);
    until_proxy(&gw, "/dash", 200).await;

    // With enable_admin_cors off, a listed origin gets nothing either.
    let (_off, off) = keyed_gateway(
        "    cors_origins: [\"https://dash.example\"]\n    enable_admin_cors: false\n",
    )
    .await;
    let write = off
        .call_with(
            Method::PUT,
            "/routes/dash",
            &[("origin", "https://dash.example"), json_type],
            &body,
        )
        .await;
    assert_eq!(write.status, 403);
    assert_eq!(write.header("access-control-allow-origin"), None);
    assert_eq!(
        off.put("/routes/dash", serde_json::from_str(&body).expect("json"))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn dns_rebinding_is_refused_by_host() {
    let up = upstream("a", Behaviour::Echo).await;
    for (gw, admin) in [
        open_gateway("    allow_hosts: [admin.internal]\n").await,
        keyed_gateway("    allow_hosts: [admin.internal]\n").await,
    ] {
        let port = gw.gateway.admin_addr().expect("admin").port();
        let body = planted_route(&gw);
        // The attacker's page, its name now resolving to 127.0.0.1, calls "its own" origin.
        for host in [
            "evil.example",
            "evil.example:9180",
            "localhost.evil.example",
        ] {
            for method in [Method::GET, Method::POST] {
                let got = admin
                    .call_with(
                        method.clone(),
                        "/routes",
                        &[
                            ("host", host),
                            ("origin", "http://evil.example"),
                            ("content-type", "application/json"),
                        ],
                        &body,
                    )
                    .await;
                assert_eq!(got.status, 403, "{method} Host {host}");
                assert!(!String::from_utf8_lossy(&got.body).contains("\"list\""));
            }
        }
        // Without `Origin` (a same-origin GET sends none) the Host still decides.
        let sneaky = admin
            .call_with(Method::GET, "/routes", &[("host", "evil.example")], "")
            .await;
        assert_eq!(sneaky.status, 403);
        assert_eq!(admin.get("/routes").await.json()["total"], 0);

        let loopback = format!("127.0.0.1:{port}");
        let localhost = format!("localhost:{port}");
        let named = format!("admin.internal:{port}");
        for host in [
            loopback.as_str(),
            localhost.as_str(),
            "[::1]",
            named.as_str(),
        ] {
            let got = admin
                .call_with(Method::GET, "/routes", &[("host", host)], "")
                .await;
            assert_eq!(got.status, 200, "Host {host}");
        }
        curl_style_write_serves(&gw, &admin, &up, "/after").await;
    }
}

#[tokio::test]
async fn apisix_style_curl_writes_keep_working() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = keyed_gateway("").await;
    let addr = gw.gateway.admin_addr().expect("admin");
    // Exactly what `curl http://127.0.0.1:9180/apisix/admin/routes/1 -H "X-API-KEY: $key" -X PUT
    // -d '{...}'` sends.
    let body = json!({"uri": "/curl", "upstream": {"type": "roundrobin", "nodes": {up.node(): 1}}})
        .to_string();
    let request = format!(
        "PUT /apisix/admin/routes/1 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nX-API-KEY: {ADMIN_KEY}\r\nContent-Length: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n{body}",
        addr.port(),
        body.len()
    );
    let answer = raw(addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    // No content type at all (`curl -T`, many HTTP libraries), and JSON.
    let post = admin
        .call(
            Method::POST,
            "/routes",
            &json!({"uri": "/posted", "upstream": {"nodes": {up.node(): 1}}}).to_string(),
        )
        .await;
    assert_eq!(post.status, 201);
    let patch = admin
        .call_with(
            Method::PATCH,
            "/routes/1",
            &[("content-type", "application/json")],
            r#"{"desc": "patched"}"#,
        )
        .await;
    assert_eq!(patch.status, 200);
    let posted = format!(
        "/routes/{}",
        post.json()["value"]["id"].as_str().expect("id")
    );
    assert_eq!(admin.delete(&posted).await.status, 200);
    until_proxy(&gw, "/curl", 200).await;
}

/// A certificate and its private key (PEM).
fn certificate(name: &str) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn secrets_never_reach_viewers_or_the_control_api() {
    let up = upstream("a", Behaviour::Echo).await;
    // The control API has no key: it is the one that must show nothing secret.
    let (gw, admin) =
        keyed_gateway("apisix:\n  enable_control: true\n  control: {ip: 127.0.0.1, port: 0}\n")
            .await;
    let (client_cert, client_key) = certificate("client.example");
    let (server_cert, server_key) = certificate("secure.example");
    let tls = json!({"client_cert": client_cert, "client_key": client_key});
    let writes = [
        (
            "/upstreams/u1",
            json!({"nodes": {up.node(): 1}, "tls": tls}),
        ),
        (
            "/services/s1",
            json!({"upstream": {"nodes": {up.node(): 1}, "tls": tls}}),
        ),
        (
            "/routes/r1",
            json!({"uri": "/r1", "upstream": {"nodes": {up.node(): 1}, "tls": tls},
                   "plugins": {"http-logger": {"uri": "http://127.0.0.1:1/logs", "auth_header": "Bearer LOGGER-SECRET-1"}}}),
        ),
        (
            "/routes/r2",
            json!({"uri": "/r2", "upstream_id": "u1",
                   "plugins": {"csrf": {"key": "CSRF-SECRET-2"}}}),
        ),
        ("/routes/r3", json!({"uri": "/r3", "service_id": "s1"})),
        (
            "/consumers/jack",
            json!({"username": "jack", "plugins": {
                "key-auth": {"key": "KEYAUTH-SECRET-3"},
                "basic-auth": {"username": "jack", "password": "BASIC-SECRET-4"},
                "jwt-auth": {"key": "jack-jwt", "secret": "JWT-SECRET-5"},
                "hmac-auth": {"key_id": "jack-hmac", "secret_key": "HMAC-SECRET-6"}
            }}),
        ),
        (
            "/consumers/jack/credentials/c1",
            json!({"plugins": {"key-auth": {"key": "CRED-SECRET-7"}}}),
        ),
        (
            "/global_rules/g1",
            json!({"plugins": {"http-logger": {"uri": "http://127.0.0.1:1/logs", "auth_header": "Bearer GLOBAL-SECRET-8"}}}),
        ),
        (
            "/ssls/t1",
            json!({"cert": server_cert, "key": server_key, "snis": ["secure.example"]}),
        ),
    ];
    for (path, body) in &writes {
        let put = admin.put(path, body.clone()).await;
        assert!(put.status.is_success(), "{path}: {:?}", put.body);
    }
    let key_line = client_key
        .lines()
        .nth(1)
        .expect("a line of the key")
        .to_owned();
    let server_key_line = server_key.lines().nth(1).expect("key line").to_owned();
    let secrets = [
        key_line.as_str(),
        server_key_line.as_str(),
        "LOGGER-SECRET-1",
        "CSRF-SECRET-2",
        "KEYAUTH-SECRET-3",
        "BASIC-SECRET-4",
        "JWT-SECRET-5",
        "HMAC-SECRET-6",
        "CRED-SECRET-7",
        "GLOBAL-SECRET-8",
    ];
    let leaks = |got: &Got| -> Vec<&str> {
        secrets
            .iter()
            .copied()
            .filter(|s| got.body.windows(s.len()).any(|w| w == s.as_bytes()))
            .collect()
    };
    let viewer = admin.with_key(VIEWER_KEY);
    for path in [
        "/upstreams",
        "/upstreams/u1",
        "/services",
        "/services/s1",
        "/routes",
        "/routes/r1",
        "/routes/r2",
        "/consumers",
        "/consumers/jack",
        "/consumers/jack/credentials",
        "/consumers/jack/credentials/c1",
        "/global_rules",
        "/global_rules/g1",
        "/ssls",
        "/ssls/t1",
    ] {
        let got = viewer.get(path).await;
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(leaks(&got), Vec::<&str>::new(), "viewer GET {path}");
    }
    // What remains is still useful: the certificate, the key-auth header name, the jwt key.
    let u1 = viewer.get("/upstreams/u1").await.json();
    assert!(u1["value"]["tls"]["client_cert"].is_string());
    assert_eq!(
        viewer.get("/consumers/jack").await.json()["value"]["plugins"]["jwt-auth"]["key"],
        "jack-jwt"
    );

    // The control API shows what serves, without secrets.
    for id in ["r1", "r2", "r3"] {
        until_proxy(&gw, &format!("/{id}"), 200).await;
    }
    let control = gw.gateway.control_addr().expect("control API");
    for path in [
        "/v1/routes",
        "/v1/route/r1",
        "/v1/route/r2",
        "/v1/services",
        "/v1/service/s1",
        "/v1/upstreams",
        "/v1/upstream/u1",
    ] {
        let got = get(&format!("http://{control}{path}")).await;
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(leaks(&got), Vec::<&str>::new(), "control {path}");
    }
    let routes: Value = get(&format!("http://{control}/v1/routes")).await.json();
    assert_eq!(routes.as_array().map(Vec::len), Some(3));

    // Admin keys see what they wrote (as in APISIX), except SSL private keys.
    let admin_view = admin.get("/upstreams/u1").await;
    assert_eq!(leaks(&admin_view), vec![key_line.as_str()]);
    let jack = admin.get("/consumers/jack").await;
    assert_eq!(
        jack.json()["value"]["plugins"]["key-auth"]["key"],
        "KEYAUTH-SECRET-3"
    );
    let ssl = admin.get("/ssls/t1").await;
    assert_eq!(
        leaks(&ssl),
        Vec::<&str>::new(),
        "SSL keys are shown to no one"
    );
}

#[tokio::test]
async fn ids_follow_apisix_rules() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = keyed_gateway("").await;
    let message = "invalid configuration: property \"id\" validation failed: object matches none of the required";
    let route = |uri: &str| json!({"uri": uri, "upstream": {"nodes": {up.node(): 1}}});
    let with_id = |id: Value| json!({"id": id, "uri": "/x", "upstream": {"nodes": {up.node(): 1}}});
    let cases = [
        ("/routes/..", route("/x")),
        ("/routes/.", route("/x")),
        ("/routes/%2e%2e", route("/x")),
        ("/routes/a$b", route("/x")),
        (&*format!("/routes/{}", "x".repeat(65)), route("/x")),
        ("/routes", with_id(json!(-1))),
        ("/routes", with_id(json!(0))),
        ("/routes", with_id(json!(1.5))),
        ("/routes", with_id(json!(true))),
        ("/routes", with_id(json!(".."))),
        ("/upstreams/..", json!({"nodes": {up.node(): 1}})),
        ("/services/..", json!({})),
        ("/consumers/jack/credentials/..", json!({"plugins": {}})),
    ]
    .map(|(p, b)| (p.to_owned(), b));
    assert_eq!(
        admin
            .put("/consumers/jack", json!({"username": "jack"}))
            .await
            .status,
        201
    );
    for (path, body) in &cases {
        let got = admin.put(path, body.clone()).await;
        assert_eq!(got.status, 400, "{path} {body}");
        assert_eq!(got.json(), json!({"error_msg": message}), "{path} {body}");
    }
    // A PATCH cannot reach an id that cannot exist, and a consumer path cannot climb.
    assert_eq!(
        admin.patch("/routes/..", json!({"desc": "x"})).await.status,
        404
    );
    let climb = admin
        .put("/consumers/../credentials/c", json!({"plugins": {}}))
        .await;
    assert_eq!(climb.status, 400);
    assert_eq!(climb.json()["error_msg"], "invalid consumer username");
    assert_eq!(
        admin.get("/routes").await.json()["total"],
        0,
        "nothing stored"
    );

    // APISIX's valid ids still work: strings of [a-zA-Z0-9-_.] and integers >= 1.
    for (path, body, key) in [
        ("/routes/a.b-c_D", route("/one"), "/apisix/routes/a.b-c_D"),
        ("/routes/...", route("/dots"), "/apisix/routes/..."),
        ("/routes", with_id(json!(7)), "/apisix/routes/7"),
        ("/routes", with_id(json!("-1")), "/apisix/routes/-1"),
    ] {
        let got = admin.put(path, body.clone()).await;
        assert_eq!(got.status, 201, "{path} {body}: {:?}", got.body);
        assert_eq!(got.json()["key"], key);
    }
    assert_eq!(admin.get("/routes/a.b-c_D").await.status, 200);
    until_proxy(&gw, "/one", 200).await;
}
