//! The running gateway: wires the node config, the config source, the snapshot builder, the
//! server and the management APIs (status, control, Admin API, and the Prometheus exporter when
//! `plugin_attr.prometheus` is set) together.
//!
//! [`start`] opens the config store (`embedded`, the default, `etcd`, or the standalone file
//! for `yaml` / `json`, read-only), binds every listener and serves. The first read of the store
//! is applied before serving; then a task follows the store and a rebuild loop swaps in a new
//! snapshot after each change (for the file: after each good version of it). A fresh embedded
//! store is seeded from `apisix.yaml` beside `config.yaml`, if any.
//!
//! Requests in flight keep the snapshot they started with. [`Gateway::shutdown`] stops it
//! gracefully.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::HeaderName;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch as signal};
use tokio::task::JoinHandle;

use crate::admin::{self, control, status, Admin, Auth};
use crate::config::{ConfigProvider, LoadedConfig, Role};
use crate::observe::prometheus::{self, Metrics, NodeStatus, Prometheus};
use crate::observe::{AccessLog, AccessLogWriter};
use crate::runners::ext_plugin::{ExtPlugin, KnownRunners};
use crate::runners::Runners;
use crate::server::{self, Bound, Counts, ServerSettings, State};
use crate::snapshot::live::{rebuild_loop, Shared};
use crate::snapshot::{BuildSettings, Builder, Snapshot};
use crate::store::embedded::EmbeddedStore;
use crate::store::etcd::EtcdStore;
use crate::store::file::FileStore;
use crate::store::{declarative, sync, FileError, Store, StoreError};
use plugin_api::drain::Drain;
use plugin_api::registry::Registry;
use plugin_api::{BuildContext, PluginKind};

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
    /// The config store cannot be opened.
    #[error("config store: {0}")]
    Store(#[from] StoreError),
    /// The Admin API key cannot be read or kept.
    #[error("Admin API key: {0}")]
    AdminKey(std::io::Error),
    /// The external plugin runners cannot be started.
    #[error("ext-plugin: {0}")]
    Runners(#[from] crate::runners::StartError),
    /// A plugin added to the gateway has the name of another kind: one would shadow the other.
    #[error("plugin `{name}` cannot be added: {taken_by} has this name")]
    PluginName {
        /// The name.
        name: String,
        /// Who has it already: a built-in plugin, or a plugin added before.
        taken_by: &'static str,
    },
}

/// How long shutdown waits for loggers to send or write the entries they hold.
const LOG_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running gateway.
pub struct Gateway {
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    status_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    control_addr: Option<SocketAddr>,
    prometheus_addr: Option<SocketAddr>,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    /// Config following and reloading: aborted on shutdown.
    background: Vec<JoinHandle<()>>,
    /// Management listeners: told to stop through `stop_management`, then awaited.
    management: Vec<JoinHandle<()>>,
    stop_management: signal::Sender<bool>,
    access_log: Option<AccessLogWriter>,
    /// External plugin runners: stopped (SIGTERM, then SIGKILL) after the last request.
    runners: Option<Arc<Runners>>,
    /// The loggers' pending work, waited for at shutdown.
    drain: Arc<Drain>,
}

impl Gateway {
    /// The bound proxy addresses, in `node_listen` order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound TLS proxy addresses, in `apisix.ssl.listen` order (none unless enabled).
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The bound status API address, if enabled.
    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status_addr
    }

    /// The bound Admin API address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The bound control API address, if enabled.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// The bound Prometheus exporter address, if `plugin_attr.prometheus` enables it.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus_addr
    }

    /// The external plugin runners, if `ext-plugin` configures any.
    pub fn runners(&self) -> Option<&Runners> {
        self.runners.as_deref()
    }

    /// The version of the snapshot currently serving.
    pub fn snapshot_version(&self) -> u64 {
        self.state.snapshot.load().version
    }

    /// Stops accepting, drains requests in flight (up to the shutdown deadline) and returns.
    pub async fn shutdown(mut self) {
        self.stop_background();
        // Awaiting releases what the tasks hold (the embedded store's lock among it), so a new
        // gateway can open the same data directory once this returns.
        for task in self.background.drain(..).chain(self.management.drain(..)) {
            let _ = task.await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        // The plugin instances go with the last snapshot: loggers send or write what they hold.
        let router = self.state.snapshot.load().router.kind();
        self.state.snapshot.store(Arc::new(Snapshot::empty(router)));
        if !self.drain.wait(LOG_DRAIN_TIMEOUT).await {
            tracing::warn!(timeout = ?LOG_DRAIN_TIMEOUT, "loggers still had entries at shutdown");
        }
        if let Some(runners) = self.runners.take() {
            runners.shutdown().await;
        }
        if let Some(log) = self.access_log.take() {
            let _ = tokio::task::spawn_blocking(move || log.finish()).await;
        }
    }

    fn stop_background(&self) {
        for task in &self.background {
            task.abort();
        }
        let _ = self.stop_management.send(true);
    }
}

