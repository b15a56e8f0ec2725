//! The standalone declarative file: APISIX's `apisix.yaml` (or `apisix.json`) format.
//!
//! Top-level keys are arrays of resources (`routes`, `services`, `upstreams`, `global_rules`,
//! `plugin_configs`, `consumers`, `ssls`, ...). A YAML file must end with the line `#END` so a
//! half-written file is never applied. The file applies whole or not at all: any problem
//! (unreadable, no `#END`, syntax error, an invalid item, an item referencing a missing or invalid
//! one) rejects the whole file, naming every bad item by its path (`routes[3].upstream.nodes:
//! ...`), and what was loaded before stays in force. Skipping only the bad item would fail open:
//! a route whose auth plugin has a typo would vanish and its traffic fall to a catch-all route.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ConfigSet;
use crate::config::{substitute_env, ConfigError};
use model::PluginCatalog;
use model::{
    Checker, Consumer, ConsumerGroup, GlobalRule, Id, PluginConfig, Route, Service, Ssl, Upstream,
};

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML, ending with `#END`.
    Yaml,
    /// JSON (no end marker).
    Json,
}

impl Format {
    /// The format for a file name (`.json` is JSON, anything else YAML).
    pub fn of(path: &Path) -> Format {
        if path.extension().is_some_and(|e| e == "json") {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// A parsed, fully valid file.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The resources, all valid.
    pub config: ConfigSet,
    /// Keys that are accepted but not used by this version, or unknown (warned about).
    pub ignored: Vec<String>,
}

/// Why a whole file was not applied.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A YAML file without the `#END` marker on its last line.
    #[error("missing valid end flag `#END` at the end of the file; the file is not applied")]
    MissingEnd,
    /// Not valid YAML / JSON, or an unset environment variable.
    #[error("{0}")]
    Syntax(String),
    /// The top level is not a map of resource arrays.
    #[error("the top level must be a map of resource arrays")]
    NotAMap,
    /// One or more items are invalid or reference a missing or invalid item: every problem,
    /// with its path. Nothing of the file applies.
    #[error("{} invalid item(s), the file is not applied: {}", .0.len(), join(.0))]
    Invalid(Vec<ConfigError>),
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Resource keys this version accepts but does not act on yet.
const NOT_YET_USED: [&str; 5] = [
    "plugin_metadata",
    "protos",
    "stream_routes",
    "secrets",
    "plugins",
];

/// Reads and parses `path` (format from its extension).
///
/// # Errors
/// See [`FileError`].
pub fn read(path: &Path, plugins: &dyn PluginCatalog) -> Result<Loaded, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, Format::of(path), plugins)
}

