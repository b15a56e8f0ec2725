//! Out-of-process plugin runners, spoken to over Unix sockets with the APISIX ext-plugin
//! protocol (`runner-protocol`): the gateway's side of `docs/runner-protocol.md`.
//!
//! This crate knows nothing of the gateway's router, config store or plugins: it takes the
//! `ext-plugin` config section and neutral calls, and returns the runners' answers.
//!
//! ```no_run
//! # async fn demo(info: &impl runner_protocol::InfoSource) -> Result<(), Box<dyn std::error::Error>> {
//! use runner_ext::{ExtPluginConfig, ExtRunners};
//! use runner_protocol::{HttpRequest, KeyedRunner, Method, TextEntry};
//!
//! let config: ExtPluginConfig = serde_json::from_str(r#"{"cmd": ["/opt/go-runner", "run"]}"#)?;
//! let runners = ExtRunners::start(&config)?;
//! let runner = runners.default_runner();
//! // When a route's config version appears (not on its first request):
//! let key = "route#1#ext-plugin-pre-req#42";
//! runner.prepare(key, vec![TextEntry::new("say", r#"{"body":"hi"}"#)]);
//! // Per request (conf_token and id are filled in):
//! let call = HttpRequest {
//!     id: 0,
//!     src_ip: vec![127, 0, 0, 1].into(),
//!     method: Method::Get,
//!     path: "/hello".into(),
//!     args: vec![],
//!     headers: vec![TextEntry::new("host", "example.com")],
//!     conf_token: 0,
//! };
//! let reply = runner.request(key, call, info).await?;
//! # let _ = reply;
//! runners.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: the `ext-plugin` config (APISIX's single-runner forms and our named runners),
//!   resolved into [`RunnerSpec`]s.
//! - [`supervisor`]: spawns a runner, waits for its socket, logs its output, respawns it with
//!   backoff (a new generation each time), SIGTERM then SIGKILL on shutdown.
//! - `pool` (private): a bounded pool of connections per runner, reused LIFO, health-checked.
//! - `conn` (private): one connection and the conversation of one call (extra-info rounds).
//! - [`runner`]: [`ExtRunner`], the per-runner handle implementing `runner_protocol::Runner`
//!   and `runner_protocol::KeyedRunner` (conf tokens by key in a `runner_protocol::ConfCache`).
//! - this file: [`ExtRunners`], every configured runner started together and stopped together.

#![forbid(unsafe_code)]

pub mod config;
mod conn;
mod pool;
pub mod runner;
pub mod supervisor;

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{ConfigError, Endpoint, ExtPluginConfig, RunnerSpec, DEFAULT_RUNNER};
pub use runner::ExtRunner;
pub use supervisor::{RunnerState, Status};

/// The longest socket path a Unix socket address holds (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Why the runners could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The socket directory cannot be made private to the gateway's user.
    #[error("socket directory {path}: {reason}")]
    SocketDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Two runners with one name, or none at all.
    #[error("invalid runner list: {0}")]
    Runners(String),
}

/// Every configured runner: started together, looked up by name, shut down together.
#[derive(Debug)]
pub struct ExtRunners {
    runners: Vec<ExtRunner>,
    /// The private directory of spawned runners' sockets, removed when dropped.
    socket_dir: Option<tempfile::TempDir>,
    shutdown: CancellationToken,
    supervisors: Mutex<Vec<JoinHandle<()>>>,
}

impl ExtRunners {
    /// Starts every runner of `config` (spawned ones in the background: calls wait up to
    /// `connect_timeout` for them). Needs a tokio runtime.
    ///
    /// # Errors
    /// An invalid config, or a socket directory that is not safe to use (see `socket_dir` in the
    /// config) or where no private directory can be made.
    pub fn start(config: &ExtPluginConfig) -> Result<Self, StartError> {
        let specs = config.runner_specs()?;
        Self::start_specs(specs, config.socket_dir.as_deref())
    }