/// Dropping a gateway without [`Gateway::shutdown`] stops its background tasks and starts a
/// graceful shutdown that nobody waits for.
impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop_background();
    }
}

/// The plugin kinds of a gateway: the built-in plugins, the gateway's own (`ext-plugin-*`
/// calling `runners`, `prometheus`) and `extra` (a user's), narrowed to config.yaml's
/// `plugins:` list (`enabled`; `None` enables every one).
pub fn plugin_registry(
    enabled: Option<&[String]>,
    runners: Option<Arc<Runners>>,
    extra: &[Arc<dyn PluginKind>],
) -> Registry {
    registry_with_metrics(enabled, runners, extra, Arc::default(), &Default::default())
}

/// As [`plugin_registry`], with `prometheus` recording into `metrics` (the gateway's own, which
/// its exporter serves) and the built-in plugins reading `node`'s settings.
fn registry_with_metrics(
    enabled: Option<&[String]>,
    runners: Option<Arc<Runners>>,
    extra: &[Arc<dyn PluginKind>],
    metrics: Arc<Metrics>,
    node: &plugins::NodeSettings,
) -> Registry {
    let mut kinds = plugins::builtin_for(node);
    kinds.extend(ExtPlugin::kinds(runners));
    kinds.push(Arc::new(Prometheus::new(metrics)));
    kinds.extend(extra.iter().cloned());
    Registry::new(kinds).enable_only(enabled)
}

/// Refuses a kind of `extra` (a user's) named as a built-in plugin, as the gateway's own or as
/// another kind of `extra`: [`check`] and [`start`] fail rather than let one shadow the other.
///
/// # Errors
/// [`StartError::PluginName`] for the first name taken twice.
fn check_plugin_names(extra: &[Arc<dyn PluginKind>]) -> Result<(), StartError> {
    let own = plugin_registry(None, None, &[]);
    let mut added = std::collections::HashSet::new();
    for kind in extra {
        let taken_by = if own.exists(kind.name()) {
            "a built-in plugin"
        } else if !added.insert(kind.name()) {
            "a plugin added before it"
        } else {
            continue;
        };
        return Err(StartError::PluginName {
            name: kind.name().to_owned(),
            taken_by,
        });
    }
    Ok(())
}

/// What [`check`] found in a config that [`start`] would accept.
#[derive(Debug)]
pub struct Checked {
    /// `plugins:` names Ferrogate does not have: ignored, and configs using them are refused.
    pub unavailable_plugins: Vec<String>,
    /// The standalone file `start` would apply (yaml/json provider) or seed a fresh embedded
    /// store from; `None` when it reads none (etcd, or an embedded store without the file).
    pub file: Option<(PathBuf, declarative::Loaded)>,
}

