//! The upstream APISIX's Test::Nginx cases talk to: the same paths and answers as APISIX's test
//! server (`t/lib/server.lua` behind ports 1980-1982), served on free loopback ports. Each port
//! answers as the logical port it stands for, so `/server_port` says `1980` wherever it runs.
//!
//! A path names its handler with `/`, `.` and `-` read as `_` (`/print_uri_3` → `print_uri_3`);
//! request headers `resp-<name>` come back as response headers `<name>`; an unknown path is
//! nginx's 404 page. `/websocket_handshake` answers a WebSocket upgrade and sends `hello`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The ports of APISIX's test server this emulates.
pub const LOGICAL_PORTS: [u16; 3] = [1980, 1981, 1982];

/// A running test server: one listener per logical port.
pub struct TestServer {
    /// (logical port, real address) pairs.
    pub ports: Vec<(u16, SocketAddr)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the test server.
pub async fn start() -> TestServer {
    let mut ports = Vec::new();
    let mut tasks = Vec::new();
    for logical in LOGICAL_PORTS {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        ports.push((logical, listener.local_addr().expect("addr")));
        tasks.push(tokio::spawn(serve(listener, logical)));
    }
    TestServer { ports, tasks }
}

async fn serve(listener: TcpListener, logical: u16) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, logical));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// What one request sees: nginx's `$uri` (decoded path), its arguments and headers.
struct Seen {
    uri: String,
    request_uri: String,
    args: BTreeMap<String, Vec<String>>,
    headers: HeaderMap,
    body: Bytes,
    port: u16,
}

impl Seen {
    fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Headers as `ngx.req.get_headers()` sorts them: lower-case names, repeated values
    /// concatenated as `ngx.say` prints a table.
    fn sorted_headers(&self, skip: &[&str]) -> String {
        let mut lines = BTreeMap::<&str, String>::new();
        for (name, value) in &self.headers {
            if skip.contains(&name.as_str()) {
                continue;
            }
            lines
                .entry(name.as_str())
                .or_default()
                .push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        lines.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
    }
}

/// A reply under construction.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    chunked: bool,
}

fn ok(body: impl Into<String>) -> Reply {
    Reply {
        status: 200,
        headers: Vec::new(),
        body: body.into(),
        chunked: false,
    }
}

/// nginx's own page for an error status (with `server_tokens off`).
fn nginx_page(status: u16) -> Reply {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    Reply {
        status,
        headers: vec![("content-type".into(), "text/html".into())],
        body: format!(
            "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n"
        ),
        chunked: false,
    }
}

const FORWARDED: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
];

