//! Plugin config: a reusable set of plugins that routes reference with `plugin_config_id`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Checker, Id, Labels};

/// A plugin config as stored (APISIX's plugin config schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Plugin config id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// Human-readable name (any string: APISIX puts no limit on it here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub desc: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// Plugin name to plugin config (required; may be empty).
    pub plugins: Map<String, Value>,
    /// Creation time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// Update time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
}

impl PluginConfig {
    /// Checks the rules the type cannot express.
    pub fn validate(&self, check: &mut Checker<'_>) {
        check.plugins(Some(&self.plugins));
        check.metadata(None, self.desc.as_deref(), self.labels.as_ref());
    }
}
