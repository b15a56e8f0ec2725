//! Consumer group: plugins shared by the consumers that name it in `group_id`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Checker, Id, Labels};

/// A consumer group as stored (APISIX's consumer group schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerGroup {
    /// Consumer group id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
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

impl ConsumerGroup {
    /// Checks the rules the type cannot express.
    pub fn validate(&self, check: &mut Checker<'_>) {
        check.plugins(Some(&self.plugins));
        check.metadata(
            self.name.as_deref(),
            self.desc.as_deref(),
            self.labels.as_ref(),
        );
    }
}
