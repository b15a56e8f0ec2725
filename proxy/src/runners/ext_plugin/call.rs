//! A live request or response as a runner call, and the answers to the runner's questions.
//!
//! The request call carries the request as it will go upstream: the path (decoded, no query)
//! and query as earlier plugins rewrote them, one argument entry per value (`?flag` without a
//! value, `?k=` with an empty one), the upstream headers one entry per value with names in
//! lower case, and `host` as it will be sent.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::HOST;
use http::HeaderMap;
use runner_protocol::{ExtraInfo, HttpRequest, HttpResponse, InfoSource, Method, TextEntry};
use tokio::sync::Mutex;

use model::expr::Vars;
use plugin_api::body::{RequestBody, ResponseBody};
use plugin_api::{RequestCtx, UpstreamResponseCtx};

/// The largest body given to a runner: what fits in one frame with room for the table.
const BODY_LIMIT: usize = runner_protocol::MAX_PAYLOAD - 1024;

/// The request call for `req`.
pub(super) fn request(req: &RequestCtx<'_>) -> HttpRequest {
    let method = req
        .rewrite
        .method
        .as_ref()
        .map(|m| m.as_str().to_owned())
        .or_else(|| req.vars.get("request_method").map(|m| m.into_owned()))
        .and_then(|m| Method::from_name(&m))
        .unwrap_or(Method::Get);
    let (path, query) = current_target(req);
    let mut headers: Vec<TextEntry> = req
        .headers
        .iter()
        .filter(|(name, _)| *name != HOST)
        .map(|(name, value)| {
            TextEntry::new(
                Bytes::copy_from_slice(name.as_str().as_bytes()),
                Bytes::copy_from_slice(value.as_bytes()),
            )
        })
        .collect();
    if let Some(host) = req.rewrite.host.as_ref().or_else(|| req.headers.get(HOST)) {
        headers.push(TextEntry::new(
            Bytes::from_static(b"host"),
            Bytes::copy_from_slice(host.as_bytes()),
        ));
    }
    HttpRequest {
        id: 0,
        src_ip: ip_bytes(req.client),
        method,
        path: Bytes::from(percent_encoding::percent_decode_str(&path).collect::<Vec<u8>>()),
        args: query.as_deref().map(parse_args).unwrap_or_default(),
        headers,
        conf_token: 0,
    }
}

/// The response call for the upstream's response.
pub(super) fn response(resp: &UpstreamResponseCtx<'_>) -> HttpResponse {
    HttpResponse {
        id: 0,
        status: resp.status.as_u16(),
        headers: entries(resp.headers),
        conf_token: 0,
    }
}

/// The path (percent-encoded, as it goes upstream) and query the request has now: an earlier
/// plugin's rewrite, else the normalised path and the request's query.
pub(super) fn current_target(req: &RequestCtx<'_>) -> (String, Option<String>) {
    match &req.rewrite.path_and_query {
        Some(pq) => (pq.path().to_owned(), pq.query().map(str::to_owned)),
        None => {
            let path = req.vars.get("uri").unwrap_or_default();
            let query = req.vars.get("query_string").map(|q| q.into_owned());
            (plugin_api::path::encode(&path).into_owned(), query)
        }
    }
}

/// A query string as argument entries, in order: `flag` has no value, `k=` an empty one.
pub(super) fn parse_args(query: &str) -> Vec<TextEntry> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.split_once('=') {
            Some((k, v)) => TextEntry::new(decode_component(k), decode_component(v)),
            None => TextEntry {
                name: decode_component(piece),
                value: None,
            },
        })
        .collect()
}

/// A query component decoded as nginx's `get_uri_args` does (`+` is a space).
fn decode_component(s: &str) -> Bytes {
    let spaced = s.replace('+', " ");
    Bytes::from(percent_encoding::percent_decode_str(&spaced).collect::<Vec<u8>>())
}

/// Headers as entries, one per value.
pub(super) fn entries(headers: &HeaderMap) -> Vec<TextEntry> {
    headers
        .iter()
        .map(|(name, value)| {
            TextEntry::new(
                Bytes::copy_from_slice(name.as_str().as_bytes()),
                Bytes::copy_from_slice(value.as_bytes()),
            )
        })
        .collect()
}

fn ip_bytes(ip: IpAddr) -> Bytes {
    match ip {
        IpAddr::V4(v4) => Bytes::copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => Bytes::copy_from_slice(&v6.octets()),
    }
}

/// Answers a runner's extra-info questions: variables, the request body (read once, then kept
/// for the upstream) and, in the response call, the upstream's body (read once, then sent from
/// memory).
pub(super) struct Info<'a> {
    vars: &'a (dyn Vars + Sync),
    consumer_name: Option<&'a str>,
    request_body: Mutex<&'a mut dyn RequestBody>,
    response_body: Mutex<Option<&'a mut dyn ResponseBody>>,
}

impl<'a> Info<'a> {
    pub(super) fn new(
        vars: &'a (dyn Vars + Sync),
        consumer_name: Option<&'a str>,
        request_body: &'a mut dyn RequestBody,
        response_body: Option<&'a mut dyn ResponseBody>,
    ) -> Info<'a> {
        Info {
            vars,
            consumer_name,
            request_body: Mutex::new(request_body),
            response_body: Mutex::new(response_body),
        }
    }

    fn var(&self, name: &str) -> Option<Bytes> {
        if name == "consumer_name" {
            return self
                .consumer_name
                .map(|n| Bytes::copy_from_slice(n.as_bytes()));
        }
        self.vars.get(name).map(|v| Bytes::from(v.into_owned()))
    }
}

impl InfoSource for Info<'_> {
    async fn answer(&self, question: &ExtraInfo) -> Option<Bytes> {
        match question {
            ExtraInfo::Var(name) => self.var(std::str::from_utf8(name).ok()?),
            ExtraInfo::ReqBody => match self.request_body.lock().await.read(BODY_LIMIT).await {
                Ok(body) => Some(body),
                Err(e) => {
                    tracing::warn!(error = %e, "the runner asked for the request body");
                    None
                }
            },
            ExtraInfo::RespBody => {
                let mut slot = self.response_body.lock().await;
                let Some(body) = slot.as_mut() else {
                    // Only the response call has an upstream body.
                    return Some(Bytes::new());
                };
                match body.read_all(BODY_LIMIT).await {
                    Ok(bytes) => Some(bytes),
                    Err(e) => {
                        tracing::warn!(error = %e, "the runner asked for the upstream body");
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(name: &str, value: Option<&str>) -> TextEntry {
        TextEntry {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        }
    }

    #[test]
    fn args_keep_order_flags_and_empty_values() {
        assert_eq!(
            parse_args("a=1&flag&b=&a=2&&c=x+y%21"),
            vec![
                arg("a", Some("1")),
                arg("flag", None),
                arg("b", Some("")),
                arg("a", Some("2")),
                arg("c", Some("x y!")),
            ]
        );
        assert!(parse_args("").is_empty());
    }

    #[test]
    fn ips_are_raw_bytes() {
        assert_eq!(
            ip_bytes("10.0.0.1".parse().expect("ip")).as_ref(),
            [10, 0, 0, 1]
        );
        assert_eq!(ip_bytes("::1".parse().expect("ip")).len(), 16);
    }
}
