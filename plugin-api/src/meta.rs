//! `_meta`: per-instance options every plugin config may carry (APISIX's injected property):
//! `disable` (skip the plugin; its config is then not validated), `priority` (overrides the
//! kind's for this instance), `filter` (a `vars` expression: the plugin runs only when it holds)
//! and `error_response` (the body of any error answer of this plugin, string or object).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};

use model::expr::Expr;

/// The parsed `_meta` of one plugin instance.
#[derive(Debug, Default)]
pub struct Meta {
    /// Skip this plugin.
    pub disable: bool,
    /// Priority override.
    pub priority: Option<i32>,
    /// Run only when this holds.
    pub filter: Option<Expr>,
    /// Body of this plugin's error answers (status >= 400).
    pub error_response: Option<Bytes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    disable: bool,
    priority: Option<i32>,
    filter: Option<Value>,
    error_response: Option<Value>,
}

/// Splits `_meta` off a plugin config: the config without it, and the parsed options.
///
/// # Errors
/// A malformed `_meta` (unknown field, wrong type, a filter that does not compile).
pub fn split(conf: &Value) -> Result<(Value, Meta), String> {
    let Some(map) = conf.as_object() else {
        return Ok((conf.clone(), Meta::default()));
    };
    let Some(raw) = map.get("_meta") else {
        return Ok((conf.clone(), Meta::default()));
    };
    let raw: Raw = serde_json::from_value(raw.clone()).map_err(|e| format!("_meta: {e}"))?;
    let filter = raw
        .filter
        .as_ref()
        .map(|f| Expr::compile(f).map_err(|e| format!("_meta.filter: {e}")))
        .transpose()?;
    let error_response = raw.error_response.map(|r| match r {
        Value::String(s) => Bytes::from(s),
        other => Bytes::from(other.to_string()),
    });
    let rest: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| *k != "_meta")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((
        Value::Object(rest),
        Meta {
            disable: raw.disable,
            priority: raw.priority,
            filter,
            error_response,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meta_is_split_off() {
        let (conf, meta) = split(&json!({"a": 1, "_meta": {"disable": true, "priority": 7, "filter": [["arg_x", "==", "1"]], "error_response": {"m": 1}}})).expect("valid");
        assert_eq!(conf, json!({"a": 1}));
        assert!(meta.disable);
        assert_eq!(meta.priority, Some(7));
        assert!(meta.filter.is_some());
        assert_eq!(meta.error_response.as_deref(), Some(&b"{\"m\":1}"[..]));
        let (_, none) = split(&json!({"a": 1})).expect("valid");
        assert!(!none.disable && none.priority.is_none());
        assert!(split(&json!({"_meta": {"disabled": true}})).is_err());
        assert!(split(&json!({"_meta": {"filter": [["x", "nope", 1]]}})).is_err());
    }
}
