//! Spawns a runner process, waits until its socket accepts, logs its output, respawns it after
//! it exits (exponential backoff) and stops it on shutdown (SIGTERM, then SIGKILL).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::RunnerSpec;

/// First delay before a respawn.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest delay before a respawn.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A runner that stayed up this long respawns after [`BACKOFF_MIN`] again.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// How often a starting runner's socket is tried.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// Longest line of runner output logged as one event.
const MAX_LINE: u64 = 16 * 1024;

/// Where a runner is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerState {
    /// Spawned; its socket does not accept yet.
    Starting,
    /// Accepting connections.
    Ready,
    /// Exited or could not be started; a respawn is due.
    Down,
    /// Shut down for good.
    Stopped,
}

/// A runner's state and the generation of its current process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Bumped on every (re)spawn: tokens and connections of an older generation are never used.
    pub generation: u64,
    /// Life cycle state.
    pub state: RunnerState,
    /// The process id while it runs (spawned runners only).
    pub pid: Option<u32>,
}

/// Runs until `shutdown` is cancelled, then stops the process and returns.
pub(crate) async fn supervise(
    spec: RunnerSpec,
    argv: Vec<String>,
    socket: PathBuf,
    status: watch::Sender<Status>,
    shutdown: CancellationToken,
) {
    let name: Arc<str> = Arc::from(spec.name.as_str());
    let mut backoff = BACKOFF_MIN;
    let mut generation = status.borrow().generation;
    while !shutdown.is_cancelled() {
        generation += 1;
        remove_socket(&socket);
        status.send_replace(Status {
            generation,
            state: RunnerState::Starting,
            pid: None,
        });
        let started = Instant::now();
        match spawn(&name, &argv, &socket, &spec) {
            Err(e) => {
                tracing::error!(runner = %name, program = %argv.first().map_or("", String::as_str), "cannot start the runner: {e}; retrying in {backoff:?}");
            }
            Ok(mut child) => {
                let pid = child.id();
                tracing::info!(runner = %name, pid, generation, "runner started");
                status.send_replace(Status {
                    generation,
                    state: RunnerState::Starting,
                    pid,
                });
                let exited = run(&name, &mut child, &socket, &spec, &status, &shutdown).await;
                match exited {
                    None => {
                        terminate(&name, &mut child, spec.shutdown_grace).await;
                        break;
                    }
                    Some(code) => {
                        if started.elapsed() >= STABLE_AFTER {
                            backoff = BACKOFF_MIN;
                        }
                        tracing::warn!(runner = %name, pid, "runner exited ({code}); respawning in {backoff:?}");
                    }
                }
            }
        }
        status.send_replace(Status {
            generation,
            state: RunnerState::Down,
            pid: None,
        });
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    remove_socket(&socket);
    status.send_replace(Status {
        generation,
        state: RunnerState::Stopped,
        pid: None,
    });
}

fn spawn(
    name: &Arc<str>,
    argv: &[String],
    socket: &Path,
    spec: &RunnerSpec,
) -> std::io::Result<Child> {
    let Some((program, args)) = argv.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env(
            "APISIX_LISTEN_ADDRESS",
            format!("unix:{}", socket.display()),
        )
        .env(
            "APISIX_CONF_EXPIRE_TIME",
            spec.conf_expire_time.as_secs().max(1).to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(name.clone(), "stdout", out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(name.clone(), "stderr", err));
    }
    Ok(child)
}

/// Waits for readiness, then for the exit. `None` when shutdown came first.
async fn run(
    name: &Arc<str>,
    child: &mut Child,
    socket: &Path,
    spec: &RunnerSpec,
    status: &watch::Sender<Status>,
    shutdown: &CancellationToken,
) -> Option<String> {
    let deadline = Instant::now() + spec.start_timeout;
    let mut ready = false;
    loop {
        tokio::select! {
            exit = child.wait() => {
                return Some(match exit {
                    Ok(st) => st.to_string(),
                    Err(e) => format!("wait failed: {e}"),
                });
            }
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(PROBE_EVERY), if !ready => {
                if UnixStream::connect(socket).await.is_ok() {
                    ready = true;
                    status.send_modify(|s| s.state = RunnerState::Ready);
                    tracing::info!(runner = %name, socket = %socket.display(), "runner ready");
                } else if Instant::now() >= deadline {
                    tracing::error!(runner = %name, socket = %socket.display(),
                        "runner did not accept connections within {:?}; killing it", spec.start_timeout);
                    // wait() above reports the exit.
                    let _ = child.start_kill();
                    ready = true;
                }
            }
        }
    }
}

/// SIGTERM, then SIGKILL after `grace`.
async fn terminate(name: &Arc<str>, child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else { return };
    let sent = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .map(|p| rustix::process::kill_process(p, rustix::process::Signal::TERM));
    if let Some(Err(e)) = sent {
        tracing::warn!(runner = %name, pid, "SIGTERM failed: {e}");
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(_) => tracing::info!(runner = %name, pid, "runner stopped"),
        Err(_) => {
            tracing::warn!(runner = %name, pid, "runner ignored SIGTERM for {grace:?}; killing it");
            if let Err(e) = child.kill().await {
                tracing::warn!(runner = %name, pid, "SIGKILL failed: {e}");
            }
        }
    }
}

fn remove_socket(socket: &Path) {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(socket = %socket.display(), "cannot remove a stale socket: {e}"),
    }
}

/// Logs each line of a runner's output with the runner's name.
async fn forward(name: Arc<str>, stream: &'static str, out: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                tracing::info!(runner = %name, stream, "{}", String::from_utf8_lossy(&line));
            }
        }
    }
}