/// Checks `loaded` as [`start`] does, short of binding listeners, opening the store and spawning
/// runner processes (`ferrogate validate`): the enabled plugins, the in-process Python runners
/// (their modules are imported) and the standalone file with the same rules as at start.
///
/// # Errors
/// What `start` would refuse for the same reasons.
pub async fn check(
    loaded: &LoadedConfig,
    extra: &[Arc<dyn PluginKind>],
) -> Result<Checked, StartError> {
    let config = &loaded.config;
    let role = config.deployment.role;
    check_plugin_names(extra)?;
    let registry = plugin_registry(config.plugins.as_deref(), None, extra);
    if let (Some(ext), Role::Traditional | Role::DataPlane) = (&config.ext_plugin, role) {
        Runners::check_in_process(ext).await?;
    }
    let runners = KnownRunners::of(config.ext_plugin.as_ref(), role);
    let path = loaded.declarative_path();
    let read = match config.deployment.config_provider() {
        ConfigProvider::Etcd => false,
        ConfigProvider::Embedded => path.exists(),
        ConfigProvider::Yaml | ConfigProvider::Json => true,
    };
    let file = if read {
        let file =
            read_file(&path, &registry, &runners).map_err(|source| StartError::Declarative {
                path: path.display().to_string(),
                source,
            })?;
        Some((path, file))
    } else {
        None
    };
    Ok(Checked {
        unavailable_plugins: config
            .unavailable_plugins(&registry)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        file,
    })
}

