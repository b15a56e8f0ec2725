//! Node configuration: `conf/config.yaml`.
//!
//! Key names follow APISIX's `config.yaml` wherever APISIX has the setting (`apisix.node_listen`,
//! `deployment.role`, `nginx_config.worker_processes`, ...). Every field has a default, so an empty
//! file is a valid configuration. Loading is three steps:
//! 1. read the file and substitute `${{VAR}}` / `${{VAR:=default}}` from the environment (as APISIX);
//! 2. deserialize into typed structs; keys we do not know are collected and logged as warnings;
//! 3. [`NodeConfig::validate`] checks the values and reports every error with its path.

mod deployment;
mod duration;
mod env;
mod runners;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use deployment::{
    AdminKey, AdminListen, AdminRole, AdminSection, ConfigProvider, DeploymentSection,
    EmbeddedSection, EtcdSection, EtcdTls, Role, RoleShared, RoleTraditional,
};
pub use duration::deserialize as deserialize_duration;
pub use env::substitute as substitute_env;
pub use runners::RunnersConfig;

pub use model::ConfigError;

/// The whole node configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NodeConfig {
    /// Gateway settings (`apisix:` section).
    pub apisix: ApisixSection,
    /// Process and HTTP server settings (`nginx_config:` section; the names follow nginx's directives).
    pub nginx_config: NginxConfigSection,
    /// Role of this node and where its data lives (`deployment:` section).
    pub deployment: DeploymentSection,
    /// Static per-node plugin settings (`plugin_attr:` section).
    pub plugin_attr: PluginAttrSection,
    /// External plugin runners (`ext-plugin:` section): APISIX's `cmd` / `path_for_test`, or
    /// several named `runners`.
    #[serde(rename = "ext-plugin")]
    pub ext_plugin: Option<RunnersConfig>,
    /// The enabled plugins (`plugins:`, as APISIX); absent: every built-in plugin.
    pub plugins: Option<Vec<String>>,
}

/// The `plugin_attr:` section; other plugins' entries are ignored (with a warning).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PluginAttrSection {
    /// `plugin_attr.prometheus`: the metrics exporter runs only when this is present.
    pub prometheus: Option<PrometheusAttr>,
    /// `plugin_attr.redirect`.
    pub redirect: Option<RedirectAttr>,
}

/// `plugin_attr.redirect`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RedirectAttr {
    /// The port `http_to_https` redirects to (default: the first `apisix.ssl.listen` port when
    /// TLS is on, else https's default).
    pub https_port: Option<u16>,
}

/// `plugin_attr.prometheus`.
///
/// Unlike APISIX (whose exporter runs whenever the plugin is enabled), the exporter is served
/// only when this section is present, so that nodes do not claim port 9091 unasked.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PrometheusAttr {
    /// Serve the exporter (default true).
    pub enable_export_server: bool,
    /// Exporter address (default `127.0.0.1:9091`).
    pub export_addr: StatusListen,
    /// The metrics path (default `/apisix/prometheus/metrics`).
    pub export_uri: String,
}

impl Default for PrometheusAttr {
    fn default() -> Self {
        Self {
            enable_export_server: true,
            export_addr: StatusListen {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: 9091,
            },
            export_uri: "/apisix/prometheus/metrics".to_owned(),
        }
    }
}

