//! What validation needs to know about plugins. The model knows no plugin: the gateway's plugin
//! registry (built from config.yaml's `plugins:` list) is passed in as a [`PluginCatalog`].

use serde_json::Value;

/// The plugins a config may use, and how their configs are checked.
pub trait PluginCatalog: Send + Sync {
    /// Whether a plugin named `name` is enabled.
    fn has(&self, name: &str) -> bool;

    /// Checks one plugin config as the Admin API does (`Ok` for a valid or disabled one).
    ///
    /// # Errors
    /// APISIX's messages: `unknown plugin [name]`, or `failed to check the configuration of
    /// plugin <name> err: <why>`.
    fn check(&self, name: &str, conf: &Value) -> Result<(), String>;

    /// For an enabled authentication plugin: checks a consumer's or credential's config and
    /// returns the identity it holds (key-auth's `key`); `None` for any other name.
    fn check_consumer(&self, name: &str, conf: &Value) -> Option<Result<String, String>>;

    /// Checks a write of `plugin_metadata/<name>` against the plugin's metadata schema and
    /// rules (`Ok` for a plugin without any: APISIX then accepts any object). The default
    /// accepts every metadata.
    ///
    /// # Errors
    /// Why the metadata is refused (APISIX's schema wording, without the Admin API's
    /// `invalid configuration: `).
    fn check_metadata(&self, _name: &str, _metadata: &Value) -> Result<(), String> {
        Ok(())
    }
}

/// A catalog with no plugin: every plugin name is unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPlugins;

impl PluginCatalog for NoPlugins {
    fn has(&self, _name: &str) -> bool {
        false
    }

    fn check(&self, name: &str, _conf: &Value) -> Result<(), String> {
        Err(format!("unknown plugin [{name}]"))
    }

    fn check_consumer(&self, _name: &str, _conf: &Value) -> Option<Result<String, String>> {
        None
    }
}