    /// Starts `specs` (the first is the default), spawned runners' sockets in a fresh private
    /// directory (mode 0700, removed on drop) inside `socket_dir`, or inside the system temp dir.
    ///
    /// # Errors
    /// As [`ExtRunners::start`]; also no spec, a duplicate name, an empty command or a socket
    /// path too long for a Unix socket.
    pub fn start_specs(
        specs: Vec<RunnerSpec>,
        socket_dir: Option<&Path>,
    ) -> Result<Self, StartError> {
        if specs.is_empty() {
            return Err(StartError::Runners("no runner configured".into()));
        }
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|o| o.name == s.name) {
                return Err(StartError::Runners(format!(
                    "runner `{}` defined twice",
                    s.name
                )));
            }
            if matches!(&s.endpoint, Endpoint::Spawn(argv) if argv.is_empty()) {
                return Err(StartError::Runners(format!(
                    "runner `{}` has an empty command",
                    s.name
                )));
            }
        }
        let spawns = specs
            .iter()
            .any(|s| matches!(s.endpoint, Endpoint::Spawn(_)));
        let temp = if spawns {
            Some(private_dir(
                &socket_dir.map_or_else(std::env::temp_dir, Path::to_path_buf),
            )?)
        } else {
            None
        };
        let dir = temp.as_ref().map(|t| t.path().to_path_buf());
        // Checked before anything is spawned, so an error leaves nothing running.
        if let Some(dir) = &dir {
            for spec in &specs {
                let socket = dir.join(format!("{}.sock", spec.name));
                if socket.as_os_str().len() > MAX_SOCKET_PATH {
                    return Err(StartError::SocketDir {
                        path: dir.clone(),
                        reason: format!(
                            "socket path {} is longer than {MAX_SOCKET_PATH} bytes",
                            socket.display()
                        ),
                    });
                }
            }
        }
        let shutdown = CancellationToken::new();
        let mut runners = Vec::with_capacity(specs.len());
        let mut supervisors = Vec::new();
        for spec in specs {
            match (&spec.endpoint, &dir) {
                (Endpoint::Connect(path), _) => {
                    let (tx, rx) = watch::channel(Status {
                        generation: 1,
                        state: RunnerState::Ready,
                        pid: None,
                    });
                    let path = path.clone();
                    let stop = shutdown.clone();
                    // Keeps the sender (so the status stays Ready) until shutdown, then says Stopped.
                    supervisors.push(tokio::spawn(async move {
                        stop.cancelled().await;
                        tx.send_modify(|s| s.state = RunnerState::Stopped);
                    }));
                    runners.push(ExtRunner::new(spec, path, rx, shutdown.clone()));
                }
                (Endpoint::Spawn(argv), Some(dir)) => {
                    let socket = dir.join(format!("{}.sock", spec.name));
                    let (tx, rx) = watch::channel(Status {
                        generation: 0,
                        state: RunnerState::Starting,
                        pid: None,
                    });
                    supervisors.push(tokio::spawn(supervisor::supervise(
                        spec.clone(),
                        argv.clone(),
                        socket.clone(),
                        tx,
                        shutdown.clone(),
                    )));
                    runners.push(ExtRunner::new(spec, socket, rx, shutdown.clone()));
                }
                (Endpoint::Spawn(_), None) => {
                    // Unreachable: a spawned runner always gets a directory above.
                    shutdown.cancel();
                    return Err(StartError::Runners("no socket directory".into()));
                }
            }
        }
        Ok(Self {
            runners,
            socket_dir: temp,
            shutdown,
            supervisors: Mutex::new(supervisors),
        })
    }

    /// The runner called `name`.
    pub fn get(&self, name: &str) -> Option<&ExtRunner> {
        self.runners.iter().find(|r| r.name() == name)
    }

    /// The runner called `name`, or the default one for `None`.
    pub fn runner(&self, name: Option<&str>) -> Option<&ExtRunner> {
        match name {
            Some(n) => self.get(n),
            None => Some(self.default_runner()),
        }
    }

    /// The default runner: the only one, or the first configured.
    pub fn default_runner(&self) -> &ExtRunner {
        // `start_specs` refuses an empty list, so there is a first runner.
        &self.runners[0]
    }

    /// Every runner, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &ExtRunner> {
        self.runners.iter()
    }

    /// The directory holding spawned runners' sockets.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.socket_dir.as_ref().map(tempfile::TempDir::path)
    }

    /// Waits until every runner accepts connections.
    ///
    /// # Errors
    /// The first runner not ready within `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), runner_protocol::RunnerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for r in &self.runners {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            r.wait_ready(left).await?;
        }
        Ok(())
    }

    /// Stops every runner (SIGTERM, SIGKILL after its grace period) and closes every
    /// connection; returns when all processes are gone. Calls made afterwards fail.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        for r in &self.runners {
            r.close();
        }
        let handles = std::mem::take(
            &mut *self
                .supervisors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for h in handles {
            if let Err(e) = h.await {
                tracing::error!("runner supervisor failed: {e}");
            }
        }
    }
}