/// The `apisix:` section.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct ApisixSection {
    /// Ports or `{ip, port}` objects the proxy listens on (APISIX default: 9080 on all addresses).
    pub node_listen: NodeListen,
    /// Router selection (`router.http`).
    pub router: RouterSection,
    /// `Server: ferrogate/<version>` when true, `Server: ferrogate` when false.
    pub enable_server_tokens: bool,
    /// Send `X-APISIX-Upstream-Status` on every proxied response, not only on upstream 5xx.
    pub show_upstream_status_in_response_header: bool,
    /// TLS settings.
    pub ssl: SslSection,
    /// Status API address (`{ip, port}`); off when absent.
    pub status: Option<StatusListen>,
    /// Serve the control API (default true).
    pub enable_control: bool,
    /// Control API address (default `127.0.0.1:9090`).
    pub control: StatusListen,
    /// Turn every upstream health checker off (default false).
    pub disable_upstream_healthcheck: bool,
    /// Match routes on the path with `%2F` kept encoded, so that it can be part of a path
    /// parameter (default false).
    pub match_uri_encoded_slash: bool,
    /// Route on the path without its `;` parameters, as a Java servlet container reads it
    /// (default false).
    pub normalize_uri_like_servlet: bool,
    /// Route on the path without its trailing `/` (default false).
    pub delete_uri_tail_slash: bool,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-Proto`, `-Host`, `-Port` and `Forwarded` pass on
    /// upstream; when set, a peer outside them has its `X-Forwarded-For` dropped (default
    /// none: every peer's forwarding headers are replaced and `X-Forwarded-For` is kept).
    pub trusted_addresses: Option<Vec<String>>,
}

/// A management listener: `apisix.status`, `apisix.control`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusListen {
    /// Address to bind (default `127.0.0.1`).
    #[serde(default = "loopback")]
    pub ip: IpAddr,
    /// Port to bind.
    pub port: u16,
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// `apisix.ssl`: the TLS listeners and upstream trust.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct SslSection {
    /// Serve TLS on `listen` (default false, unlike APISIX, so a node without certificates
    /// does not claim port 9443).
    pub enable: bool,
    /// TLS listeners (default `[{port: 9443}]`).
    pub listen: Vec<SslListenItem>,
    /// TLS versions offered, space separated (default `TLSv1.2 TLSv1.3`; `TLSv1.1` is not
    /// available and is skipped with a warning).
    pub ssl_protocols: String,
    /// Accepted for compatibility and ignored: rustls offers only its safe cipher suites.
    pub ssl_ciphers: Option<String>,
    /// Accepted for compatibility; session tickets are never issued.
    pub ssl_session_tickets: bool,
    /// The name whose certificate is served when the client sends no SNI or no certificate
    /// matches the one it sends.
    pub fallback_sni: Option<String>,
    /// CA bundle (PEM file) trusted for https upstreams in addition to the system roots, or
    /// `system` for the system roots only.
    pub ssl_trusted_certificate: String,
}

impl Default for SslSection {
    fn default() -> Self {
        Self {
            enable: false,
            listen: vec![SslListenItem::Port(9443)],
            ssl_protocols: "TLSv1.2 TLSv1.3".to_owned(),
            ssl_ciphers: None,
            ssl_session_tickets: false,
            fallback_sni: None,
            ssl_trusted_certificate: "system".to_owned(),
        }
    }
}

/// One entry of `apisix.ssl.listen`: a port, or `{ip, port, enable_http2}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SslListenItem {
    /// A port on all IPv4 addresses, HTTP/2 offered.
    Port(u16),
    /// A listener with options.
    Full(SslListenSpec),
}

/// A TLS listener with an explicit address and options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SslListenSpec {
    /// Address to bind (default `0.0.0.0`).
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// Port to bind; 0 picks a free port (tests).
    pub port: u16,
    /// Offer HTTP/2 through ALPN besides HTTP/1.1 (default true).
    #[serde(default = "yes")]
    pub enable_http2: bool,
    /// Accepted for compatibility; HTTP/3 is not served.
    #[serde(default)]
    pub enable_http3: bool,
}

fn yes() -> bool {
    true
}

impl SslSection {
    /// The port of the first TLS listener, when TLS is on.
    pub fn first_port(&self) -> Option<u16> {
        let first = self.listen.first().filter(|_| self.enable)?;
        Some(match first {
            SslListenItem::Port(port) => *port,
            SslListenItem::Full(spec) => spec.port,
        })
    }

    /// The extra CA bundle, if one is configured.
    pub fn trusted_ca(&self) -> Option<&Path> {
        (self.ssl_trusted_certificate != "system").then(|| Path::new(&self.ssl_trusted_certificate))
    }

    /// The TLS listeners to bind (none unless `enable`); `http2` means h2 is offered by ALPN.
    pub fn listeners(&self) -> Vec<Listen> {
        if !self.enable {
            return Vec::new();
        }
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        self.listen
            .iter()
            .map(|i| match i {
                SslListenItem::Port(port) => Listen {
                    addr: SocketAddr::new(any, *port),
                    http2: true,
                },
                SslListenItem::Full(spec) => Listen {
                    addr: SocketAddr::new(spec.ip.unwrap_or(any), spec.port),
                    http2: spec.enable_http2,
                },
            })
            .collect()
    }

    /// `ssl_protocols` as names, with unknown ones as errors and `TLSv1.1` dropped.
    pub fn protocols(&self) -> Result<Vec<&str>, String> {
        let mut out = Vec::new();
        for name in self.ssl_protocols.split_whitespace() {
            match name {
                "TLSv1.2" | "TLSv1.3" => out.push(name),
                "TLSv1" | "TLSv1.1" => {}
                other => {
                    return Err(format!(
                        "unknown protocol `{other}`; expected TLSv1.2 and/or TLSv1.3"
                    ))
                }
            }
        }
        if out.is_empty() {
            return Err("must include TLSv1.2 or TLSv1.3".to_owned());
        }
        Ok(out)
    }
}

