//! Request variables, as APISIX's `ctx.var`, resolved on demand (nothing is computed unless a
//! `vars` expression or a chash key asks for it).
//!
//! Names: `uri` (normalised path), `request_uri` (as sent, with query), `host`, `request_method`,
//! `remote_addr`, `remote_port`, `server_addr`, `server_port`, `scheme`, `query_string` / `args`,
//! `http_<header>` (lowercase, `_` for `-`), `arg_<name>` (raw, not decoded), `cookie_<name>`,
//! `uri_param_<name>`, `post_arg_<name>` (a form body's field, decoded) and `post_arg.<path>`
//! (see [`PostArgs`]), and after routing `route_id`, `route_name`, `service_id`.

use std::borrow::Cow;
use std::net::IpAddr;

use http::header::{HeaderMap, HeaderValue};
use http::request::Parts;

pub use super::post_args::PostArgs;
use super::ConnInfo;
use crate::snapshot::RouteEntry;
use model::expr::Vars;
use plugin_api::client::ClientAddr;
use plugin_api::Balancer;

/// The variables of one request.
pub struct RequestVars<'a> {
    /// The request head.
    pub parts: &'a Parts,
    /// The normalised path.
    pub path: &'a str,
    /// The Host without port, lowercased.
    pub host: &'a str,
    /// The client address (after the `real_ip_header` setting).
    pub remote: IpAddr,
    /// The client address a plugin set (`real-ip`), which `remote_addr` then answers.
    pub real_ip: ClientAddr,
    /// Connection addresses.
    pub conn: ConnInfo,
    /// Path parameters captured by the router.
    pub params: &'a [(&'a str, &'a str)],
    /// The matched route, once known.
    pub route: Option<&'a RouteEntry>,
}

impl Vars for RequestVars<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let b = Cow::Borrowed;
        match name {
            "uri" => Some(b(self.path)),
            "host" => Some(b(self.host)),
            "request_uri" => self.parts.uri.path_and_query().map(|p| b(p.as_str())),
            "request_method" => Some(b(self.parts.method.as_str())),
            "remote_addr" => Some(Cow::Owned(
                self.real_ip.get().unwrap_or(self.remote).to_string(),
            )),
            "remote_port" => Some(Cow::Owned(
                self.real_ip
                    .port()
                    .unwrap_or(self.conn.peer.port())
                    .to_string(),
            )),
            "server_addr" => Some(Cow::Owned(self.conn.local.ip().to_string())),
            "server_port" => Some(Cow::Owned(self.conn.local.port().to_string())),
            "scheme" => Some(b(if self.conn.tls { "https" } else { "http" })),
            "server_protocol" => Some(b(match self.parts.version {
                http::Version::HTTP_09 => "HTTP/0.9",
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                http::Version::HTTP_3 => "HTTP/3.0",
                _ => "HTTP/1.1",
            })),
            "query_string" | "args" => self.parts.uri.query().map(b),
            "route_id" => self.route.map(|r| b(r.id.as_str())),
            "route_name" => self.route.and_then(|r| r.name.as_deref()).map(b),
            "service_id" => self.route.and_then(|r| r.service_id.as_deref()).map(b),
            _ => {
                if let Some(h) = name.strip_prefix("http_") {
                    request_header(&self.parts.headers, h)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()))
                } else if let Some(a) = name.strip_prefix("arg_") {
                    query_arg(self.parts.uri.query()?, a).map(b)
                } else if let Some(c) = name.strip_prefix("cookie_") {
                    self.parts
                        .headers
                        .get_all(http::header::COOKIE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(|v| cookie(v, c))
                        .map(b)
                } else if let Some(p) = name.strip_prefix("uri_param_") {
                    self.params.iter().find(|(n, _)| *n == p).map(|(_, v)| b(v))
                } else if let Some(p) = name.strip_prefix("post_arg_") {
                    self.parts.extensions.get::<PostArgs>()?.field(p).map(b)
                } else {
                    None
                }
            }
        }
    }

    fn post_body(&self) -> Option<&serde_json::Value> {
        self.parts.extensions.get::<PostArgs>()?.body()
    }
}

/// The upstream node that answered `response` (the peer of its connection, or else `node`, as
/// `host:port`) and how long it took: the pipeline keeps it in the request's plugin state for the
/// response and log phases (`balancer_ip`, `balancer_port`).
pub fn answered_by<B>(
    response: &http::Response<B>,
    node: &http::uri::Authority,
    time: std::time::Duration,
) -> Balancer {
    use hyper_util::client::legacy::connect::HttpInfo;
    let (ip, port) = match response.extensions().get::<HttpInfo>() {
        Some(info) => (
            info.remote_addr().ip().to_string(),
            info.remote_addr().port(),
        ),
        None => (
            node.host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            node.port_u16().unwrap_or(80),
        ),
    };
    Balancer { ip, port, time }
}

