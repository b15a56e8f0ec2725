//! The runner conformance suite: every scenario through a real gateway (embedded store, Admin
//! API), a real upstream on 127.0.0.1 and a real runner process over its Unix socket.
//!
//! Our SDKs' runners serve the plugins of `tests/conformance/PLUGINS.md` and run every
//! scenario (`sdk_scenarios!`). APISIX's official Go runner runs the scenarios its sample
//! plugins (`say`, `fault-injection`, `response-rewrite`) can express (`mod official_go`). The
//! fault scenarios that need a misbehaving runner (garbage on the socket) use a fake runner,
//! since no real runner writes garbage on demand.

#[path = "../../proxy/tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::admin::Admin;
use common::{get, send, upstream, Behaviour, Got, TestGateway};
use http::Method;
use serde_json::{json, Value};
use support::{ext, gateway, route, RunnerUnderTest};

/// A POST with `body` and `headers`.
async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<bytes::Bytes>) -> Got {
    let mut req = http::Request::builder().method(Method::POST).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(body.into()))
        .expect("request");
    send(&common::client(), req).await
}

fn values<'a>(got: &'a Got, name: &str) -> Vec<&'a str> {
    got.headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// A stop answers the client; the upstream is not contacted.
async fn stop(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 5.0, "").await;
    let conf =
        json!({"status": 403, "headers": [["X-Stop", "a"], ["X-Stop", "b"]], "body": "denied"});
    let plugins = json!({"ext-plugin-pre-req": ext(&[("conf-stop", conf)])});
    route(&gw, &admin, "1", "/stop", &up.node(), plugins).await;
    let got = get(&gw.url("/stop")).await;
    assert_eq!(got.status, 403);
    assert_eq!(values(&got, "x-stop"), ["a", "b"]);
    assert_eq!(got.body, "denied");
    assert_eq!(up.hits(), 0, "the upstream is not contacted");
}

/// Path, headers (set, delete, host), args (replace, append, delete; flag args kept), body and
/// response headers, as the upstream and the client see them.
async fn rewrite(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 5.0, "").await;
    let conf = json!({
        "path": "/new path",
        "headers": [["X-Set", "1"], ["X-Del", null], ["Host", "rewritten.test"]],
        "args": [["a", "9"], ["a", "10"], ["b", null], ["n", "v"]],
        "body": "new body",
        "resp_headers": [["X-Resp", "r"], ["X-Resp", "s"]],
    });
    let plugins = json!({"ext-plugin-pre-req": ext(&[("conf-rewrite", conf)])});
    route(&gw, &admin, "1", "/old", &up.node(), plugins).await;
    let got = post(
        &gw.url("/old?a=1&b=2&flag&keep=1"),
        &[("X-Del", "gone"), ("X-Keep", "k")],
        "original body",
    )
    .await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    let echo = got.json();
    assert_eq!(echo["uri"], "/new%20path?flag&keep=1&a=9&a=10&n=v");
    assert_eq!(echo["headers"]["x-set"], "1");
    assert_eq!(echo["headers"]["x-keep"], "k");
    assert!(echo["headers"].get("x-del").is_none(), "{echo}");
    assert_eq!(echo["headers"]["host"], "rewritten.test");
    assert_eq!(echo["body"], "new body");
    assert_eq!(echo["headers"]["content-length"], "8");
    assert_eq!(values(&got, "x-resp"), ["r", "s"]);
}

/// The runner sees the request as sent (flag args, empty values, lower-case headers) and reads
/// variables and the body through extra info.
async fn extra_info(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 5.0, "").await;
    let conf = json!({"vars": ["remote_addr", "route_id", "uri", "no_such_var"], "body": true});
    let plugins = json!({"ext-plugin-pre-req": ext(&[("conf-echo", conf)])});
    route(&gw, &admin, "7", "/echo", &up.node(), plugins).await;
    let got = post(&gw.url("/echo?a=1&flag&e=&a=2"), &[("X-H", "v")], "hello").await;
    assert_eq!(got.status, 200);
    let seen = got.json();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/echo");
    assert_eq!(seen["src_ip"], "127.0.0.1");
    assert_eq!(
        seen["args"],
        json!([["a", "1"], ["flag", null], ["e", ""], ["a", "2"]])
    );
    let headers = seen["headers"].as_array().expect("headers");
    assert!(headers.contains(&json!(["x-h", "v"])), "{headers:?}");
    assert!(headers.iter().any(|h| h[0] == "host"), "{headers:?}");
    assert_eq!(
        seen["vars"],
        json!({"remote_addr": "127.0.0.1", "route_id": "7", "uri": "/echo", "no_such_var": null})
    );
    assert_eq!(seen["body"], "hello");
    assert_eq!(up.hits(), 0);
}

