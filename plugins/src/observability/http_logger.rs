//! `http-logger` (priority 410, log): request entries POSTed in batches to an HTTP(S) collector.
//!
//! Config: `uri` (required, `http://` or `https://` with a host), `auth_header` (optional, sent
//! as `Authorization`), `timeout` (seconds, default 3, ≥ 1: connecting and answering each POST),
//! `log_format` (optional object, see [`crate::support::log_entry`]), `concat_method` `json` (default: the
//! batch is a JSON array, `Content-Type: application/json`) or `new_line` (one JSON entry per
//! line, `Content-Type: text/plain`), `ssl_verify` (default true), `log_format_extra`,
//! `include_req_body` / `include_resp_body` (default false) with `include_req_body_expr` /
//! `include_resp_body_expr` and `max_req_body_bytes` / `max_resp_body_bytes` (default 524288, see
//! [`crate::support::log_entry::Bodies`]), and the batch processor's `name` (default `http logger`),
//! `batch_max_size` (1000, ≥ 1), `inactive_timeout` (seconds, 5, ≥ 1), `buffer_duration`
//! (seconds, 60, ≥ 1), `max_retry_count` (0), `retry_delay` (seconds, 1), `max_pending_entries`
//! (default [`DEFAULT_MAX_PENDING`], ≥ 1).
//!
//! The `log` phase formats the entry and hands it to the instance's background task (started on
//! the first entry, on the request's runtime) without waiting. The task sends a batch when it
//! holds `batch_max_size` entries, when no entry came for `inactive_timeout`, or when its oldest
//! entry is `buffer_duration` old. A failed POST (no answer within `timeout`, or a status ≥ 400)
//! is retried `max_retry_count` times, `retry_delay` apart, then the batch is dropped and
//! reported. Entries queued or being sent count against `max_pending_entries`; beyond it new
//! entries are dropped and reported in a warning. When the instance is dropped (route changed or
//! removed) the task sends what it holds and ends.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::{ClientConfig, RootCertStore};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::support::log_entry::{Bodies, BodyConf, Format, DEFAULT_MAX_BODY_BYTES};
use plugin_api::drain::Drain;
use plugin_api::tls::NoVerification;
use plugin_api::{
    BatchQueue, BatchWatch, BuildContext, Flow, Kind, LogCtx, Phases, Plugin, RequestCtx,
    ResponseCtx,
};

/// The kind.
pub struct HttpLogger;

