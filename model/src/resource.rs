//! Resource: the Admin API's object kinds, each tied to its path segment, its wording in
//! messages, its write-time check and its JSON Schema.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    jsonschema, schema_def, Checker, Consumer, ConsumerGroup, Credential, GlobalRule, PluginConfig,
    Route, Service, Ssl, Upstream,
};
use crate::{ConfigError, PluginCatalog};

/// An object kind of the Admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `/routes`: [`Route`].
    Route,
    /// `/services`: [`Service`].
    Service,
    /// `/upstreams`: [`Upstream`].
    Upstream,
    /// `/consumers`: [`Consumer`].
    Consumer,
    /// `/consumers/{username}/credentials`: [`Credential`].
    Credential,
    /// `/consumer_groups`: [`ConsumerGroup`].
    ConsumerGroup,
    /// `/ssls`: [`Ssl`].
    Ssl,
    /// `/global_rules`: [`GlobalRule`].
    GlobalRule,
    /// `/plugin_configs`: [`PluginConfig`].
    PluginConfig,
    /// `/plugin_metadata`: a free JSON object whose `id` is the plugin name.
    PluginMetadata,
}

impl Resource {
    /// Every resource, in the order of the enum.
    pub const ALL: [Resource; 10] = [
        Resource::Route,
        Resource::Service,
        Resource::Upstream,
        Resource::Consumer,
        Resource::Credential,
        Resource::ConsumerGroup,
        Resource::Ssl,
        Resource::GlobalRule,
        Resource::PluginConfig,
        Resource::PluginMetadata,
    ];