/// Parses file text; plugin configs are checked against `plugins`.
///
/// # Errors
/// See [`FileError`].
pub fn parse(text: &str, format: Format, plugins: &dyn PluginCatalog) -> Result<Loaded, FileError> {
    if format == Format::Yaml && !has_end_marker(text) {
        return Err(FileError::MissingEnd);
    }
    let text = substitute_env(text).map_err(FileError::Syntax)?;
    let value: Value = match format {
        Format::Yaml => {
            serde_yaml_ng::from_str(&text).map_err(|e| FileError::Syntax(e.to_string()))?
        }
        Format::Json => {
            serde_json::from_str(&text).map_err(|e| FileError::Syntax(e.to_string()))?
        }
    };
    let top = match value {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => return Err(FileError::NotAMap),
    };
    let mut loaded = Loaded::default();
    let mut rejected = Vec::new();
    for key in top.keys() {
        if NOT_YET_USED.contains(&key.as_str()) {
            if top[key].as_array().is_some_and(|a| !a.is_empty()) {
                loaded
                    .ignored
                    .push(format!("{key}: not used by this version of ferrogate"));
            }
        } else if !matches!(
            key.as_str(),
            "routes"
                | "services"
                | "upstreams"
                | "global_rules"
                | "plugin_configs"
                | "consumers"
                | "consumer_groups"
                | "ssls"
        ) {
            loaded.ignored.push(format!("{key}: unknown key"));
        }
    }

    let ssls: Vec<Ssl> = items(
        &top,
        "ssls",
        &mut rejected,
        plugins,
        |s: &mut Ssl, id, c| {
            s.id = Some(id);
            s.validate(c);
            Ok(())
        },
    );
    let upstreams: Vec<Upstream> = items(
        &top,
        "upstreams",
        &mut rejected,
        plugins,
        |u: &mut Upstream, id, c| {
            u.id = Some(id);
            u.validate(c);
            Ok(())
        },
    );
    let upstream_ids: HashSet<&Id> = upstreams.iter().filter_map(|u| u.id.as_ref()).collect();
    let services: Vec<Service> = items(
        &top,
        "services",
        &mut rejected,
        plugins,
        |s: &mut Service, id, c| {
            s.id = Some(id);
            s.validate(c);
            check_ref(&upstream_ids, "upstream", s.upstream_id.as_ref())
        },
    );
    let service_ids: HashSet<&Id> = services.iter().filter_map(|s| s.id.as_ref()).collect();
    let plugin_configs: Vec<PluginConfig> = items(
        &top,
        "plugin_configs",
        &mut rejected,
        plugins,
        |p: &mut PluginConfig, id, c| {
            p.id = Some(id);
            p.validate(c);
            Ok(())
        },
    );
    let plugin_config_ids: HashSet<&Id> = plugin_configs
        .iter()
        .filter_map(|p| p.id.as_ref())
        .collect();
    let consumer_groups: Vec<ConsumerGroup> = items(
        &top,
        "consumer_groups",
        &mut rejected,
        plugins,
        |g: &mut ConsumerGroup, id, c| {
            g.id = Some(id);
            g.validate(c);
            Ok(())
        },
    );
    let group_ids: HashSet<&Id> = consumer_groups
        .iter()
        .filter_map(|g| g.id.as_ref())
        .collect();
    let consumers: Vec<Consumer> = items(
        &top,
        "consumers",
        &mut rejected,
        plugins,
        |u: &mut Consumer, _, c| {
            u.validate(c);
            check_ref(&group_ids, "consumer group", u.group_id.as_ref())
        },
    );
    let global_rules: Vec<GlobalRule> = items(
        &top,
        "global_rules",
        &mut rejected,
        plugins,
        |g: &mut GlobalRule, id, c| {
            g.id = Some(id);
            g.validate(c);
            Ok(())
        },
    );
    let routes: Vec<Route> = items(
        &top,
        "routes",
        &mut rejected,
        plugins,
        |r: &mut Route, id, c| {
            r.id = Some(id);
            r.validate(c);
            check_ref(&upstream_ids, "upstream", r.upstream_id.as_ref())?;
            check_ref(&service_ids, "service", r.service_id.as_ref())?;
            check_ref(
                &plugin_config_ids,
                "plugin config",
                r.plugin_config_id.as_ref(),
            )
        },
    );
    loaded.config = ConfigSet {
        routes: routes.into_iter().map(Arc::new).collect(),
        services: services.into_iter().map(Arc::new).collect(),
        upstreams: upstreams.into_iter().map(Arc::new).collect(),
        global_rules: global_rules.into_iter().map(Arc::new).collect(),
        plugin_configs: plugin_configs.into_iter().map(Arc::new).collect(),
        consumers: consumers.into_iter().map(Arc::new).collect(),
        consumer_groups: consumer_groups.into_iter().map(Arc::new).collect(),
        credentials: Vec::new(),
        ssls: ssls.into_iter().map(Arc::new).collect(),
    };
    if !rejected.is_empty() {
        return Err(FileError::Invalid(rejected));
    }
    Ok(loaded)
}

/// Whether the last 10 bytes hold `#END` followed only by whitespace (APISIX's rule).
fn has_end_marker(text: &str) -> bool {
    let trimmed = text.trim_end();
    trimmed.ends_with("#END") && text.len() - trimmed.len() + 4 <= 10
}

fn check_ref(known: &HashSet<&Id>, kind: &str, id: Option<&Id>) -> Result<(), String> {
    match id {
        Some(id) if !known.contains(id) => Err(format!(
            "failed to fetch {kind} info by {kind} id [{}]: not found or invalid",
            id.0
        )),
        _ => Ok(()),
    }
}

