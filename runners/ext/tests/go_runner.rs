//! Against APISIX's official Go runner (v0.5.0, built from the Go module proxy): prepare, request
//! and response calls with extra info, supervision (kill, respawn, shutdown).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use runner_ext::{ExtPluginConfig, ExtRunners, RunnerState};
use runner_protocol::KeyedRunner;
use runner_protocol::{Action, ErrorCode, ExtraInfo, Runner, RunnerError, TextEntry};

fn go_config(extra: &str) -> ExtPluginConfig {
    let bin = go_runner();
    let text = format!(
        "cmd: [\"{}\", \"run\"]\nconnect_timeout: 3\nread_timeout: 5\n{extra}",
        bin.display()
    );
    serde_yaml_ng::from_str(&text).unwrap()
}

async fn started(extra: &str) -> ExtRunners {
    init_tracing();
    let runners = ExtRunners::start(&go_config(extra)).unwrap();
    within(8, runners.wait_ready(Duration::from_secs(8)))
        .await
        .unwrap();
    runners
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn say_and_fault_injection_stop_the_request() {
    let runners = started("").await;
    let r = runners.default_runner();
    assert_eq!(r.name(), "default");
    r.prepare(
        "route#1#ext-plugin-pre-req#1",
        vec![TextEntry::new("say", r#"{"body":"hello from go"}"#)],
    );
    r.prepare(
        "route#2#ext-plugin-pre-req#1",
        vec![TextEntry::new(
            "fault-injection",
            r#"{"http_status":403,"body":"denied"}"#,
        )],
    );
    r.prepare(
        "route#3#ext-plugin-pre-req#1",
        vec![TextEntry::new("say", r#"{"body":""}"#)],
    );

    let reply = within(
        5,
        r.request(
            "route#1#ext-plugin-pre-req#1",
            get("/hi"),
            &TestInfo::default(),
        ),
    )
    .await
    .unwrap();
    let Some(Action::Stop(stop)) = reply.action else {
        panic!("{reply:?}")
    };
    assert_eq!(&stop.body[..], b"hello from go");
    assert_eq!(header(&stop.headers, "x-resp-a6-runner"), Some(&b"Go"[..]));
    assert_ne!(reply.id, 0);

    let reply = r
        .request(
            "route#2#ext-plugin-pre-req#1",
            get("/hi"),
            &TestInfo::default(),
        )
        .await
        .unwrap();
    let Some(Action::Stop(stop)) = reply.action else {
        panic!("{reply:?}")
    };
    assert_eq!((stop.status, &stop.body[..]), (403, &b"denied"[..]));

    // A plugin that does nothing: no action, the request goes on unchanged.
    let reply = r
        .request(
            "route#3#ext-plugin-pre-req#1",
            get("/hi"),
            &TestInfo::default(),
        )
        .await
        .unwrap();
    assert_eq!(reply.action, None);
    runners.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_rewrite_reads_the_upstream_body_through_extra_info() {
    let runners = started("").await;
    let r = runners.default_runner();
    let key = "route#1#ext-plugin-post-resp#1";
    r.prepare(
        key,
        vec![TextEntry::new(
            "response-rewrite",
            r#"{"headers":{"X-Added":"yes"},"filters":[{"regex":"world","scope":"global","replace":"rust"}]}"#,
        )],
    );
    let info = TestInfo {
        resp_body: Bytes::from_static(b"hello world, bye world"),
        ..TestInfo::default()
    };
    let reply = within(5, r.response(key, upstream_response(200), &info))
        .await
        .unwrap();
    assert_eq!(&reply.body[..], b"hello rust, bye rust");
    assert_eq!(header(&reply.headers, "x-added"), Some(&b"yes"[..]));
    assert_eq!(header(&reply.headers, "x-resp-a6-runner"), Some(&b"Go"[..]));
    assert_eq!(*info.asked.lock().unwrap(), [ExtraInfo::RespBody]);
    runners.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_is_conf_token_not_found() {
    let runners = started("").await;
    let mut call = get("/");
    call.conf_token = 4242;
    let e = runners
        .default_runner()
        .http_request(call, &TestInfo::default())
        .await;
    assert!(
        matches!(e, Err(RunnerError::Runner(ErrorCode::ConfTokenNotFound))),
        "{e:?}"
    );
    runners.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_through_a_small_pool() {
    let runners = started("pool_size: 4").await;
    let r = runners.default_runner().clone();
    let key = "route#9#ext-plugin-pre-req#1";
    r.prepare(key, vec![TextEntry::new("say", r#"{"body":"ok"}"#)]);
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move { r.request(key, get("/"), &TestInfo::default()).await })
        })
        .collect();
    for c in calls {
        let reply = within(8, c).await.unwrap().unwrap();
        assert!(matches!(reply.action, Some(Action::Stop(ref s)) if &s.body[..] == b"ok"));
    }
    runners.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runner_is_respawned_and_its_tokens_prepared_again() {
    let runners = started("").await;
    let r = runners.default_runner();
    let key = "route#1#ext-plugin-pre-req#7";
    r.prepare(key, vec![TextEntry::new("say", r#"{"body":"alive"}"#)]);
    r.request(key, get("/"), &TestInfo::default())
        .await
        .unwrap();
    let before = r.status();
    let pid = before.pid.unwrap();

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    within(5, async {
        while r.status().generation == before.generation || r.status().state != RunnerState::Ready {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let after = r.status();
    assert!(after.generation > before.generation);
    assert_ne!(after.pid, Some(pid));
    assert!(!pid_alive(pid), "the killed process is reaped");

    // The key is prepared again on the new process without any call.
    within(3, async {
        while r.cached_token(key).map(|(_, g)| g) != Some(after.generation) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let reply = within(5, r.request(key, get("/"), &TestInfo::default()))
        .await
        .unwrap();
    let Some(Action::Stop(stop)) = reply.action else {
        panic!()
    };
    assert_eq!(&stop.body[..], b"alive");
    runners.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_sigterm_and_the_process_is_gone() {
    // A long grace: finishing quickly proves SIGTERM stopped it, not the SIGKILL after the grace.
    let runners = started("shutdown_grace: 8").await;
    let r = runners.default_runner().clone();
    let pid = r.status().pid.unwrap();
    let socket = r.socket_path().to_path_buf();
    assert!(socket.exists());
    let dir = runners.socket_dir().unwrap().to_path_buf();
    let t = Instant::now();
    within(5, runners.shutdown()).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!pid_alive(pid));
    assert_eq!(r.status().state, RunnerState::Stopped);
    assert!(!socket.exists(), "socket removed");
    let e = r.http_request(get("/"), &TestInfo::default()).await;
    assert!(matches!(e, Err(RunnerError::Unavailable(_))), "{e:?}");
    drop(runners);
    assert!(!dir.exists(), "the default socket directory is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_runners_in_a_private_socket_dir() {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    init_tracing();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("socks");
    std::fs::DirBuilder::new().mode(0o755).create(&dir).unwrap();
    let bin = go_runner();
    let text = format!(
        "socket_dir: {}\nconnect_timeout: 3\nrunners:\n  first: {{cmd: [\"{b}\", \"run\"]}}\n  second: {{cmd: [\"{b}\", \"run\"], pool_size: 2}}\n",
        dir.display(),
        b = bin.display()
    );
    let config: ExtPluginConfig = serde_yaml_ng::from_str(&text).unwrap();
    let runners = ExtRunners::start(&config).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o755, "the configured directory keeps its mode");
    let own = runners.socket_dir().unwrap().to_path_buf();
    assert_eq!(own.parent(), Some(dir.as_path()));
    assert_eq!(
        mode(&own),
        0o700,
        "the sockets are in a private directory inside"
    );
    within(8, runners.wait_ready(Duration::from_secs(8)))
        .await
        .unwrap();
    assert_eq!(runners.default_runner().name(), "first");
    let second = runners.get("second").unwrap();
    assert_eq!(second.socket_path(), own.join("second.sock"));
    assert!(runners.get("third").is_none());
    assert_eq!(runners.runner(None).unwrap().name(), "first");
    for r in runners.iter() {
        r.prepare("k", vec![TextEntry::new("say", r#"{"body":"x"}"#)]);
        let reply = within(5, r.request("k", get("/"), &TestInfo::default()))
            .await
            .unwrap();
        assert!(reply.action.is_some(), "{}", r.name());
    }
    runners.shutdown().await;
}
