//! A runner's answer applied to the request or response, as the protocol says
//! (`docs/runner-protocol.md`, "Conversation" 4 and 5).

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{HeaderMap, StatusCode};
use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};
use runner_protocol::{Action, HttpResponseReply, Rewrite, Stop, TextEntry};

use super::call::{current_target, parse_args};
use plugin_api::{Flow, Reply, RequestCtx, ResponseCtx, UpstreamResponseCtx};

/// Response headers a runner may not set on the client's response.
const PROTECTED_RESPONSE_HEADERS: [&str; 10] = [
    "connection",
    "content-length",
    "transfer-encoding",
    "location",
    "server",
    "www-authenticate",
    "content-encoding",
    "content-type",
    "content-location",
    "content-language",
];

/// Escaped in a query name or value: everything but RFC 3986's unreserved characters.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `resp_headers` of the request calls, applied to whatever response the client gets.
#[derive(Clone, Default)]
struct PendingResponseHeaders(Vec<TextEntry>);

/// Applies a request call's action.
pub(super) fn request_action(action: Option<Action>, req: &mut RequestCtx<'_>) -> Flow {
    match action {
        None => Flow::Continue,
        Some(Action::Stop(stop)) => Flow::Respond(stop_reply(stop)),
        Some(Action::Rewrite(rewrite)) => {
            apply_rewrite(rewrite, req);
            Flow::Continue
        }
    }
}

fn stop_reply(stop: Stop) -> Reply {
    let status = match stop.status {
        0 => StatusCode::OK,
        code => StatusCode::from_u16(code).unwrap_or_else(|_| {
            tracing::warn!(code, "runner stopped with an invalid status; 500 sent");
            StatusCode::INTERNAL_SERVER_ERROR
        }),
    };
    let mut headers = HeaderMap::new();
    set_add_remove(&mut headers, &stop.headers, |_| true);
    Reply {
        status,
        headers,
        body: stop.body,
    }
}

/// Applies `entries` in order: a name's first occurrence sets it, later ones add a value, an
/// entry without a value removes the name. Entries `allowed` refuses, or that are not valid
/// header names or values, are skipped.
fn set_add_remove(headers: &mut HeaderMap, entries: &[TextEntry], allowed: impl Fn(&str) -> bool) {
    let mut seen: Vec<HeaderName> = Vec::new();
    for entry in entries {
        let Some(name) = header_name(&entry.name) else {
            continue;
        };
        if !allowed(name.as_str()) {
            continue;
        }
        match &entry.value {
            None => {
                headers.remove(&name);
            }
            Some(value) => {
                let Some(value) = header_value(value) else {
                    continue;
                };
                if seen.contains(&name) {
                    headers.append(name, value);
                } else {
                    seen.push(name.clone());
                    headers.insert(name, value);
                }
            }
        }
    }
}

fn header_name(name: &[u8]) -> Option<HeaderName> {
    let name = HeaderName::from_bytes(&name.to_ascii_lowercase()).ok();
    if name.is_none() {
        tracing::warn!("runner sent an invalid header name; skipped");
    }
    name
}

fn header_value(value: &[u8]) -> Option<HeaderValue> {
    let value = HeaderValue::from_bytes(value).ok();
    if value.is_none() {
        tracing::warn!("runner sent an invalid header value; skipped");
    }
    value
}

