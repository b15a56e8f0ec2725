//! Authentication through the running gateway: consumers and credentials written with the Admin
//! API, key-auth, basic-auth and consumer-restriction on routes, consumers' own plugins.

mod common;

use std::time::Duration;

use common::admin::*;
use common::*;
use serde_json::json;

async fn eventually(gw: &TestGateway, path: &str, headers: &[(&str, &str)], status: u16) -> Got {
    for _ in 0..200 {
        let got = get_with(&gw.url(path), headers).await;
        if got.status == status {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path} never answered {status}");
}

async fn ok(admin: &Admin, path: &str, body: serde_json::Value) {
    let got = admin.put(path, body).await;
    assert!(got.status.is_success(), "{path}: {:?}", got.body);
}

#[tokio::test]
async fn key_auth_with_consumers_and_credentials() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    ok(&admin, "/consumers", json!({"username": "jack", "plugins": {"key-auth": {"key": "jack-key"}}, "labels": {"custom_id": "c-7"}})).await;
    ok(&admin, "/consumers", json!({"username": "rose"})).await;
    ok(
        &admin,
        "/consumers/rose/credentials/mobile",
        json!({"plugins": {"key-auth": {"key": "rose-key"}}}),
    )
    .await;
    ok(
        &admin,
        "/routes/k",
        json!({"uri": "/k", "plugins": {"key-auth": {}}, "upstream": {"nodes": {up.node(): 1}}}),
    )
    .await;

    let missing = eventually(&gw, "/k", &[], 401).await;
    assert_eq!(
        missing.json(),
        json!({"message": "Missing API key in request"})
    );
    assert_eq!(
        missing.header("www-authenticate"),
        Some("apikey realm=\"key\"")
    );
    let wrong = get_with(&gw.url("/k"), &[("apikey", "nope")]).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.json(),
        json!({"message": "Invalid API key in request"})
    );
    assert_eq!(up.hits(), 0, "refused requests never reach the upstream");

    let jack = get_with(&gw.url("/k"), &[("apikey", "jack-key")]).await;
    assert_eq!(jack.status, 200);
    assert_eq!(
        jack.upstream_header("x-consumer-username").as_deref(),
        Some("jack")
    );
    assert_eq!(
        jack.upstream_header("x-consumer-custom-id").as_deref(),
        Some("c-7")
    );
    assert_eq!(
        jack.upstream_header("apikey").as_deref(),
        Some("jack-key"),
        "kept without hide_credentials"
    );
    let rose = get(&gw.url("/k?apikey=rose-key")).await;
    assert_eq!(rose.status, 200, "the key from the query");
    assert_eq!(
        rose.upstream_header("x-consumer-username").as_deref(),
        Some("rose")
    );
    assert_eq!(
        rose.upstream_header("x-credential-identifier").as_deref(),
        Some("mobile")
    );

    ok(&admin, "/routes/k", json!({"uri": "/k", "plugins": {"key-auth": {"hide_credentials": true}}, "upstream": {"nodes": {up.node(): 1}}})).await;
    for _ in 0..200 {
        let got = get_with(&gw.url("/k"), &[("apikey", "jack-key")]).await;
        if got.upstream_header("apikey").is_none() {
            let q = get(&gw.url("/k?apikey=rose-key&x=1")).await;
            assert_eq!(q.status, 200);
            assert_eq!(
                q.json()["uri"],
                "/k?x=1",
                "the key is removed from the query"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("hide_credentials never applied");
}

#[tokio::test]
async fn basic_auth_and_consumer_restriction() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    ok(&admin, "/consumers", json!({"username": "jack", "plugins": {"basic-auth": {"username": "jack", "password": "s3cret"}}})).await;
    ok(&admin, "/consumers", json!({"username": "rose", "plugins": {"basic-auth": {"username": "rose", "password": "pw"}}})).await;
    ok(&admin, "/routes/b", json!({"uri": "/b", "plugins": {"basic-auth": {}, "consumer-restriction": {"whitelist": ["jack"]}}, "upstream": {"nodes": {up.node(): 1}}})).await;

    let missing = eventually(&gw, "/b", &[], 401).await;
    assert_eq!(
        missing.json(),
        json!({"message": "Missing authorization in request"})
    );
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Basic realm=\"basic\"")
    );
    // jack:wrong
    let wrong = get_with(
        &gw.url("/b"),
        &[("authorization", "Basic amFjazp3cm9uZw==")],
    )
    .await;
    assert_eq!(
        wrong.json(),
        json!({"message": "Invalid user authorization"})
    );
    // jack:s3cret
    let jack = get_with(
        &gw.url("/b"),
        &[("authorization", "Basic amFjazpzM2NyZXQ=")],
    )
    .await;
    assert_eq!(jack.status, 200);
    assert_eq!(
        jack.upstream_header("x-consumer-username").as_deref(),
        Some("jack")
    );
    // rose:pw authenticates but is not on the whitelist
    let rose = get_with(&gw.url("/b"), &[("authorization", "Basic cm9zZTpwdw==")]).await;
    assert_eq!(rose.status, 403);
    assert_eq!(
        rose.json(),
        json!({"message": "The consumer_name is forbidden."})
    );
}

