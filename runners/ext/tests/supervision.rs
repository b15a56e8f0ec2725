//! Supervision edges with shell commands as runners: a missing program, a runner ignoring
//! SIGTERM, output forwarded to the log, the default socket directory's mode.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use runner_ext::{ExtPluginConfig, ExtRunners, RunnerState};
use runner_protocol::{Runner, RunnerError};

fn config(yaml: &str) -> ExtPluginConfig {
    serde_yaml_ng::from_str(yaml).unwrap()
}

#[tokio::test]
async fn a_missing_program_is_retried_with_backoff_without_panicking() {
    init_tracing();
    let runners = ExtRunners::start(&config(
        "cmd: [/nonexistent/ferrogate-runner]\nconnect_timeout: 0.2",
    ))
    .unwrap();
    let r = runners.default_runner();
    let e = r.http_request(get("/"), &TestInfo::default()).await;
    assert!(matches!(e, Err(RunnerError::Unavailable(_))), "{e:?}");
    tokio::time::sleep(Duration::from_millis(1400)).await;
    // Spawns at about 0, 0.1, 0.3, 0.7, 1.5 s: the backoff doubles.
    let status = r.status();
    assert!(
        (3..=6).contains(&status.generation),
        "generation {}",
        status.generation
    );
    assert!(matches!(
        status.state,
        RunnerState::Down | RunnerState::Starting
    ));
    assert!(r.wait_ready(Duration::from_millis(100)).await.is_err());
    within(2, runners.shutdown()).await;
    assert_eq!(r.status().state, RunnerState::Stopped);
}

#[tokio::test]
async fn a_runner_ignoring_sigterm_is_killed_after_the_grace() {
    init_tracing();
    let runners = ExtRunners::start(&config(
        "cmd: [sh, -c, \"trap '' TERM; while :; do sleep 0.05; done\"]\nshutdown_grace: 0.3",
    ))
    .unwrap();
    let r = runners.default_runner().clone();
    let pid = within(3, async {
        loop {
            if let Some(pid) = r.status().pid {
                break pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Give the shell time to install its trap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    within(3, runners.shutdown()).await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn runner_output_goes_to_the_log_with_the_runner_name_and_env_is_set() {
    let captured = Captured::default();
    let c2 = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || c2.clone())
        .with_ansi(false)
        .finish();
    // The test runtime is single-threaded: the forwarding tasks log on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let runners = ExtRunners::start(&config(
        "runners:\n  chatty:\n    cmd: [sh, -c, 'echo \"addr=$APISIX_LISTEN_ADDRESS ttl=$APISIX_CONF_EXPIRE_TIME\"; echo oops >&2; sleep 5']\n    conf_expire_time: 77\n",
    ))
    .unwrap();
    let dir = runners.socket_dir().unwrap().to_path_buf();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "default socket dir is private");
    let expected = format!("addr=unix:{}/chatty.sock ttl=77", dir.display());
    within(3, async {
        loop {
            let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
            if text.contains(&expected) && text.contains("oops") {
                assert!(text.contains("runner=chatty"), "{text}");
                assert!(
                    text.contains("stream=\"stderr\"") || text.contains("stream=stderr"),
                    "{text}"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    runners.shutdown().await;
}

#[tokio::test]
async fn a_runner_that_never_listens_is_killed_and_respawned() {
    init_tracing();
    let runners = ExtRunners::start(&config(
        "cmd: [sleep, '30']\nstart_timeout: 0.2\nconnect_timeout: 0.1",
    ))
    .unwrap();
    let r = runners.default_runner().clone();
    let first = within(3, async {
        loop {
            if let Some(pid) = r.status().pid {
                break pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Killed after 0.2 s without a socket, respawned after the 0.1 s backoff.
    within(3, async {
        while r.status().generation < 2 || r.status().pid.is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_ne!(r.status().pid, Some(first));
    assert!(
        !Path::new(&format!("/proc/{first}")).exists(),
        "the first process is gone"
    );
    let e = r.http_request(get("/"), &TestInfo::default()).await;
    assert!(matches!(e, Err(RunnerError::Unavailable(_))), "{e:?}");
    within(3, runners.shutdown()).await;
}
