//! The data model: APISIX's objects (routes, services, upstreams, consumers, credentials,
//! consumer groups, SSL certificates, global rules, plugin configs) with APISIX's field names.
//!
//! Each object is a serde struct that rejects unknown fields (APISIX's schemas are
//! `additionalProperties: false`), plus a `validate` method for the rules a type cannot express.
//! Validation reports every problem with the path of the field (`routes[3].upstream.nodes`).
//! Defaults are not written into the objects: they are applied when the snapshot is built, as
//! APISIX (≥ 3.14) applies them only in memory.
//!
//! The structs also derive [`schemars::JsonSchema`], so the JSON Schema served by the Admin API
//! ([`Resource::schema`]) is generated from the same types that deserialization uses.
//! [`Resource`] ties each Admin API resource to its type: [`Resource::check`] is the whole
//! write-time check (types, then rules).

mod catalog;
pub mod checks;
mod consumer;
mod consumer_group;
pub mod expr;
mod global_rule;
mod hash_on;
pub mod jsonschema;
mod plugin_config;
mod resource;
mod route;
mod schema_def;
mod service;
mod ssl;
pub mod template;
mod upstream;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize};

pub use catalog::{NoPlugins, PluginCatalog};
pub use checks::{
    parse_header, ActiveCheck, ActiveHealthy, ActiveUnhealthy, Checks, PassiveCheck,
    PassiveHealthy, PassiveUnhealthy, ProbeKind,
};
pub use consumer::{is_valid_username, Consumer, Credential};
pub use consumer_group::ConsumerGroup;
pub use global_rule::GlobalRule;
pub use hash_on::HashOn;
pub use plugin_config::PluginConfig;
pub use resource::{schema_of, Resource};
pub use route::{parse_net, Route};
pub use schema_def::ip_def;
pub use service::Service;
pub use ssl::{certified_key, Ssl, SslClient, SslProtocol, SslType};
pub use upstream::{HostPort, KeepalivePool, NodeSpec, Nodes, RetryOn, Upstream, UpstreamTls};

/// `true`: the default of a boolean field that is on unless turned off
/// (`#[serde(default = "model::yes")]`).
pub fn yes() -> bool {
    true
}

/// An object id: 1–64 characters of `[a-zA-Z0-9-_.]`, or a positive integer (kept as its decimal text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Int(n)) if n >= 1 => Ok(Id(n.to_string())),
            Ok(Raw::Text(s)) if is_valid_id(&s) => Ok(Id(s)),
            Ok(Raw::Int(n)) => Err(serde::de::Error::custom(format!(
                "invalid id {n}: an integer id must be at least 1"
            ))),
            Ok(Raw::Text(s)) => Err(serde::de::Error::custom(format!(
                "invalid id `{s}`: expected 1-64 characters of [a-zA-Z0-9-_.], not `.` or `..`"
            ))),
            Err(_) => Err(serde::de::Error::custom(
                "invalid id: expected a string or an integer",
            )),
        }
    }
}

impl JsonSchema for Id {
    fn schema_name() -> Cow<'static, str> {
        "Id".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::Id").into()
    }

    /// APISIX's `id_schema`; mirrors the `Deserialize` impl above.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Object id: 1-64 characters of [a-zA-Z0-9-_.] other than `.` and `..`, or an integer of at least 1",
            "oneOf": [
                {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-zA-Z0-9-_.]+$", "not": {"enum": [".", ".."]}},
                {"type": "integer", "minimum": 1}
            ]
        })
    }
}

/// Whether `s` is a valid string id: APISIX's `id_schema` (1-64 characters of
/// `[a-zA-Z0-9-_.]`), except `.` and `..`, which APISIX accepts but which name a directory, not an
/// object, wherever a key is read as a path.
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether an id as written in a JSON body is valid: a valid string id ([`is_valid_id`]) or an
/// integer of at least 1 (so `-1`, `1.5`, `true` are not).
pub fn is_valid_id_value(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => is_valid_id(s),
        serde_json::Value::Number(n) => n.as_u64().is_some_and(|n| n >= 1),
        _ => false,
    }
}

/// Labels: string keys to string values (1-256 characters, no whitespace).
pub type Labels = BTreeMap<String, String>;

/// Connect / send / read timeouts in seconds (all three required, each > 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    /// Seconds to establish the connection.
    pub connect: f64,
    /// Seconds allowed between two writes of the request.
    pub send: f64,
    /// Seconds allowed between two reads of the response.
    pub read: f64,
}

/// Collects validation problems under a path prefix.
pub struct Checker<'a> {
    base: String,
    errors: &'a mut Vec<ConfigError>,
    plugins: &'a dyn PluginCatalog,
}

impl<'a> Checker<'a> {
    /// A checker whose paths start with `base` (e.g. `routes[3]`); plugin configs are checked
    /// against `plugins`.
    pub fn new(
        base: impl Into<String>,
        errors: &'a mut Vec<ConfigError>,
        plugins: &'a dyn PluginCatalog,
    ) -> Self {
        Self {
            base: base.into(),
            errors,
            plugins,
        }
    }

