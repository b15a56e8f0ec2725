//! Header operations shared by the built-in plugins.

use http::header::{HeaderName, HeaderValue, VARY};
use http::HeaderMap;
use model::expr::Vars;
use model::template::{Syntax, Template};
use serde_json::Value;

/// Adds `token` to the response's `Vary`, joined to a value already there (one header line,
/// as a client reading several lines joins them).
pub fn add_vary(headers: &mut HeaderMap, token: &'static str) {
    let joined = headers
        .get(VARY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(|v| format!("{v}, {token}"));
    match joined.and_then(|v| HeaderValue::from_str(&v).ok()) {
        Some(v) => headers.insert(VARY, v),
        None => headers.insert(VARY, HeaderValue::from_static(token)),
    };
}

/// Header changes (header value templates).
#[derive(Default)]
pub(crate) struct HeaderOps {
    /// Appended.
    pub(crate) add: Vec<(HeaderName, Template)>,
    /// Replacing every value (an empty result removes); a name listed several times gets all
    /// of its values.
    pub(crate) set: Vec<(HeaderName, Template)>,
    /// Removed.
    pub(crate) remove: Vec<HeaderName>,
}

/// A header name from the config (refused in APISIX's words).
pub(crate) fn header_name(name: &str) -> Result<HeaderName, String> {
    if name.is_empty() {
        return Err("invalid field length in header".to_owned());
    }
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| "invalid field character in header".to_owned())
}

/// A header value template from the config: a string or a number (refused in APISIX's words),
/// parsed once.
pub(crate) fn header_template(value: &Value) -> Result<Template, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err("invalid type as header value".to_owned()),
    };
    if HeaderValue::from_str(&text).is_err() {
        return Err("invalid value character in header".to_owned());
    }
    Ok(Template::parse(&text, Syntax::KeepEscape))
}

/// A list of header names.
pub(crate) fn header_names(list: &Value, field: &str) -> Result<Vec<HeaderName>, String> {
    let Some(list) = list.as_array() else {
        return Err(format!("{field} must be an array of header names"));
    };
    list.iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| format!("{field} must be an array of header names"))
                .and_then(header_name)
        })
        .collect()
}

/// Applies header changes: add, then set, then remove; values resolved against `vars`.
pub(crate) fn apply_headers(ops: &HeaderOps, headers: &mut HeaderMap, vars: &dyn Vars) {
    for (name, template) in &ops.add {
        let value = template.render(vars);
        if value.is_empty() {
            continue;
        }
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(name.clone(), value);
        }
    }
    // A name listed several times is set to all of its values.
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, template) in &ops.set {
        if !replaced.contains(&name) {
            replaced.push(name);
            headers.remove(name);
        }
        let value = template.render(vars);
        if value.is_empty() {
            continue;
        }
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(name.clone(), value);
        }
    }
    for name in &ops.remove {
        headers.remove(name);
    }
}
