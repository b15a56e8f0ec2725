//! The in-process runner against the machine's CPython and real plugin files: the conformance
//! plugins (`examples/python/conformance`) and misbehaving ones (`tests/plugins`).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use runner_protocol::KeyedRunner;
use runner_protocol::{
    Action, ErrorCode, ExtraInfo, HttpRequest, HttpResponse, InfoSource, Method, PrepareConf,
    Runner, RunnerError, TextEntry,
};
use runner_python::{PythonRunner, PythonRunnerConfig, StartError};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config(threads: usize, timeout: f64) -> PythonRunnerConfig {
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    PythonRunnerConfig {
        in_process: true,
        paths: vec![
            path(repo().join("sdk-python/src")),
            path(repo().join("examples/python/conformance")),
            path(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/plugins")),
        ],
        modules: vec![],
        threads,
        timeout,
    }
}

async fn start(name: &str, threads: usize, timeout: f64) -> PythonRunner {
    PythonRunner::start(name, &config(threads, timeout))
        .await
        .expect("runner starts")
}

fn conf(name: &str, value: &str) -> Vec<TextEntry> {
    vec![TextEntry::new(name.to_owned(), value.to_owned())]
}

fn get(path: &str) -> HttpRequest {
    HttpRequest {
        id: 0,
        src_ip: Bytes::from_static(&[10, 0, 0, 7]),
        method: Method::Get,
        path: Bytes::copy_from_slice(path.as_bytes()),
        args: vec![
            TextEntry::new("a", "1"),
            TextEntry {
                name: "flag".into(),
                value: None,
            },
        ],
        headers: vec![TextEntry::new("host", "example.com")],
        conf_token: 0,
    }
}

/// Answers from tables, on tokio (after a real await), and records the questions.
#[derive(Default)]
struct Info {
    vars: HashMap<&'static str, &'static str>,
    body: &'static str,
    upstream_body: &'static str,
    asked: Mutex<Vec<ExtraInfo>>,
}

impl InfoSource for Info {
    async fn answer(&self, question: &ExtraInfo) -> Option<Bytes> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.asked.lock().unwrap().push(question.clone());
        match question {
            ExtraInfo::Var(name) => {
                let name = std::str::from_utf8(name).ok()?;
                self.vars
                    .get(name)
                    .map(|v| Bytes::from_static(v.as_bytes()))
            }
            ExtraInfo::ReqBody => Some(Bytes::from_static(self.body.as_bytes())),
            ExtraInfo::RespBody => Some(Bytes::from_static(self.upstream_body.as_bytes())),
        }
    }
}

fn stop_of(reply: runner_protocol::HttpRequestReply) -> runner_protocol::Stop {
    match reply.action {
        Some(Action::Stop(s)) => s,
        other => panic!("expected a stop, got {other:?}"),
    }
}

