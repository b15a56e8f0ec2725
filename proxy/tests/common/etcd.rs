//! A real etcd for tests: `/usr/bin/etcd` (Debian's `etcd-server`) on free loopback ports with a
//! temporary data directory. It can be stopped, frozen and restarted on the same ports and data,
//! and is killed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use ferrogate::config::EtcdSection;

/// The etcd binary the tests run.
pub const ETCD: &str = "/usr/bin/etcd";

/// How long etcd gets to answer after a (re)start.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Server-side TLS of a test etcd.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// Server certificate (PEM file).
    pub cert: PathBuf,
    /// Its key (PEM file).
    pub key: PathBuf,
    /// With a CA, etcd requires client certificates signed by it.
    pub client_ca: Option<PathBuf>,
}

/// A running (or stopped) etcd.
pub struct Etcd {
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<ServerTls>,
    /// How [`Etcd::client`] and the readiness check connect.
    options: ConnectOptions,
    child: Option<Child>,
}

impl Etcd {
    /// Starts an etcd with plain-text client URLs.
    pub async fn start() -> Etcd {
        Etcd::launch(None, ConnectOptions::new()).await
    }

    /// Starts an etcd with `https://` client URLs; `options` (with the CA and, for mutual TLS, a
    /// client certificate) are what [`Etcd::client`] and the readiness check use.
    pub async fn start_tls(tls: ServerTls, options: ConnectOptions) -> Etcd {
        Etcd::launch(Some(tls), options).await
    }

    async fn launch(tls: Option<ServerTls>, options: ConnectOptions) -> Etcd {
        assert!(
            Path::new(ETCD).exists(),
            "{ETCD} is missing: install the Debian package etcd-server \
             (apt-get install etcd-server) to run the etcd store tests"
        );
        let mut last_log = String::new();
        // Ports are picked by binding :0 and released before etcd binds them, so another process
        // can take one in between: then etcd exits and new ports are tried.
        for _ in 0..5 {
            let (client_port, peer_port) = free_ports();
            let mut etcd = Etcd {
                dir: tempfile::tempdir().expect("tempdir for etcd"),
                client_port,
                peer_port,
                tls: tls.clone(),
                options: options.clone(),
                child: None,
            };
            match etcd.spawn_and_wait().await {
                Ok(()) => return etcd,
                Err(log) => last_log = log,
            }
        }
        panic!("etcd did not start; its last log:\n{last_log}");
    }

    /// The client URL (`http://127.0.0.1:port`, `https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// `deployment.etcd` for this etcd: prefix `/apisix`, a 2 s timeout (short, so that outage
    /// tests are quick, and long enough for an etcd on a busy machine).
    pub fn section(&self) -> EtcdSection {
        EtcdSection {
            host: vec![self.endpoint()],
            prefix: "/apisix".to_owned(),
            timeout: Duration::from_secs(2),
            ..EtcdSection::default()
        }
    }

    /// A raw etcd client (to look behind the store, compact, set up users).
    pub async fn client(&self) -> Client {
        Client::connect([self.endpoint()], Some(self.options.clone()))
            .await
            .expect("raw etcd client")
    }

    /// Kills etcd (SIGKILL); data and ports are kept for [`Etcd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data, and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.spawn_and_wait().await {
            panic!("etcd did not restart; its log:\n{log}");
        }
    }

    /// Freezes etcd (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen etcd go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("etcd is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Spawns etcd and waits until it answers with a leader; `Err(log)` if it exits or does not.
    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("etcd log file");
        let mut command = Command::new(ETCD);
        command
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .arg("--heartbeat-interval=50")
            .arg("--election-timeout=500")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.cert.display()))
                .arg(format!("--key-file={}", tls.key.display()));
            if let Some(ca) = &tls.client_ca {
                command
                    .arg("--client-cert-auth")
                    .arg(format!("--trusted-ca-file={}", ca.display()));
            }
        }
        self.child = Some(
            command
                .spawn()
                .map_err(|e| format!("cannot run {ETCD}: {e}"))?,
        );
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("etcd exited ({status}):\n{}", self.log()));
                }
            }
            if self.answers().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop();
        Err(format!(
            "etcd did not answer within {READY_WITHIN:?}:\n{}",
            self.log()
        ))
    }

    /// Whether etcd answers a status request and has a leader.
    async fn answers(&self) -> bool {
        let options = self
            .options
            .clone()
            .with_connect_timeout(Duration::from_millis(500))
            .with_timeout(Duration::from_millis(500));
        let check = async {
            let mut client = Client::connect([self.endpoint()], Some(options))
                .await
                .ok()?;
            let status = client.status().await.ok()?;
            Some(status.leader() != 0)
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), check).await,
            Ok(Some(true))
        )
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two distinct free loopback ports (both held while picking, then released).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = |l: &TcpListener| l.local_addr().expect("local addr").port();
    (port(&a), port(&b))
}
