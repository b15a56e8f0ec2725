//! Service: an upstream, hosts and plugins shared by several routes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Checker, Id, Labels, Upstream};

/// A service as stored (APISIX's service schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Service id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// Plugin name to plugin config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Map<String, Value>>,
    /// Inline upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
    /// Referenced upstream (wins over the inline one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_id: Option<Id>,
    /// Lua script (not supported by Ferrogate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Default for routes that do not set `enable_websocket`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_websocket: Option<bool>,
    /// Hosts inherited by routes that set none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Creation time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// Update time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
}

impl Service {
    /// Checks the rules the type cannot express.
    pub fn validate(&self, check: &mut Checker<'_>) {
        if let Some(hosts) = &self.hosts {
            if hosts.is_empty() {
                check.error("hosts", "must not be empty");
            }
            check.hosts("hosts", hosts);
        }
        if self.script.is_some() {
            check.error("script", "Lua scripts are not supported");
        }
        check.plugins(self.plugins.as_ref());
        if let Some(u) = &self.upstream {
            u.validate(&mut check.nested("upstream"));
        }
        check.metadata(
            self.name.as_deref(),
            self.desc.as_deref(),
            self.labels.as_ref(),
        );
    }
}
