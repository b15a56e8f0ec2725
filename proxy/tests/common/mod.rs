//! Test harness: real upstream servers on 127.0.0.1:0, a gateway started from config text in a
//! temporary directory, and an HTTP client.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod admin;
pub mod etcd;
pub mod pki;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrogate::config::NodeConfig;
use ferrogate::gateway::{self, Gateway};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a test upstream does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Answers 200 with a JSON echo of the request.
    Echo,
    /// Answers with this status (and a JSON echo body).
    Status(u16),
    /// Waits this long, then echoes.
    Slow(Duration),
    /// Accepts and never answers.
    Hang,
    /// Accepts, reads the head, closes the connection without answering.
    Reset,
}

/// A running test upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Requests (or connections, for Hang/Reset) received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// `"127.0.0.1:port"`.
    pub fn node(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an upstream named `name` (reported as `server` in echoes).
pub async fn upstream(name: &'static str, behaviour: Behaviour) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let hits = counter.clone();
            tokio::spawn(async move {
                match behaviour {
                    Behaviour::Hang => {
                        hits.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Behaviour::Reset => {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let mut buf = [0u8; 1024];
                        let _ = stream.read(&mut buf).await;
                        drop(stream);
                    }
                    _ => {
                        let service = service_fn(move |req| {
                            hits.fetch_add(1, Ordering::SeqCst);
                            echo(name, behaviour, req)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await;
                    }
                }
            });
        }
    });
    Upstream { addr, hits, task }
}

/// A raw TCP upstream: for each connection, reads one request head, writes `answer(head)`
/// verbatim and closes. For framings a real HTTP server would not produce.
pub async fn raw_upstream(
    answer: fn(&[u8]) -> &'static [u8],
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(answer(&head)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// An address where nothing listens (connections are refused).
pub async fn refused_node() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr.to_string()
}

async fn echo(
    name: &'static str,
    behaviour: Behaviour,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Behaviour::Slow(d) = behaviour {
        tokio::time::sleep(d).await;
    }
    if req.headers().get("upgrade").is_some() {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .body(Full::new(Bytes::new()))
            .expect("response"));
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let json = serde_json::json!({
        "server": name,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let status = match behaviour {
        Behaviour::Status(s) => s,
        _ => 200,
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("connection", "keep-alive")
        .header("x-upstream", name)
        .body(Full::new(Bytes::from(json.to_string())))
        .expect("response"))
}

/// A gateway started from config text, with its temporary config directory.
pub struct TestGateway {
    pub gateway: Gateway,
    pub dir: tempfile::TempDir,
    /// The etcd the gateway uses, if any (stopped when the test gateway is dropped).
    pub etcd: Option<etcd::Etcd>,
}

impl TestGateway {
    /// `http://127.0.0.1:port` of the first listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addrs()[0])
    }

    pub fn addr(&self) -> SocketAddr {
        self.gateway.addrs()[0]
    }

    /// Replaces `apisix.yaml` atomically (write + rename, as editors and deploy tools do).
    pub fn write_routes(&self, yaml: &str) {
        write_atomic(&self.dir.path().join("apisix.yaml"), yaml);
    }

    /// Waits until the snapshot version passes `version`.
    pub async fn wait_for_version(&self, version: u64) {
        for _ in 0..200 {
            if self.gateway.snapshot_version() > version {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("config was not reloaded");
    }
}

pub fn write_atomic(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Starts a gateway on 127.0.0.1:0 with `apisix_yaml` (must end with `#END`) as its standalone
/// config; `extra` is `config.yaml` text merged over the base config (maps merged key by key).
pub async fn gateway_with(apisix_yaml: &str, extra: &str) -> TestGateway {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("apisix.yaml"), apisix_yaml).expect("write routes");
    start_in(dir, extra).await
}

/// The base `config.yaml` of test gateways: loopback, port 0 (proxy and Admin API), no access
/// log, no control API, routes from the standalone file.
const BASE_CONFIG: &str = "apisix:\n  node_listen:\n    - {ip: 127.0.0.1, port: 0}\n  enable_control: false\nnginx_config:\n  worker_shutdown_timeout: 5s\n  http:\n    enable_access_log: false\ndeployment:\n  role_traditional: {config_provider: yaml}\n  admin:\n    admin_listen: {ip: 127.0.0.1, port: 0}\n";

/// Starts a gateway in `dir` with the base config merged with `extra`.
pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> TestGateway {
    ferrogate::observe::init_tracing(ferrogate::config::LogLevel::Error);
    std::fs::write(dir.path().join("config.yaml"), merged_config(extra)).expect("write config");
    let loaded = NodeConfig::load(&dir.path().join("config.yaml")).expect("valid config");
    let gateway = gateway::start(loaded, Duration::from_millis(20), &[])
        .await
        .expect("gateway starts");
    TestGateway {
        gateway,
        dir,
        etcd: None,
    }
}

/// The base config with `extra` merged over it.
pub fn merged_config(extra: &str) -> String {
    merge_yaml(BASE_CONFIG, extra)
}

/// `over` (YAML text) merged over `base`: maps merged key by key, anything else replaced.
pub fn merge_yaml(base: &str, over: &str) -> String {
    fn merge(base: &mut serde_yaml_ng::Value, over: serde_yaml_ng::Value) {
        match (base, over) {
            (serde_yaml_ng::Value::Mapping(b), serde_yaml_ng::Value::Mapping(o)) => {
                for (k, v) in o {
                    match b.get_mut(&k) {
                        Some(existing) => merge(existing, v),
                        None => {
                            b.insert(k, v);
                        }
                    }
                }
            }
            (b, o) => *b = o,
        }
    }
    let mut base: serde_yaml_ng::Value = serde_yaml_ng::from_str(base).expect("base is YAML");
    if !over.trim().is_empty() {
        merge(
            &mut base,
            serde_yaml_ng::from_str(over).expect("extra config is YAML"),
        );
    }
    serde_yaml_ng::to_string(&base).expect("config text")
}

pub async fn gateway(apisix_yaml: &str) -> TestGateway {
    gateway_with(apisix_yaml, "").await
}

pub type TestClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response read whole.
pub struct Got {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The upstream's echo: header value seen by the upstream.
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_owned)
    }
}

/// Sends a request and reads the whole response.
pub async fn send(client: &TestClient, req: Request<Full<Bytes>>) -> Got {
    let resp = client.request(req).await.expect("request sent");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str) -> Got {
    get_with(url, &[]).await
}

pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Got {
    request(http::Method::GET, url, headers).await
}

/// Sends `method` to `url` with `headers` and an empty body.
pub async fn request(method: http::Method, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(
        &client(),
        req.body(Full::new(Bytes::new())).expect("request"),
    )
    .await
}

/// Sends raw bytes on a new connection and returns everything the server sends before closing
/// (or until 2 s pass).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A port that was free a moment ago (for processes that cannot report the port they bound).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts connections on 127.0.0.1:`port` (up to 5 s).
pub async fn wait_until_listening(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gateway did not start listening on {port}");
}