/// The response call changes status and headers (the list replaces the upstream's) and reads
/// the upstream's body.
async fn response(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 5.0, "").await;
    let conf = json!({"status": 201, "headers": [["X-A", "1"], ["Content-Type", "text/plain"]], "body_prefix": "seen:"});
    let plugins = json!({"ext-plugin-post-resp": ext(&[("conf-response", conf)])});
    route(&gw, &admin, "1", "/resp", &up.node(), plugins).await;
    let got = get(&gw.url("/resp?x=1")).await;
    assert_eq!(got.status, 201);
    assert_eq!(values(&got, "x-a"), ["1"]);
    assert_eq!(values(&got, "content-type"), ["text/plain"]);
    assert!(
        got.headers.get("x-upstream").is_none(),
        "the upstream's headers are replaced"
    );
    let text = String::from_utf8(got.body.to_vec()).expect("utf-8");
    let upstream_body: Value =
        serde_json::from_str(text.strip_prefix("seen:").expect("prefixed")).expect("echo");
    assert_eq!(upstream_body["uri"], "/resp?x=1");

    // Only a body: status and headers stay the upstream's.
    let conf = json!({"body": "replaced"});
    let plugins = json!({"ext-plugin-post-resp": ext(&[("conf-response", conf)])});
    route(&gw, &admin, "2", "/body", &up.node(), plugins).await;
    let got = get(&gw.url("/body")).await;
    assert_eq!(got.status, 200);
    assert_eq!(values(&got, "x-upstream"), ["up"]);
    assert_eq!(got.body, "replaced");
}

/// Two runner plugins on one route: the second sees the first's rewrite.
async fn chain(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 5.0, "").await;
    let plugins = json!({"ext-plugin-pre-req": ext(&[
        ("conf-rewrite", json!({"headers": [["X-Chain", "1"]], "path": "/chained"})),
        ("conf-echo", json!({})),
    ])});
    route(&gw, &admin, "1", "/chain", &up.node(), plugins).await;
    let seen = get(&gw.url("/chain")).await.json();
    assert_eq!(seen["path"], "/chained");
    let headers = seen["headers"].as_array().expect("headers");
    assert!(headers.contains(&json!(["x-chain", "1"])), "{headers:?}");
    assert_eq!(up.hits(), 0);
}

/// pre-req, post-req and post-resp on one route, each with its own call.
async fn all_three(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 5.0, "").await;
    let plugins = json!({
        "ext-plugin-pre-req": ext(&[("conf-rewrite", json!({"headers": [["X-Pre", "1"]]}))]),
        "ext-plugin-post-req": ext(&[("conf-rewrite", json!({"headers": [["X-Post", "2"]]}))]),
        "ext-plugin-post-resp": ext(&[("conf-response", json!({"headers": [["X-Resp", "3"]]}))]),
    });
    route(&gw, &admin, "1", "/three", &up.node(), plugins).await;
    let got = get(&gw.url("/three")).await;
    assert_eq!(got.status, 200);
    assert_eq!(values(&got, "x-resp"), ["3"]);
    let echo = got.json();
    assert_eq!(echo["headers"]["x-pre"], "1");
    assert_eq!(echo["headers"]["x-post"], "2");
}

/// A changed conf gets a new token; the old one is forgotten.
async fn conf_change(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 5.0, "").await;
    let stop =
        |body: &str| json!({"ext-plugin-pre-req": ext(&[("conf-stop", json!({"body": body}))])});
    route(&gw, &admin, "1", "/c", &up.node(), stop("one")).await;
    assert_eq!(get(&gw.url("/c")).await.body, "one");
    let runner_handle = gw
        .gateway
        .runners()
        .and_then(|r| r.runner(None))
        .expect("a runner")
        .clone();
    let before = runner_handle.keys();
    assert_eq!(before.len(), 1, "{before:?}");
    admin
        .put(
            "/routes/1",
            json!({"uri": "/c", "plugins": stop("two"), "upstream": {"nodes": {up.node(): 1}}}),
        )
        .await;
    wait_for(|| async { get(&gw.url("/c")).await.body == "two" }).await;
    let after = runner_handle.keys();
    assert_eq!(after.len(), 1, "the old key is forgotten: {after:?}");
    assert_ne!(before, after);
}