impl Default for ApisixSection {
    fn default() -> Self {
        Self {
            node_listen: NodeListen::default(),
            router: RouterSection::default(),
            enable_server_tokens: true,
            show_upstream_status_in_response_header: false,
            ssl: SslSection::default(),
            status: None,
            enable_control: true,
            control: StatusListen {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: 9090,
            },
            disable_upstream_healthcheck: false,
            match_uri_encoded_slash: false,
            normalize_uri_like_servlet: false,
            delete_uri_tail_slash: false,
            trusted_addresses: None,
        }
    }
}

/// `apisix.router`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RouterSection {
    /// `radixtree_host_uri` (default), `radixtree_uri` or `radixtree_uri_with_parameter`.
    pub http: RouterKind,
}

/// Which router `apisix.router.http` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum RouterKind {
    /// `radixtree_host_uri` (the default): index by host, then by URI.
    #[default]
    #[serde(rename = "radixtree_host_uri")]
    HostUri,
    /// `radixtree_uri`: index by URI only; hosts are a per-route filter; `:` is literal.
    #[serde(rename = "radixtree_uri")]
    Uri,
    /// `radixtree_uri_with_parameter`: like [`RouterKind::Uri`] with `:name` / `*name`.
    #[serde(rename = "radixtree_uri_with_parameter")]
    UriWithParameter,
}

/// `apisix.node_listen`: a port, or a list of ports and `{ip, port, enable_http2}` objects.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum NodeListen {
    /// A single port.
    Port(u16),
    /// Several listeners.
    List(Vec<ListenItem>),
}

impl Default for NodeListen {
    fn default() -> Self {
        NodeListen::List(vec![ListenItem::Port(9080)])
    }
}

/// One entry of `apisix.node_listen`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ListenItem {
    /// A port on all IPv4 addresses.
    Port(u16),
    /// A listener with options.
    Full(ListenSpec),
}

/// A listener with an explicit address and options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSpec {
    /// Address to bind (default `0.0.0.0`).
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// Port to bind; 0 picks a free port (tests).
    pub port: u16,
    /// Accept HTTP/2 over cleartext (h2c, prior knowledge) besides HTTP/1.1.
    #[serde(default)]
    pub enable_http2: bool,
}

/// A resolved listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// Socket address to bind.
    pub addr: SocketAddr,
    /// Whether h2c is accepted.
    pub http2: bool,
}

impl NodeListen {
    /// The listeners to bind, in configuration order.
    pub fn listeners(&self) -> Vec<Listen> {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let item = |i: &ListenItem| match i {
            ListenItem::Port(port) => Listen {
                addr: SocketAddr::new(any, *port),
                http2: false,
            },
            ListenItem::Full(spec) => Listen {
                addr: SocketAddr::new(spec.ip.unwrap_or(any), spec.port),
                http2: spec.enable_http2,
            },
        };
        match self {
            NodeListen::Port(port) => vec![item(&ListenItem::Port(*port))],
            NodeListen::List(items) => items.iter().map(item).collect(),
        }
    }
}

/// The `nginx_config:` section.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct NginxConfigSection {
    /// Worker threads of the runtime: `auto` (one per core) or a number.
    pub worker_processes: WorkerProcesses,
    /// Log level when `RUST_LOG` is not set.
    pub error_log_level: LogLevel,
    /// How long shutdown waits for requests in flight before closing connections.
    #[serde(deserialize_with = "deserialize_duration")]
    pub worker_shutdown_timeout: Duration,
    /// HTTP server settings.
    pub http: HttpSection,
    /// Connection processing (`event:`).
    pub event: EventSection,
}

/// An nginx log level (`nginx_config.error_log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `notice` (logged as info).
    Notice,
    /// `warn` (the default).
    #[default]
    Warn,
    /// `error`.
    Error,
    /// `crit` (logged as error).
    Crit,
    /// `alert` (logged as error).
    Alert,
    /// `emerg` (logged as error).
    Emerg,
}

impl LogLevel {
    /// The `tracing` level this maps to, as an env-filter directive.
    pub fn tracing_directive(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info | LogLevel::Notice => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Crit | LogLevel::Alert | LogLevel::Emerg => "error",
        }
    }
}

/// `nginx_config.event`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct EventSection {
    /// Most client connections open at once across all proxy listeners (plain and TLS). The
    /// gateway serves at most this many, and fewer when the file-descriptor limit is lower (see
    /// [`crate::server::limits::connection_cap`]).
    pub worker_connections: usize,
}

impl Default for EventSection {
    fn default() -> Self {
        // APISIX's default (config-default.yaml).
        Self {
            worker_connections: 10620,
        }
    }
}