/// `max_pending_entries` when not set.
pub const DEFAULT_MAX_PENDING: usize = 8192;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conf {
    uri: String,
    auth_header: Option<String>,
    #[serde(default = "default_timeout")]
    timeout: u64,
    log_format: Option<Map<String, Value>>,
    log_format_extra: Option<Map<String, Value>>,
    #[serde(default)]
    concat_method: Concat,
    #[serde(default = "plugin_api::schema::yes")]
    ssl_verify: bool,
    #[serde(default)]
    include_req_body: bool,
    #[schemars(length(min = 1))]
    include_req_body_expr: Option<Vec<Vec<Value>>>,
    #[serde(default)]
    include_resp_body: bool,
    #[schemars(length(min = 1))]
    include_resp_body_expr: Option<Vec<Vec<Value>>>,
    #[serde(default = "default_max_body")]
    #[schemars(range(min = 1))]
    max_req_body_bytes: u64,
    #[serde(default = "default_max_body")]
    #[schemars(range(min = 1))]
    max_resp_body_bytes: u64,
    #[serde(default = "default_name")]
    name: String,
    #[serde(default = "default_batch_max_size")]
    batch_max_size: usize,
    #[serde(default = "default_inactive_timeout")]
    inactive_timeout: u64,
    #[serde(default = "default_buffer_duration")]
    buffer_duration: u64,
    #[serde(default)]
    max_retry_count: u32,
    #[serde(default = "default_retry_delay")]
    retry_delay: u64,
    max_pending_entries: Option<usize>,
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum Concat {
    #[default]
    Json,
    NewLine,
}

fn default_timeout() -> u64 {
    3
}
fn default_max_body() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn default_name() -> String {
    "http logger".to_owned()
}
fn default_batch_max_size() -> usize {
    1000
}
fn default_inactive_timeout() -> u64 {
    5
}
fn default_buffer_duration() -> u64 {
    60
}
fn default_retry_delay() -> u64 {
    1
}

/// An instance's validated settings.
#[derive(Debug)]
struct Settings {
    uri: Uri,
    auth_header: Option<HeaderValue>,
    timeout: Duration,
    concat: Concat,
    ssl_verify: bool,
    batch_max_size: usize,
    inactive_timeout: Duration,
    buffer_duration: Duration,
    max_retry_count: u32,
    retry_delay: Duration,
    max_pending: usize,
    /// The batch processor's name, in its reports.
    name: String,
}

impl Settings {
    fn from_conf(conf: &Conf) -> Result<Settings, String> {
        let uri: Uri = conf
            .uri
            .parse()
            .map_err(|e| format!("uri: invalid `{}`: {e}", conf.uri))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "uri: `{}` must be an http:// or https:// URL with a host",
                conf.uri
            ));
        }
        let auth_header = conf
            .auth_header
            .as_deref()
            .map(|a| HeaderValue::from_str(a).map_err(|_| "auth_header: invalid header value"))
            .transpose()?;
        for (field, value, min) in [
            ("timeout", conf.timeout, 1),
            ("inactive_timeout", conf.inactive_timeout, 1),
            ("buffer_duration", conf.buffer_duration, 1),
            ("batch_max_size", conf.batch_max_size as u64, 1),
            (
                "max_pending_entries",
                conf.max_pending_entries.unwrap_or(1) as u64,
                1,
            ),
        ] {
            if value < min {
                return Err(format!("{field} must be at least {min}"));
            }
        }
        Ok(Settings {
            uri,
            auth_header,
            timeout: Duration::from_secs(conf.timeout),
            concat: conf.concat_method,
            ssl_verify: conf.ssl_verify,
            batch_max_size: conf.batch_max_size,
            inactive_timeout: Duration::from_secs(conf.inactive_timeout),
            buffer_duration: Duration::from_secs(conf.buffer_duration),
            max_retry_count: conf.max_retry_count,
            retry_delay: Duration::from_secs(conf.retry_delay),
            max_pending: conf.max_pending_entries.unwrap_or(DEFAULT_MAX_PENDING),
            name: conf.name.clone(),
        })
    }
}

/// A configured instance (the checked config).
pub struct Instance {
    settings: Arc<Settings>,
    format: Format,
    /// Started on the first entry; `None` inside when no runtime could run the task.
    queue: OnceLock<Option<Queue>>,
    /// The gateway's shutdown drain: the task counts in it until it ends.
    drain: Option<Arc<Drain>>,
    /// Where the queue is reported (the gateway's metrics).
    batches: Option<Arc<dyn BatchWatch>>,
    /// Set once the queue is reported in the metrics.
    watched: OnceLock<()>,
}

/// The instance's end of its task's queue; dropping it lets the task flush and end.
struct Queue {
    tx: mpsc::UnboundedSender<String>,
    counts: Arc<Counts>,
}

/// The address a request came in on (`server_addr`), kept by `rewrite` for the batch queue's
/// metric labels until the queue is watched.
#[derive(Clone)]
struct ServerAddr(String);

/// Shared between the instance and its task.
#[derive(Default)]
struct Counts {
    /// Entries queued or in a batch not yet done.
    pending: AtomicUsize,
    /// Entries dropped since the last warning.
    dropped: AtomicU64,
}

impl Kind for HttpLogger {
    type Conf = Conf;
    type Checked = Instance;
    const NAME: &'static str = "http-logger";
    const PRIORITY: i32 = 410;

    /// The instance, but for the gateway's parts, which [`Kind::instance`] adds.
    fn check(&self, conf: Conf) -> Result<Instance, String> {
        let settings = Settings::from_conf(&conf)?;
        Ok(Instance {
            settings: Arc::new(settings),
            format: format(conf)?,
            queue: OnceLock::new(),
            drain: None,
            batches: None,
            watched: OnceLock::new(),
        })
    }

    fn instance(&self, checked: Instance, ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        let mut instance = checked;
        instance.drain = ctx.drain.clone();
        instance.batches = ctx.batches.clone();
        Ok(Arc::new(instance))
    }
}

/// The entries' format: `log_format`, `log_format_extra` and the bodies.
fn format(conf: Conf) -> Result<Format, String> {
    let bodies = Bodies::new(
        BodyConf {
            include: conf.include_req_body,
            expr: conf.include_req_body_expr.as_deref(),
            max: conf.max_req_body_bytes,
        },
        BodyConf {
            include: conf.include_resp_body,
            expr: conf.include_resp_body_expr.as_deref(),
            max: conf.max_resp_body_bytes,
        },
    )?;
    Format::with(conf.log_format, conf.log_format_extra, bodies)
}