    /// Records a problem with field `field` (relative to the base; may be empty).
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        let path = match (self.base.is_empty(), field.is_empty()) {
            (_, true) => self.base.clone(),
            (true, false) => field.to_owned(),
            (false, false) => format!("{}.{field}", self.base),
        };
        self.errors.push(ConfigError {
            path,
            message: message.into(),
        });
    }

    /// A checker for a nested object.
    pub fn nested(&mut self, field: &str) -> Checker<'_> {
        let base = if self.base.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.base)
        };
        Checker {
            base,
            errors: self.errors,
            plugins: self.plugins,
        }
    }

    /// Checks the metadata fields shared by most objects.
    pub fn metadata(&mut self, name: Option<&str>, desc: Option<&str>, labels: Option<&Labels>) {
        if let Some(n) = name {
            if n.is_empty() || n.chars().count() > 256 {
                self.error("name", "must be 1-256 characters");
            }
        }
        if desc.is_some_and(|d| d.chars().count() > 256) {
            self.error("desc", "must be at most 256 characters");
        }
        for (k, v) in labels.into_iter().flatten() {
            if v.is_empty() || v.chars().count() > 256 || v.chars().any(char::is_whitespace) {
                self.error(
                    &format!("labels.{k}"),
                    "must be 1-256 characters without whitespace",
                );
            }
        }
    }

    /// Checks a timeout object.
    pub fn timeout(&mut self, t: Option<&Timeout>) {
        let Some(t) = t else { return };
        for (name, v) in [("connect", t.connect), ("send", t.send), ("read", t.read)] {
            if !(v > 0.0 && v.is_finite()) {
                self.error(
                    &format!("timeout.{name}"),
                    "must be a number greater than 0",
                );
            }
        }
    }

    /// Checks a `plugins` map: every plugin must be built in and its config valid (a disabled
    /// one is accepted, as APISIX does).
    pub fn plugins(&mut self, plugins: Option<&serde_json::Map<String, serde_json::Value>>) {
        for (name, conf) in plugins.into_iter().flatten() {
            if let Err(message) = self.plugins.check(name, conf) {
                self.error(&format!("plugins.{name}"), message);
            }
        }
    }

    /// Checks the `plugins` of a consumer (`credential: false`) or credential: authentication
    /// plugins with their consumer schema, others (consumers only) with their route schema.
    pub fn consumer_plugins(
        &mut self,
        plugins: Option<&serde_json::Map<String, serde_json::Value>>,
        credential: bool,
    ) {
        for (name, conf) in plugins.into_iter().flatten() {
            let field = format!("plugins.{name}");
            match self.plugins.check_consumer(name, conf) {
                Some(Ok(_)) => {}
                Some(Err(why)) => self.error(
                    &field,
                    format!("failed to check the configuration of plugin {name} err: {why}"),
                ),
                None if credential && self.plugins.has(name) => self.error(
                    &field,
                    "only supports auth type plugins in consumer credential",
                ),
                None => {
                    if let Err(message) = self.plugins.check(name, conf) {
                        self.error(&field, message);
                    }
                }
            }
        }
    }

    /// Checks host patterns (`host_def`: a leading `*` wildcard, ports and `[v6]` allowed).
    pub fn hosts(&mut self, field: &str, hosts: &[String]) {
        for (i, h) in hosts.iter().enumerate() {
            if !is_host_pattern(h) {
                let path = if hosts.len() == 1 && field == "host" {
                    field.to_owned()
                } else {
                    format!("{field}[{i}]")
                };
                self.error(&path, format!("invalid host `{h}`"));
            }
        }
    }
}

/// Whether `s` is a host pattern (`host_def`: a leading `*` wildcard, ports and `[v6]` allowed).
pub fn is_host_pattern(s: &str) -> bool {
    static HOST: LazyLock<Regex> = LazyLock::new(|| {
        // A literal pattern that is known to compile.
        #[allow(clippy::unwrap_used)]
        Regex::new(r"^\*$|^\*?[0-9a-zA-Z\-._\[\]:]+$").unwrap()
    });
    HOST.is_match(s)
}

/// One-or-many pair such as `host`/`hosts`: returns the list, or records that both were given.
pub fn one_or_many<T: Clone>(
    check: &mut Checker<'_>,
    single_name: &str,
    single: Option<&T>,
    many_name: &str,
    many: Option<&Vec<T>>,
) -> Vec<T> {
    match (single, many) {
        (Some(_), Some(_)) => {
            check.error(
                "",
                format!("only one of {single_name} or {many_name} is allowed"),
            );
            Vec::new()
        }
        (Some(one), None) => vec![one.clone()],
        (None, Some(list)) => {
            if list.is_empty() {
                check.error(many_name, "must not be empty");
            }
            list.clone()
        }
        (None, None) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id: Id = serde_json::from_str("12").expect("int id");
        assert_eq!(id.0, "12");
        let id: Id = serde_json::from_str("\"a-b_c.d\"").expect("string id");
        assert_eq!(id.0, "a-b_c.d");
        assert!(serde_json::from_str::<Id>("0").is_err());
        assert!(serde_json::from_str::<Id>("\"a b\"").is_err());
        assert!(serde_json::from_str::<Id>(&format!("\"{}\"", "x".repeat(65))).is_err());
        assert!(serde_json::from_str::<Id>("true").is_err());
        assert!(serde_json::from_str::<Id>("-1").is_err());
        assert!(serde_json::from_str::<Id>("1.5").is_err());
        assert!(serde_json::from_str::<Id>("\".\"").is_err());
        assert!(serde_json::from_str::<Id>("\"..\"").is_err());
        let id: Id = serde_json::from_str("\"...\"").expect("dots beyond `..` are a name");
        assert_eq!(id.0, "...");
    }

    #[test]
    fn id_values_follow_apisix_id_schema() {
        use serde_json::json;
        for valid in [
            json!(1),
            json!("1"),
            json!("a.b"),
            json!("-1"),
            json!("x".repeat(64)),
        ] {
            assert!(is_valid_id_value(&valid), "{valid}");
        }
        for invalid in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!(true),
            json!(null),
            json!(""),
            json!("."),
            json!(".."),
            json!("a/b"),
            json!("x".repeat(65)),
        ] {
            assert!(!is_valid_id_value(&invalid), "{invalid}");
        }
    }
}

/// A configuration error, with the path of the offending key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the key, such as `apisix.node_listen[1].port`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}