/// Starts the gateway with the plugin kinds `extra` beside the built-in ones;
/// `reload_interval` is how often a declarative file is checked.
///
/// # Errors
/// See [`StartError`].
pub async fn start(
    loaded: LoadedConfig,
    reload_interval: Duration,
    extra: &[Arc<dyn PluginKind>],
) -> Result<Gateway, StartError> {
    let config = &loaded.config;
    let router = config.apisix.router.http;
    let http = &config.nginx_config.http;
    let role = config.deployment.role;
    check_plugin_names(extra)?;
    let unavailable = config.unavailable_plugins(&plugin_registry(None, None, extra));
    if !unavailable.is_empty() {
        // Usually APISIX's whole default list, copied to enable one more plugin: serve the ones
        // Ferrogate has; configs naming the others are refused as unknown plugins.
        tracing::warn!(
            plugins = %unavailable.join(", "),
            "`plugins:` lists plugins Ferrogate does not have; they are ignored, and configs using them are refused"
        );
    }
    // Runners serve the proxy: a control plane starts none.
    let runners = match (&config.ext_plugin, role) {
        (Some(ext), Role::Traditional | Role::DataPlane) => {
            Some(Arc::new(Runners::start(ext).await?))
        }
        _ => None,
    };
    let known_runners = KnownRunners::of(config.ext_plugin.as_ref(), role);
    let metrics = Arc::new(Metrics::default());
    let registry = registry_with_metrics(
        config.plugins.as_deref(),
        runners.clone(),
        extra,
        metrics.clone(),
        &config.plugin_settings(),
    );
    let drain = Arc::new(Drain::default());
    let mut builder = Builder::new(
        BuildSettings {
            router,
            keepalive: http.upstream.keepalive,
            keepalive_timeout: http.upstream.keepalive_timeout,
            registry: registry.clone(),
            plugins: BuildContext {
                owner: String::new(),
                drain: Some(drain.clone()),
                batches: Some(Arc::new(prometheus::Batches(metrics.clone()))),
                metadata: Default::default(),
            },
        },
        config.apisix.ssl.trusted_ca(),
    )?;
    builder.set_tls(crate::snapshot::tls::TlsSettings::new(
        &config.apisix.ssl.protocols().unwrap_or_default(),
        config.apisix.ssl.fallback_sni.clone(),
    ));
    // A control plane proxies nothing: probing upstreams would only add load.
    builder.set_health_checks(
        role != Role::ControlPlane && !config.apisix.disable_upstream_healthcheck,
    );

    let provider = config.deployment.config_provider();
    let declarative_path = loaded.declarative_path();
    // The Admin API works on the store; the standalone file it shows read-only.
    let mut read_only = None;
    let store: Arc<dyn Store> = match provider {
        ConfigProvider::Embedded => {
            let store = EmbeddedStore::open(&loaded.data_dir())?;
            seed(&store, &declarative_path, &registry, &known_runners).await?;
            Arc::new(store)
        }
        ConfigProvider::Etcd => Arc::new(EtcdStore::connect(&config.deployment.etcd).await?),
        ConfigProvider::Yaml | ConfigProvider::Json => {
            let name = if provider == ConfigProvider::Json {
                "json"
            } else {
                "yaml"
            };
            let why = format!(
                "the config comes from {} (config_provider: {name}): the Admin API is read-only; edit the file instead",
                declarative_path.display()
            );
            read_only = Some(why.clone());
            let (plugins, runners) = (registry.clone(), known_runners.clone());
            let read = Box::new(move |path: &Path| {
                let file = read_file(path, &plugins, &runners)?;
                report(path, &file);
                Ok(file.config)
            });
            let file = FileStore::open(&declarative_path, reload_interval, why, read).map_err(
                |source| StartError::Declarative {
                    path: declarative_path.display().to_string(),
                    source,
                },
            )?;
            Arc::new(file)
        }
    };
    // The first read is applied before serving (a store that cannot be read fails the start, as
    // APISIX does without etcd); later changes follow in the background.
    let shared = Shared::new(registry.clone());
    let listing = store.list("").await?;
    let first = shared.load(&listing.entries, &mut builder);
    tracing::info!(
        routes = first.routes.len(),
        revision = listing.revision,
        "config loaded from the store"
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
    // A control plane has no proxy.
    let proxy_listeners = match role {
        Role::ControlPlane => Vec::new(),
        _ => config.apisix.node_listen.listeners(),
    };
    for listen in proxy_listeners {
        let listener = bind(listen.addr).await?;
        let addr = local_addr(&listener, listen.addr)?;
        tracing::info!(%addr, http2 = listen.http2, "listening");
        addrs.push(addr);
        bound.push(Bound {
            listener,
            http2: listen.http2,
            tls: false,
        });
    }
    let mut tls_addrs = Vec::new();
    let tls_listeners = match role {
        Role::ControlPlane => Vec::new(),
        _ => config.apisix.ssl.listeners(),
    };
    for listen in tls_listeners {
        let listener = bind(listen.addr).await?;
        let addr = local_addr(&listener, listen.addr)?;
        tracing::info!(%addr, http2 = listen.http2, "listening (TLS)");
        tls_addrs.push(addr);
        bound.push(Bound {
            listener,
            http2: listen.http2,
            tls: true,
        });
    }

    // Serving many connections needs more descriptors than the usual soft limit of 1024.
    let fd_limit = server::limits::raise_fd_limit();
    let worker_connections = config.nginx_config.event.worker_connections;
    let max_connections = server::limits::connection_cap(worker_connections, fd_limit);
    if max_connections < worker_connections {
        tracing::info!(
            worker_connections,
            max_connections,
            ?fd_limit,
            "connection cap lowered to fit the open-file limit"
        );
    }
    let state = Arc::new(State {
        snapshot: ArcSwap::from_pointee(first),
        settings: ServerSettings {
            server_header: crate::listener::server_header(config.apisix.enable_server_tokens),
            show_upstream_status: config.apisix.show_upstream_status_in_response_header,
            match_uri_encoded_slash: config.apisix.match_uri_encoded_slash,
            normalize_uri_like_servlet: config.apisix.normalize_uri_like_servlet,
            delete_uri_tail_slash: config.apisix.delete_uri_tail_slash,
            max_header_size: http.max_header_size,
            idle_timeout: http.keepalive_timeout,
            real_ip_from: http.real_ip_nets(),
            trusted_addresses: config.apisix.trusted_addresses.as_ref().map(|list| {
                list.iter()
                    .filter_map(|addr| model::parse_net(addr))
                    .collect()
            }),
            real_ip_header: HeaderName::from_bytes(http.real_ip_header.as_bytes())
                .unwrap_or(HeaderName::from_static("x-real-ip")),
            shutdown_timeout: config.nginx_config.worker_shutdown_timeout,
            client_body_timeout: http.client_body_timeout,
            client_body_buffer_size: usize::try_from(http.client_body_buffer_size)
                .unwrap_or(usize::MAX),
            client_max_body_size: http.client_max_body_size,
            http2_max_concurrent_streams: http.http2_max_concurrent_streams,
            streamed_bodies: crate::upstream::body::StreamLimit::new(
                http.streamed_bodies_per_client,
            ),
            max_connections,
        },
        access_log,
        counts: Counts::default(),
    });

    // `apisix_etcd_reachable`: only a gateway on etcd has one (the first read worked).
    let etcd_reachable =
        (provider == ConfigProvider::Etcd).then(|| Arc::new(AtomicBool::new(true)));
    let publish_to = state.clone();
    let background = vec![
        tokio::spawn(sync::follow(
            store.clone(),
            shared.follower(),
            Some(listing),
            etcd_reachable.clone().unwrap_or_default(),
        )),
        tokio::spawn(rebuild_loop(shared, builder, move |s| {
            publish_to.snapshot.store(Arc::new(s));
        })),
    ];

    let (stop_management, management_stop) = signal::channel(false);
    let stopped = move || {
        let mut rx = management_stop.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut management = Vec::new();
    let status_addr = match config.apisix.status {
        Some(listen) => {
            let listener = bind(SocketAddr::new(listen.ip, listen.port)).await?;
            let addr = local_addr(&listener, SocketAddr::new(listen.ip, listen.port))?;
            tracing::info!(%addr, "status API listening");
            let current = state.clone();
            management.push(tokio::spawn(status::serve(
                listener,
                move || current.snapshot.load_full(),
                stopped(),
            )));
            Some(addr)
        }
        None => None,
    };
    let control_addr = if config.apisix.enable_control {
        let want = SocketAddr::new(config.apisix.control.ip, config.apisix.control.port);
        let listener = bind(want).await?;
        let addr = local_addr(&listener, want)?;
        tracing::info!(%addr, "control API listening");
        let current = state.clone();
        management.push(tokio::spawn(control::serve(
            listener,
            move || current.snapshot.load_full(),
            stopped(),
        )));
        Some(addr)
    } else {
        None
    };
    let prometheus_addr = match &config.plugin_attr.prometheus {
        Some(attr) if attr.enable_export_server => {
            let want = SocketAddr::new(attr.export_addr.ip, attr.export_addr.port);
            let listener = bind(want).await?;
            let addr = local_addr(&listener, want)?;
            tracing::info!(%addr, uri = %attr.export_uri, "prometheus exporter listening");
            let node_of = state.clone();
            let etcd = etcd_reachable.clone();
            management.push(tokio::spawn(prometheus::serve(
                listener,
                attr.export_uri.clone(),
                metrics.clone(),
                move || NodeStatus {
                    upstreams: node_of.snapshot.load().health.clone(),
                    counts: node_of.counts.now(),
                    etcd_reachable: etcd.as_ref().map(|e| e.load(Ordering::Relaxed)),
                },
                stopped(),
            )));
            Some(addr)
        }
        _ => None,
    };
    // A data plane has no Admin API.
    let admin_addr = if role == Role::DataPlane {
        None
    } else {
        let settings = &config.deployment.admin;
        let auth = Auth::new(settings, &loaded.data_dir()).map_err(StartError::AdminKey)?;
        let want = SocketAddr::new(settings.admin_listen.ip, settings.admin_listen.port);
        let listener = bind(want).await?;
        let addr = local_addr(&listener, want)?;
        tracing::info!(%addr, "Admin API listening");
        let admin = Arc::new(Admin {
            store,
            auth,
            browser: admin::Browser::new(settings),
            read_only,
            plugins: registry,
            server_header: crate::listener::server_header(config.apisix.enable_server_tokens),
            runners: known_runners,
        });
        management.push(tokio::spawn(admin::serve(listener, admin, stopped())));
        Some(addr)
    };

    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(bound, state.clone(), async {
        let _ = stopped.await;
    }));
    Ok(Gateway {
        addrs,
        tls_addrs,
        status_addr,
        admin_addr,
        control_addr,
        prometheus_addr,
        state,
        stop: Some(stop),
        server: Some(server),
        background,
        management,
        stop_management,
        access_log: guard,
        runners,
        drain,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, wanted: SocketAddr) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        addr: wanted,
        source,
    })
}