impl Drop for ExtRunners {
    fn drop(&mut self) {
        // Supervisors stop their runners; a dropped runtime drops the children (kill_on_drop).
        self.shutdown.cancel();
    }
}

/// A fresh directory of our own (mode 0700 from its creation, random name, removed when dropped)
/// inside `base`, which is created (mode 0700) when missing. The mode of an existing `base` is
/// never changed (it may be shared, like `/tmp`); it must be a directory (not a symlink) owned by
/// us or root where no other user can rename our directory away: not writable by others, or
/// sticky like `/tmp`.
fn private_dir(base: &Path) -> Result<tempfile::TempDir, StartError> {
    let fail = |reason: String| StartError::SocketDir {
        path: base.to_path_buf(),
        reason,
    };
    if !base.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(base)
            .map_err(|e| fail(format!("cannot create: {e}")))?;
    }
    let meta = std::fs::symlink_metadata(base).map_err(|e| fail(e.to_string()))?;
    if !meta.is_dir() {
        return Err(fail("not a directory (symlinks are refused)".into()));
    }
    let uid = rustix::process::getuid().as_raw();
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(fail(format!(
            "owned by uid {}, not the gateway's uid {uid}",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(fail(format!(
            "mode {mode:o} lets other users replace the gateway's files (use a directory only \
             the gateway's user can write to, or a sticky one like /tmp)"
        )));
    }
    tempfile::Builder::new()
        .prefix("ferrogate-runners-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
        .map_err(|e| fail(format!("cannot create a private directory in it: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn handles_can_be_shared_across_tasks() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<super::ExtRunners>();
        shared::<super::ExtRunner>();
    }

    #[test]
    fn a_symlinked_socket_dir_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let e = super::private_dir(&link).expect_err("symlink");
        assert!(e.to_string().contains("symlinks are refused"), "{e}");
    }

    #[test]
    fn a_private_directory_is_made_inside_and_the_base_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o7777;
        for (base_mode, works) in [
            (0o1777, true),
            (0o755, true),
            (0o777, false),
            (0o775, false),
        ] {
            let base = tmp.path().join(format!("b{base_mode:o}"));
            std::fs::create_dir(&base).expect("mkdir");
            std::fs::set_permissions(&base, std::fs::Permissions::from_mode(base_mode))
                .expect("chmod");
            match super::private_dir(&base) {
                Ok(own) => {
                    assert!(works, "{base_mode:o} accepted");
                    assert_eq!(own.path().parent(), Some(base.as_path()));
                    assert_eq!(mode(own.path()), 0o700);
                }
                Err(e) => {
                    assert!(!works, "{base_mode:o}: {e}");
                    assert!(e.to_string().contains("other users"), "{e}");
                }
            }
            assert_eq!(mode(&base), base_mode, "the base keeps its mode");
        }
        let missing = tmp.path().join("new/socks");
        let own = super::private_dir(&missing).expect("created");
        assert_eq!(mode(&missing), 0o700, "a missing base is created private");
        drop(own);
        assert_eq!(
            std::fs::read_dir(&missing).expect("list").count(),
            0,
            "removed on drop"
        );
    }

    #[tokio::test]
    async fn a_socket_path_too_long_for_a_unix_address_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let deep = tmp.path().join("d".repeat(100));
        let spec = super::RunnerSpec::new("x", super::Endpoint::Spawn(vec!["true".into()]));
        let e = super::ExtRunners::start_specs(vec![spec], Some(&deep)).expect_err("too long");
        assert!(e.to_string().contains("longer than"), "{e}");
    }
}