#[tokio::test]
async fn a_consumers_own_plugins_apply_after_authentication() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    ok(
        &admin,
        "/consumer_groups/blocked",
        json!({"plugins": {"ip-restriction": {"blacklist": ["127.0.0.1"]}}}),
    )
    .await;
    ok(
        &admin,
        "/consumers",
        json!({"username": "jack", "group_id": "blocked", "plugins": {"key-auth": {"key": "jk"}}}),
    )
    .await;
    ok(&admin, "/consumers", json!({"username": "rose", "plugins": {"key-auth": {"key": "rk"}, "request-id": {"header_name": "X-Rose"}}})).await;
    ok(
        &admin,
        "/routes/c",
        json!({"uri": "/c", "plugins": {"key-auth": {}}, "upstream": {"nodes": {up.node(): 1}}}),
    )
    .await;
    let jack = eventually(&gw, "/c", &[("apikey", "jk")], 403).await;
    assert_eq!(
        jack.json(),
        json!({"message": "Your IP address is not allowed"}),
        "the group's plugin"
    );
    let rose = get_with(&gw.url("/c"), &[("apikey", "rk")]).await;
    assert_eq!(rose.status, 200);
    assert!(
        rose.upstream_header("x-rose").is_some(),
        "the consumer's plugin"
    );
}

/// As APISIX merges a consumer's plugins into the route's, they run in the response phases too:
/// a consumer's `response-rewrite` (header_filter) shapes its answers and its `file-logger`
/// (log) writes its requests, and neither touches another consumer's.
#[tokio::test]
async fn a_consumers_own_plugins_run_in_the_response_phases() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("consumer.log");
    ok(
        &admin,
        "/consumers",
        json!({"username": "jack", "plugins": {
            "key-auth": {"key": "jk"},
            "response-rewrite": {"headers": {"set": {"X-Consumer-Seen": "jack"}}},
            "file-logger": {"path": path.to_str().expect("utf-8")}
        }}),
    )
    .await;
    ok(
        &admin,
        "/consumers",
        json!({"username": "rose", "plugins": {"key-auth": {"key": "rk"}}}),
    )
    .await;
    ok(
        &admin,
        "/routes/r",
        json!({"uri": "/r", "plugins": {"key-auth": {}}, "upstream": {"nodes": {up.node(): 1}}}),
    )
    .await;
    let rose = eventually(&gw, "/r", &[("apikey", "rk")], 200).await;
    assert_eq!(rose.header("x-consumer-seen"), None, "only jack's answers");
    let jack = get_with(&gw.url("/r"), &[("apikey", "jk")]).await;
    assert_eq!(jack.status, 200);
    assert_eq!(
        jack.header("x-consumer-seen"),
        Some("jack"),
        "header_filter"
    );
    let mut logged = Vec::new();
    for _ in 0..200 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        logged = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect();
        if !logged.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!logged.is_empty(), "the log phase ran");
    for line in &logged {
        assert_eq!(line["request"]["headers"]["apikey"], "jk", "{line}");
    }
}

