//! Query-string helpers shared by the built-in plugins.

use http::uri::PathAndQuery;
use plugin_api::RequestCtx;

/// Removes argument `name` from the query sent upstream.
pub(crate) fn hide_query_arg(req: &mut RequestCtx<'_>, name: &str) {
    let uri = req
        .vars
        .get("uri")
        .map(|u| u.into_owned())
        .unwrap_or_default();
    let query = req
        .vars
        .get("query_string")
        .map(|q| q.into_owned())
        .unwrap_or_default();
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .collect();
    let text = if kept.is_empty() {
        plugin_api::path::encode(&uri).into_owned()
    } else {
        format!("{}?{}", plugin_api::path::encode(&uri), kept.join("&"))
    };
    if let Ok(pq) = PathAndQuery::try_from(text) {
        if req.rewrite.path_and_query.is_none() {
            req.rewrite.path_and_query = Some(pq);
        }
    }
}
