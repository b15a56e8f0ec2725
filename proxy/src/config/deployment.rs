//! The `deployment:` section: the node's role, where its config lives (embedded store, etcd or the
//! standalone file) and the Admin API listener.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::deserialize_duration;

/// The `deployment:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeploymentSection {
    /// What this node does.
    pub role: Role,
    /// Settings of the traditional role.
    pub role_traditional: RoleTraditional,
    /// Settings of the data-plane role.
    pub role_data_plane: RoleShared,
    /// Settings of the control-plane role.
    pub role_control_plane: RoleShared,
    /// The Admin API.
    pub admin: AdminSection,
    /// The etcd cluster (provider `etcd`).
    pub etcd: EtcdSection,
    /// The embedded store (provider `embedded`).
    pub embedded: EmbeddedSection,
}

/// `deployment.role`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Data plane and control plane in one process: proxy and Admin API.
    #[default]
    Traditional,
    /// Proxy only, reading a config that control-plane nodes write (etcd) or the standalone file.
    DataPlane,
    /// Admin API only, writing the config that data-plane nodes read (etcd).
    ControlPlane,
}

impl DeploymentSection {
    /// The config provider of the configured role.
    pub fn config_provider(&self) -> ConfigProvider {
        match self.role {
            Role::Traditional => self.role_traditional.config_provider,
            Role::DataPlane => self.role_data_plane.config_provider,
            Role::ControlPlane => self.role_control_plane.config_provider,
        }
    }
}

/// `deployment.role_traditional`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoleTraditional {
    /// Where the config comes from.
    pub config_provider: ConfigProvider,
}

/// `deployment.role_data_plane` and `deployment.role_control_plane`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RoleShared {
    /// Where the config comes from (default etcd).
    pub config_provider: ConfigProvider,
}

impl Default for RoleShared {
    fn default() -> Self {
        Self {
            config_provider: ConfigProvider::Etcd,
        }
    }
}

/// `deployment.role_*.config_provider`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigProvider {
    /// The embedded store in `deployment.embedded.data_dir`, written through the Admin API.
    #[default]
    Embedded,
    /// etcd (`deployment.etcd`), written through the Admin API, shared by several nodes.
    Etcd,
    /// `apisix.yaml` beside `config.yaml`, reloaded on change; the Admin API is read-only.
    Yaml,
    /// `apisix.json` beside `config.yaml`, reloaded on change; the Admin API is read-only.
    Json,
}

/// `deployment.admin`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct AdminSection {
    /// Where the Admin API listens (APISIX: `0.0.0.0:9180`; here loopback unless set).
    pub admin_listen: AdminListen,
    /// `false` turns authentication off; refused on a non-loopback listener.
    pub admin_key_required: bool,
    /// API keys. Empty: a key is generated at first start and kept in the data directory.
    pub admin_key: Vec<AdminKey>,
    /// Client networks allowed to reach the Admin API (others get 403). Default: loopback only.
    pub allow_admin: Vec<String>,
    /// Answer `OPTIONS` and add CORS headers, for the origins in `cors_origins` only (APISIX
    /// allows every origin).
    pub enable_admin_cors: bool,
    /// Browser origins (`scheme://host[:port]`) allowed to call the Admin API: they get CORS
    /// headers and may write. Empty (the default): no CORS headers, and a write carrying an
    /// `Origin` is refused.
    pub cors_origins: Vec<String>,
    /// Host names accepted in the `Host` header beside `localhost` and IP literals (others get
    /// 403, which defeats DNS rebinding); `"*"` accepts any name.
    pub allow_hosts: Vec<String>,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            admin_listen: AdminListen::default(),
            admin_key_required: true,
            admin_key: Vec::new(),
            allow_admin: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
            enable_admin_cors: true,
            cors_origins: Vec::new(),
            allow_hosts: Vec::new(),
        }
    }
}

/// `deployment.admin.admin_listen`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminListen {
    /// Address (default 127.0.0.1).
    pub ip: IpAddr,
    /// Port (default 9180).
    pub port: u16,
}

impl Default for AdminListen {
    fn default() -> Self {
        Self {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 9180,
        }
    }
}

/// One Admin API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminKey {
    /// Who holds it (shown in logs).
    pub name: String,
    /// The key.
    pub key: String,
    /// What it may do.
    pub role: AdminRole,
}

/// The role of an Admin API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Every method.
    Admin,
    /// GET only.
    Viewer,
}

/// `deployment.etcd`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EtcdSection {
    /// Endpoints, such as `http://127.0.0.1:2379` (`https://` for TLS).
    pub host: Vec<String>,
    /// Key prefix shared by the nodes of one cluster.
    pub prefix: String,
    /// Timeout of each etcd request (seconds or duration text).
    #[serde(deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// User name for etcd authentication.
    pub user: Option<String>,
    /// Password for etcd authentication.
    pub password: Option<String>,
    /// TLS to etcd.
    pub tls: Option<EtcdTls>,
}

impl Default for EtcdSection {
    fn default() -> Self {
        Self {
            host: vec!["http://127.0.0.1:2379".to_owned()],
            prefix: "/apisix".to_owned(),
            timeout: Duration::from_secs(30),
            user: None,
            password: None,
            tls: None,
        }
    }
}

/// `deployment.etcd.tls`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdTls {
    /// Client certificate (PEM file) for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM file).
    pub key: Option<PathBuf>,
    /// CA bundle (PEM file) to verify etcd with, beside the system roots.
    pub ca: Option<PathBuf>,
    /// Verify etcd's certificate (default true).
    pub verify: bool,
    /// Server name to verify, when not the endpoint's host.
    pub sni: Option<String>,
}

impl Default for EtcdTls {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            ca: None,
            verify: true,
            sni: None,
        }
    }
}

/// `deployment.embedded`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedSection {
    /// Directory of the store (relative paths are relative to the directory of `config.yaml`).
    pub data_dir: PathBuf,
}

impl Default for EmbeddedSection {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
        }
    }
}