#[tokio::test]
async fn the_admin_api_checks_consumer_plugin_configs() {
    let (_gw, admin) = embedded_gateway().await;
    let empty = admin
        .put(
            "/consumers",
            json!({"username": "jack", "plugins": {"key-auth": {}}}),
        )
        .await;
    assert_eq!(empty.status, 400);
    assert!(empty.json()["error_msg"]
        .as_str()
        .expect("message")
        .contains("failed to check the configuration of plugin key-auth"));
    ok(&admin, "/consumers", json!({"username": "jack"})).await;
    let not_auth = admin
        .put(
            "/consumers/jack/credentials/c",
            json!({"plugins": {"request-id": {}}}),
        )
        .await;
    assert_eq!(not_auth.status, 400);
    assert!(not_auth.json()["error_msg"]
        .as_str()
        .expect("message")
        .contains("only supports auth type plugins in consumer credential"));
    ok(
        &admin,
        "/consumers/jack/credentials/c",
        json!({"plugins": {"basic-auth": {"username": "j", "password": "p"}}}),
    )
    .await;

    let dup = admin
        .put("/consumers", json!({"username": "rose", "plugins": {"basic-auth": {"username": "j", "password": "other"}}}))
        .await;
    assert_eq!(
        dup.status, 400,
        "basic-auth username j is jack's credential"
    );
    assert_eq!(
        dup.json()["error_msg"],
        "duplicate username of plugin basic-auth found with credential: c of consumer: jack"
    );
    ok(
        &admin,
        "/consumers/jack/credentials/c",
        json!({"plugins": {"basic-auth": {"username": "j", "password": "new"}}}),
    )
    .await;
}

#[tokio::test]
async fn jwt_auth_verifies_signature_expiry_and_key() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    ok(&admin, "/consumers", json!({"username": "jack", "plugins": {"jwt-auth": {"key": "jack-key", "secret": "jack-secret"}}})).await;
    ok(
        &admin,
        "/routes/j",
        json!({"uri": "/j", "plugins": {"jwt-auth": {}}, "upstream": {"nodes": {up.node(): 1}}}),
    )
    .await;
    let now = jsonwebtoken::get_current_timestamp();
    let sign = |claims: serde_json::Value, secret: &str| {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("token")
    };
    let good = sign(json!({"key": "jack-key", "exp": now + 60}), "jack-secret");
    let missing = eventually(&gw, "/j", &[], 401).await;
    assert_eq!(
        missing.json(),
        json!({"message": "Missing JWT token in request"})
    );
    let bearer = format!("Bearer {good}");
    let got = get_with(&gw.url("/j"), &[("authorization", bearer.as_str())]).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.upstream_header("x-consumer-username").as_deref(),
        Some("jack")
    );
    assert_eq!(
        get(&gw.url(&format!("/j?jwt={good}"))).await.status,
        200,
        "from the query"
    );
    for (token, message) in [
        (
            sign(json!({"key": "jack-key", "exp": now + 60}), "wrong"),
            "failed to verify jwt",
        ),
        (
            sign(json!({"key": "jack-key", "exp": now - 600}), "jack-secret"),
            "failed to verify jwt",
        ),
        (
            sign(json!({"key": "nobody", "exp": now + 60}), "jack-secret"),
            "Invalid user key in JWT token",
        ),
        (
            sign(json!({"exp": now + 60}), "jack-secret"),
            "missing user key in JWT token",
        ),
    ] {
        let got = get_with(&gw.url("/j"), &[("authorization", token.as_str())]).await;
        assert_eq!(got.status, 401);
        assert_eq!(got.json()["message"], message);
    }
}