impl Default for NginxConfigSection {
    fn default() -> Self {
        Self {
            worker_processes: WorkerProcesses::default(),
            error_log_level: LogLevel::default(),
            worker_shutdown_timeout: Duration::from_secs(240),
            http: HttpSection::default(),
            event: EventSection::default(),
        }
    }
}

/// `nginx_config.worker_processes`.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum WorkerProcesses {
    /// `auto`: one worker thread per core.
    #[default]
    Auto,
    /// A fixed number of worker threads.
    Count(usize),
    /// Any other string; only `auto` is valid.
    Named(String),
}

impl WorkerProcesses {
    /// The number of worker threads to start.
    pub fn threads(&self) -> usize {
        match self {
            WorkerProcesses::Count(n) if *n > 0 => *n,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// `nginx_config.http`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct HttpSection {
    /// Write one access log line per request.
    pub enable_access_log: bool,
    /// Where access log lines go: a file path (relative to the working directory) or `stdout`.
    pub access_log: String,
    /// How long a client connection may wait for its next request head to arrive complete:
    /// bounds idle keep-alive connections and slow senders alike.
    #[serde(deserialize_with = "deserialize_duration")]
    pub keepalive_timeout: Duration,
    /// Largest request head (request line + headers) accepted, in bytes; larger gets 431
    /// (ferrogate setting; nginx's equivalent is `large_client_header_buffers`).
    pub max_header_size: usize,
    /// Header holding the client address when the peer is in `real_ip_from`.
    pub real_ip_header: String,
    /// Peers (IPs or CIDRs) trusted to set `real_ip_header` (`unix:` is accepted and ignored).
    pub real_ip_from: Vec<String>,
    /// Defaults for connections to upstreams.
    pub upstream: UpstreamDefaults,
    /// Longest wait between two reads of a client's request body; expiry answers 408 (nginx's
    /// `client_body_timeout`).
    #[serde(deserialize_with = "deserialize_duration")]
    pub client_body_timeout: Duration,
    /// Request bodies up to this many bytes are read whole before the upstream is connected;
    /// larger ones stream (nginx's `client_body_buffer_size`; nginx spills to a file instead).
    #[serde(deserialize_with = "deserialize_size")]
    pub client_body_buffer_size: u64,
    /// Largest request body accepted, in bytes; larger gets 413. 0: no limit (APISIX's
    /// default; nginx's `client_max_body_size`).
    #[serde(deserialize_with = "deserialize_size")]
    pub client_max_body_size: u64,
    /// Concurrent streams one HTTP/2 connection may open (nginx's
    /// `http2_max_concurrent_streams`).
    pub http2_max_concurrent_streams: u32,
    /// Request bodies one client address may stream to upstreams at once; more get 429. 0: no
    /// limit (ferrogate setting).
    pub streamed_bodies_per_client: usize,
}

impl HttpSection {
    /// `real_ip_from` parsed (entries that are not addresses are skipped; validation reports them).
    pub fn real_ip_nets(&self) -> Vec<ipnet::IpNet> {
        self.real_ip_from
            .iter()
            .filter_map(|s| model::parse_net(s))
            .collect()
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            enable_access_log: true,
            access_log: "stdout".to_owned(),
            keepalive_timeout: Duration::from_secs(60),
            max_header_size: 32 * 1024,
            real_ip_header: "X-Real-IP".to_owned(),
            real_ip_from: vec!["127.0.0.1".to_owned(), "unix:".to_owned()],
            upstream: UpstreamDefaults::default(),
            client_body_timeout: Duration::from_secs(60),
            client_body_buffer_size: 1024 * 1024,
            client_max_body_size: 0,
            http2_max_concurrent_streams: 128,
            streamed_bodies_per_client: 16,
        }
    }
}

/// serde helper for byte sizes written as a number of bytes or nginx-style text (`16k`, `1m`,
/// `1g`).
fn deserialize_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Bytes(n) => return Ok(n),
        Raw::Text(t) => t,
    };
    let lower = text.trim().to_ascii_lowercase();
    let (number, scale) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 1024),
        Some(b'm') => (&lower[..lower.len() - 1], 1024 * 1024),
        Some(b'g') => (&lower[..lower.len() - 1], 1024 * 1024 * 1024),
        _ => (lower.as_str(), 1),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| serde::de::Error::custom(format!("invalid size `{text}`")))
}

/// `nginx_config.http.upstream`: the keep-alive pool used when an upstream has no `keepalive_pool`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct UpstreamDefaults {
    /// Idle connections kept per upstream node.
    pub keepalive: usize,
    /// Idle time after which a pooled connection is closed.
    #[serde(deserialize_with = "deserialize_duration")]
    pub keepalive_timeout: Duration,
}