/// A runner killed mid-traffic is respawned, its tokens re-prepared, and requests recover.
async fn killed_runner(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 5.0, "").await;
    let plugins =
        json!({"ext-plugin-pre-req": ext(&[("conf-rewrite", json!({"headers": [["X-R", "1"]]}))])});
    route(&gw, &admin, "1", "/k", &up.node(), plugins).await;
    assert_eq!(get(&gw.url("/k")).await.json()["headers"]["x-r"], "1");
    kill_and_recover(&gw, "/k", |got| {
        got.status == 200 && got.json()["headers"]["x-r"] == "1"
    })
    .await;
}

/// Kills the default runner while requests run, then waits until `/path` answers `ok` again.
async fn kill_and_recover(gw: &TestGateway, path: &str, ok: impl Fn(&Got) -> bool) {
    let runner = gw
        .gateway
        .runners()
        .and_then(|r| r.ext())
        .expect("a runner process")
        .default_runner()
        .clone();
    let status = runner.status();
    let pid = status.pid.expect("a spawned runner");
    let traffic = {
        let url = gw.url(path);
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_millis(600);
            let mut answered = 0;
            while Instant::now() < deadline {
                let got = get(&url).await;
                assert!(got.status == 200 || got.status == 503, "{}", got.status);
                answered += 1;
            }
            answered
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(traffic.await.expect("traffic") > 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = get(&gw.url(path)).await;
        if ok(&got) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: {} {:?}",
            got.status,
            got.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = runner.status();
    assert!(now.generation > status.generation, "respawned");
    assert_ne!(now.pid, Some(pid));
}

/// A runner that does not answer in time: 503, or the plugin skipped with allow_degradation.
async fn hanging_runner(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 1.0, "").await;
    let sleep = ext(&[("conf-sleep", json!({"ms": 3000}))]);
    route(
        &gw,
        &admin,
        "1",
        "/hang",
        &up.node(),
        json!({"ext-plugin-pre-req": sleep.clone()}),
    )
    .await;
    let started = Instant::now();
    let got = get(&gw.url("/hang")).await;
    assert_eq!(got.status, 503);
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(up.hits(), 0);

    let mut degrade = sleep;
    degrade["allow_degradation"] = json!(true);
    route(
        &gw,
        &admin,
        "2",
        "/degrade",
        &up.node(),
        json!({"ext-plugin-pre-req": degrade}),
    )
    .await;
    let got = get(&gw.url("/degrade")).await;
    assert_eq!(got.status, 200, "the plugin is skipped");
    assert_eq!(up.hits(), 1);
}

/// A plugin that fails (error, panic, exception): the runner answers an error frame, the request
/// gets 503, and the runner keeps serving.
async fn failing_plugin(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 5.0, "").await;
    let plugins = json!({"ext-plugin-pre-req": ext(&[("conf-fail", json!({}))])});
    route(&gw, &admin, "1", "/fail", &up.node(), plugins).await;
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/fail")).await.status, 503);
    }
    let plugins = json!({"ext-plugin-pre-req": ext(&[("conf-stop", json!({"body": "alive"}))])});
    route(&gw, &admin, "2", "/alive", &up.node(), plugins).await;
    assert_eq!(get(&gw.url("/alive")).await.body, "alive");
}

/// A request body near the 16 MiB frame limit goes to the runner and back.
async fn large_body(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 20.0, "").await;
    let plugins = json!({"ext-plugin-pre-req": ext(&[("conf-echo", json!({"body": true}))])});
    route(&gw, &admin, "1", "/big", &up.node(), plugins).await;
    let body = "b".repeat(15 * 1024 * 1024);
    let got = post(&gw.url("/big"), &[], body.clone()).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["body"].as_str().map(str::len), Some(body.len()));
}