    /// The resource named by an Admin API path segment (`routes`, `consumer_groups`, ...).
    pub fn from_segment(segment: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.segment() == segment)
    }

    /// The Admin API path segment (and store key segment): `routes`, `consumer_groups`, ...
    pub fn segment(self) -> &'static str {
        match self {
            Resource::Route => "routes",
            Resource::Service => "services",
            Resource::Upstream => "upstreams",
            Resource::Consumer => "consumers",
            Resource::Credential => "credentials",
            Resource::ConsumerGroup => "consumer_groups",
            Resource::Ssl => "ssls",
            Resource::GlobalRule => "global_rules",
            Resource::PluginConfig => "plugin_configs",
            Resource::PluginMetadata => "plugin_metadata",
        }
    }

    /// APISIX's wording in messages (`missing consumer group id`, `not supported ... for ssl`).
    pub fn noun(self) -> &'static str {
        match self {
            Resource::Route => "route",
            Resource::Service => "service",
            Resource::Upstream => "upstream",
            Resource::Consumer => "consumer",
            Resource::Credential => "credential",
            Resource::ConsumerGroup => "consumer group",
            Resource::Ssl => "ssl",
            Resource::GlobalRule => "global rule",
            Resource::PluginConfig => "plugin config",
            Resource::PluginMetadata => "plugin metadata",
        }
    }

    /// The name under `GET /apisix/admin/schema/<name>` (`route`, `consumer_group`, ...).
    pub fn schema_name(self) -> &'static str {
        match self {
            Resource::Route => "route",
            Resource::Service => "service",
            Resource::Upstream => "upstream",
            Resource::Consumer => "consumer",
            Resource::Credential => "credential",
            Resource::ConsumerGroup => "consumer_group",
            Resource::Ssl => "ssl",
            Resource::GlobalRule => "global_rule",
            Resource::PluginConfig => "plugin_config",
            Resource::PluginMetadata => "plugin_metadata",
        }
    }

    /// Checks an object before it is written: its shape and types (unknown fields, wrong types,
    /// missing required fields), then the rules of its `validate`. Server-managed fields
    /// (`create_time`, `update_time`) are accepted. Paths are relative to the object (`""` for
    /// the object itself, `upstream.nodes`, `plugins.key-auth`).
    ///
    /// For plugin metadata the Admin API is expected to have set `id` to the plugin name.
    ///
    /// # Errors
    /// Every problem found. A shape or type error stops the check, so it comes alone.
    pub fn check(self, value: &Value, plugins: &dyn PluginCatalog) -> Result<(), Vec<ConfigError>> {
        match self {
            Resource::Route => check_as::<Route>(value, plugins),
            Resource::Service => check_as::<Service>(value, plugins),
            Resource::Upstream => check_as::<Upstream>(value, plugins),
            Resource::Consumer => check_as::<Consumer>(value, plugins),
            Resource::Credential => check_as::<Credential>(value, plugins),
            Resource::ConsumerGroup => check_as::<ConsumerGroup>(value, plugins),
            Resource::Ssl => check_as::<Ssl>(value, plugins),
            Resource::GlobalRule => check_as::<GlobalRule>(value, plugins),
            Resource::PluginConfig => check_as::<PluginConfig>(value, plugins),
            Resource::PluginMetadata => check_plugin_metadata(value, plugins),
        }
    }

    /// APISIX's schema of the object (`apisix/schema_def.lua`); plugin metadata has none of
    /// its own (each plugin's metadata schema applies).
    pub fn apisix_schema(self) -> Option<&'static Value> {
        Some(match self {
            Resource::Route => &schema_def::ROUTE,
            Resource::Service => &schema_def::SERVICE,
            Resource::Upstream => &schema_def::UPSTREAM,
            Resource::Consumer => &schema_def::CONSUMER,
            Resource::Credential => &schema_def::CREDENTIAL,
            Resource::ConsumerGroup => &schema_def::CONSUMER_GROUP,
            Resource::Ssl => &schema_def::SSL,
            Resource::GlobalRule => &schema_def::GLOBAL_RULE,
            Resource::PluginConfig => &schema_def::PLUGIN_CONFIG,
            Resource::PluginMetadata => return None,
        })
    }

    /// APISIX's own checks of a write, in its order and with its `error_msg`: the conflicting
    /// pairs of a route, the schema (`invalid configuration: property "uri" validation failed:
    /// ...`), the upstream rules (`missing key`), then the plugins (`failed to check the
    /// configuration of plugin limit-count err: ...`; for consumers and credentials under
    /// `invalid plugins configuration: `). [`Resource::check`] runs after it for the rules
    /// this gateway adds.
    ///
    /// # Errors
    /// APISIX's message for the first failure.
    pub fn check_as_apisix(self, value: &Value, plugins: &dyn PluginCatalog) -> Result<(), String> {
        if self == Resource::Route {
            for (one, many) in [("host", "hosts"), ("remote_addr", "remote_addrs")] {
                if value.get(one).is_some() && value.get(many).is_some() {
                    return Err(format!("only one of {one} or {many} is allowed"));
                }
            }
        }
        if self == Resource::Upstream {
            return check_upstream(value);
        }
        if self == Resource::PluginMetadata {
            return match value.get("id").and_then(Value::as_str) {
                Some(name) => plugins
                    .check_metadata(name, value)
                    .map_err(|e| format!("invalid configuration: {e}")),
                None => Ok(()),
            };
        }
        let Some(schema) = self.apisix_schema() else {
            return Ok(());
        };
        let value = jsonschema::with_defaults(schema, value)
            .map_err(|e| format!("invalid configuration: {e}"))?;
        if let Some(upstream) = value.get("upstream") {
            check_upstream(upstream)?;
        }
        if self == Resource::Ssl {
            return super::ssl::check_as_apisix(&value);
        }
        let confs = value.get("plugins").and_then(Value::as_object);
        match self {
            Resource::Consumer | Resource::Credential => {
                for (name, conf) in confs.into_iter().flatten() {
                    consumer_plugin(name, conf, plugins)
                        .map_err(|e| format!("invalid plugins configuration: {e}"))?;
                }
                let only_auth = confs
                    .into_iter()
                    .flatten()
                    .all(|(name, conf)| plugins.check_consumer(name, conf).is_some());
                if self == Resource::Credential && !only_auth {
                    return Err("only supports auth type plugins in consumer credential".to_owned());
                }
                Ok(())
            }
            _ => {
                for (name, conf) in confs.into_iter().flatten() {
                    plugins.check(name, conf)?;
                }
                match value.get("vars") {
                    Some(vars) if self == Resource::Route => crate::expr::Expr::compile(vars)
                        .map(drop)
                        .map_err(|e| format!("failed to validate the 'vars' expression: {e}")),
                    _ => Ok(()),
                }
            }
        }
    }

    /// The JSON Schema (draft 7) of the object, generated from its model type. Object types
    /// that reject unknown fields have `"additionalProperties": false`. Rules that a schema
    /// cannot say (such as "exactly one of `sni` or `snis`") are only in [`Resource::check`].
    pub fn schema(self) -> Value {
        match self {
            Resource::Route => schema_of::<Route>(),
            Resource::Service => schema_of::<Service>(),
            Resource::Upstream => schema_of::<Upstream>(),
            Resource::Consumer => schema_of::<Consumer>(),
            Resource::Credential => schema_of::<Credential>(),
            Resource::ConsumerGroup => schema_of::<ConsumerGroup>(),
            Resource::Ssl => schema_of::<Ssl>(),
            Resource::GlobalRule => schema_of::<GlobalRule>(),
            Resource::PluginConfig => schema_of::<PluginConfig>(),
            Resource::PluginMetadata => json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "title": "PluginMetadata",
                "description": "Plugin metadata: the fields are defined by the plugin; `id` is the plugin name.",
                "type": "object",
                "properties": {
                    "id": {"description": "Plugin name.", "type": "string", "minLength": 1}
                }
            }),
        }
    }
}