impl Default for UpstreamDefaults {
    fn default() -> Self {
        Self {
            keepalive: 320,
            keepalive_timeout: Duration::from_secs(60),
        }
    }
}

/// A loaded node configuration with the facts derived from where it was found.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The typed configuration.
    pub config: NodeConfig,
    /// Keys present in the file that Ferrogate does not know (logged as warnings).
    pub unknown_keys: Vec<String>,
    /// The directory holding `config.yaml`; `apisix.yaml` is read from here.
    pub dir: PathBuf,
}

impl LoadedConfig {
    /// Path of the declarative file for the configured provider.
    pub fn declarative_path(&self) -> PathBuf {
        let name = match self.config.deployment.config_provider() {
            ConfigProvider::Json => "apisix.json",
            _ => "apisix.yaml",
        };
        self.dir.join(name)
    }

    /// The embedded store's directory (`deployment.embedded.data_dir`, relative to [`Self::dir`]).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join(&self.config.deployment.embedded.data_dir)
    }
}

impl NodeConfig {
    /// What the built-in plugins read from this config: `redirect`'s https port is
    /// `plugin_attr.redirect.https_port`, else the first `apisix.ssl.listen` port when TLS is on
    /// (APISIX takes one of them at random on each request).
    pub fn plugin_settings(&self) -> plugins::NodeSettings {
        let attr = self.plugin_attr.redirect.as_ref();
        plugins::NodeSettings {
            https_port: attr
                .and_then(|r| r.https_port)
                .or_else(|| self.apisix.ssl.first_port()),
        }
    }