/// `Rewrite` in the protocol's order: path, headers, body, resp_headers, args.
fn apply_rewrite(rewrite: Rewrite, req: &mut RequestCtx<'_>) {
    if let Some(path) = rewrite.path.filter(|p| !p.is_empty()) {
        let (_, query) = current_target(req);
        let encoded = plugin_api::path::encode_bytes(&path);
        set_target(req, encoded, query);
    }
    for entry in &rewrite.headers {
        let Some(name) = header_name(&entry.name) else {
            continue;
        };
        match &entry.value {
            None => {
                req.headers.remove(&name);
            }
            Some(value) => {
                let Some(value) = header_value(value) else {
                    continue;
                };
                if name == HOST {
                    req.rewrite.host = Some(value.clone());
                }
                req.headers.insert(name, value);
            }
        }
    }
    if !rewrite.body.is_empty() {
        req.body.replace(rewrite.body);
    }
    if !rewrite.resp_headers.is_empty() {
        let pending = match req.state.get_mut::<PendingResponseHeaders>() {
            Some(p) => p,
            None => {
                req.state.insert(PendingResponseHeaders::default());
                req.state
                    .get_mut::<PendingResponseHeaders>()
                    .expect("just inserted")
            }
        };
        pending.0.extend(rewrite.resp_headers);
    }
    if !rewrite.args.is_empty() {
        let (path, query) = current_target(req);
        let mut args = query.as_deref().map(parse_args).unwrap_or_default();
        let mut replaced: Vec<&Bytes> = Vec::new();
        for entry in &rewrite.args {
            match &entry.value {
                None => args.retain(|a| a.name != entry.name),
                Some(_) => {
                    if !replaced.contains(&&entry.name) {
                        replaced.push(&entry.name);
                        args.retain(|a| a.name != entry.name);
                    }
                    args.push(entry.clone());
                }
            }
        }
        let query = args
            .iter()
            .map(|a| {
                let name = percent_encode(&a.name, QUERY_COMPONENT).to_string();
                match &a.value {
                    Some(v) => format!("{name}={}", percent_encode(v, QUERY_COMPONENT)),
                    None => name,
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        set_target(req, path, (!query.is_empty()).then_some(query));
    }
}

/// Sets what goes upstream to `path` (encoded) and `query`.
fn set_target(req: &mut RequestCtx<'_>, path: String, query: Option<String>) {
    let text = match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    match PathAndQuery::try_from(text) {
        Ok(pq) => req.rewrite.path_and_query = Some(pq),
        Err(e) => tracing::warn!(error = %e, "runner rewrite gives an invalid path; skipped"),
    }
}

/// The request calls' `resp_headers`, applied to the response (whoever made it), once.
pub(super) fn pending_response_headers(resp: &mut ResponseCtx<'_>) {
    if let Some(PendingResponseHeaders(entries)) = resp.state.remove() {
        set_add_remove(resp.headers, &entries, |name| {
            !PROTECTED_RESPONSE_HEADERS.contains(&name)
        });
    }
}

/// Applies a response call's reply: a status (0 keeps the upstream's), a header list (a
/// non-empty one replaces the upstream's headers, as APISIX does), a body (non-empty replaces).
pub(super) fn response_reply(reply: HttpResponseReply, resp: &mut UpstreamResponseCtx<'_>) {
    if reply.status != 0 {
        match StatusCode::from_u16(reply.status) {
            Ok(status) => *resp.status = status,
            Err(_) => tracing::warn!(code = reply.status, "runner sent an invalid status; kept"),
        }
    }
    if !reply.headers.is_empty() {
        let mut headers = HeaderMap::new();
        for entry in &reply.headers {
            let (Some(name), Some(value)) = (
                header_name(&entry.name),
                entry.value.as_deref().and_then(header_value),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
        *resp.headers = headers;
    }
    let changed = !reply.headers.is_empty() || !reply.body.is_empty();
    if !reply.body.is_empty() {
        resp.body.replace(reply.body);
    }
    if changed {
        // The body's length is the gateway's business (hyper sets it).
        resp.headers.remove(CONTENT_LENGTH);
        resp.headers.remove(TRANSFER_ENCODING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::Fake;

    fn entry(name: &str, value: Option<&str>) -> TextEntry {
        TextEntry {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        }
    }

    #[test]
    fn stop_headers_set_add_remove() {
        let reply = stop_reply(Stop {
            status: 0,
            headers: vec![
                entry("X-A", Some("1")),
                entry("x-a", Some("2")),
                entry("X-B", Some("gone")),
                entry("X-B", None),
                entry("bad name", Some("1")),
            ],
            body: Bytes::from_static(b"stopped"),
        });
        assert_eq!(reply.status, StatusCode::OK, "0 means 200");
        let a: Vec<_> = reply.headers.get_all("x-a").iter().collect();
        assert_eq!(a, ["1", "2"]);
        assert!(reply.headers.get("x-b").is_none());
        assert_eq!(reply.body, "stopped");
        assert_eq!(
            stop_reply(Stop {
                status: 1000,
                ..Stop::default()
            })
            .status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn rewrite_path_headers_args() {
        let mut fake = Fake::new(&[
            ("uri", "/old path"),
            ("query_string", "a=1&flag&b=2&a=3"),
            ("http_x_gone", "x"),
        ]);
        let flow = request_action(
            Some(Action::Rewrite(Rewrite {
                path: Some(Bytes::from_static(b"/new?x#y")),
                headers: vec![
                    entry("X-New", Some("1")),
                    entry("x-new", Some("2")),
                    entry("X-Gone", None),
                    entry("Host", Some("h.test")),
                ],
                args: vec![
                    entry("a", Some("9")),
                    entry("a", Some("10")),
                    entry("b", None),
                    entry("c d", Some("é")),
                ],
                resp_headers: vec![entry("X-Resp", Some("r")), entry("Server", Some("no"))],
                body: Bytes::new(),
            })),
            &mut fake.ctx(),
        );
        assert!(matches!(flow, Flow::Continue));
        let pq = fake.rewrite.path_and_query.as_ref().expect("rewritten");
        assert_eq!(pq.path(), "/new%3Fx%23y", "? and # cannot smuggle a query");
        assert_eq!(pq.query(), Some("flag&a=9&a=10&c%20d=%C3%A9"));
        assert_eq!(fake.headers.get("x-new").expect("set"), "2", "last wins");
        assert!(fake.headers.get("x-gone").is_none());
        assert_eq!(fake.rewrite.host.as_ref().expect("host"), "h.test");

        // resp_headers wait for the response; protected names are skipped.
        let mut headers = HeaderMap::new();
        headers.insert("server", HeaderValue::from_static("ferrogate"));
        headers.insert("x-resp", HeaderValue::from_static("upstream"));
        let after = fake.header_filter_with(pending_response_headers, headers);
        assert_eq!(after.get("x-resp").expect("set"), "r");
        assert_eq!(after.get("server").expect("kept"), "ferrogate");
    }

    #[tokio::test]
    async fn path_rewrite_keeps_the_query_and_args_alone_keep_the_path() {
        let mut fake = Fake::new(&[("uri", "/p"), ("query_string", "k=v")]);
        request_action(
            Some(Action::Rewrite(Rewrite {
                path: Some(Bytes::from_static(b"/q")),
                ..Rewrite::default()
            })),
            &mut fake.ctx(),
        );
        assert_eq!(
            fake.rewrite
                .path_and_query
                .as_ref()
                .map(PathAndQuery::as_str),
            Some("/q?k=v")
        );
        let mut fake = Fake::new(&[("uri", "/p q")]);
        request_action(
            Some(Action::Rewrite(Rewrite {
                args: vec![entry("only", Some("1"))],
                ..Rewrite::default()
            })),
            &mut fake.ctx(),
        );
        assert_eq!(
            fake.rewrite
                .path_and_query
                .as_ref()
                .map(PathAndQuery::as_str),
            Some("/p%20q?only=1")
        );
    }
}