/// A model type with its rule check, so that [`Resource`] can treat them alike.
trait Model: DeserializeOwned + JsonSchema {
    fn validate(&self, check: &mut Checker<'_>);
}

macro_rules! model {
    ($($t:ty),*) => {
        $(impl Model for $t {
            fn validate(&self, check: &mut Checker<'_>) {
                <$t>::validate(self, check)
            }
        })*
    };
}

model!(
    Route,
    Service,
    Upstream,
    Consumer,
    Credential,
    ConsumerGroup,
    Ssl,
    GlobalRule,
    PluginConfig
);

fn check_as<T: Model>(value: &Value, plugins: &dyn PluginCatalog) -> Result<(), Vec<ConfigError>> {
    let item: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        vec![ConfigError {
            path: if path == "." { String::new() } else { path },
            message: e.inner().to_string(),
        }]
    })?;
    let mut errors = Vec::new();
    item.validate(&mut Checker::new("", &mut errors, plugins));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A consumer's (or credential's) plugin: an authentication plugin with its consumer schema,
/// another with its route schema (APISIX's `check_schema(..., TYPE_CONSUMER)`).
fn consumer_plugin(name: &str, conf: &Value, plugins: &dyn PluginCatalog) -> Result<(), String> {
    if !conf.is_object() {
        return Err(format!("invalid plugin conf {conf} for plugin [{name}]"));
    }
    match plugins.check_consumer(name, conf) {
        Some(Ok(_)) => Ok(()),
        Some(Err(why)) => Err(format!(
            "failed to check the configuration of plugin {name} err: {why}"
        )),
        None => plugins.check(name, conf),
    }
}

/// APISIX's `check_upstream_conf`: the schema, node ports, `pass_host: rewrite`, and the key of
/// a `chash` balancer.
fn check_upstream(upstream: &Value) -> Result<(), String> {
    let invalid = |e: String| format!("invalid configuration: {e}");
    for node in upstream
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let host = node.get("host").and_then(Value::as_str).unwrap_or_default();
        if !host.starts_with('[') && host.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(invalid(
                "IPv6 address must be enclosed with '[' and ']'".to_owned(),
            ));
        }
    }
    let upstream = jsonschema::with_defaults(&schema_def::UPSTREAM, upstream).map_err(invalid)?;
    for address in upstream
        .get("nodes")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|nodes| nodes.keys())
    {
        if let Some(port) = address_port(address).filter(|p| !(1..=65535).contains(p)) {
            return Err(format!("invalid port {port}"));
        }
    }
    let text = |field: &str| upstream.get(field).and_then(Value::as_str);
    if text("pass_host") == Some("rewrite") && text("upstream_host").unwrap_or_default().is_empty()
    {
        return Err("`upstream_host` can't be empty when `pass_host` is `rewrite`".to_owned());
    }
    if text("type") != Some("chash") {
        return Ok(());
    }
    let hash_on = text("hash_on").unwrap_or("vars");
    let Some(key) = upstream.get("key") else {
        return if hash_on == "consumer" {
            Ok(())
        } else {
            Err("missing key".to_owned())
        };
    };
    match schema_def::chash_key(hash_on) {
        Some(schema) => jsonschema::check(&schema, key).map_err(invalid),
        None => Ok(()),
    }
}

/// The port of a node address (`host:port`, `[v6]:port`), as APISIX's `parse_addr` reads it.
fn address_port(address: &str) -> Option<i64> {
    let port = match address.strip_prefix('[') {
        Some(rest) => rest.split_once("]:")?.1,
        None => {
            let (host, port) = address.rsplit_once(':')?;
            if host.contains(':') {
                // A bare IPv6 address has no port.
                return None;
            }
            port
        }
    };
    port.parse().ok()
}