/// Fills a fresh, empty embedded store from the declarative file beside `config.yaml`, if there
/// is one, so the bundled quickstart route serves on the first run. A store that was ever written
/// is left alone.
async fn seed(
    store: &EmbeddedStore,
    path: &Path,
    registry: &Registry,
    runners: &KnownRunners,
) -> Result<(), StartError> {
    let listing = store.list("").await?;
    if !listing.entries.is_empty() || listing.revision > 1 || !path.exists() {
        return Ok(());
    }
    let file = read_file(path, registry, runners).map_err(|source| StartError::Declarative {
        path: path.display().to_string(),
        source,
    })?;
    report(path, &file);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let config = &file.config;
    let items = config
        .upstreams
        .iter()
        .map(|u| ("upstreams", u.id.clone(), serde_json::to_value(u)))
        .chain(
            config
                .services
                .iter()
                .map(|s| ("services", s.id.clone(), serde_json::to_value(s))),
        )
        .chain(
            config
                .routes
                .iter()
                .map(|r| ("routes", r.id.clone(), serde_json::to_value(r))),
        )
        .chain(
            config
                .plugin_configs
                .iter()
                .map(|p| ("plugin_configs", p.id.clone(), serde_json::to_value(p))),
        )
        .chain(
            config
                .ssls
                .iter()
                .map(|s| ("ssls", s.id.clone(), serde_json::to_value(s))),
        )
        .chain(
            config
                .global_rules
                .iter()
                .map(|g| ("global_rules", g.id.clone(), serde_json::to_value(g))),
        );
    let mut count = 0;
    for (kind, id, value) in items {
        let (Some(id), Ok(serde_json::Value::Object(mut value))) = (id, value) else {
            continue;
        };
        value.insert("create_time".into(), now.into());
        value.insert("update_time".into(), now.into());
        let text = serde_json::Value::Object(value).to_string();
        store
            .put(&format!("{kind}/{}", id.0), Bytes::from(text), None)
            .await?;
        count += 1;
    }
    tracing::info!(items = count, from = %path.display(), "empty embedded store seeded");
    Ok(())
}

