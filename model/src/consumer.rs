//! Consumer: a client of the gateway, identified by its username, and its credentials.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Checker, Id, Labels};

/// A consumer as stored (APISIX's consumer schema). The username is its id; there is no `name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Unique name: 1-256 characters of `[a-zA-Z0-9_-]`.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[a-zA-Z0-9_\-]+$"))]
    pub username: String,
    /// Referenced consumer group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Id>,
    /// Plugin name to plugin config (authentication plugins identify the consumer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Map<String, Value>>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub desc: Option<String>,
    /// Labels (`custom_id` is forwarded upstream as `X-Consumer-Custom-ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// Creation time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// Update time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
}

impl Consumer {
    /// Checks the rules the type cannot express.
    pub fn validate(&self, check: &mut Checker<'_>) {
        if !is_valid_username(&self.username) {
            check.error("username", "must be 1-256 characters of [a-zA-Z0-9_-]");
        }
        check.consumer_plugins(self.plugins.as_ref(), false);
        check.metadata(None, self.desc.as_deref(), self.labels.as_ref());
    }
}

/// Whether `s` is a valid consumer username: 1-256 characters of `[a-zA-Z0-9_-]`.
pub fn is_valid_username(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A credential of a consumer (APISIX's credential schema): one authentication plugin's config,
/// so that a consumer can hold several keys. Stored under `/consumers/{username}/credentials/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Credential id.
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
    /// At most one authentication plugin's config.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 1))]
    pub plugins: Option<Map<String, Value>>,
    /// Creation time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// Update time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
}

impl Credential {
    /// Checks the rules the type cannot express.
    pub fn validate(&self, check: &mut Checker<'_>) {
        if self.plugins.as_ref().is_some_and(|p| p.len() > 1) {
            check.error("plugins", "must contain at most 1 plugin");
        }
        check.consumer_plugins(self.plugins.as_ref(), true);
        check.metadata(
            self.name.as_deref(),
            self.desc.as_deref(),
            self.labels.as_ref(),
        );
    }
}