/// The draft-07 JSON schema of a type (model objects, plugin configs).
pub fn schema_of<T: JsonSchema>() -> Value {
    SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// Plugin metadata is whatever the plugin's metadata schema allows; no built-in plugin has one
/// yet, so any JSON object is accepted for a built-in plugin, and any other name is `invalid
/// plugin name` (APISIX's wording).
fn check_plugin_metadata(
    value: &Value,
    plugins: &dyn PluginCatalog,
) -> Result<(), Vec<ConfigError>> {
    let error = |path: &str, message: String| {
        Err(vec![ConfigError {
            path: path.to_owned(),
            message,
        }])
    };
    let object = match Map::<String, Value>::deserialize(value) {
        Ok(object) => object,
        Err(e) => return error("", e.to_string()),
    };
    match object.get("id") {
        None => Ok(()),
        Some(Value::String(name)) if name.is_empty() => {
            error("id", "missing plugin name".to_owned())
        }
        Some(Value::String(name)) if plugins.has(name) => Ok(()),
        Some(Value::String(_)) => error("id", "invalid plugin name".to_owned()),
        Some(other) => error(
            "id",
            format!("invalid type: {other}, expected a plugin name (string)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A catalog of a few plugins whose checks answer as the built-in ones do.
    struct Known;

    impl PluginCatalog for Known {
        fn has(&self, name: &str) -> bool {
            matches!(
                name,
                "key-auth" | "basic-auth" | "prometheus" | "http-logger"
            )
        }

        fn check(&self, name: &str, _conf: &Value) -> Result<(), String> {
            if self.has(name) {
                Ok(())
            } else {
                Err(format!("unknown plugin [{name}]"))
            }
        }

        fn check_consumer(&self, name: &str, conf: &Value) -> Option<Result<String, String>> {
            let field = match name {
                "key-auth" => "key",
                "basic-auth" => "password",
                _ => return None,
            };
            Some(
                conf.get(field)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("property \"{field}\" is required")),
            )
        }

        fn check_metadata(&self, name: &str, metadata: &Value) -> Result<(), String> {
            match metadata.get("disabled_labels") {
                Some(labels) if name == "prometheus" && !labels.is_object() => {
                    Err("property \"disabled_labels\" validation failed: wrong type".to_owned())
                }
                _ => Ok(()),
            }
        }
    }

    /// `path: message` of every problem, or nothing when the object passes.
    fn problems(resource: Resource, value: Value) -> Vec<String> {
        match resource.check(&value, &Known) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// The paths of every problem.
    fn paths(resource: Resource, value: Value) -> Vec<String> {
        match resource.check(&value, &Known) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.path).collect(),
        }
    }

    /// Adds (or replaces) `key` in an object.
    fn with(mut value: Value, key: &str, field: Value) -> Value {
        value[key] = field;
        value
    }

    /// Removes `key` from an object.
    fn without(mut value: Value, key: &str) -> Value {
        value.as_object_mut().expect("object").remove(key);
        value
    }

    fn cert_and_key() -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec!["test.com".to_owned()]).expect("cert");
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    #[test]
    fn segments_round_trip() {
        for r in Resource::ALL {
            assert_eq!(Resource::from_segment(r.segment()), Some(r));
        }
        assert_eq!(
            Resource::from_segment("consumer_groups"),
            Some(Resource::ConsumerGroup)
        );
        assert_eq!(Resource::from_segment("route"), None);
        assert_eq!(Resource::from_segment("stream_routes"), None);
        assert_eq!(Resource::GlobalRule.noun(), "global rule");
        assert_eq!(Resource::PluginConfig.schema_name(), "plugin_config");
    }

    #[test]
    fn route() {
        let r = Resource::Route;
        // From APISIX's Admin API docs.
        let valid = json!({
            "uri": "/index.html", "hosts": ["foo.com", "*.bar.com"],
            "remote_addrs": ["127.0.0.0/8"], "methods": ["PUT", "GET"], "enable_websocket": true,
            "upstream": {"type": "roundrobin", "nodes": {"127.0.0.1:1980": 1}},
            "create_time": 1_700_000_000, "update_time": 1_700_000_001
        });
        assert_eq!(problems(r, valid.clone()), Vec::<String>::new());
        let p = problems(r, with(valid.clone(), "upstreams", json!({})));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("upstreams: unknown field `upstreams`, expected one of `id`,"),
            "{p:?}"
        );
        assert_eq!(
            problems(r, with(valid.clone(), "priority", json!("high"))),
            vec!["priority: invalid type: string \"high\", expected i64"]
        );
        assert_eq!(
            paths(
                r,
                with(valid.clone(), "upstream", json!({"nodes": {"a": "x"}}))
            ),
            vec!["upstream.nodes"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "uris", json!(["/a"]))),
            vec!["only one of uri or uris is allowed"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "host", json!("a.com"))),
            vec!["only one of host or hosts is allowed"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "remote_addr", json!("10.0.0.1"))),
            vec!["only one of remote_addr or remote_addrs is allowed"]
        );
        assert_eq!(
            problems(
                r,
                with(valid, "plugins", json!({"no-such-plugin": {"count": 2}}))
            ),
            vec!["plugins.no-such-plugin: unknown plugin [no-such-plugin]"]
        );
    }

    #[test]
    fn service() {
        let r = Resource::Service;
        let valid = json!({
            "plugins": {}, "hosts": ["foo.com"], "enable_websocket": true,
            "upstream": {"type": "roundrobin", "nodes": {"127.0.0.1:1980": 1}}
        });
        assert_eq!(problems(r, valid.clone()), Vec::<String>::new());
        assert_eq!(
            paths(r, with(valid.clone(), "uri", json!("/a"))),
            vec!["uri"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "enable_websocket", json!("yes"))),
            vec!["enable_websocket: invalid type: string \"yes\", expected a boolean"]
        );
        assert_eq!(
            problems(r, with(valid, "hosts", json!(["a b"]))),
            vec!["hosts[0]: invalid host `a b`"]
        );
    }

    #[test]
    fn upstream() {
        let r = Resource::Upstream;
        let valid = json!({
            "type": "chash", "key": "remote_addr",
            "nodes": {"127.0.0.1:80": 1, "foo.com:80": 2}, "create_time": 1
        });
        assert_eq!(problems(r, valid.clone()), Vec::<String>::new());
        assert_eq!(
            paths(r, with(valid.clone(), "node", json!({}))),
            vec!["node"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "retries", json!(-1))),
            vec!["retries: invalid value: integer `-1`, expected u32"]
        );
        assert_eq!(
            problems(r, with(valid, "key", json!("http_x"))),
            vec!["key: invalid key `http_x` for hash_on vars"]
        );
    }

    #[test]
    fn consumer() {
        let r = Resource::Consumer;
        let valid = json!({
            "username": "jack_rose-2", "group_id": "company_a", "plugins": {},
            "desc": "a consumer", "labels": {"custom_id": "1"},
            "create_time": 1_700_000_000, "update_time": 1_700_000_000
        });
        assert_eq!(problems(r, valid.clone()), Vec::<String>::new());
        assert_eq!(
            problems(r, json!({"username": "jack"})),
            Vec::<String>::new()
        );
        assert_eq!(
            paths(r, with(valid.clone(), "id", json!("jack"))),
            vec!["id"]
        );
        assert_eq!(
            paths(r, with(valid.clone(), "name", json!("jack"))),
            vec!["name"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "group_id", json!(true))),
            vec!["group_id: invalid id: expected a string or an integer"]
        );
        assert_eq!(
            problems(r, without(valid.clone(), "username")),
            vec!["missing field `username`"]
        );
        for bad in ["jack rose", "", "jack.rose", &"j".repeat(257)] {
            assert_eq!(
                problems(r, with(valid.clone(), "username", json!(bad))),
                vec!["username: must be 1-256 characters of [a-zA-Z0-9_-]"],
                "{bad}"
            );
        }
        assert_eq!(
            problems(r, with(valid.clone(), "username", json!("j".repeat(256)))),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(
                r,
                with(
                    valid.clone(),
                    "plugins",
                    json!({"key-auth": {"key": "auth-one"}})
                )
            ),
            Vec::<String>::new(),
            "an auth plugin with its consumer config"
        );
        assert_eq!(
            problems(r, with(valid.clone(), "plugins", json!({"key-auth": {}}))),
            vec!["plugins.key-auth: failed to check the configuration of plugin key-auth err: property \"key\" is required"]
        );
        assert_eq!(
            problems(r, with(valid, "desc", json!("d".repeat(257)))),
            vec!["desc: must be at most 256 characters"]
        );
    }

    #[test]
    fn credential() {
        let r = Resource::Credential;
        let valid = json!({
            "id": "cred-1", "name": "primary key", "desc": "d", "labels": {"env": "prod"},
            "plugins": {}, "create_time": 1, "update_time": 2
        });
        assert_eq!(problems(r, valid.clone()), Vec::<String>::new());
        assert_eq!(problems(r, json!({})), Vec::<String>::new());
        assert_eq!(
            paths(r, with(valid.clone(), "username", json!("jack"))),
            vec!["username"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "plugins", json!("key-auth"))),
            vec!["plugins: invalid type: string \"key-auth\", expected a map"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "id", json!(0))),
            vec!["id: invalid id 0: an integer id must be at least 1"]
        );
        assert_eq!(
            problems(
                r,
                with(
                    valid.clone(),
                    "plugins",
                    json!({"key-auth": {}, "basic-auth": {}})
                )
            ),
            vec![
                "plugins: must contain at most 1 plugin",
                "plugins.basic-auth: failed to check the configuration of plugin basic-auth err: property \"password\" is required",
                "plugins.key-auth: failed to check the configuration of plugin key-auth err: property \"key\" is required",
            ]
        );
        assert_eq!(
            problems(r, with(valid, "name", json!(""))),
            vec!["name: must be 1-256 characters"]
        );
    }

    #[test]
    fn consumer_group() {
        let r = Resource::ConsumerGroup;
        let valid = json!({
            "id": "company_a", "name": "Company A", "desc": "d", "labels": {"tier": "gold"},
            "plugins": {}, "create_time": 1, "update_time": 2
        });
        assert_eq!(problems(r, valid.clone()), Vec::<String>::new());
        assert_eq!(
            problems(r, without(valid.clone(), "plugins")),
            vec!["missing field `plugins`"]
        );
        assert_eq!(
            paths(r, with(valid.clone(), "group_id", json!("x"))),
            vec!["group_id"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "plugins", json!([]))),
            vec!["plugins: invalid type: sequence, expected a map"]
        );
        assert_eq!(
            problems(
                r,
                with(
                    valid.clone(),
                    "plugins",
                    json!({"no-such-plugin": {"count": 200}})
                )
            ),
            vec!["plugins.no-such-plugin: unknown plugin [no-such-plugin]"]
        );
        assert_eq!(
            problems(r, with(valid, "labels", json!({"tier": "gold class"}))),
            vec!["labels.tier: must be 1-256 characters without whitespace"]
        );
    }

    #[test]
    fn ssl() {
        let r = Resource::Ssl;
        let (cert, key) = cert_and_key();
        let (cert2, key2) = cert_and_key();
        let valid = json!({
            "id": "1", "cert": cert, "key": key, "snis": ["test.com", "*.test.com"],
            "certs": [cert2], "keys": [key2], "status": 1,
            "ssl_protocols": ["TLSv1.2", "TLSv1.3"],
            "client": {"ca": cert, "depth": 2, "skip_mtls_uri_regex": ["^/health$"]},
            "desc": "d", "labels": {"env": "prod"}, "create_time": 1, "update_time": 2
        });
        assert_eq!(problems(r, valid.clone()), Vec::<String>::new());
        let single = json!({"type": "server", "sni": "test.com", "cert": cert, "key": key});
        assert_eq!(problems(r, single), Vec::<String>::new());
        let client = json!({"type": "client", "cert": cert, "key": key});
        assert_eq!(problems(r, client.clone()), Vec::<String>::new());

        // Shape and types.
        assert_eq!(
            paths(r, with(valid.clone(), "name", json!("x"))),
            vec!["name"]
        );
        assert_eq!(
            paths(r, with(valid.clone(), "exptime", json!(1))),
            vec!["exptime"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "type", json!("both"))),
            vec!["type: unknown variant `both`, expected `server` or `client`"]
        );
        assert_eq!(
            problems(r, without(valid.clone(), "cert")),
            vec!["missing field `cert`"]
        );
        assert_eq!(
            problems(r, without(client.clone(), "key")),
            vec!["missing field `key`"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "snis", json!("test.com"))),
            vec!["snis: invalid type: string \"test.com\", expected a sequence"]
        );
        assert_eq!(
            paths(
                r,
                with(
                    valid.clone(),
                    "ssl_protocols",
                    json!(["TLSv1.2", "TLSv1.0"])
                )
            ),
            vec!["ssl_protocols[1]"]
        );
        assert_eq!(
            paths(r, with(valid.clone(), "client", json!({"depth": 1}))),
            vec!["client"]
        );
        assert_eq!(
            problems(
                r,
                with(valid.clone(), "client", json!({"ca": cert, "depth": -1}))
            ),
            vec!["client.depth: invalid value: integer `-1`, expected u32"]
        );

        // Every key must be its certificate's.
        assert_eq!(
            problems(r, with(valid.clone(), "key", json!(key2))),
            vec!["key: failed to handle cert-key pair[0]: the key does not match the certificate"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "keys", json!([key]))),
            vec!["keys[0]: failed to handle cert-key pair[1]: the key does not match the certificate"]
        );

        // sni / snis.
        assert_eq!(
            problems(r, with(valid.clone(), "sni", json!("test.com"))),
            vec!["only one of sni or snis is allowed"]
        );
        assert_eq!(
            problems(r, without(valid.clone(), "snis")),
            vec!["sni: one of sni or snis is required for type server"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "snis", json!([]))),
            vec!["snis: must not be empty"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "snis", json!(["a.com", "b com"]))),
            vec!["snis[1]: invalid host `b com`"]
        );
        assert_eq!(
            problems(r, with(without(valid.clone(), "snis"), "sni", json!("*"))),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(r, with(without(valid.clone(), "snis"), "sni", json!("a/b"))),
            vec!["sni: invalid host `a/b`"]
        );
        assert_eq!(
            problems(r, with(client, "sni", json!("test.com"))),
            Vec::<String>::new()
        );

        // PEM.
        let not_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let p = problems(r, with(valid.clone(), "cert", json!(not_base64)));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("cert: invalid PEM certificate: "), "{p:?}");
        assert_eq!(
            problems(r, with(valid.clone(), "cert", json!(key))),
            vec!["cert: expected a PEM certificate (-----BEGIN CERTIFICATE-----)"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "key", json!(cert))),
            vec!["key: expected a PEM private key (-----BEGIN PRIVATE KEY-----)"]
        );
        assert_eq!(
            problems(
                r,
                with(
                    valid.clone(),
                    "key",
                    json!("-----BEGIN PRIVATE KEY-----\nAAAA\n")
                )
            ),
            vec!["key: invalid PEM private key: missing `-----END PRIVATE KEY-----`"]
        );
        assert_eq!(
            problems(
                r,
                with(valid.clone(), "key", json!("$secret://vault/ssl/key"))
            ),
            vec!["key: secret references are not supported yet"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "certs", json!(["garbage"]))),
            vec!["certs[0]: expected a PEM certificate (-----BEGIN CERTIFICATE-----)"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "keys", json!([key, "garbage"]))),
            vec![
                "keys: certs and keys must have the same number of entries",
                "keys[1]: expected a PEM private key (-----BEGIN PRIVATE KEY-----)",
            ]
        );
        assert_eq!(
            problems(r, without(valid.clone(), "keys")),
            vec!["keys: certs and keys must have the same number of entries"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "client", json!({"ca": "garbage"}))),
            vec!["client.ca: expected a PEM certificate (-----BEGIN CERTIFICATE-----)"]
        );

        // Other rules.
        let p = problems(
            r,
            with(
                valid.clone(),
                "client",
                json!({"ca": cert, "skip_mtls_uri_regex": ["^/ok$", "(["]}),
            ),
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("client.skip_mtls_uri_regex[1]: invalid regex"),
            "{p:?}"
        );
        assert_eq!(
            problems(r, with(valid, "status", json!(2))),
            vec!["status: must be 0 or 1"]
        );
    }

    #[test]
    fn global_rule() {
        let r = Resource::GlobalRule;
        let valid = json!({"id": 1, "plugins": {}, "create_time": 1, "update_time": 2});
        assert_eq!(problems(r, valid.clone()), Vec::<String>::new());
        assert_eq!(
            problems(r, json!({"id": "1"})),
            vec!["missing field `plugins`"]
        );
        for field in ["name", "desc", "labels"] {
            assert_eq!(
                paths(r, with(valid.clone(), field, json!("x"))),
                vec![field]
            );
        }
        assert_eq!(
            problems(r, with(valid.clone(), "plugins", json!(null))),
            vec!["plugins: invalid type: null, expected a map"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "plugins", json!({"prometheus": {}}))),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(r, with(valid, "plugins", json!({"no-such-plugin": {}}))),
            vec!["plugins.no-such-plugin: unknown plugin [no-such-plugin]"]
        );
    }

    #[test]
    fn plugin_config() {
        let r = Resource::PluginConfig;
        let valid = json!({
            "id": "1", "name": "n".repeat(300), "desc": "enable limit-count plugin",
            "labels": {"version": "v1"}, "plugins": {}, "create_time": 1, "update_time": 2
        });
        assert_eq!(problems(r, valid.clone()), Vec::<String>::new());
        assert_eq!(
            problems(r, with(valid.clone(), "name", json!(""))),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(r, without(valid.clone(), "plugins")),
            vec!["missing field `plugins`"]
        );
        assert_eq!(
            paths(r, with(valid.clone(), "upstream_id", json!("1"))),
            vec!["upstream_id"]
        );
        assert_eq!(
            problems(r, with(valid.clone(), "name", json!(5))),
            vec!["name: invalid type: integer `5`, expected a string"]
        );
        assert_eq!(
            problems(
                r,
                with(
                    valid.clone(),
                    "plugins",
                    json!({"no-such-plugin": {"count": 2}})
                )
            ),
            vec!["plugins.no-such-plugin: unknown plugin [no-such-plugin]"]
        );
        assert_eq!(
            problems(r, with(valid, "desc", json!("d".repeat(257)))),
            vec!["desc: must be at most 256 characters"]
        );
    }

    #[test]
    fn plugin_metadata_is_checked_by_its_plugin() {
        let r = Resource::PluginMetadata;
        let bad = json!({"id": "prometheus", "disabled_labels": []});
        assert_eq!(
            r.check_as_apisix(&bad, &Known),
            Err(
                "invalid configuration: property \"disabled_labels\" validation failed: wrong type"
                    .to_owned()
            )
        );
        let good = json!({"id": "prometheus", "disabled_labels": {}});
        assert_eq!(r.check_as_apisix(&good, &Known), Ok(()));
        assert_eq!(
            r.check_as_apisix(&bad, &crate::NoPlugins),
            Ok(()),
            "a catalog without metadata checks accepts any"
        );
    }

    #[test]
    fn plugin_metadata() {
        let r = Resource::PluginMetadata;
        assert_eq!(
            problems(r, json!({"log_format": {"host": "$host"}})),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(r, json!({"id": "http-logger", "log_format": {}})),
            Vec::<String>::new(),
            "a built-in plugin"
        );
        assert_eq!(
            problems(r, json!({"id": "no-such-plugin", "log_format": {}})),
            vec!["id: invalid plugin name"]
        );
        assert_eq!(
            problems(r, json!({"id": ""})),
            vec!["id: missing plugin name"]
        );
        assert_eq!(
            problems(r, json!({"id": 3})),
            vec!["id: invalid type: 3, expected a plugin name (string)"]
        );
        assert_eq!(
            problems(r, json!([1])),
            vec!["invalid type: sequence, expected a map"]
        );
    }

    /// The field names of a struct, read from serde's unknown-field message, which lists them.
    fn serde_fields(resource: Resource) -> BTreeSet<String> {
        let errors = resource
            .check(&json!({"no such field": 1}), &Known)
            .expect_err("unknown field");
        let message = &errors[0].message;
        let list = message
            .split_once("expected one of ")
            .map(|(_, l)| l)
            .expect("field list");
        list.split(", ")
            .map(|f| f.trim_matches('`').to_owned())
            .collect()
    }

    #[test]
    fn schemas_agree_with_the_structs() {
        for r in Resource::ALL {
            let schema = r.schema();
            assert_eq!(
                schema["$schema"], "http://json-schema.org/draft-07/schema#",
                "{r:?}"
            );
            assert_eq!(schema["type"], "object", "{r:?}");
            if r == Resource::PluginMetadata {
                // Free object: the fields belong to the plugin.
                assert!(schema.get("additionalProperties").is_none());
                continue;
            }
            assert_eq!(schema["additionalProperties"], false, "{r:?}");
            let properties: BTreeSet<String> = schema["properties"]
                .as_object()
                .expect("properties")
                .keys()
                .cloned()
                .collect();
            assert_eq!(properties, serde_fields(r), "{r:?}");
            // Every struct in the definitions rejects unknown fields too.
            for (name, def) in schema["definitions"].as_object().into_iter().flatten() {
                if def.get("properties").is_some() {
                    assert_eq!(def["additionalProperties"], false, "{r:?} {name}");
                }
            }
        }
    }

    #[test]
    fn schemas_say_what_is_required() {
        let required = |r: Resource| r.schema()["required"].clone();
        assert_eq!(required(Resource::Route), Value::Null);
        assert_eq!(required(Resource::Consumer), json!(["username"]));
        assert_eq!(required(Resource::Ssl), json!(["cert", "key"]));
        for r in [
            Resource::ConsumerGroup,
            Resource::GlobalRule,
            Resource::PluginConfig,
        ] {
            assert_eq!(required(r), json!(["plugins"]), "{r:?}");
        }
    }

    #[test]
    fn schema_details() {
        let route = Resource::Route.schema();
        assert_eq!(
            route["definitions"]["Id"],
            json!({
                "description": "Object id: 1-64 characters of [a-zA-Z0-9-_.] other than `.` and `..`, or an integer of at least 1",
                "oneOf": [
                    {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-zA-Z0-9-_.]+$", "not": {"enum": [".", ".."]}},
                    {"type": "integer", "minimum": 1}
                ]
            })
        );
        assert!(route["definitions"]["Nodes"]["anyOf"].is_array(), "{route}");
        let ssl = Resource::Ssl.schema();
        assert_eq!(
            ssl["definitions"]["SslProtocol"]["oneOf"][0]["const"], "TLSv1.1",
            "{ssl}"
        );
        let consumer = Resource::Consumer.schema();
        assert_eq!(
            consumer["properties"]["username"]["pattern"],
            r"^[a-zA-Z0-9_\-]+$"
        );
        let credential = Resource::Credential.schema();
        assert_eq!(credential["properties"]["plugins"]["maxProperties"], 1);
    }
}