/// The request header an `http_<name>` variable names: `name` with its `_` read as `-` first,
/// then as written (nginx's `underscores_in_headers`). Looked up without allocating: the dashed
/// name is spelled in a buffer on the stack (a longer name, which no common header has, is
/// found by comparing names one by one).
fn request_header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h HeaderValue> {
    const SHORT: usize = 64;
    let dash = |b: u8| if b == b'_' { b'-' } else { b };
    if name.contains('_') {
        let dashed = if name.len() <= SHORT {
            let mut buf = [0u8; SHORT];
            let spelled = &mut buf[..name.len()];
            for (to, from) in spelled.iter_mut().zip(name.bytes()) {
                *to = dash(from);
            }
            // Only ASCII bytes changed: still UTF-8.
            std::str::from_utf8(spelled)
                .ok()
                .and_then(|n| headers.get(n))
        } else {
            headers.iter().find_map(|(key, value)| {
                let key = key.as_str().as_bytes();
                let same = key.len() == name.len()
                    && key
                        .iter()
                        .zip(name.bytes())
                        .all(|(k, n)| *k == dash(n).to_ascii_lowercase());
                same.then_some(value)
            })
        };
        if dashed.is_some() {
            return dashed;
        }
    }
    headers.get(name)
}

/// The first value of `name` in a query string (raw; a bare `name` gives "").
fn query_arg<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// The value of cookie `name` in one `Cookie` header.
fn cookie<'c>(header: &'c str, name: &str) -> Option<&'c str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let req = http::Request::builder()
            .method("POST")
            .uri("/p/x?a=1&b&a=2&c=%41")
            .header("X-Api-Key", "k1")
            .header("x_under_score", "as sent")
            .header("x-long-".repeat(12).trim_end_matches('-'), "long")
            .header("cookie", "sid=abc; theme=dark")
            .body(())
            .expect("request");
        let (mut parts, _) = req.into_parts();
        parts.extensions.insert(PostArgs::form(b"k=a+b%21&k=2&e="));
        let conn = ConnInfo {
            peer: "10.0.0.1:5555".parse().expect("addr"),
            local: "127.0.0.1:9080".parse().expect("addr"),
            tls: false,
        };
        let params = [("id", "x")];
        let vars = RequestVars {
            parts: &parts,
            path: "/p/x",
            host: "api.test",
            remote: conn.peer_ip(),
            real_ip: ClientAddr::default(),
            conn,
            params: &params,
            route: None,
        };
        let get = |n: &str| vars.get(n).map(|v| v.into_owned());
        assert_eq!(get("uri").as_deref(), Some("/p/x"));
        assert_eq!(get("request_uri").as_deref(), Some("/p/x?a=1&b&a=2&c=%41"));
        assert_eq!(get("request_method").as_deref(), Some("POST"));
        assert_eq!(get("remote_addr").as_deref(), Some("10.0.0.1"));
        assert_eq!(get("remote_port").as_deref(), Some("5555"));
        // What a plugin set (`RequestCtx::set_client`) is what `remote_*` answer.
        let mut fake = plugin_api::testing::Fake::default();
        let mut ctx = fake.ctx();
        ctx.client_set = &vars.real_ip;
        ctx.set_client("2001:db8::1".parse().expect("ip"), None);
        assert_eq!(get("remote_addr").as_deref(), Some("2001:db8::1"));
        assert_eq!(get("remote_port").as_deref(), Some("5555"), "no port: kept");
        ctx.set_client("10.9.9.9".parse().expect("ip"), Some(7090));
        assert_eq!(get("remote_addr").as_deref(), Some("10.9.9.9"), "set again");
        assert_eq!(get("remote_port").as_deref(), Some("7090"));
        assert_eq!(get("server_port").as_deref(), Some("9080"));
        assert_eq!(get("http_x_api_key").as_deref(), Some("k1"));
        assert_eq!(get("http_x_missing"), None);
        assert_eq!(get("http_X_API_KEY").as_deref(), Some("k1"), "any case");
        assert_eq!(get("http_x_under_score").as_deref(), Some("as sent"));
        let long = format!("http_{}", ["x_long"; 12].join("_"));
        assert_eq!(get(&long).as_deref(), Some("long"), "past the stack buffer");
        assert_eq!(get("arg_a").as_deref(), Some("1"));
        assert_eq!(get("arg_b").as_deref(), Some(""));
        assert_eq!(get("arg_c").as_deref(), Some("%41"));
        assert_eq!(get("arg_z"), None);
        assert_eq!(get("cookie_theme").as_deref(), Some("dark"));
        assert_eq!(get("cookie_none"), None);
        assert_eq!(get("uri_param_id").as_deref(), Some("x"));
        assert_eq!(get("post_arg_k").as_deref(), Some("a b!"), "decoded, first");
        assert_eq!(get("post_arg_e").as_deref(), Some(""));
        assert_eq!(get("post_arg_z"), None);
        assert_eq!(get("route_id"), None);
        assert_eq!(get("no_such_var"), None);
    }
}