/// 200 clients at once, each on its own connection.
async fn concurrent(runner: RunnerUnderTest) {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin) = gateway(&runner, 30.0, "").await;
    let plugins =
        json!({"ext-plugin-pre-req": ext(&[("conf-rewrite", json!({"headers": [["X-C", "1"]]}))])});
    route(&gw, &admin, "1", "/many", &up.node(), plugins).await;
    assert_all_answer(&gw, "/many", 200, |got| got.json()["headers"]["x-c"] == "1").await;
}

/// Sends `count` requests at once, each on a new connection; every one must satisfy `ok`.
async fn assert_all_answer(gw: &TestGateway, path: &str, count: usize, ok: fn(&Got) -> bool) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let url = gw.url(path);
        tasks.spawn(async move { get(&url).await });
    }
    let mut good = 0;
    while let Some(done) = tasks.join_next().await {
        let got = done.expect("task");
        assert!(ok(&got), "{} {:?}", got.status, got.body);
        good += 1;
    }
    assert_eq!(good, count);
}

/// Polls `check` for up to 10 s.
async fn wait_for<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition never held");
}

/// The scenarios `$($test)*` against a runner, in a module `$runner`.
macro_rules! scenarios {
    ($runner:ident => $make:path: $($test:ident),* $(,)?) => {
        mod $runner {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() { super::$test($make()).await }
            )*
        }
    };
}

/// Every scenario against one of our SDKs' socket runners.
macro_rules! sdk_scenarios {
    ($($runner:ident => $make:path),* $(,)?) => {$(
        scenarios!($runner => $make: stop, rewrite, extra_info, response, chain, all_three,
            conf_change, killed_runner, hanging_runner, failing_plugin, large_body, concurrent);
    )*};
}

sdk_scenarios! {
    go_sdk => support::go_sdk,
    python_sdk => support::python_sdk,
    java_sdk => support::java_sdk,
}

// In the gateway's process there is no runner process to kill.
scenarios!(python_in_process => support::python_in_process: stop, rewrite, extra_info, response,
    chain, all_three, conf_change, hanging_runner, failing_plugin, large_body, concurrent);

