//! Day one of a switch from APISIX: APISIX's `config.yaml` `plugins:` list, ext-plugin runners
//! checked where configs are written, plugins on routes without an upstream, HTTP/1.0 upstreams.

mod common;

use std::time::Duration;

use common::admin::{embedded_config, Admin};
use common::*;
use ferrogate::config::NodeConfig;
use ferrogate::gateway;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// APISIX's default `plugins:` list (names only), as users copy it into `config.yaml`.
const APISIX_PLUGINS: &str = include_str!("fixtures/apisix-default-plugins.yaml");

/// The exact Admin API refusal of a config using a plugin that is not enabled.
fn unknown_plugin(name: &str) -> String {
    format!(r#"{{"error_msg":"unknown plugin [{name}]"}}"#)
}

fn body(got: &Got) -> String {
    String::from_utf8_lossy(&got.body).into_owned()
}

/// Starts a gateway from `config_yaml` and `apisix_yaml` in a new directory; the start error's
/// text if it fails.
async fn try_start(config_yaml: &str, apisix_yaml: &str) -> Result<TestGateway, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("apisix.yaml"), apisix_yaml).expect("write routes");
    std::fs::write(dir.path().join("config.yaml"), merged_config(config_yaml)).expect("config");
    let loaded = NodeConfig::load(&dir.path().join("config.yaml")).map_err(|e| format!("{e:?}"))?;
    match gateway::start(loaded, Duration::from_millis(20), &[]).await {
        Ok(gateway) => Ok(TestGateway {
            gateway,
            dir,
            etcd: None,
        }),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn apisix_default_plugin_list_starts_and_its_missing_plugins_are_unknown() {
    let config = format!("{}{APISIX_PLUGINS}", embedded_config());
    let (c, _) = NodeConfig::parse(&config).expect("parses");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    let missing = c.unavailable_plugins(&gateway::plugin_registry(None, None, &[]));
    assert!(missing.contains(&"zipkin") && missing.contains(&"openid-connect"));
    assert!(!missing.contains(&"key-auth") && !missing.contains(&"ext-plugin-post-resp"));

    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_in(dir, &config).await;
    let admin = Admin::for_gateway(&gw);
    let listed = admin.get("/plugins/list").await;
    assert_eq!(listed.status, 200);
    let listed = listed.json();
    let listed = listed.as_array().expect("names");
    for name in [
        "key-auth",
        "echo",
        "redirect",
        "ext-plugin-pre-req",
        "prometheus",
    ] {
        assert!(listed.contains(&json!(name)), "{name} in {listed:?}");
    }
    assert!(!listed.contains(&json!("zipkin")), "{listed:?}");

    // Every object with plugins refuses one Ferrogate does not have, with APISIX's answer.
    let zipkin = json!({"zipkin": {"endpoint": "http://127.0.0.1:9411/api/v2/spans"}});
    let up = upstream("a", Behaviour::Echo).await;
    for (path, mut value) in [
        (
            "/routes/1",
            json!({"uri": "/z", "upstream": {"nodes": {up.node(): 1}}}),
        ),
        ("/services/1", json!({})),
        ("/consumers", json!({"username": "jack"})),
        ("/plugin_configs/1", json!({})),
        ("/global_rules/1", json!({})),
    ] {
        value["plugins"] = zipkin.clone();
        let refused = admin.put(path, value).await;
        assert_eq!(refused.status, 400, "{path}");
        // APISIX prefixes a consumer's plugin failures.
        let expected = if path == "/consumers" {
            r#"{"error_msg":"invalid plugins configuration: unknown plugin [zipkin]"}"#.to_owned()
        } else {
            unknown_plugin("zipkin")
        };
        assert_eq!(body(&refused), expected, "{path}");
    }
    // A plugin the other problems come before: the object's own schema is reported first.
    let both = admin
        .put(
            "/routes/1",
            json!({"uri": 5, "plugins": zipkin, "upstream": {"nodes": {up.node(): 1}}}),
        )
        .await;
    assert_eq!(both.status, 400);
    assert_ne!(body(&both), unknown_plugin("zipkin"));

    // The plugins of the list Ferrogate has work.
    let created = admin
        .put(
            "/routes/1",
            json!({"uri": "/k", "plugins": {"key-auth": {}}, "upstream": {"nodes": {up.node(): 1}}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", body(&created));
    let consumer = admin
        .put(
            "/consumers",
            json!({"username": "jack", "plugins": {"key-auth": {"key": "k1"}}}),
        )
        .await;
    assert_eq!(consumer.status, 201, "{}", body(&consumer));
    let mut denied = get(&gw.url("/k")).await;
    for _ in 0..100 {
        if denied.status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        denied = get(&gw.url("/k")).await;
    }
    assert_eq!(denied.status, 401);
    assert_eq!(
        body(&denied),
        "{\"message\":\"Missing API key in request\"}\n"
    );
    // The consumer may reach the data plane a moment after the route.
    let mut allowed = get_with(&gw.url("/k"), &[("apikey", "k1")]).await;
    for _ in 0..100 {
        if allowed.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        allowed = get_with(&gw.url("/k"), &[("apikey", "k1")]).await;
    }
    assert_eq!(allowed.status, 200);
}

#[tokio::test]
async fn standalone_file_refuses_plugins_ferrogate_lacks() {
    let config = format!("{APISIX_PLUGINS}\n");
    let up = upstream("a", Behaviour::Echo).await;
    let file = |plugin: &str| {
        format!(
            "routes:\n  - id: 1\n    uri: /z\n    plugins: {{{plugin}: {{}}}}\n    upstream:\n      nodes: {{\"{}\": 1}}\n#END\n",
            up.node()
        )
    };
    let err = try_start(&config, &file("zipkin"))
        .await
        .err()
        .expect("refused");
    assert!(
        err.ends_with("routes[0].plugins.zipkin: unknown plugin [zipkin]"),
        "{err}"
    );
    let gw = try_start(&config, &file("request-id"))
        .await
        .expect("starts");
    let got = get(&gw.url("/z")).await;
    assert_eq!(got.status, 200);
    assert!(got.header("x-request-id").is_some());
}

#[tokio::test]
async fn ext_plugin_without_any_runner_is_refused_at_the_admin_api() {
    let (gw, admin) = common::admin::embedded_gateway().await;
    for name in [
        "ext-plugin-pre-req",
        "ext-plugin-post-req",
        "ext-plugin-post-resp",
    ] {
        let refused = admin
            .put(
                "/routes/1",
                json!({"uri": "/e", "plugins": {name: {"conf": []}}, "upstream": {"nodes": {"127.0.0.1:1": 1}}}),
            )
            .await;
        assert_eq!(refused.status, 400);
        assert_eq!(
            body(&refused),
            format!(
                r#"{{"error_msg":"failed to check the configuration of plugin {name} err: no external plugin runner is configured (`ext-plugin` in config.yaml)"}}"#
            )
        );
    }
    // Disabled, its config is not checked (as APISIX).
    let disabled = admin
        .put(
            "/routes/1",
            json!({"uri": "/e", "plugins": {"ext-plugin-pre-req": {"_meta": {"disable": true}}}, "upstream": {"nodes": {"127.0.0.1:1": 1}}}),
        )
        .await;
    assert_eq!(disabled.status, 201, "{}", body(&disabled));
    drop(gw);
}

#[tokio::test]
async fn ext_plugin_naming_a_missing_runner_is_refused() {
    // Runners reached on sockets (`path_for_test`): nothing is spawned; none is needed to check.
    let sockets = tempfile::tempdir().expect("tempdir");
    let runners = format!(
        "ext-plugin:\n  runners:\n    go: {{path_for_test: {}}}\n    py: {{path_for_test: {}}}\n",
        sockets.path().join("go.sock").display(),
        sockets.path().join("py.sock").display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_in(dir, &format!("{}{runners}", embedded_config())).await;
    let admin = Admin::for_gateway(&gw);
    let route = |conf: serde_json::Value| json!({"uri": "/e", "plugins": {"ext-plugin-post-req": conf}, "upstream": {"nodes": {"127.0.0.1:1": 1}}});
    let refused = admin
        .put("/routes/1", route(json!({"runner": "java"})))
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        body(&refused),
        r#"{"error_msg":"failed to check the configuration of plugin ext-plugin-post-req err: runner \"java\" is not configured (configured: go, py)"}"#
    );
    let global = admin
        .put(
            "/global_rules/1",
            json!({"plugins": {"ext-plugin-pre-req": {"runner": "java"}}}),
        )
        .await;
    assert_eq!(global.status, 400);
    assert_eq!(
        body(&global),
        r#"{"error_msg":"failed to check the configuration of plugin ext-plugin-pre-req err: runner \"java\" is not configured (configured: go, py)"}"#
    );
    // Patching a runner name in is checked too.
    let named = admin.put("/routes/1", route(json!({"runner": "py"}))).await;
    assert_eq!(named.status, 201, "{}", body(&named));
    let patched = admin
        .patch(
            "/routes/1",
            json!({"plugins": {"ext-plugin-post-req": {"runner": "java"}}}),
        )
        .await;
    assert_eq!(patched.status, 400);
    let default = admin.put("/routes/2", route(json!({}))).await;
    assert_eq!(default.status, 201, "{}", body(&default));
    assert_eq!(
        admin.get("/routes/1").await.json()["value"]["plugins"]["ext-plugin-post-req"]["runner"],
        "py"
    );

    // The standalone file is refused the same way.
    let file = "routes:\n  - id: 1\n    uri: /e\n    plugins: {ext-plugin-pre-req: {runner: java}}\n    upstream:\n      nodes: {\"127.0.0.1:1\": 1}\n#END\n";
    let err = try_start(&runners, file).await.err().expect("refused");
    assert!(
        err.ends_with(r#"routes[0].plugins: failed to check the configuration of plugin ext-plugin-pre-req err: runner "java" is not configured (configured: go, py)"#),
        "{err}"
    );
    let ok = file.replace("runner: java", "runner: go");
    let served = try_start(&runners, &ok).await.expect("starts");
    drop(served);
}

#[tokio::test]
async fn plugins_answer_on_routes_without_an_upstream() {
    let file = r#"routes:
  - id: redirect
    uri: /redirect
    plugins: {redirect: {uri: /elsewhere, ret_code: 301}}
  - id: mocking
    uri: /mocking
    plugins: {mocking: {response_status: 201, content_type: text/plain, response_example: mocked}}
  - id: fault
    uri: /fault
    plugins: {fault-injection: {abort: {http_status: 418, body: "short and stout"}}}
  - id: keyed
    uri: /keyed
    plugins: {key-auth: {}}
  - id: plain
    uri: /plain
    plugins: {}
consumers:
  - username: jack
    plugins: {key-auth: {key: k1}}
#END
"#;
    let gw = gateway(file).await;
    let redirect = get(&gw.url("/redirect")).await;
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/elsewhere"));
    let mocking = get(&gw.url("/mocking")).await;
    assert_eq!(mocking.status, 201);
    assert_eq!(body(&mocking), "mocked");
    let fault = get(&gw.url("/fault")).await;
    assert_eq!(fault.status, 418);
    assert_eq!(body(&fault), "short and stout");
    // The plugins run first; the missing upstream answers only a request that would go on.
    let no_key = get(&gw.url("/keyed")).await;
    assert_eq!(no_key.status, 401);
    let missing = "{\"error_msg\":\"missing upstream configuration in Route or Service\"}\n";
    for got in [
        get_with(&gw.url("/keyed"), &[("apikey", "k1")]).await,
        get(&gw.url("/plain")).await,
    ] {
        assert_eq!(got.status, 503);
        assert_eq!(body(&got), missing);
    }
}

/// A raw TCP upstream answering HTTP/1.0, then closing: `/len` with a Content-Length, any other
/// path with a close-delimited body.
fn http10_answer(head: &[u8]) -> &'static [u8] {
    if head.starts_with(b"GET /len ") {
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    } else {
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body"
    }
}

/// Reads more of `s` onto `rest`; the bytes read (0: closed).
async fn read_more(s: &mut TcpStream, rest: &mut Vec<u8>) -> usize {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    rest.extend_from_slice(&buf[..n]);
    n
}

/// One response read off a raw HTTP/1.x connection: the status line, the lower-cased head and
/// the body (by Content-Length, chunked, or to the close).
async fn read_response(s: &mut TcpStream) -> (String, String, String) {
    let mut rest = Vec::new();
    let head_end = loop {
        if let Some(i) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(
            read_more(s, &mut rest).await > 0,
            "closed before a head: {rest:?}"
        );
    };
    let raw_head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
    let status = raw_head.lines().next().unwrap_or_default().to_owned();
    let head = raw_head.to_ascii_lowercase();
    rest.drain(..head_end);
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse::<usize>().expect("length"));
    let body = if let Some(len) = length {
        while rest.len() < len {
            assert!(read_more(s, &mut rest).await > 0, "closed mid-body");
        }
        rest.truncate(len);
        rest
    } else if head.contains("transfer-encoding: chunked") {
        let mut decoded = Vec::new();
        loop {
            while !rest.windows(2).any(|w| w == b"\r\n") {
                assert!(read_more(s, &mut rest).await > 0, "closed mid-chunk");
            }
            let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("line");
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .expect("chunk size");
            while rest.len() < line_end + 2 + size + 2 {
                assert!(read_more(s, &mut rest).await > 0, "closed mid-chunk");
            }
            decoded.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break decoded;
            }
        }
    } else {
        while read_more(s, &mut rest).await > 0 {}
        rest
    };
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn http10_upstream_answers_an_http11_client_in_http11_kept_alive() {
    let (addr, task) = raw_upstream(http10_answer).await;
    let file = format!(
        "routes:\n  - id: 1\n    uri: /*\n    upstream:\n      nodes: {{\"{addr}\": 1}}\n#END\n"
    );
    let gw = gateway(&file).await;
    let mut client = TcpStream::connect(gw.addr()).await.expect("connect");
    for round in 0..2 {
        client
            .write_all(b"GET /len HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        let (status, head, body) = read_response(&mut client).await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{round}: {head}");
        assert!(!head.contains("connection: close"), "{head}");
        assert_eq!(body, "hello");

        // No length: sent chunked, the client connection stays open.
        client
            .write_all(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        let (status, head, body) = read_response(&mut client).await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{round}: {head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        assert_eq!(body, "close-delimited body");
    }

    // An HTTP/1.0 client gets HTTP/1.0, the body delimited by the close.
    let mut old = TcpStream::connect(gw.addr()).await.expect("connect");
    old.write_all(b"GET /stream HTTP/1.0\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let (status, head, body) = read_response(&mut old).await;
    assert_eq!(status, "HTTP/1.0 200 OK", "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(body, "close-delimited body");
    task.abort();
}