/// The runtime the task runs on: the caller's, else a small one of the plugin's own.
fn runtime() -> Option<Handle> {
    if let Ok(handle) = Handle::try_current() {
        return Some(handle);
    }
    static OWN: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    OWN.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("http-logger")
            .enable_all()
            .build()
            .map_err(|e| tracing::error!(error = %e, "http-logger: cannot start a runtime"))
            .ok()
    })
    .as_ref()
    .map(|rt| rt.handle().clone())
}

impl Instance {
    fn queue(&self) -> Option<&Queue> {
        self.queue
            .get_or_init(|| {
                let handle = runtime()?;
                let (tx, rx) = mpsc::unbounded_channel();
                let counts = Arc::new(Counts::default());
                let working = self.drain.as_ref().map(Drain::start);
                let settings = self.settings.clone();
                let task_counts = counts.clone();
                handle.spawn(async move {
                    run(settings, rx, task_counts).await;
                    drop(working);
                });
                Some(Queue { tx, counts })
            })
            .as_ref()
    }

    /// Queues one entry; false when it was dropped (queue full or task gone).
    fn push(&self, entry: String) -> bool {
        let Some(queue) = self.queue() else {
            return false;
        };
        let counts = &queue.counts;
        if counts.pending.fetch_add(1, Ordering::AcqRel) >= self.settings.max_pending {
            counts.pending.fetch_sub(1, Ordering::AcqRel);
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if queue.tx.send(entry).is_err() {
            counts.pending.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }
}

impl BatchQueue for Counts {
    fn entries(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

#[async_trait::async_trait]
impl Plugin for Instance {
    fn phases(&self) -> Phases {
        Phases::REWRITE | Phases::HEADER_FILTER | Phases::LOG
    }

    async fn rewrite(&self, req: &mut RequestCtx<'_>) -> Flow {
        self.format.capture(req);
        self.format.capture_bodies(req).await;
        if self.watched.get().is_none() && req.state.get::<ServerAddr>().is_none() {
            if let Some(addr) = req.vars.get("server_addr") {
                req.state.insert(ServerAddr(addr.into_owned()));
            }
        }
        Flow::Continue
    }

    fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        self.format.capture_response(resp);
    }

    fn log(&self, done: &LogCtx<'_>) {
        self.push(self.format.entry(done).to_string());
        // As APISIX's batch processor: the queue is reported under the route and server address
        // of the request that started it.
        self.watched.get_or_init(|| {
            if let (Some(queue), Some(batches)) = (self.queue(), &self.batches) {
                let counts: Arc<dyn BatchQueue> = queue.counts.clone();
                let addr = done.state.get::<ServerAddr>().map_or("", |a| a.0.as_str());
                batches.watch(
                    &self.settings.name,
                    &done.request.route_id,
                    addr,
                    Arc::downgrade(&counts),
                );
            }
        });
    }
}

/// The entries collected for the next POST.
#[derive(Default)]
struct Batch {
    entries: Vec<String>,
    /// When the oldest entry came.
    first: Option<Instant>,
    /// When the newest entry came.
    last: Option<Instant>,
}

impl Batch {
    /// Adds an entry; true when the batch is full.
    fn push(&mut self, entry: String, now: Instant, max: usize) -> bool {
        self.entries.push(entry);
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.entries.len() >= max
    }

    /// When the batch is due even if it does not fill up: `inactive` after the newest entry or
    /// `buffer` after the oldest, whichever comes first. `None` when empty.
    fn deadline(&self, inactive: Duration, buffer: Duration) -> Option<Instant> {
        let first = self.first? + buffer;
        let last = self.last? + inactive;
        Some(first.min(last))
    }

    /// Takes the entries, leaving the batch empty.
    fn take(&mut self) -> Vec<String> {
        self.first = None;
        self.last = None;
        std::mem::take(&mut self.entries)
    }
}

/// The POST body of `entries` and its content type.
fn body(entries: &[String], concat: Concat) -> (Bytes, &'static str) {
    match concat {
        Concat::Json => (
            Bytes::from(format!("[{}]", entries.join(","))),
            "application/json",
        ),
        Concat::NewLine => (Bytes::from(entries.join("\n")), "text/plain"),
    }
}

type LogClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The system's trusted roots, loaded once.
fn roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            Arc::new(roots)
        })
        .clone()
}