async fn request(
    runner: &PythonRunner,
    key: &str,
    c: Vec<TextEntry>,
) -> Result<runner_protocol::HttpRequestReply, RunnerError> {
    runner.prepare(key, c);
    runner.request(key, get("/p"), &Info::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_rewrite_and_pass() {
    let r = start("basic", 2, 10.0).await;
    assert!(
        r.plugins().iter().any(|p| p == "conf-stop"),
        "{:?}",
        r.plugins()
    );

    let s = stop_of(
        request(
            &r,
            "stop",
            conf(
                "conf-stop",
                r#"{"status": 403, "headers": [["x-a", "1"], ["x-b", null]], "body": "no"}"#,
            ),
        )
        .await
        .unwrap(),
    );
    assert_eq!(s.status, 403);
    assert_eq!(&s.body[..], b"no");
    assert!(
        s.headers.contains(&TextEntry::new("x-a", "1")),
        "{:?}",
        s.headers
    );

    let reply = request(
        &r,
        "rewrite",
        conf(
            "conf-rewrite",
            r#"{"path": "/new", "headers": [["x-h", "v"], ["host", null]], "args": [["a", "2"], ["b", "3"]],
                "body": "B", "resp_headers": [["x-r", "1"]]}"#,
        ),
    )
    .await
    .unwrap();
    let Some(Action::Rewrite(rw)) = reply.action else {
        panic!("expected a rewrite, got {reply:?}");
    };
    assert_ne!(reply.id, 0, "an id is assigned");
    assert_eq!(rw.path.as_deref(), Some(&b"/new"[..]));
    assert!(
        rw.headers.contains(&TextEntry::new("x-h", "v")),
        "{:?}",
        rw.headers
    );
    assert!(
        rw.headers.contains(&TextEntry {
            name: "host".into(),
            value: None
        }),
        "{:?}",
        rw.headers
    );
    assert!(rw.args.contains(&TextEntry::new("a", "2")), "{:?}", rw.args);
    assert!(rw.args.contains(&TextEntry::new("b", "3")), "{:?}", rw.args);
    assert_eq!(&rw.body[..], b"B");
    assert_eq!(rw.resp_headers, vec![TextEntry::new("x-r", "1")]);

    // A conf with no plugin that acts: continue unchanged.
    let reply = request(&r, "none", conf("conf-response", "{}"))
        .await
        .unwrap();
    assert_eq!(reply.action, None);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_bytes_survive_the_round_trip() {
    let r = start("raw", 1, 10.0).await;
    r.prepare("k", conf("rt-raw", ""));
    let mut call = get("/p");
    call.headers
        .push(TextEntry::new("x-raw", &b"caf\xe9 \xff"[..]));
    let reply = r.request("k", call, &Info::default()).await.unwrap();
    let Some(Action::Rewrite(rw)) = reply.action else {
        panic!("expected a rewrite, got {reply:?}");
    };
    let raw = TextEntry::new("x-copied", &b"caf\xe9 \xff"[..]);
    assert!(rw.headers.contains(&raw), "{:?}", rw.headers);
    assert!(rw.resp_headers.contains(&raw), "{:?}", rw.resp_headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_info_is_answered_from_the_async_side() {
    let r = start("info", 2, 10.0).await;
    r.prepare(
        "echo",
        conf(
            "conf-echo",
            r#"{"vars": ["remote_addr", "nope"], "body": true}"#,
        ),
    );
    let info = Info {
        vars: HashMap::from([("remote_addr", "10.0.0.7")]),
        body: "the body",
        ..Info::default()
    };
    let s = stop_of(r.request("echo", get("/echo"), &info).await.unwrap());
    let doc: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(doc["vars"]["remote_addr"], "10.0.0.7");
    assert_eq!(doc["vars"]["nope"], serde_json::Value::Null);
    assert_eq!(doc["body"], "the body");
    assert_eq!(doc["path"], "/echo");
    assert_eq!(doc["method"], "GET");
    assert_eq!(doc["src_ip"], "10.0.0.7");
    assert_eq!(doc["args"], serde_json::json!([["a", "1"], ["flag", null]]));
    let asked = info.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(asked.contains(&ExtraInfo::ReqBody));
    assert!(asked.contains(&ExtraInfo::Var("nope".into())));

    // Response phase: the upstream body through fetch kind 3.
    r.prepare(
        "resp",
        conf(
            "conf-response",
            r#"{"status": 201, "headers": [["x-u", "1"]], "body_prefix": ">"}"#,
        ),
    );
    let info = Info {
        upstream_body: "upstream",
        ..Info::default()
    };
    let call = HttpResponse {
        id: 9,
        status: 200,
        headers: vec![TextEntry::new("content-type", "text/plain")],
        conf_token: 0,
    };
    let reply = r.response("resp", call, &info).await.unwrap();
    assert_eq!(reply.id, 9);
    assert_eq!(reply.status, 201);
    assert_eq!(reply.headers, vec![TextEntry::new("x-u", "1")]);
    assert_eq!(&reply.body[..], b">upstream");
    assert_eq!(*info.asked.lock().unwrap(), vec![ExtraInfo::RespBody]);

    // Nothing changed: an empty reply keeps the upstream's response.
    r.prepare("resp-none", conf("conf-response", "{}"));
    let call = HttpResponse {
        id: 0,
        status: 200,
        headers: vec![],
        conf_token: 0,
    };
    let reply = r
        .response("resp-none", call, &Info::default())
        .await
        .unwrap();
    assert_ne!(reply.id, 0);
    assert_eq!(
        (reply.status, reply.headers.len(), reply.body.len()),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_raises_is_service_unavailable_and_the_pool_goes_on() {
    let r = start("raise", 1, 10.0).await;
    for _ in 0..3 {
        let e = request(&r, "fail", conf("conf-fail", ""))
            .await
            .unwrap_err();
        assert!(
            matches!(e, RunnerError::Runner(ErrorCode::ServiceUnavailable)),
            "{e:?}"
        );
    }
    // A conf its plugin refuses fails the same way, at prepare.
    let e = request(&r, "bad-conf", conf("conf-stop", "[not json"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, RunnerError::Runner(ErrorCode::ServiceUnavailable)),
        "{e:?}"
    );
    assert!(!r.is_prepared("bad-conf"));
    let s = stop_of(
        request(&r, "ok", conf("conf-stop", r#"{"body": "ok"}"#))
            .await
            .unwrap(),
    );
    assert_eq!(&s.body[..], b"ok");
    assert_eq!(r.live_threads(), 1);
}

/// Waits until the pool is back to `n` threads.
async fn settles_to(r: &PythonRunner, n: usize, within: Duration) {
    let end = Instant::now() + within;
    while r.live_threads() != n {
        assert!(
            Instant::now() < end,
            "pool has {} threads, expected {n}",
            r.live_threads()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_plugin_times_out_is_interrupted_and_the_pool_serves_on() {
    let r = start("spin", 2, 0.3).await;
    r.prepare("where", conf("rt-where", ""));
    for key in ["spin", "swallow"] {
        let c = match key {
            "spin" => conf("rt-spin", "0"),
            _ => conf("rt-swallow", ""),
        };
        r.prepare(key, c);
        r.ready(key).await.unwrap();
        let t0 = Instant::now();
        let e = r
            .request(key, get("/"), &Info::default())
            .await
            .unwrap_err();
        assert!(matches!(e, RunnerError::Timeout), "{e:?}");
        assert!(
            t0.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t0.elapsed()
        );
        // The exception lands at once in pure Python (even through `except Exception`): the
        // interrupted thread retires and its replacement takes its place.
        settles_to(&r, 2, Duration::from_secs(3)).await;
    }
    // Both threads serve (more calls than threads, concurrently).
    let info = Info::default();
    let calls = (0..6).map(|_| r.request("where", get("/"), &info));
    for reply in futures_join(calls).await {
        let s = stop_of(reply.unwrap());
        assert!(s.body.starts_with(b"py-spin-"), "{:?}", s.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_blocked_in_c_is_replaced_until_it_returns() {
    let r = start("block", 2, 0.2).await;
    r.prepare("block", conf("rt-block", "3000"));
    r.prepare("sleep", conf("conf-sleep", r#"{"ms": 3000}"#));
    r.prepare("stop", conf("conf-stop", r#"{"body": "ok"}"#));
    for key in ["block", "sleep", "stop"] {
        r.ready(key).await.unwrap();
    }
    let info = Info::default();
    let t0 = Instant::now();
    // `time.sleep` in a plain filter, `asyncio.sleep` in an async one (the loop waits in
    // `select`): both hold their thread until the sleep ends.
    let (a, b) = tokio::join!(
        r.request("block", get("/"), &info),
        r.request("sleep", get("/"), &info),
    );
    assert!(matches!(a, Err(RunnerError::Timeout)), "{a:?}");
    assert!(matches!(b, Err(RunnerError::Timeout)), "{b:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    // Both threads still sleep in C; their replacements answer meanwhile.
    let t1 = Instant::now();
    let calls = (0..4).map(|_| r.request("stop", get("/"), &info));
    for reply in futures_join(calls).await {
        assert_eq!(&stop_of(reply.unwrap()).body[..], b"ok");
    }
    assert!(
        t1.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t1.elapsed()
    );
    assert!(r.live_threads() <= 4, "bounded: {}", r.live_threads());
    // When the sleeps end, the interrupted threads retire.
    settles_to(&r, 2, Duration::from_secs(8)).await;
    let s = stop_of(r.request("stop", get("/"), &Info::default()).await.unwrap());
    assert_eq!(&s.body[..], b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_while_waiting_for_extra_info_wakes_the_plugin() {
    struct Never;
    impl InfoSource for Never {
        async fn answer(&self, _: &ExtraInfo) -> Option<Bytes> {
            std::future::pending().await
        }
    }
    let r = start("never", 1, 0.2).await;
    r.prepare("echo", conf("conf-echo", r#"{"body": true}"#));
    r.ready("echo").await.unwrap();
    // Time spent answering is not counted: bound the call from outside, as a client timeout.
    let out = tokio::time::timeout(
        Duration::from_millis(300),
        r.request("echo", get("/"), &Never),
    )
    .await;
    assert!(out.is_err(), "still waiting for the answer");
    // Dropping the call abandoned it: the plugin's fetch failed and the thread is free.
    r.prepare("stop", conf("conf-stop", r#"{"body": "ok"}"#));
    let s = stop_of(r.request("stop", get("/"), &Info::default()).await.unwrap());
    assert_eq!(&s.body[..], b"ok");
    settles_to(&r, 1, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_is_interrupted_like_a_timed_out_one() {
    let r = start("dropped", 1, 30.0).await;
    r.prepare("spin", conf("rt-spin", "0"));
    r.prepare("stop", conf("conf-stop", r#"{"body": "ok"}"#));
    r.ready("spin").await.unwrap();
    r.ready("stop").await.unwrap();
    // The client goes away: the gateway drops the call long before the runner's timeout.
    let out = tokio::time::timeout(
        Duration::from_millis(100),
        r.request("spin", get("/"), &Info::default()),
    )
    .await;
    assert!(out.is_err(), "spins until dropped");
    let t0 = Instant::now();
    let s = stop_of(r.request("stop", get("/"), &Info::default()).await.unwrap());
    assert_eq!(&s.body[..], b"ok");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    settles_to(&r, 1, Duration::from_secs(3)).await;
}

/// Joins futures without an extra dependency: each on its own task.
async fn futures_join<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future,
{
    let mut out = Vec::new();
    let futs: Vec<_> = futs.map(Box::pin).collect();
    // Poll all at once.
    let mut set: Vec<_> = futs.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in set.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    for r in results {
        out.push(r.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_calls_share_two_threads() {
    let r = start("many", 2, 10.0).await;
    r.prepare("sleep", conf("conf-sleep", r#"{"ms": 5}"#));
    r.prepare("where", conf("rt-where", ""));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let key = if i % 2 == 0 { "sleep" } else { "where" };
            r.request(key, get("/"), &Info::default()).await
        }));
    }
    let mut threads = std::collections::BTreeSet::new();
    for t in tasks {
        let reply = t.await.unwrap().unwrap();
        if let Some(Action::Stop(s)) = reply.action {
            threads.insert(String::from_utf8(s.body.to_vec()).unwrap());
        }
    }
    assert!(!threads.is_empty());
    for t in &threads {
        assert!(t == "py-many-0" || t == "py-many-1", "ran on {t}");
    }
    assert_eq!(r.live_threads(), 2);
}

#[test]
fn tokio_workers_are_never_blocked_by_python() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = start("ticker", 1, 10.0).await;
        r.prepare("spin", conf("rt-spin", "400"));
        r.ready("spin").await.unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(10));
            loop {
                every.tick().await;
                t.fetch_add(1, Ordering::Relaxed);
            }
        });
        // The one runtime thread keeps ticking while Python spins (holding the GIL) for 400 ms.
        let s = stop_of(r.request("spin", get("/"), &Info::default()).await.unwrap());
        assert_eq!(&s.body[..], b"spun");
        let n = ticks.load(Ordering::Relaxed);
        ticker.abort();
        assert!(
            n >= 10,
            "only {n} ticks of 10 ms during a 400 ms Python call"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_prepare_on_demand_replace_and_forget() {
    let r = start("keys", 1, 10.0).await;
    let e = r
        .request("never", get("/"), &Info::default())
        .await
        .unwrap_err();
    assert!(matches!(e, RunnerError::Unavailable(_)), "{e:?}");

    // Registered where no runtime runs (so no warm-up starts): the first call prepares it from
    // the remembered conf.
    let r2 = r.clone();
    std::thread::spawn(move || r2.prepare("k", conf("conf-stop", r#"{"body": "one"}"#)))
        .join()
        .unwrap();
    assert!(!r.is_prepared("k"));
    let s = stop_of(r.request("k", get("/"), &Info::default()).await.unwrap());
    assert_eq!(&s.body[..], b"one");
    assert!(r.is_prepared("k"));
    assert_eq!(r.keys(), vec!["k".to_owned()]);

    // Same conf again: nothing happens; another conf replaces it.
    r.prepare("k", conf("conf-stop", r#"{"body": "one"}"#));
    assert!(r.is_prepared("k"));
    r.prepare("k", conf("conf-stop", r#"{"body": "two"}"#));
    let s = stop_of(r.request("k", get("/"), &Info::default()).await.unwrap());
    assert_eq!(&s.body[..], b"two");

    r.forget("k");
    assert!(r.keys().is_empty());
    let e = r
        .request("k", get("/"), &Info::default())
        .await
        .unwrap_err();
    assert!(matches!(e, RunnerError::Unavailable(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_trait_uses_raw_tokens() {
    let r = start("raw-tokens", 1, 10.0).await;
    let token = r
        .prepare_conf(PrepareConf {
            conf: conf("conf-stop", r#"{"status": 401}"#),
            key: "route#1".into(),
        })
        .await
        .unwrap();
    assert_ne!(token, 0);
    let mut call = get("/");
    call.conf_token = token;
    call.id = 77;
    let reply = r
        .http_request(call.clone(), &Info::default())
        .await
        .unwrap();
    assert_eq!(reply.id, 77);
    assert_eq!(stop_of(reply).status, 401);

    // A new prepare of the same key replaces its token.
    let token2 = r
        .prepare_conf(PrepareConf {
            conf: conf("conf-stop", r#"{"status": 402}"#),
            key: "route#1".into(),
        })
        .await
        .unwrap();
    assert_ne!(token2, token);
    let e = r
        .http_request(call.clone(), &Info::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, RunnerError::Runner(ErrorCode::ConfTokenNotFound)),
        "{e:?}"
    );
    call.conf_token = token2;
    assert_eq!(
        stop_of(r.http_request(call, &Info::default()).await.unwrap()).status,
        402
    );
    let resp = HttpResponse {
        id: 1,
        status: 200,
        headers: vec![],
        conf_token: 999,
    };
    let e = r.http_response(resp, &Info::default()).await.unwrap_err();
    assert!(
        matches!(e, RunnerError::Runner(ErrorCode::ConfTokenNotFound)),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_threads_and_refuses_calls() {
    let r = start("down", 2, 5.0).await;
    r.prepare("k", conf("conf-stop", "{}"));
    r.ready("k").await.unwrap();
    r.shutdown().await;
    assert_eq!(r.live_threads(), 0);
    let e = request(&r, "k", conf("conf-stop", "{}")).await.unwrap_err();
    assert!(matches!(e, RunnerError::Unavailable(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_failures_say_why() {
    let mut c = config(0, 0.0);
    c.modules.push("not a module".into());
    match PythonRunner::start("bad", &c).await {
        Err(StartError::Config(e)) => {
            let all = e.problems.join("\n");
            assert!(all.contains("ext-plugin.runners.bad.threads"), "{all}");
            assert!(all.contains("ext-plugin.runners.bad.timeout"), "{all}");
            assert!(all.contains("ext-plugin.runners.bad.modules[0]"), "{all}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }

    let mut c = config(1, 5.0);
    c.paths
        .push(format!("{}/tests/broken", env!("CARGO_MANIFEST_DIR")));
    match PythonRunner::start("broken", &c).await {
        Err(StartError::Python { reason, .. }) => {
            assert!(reason.contains("broken on purpose"), "{reason}");
            assert!(reason.contains("Traceback"), "{reason}");
        }
        other => panic!("expected a Python error, got {other:?}"),
    }

    let mut c = config(1, 5.0);
    c.modules.push("no_such_plugin_module".into());
    match PythonRunner::start("missing", &c).await {
        Err(StartError::Python { reason, .. }) => {
            assert!(reason.contains("no_such_plugin_module"), "{reason}");
        }
        other => panic!("expected a Python error, got {other:?}"),
    }
}

/// Not a check: calls per second for a header-rewriting conf, 64 concurrent callers
/// (`cargo test -p runner-python --release -- --ignored --nocapture throughput`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    let r = start("bench", 2, 10.0).await;
    r.prepare(
        "rw",
        conf("conf-rewrite", r#"{"headers": [["x-bench", "1"]]}"#),
    );
    r.ready("rw").await.unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (r, done) = (r.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                r.request("rw", get("/p"), &Info::default()).await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = done.load(Ordering::Relaxed);
    eprintln!("{n} calls in 3 s: {:.0} calls/s", n as f64 / 3.0);
}