async fn handle(seen: &Seen) -> Option<Reply> {
    let action: String = seen.uri[1..]
        .chars()
        .map(|c| {
            if matches!(c, '/' | '.' | '-' | '\\') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let host = seen
        .header("host")
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, _)| name)
                .to_lowercase()
        })
        .unwrap_or_default();
    let reply = match action.as_str() {
        "hello" => ok("hello world\n"),
        "hello_chunked" => Reply {
            chunked: true,
            ..ok("hello world\n")
        },
        "hello1" => ok("hello1 world\n"),
        "course_foo" => ok("course foo\n"),
        "server_port" | "server_port_route2" | "server_port_hello" | "server_port_aa" => {
            ok(seen.port.to_string())
        }
        "limit_conn" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ok("hello world\n")
        }
        "plugin_proxy_rewrite" => ok(format!("uri: {}\nhost: {host}\nscheme: http\n", seen.uri)),
        "plugin_proxy_rewrite_args" => {
            let mut out = format!("uri: {}\n", seen.uri);
            for (k, v) in &seen.args {
                out.push_str(&format!("{k}: {}\n", v.join(",")));
            }
            ok(out)
        }
        "specific_status" => match seen
            .header("x-test-upstream-status")
            .and_then(|s| s.parse::<u16>().ok())
        {
            Some(status) => Reply {
                status,
                ..ok(format!("upstream status: {status}\n"))
            },
            None => ok(""),
        },
        "status" => ok("ok\n"),
        "ewma" => {
            let ms = if seen.port == 1980 { 100 } else { 200 };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ok(seen.port.to_string())
        }
        "uri" | "uri_plugin_proxy_rewrite" | "uri_plugin_proxy_rewrite_args" => ok(format!(
            "uri: {}\n{}",
            seen.uri,
            seen.sorted_headers(&FORWARDED)
        )),
        "old_uri" => ok(format!("uri: {}\n{}", seen.uri, seen.sorted_headers(&[]))),
        "opentracing" => ok("opentracing\n"),
        "with_header" => ok("hello\nworld\n!\n"),
        // `ngx.exit(code)`: below 300 an empty answer (`text/plain`), else nginx's page.
        "api_breaker" => match seen.arg("code").and_then(|c| c.parse::<u16>().ok())? {
            code if code < 300 => Reply {
                status: code,
                ..ok("")
            },
            code => nginx_page(code),
        },
        "mysleep" => {
            let seconds = seen.arg("seconds").unwrap_or("0");
            tokio::time::sleep(Duration::from_secs_f64(seconds.parse().unwrap_or(0.0))).await;
            if seen.arg("abort").is_some() {
                return None;
            }
            ok(format!("{seconds}\n"))
        }
        "print_uri_detailed" => ok(format!(
            "ngx.var.uri: {}\nngx.var.request_uri: {}\n",
            seen.uri, seen.request_uri
        )),
        "print_request_received" => ok(format!(
            "request_uri: {}\n{}",
            seen.request_uri,
            seen.sorted_headers(&[])
        )),
        "headers" => {
            let mut reply = ok("/headers\n");
            for (k, v) in &seen.args {
                if let Some(last) = v.last() {
                    reply.headers.push((k.clone(), last.clone()));
                }
            }
            reply
        }
        "echo" | "v1_responses" => {
            let mut reply = ok(String::from_utf8_lossy(&seen.body).into_owned());
            for name in seen.headers.keys() {
                if !matches!(
                    name.as_str(),
                    "content-length" | "transfer-encoding" | "connection" | "keep-alive"
                ) {
                    // A repeated header comes back as one line, its values joined as
                    // Test::Nginx reads several lines of one name.
                    let values: Vec<String> = seen
                        .headers
                        .get_all(name)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect();
                    reply.headers.push((name.to_string(), values.join(", ")));
                }
            }
            reply
        }
        "log" | "log_request" => ok(""),
        "server_error" => nginx_page(500),
        "plugin_proxy_rewrite_multi_header" => {
            let mut out = String::new();
            let mut names: Vec<&str> = seen.headers.keys().map(|k| k.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            for name in names.into_iter().filter(|n| !FORWARDED.contains(n)) {
                for value in seen.headers.get_all(name) {
                    out.push_str(&format!(
                        "{name}: {}\n",
                        String::from_utf8_lossy(value.as_bytes())
                    ));
                }
            }
            ok(out)
        }
        a if a.starts_with("print_uri_") => ok(format!("{}\n", seen.uri)),
        // The `location /echo/` of radixtree-uri-with-parameter-encoded-slash.t's
        // upstream_server_config: the URI of the request line as received.
        _ if seen.uri.starts_with("/echo/") => ok(format!("{}\n", seen.request_uri)),
        _ => nginx_page(404),
    };
    Some(reply)
}

/// `/websocket_handshake` (and `/websocket_handshake/route`): `resty.websocket.server`'s
/// handshake, then one text frame `hello`; a request that is not a WebSocket upgrade gets 400.
fn websocket_handshake(req: &mut Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    let upgrade = header("upgrade").is_some_and(|v| v.contains("websocket"));
    let connection = header("connection").is_some_and(|v| v.contains("upgrade"));
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (true, true, Some(key)) = (upgrade, connection, key) else {
        let page = nginx_page(400);
        return Response::builder()
            .status(page.status)
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from(page.body)))
            .expect("response");
    };
    let on_upgrade = hyper::upgrade::on(&mut *req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let mut io = TokioIo::new(upgraded);
            // FIN + text opcode, unmasked, 5 bytes.
            let _ = tokio::io::AsyncWriteExt::write_all(&mut io, b"\x81\x05hello").await;
        }
    });
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    );
    let accept = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest);
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-accept", accept);
    if let Some(protocol) = req.headers().get("sec-websocket-protocol") {
        response = response.header("sec-websocket-protocol", protocol.clone());
    }
    response.body(Full::new(Bytes::new())).expect("response")
}

async fn answer(
    mut req: Request<Incoming>,
    port: u16,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    if matches!(
        req.uri().path(),
        "/websocket_handshake" | "/websocket_handshake/route"
    ) {
        return Ok(websocket_handshake(&mut req));
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path();
    let uri = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned();
    let mut args = BTreeMap::<String, Vec<String>>::new();
    for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        args.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    let seen = Seen {
        uri,
        request_uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| path.to_owned(), |pq| pq.as_str().to_owned()),
        args,
        headers: parts.headers,
        body,
        port,
    };
    let Some(reply) = handle(&seen).await else {
        // `ngx.exit(ngx.ERROR)`: the connection closes without an answer.
        return Err(std::io::Error::other("aborted"));
    };
    let mut response = Response::builder().status(reply.status);
    if !reply.headers.iter().any(|(k, _)| k == "content-type") {
        response = response.header("content-type", "text/plain");
    }
    for (name, value) in &reply.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    for (name, value) in &seen.headers {
        if let Some(injected) = name.as_str().strip_prefix("resp-") {
            response = response.header(injected, value.clone());
        }
    }
    if reply.chunked {
        response = response.header("transfer-encoding", HeaderValue::from_static("chunked"));
    }
    Ok(response
        .body(Full::new(Bytes::from(reply.body)))
        .expect("response"))
}