/// Reads the standalone file; as the Admin API, it is refused when an `ext-plugin-*` config
/// names a runner this node does not have (its routes would only answer 503).
fn read_file(
    path: &Path,
    registry: &Registry,
    runners: &KnownRunners,
) -> Result<declarative::Loaded, FileError> {
    let file = declarative::read(path, registry)?;
    let config = &file.config;
    let plugins = config
        .routes
        .iter()
        .map(|r| ("routes", r.plugins.as_ref()))
        .chain(
            config
                .services
                .iter()
                .map(|s| ("services", s.plugins.as_ref())),
        )
        .chain(
            config
                .consumers
                .iter()
                .map(|c| ("consumers", c.plugins.as_ref())),
        )
        .chain(
            config
                .consumer_groups
                .iter()
                .map(|g| ("consumer_groups", Some(&g.plugins))),
        )
        .chain(
            config
                .plugin_configs
                .iter()
                .map(|p| ("plugin_configs", Some(&p.plugins))),
        )
        .chain(
            config
                .global_rules
                .iter()
                .map(|g| ("global_rules", Some(&g.plugins))),
        );
    // Every item of a valid file is kept, so an item's position in its list is its index in the
    // file.
    let mut positions = std::collections::HashMap::<&str, usize>::new();
    let mut refused = Vec::new();
    for (kind, map) in plugins {
        let position = positions.entry(kind).or_default();
        if let Some(Err(message)) = map.map(|m| runners.check(m)) {
            refused.push(crate::config::ConfigError {
                path: format!("{kind}[{position}].plugins"),
                message,
            });
        }
        *position += 1;
    }
    if refused.is_empty() {
        Ok(file)
    } else {
        Err(FileError::Invalid(refused))
    }
}

fn report(path: &Path, file: &declarative::Loaded) {
    for key in &file.ignored {
        tracing::warn!(path = %path.display(), "{key}");
    }
}
