//! Global rule: plugins run for every request, in addition to the route's.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Checker, Id};

/// A global rule as stored (APISIX's global rule schema). It has no name, desc or labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobalRule {
    /// Global rule id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// Plugin name to plugin config (required; may be empty).
    pub plugins: Map<String, Value>,
    /// Creation time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// Update time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
}

impl GlobalRule {
    /// Checks the rules the type cannot express.
    pub fn validate(&self, check: &mut Checker<'_>) {
        check.plugins(Some(&self.plugins));
    }
}
