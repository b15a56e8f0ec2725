//! Header operations shared by the built-in plugins.

use http::header::{HeaderValue, VARY};
use http::HeaderMap;

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
