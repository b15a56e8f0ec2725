//! The running gateway: wires the node config, the declarative file, the snapshot builder and the
//! server together.
//!
//! [`start`] loads the declarative file, builds the first snapshot, binds every listener and
//! serves; a background task reloads the file when it changes and swaps in a new snapshot (requests
//! in flight keep the one they started with). [`Gateway::shutdown`] stops it gracefully.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{HeaderName, HeaderValue};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::admin::status;
use crate::config::LoadedConfig;
use crate::observe::{AccessLog, AccessLogWriter};
use crate::router::RouterKind;
use crate::server::{self, Bound, ServerSettings, State};
use crate::snapshot::{BuildSettings, Builder, Snapshot};
use crate::store::{declarative, watch, FileError};

/// How often the declarative file is checked for changes by default (as APISIX).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The declarative file exists but cannot be applied.
    #[error("{path}: {source}")]
    Declarative {
        /// The file.
        path: String,
        /// What is wrong.
        source: FileError,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The access log could not be opened.
    #[error("cannot open the access log {path}: {source}")]
    AccessLog {
        /// The target.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Upstream TLS settings are unusable.
    #[error(transparent)]
    Tls(#[from] crate::upstream::client::ClientError),
}

/// A running gateway.
pub struct Gateway {
    addrs: Vec<SocketAddr>,
    status_addr: Option<SocketAddr>,
    status: Option<JoinHandle<()>>,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    watcher: JoinHandle<()>,
    access_log: Option<AccessLogWriter>,
}

impl Gateway {
    /// The bound proxy addresses, in `node_listen` order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound status API address, if enabled.
    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status_addr
    }

    /// The version of the snapshot currently serving.
    pub fn snapshot_version(&self) -> u64 {
        self.state.snapshot.load().version
    }

    /// Stops accepting, drains requests in flight (up to the shutdown deadline) and returns.
    pub async fn shutdown(mut self) {
        self.stop_background();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some(log) = self.access_log.take() {
            let _ = tokio::task::spawn_blocking(move || log.finish()).await;
        }
    }

    fn stop_background(&self) {
        self.watcher.abort();
        if let Some(status) = &self.status {
            status.abort();
        }
    }
}

/// Dropping a gateway without [`Gateway::shutdown`] stops reloading and starts a graceful
/// shutdown that nobody waits for.
impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop_background();
    }
}

/// Starts the gateway; `reload_interval` is how often the declarative file is checked.
///
/// # Errors
/// See [`StartError`].
pub async fn start(loaded: LoadedConfig, reload_interval: Duration) -> Result<Gateway, StartError> {
    let config = &loaded.config;
    let router = RouterKind::from_name(&config.apisix.router.http).unwrap_or(RouterKind::HostUri);
    let http = &config.nginx_config.http;
    let mut builder = Builder::new(
        BuildSettings {
            router,
            keepalive: http.upstream.keepalive,
            keepalive_timeout: http.upstream.keepalive_timeout,
        },
        config.apisix.ssl.trusted_ca(),
    )?;

    let path = loaded.declarative_path();
    let stamp = watch::stamp(&path);
    let first = if path.exists() {
        let file = declarative::read(&path).map_err(|source| StartError::Declarative {
            path: path.display().to_string(),
            source,
        })?;
        report(&path, &file);
        builder.build(&file.config)
    } else {
        tracing::warn!(path = %path.display(), "declarative config file not found; serving no routes until it appears");
        Snapshot::empty(router)
    };
    tracing::info!(
        routes = first.routes.len(),
        version = first.version,
        "config loaded"
    );

    let (access_log, guard) = if http.enable_access_log {
        let (log, guard) =
            AccessLog::open(&http.access_log).map_err(|source| StartError::AccessLog {
                path: http.access_log.clone(),
                source,
            })?;
        (Some(log), Some(guard))
    } else {
        (None, None)
    };

    let mut bound = Vec::new();
    let mut addrs = Vec::new();
    for listen in config.apisix.node_listen.listeners() {
        let listener = TcpListener::bind(listen.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: listen.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: listen.addr,
            source,
        })?;
        tracing::info!(%addr, http2 = listen.http2, "listening");
        addrs.push(addr);
        bound.push(Bound {
            listener,
            http2: listen.http2,
        });
    }

    let server_header = if config.apisix.enable_server_tokens {
        concat!("ferrogate/", env!("CARGO_PKG_VERSION"))
    } else {
        "ferrogate"
    };
    let state = Arc::new(State {
        snapshot: ArcSwap::from_pointee(first),
        settings: ServerSettings {
            server_header: HeaderValue::from_static(server_header),
            show_upstream_status: config.apisix.show_upstream_status_in_response_header,
            max_header_size: http.max_header_size,
            idle_timeout: http.keepalive_timeout,
            real_ip_from: http.real_ip_nets(),
            real_ip_header: HeaderName::from_bytes(http.real_ip_header.as_bytes())
                .unwrap_or(HeaderName::from_static("x-real-ip")),
            shutdown_timeout: config.nginx_config.worker_shutdown_timeout,
        },
        access_log,
    });

    let (status_addr, status) = match &config.apisix.status {
        Some(listen) => {
            let addr = SocketAddr::new(listen.ip, listen.port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let addr = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            tracing::info!(%addr, "status API listening");
            (
                Some(addr),
                Some(tokio::spawn(status::serve(listener, state.clone()))),
            )
        }
        None => (None, None),
    };

    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(bound, state.clone(), async {
        let _ = stopped.await;
    }));
    let builder = Arc::new(Mutex::new(builder));
    let reload_state = state.clone();
    let watch_path = path.clone();
    let watcher = tokio::spawn(watch::watch_file(path, reload_interval, stamp, move || {
        reload(&watch_path, &builder, &reload_state);
    }));
    Ok(Gateway {
        addrs,
        status_addr,
        status,
        state,
        stop: Some(stop),
        server: Some(server),
        watcher,
        access_log: guard,
    })
}

/// Re-reads the file and swaps in a new snapshot; a file that cannot be applied changes nothing.
fn reload(path: &Path, builder: &Mutex<Builder>, state: &State) {
    let file = match declarative::read(path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "config file not applied; the current config stays");
            return;
        }
    };
    report(path, &file);
    let snapshot = match builder.lock() {
        Ok(mut b) => b.build(&file.config),
        Err(_) => {
            tracing::error!("snapshot builder unusable after a panic; config not applied");
            return;
        }
    };
    tracing::info!(
        routes = snapshot.routes.len(),
        version = snapshot.version,
        "config reloaded"
    );
    state.snapshot.store(Arc::new(snapshot));
}

fn report(path: &Path, file: &declarative::Loaded) {
    for e in &file.rejected {
        tracing::error!(path = %path.display(), item = %e.path, reason = %e.message, "config item rejected");
    }
    for key in &file.ignored {
        tracing::warn!(path = %path.display(), "{key}");
    }
}