/// A client for `settings` (TLS verified unless `ssl_verify` is false).
///
/// # Errors
/// When rustls refuses the protocol versions (not expected).
async fn client(settings: &Settings) -> Result<LogClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if settings.ssl_verify && settings.uri.scheme_str() == Some("https") {
        // Reading the system's certificates is blocking I/O: keep it off the runtime's workers.
        let roots = tokio::task::spawn_blocking(roots)
            .await
            .map_err(|e| e.to_string())?;
        builder.with_root_certificates(roots)
    } else if settings.ssl_verify {
        builder.with_root_certificates(RootCertStore::empty())
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.timeout));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(builder.with_no_client_auth())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_max_idle_per_host(1)
        .build(connector))
}

/// One POST of `body`; errors on no answer within the timeout or a status ≥ 400.
async fn post(
    client: &LogClient,
    s: &Settings,
    body: Bytes,
    content_type: &'static str,
) -> Result<(), String> {
    let mut req = Request::post(s.uri.clone()).header(CONTENT_TYPE, content_type);
    if let Some(auth) = &s.auth_header {
        req = req.header(AUTHORIZATION, auth.clone());
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(s.timeout, client.request(req))
        .await
        .map_err(|_| format!("no answer within {}s", s.timeout.as_secs()))?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    // Read the answer so the connection can be reused.
    let _ = tokio::time::timeout(s.timeout, resp.into_body().collect()).await;
    if status.as_u16() >= 400 {
        return Err(format!("the collector answered {status}"));
    }
    Ok(())
}

/// Sends one batch, retrying as configured; errors after the last attempt failed.
async fn send(
    client: &mut Option<LogClient>,
    s: &Settings,
    entries: &[String],
) -> Result<(), String> {
    let (bytes, content_type) = body(entries, s.concat);
    let mut attempt = 0;
    loop {
        let result = match client {
            Some(c) => post(c, s, bytes.clone(), content_type).await,
            None => match self::client(s).await {
                Ok(c) => post(client.insert(c), s, bytes.clone(), content_type).await,
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= s.max_retry_count => return Err(e),
            Err(e) => {
                attempt += 1;
                tracing::debug!(processor = %s.name, uri = %s.uri, error = %e, attempt, "http-logger: retrying a batch");
                tokio::time::sleep(s.retry_delay).await;
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// The background task: batches entries and sends them until the instance is dropped.
async fn run(s: Arc<Settings>, mut rx: mpsc::UnboundedReceiver<String>, counts: Arc<Counts>) {
    let mut client = None;
    let mut batch = Batch::default();
    loop {
        let deadline = batch.deadline(s.inactive_timeout, s.buffer_duration);
        let (due, closed) = tokio::select! {
            entry = rx.recv() => match entry {
                Some(entry) => (batch.push(entry, Instant::now(), s.batch_max_size), false),
                None => (true, true),
            },
            () = until(deadline) => (true, false),
        };
        let dropped = counts.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(processor = %s.name, uri = %s.uri, dropped, "http-logger: queue full, entries dropped");
        }
        if due && !batch.entries.is_empty() {
            let entries = batch.take();
            if let Err(e) = send(&mut client, &s, &entries).await {
                tracing::error!(processor = %s.name, uri = %s.uri, error = %e, entries = entries.len(), "http-logger: batch dropped");
            }
            counts.pending.fetch_sub(entries.len(), Ordering::AcqRel);
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use plugin_api::parse_conf;
    use plugin_api::testing;
    use plugin_api::PluginKind;
    use serde_json::json;
    use std::sync::Mutex;

    fn settings(conf: Value) -> Settings {
        Settings::from_conf(&parse_conf(&conf).expect("valid")).expect("settings")
    }

    fn instance(conf: Value) -> Instance {
        let parsed: Conf = parse_conf(&conf).expect("valid");
        Instance {
            settings: Arc::new(settings(conf)),
            format: format(parsed).expect("format"),
            queue: OnceLock::new(),
            drain: None,
            batches: None,
            watched: OnceLock::new(),
        }
    }

    /// What the test collector received: (headers, body) per POST.
    type Received = Arc<Mutex<Vec<(http::HeaderMap, String)>>>;

    /// A collector on 127.0.0.1:0 answering each POST with the next of `statuses` (then 200).
    async fn collector(statuses: Vec<u16>) -> (String, Received) {
        collector_on(statuses, None).await
    }

    /// As [`collector`], over TLS with a self-signed certificate for `localhost`.
    async fn tls_collector() -> (String, Received) {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let der_key = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], der_key)
        .expect("server config");
        let (uri, received) = collector_on(
            vec![],
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await;
        (
            uri.replace("http://127.0.0.1", "https://localhost"),
            received,
        )
    }

    async fn collector_on(
        statuses: Vec<u16>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> (String, Received) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received: Received = Arc::default();
        let statuses = Arc::new(Mutex::new(statuses.into_iter()));
        let got = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let got = got.clone();
                let statuses = statuses.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: http::Request<Incoming>| {
                            let got = got.clone();
                            let statuses = statuses.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                got.lock().expect("lock").push((
                                    parts.headers,
                                    String::from_utf8_lossy(&body).into_owned(),
                                ));
                                let status = statuses.lock().expect("lock").next().unwrap_or(200);
                                let mut resp = http::Response::new(Full::new(Bytes::new()));
                                *resp.status_mut() = StatusCode::from_u16(status).expect("status");
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        (format!("http://{addr}/logs"), received)
    }

    async fn wait_for(
        received: &Received,
        n: usize,
        within: Duration,
    ) -> Vec<(http::HeaderMap, String)> {
        let deadline = Instant::now() + within;
        loop {
            let got = received.lock().expect("lock").clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn defaults() {
        let s = settings(json!({"uri": "http://127.0.0.1:1/x"}));
        assert_eq!(s.timeout, Duration::from_secs(3));
        assert_eq!(s.concat, Concat::Json);
        assert!(s.ssl_verify);
        assert!(s.auth_header.is_none());
        assert_eq!(s.batch_max_size, 1000);
        assert_eq!(s.inactive_timeout, Duration::from_secs(5));
        assert_eq!(s.buffer_duration, Duration::from_secs(60));
        assert_eq!(s.max_retry_count, 0);
        assert_eq!(s.retry_delay, Duration::from_secs(1));
        assert_eq!(s.max_pending, DEFAULT_MAX_PENDING);
        let s = settings(json!({
            "uri": "https://logs.example/in", "auth_header": "Bearer t", "timeout": 7,
            "concat_method": "new_line", "ssl_verify": false, "batch_max_size": 2,
            "inactive_timeout": 3, "buffer_duration": 9, "max_retry_count": 4, "retry_delay": 0,
            "max_pending_entries": 10, "include_req_body": false, "include_resp_body": false,
            "log_format": {"h": "$host"}
        }));
        assert_eq!(s.timeout, Duration::from_secs(7));
        assert_eq!(s.concat, Concat::NewLine);
        assert!(!s.ssl_verify);
        assert_eq!(
            s.auth_header.as_ref().map(|h| h.as_bytes()),
            Some(&b"Bearer t"[..])
        );
        assert_eq!(
            (s.batch_max_size, s.inactive_timeout, s.buffer_duration),
            (2, Duration::from_secs(3), Duration::from_secs(9))
        );
        assert_eq!(
            (s.max_retry_count, s.retry_delay, s.max_pending),
            (4, Duration::ZERO, 10)
        );
    }

    #[test]
    fn configs_are_checked() {
        assert!(HttpLogger
            .build(&json!({"uri": "http://127.0.0.1:1"}))
            .is_ok());
        for bad in [
            json!({}),
            json!({"uri": "ftp://x/y"}),
            json!({"uri": "/relative"}),
            json!({"uri": "not a uri"}),
            json!({"uri": "http://x", "auth_header": "bad\nvalue"}),
            json!({"uri": "http://x", "timeout": 0}),
            json!({"uri": "http://x", "timeout": -1}),
            json!({"uri": "http://x", "concat_method": "csv"}),
            json!({"uri": "http://x", "batch_max_size": 0}),
            json!({"uri": "http://x", "inactive_timeout": 0}),
            json!({"uri": "http://x", "buffer_duration": 0}),
            json!({"uri": "http://x", "max_retry_count": -1}),
            json!({"uri": "http://x", "retry_delay": "1"}),
            json!({"uri": "http://x", "max_pending_entries": 0}),
            json!({"uri": "http://x", "ssl_verify": "no"}),
            json!({"uri": "http://x", "log_format": {"a": "$"}}),
            json!({"uri": "http://x", "max_req_body_bytes": 0}),
            json!({"uri": "http://x", "include_resp_body_expr": []}),
            json!({"uri": "http://x", "include_req_body_expr": ["a"]}),
            json!({"uri": "http://x", "unknown": 1}),
        ] {
            assert!(HttpLogger.build(&bad).is_err(), "{bad}");
        }
        assert!(HttpLogger
            .build(
                &json!({"uri": "http://x", "name": "n", "include_req_body": true,
                "include_resp_body": true, "include_resp_body_expr": [["arg_a", "==", "1"]],
                "max_resp_body_bytes": 10, "log_format_extra": {"x": "$host"}})
            )
            .is_ok());
        let Err(why) = HttpLogger
            .build(&json!({"uri": "http://x", "include_resp_body_expr": [["bar", "<>", "foo"]]}))
        else {
            panic!("a bad expression accepted");
        };
        assert_eq!(
            why,
            "failed to validate the 'include_resp_body_expr' expression: invalid operator '<>'"
        );
    }

    #[test]
    fn batches_fill_up_and_fall_due() {
        let t0 = Instant::now();
        let (inactive, buffer) = (Duration::from_secs(5), Duration::from_secs(60));
        let mut b = Batch::default();
        assert_eq!(
            b.deadline(inactive, buffer),
            None,
            "an empty batch is never due"
        );
        assert!(!b.push("a".into(), t0, 3));
        assert_eq!(b.deadline(inactive, buffer), Some(t0 + inactive));
        let t1 = t0 + Duration::from_secs(4);
        assert!(!b.push("b".into(), t1, 3));
        assert_eq!(
            b.deadline(inactive, buffer),
            Some(t1 + inactive),
            "activity postpones"
        );
        // A steady trickle: buffer_duration after the oldest entry caps the wait.
        let t2 = t0 + Duration::from_secs(58);
        b.last = Some(t2);
        assert_eq!(b.deadline(inactive, buffer), Some(t0 + buffer));
        assert!(b.push("c".into(), t2, 3), "full at batch_max_size");
        assert_eq!(b.take(), vec!["a", "b", "c"]);
        assert_eq!(b.deadline(inactive, buffer), None);
    }

    #[test]
    fn bodies_are_concatenated() {
        let entries = vec!["{\"a\":1}".to_owned(), "{\"b\":2}".to_owned()];
        let (json_body, ct) = body(&entries, Concat::Json);
        assert_eq!(ct, "application/json");
        assert_eq!(
            serde_json::from_slice::<Value>(&json_body).expect("json"),
            json!([{"a": 1}, {"b": 2}])
        );
        let (lines, ct) = body(&entries, Concat::NewLine);
        assert_eq!(ct, "text/plain");
        assert_eq!(&lines[..], b"{\"a\":1}\n{\"b\":2}");
    }

    #[tokio::test]
    async fn full_batches_go_at_once_and_the_rest_on_inactivity() {
        let (uri, received) = collector(vec![]).await;
        let plugin = instance(json!({
            "uri": uri, "batch_max_size": 2, "inactive_timeout": 1, "auth_header": "Bearer k"
        }));
        let state = http::Extensions::new();
        let start = Instant::now();
        for status in [200, 201, 202] {
            testing::log(&plugin, status, &state);
        }
        let got = wait_for(&received, 1, Duration::from_secs(2)).await;
        assert_eq!(got.len(), 1);
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "a full batch does not wait"
        );
        let first: Value = serde_json::from_str(&got[0].1).expect("json array");
        assert_eq!(first.as_array().map(Vec::len), Some(2));
        assert_eq!(first[0]["response"]["status"], 200);
        assert_eq!(first[1]["response"]["status"], 201);
        assert_eq!(
            got[0].0.get("authorization").map(|v| v.as_bytes()),
            Some(&b"Bearer k"[..])
        );
        assert_eq!(
            got[0].0.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let got = wait_for(&received, 2, Duration::from_secs(3)).await;
        assert_eq!(got.len(), 2, "the last entry goes after inactive_timeout");
        assert!(start.elapsed() >= Duration::from_millis(900));
        let second: Value = serde_json::from_str(&got[1].1).expect("json array");
        assert_eq!(second[0]["response"]["status"], 202);
    }

    #[tokio::test]
    async fn dropping_the_instance_flushes_and_ends_the_task() {
        let (uri, received) = collector(vec![]).await;
        let plugin = instance(json!({
            "uri": uri, "concat_method": "new_line", "log_format": {"s": "$status"}
        }));
        testing::log(&plugin, 200, &http::Extensions::new());
        testing::log(&plugin, 404, &http::Extensions::new());
        let counts = plugin.queue().map(|q| q.counts.clone()).expect("queue");
        drop(plugin);
        let got = wait_for(&received, 1, Duration::from_secs(2)).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, "{\"s\":\"200\"}\n{\"s\":\"404\"}");
        // The task let go of its end: only this test holds the counts.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&counts) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(Arc::strong_count(&counts), 1, "the task ended");
        assert_eq!(counts.pending.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn failed_batches_are_retried() {
        let (uri, received) = collector(vec![500, 503, 200]).await;
        let plugin = instance(json!({
            "uri": uri, "batch_max_size": 1, "max_retry_count": 2, "retry_delay": 0
        }));
        testing::log(&plugin, 200, &http::Extensions::new());
        let got = wait_for(&received, 3, Duration::from_secs(2)).await;
        assert_eq!(got.len(), 3, "two failures then a success");
        assert_eq!(got[0].1, got[2].1, "the same batch is sent again");
        let counts = plugin.queue().map(|q| q.counts.clone()).expect("queue");
        let deadline = Instant::now() + Duration::from_secs(1);
        while counts.pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(counts.pending.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_batch_failing_every_attempt_is_dropped() {
        let (uri, received) = collector(vec![500, 500, 200]).await;
        let plugin = instance(json!({
            "uri": uri, "batch_max_size": 1, "max_retry_count": 1, "retry_delay": 0
        }));
        testing::log(&plugin, 200, &http::Extensions::new());
        testing::log(&plugin, 201, &http::Extensions::new());
        let got = wait_for(&received, 3, Duration::from_secs(2)).await;
        assert_eq!(got.len(), 3);
        let status = |i: usize| {
            serde_json::from_str::<Value>(&got[i].1).expect("json")[0]["response"]["status"].clone()
        };
        assert_eq!(
            (status(0), status(1), status(2)),
            (json!(200), json!(200), json!(201))
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_new_entries() {
        // Nothing listens: the POST fails; the entry stays pending during the retry delay.
        let plugin = instance(json!({
            "uri": "http://127.0.0.1:9/x", "batch_max_size": 1, "max_pending_entries": 2,
            "max_retry_count": 1, "retry_delay": 5, "timeout": 1
        }));
        assert!(plugin.push("{}".into()));
        assert!(plugin.push("{}".into()));
        assert!(!plugin.push("{}".into()), "the third entry is dropped");
        let counts = plugin.queue().map(|q| q.counts.clone()).expect("queue");
        assert_eq!(counts.pending.load(Ordering::Acquire), 2);
        // The drop is counted until the task reports it (the test's runtime has not run it yet).
        assert_eq!(counts.dropped.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn ssl_verify_false_accepts_any_certificate() {
        let (uri, received) = tls_collector().await;
        let trusting = instance(json!({
            "uri": uri, "ssl_verify": false, "batch_max_size": 1, "timeout": 2
        }));
        assert!(trusting.push("{\"a\":1}".into()));
        let got = wait_for(&received, 1, Duration::from_secs(3)).await;
        assert_eq!(got.len(), 1, "delivered over https without verification");
        assert_eq!(got[0].1, "[{\"a\":1}]");
        // Verified (the default), the self-signed certificate is refused: nothing arrives.
        let verifying = instance(json!({"uri": uri, "batch_max_size": 1, "timeout": 2}));
        assert!(verifying.push("{\"b\":2}".into()));
        let counts = verifying.queue().map(|q| q.counts.clone()).expect("queue");
        let deadline = Instant::now() + Duration::from_secs(3);
        while counts.pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            counts.pending.load(Ordering::Acquire),
            0,
            "the batch was dropped"
        );
        assert_eq!(received.lock().expect("lock").len(), 1);
    }

    #[test]
    fn without_a_runtime_the_plugin_uses_its_own() {
        let plugin = instance(json!({"uri": "http://127.0.0.1:9/x"}));
        assert!(plugin.push("{}".into()));
    }
}