    /// Reads, parses and validates `path`. A missing file is an error.
    ///
    /// # Errors
    /// Every problem found, each with its path.
    pub fn load(path: &Path) -> Result<LoadedConfig, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                path: String::new(),
                message: format!("cannot read {}: {e}", path.display()),
            }]
        })?;
        let (config, unknown_keys) = Self::parse(&text)?;
        let errors = config.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(LoadedConfig {
            config,
            unknown_keys,
            dir,
        })
    }

    /// Parses YAML text (after environment substitution) into a config and the unknown keys.
    ///
    /// # Errors
    /// The first type error with its path, or a syntax error with its line.
    pub fn parse(text: &str) -> Result<(NodeConfig, Vec<String>), Vec<ConfigError>> {
        let one = |path: String, message: String| vec![ConfigError { path, message }];
        let text = substitute_env(text).map_err(|m| one(String::new(), m))?;
        let value: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| one(String::new(), e.to_string()))?
        };
        if value.is_null() {
            return Ok((NodeConfig::default(), Vec::new()));
        }
        let mut unknown = Vec::new();
        let mut collect = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let ignored = serde_ignored::Deserializer::new(value, &mut collect);
        let config: NodeConfig = serde_path_to_error::deserialize(ignored)
            .map_err(|e| one(e.path().to_string(), e.inner().to_string()))?;
        Ok((config, unknown))
    }

    /// The names in `plugins:` that are not built into Ferrogate, sorted, each once. APISIX's
    /// whole default list is usually copied to enable one more plugin: these are warned about
    /// at start, not refused, and configs using them are refused as unknown plugins.
    pub fn unavailable_plugins(&self, known: &plugin_api::registry::Registry) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .plugins
            .iter()
            .flatten()
            .map(String::as_str)
            .filter(|name| !known.exists(name))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Checks values that types cannot express. Returns every error found.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut err = |path: &str, message: String| {
            errors.push(ConfigError {
                path: path.to_owned(),
                message,
            })
        };
        for problem in self.ext_plugin.iter().flat_map(|c| c.problems()) {
            err("ext-plugin", problem);
        }
        let listeners = self.apisix.node_listen.listeners();
        if listeners.is_empty() {
            err(
                "apisix.node_listen",
                "at least one listener is required".to_owned(),
            );
        }
        for (i, l) in listeners.iter().enumerate() {
            if listeners[..i]
                .iter()
                .any(|o| o.addr == l.addr && l.addr.port() != 0)
            {
                err(
                    &format!("apisix.node_listen[{i}]"),
                    format!("{} is listed twice", l.addr),
                );
            }
        }
        if let WorkerProcesses::Named(name) = &self.nginx_config.worker_processes {
            if name != "auto" {
                err(
                    "nginx_config.worker_processes",
                    format!("expected `auto` or a number, got `{name}`"),
                );
            }
        }
        if let WorkerProcesses::Count(0) = self.nginx_config.worker_processes {
            err(
                "nginx_config.worker_processes",
                "must be at least 1".to_owned(),
            );
        }
        if self.nginx_config.http.max_header_size < 8192 {
            err(
                "nginx_config.http.max_header_size",
                "must be at least 8192 bytes".to_owned(),
            );
        }
        let http = &self.nginx_config.http;
        for (i, from) in http.real_ip_from.iter().enumerate() {
            if from != "unix:" && model::parse_net(from).is_none() {
                err(
                    &format!("nginx_config.http.real_ip_from[{i}]"),
                    format!("invalid IP address or CIDR `{from}`"),
                );
            }
        }
        for (i, addr) in self.apisix.trusted_addresses.iter().flatten().enumerate() {
            if model::parse_net(addr).is_none() {
                err(
                    &format!("apisix.trusted_addresses[{i}]"),
                    format!("invalid IP address or CIDR `{addr}`"),
                );
            }
        }
        if http::HeaderName::from_bytes(http.real_ip_header.as_bytes()).is_err() {
            err(
                "nginx_config.http.real_ip_header",
                format!("invalid header name `{}`", http.real_ip_header),
            );
        }
        if let Err(e) = self.apisix.ssl.protocols() {
            err("apisix.ssl.ssl_protocols", e);
        }
        if self.apisix.ssl.enable && self.apisix.ssl.listen.is_empty() {
            err(
                "apisix.ssl.listen",
                "at least one listener is required when ssl is enabled".to_owned(),
            );
        }
        match (self.deployment.role, self.deployment.config_provider()) {
            (Role::DataPlane, ConfigProvider::Embedded) => err(
                "deployment.role_data_plane.config_provider",
                "a data plane reads a config written elsewhere: use etcd, yaml or json".to_owned(),
            ),
            (Role::ControlPlane, p) if p != ConfigProvider::Etcd => err(
                "deployment.role_control_plane.config_provider",
                "a control plane writes the config data planes read: use etcd".to_owned(),
            ),
            _ => {}
        }
        let admin = &self.deployment.admin;
        for (i, net) in admin.allow_admin.iter().enumerate() {
            if model::parse_net(net).is_none() {
                err(
                    &format!("deployment.admin.allow_admin[{i}]"),
                    format!("invalid IP address or CIDR `{net}`"),
                );
            }
        }
        if !admin.admin_key_required && !admin.admin_listen.ip.is_loopback() {
            err(
                "deployment.admin.admin_key_required",
                "the Admin API cannot run without authentication on a non-loopback address"
                    .to_owned(),
            );
        }
        // Exact origins only: a wildcard would let every web page drive the Admin API.
        for (i, origin) in admin.cors_origins.iter().enumerate() {
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            let valid = authority.is_some_and(|a| {
                !a.is_empty()
                    && !a.contains(['/', '*', '@'])
                    && a.parse::<http::uri::Authority>().is_ok()
            });
            if !valid {
                err(
                    &format!("deployment.admin.cors_origins[{i}]"),
                    format!("invalid origin `{origin}`: expected scheme://host[:port] such as https://dashboard.example:8443, without path or wildcard"),
                );
            }
        }
        for (i, host) in admin.allow_hosts.iter().enumerate() {
            let name = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if host == "*" && !admin.admin_key_required {
                err(
                    &format!("deployment.admin.allow_hosts[{i}]"),
                    "`*` needs admin_key_required: true (any name lets a web page reach the Admin API by DNS rebinding)".to_owned(),
                );
            } else if host != "*" && !name {
                err(
                    &format!("deployment.admin.allow_hosts[{i}]"),
                    format!("invalid host name `{host}`: expected a name without port, or `*`"),
                );
            }
        }
        for (i, key) in admin.admin_key.iter().enumerate() {
            if key.key.len() < 8 {
                err(
                    &format!("deployment.admin.admin_key[{i}].key"),
                    "must be at least 8 characters".to_owned(),
                );
            }
        }
        if self.deployment.config_provider() == ConfigProvider::Etcd {
            let etcd = &self.deployment.etcd;
            if etcd.host.is_empty() {
                err(
                    "deployment.etcd.host",
                    "at least one endpoint is required".to_owned(),
                );
            }
            if !etcd.prefix.starts_with('/') || etcd.prefix.len() < 2 || etcd.prefix.ends_with('/')
            {
                err(
                    "deployment.etcd.prefix",
                    format!("`{}` must start with `/` and not end with `/`", etcd.prefix),
                );
            }
            if etcd.timeout.is_zero() {
                err(
                    "deployment.etcd.timeout",
                    "must be greater than 0".to_owned(),
                );
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let (c, unknown) = NodeConfig::parse("").expect("empty config is valid");
        assert!(unknown.is_empty());
        assert_eq!(c.apisix.node_listen.listeners()[0].addr.port(), 9080);
        assert_eq!(c.apisix.router.http, RouterKind::HostUri);
        assert_eq!(
            c.deployment.role_traditional.config_provider,
            ConfigProvider::Embedded
        );
        assert!(c.validate().is_empty());
    }

    #[test]
    fn node_listen_forms() {
        let (c, _) = NodeConfig::parse(
            "apisix:\n  node_listen:\n    - 9081\n    - {ip: 127.0.0.1, port: 9082, enable_http2: true}\n",
        )
        .expect("valid");
        let l = c.apisix.node_listen.listeners();
        assert_eq!(l[0].addr, "0.0.0.0:9081".parse().expect("addr"));
        assert_eq!(l[1].addr, "127.0.0.1:9082".parse().expect("addr"));
        assert!(l[1].http2 && !l[0].http2);
        let (c, _) = NodeConfig::parse("apisix:\n  node_listen: 9000\n").expect("valid");
        assert_eq!(c.apisix.node_listen.listeners()[0].addr.port(), 9000);
    }

    #[test]
    fn enabled_plugins_ferrogate_lacks_are_listed_not_fatal() {
        let (c, _) =
            NodeConfig::parse("plugins: [key-auth, nope, zipkin, nope]\n").expect("parses");
        assert_eq!(c.plugins.as_deref().map(<[String]>::len), Some(4));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let known = crate::gateway::plugin_registry(None, None, &[]);
        assert_eq!(c.unavailable_plugins(&known), ["nope", "zipkin"]);
        let (all, _) = NodeConfig::parse("").expect("parses");
        assert!(all.unavailable_plugins(&known).is_empty());
    }

    #[test]
    fn unknown_keys_are_reported_not_fatal() {
        let (_, unknown) = NodeConfig::parse(
            "apisix:\n  enable_ipv6: true\n  node_listen: [9080]\nplugin_attr: {x: 1}\n",
        )
        .expect("valid");
        assert_eq!(unknown, vec!["apisix.enable_ipv6", "plugin_attr.x"]);
    }

    #[test]
    fn type_errors_name_their_path() {
        let e = NodeConfig::parse("apisix:\n  node_listen:\n    - {ip: 127.0.0.1, port: nope}\n")
            .expect_err("invalid");
        assert_eq!(e[0].path, "apisix.node_listen");
        let e = NodeConfig::parse("nginx_config:\n  http:\n    keepalive_timeout: soon\n")
            .expect_err("invalid");
        assert_eq!(e[0].path, "nginx_config.http.keepalive_timeout");
        assert!(e[0].message.contains("soon"), "{}", e[0].message);
    }

    #[test]
    fn router_and_log_level_are_typed() {
        for (name, kind) in [
            ("radixtree_host_uri", RouterKind::HostUri),
            ("radixtree_uri", RouterKind::Uri),
            ("radixtree_uri_with_parameter", RouterKind::UriWithParameter),
        ] {
            let (c, _) = NodeConfig::parse(&format!("apisix:\n  router: {{http: {name}}}\n"))
                .expect("valid");
            assert_eq!(c.apisix.router.http, kind);
        }
        let e = NodeConfig::parse("apisix:\n  router: {http: trie}\n").expect_err("unknown");
        assert_eq!(e[0].path, "apisix.router.http");
        assert!(e[0].message.contains("radixtree_uri"), "{}", e[0].message);
        let (c, _) =
            NodeConfig::parse("nginx_config:\n  error_log_level: notice\n").expect("valid");
        assert_eq!(c.nginx_config.error_log_level.tracing_directive(), "info");
        let e = NodeConfig::parse("nginx_config:\n  error_log_level: loud\n").expect_err("unknown");
        assert_eq!(e[0].path, "nginx_config.error_log_level");
    }

    #[test]
    fn validate_lists_every_error() {
        let (c, _) = NodeConfig::parse(
            "apisix:\n  node_listen: [9080, 9080]\nnginx_config:\n  worker_processes: many\ndeployment:\n  admin: {allow_admin: [nowhere]}\n  role_traditional: {config_provider: etcd}\n  etcd: {prefix: apisix}\n",
        )
        .expect("parses");
        let paths: Vec<_> = c.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            vec![
                "apisix.node_listen[1]",
                "nginx_config.worker_processes",
                "deployment.admin.allow_admin[0]",
                "deployment.etcd.prefix",
            ]
        );
    }

    #[test]
    fn roles_need_a_shared_config() {
        let paths = |text: &str| -> Vec<String> {
            let (c, _) = NodeConfig::parse(text).expect("parses");
            c.validate().into_iter().map(|e| e.path).collect()
        };
        assert_eq!(
            paths(
                "deployment:\n  role: data_plane\n  role_data_plane: {config_provider: embedded}\n"
            ),
            ["deployment.role_data_plane.config_provider"]
        );
        assert_eq!(
            paths("deployment:\n  role: control_plane\n  role_control_plane: {config_provider: yaml}\n"),
            ["deployment.role_control_plane.config_provider"]
        );
        assert!(
            paths("deployment:\n  role: data_plane\n").is_empty(),
            "etcd by default"
        );
        assert!(paths(
            "deployment:\n  role: data_plane\n  role_data_plane: {config_provider: yaml}\n"
        )
        .is_empty());
        let (open, _) = NodeConfig::parse(
            "deployment:\n  admin: {admin_listen: {ip: 0.0.0.0, port: 9180}, admin_key_required: false}\n",
        )
        .expect("parses");
        assert_eq!(
            open.validate()[0].path,
            "deployment.admin.admin_key_required",
            "no open Admin API off loopback"
        );
    }

    #[test]
    fn admin_browser_settings_are_checked() {
        let paths = |text: &str| -> Vec<String> {
            let (c, _) = NodeConfig::parse(text).expect("parses");
            c.validate().into_iter().map(|e| e.path).collect()
        };
        assert!(paths("deployment:\n  admin: {cors_origins: [\"https://dash.example:8443\", \"http://127.0.0.1:3000\"], allow_hosts: [apisix-admin.default.svc, \"*\"]}\n").is_empty());
        assert_eq!(
            paths("deployment:\n  admin: {cors_origins: [\"*\", \"dash.example\", \"https://dash.example/\", \"https://*.example\"]}\n"),
            [0, 1, 2, 3].map(|i| format!("deployment.admin.cors_origins[{i}]"))
        );
        assert_eq!(
            paths("deployment:\n  admin: {allow_hosts: [\"a.example:9180\", \"\", \"*\"], admin_key_required: false}\n"),
            [0, 1, 2].map(|i| format!("deployment.admin.allow_hosts[{i}]"))
        );
    }

    #[test]
    fn ssl_section() {
        let (c, _) = NodeConfig::parse("").expect("valid");
        assert!(c.apisix.ssl.listeners().is_empty(), "TLS is off by default");
        let (c, _) = NodeConfig::parse(
            "apisix:\n  ssl:\n    enable: true\n    listen: [9443, {ip: 127.0.0.1, port: 9444, enable_http2: false}]\n    ssl_protocols: TLSv1.1 TLSv1.3\n    fallback_sni: a.test\n",
        )
        .expect("valid");
        let l = c.apisix.ssl.listeners();
        assert_eq!(l.len(), 2);
        assert!(l[0].http2 && !l[1].http2);
        assert_eq!(c.apisix.ssl.protocols(), Ok(vec!["TLSv1.3"]));
        assert!(c.validate().is_empty());
        let (c, _) =
            NodeConfig::parse("apisix:\n  ssl: {ssl_protocols: TLSv1.1 SSLv3}\n").expect("parses");
        assert_eq!(c.validate()[0].path, "apisix.ssl.ssl_protocols");
    }

    #[test]
    fn environment_is_substituted() {
        std::env::set_var("FERROGATE_TEST_PORT", "9555");
        let (c, _) = NodeConfig::parse(
            "apisix:\n  node_listen: [${{FERROGATE_TEST_PORT}}, ${{FERROGATE_TEST_UNSET_X:=9556}}]\n",
        )
        .expect("valid");
        let ports: Vec<_> = c
            .apisix
            .node_listen
            .listeners()
            .iter()
            .map(|l| l.addr.port())
            .collect();
        assert_eq!(ports, vec![9555, 9556]);
    }

    #[test]
    fn plugin_settings_and_trusted_addresses() {
        let port = |text: &str| {
            let (c, unknown) = NodeConfig::parse(text).expect("valid");
            assert!(unknown.is_empty(), "{unknown:?}");
            c.plugin_settings().https_port
        };
        assert_eq!(port(""), None, "TLS off");
        let tls = "apisix:\n  ssl:\n    enable: true\n    listen: [{port: 9445}, 9446]\n";
        assert_eq!(port(tls), Some(9445), "the first TLS listener");
        let attr = format!("{tls}plugin_attr:\n  redirect: {{https_port: 8443}}\n");
        assert_eq!(port(&attr), Some(8443), "plugin_attr wins");
        let trusted = "apisix:\n  trusted_addresses: [127.0.0.1, 10.0.0.0/8, x]\n";
        let (c, _) = NodeConfig::parse(trusted).expect("parses");
        let errors = c.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "apisix.trusted_addresses[2]");
    }
}