/// Deserializes and checks the items of one resource array. `check` sets the id, validates into
/// the checker, and returns a reference error if any. Duplicate ids reject the later item.
fn items<T: DeserializeOwned>(
    top: &Map<String, Value>,
    key: &str,
    rejected: &mut Vec<ConfigError>,
    plugins: &dyn PluginCatalog,
    mut check: impl FnMut(&mut T, Id, &mut Checker<'_>) -> Result<(), String>,
) -> Vec<T> {
    let Some(value) = top.get(key) else {
        return Vec::new();
    };
    let Some(array) = value.as_array() else {
        rejected.push(ConfigError {
            path: key.to_owned(),
            message: "must be an array".to_owned(),
        });
        return Vec::new();
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(array.len());
    for (i, item) in array.iter().enumerate() {
        let base = format!("{key}[{i}]");
        let mut item: T = match serde_path_to_error::deserialize(item) {
            Ok(v) => v,
            Err(e) => {
                let path = e.path().to_string();
                let path = if path == "." {
                    base
                } else {
                    format!("{base}.{path}")
                };
                rejected.push(ConfigError {
                    path,
                    message: e.inner().to_string(),
                });
                continue;
            }
        };
        // APISIX: an item's id is its `id`, or a consumer's `username`.
        let id = array[i]
            .get("id")
            .or_else(|| array[i].get("username"))
            .and_then(|v| serde_json::from_value::<Id>(v.clone()).ok())
            .unwrap_or_else(|| Id(format!("arr_{i}")));
        let mut problems = Vec::new();
        let refs = check(
            &mut item,
            id.clone(),
            &mut Checker::new(base.clone(), &mut problems, plugins),
        );
        if let Err(message) = refs {
            problems.push(ConfigError {
                path: base.clone(),
                message,
            });
        }
        if !seen.insert(id.clone()) {
            problems.push(ConfigError {
                path: format!("{base}.id"),
                message: format!("duplicate id `{}`", id.0),
            });
        }
        if problems.is_empty() {
            out.push(item);
        } else {
            rejected.extend(problems);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_marker_is_required_for_yaml() {
        assert!(matches!(
            parse(
                "routes: []\n",
                Format::Yaml,
                &crate::gateway::plugin_registry(None, None, &[])
            ),
            Err(FileError::MissingEnd)
        ));
        assert!(parse(
            "routes: []\n#END\n",
            Format::Yaml,
            &crate::gateway::plugin_registry(None, None, &[])
        )
        .is_ok());
        assert!(parse(
            "routes: []\n#END   \n\n",
            Format::Yaml,
            &crate::gateway::plugin_registry(None, None, &[])
        )
        .is_ok());
        assert!(matches!(
            parse(
                "#END\nroutes: []\n",
                Format::Yaml,
                &crate::gateway::plugin_registry(None, None, &[])
            ),
            Err(FileError::MissingEnd)
        ));
        assert!(parse(
            r#"{"routes": []}"#,
            Format::Json,
            &crate::gateway::plugin_registry(None, None, &[])
        )
        .is_ok());
    }

    #[test]
    fn whole_file_errors() {
        assert!(matches!(
            parse(
                "routes: [\n#END",
                Format::Yaml,
                &crate::gateway::plugin_registry(None, None, &[])
            ),
            Err(FileError::Syntax(_))
        ));
        assert!(matches!(
            parse(
                "- a\n#END",
                Format::Yaml,
                &crate::gateway::plugin_registry(None, None, &[])
            ),
            Err(FileError::NotAMap)
        ));
        assert!(matches!(
            parse(
                "{",
                Format::Json,
                &crate::gateway::plugin_registry(None, None, &[])
            ),
            Err(FileError::Syntax(_))
        ));
    }

    #[test]
    fn one_invalid_item_rejects_the_whole_file_naming_every_problem() {
        let text = r#"
upstreams:
  - id: u1
    nodes: {"127.0.0.1:1980": 1}
  - id: bad
    nodes: {"127.0.0.1:1980": "heavy"}
services:
  - id: s1
    upstream_id: bad
routes:
  - id: 1
    uri: /ok
    upstream_id: u1
  - id: 2
    uri: /typo
    upstrem_id: u1
  - id: 3
    uri: /dangling
    service_id: s1
  - id: 1
    uri: /dup
    upstream_id: u1
  - uri: /noid
    upstream: {nodes: {"127.0.0.1:1": 1}}
consumers:
  - username: jack
#END
"#;
        let Err(FileError::Invalid(rejected)) = parse(
            text,
            Format::Yaml,
            &crate::gateway::plugin_registry(None, None, &[]),
        ) else {
            panic!("a file with invalid items must be refused whole");
        };
        let paths: Vec<_> = rejected.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "upstreams[1].nodes",
                "services[0]",
                "routes[1].upstrem_id",
                "routes[2]",
                "routes[3].id"
            ]
        );
        assert!(
            rejected[2].message.contains("upstrem_id"),
            "{:?}",
            rejected[2]
        );
        let message = FileError::Invalid(rejected).to_string();
        assert!(
            message.starts_with("5 invalid item(s), the file is not applied: upstreams[1].nodes: "),
            "{message}"
        );
        // The same file without its bad items applies, consumers included.
        let good = "upstreams:\n  - id: u1\n    nodes: {\"127.0.0.1:1980\": 1}\nroutes:\n  - {id: 1, uri: /ok, upstream_id: u1}\n  - uri: /noid\n    upstream: {nodes: {\"127.0.0.1:1\": 1}}\nconsumers:\n  - username: jack\n#END\n";
        let loaded = parse(
            good,
            Format::Yaml,
            &crate::gateway::plugin_registry(None, None, &[]),
        )
        .expect("valid file");
        let ids: Vec<_> = loaded
            .config
            .routes
            .iter()
            .map(|r| r.id.clone().map(|i| i.0))
            .collect();
        assert_eq!(ids, vec![Some("1".into()), Some("arr_1".into())]);
        assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);
        assert_eq!(loaded.config.consumers.len(), 1, "consumers are read");
    }
}