/// `Authorization: Signature ...` for `method path` signed at `date` with `headers` (beyond
/// `@request-target date`, as `name: value` pairs) by `key_id`'s `secret`.
fn hmac_signature(
    key_id: &str,
    secret: &str,
    method: &str,
    path: &str,
    date: &str,
    headers: &[(&str, &str)],
) -> String {
    use base64::Engine;
    let mut text = format!("{key_id}\n{method} {path}\ndate: {date}\n");
    let mut names = "@request-target date".to_owned();
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\n"));
        names.push(' ');
        names.push_str(name);
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, text.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    format!("Signature keyId=\"{key_id}\",algorithm=\"hmac-sha256\",headers=\"{names}\",signature=\"{signature}\"")
}

#[tokio::test]
async fn hmac_auth_verifies_signatures() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    ok(&admin, "/consumers", json!({"username": "john", "plugins": {"hmac-auth": {"key_id": "john-key", "secret_key": "john-secret-key"}}})).await;
    ok(&admin, "/consumers", json!({"username": "rose"})).await;
    ok(
        &admin,
        "/consumers/rose/credentials/laptop",
        json!({"plugins": {"hmac-auth": {"key_id": "rose-key", "secret_key": "rose-secret"}}}),
    )
    .await;
    ok(
        &admin,
        "/routes/h",
        json!({"uri": "/h", "plugins": {"hmac-auth": {"signed_headers": ["x-app"]}}, "upstream": {"nodes": {up.node(): 1}}}),
    )
    .await;

    let missing = eventually(&gw, "/h", &[], 401).await;
    assert_eq!(
        missing.json(),
        json!({"message": "client request can't be validated: missing Authorization header"})
    );
    assert_eq!(
        missing.header("www-authenticate"),
        Some("hmac realm=\"hmac\"")
    );
    let basic = get_with(&gw.url("/h"), &[("authorization", "Basic abc")]).await;
    assert_eq!(
        basic.json(),
        json!({"message": "client request can't be validated: Authorization header does not start with 'Signature'"})
    );

    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let john = hmac_signature(
        "john-key",
        "john-secret-key",
        "GET",
        "/h?x=1",
        &date,
        &[("x-app", "shop")],
    );
    let headers = [
        ("date", date.as_str()),
        ("x-app", "shop"),
        ("authorization", john.as_str()),
    ];
    let got = get_with(&gw.url("/h?x=1"), &headers).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert_eq!(
        got.upstream_header("x-consumer-username").as_deref(),
        Some("john")
    );
    assert!(got.upstream_header("authorization").is_some());

    // Another query, another header value, or a signature leaving out x-app: refused.
    let other_query = get_with(&gw.url("/h?x=2"), &headers).await;
    assert_eq!(other_query.status, 401);
    assert_eq!(
        other_query.json(),
        json!({"message": "client request can't be validated"})
    );
    let tampered = [headers[0], ("x-app", "evil"), headers[2]];
    assert_eq!(get_with(&gw.url("/h?x=1"), &tampered).await.status, 401);
    let unsigned_app = hmac_signature("john-key", "john-secret-key", "GET", "/h", &date, &[]);
    let got = get_with(
        &gw.url("/h"),
        &[
            ("date", date.as_str()),
            ("authorization", unsigned_app.as_str()),
        ],
    )
    .await;
    assert_eq!(got.status, 401, "x-app is a required signed header");
    let old = httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(600));
    let stale = hmac_signature(
        "john-key",
        "john-secret-key",
        "GET",
        "/h",
        &old,
        &[("x-app", "a")],
    );
    let got = get_with(
        &gw.url("/h"),
        &[
            ("date", old.as_str()),
            ("x-app", "a"),
            ("authorization", stale.as_str()),
        ],
    )
    .await;
    assert_eq!(got.status, 401, "outside the clock skew");
    assert_eq!(up.hits(), 1, "refused requests never reach the upstream");

    // A credential's key, and hide_credentials.
    ok(&admin, "/routes/h", json!({"uri": "/h", "plugins": {"hmac-auth": {"hide_credentials": true}}, "upstream": {"nodes": {up.node(): 1}}})).await;
    let rose = hmac_signature("rose-key", "rose-secret", "GET", "/h", &date, &[]);
    let headers = [("date", date.as_str()), ("authorization", rose.as_str())];
    for _ in 0..200 {
        let got = get_with(&gw.url("/h"), &headers).await;
        if got.status == 200 && got.upstream_header("authorization").is_none() {
            assert_eq!(
                got.upstream_header("x-consumer-username").as_deref(),
                Some("rose")
            );
            assert_eq!(
                got.upstream_header("x-credential-identifier").as_deref(),
                Some("laptop")
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("hide_credentials never applied");
}

#[tokio::test]
async fn the_admin_api_checks_hmac_auth_configs() {
    let (_gw, admin) = embedded_gateway().await;
    for conf in [
        json!({"clock_skew": 0}),
        json!({"allowed_algorithms": ["hmac-md5"]}),
        json!({"max_req_body_size": 0}),
    ] {
        let got = admin
            .put(
                "/routes/h",
                json!({"uri": "/h", "plugins": {"hmac-auth": conf}, "upstream": {"nodes": {"127.0.0.1:1980": 1}}}),
            )
            .await;
        assert_eq!(got.status, 400, "{conf}");
        assert!(got.json()["error_msg"]
            .as_str()
            .expect("message")
            .contains("failed to check the configuration of plugin hmac-auth"));
    }
    let no_secret = admin
        .put(
            "/consumers",
            json!({"username": "john", "plugins": {"hmac-auth": {"key_id": "k"}}}),
        )
        .await;
    assert_eq!(no_secret.status, 400);
    let schema = admin.get("/plugins/hmac-auth").await;
    assert_eq!(schema.status, 200);
    assert!(schema.body.windows(9).any(|w| w == b"hmac-sha1"));
}

#[tokio::test]
async fn hmac_auth_validates_the_body_digest() {
    use base64::Engine;
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    ok(&admin, "/consumers", json!({"username": "john", "plugins": {"hmac-auth": {"key_id": "john-key", "secret_key": "john-secret-key"}}})).await;
    ok(
        &admin,
        "/routes/p",
        json!({"uri": "/p", "plugins": {"hmac-auth": {"validate_request_body": true, "max_req_body_size": 1024}}, "upstream": {"nodes": {up.node(): 1}}}),
    )
    .await;
    eventually(&gw, "/p", &[], 401).await;
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let auth = hmac_signature("john-key", "john-secret-key", "POST", "/p", &date, &[]);
    let digest = |body: &[u8]| {
        let sum = ring::digest::digest(&ring::digest::SHA256, body);
        format!(
            "SHA-256={}",
            base64::engine::general_purpose::STANDARD.encode(sum.as_ref())
        )
    };
    let http = client();
    let post = |body: Vec<u8>, digest: String| {
        let req = http::Request::post(gw.url("/p"))
            .header("date", &date)
            .header("authorization", &auth)
            .header("digest", digest)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("request");
        send(&http, req)
    };
    let body = br#"{"name": "world"}"#.to_vec();
    let got = post(body.clone(), digest(&body)).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert_eq!(
        got.json()["body"],
        r#"{"name": "world"}"#,
        "forwarded whole"
    );
    assert_eq!(got.upstream_header("content-length").as_deref(), Some("17"));

    let tampered = post(br#"{"name": "evil"}"#.to_vec(), digest(&body)).await;
    assert_eq!(tampered.status, 401);
    assert_eq!(
        tampered.json(),
        json!({"message": "client request can't be validated"})
    );
    let big = vec![b'x'; 2048];
    assert_eq!(
        post(big.clone(), digest(&big)).await.status,
        401,
        "over max_req_body_size"
    );
    assert_eq!(up.hits(), 1);
}
