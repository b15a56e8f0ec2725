//! The transform plugins through the running gateway (embedded store, Admin API):
//! proxy-rewrite (checked by what the echo upstream received), response-rewrite and
//! referer-restriction (checked as a client sees them), and the body filters of echo, gzip and
//! response-rewrite `filters` on streamed upstream bodies, and real-ip.

mod common;

use std::time::Duration;

use common::admin::*;
use common::*;
use http::Method;
use serde_json::{json, Value};

/// Writes `path` with `body` and waits until a GET of `probe` satisfies `ready`.
async fn apply_until(
    gw: &TestGateway,
    admin: &Admin,
    path: &str,
    body: Value,
    probe: &str,
    ready: impl Fn(&Got) -> bool,
) {
    let put = admin.put(path, body).await;
    assert!(put.status.is_success(), "{path}: {:?}", put.body);
    for _ in 0..200 {
        if ready(&get(&gw.url(probe)).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{probe} never became ready");
}

/// A route on `uri` to `up` with `plugins`.
fn route(uri: &str, up: &Upstream, plugins: Value) -> Value {
    json!({"uri": uri, "plugins": plugins, "upstream": {"nodes": {up.node(): 1}}})
}

/// The path and query the echo upstream received.
fn upstream_uri(got: &Got) -> String {
    got.json()["uri"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn proxy_rewrite() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let conf = json!({"proxy-rewrite": {
        "uri": "/up/$arg_id",
        "method": "POST",
        "host": "rewritten.test",
        "headers": {
            "add": {"X-Add": "a"},
            "set": {"X-Set": "in=$http_x_in", "X-Empty": ""},
            "remove": ["X-Remove"],
        },
    }});
    apply_until(
        &gw,
        &admin,
        "/routes/pr",
        route("/pr/*", &up, conf),
        "/pr/x?id=1",
        |g| g.status == 200 && upstream_uri(g).starts_with("/up/"),
    )
    .await;
    let got = request(
        Method::GET,
        &gw.url("/pr/x?id=7&k=v"),
        &[
            ("X-In", "v"),
            ("X-Remove", "r"),
            ("X-Add", "0"),
            ("X-Empty", "e"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    let echo = got.json();
    assert_eq!(echo["uri"], "/up/7?id=7&k=v", "the query is kept");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["headers"]["host"], "rewritten.test");
    // The echo keeps the last of repeated headers (that `add` appends is unit-tested).
    assert_eq!(echo["headers"]["x-add"], "a", "added after the client's");
    assert_eq!(echo["headers"]["x-set"], "in=v");
    assert!(echo["headers"]["x-remove"].is_null());
    assert!(echo["headers"]["x-empty"].is_null(), "an empty set removes");

    // regex_uri with its captures in a legacy header map; no match leaves the request alone.
    let conf = json!({"proxy-rewrite": {
        "regex_uri": ["^/pr/(\\w+)/(\\w+)$", "/v2/$2/$1"],
        "headers": {"X-Who": "$1"},
    }});
    apply_until(
        &gw,
        &admin,
        "/routes/pr",
        route("/pr/*", &up, conf),
        "/pr/a/b",
        |g| g.status == 200 && upstream_uri(g) == "/v2/b/a",
    )
    .await;
    let got = get(&gw.url("/pr/users/list?page=2")).await;
    assert_eq!(upstream_uri(&got), "/v2/list/users?page=2");
    assert_eq!(got.upstream_header("x-who").as_deref(), Some("users"));
    assert_eq!(got.json()["method"], "GET");
    let got = get(&gw.url("/pr/one?q=1")).await;
    assert_eq!(upstream_uri(&got), "/pr/one?q=1", "no match");
    assert!(
        got.upstream_header("x-who").is_none(),
        "no captures: set to nothing, removed"
    );

    // proxy-rewrite.t TEST 24/25: `uri` and `regex_uri` together are accepted and `uri` wins.
    let conf = json!({"proxy-rewrite": {
        "uri": "/hello",
        "regex_uri": ["^/test/(.*)", "/${1}1"],
        "headers": {"X-Cap": "c$1"},
    }});
    apply_until(
        &gw,
        &admin,
        "/routes/pr",
        route("/test/*", &up, conf),
        "/test/hello",
        |g| g.status == 200 && upstream_uri(g) == "/hello",
    )
    .await;
    let got = get(&gw.url("/test/hello?a=1")).await;
    assert_eq!(got.status, 200);
    assert_eq!(upstream_uri(&got), "/hello?a=1");
    assert_eq!(
        got.upstream_header("x-cap").as_deref(),
        Some("c"),
        "regex_uri is not applied: no captures"
    );

    // Refused configs (proxy-rewrite.t TEST 26: an odd regex_uri, even next to `uri`).
    for bad in [
        json!({"uri": "/a", "regex_uri": ["^/test/(.*)"]}),
        json!({"regex_uri": ["^/(a"]}),
        json!({"method": "FETCH"}),
        json!({"host": "a b"}),
    ] {
        let put = admin
            .put(
                "/routes/bad",
                route("/bad", &up, json!({"proxy-rewrite": bad})),
            )
            .await;
        assert_eq!(put.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn response_rewrite() {
    let up = upstream("a", Behaviour::Echo).await;
    let missing = upstream("b", Behaviour::Status(404)).await;
    let (gw, admin) = embedded_gateway().await;
    let conf = json!({"response-rewrite": {
        "status_code": 201,
        "body": "replaced",
        "headers": {
            "add": ["X-Status: $status", "X-Route: $route_id"],
            "set": {"X-Upstream": "hidden"},
            "remove": ["Content-Type"],
        },
    }});
    apply_until(
        &gw,
        &admin,
        "/routes/rr",
        route("/rr/*", &up, conf),
        "/rr/x",
        |g| g.status == 201,
    )
    .await;
    let before = up.hits();
    let got = get(&gw.url("/rr/x")).await;
    assert_eq!(got.status, 201);
    assert_eq!(got.body, "replaced");
    assert_eq!(got.header("content-length"), Some("8"));
    assert!(got.header("content-type").is_none());
    assert_eq!(got.header("x-upstream"), Some("hidden"));
    assert_eq!(got.header("x-status"), Some("201"));
    assert_eq!(got.header("x-route"), Some("rr"), "request variables");
    assert_eq!(up.hits(), before + 1, "the upstream was called");

    // `vars` on the response status and a request variable; a base64 body.
    let conf = json!({"response-rewrite": {
        "vars": [["status", "==", 404], ["arg_v", "==", "1"]],
        "status_code": 200,
        "body": "bm90IGhlcmU=",
        "body_base64": true,
    }});
    apply_until(
        &gw,
        &admin,
        "/routes/rv",
        route("/rv", &missing, conf),
        "/rv?v=1",
        |g| g.status == 200,
    )
    .await;
    let got = get(&gw.url("/rv?v=1")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "not here");
    let got = get(&gw.url("/rv?v=2")).await;
    assert_eq!(got.status, 404, "vars do not hold: the upstream's answer");
    assert_eq!(got.json()["uri"], "/rv?v=2");

    // A plugin's answer is rewritten too.
    let conf = json!({
        "ip-restriction": {"whitelist": ["10.0.0.0/8"]},
        "response-rewrite": {"vars": [["status", "==", 403]], "status_code": 401, "body": "nope", "headers": {"X-Rewritten": "1"}},
    });
    apply_until(
        &gw,
        &admin,
        "/routes/rp",
        route("/rp", &up, conf),
        "/rp",
        |g| g.status == 401,
    )
    .await;
    let got = get(&gw.url("/rp")).await;
    assert_eq!(got.status, 401);
    assert_eq!(got.body, "nope");
    assert_eq!(got.header("x-rewritten"), Some("1"));

    // `filters` with `body` is refused with a message saying why.
    let put = admin
        .put(
            "/routes/bad",
            route(
                "/bad",
                &up,
                json!({"response-rewrite": {"body": "x", "filters": [{"regex": "a", "replace": "b"}]}}),
            ),
        )
        .await;
    assert_eq!(put.status, 400);
    let msg = put.json()["error_msg"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        msg.contains("failed to validate dependent schema for"),
        "APISIX's schema refuses body with filters: {msg}"
    );
    let put = admin
        .put(
            "/routes/bad",
            route(
                "/bad",
                &up,
                json!({"response-rewrite": {"status_code": 600}}),
            ),
        )
        .await;
    assert_eq!(put.status, 400);
}

#[tokio::test]
async fn referer_restriction() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let conf = json!({"referer-restriction": {"whitelist": ["*.good.com", "good.org"]}});
    apply_until(
        &gw,
        &admin,
        "/routes/ref",
        route("/ref", &up, conf),
        "/ref",
        |g| g.status == 403,
    )
    .await;
    let got = get(&gw.url("/ref")).await;
    assert_eq!(got.status, 403, "no Referer");
    assert_eq!(got.json()["message"], "Your referer host is not allowed");
    let before = up.hits();
    let ok = |r: &'static str| {
        let url = gw.url("/ref");
        async move { get_with(&url, &[("Referer", r)]).await.status }
    };
    assert_eq!(ok("http://a.good.com/page").await, 200);
    assert_eq!(ok("https://GOOD.org:8443/").await, 200);
    assert_eq!(ok("http://good.com/").await, 403);
    assert_eq!(ok("http://evil.org/").await, 403);
    assert_eq!(up.hits(), before + 2);

    let conf = json!({"referer-restriction": {"blacklist": ["evil.org"], "bypass_missing": true, "message": "no"}});
    apply_until(
        &gw,
        &admin,
        "/routes/ref",
        route("/ref", &up, conf),
        "/ref",
        |g| g.status == 200,
    )
    .await;
    assert_eq!(ok("http://good.com/").await, 200);
    let got = get_with(&gw.url("/ref"), &[("Referer", "http://evil.org/x")]).await;
    assert_eq!(got.status, 403);
    assert_eq!(got.json()["message"], "no");

    let put = admin
        .put(
            "/routes/bad",
            route(
                "/bad",
                &up,
                json!({"referer-restriction": {"whitelist": ["a.com"], "blacklist": ["b.com"]}}),
            ),
        )
        .await;
    assert_eq!(put.status, 400);
}

/// The body, gunzipped.
fn gunzip(body: &[u8]) -> String {
    use std::io::Read;
    let mut out = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut out)
        .expect("a gzip body");
    out
}

#[tokio::test]
async fn body_filters() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    // echo wraps the upstream's body, response-rewrite edits it, gzip compresses the result
    // last (as nginx's gzip module runs after APISIX's filters) whatever the priorities.
    let conf = json!({
        "echo": {"before_body": "<", "after_body": ">"},
        "response-rewrite": {"filters": [
            {"regex": "\"method\":\"GET\"", "replace": "\"method\":\"SEEN\""}]},
        "gzip": {"types": ["application/json"], "min_length": 1, "vary": true},
    });
    apply_until(
        &gw,
        &admin,
        "/routes/bf",
        route("/bf/*", &up, conf),
        "/bf/x",
        |g| g.body.starts_with(b"<"),
    )
    .await;

    let plain = get(&gw.url("/bf/x?q=1")).await;
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-encoding").is_none(), "not asked for");
    assert!(
        plain.header("content-length").is_none(),
        "the length changed"
    );
    let text = String::from_utf8(plain.body.to_vec()).expect("utf-8");
    let inner = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .expect("wrapped");
    let echo: Value = serde_json::from_str(inner).expect("the upstream's JSON");
    assert_eq!(echo["method"], "SEEN", "the filter rewrote the body");
    assert_eq!(echo["uri"], "/bf/x?q=1");

    let zipped = request(
        Method::GET,
        &gw.url("/bf/x?q=2"),
        &[("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert_eq!(zipped.header("vary"), Some("Accept-Encoding"));
    let text = gunzip(&zipped.body);
    assert!(text.starts_with("<{") && text.ends_with("}>"), "{text}");
    assert!(text.contains("\"method\":\"SEEN\""), "{text}");

    // echo's `body` replaces the upstream's body entirely.
    apply_until(
        &gw,
        &admin,
        "/routes/bf",
        route(
            "/bf/*",
            &up,
            json!({"echo": {"body": "mine", "headers": {"X-Echo": "1"}}}),
        ),
        "/bf/x",
        |g| g.body == "mine",
    )
    .await;
    let got = get(&gw.url("/bf/y")).await;
    assert_eq!(got.header("x-echo"), Some("1"));
    assert_eq!(got.body, "mine");
}

#[tokio::test]
async fn real_ip_changes_the_client_for_plugins_and_upstream() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    let plugins = json!({
        "real-ip": {"source": "arg_realip"},
        "ip-restriction": {"blacklist": ["1.2.3.4"]},
        "limit-count": {"count": 1, "time_window": 60, "key": "remote_addr", "rejected_code": 429}
    });
    apply_until(
        &gw,
        &admin,
        "/routes/r",
        route("/r", &up, plugins),
        "/r?realip=1.2.3.4",
        |g| g.status == 403,
    )
    .await;

    let got = get(&gw.url("/r?realip=5.6.7.8")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.upstream_header("x-real-ip").as_deref(), Some("5.6.7.8"));
    assert_eq!(
        got.upstream_header("x-forwarded-for").as_deref(),
        Some("5.6.7.8")
    );
    assert_eq!(
        get(&gw.url("/r?realip=5.6.7.8")).await.status,
        429,
        "limit-count keys on the new remote_addr"
    );
    assert_eq!(
        get(&gw.url("/r?realip=[2001:db8::9]:443")).await.status,
        200
    );
    assert_eq!(
        get(&gw.url("/r?realip=garbage")).await.status,
        200,
        "not an address: the peer (127.0.0.1), which has its own count"
    );

    // X-Forwarded-For through trusted proxies, recursively.
    let xff = json!({"real-ip": {"source": "http_x_forwarded_for", "trusted_addresses": ["127.0.0.1", "10.0.0.0/8"], "recursive": true}});
    apply_until(&gw, &admin, "/routes/x", route("/x", &up, xff), "/x", |g| {
        g.status == 200
    })
    .await;
    let got = get_with(
        &gw.url("/x"),
        &[("x-forwarded-for", "9.9.9.9, 8.8.8.8, 10.0.0.5")],
    )
    .await;
    assert_eq!(got.upstream_header("x-real-ip").as_deref(), Some("8.8.8.8"));
    assert_eq!(
        got.upstream_header("x-forwarded-for").as_deref(),
        Some("9.9.9.9, 8.8.8.8, 10.0.0.5, 8.8.8.8"),
        "the incoming chain, then the client"
    );

    // A peer that is not trusted cannot set the address.
    let untrusted =
        json!({"real-ip": {"source": "http_x_forwarded_for", "trusted_addresses": ["10.0.0.0/8"]}});
    apply_until(
        &gw,
        &admin,
        "/routes/x",
        route("/x", &up, untrusted),
        "/x",
        |g| g.status == 200,
    )
    .await;
    for _ in 0..200 {
        let got = get_with(&gw.url("/x"), &[("x-forwarded-for", "9.9.9.9")]).await;
        if got.upstream_header("x-real-ip").as_deref() == Some("127.0.0.1") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("an untrusted peer set the client address");
}

#[tokio::test]
async fn referer_restriction_malformed_is_missing() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    // referer-restriction.t TEST 6-8: with bypass_missing, a Referer with no host to parse
    // passes as a missing one.
    let conf = json!({"referer-restriction": {"bypass_missing": true, "whitelist": ["*.xx.com", "yy.com"]}});
    apply_until(
        &gw,
        &admin,
        "/routes/ref",
        route("/ref", &up, conf),
        "/ref",
        |g| g.status == 200,
    )
    .await;
    let status = |r: &'static str| {
        let url = gw.url("/ref");
        async move { get_with(&url, &[("Referer", r)]).await }
    };
    let got = status("www.yy.com").await;
    assert_eq!(got.status, 200, "TEST 8");
    assert_eq!(upstream_uri(&got), "/ref");
    assert_eq!(status("/relative/page").await.status, 200);
    assert_eq!(status("http://www.xx.com").await.status, 200, "TEST 2");
    let got = status("https://www.yy.com/am").await;
    assert_eq!(got.status, 403, "TEST 4");
    assert_eq!(
        got.body,
        "{\"message\":\"Your referer host is not allowed\"}\n".as_bytes()
    );

    // Without bypass_missing a malformed Referer is refused, even by a blacklist.
    let conf = json!({"referer-restriction": {"blacklist": ["*.xx.com"], "message": "Your referer host is deny"}});
    apply_until(
        &gw,
        &admin,
        "/routes/ref",
        route("/ref", &up, conf),
        "/ref",
        |g| g.status == 403,
    )
    .await;
    let got = status("www.yy.com").await;
    assert_eq!(got.status, 403);
    assert_eq!(
        got.body,
        "{\"message\":\"Your referer host is deny\"}\n".as_bytes()
    );
    let got = status("http://www.xx.com").await;
    assert_eq!(got.status, 403, "TEST 11");
    assert_eq!(status("https://yy.com").await.status, 200, "TEST 12");
}

#[tokio::test]
async fn real_ip_takes_the_port() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    // real-ip.t TEST 12-13: the port in the source becomes `$remote_port`.
    let conf = json!({
        "real-ip": {"source": "http_xff"},
        "response-rewrite": {"headers": {"remote_port": "$remote_port", "remote_addr": "$remote_addr"}},
    });
    apply_until(
        &gw,
        &admin,
        "/routes/p",
        route("/p", &up, conf),
        "/p",
        |g| g.status == 200,
    )
    .await;
    let got = get_with(&gw.url("/p"), &[("xff", "1.1.1.1:7090")]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("remote_port"), Some("7090"));
    assert_eq!(got.header("remote_addr"), Some("1.1.1.1"));
    assert_eq!(got.upstream_header("x-real-ip").as_deref(), Some("1.1.1.1"));
    let got = get_with(&gw.url("/p"), &[("xff", "[::2]:80")]).await;
    assert_eq!(got.header("remote_port"), Some("80"));
    assert_eq!(got.header("remote_addr"), Some("::2"));
    // Without a port the peer's stays.
    let got = get_with(&gw.url("/p"), &[("xff", "1.1.1.1")]).await;
    assert_eq!(got.header("remote_addr"), Some("1.1.1.1"));
    let port: u16 = got
        .header("remote_port")
        .and_then(|p| p.parse().ok())
        .expect("a port");
    assert_ne!(port, 7090);

    // real-ip.t TEST 2-11: ip-restriction sees the address; a bad port changes nothing.
    let conf = json!({
        "real-ip": {"source": "http_xff"},
        "ip-restriction": {"whitelist": ["1.1.1.1", "::2"]},
    });
    apply_until(
        &gw,
        &admin,
        "/routes/p",
        route("/p", &up, conf),
        "/p",
        |g| g.status == 403,
    )
    .await;
    for (xff, status) in [
        ("1.1.1.1", 200),       // TEST 3
        ("1.1.1.1:80", 200),    // TEST 4
        ("1.1.1.1.1", 403),     // TEST 6
        ("1.1.1.1:65536", 403), // TEST 7
        ("::2", 200),           // TEST 9
        ("[::2]:80", 200),      // TEST 10
        ("[::2]", 200),         // TEST 11
    ] {
        let got = get_with(&gw.url("/p"), &[("xff", xff)]).await;
        assert_eq!(got.status, status, "{xff}");
    }
}

#[tokio::test]
async fn response_rewrite_balancer_and_max_body() {
    let up = upstream("a", Behaviour::Echo).await;
    let (gw, admin) = embedded_gateway().await;
    // response-rewrite.t TEST 23-24: `$balancer_ip:$balancer_port`, the node that answered.
    let conf = json!({"response-rewrite": {"headers": {
        "X-A": "$remote_addr",
        "X-B": "from $remote_addr to $balancer_ip:$balancer_port",
    }}});
    apply_until(
        &gw,
        &admin,
        "/routes/wh",
        route("/with_header", &up, conf),
        "/with_header",
        |g| g.status == 200,
    )
    .await;
    let got = get(&gw.url("/with_header")).await;
    assert_eq!(got.header("x-a"), Some("127.0.0.1"));
    let to = format!("from 127.0.0.1 to {}", up.node());
    assert_eq!(got.header("x-b"), Some(to.as_str()));

    // response-rewrite.t TEST 28-29: the body is truncated to max_resp_body_size, then filtered.
    let plain = get(&gw.url("/with_header")).await;
    assert_eq!(plain.status, 200);
    let conf = json!({"response-rewrite": {
        "max_resp_body_size": 5,
        "filters": [{"regex": "\"", "scope": "global", "replace": "'"}],
    }});
    apply_until(
        &gw,
        &admin,
        "/routes/wh",
        route("/with_header", &up, conf),
        "/with_header",
        |g| g.body.len() == 5,
    )
    .await;
    let got = get(&gw.url("/with_header")).await;
    assert_eq!(got.status, 200);
    let expected = String::from_utf8_lossy(&plain.body[..5]).replace('"', "'");
    assert_eq!(got.body, expected.as_bytes());
    assert!(got.header("content-length").is_none_or(|l| l == "5"));
}