/// APISIX's official Go runner, with its sample plugins.
mod official_go {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn say_stops_the_request() {
        let up = upstream("up", Behaviour::Echo).await;
        let (gw, admin) = gateway(&support::official_go(), 5.0, "").await;
        let plugins =
            json!({"ext-plugin-pre-req": ext(&[("say", json!({"body": "hello from go"}))])});
        route(&gw, &admin, "1", "/say", &up.node(), plugins).await;
        let got = get(&gw.url("/say")).await;
        assert_eq!(got.status, 200);
        assert_eq!(values(&got, "x-resp-a6-runner"), ["Go"]);
        assert_eq!(got.body, "hello from go");
        assert_eq!(up.hits(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chained_fault_injection_and_say() {
        let up = upstream("up", Behaviour::Echo).await;
        let (gw, admin) = gateway(&support::official_go(), 5.0, "").await;
        // fault-injection at 0 % passes; say answers; at 100 % fault-injection answers first.
        let passing = ext(&[
            (
                "fault-injection",
                json!({"http_status": 418, "body": "tea", "percentage": 0}),
            ),
            ("say", json!({"body": "said"})),
        ]);
        route(
            &gw,
            &admin,
            "1",
            "/pass",
            &up.node(),
            json!({"ext-plugin-post-req": passing}),
        )
        .await;
        assert_eq!(get(&gw.url("/pass")).await.body, "said");
        let failing = ext(&[
            (
                "fault-injection",
                json!({"http_status": 418, "body": "tea", "percentage": 100}),
            ),
            ("say", json!({"body": "said"})),
        ]);
        route(
            &gw,
            &admin,
            "2",
            "/fault",
            &up.node(),
            json!({"ext-plugin-pre-req": failing}),
        )
        .await;
        let got = get(&gw.url("/fault")).await;
        assert_eq!(got.status, 418);
        assert_eq!(got.body, "tea");
        assert_eq!(up.hits(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn response_rewrite_reads_the_upstream_body() {
        let up = upstream("up", Behaviour::Echo).await;
        let (gw, admin) = gateway(&support::official_go(), 5.0, "").await;
        let conf = json!({"headers": {"X-Rewritten": "yes"},
            "filters": [{"regex": "\"server\":\"up\"", "scope": "global", "replace": "\"server\":\"go\""}]});
        let plugins = json!({"ext-plugin-post-resp": ext(&[("response-rewrite", conf)])});
        route(&gw, &admin, "1", "/rr", &up.node(), plugins).await;
        let got = get(&gw.url("/rr")).await;
        assert_eq!(got.status, 200);
        assert_eq!(values(&got, "x-rewritten"), ["yes"]);
        assert_eq!(values(&got, "x-resp-a6-runner"), ["Go"]);
        assert_eq!(
            got.json()["server"],
            "go",
            "the runner read and rewrote the upstream body"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_runner_recovers() {
        let up = upstream("up", Behaviour::Echo).await;
        let (gw, admin) = gateway(&support::official_go(), 5.0, "").await;
        let plugins = json!({"ext-plugin-pre-req": ext(&[("say", json!({"body": "up again"}))])});
        route(&gw, &admin, "1", "/k", &up.node(), plugins).await;
        kill_and_recover(&gw, "/k", |got| got.body == "up again").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_clients() {
        let up = upstream("up", Behaviour::Echo).await;
        let (gw, admin) = gateway(&support::official_go(), 30.0, "").await;
        let plugins = json!({"ext-plugin-pre-req": ext(&[("say", json!({"body": "many"}))])});
        route(&gw, &admin, "1", "/many", &up.node(), plugins).await;
        assert_all_answer(&gw, "/many", 200, |got| got.body == "many").await;
    }
}

/// A runner that writes garbage: the connection is dropped and the request gets 503 (or the
/// plugin is skipped with allow_degradation). A fake runner: no real one does this on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_runner() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("garbage.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    let fake = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                // A frame header claiming a huge payload, then noise.
                let _ = conn.write_all(&[1, 0xff, 0xff, 0xff, 9, 9, 9, 9]).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            });
        }
    });
    let up = upstream("up", Behaviour::Echo).await;
    let more = format!("    garbage: {{path_for_test: {}}}\n", socket.display());
    let (gw, admin) = gateway(&support::python_sdk(), 2.0, &more).await;
    let mut conf = ext(&[("conf-stop", json!({}))]);
    conf["runner"] = json!("garbage");
    route(
        &gw,
        &admin,
        "1",
        "/g",
        &up.node(),
        json!({"ext-plugin-pre-req": conf.clone()}),
    )
    .await;
    let started = Instant::now();
    assert_eq!(get(&gw.url("/g")).await.status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no hang: {:?}",
        started.elapsed()
    );
    conf["allow_degradation"] = json!(true);
    route(
        &gw,
        &admin,
        "2",
        "/g2",
        &up.node(),
        json!({"ext-plugin-pre-req": conf}),
    )
    .await;
    assert_eq!(get(&gw.url("/g2")).await.status, 200);
    fake.abort();
}

/// The Admin API checks ext-plugin configs: an empty runner plugin name, or a runner that is not
/// configured, is refused with APISIX's plugin-check message and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_are_checked() {
    let up = upstream("up", Behaviour::Echo).await;
    let (gw, admin): (TestGateway, Admin) = gateway(&support::python_sdk(), 2.0, "").await;
    let bad = json!({"uri": "/x", "plugins": {"ext-plugin-pre-req": {"conf": [{"name": "", "value": "x"}]}},
        "upstream": {"nodes": {up.node(): 1}}});
    let put = admin.put("/routes/bad", bad).await;
    assert_eq!(put.status, 400);
    let mut conf = ext(&[("conf-stop", json!({}))]);
    conf["runner"] = json!("nope");
    let body = json!({"uri": "/unknown", "plugins": {"ext-plugin-pre-req": conf},
        "upstream": {"nodes": {up.node(): 1}}});
    let put = admin.put("/routes/1", body).await;
    assert_eq!(put.status, 400);
    assert_eq!(
        put.json()["error_msg"],
        "failed to check the configuration of plugin ext-plugin-pre-req err: runner \"nope\" is not configured (configured: main)"
    );
    assert_eq!(get(&gw.url("/unknown")).await.status, 404);
    assert_eq!(up.hits(), 0);
}
