//! The proxy's HTTP server: listeners, connections and graceful shutdown.
//!
//! Each listener accepts connections and serves them with hyper: HTTP/1.1 with keep-alive and
//! upgrades (WebSocket), plus cleartext HTTP/2 (prior knowledge) when the listener enables it.
//! TLS listeners (`apisix.ssl.listen`) pick the certificate by SNI from the current snapshot
//! (see [`crate::snapshot::tls`]) and serve HTTP/2 when the client chose `h2` by ALPN.
//! [`serve`] runs until the injected `shutdown` future completes, then stops accepting, asks every
//! connection to finish its current request, and waits for them up to the configured deadline.
//!
//! Layout:
//! - `pipeline`: one request from arrival to response (route, forward, response headers).
//! - `path`: path normalisation before routing.
//! - `host`: the request's Host, checked and normalised once for every decision.
//! - `vars`: request variables for `vars` expressions and chash keys.
//! - `post_args`: the request body read before routing for `post_arg_*` / `post_arg.*` vars.
//! - `headers`: hop-by-hop removal and `X-Forwarded-*` for the upstream request.
//! - `body`: the response body (upstream stream with read timeout, or a small fixed body) and the
//!   access-log record written when it ends.
//! - `error`: every response the gateway itself produces for a failure.
//! - `limits`: the open-file limit, the connection cap and accept failures.

pub mod body;
mod error;
mod headers;
pub mod host;
pub mod limits;
pub mod path;
mod pipeline;
mod post_args;
pub mod vars;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use body::ResponseBody;

use crate::observe::prometheus::CountsNow;
use crate::observe::AccessLog;
use crate::snapshot::{tls, Snapshot};

/// Per-process server settings (from the node config; fixed for the process lifetime).
pub struct ServerSettings {
    /// The `Server` header of every response.
    pub server_header: HeaderValue,
    /// Send `X-APISIX-Upstream-Status` on every proxied response, not only on 5xx.
    pub show_upstream_status: bool,
    /// Route on the path with `%2F` kept encoded (`apisix.match_uri_encoded_slash`); see
    /// [`path::keep_encoded_slash`].
    pub match_uri_encoded_slash: bool,
    /// Route on the path without its `;` parameters (`apisix.normalize_uri_like_servlet`); see
    /// [`path::like_servlet`].
    pub normalize_uri_like_servlet: bool,
    /// Route on the path without its trailing `/` (`apisix.delete_uri_tail_slash`; with
    /// `normalize_uri_like_servlet` on, as in APISIX, the servlet form wins and keeps it).
    pub delete_uri_tail_slash: bool,
    /// Largest request head accepted; larger gets 431.
    pub max_header_size: usize,
    /// Time a client connection may wait for its next request head to arrive complete (idle
    /// keep-alive included).
    pub idle_timeout: Duration,
    /// Peers whose `real_ip_header` is trusted as the client address.
    pub real_ip_from: Vec<ipnet::IpNet>,
    /// Peers whose forwarding headers pass on upstream (`apisix.trusted_addresses`); `None`
    /// when the setting is absent.
    pub trusted_addresses: Option<Vec<ipnet::IpNet>>,
    /// The header carrying the real client address (`X-Real-IP`).
    pub real_ip_header: http::header::HeaderName,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
    /// Longest wait between two reads of a request body (`client_body_timeout`); 408 after it.
    pub client_body_timeout: Duration,
    /// Request bodies up to this size are read whole before connecting upstream; larger ones
    /// stream (`client_body_buffer_size`).
    pub client_body_buffer_size: usize,
    /// Largest request body accepted (`client_max_body_size`, 0: no limit); 413 beyond it.
    pub client_max_body_size: u64,
    /// Concurrent streams per HTTP/2 connection (`http2_max_concurrent_streams`).
    pub http2_max_concurrent_streams: u32,
    /// Request bodies each client address may stream to upstreams at once, and their count
    /// (`streamed_bodies_per_client`).
    pub streamed_bodies: crate::upstream::body::StreamLimit,
    /// Most client connections open at once across all listeners (see
    /// [`limits::connection_cap`]).
    pub max_connections: usize,
}

/// Everything a request needs, shared by all connections.
pub struct State {
    /// The current config snapshot (one atomic load per request).
    pub snapshot: ArcSwap<Snapshot>,
    /// Fixed settings.
    pub settings: ServerSettings,
    /// Where access log lines go, if enabled.
    pub access_log: Option<AccessLog>,
    /// Connection and request counts (`apisix_nginx_http_current_connections`).
    pub counts: Counts,
}

/// Connection and request counts of the proxy listeners, as nginx's stub_status reports them.
#[derive(Debug, Default)]
pub struct Counts {
    accepted: AtomicU64,
    active: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicU64,
}

impl Counts {
    /// Reads every count.
    pub fn now(&self) -> CountsNow {
        CountsNow {
            accepted: self.accepted.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

/// Counts a connection as open, and holds its place under the connection cap, until dropped.
struct OpenConnection {
    state: Arc<State>,
    admitted: limits::Admitted,
}

impl OpenConnection {
    fn new(state: Arc<State>, admitted: limits::Admitted) -> OpenConnection {
        state.counts.accepted.fetch_add(1, Ordering::Relaxed);
        state.counts.active.fetch_add(1, Ordering::Relaxed);
        OpenConnection { state, admitted }
    }

    fn slot(&self) -> &Arc<limits::Slot> {
        self.admitted.slot()
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.state.counts.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a request as in flight until dropped.
pub(crate) struct InFlight<'a>(&'a Counts);

impl<'a> InFlight<'a> {
    pub(crate) fn new(counts: &'a Counts) -> InFlight<'a> {
        counts.requests.fetch_add(1, Ordering::Relaxed);
        counts.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(counts)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The first wait after an accept failure.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait between accepts while out of descriptors (nginx waits 500 ms).
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Addresses of one accepted connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The peer (client or a proxy in front).
    pub peer: SocketAddr,
    /// Our listening address.
    pub local: SocketAddr,
    /// Whether the connection is TLS (`scheme` https).
    pub tls: bool,
}

impl ConnInfo {
    /// The peer IP with IPv4-mapped IPv6 turned into IPv4.
    pub fn peer_ip(&self) -> IpAddr {
        self.peer.ip().to_canonical()
    }
}

/// A bound listener and how it serves.
pub struct Bound {
    /// The socket.
    pub listener: TcpListener,
    /// Accept HTTP/2 as well as HTTP/1.1: h2c (prior knowledge) on a plain listener, `h2` by
    /// ALPN on a TLS one.
    pub http2: bool,
    /// Terminate TLS with the snapshot's certificates.
    pub tls: bool,
}

/// Serves every listener until `shutdown` completes, then drains (see module docs).
pub async fn serve(listeners: Vec<Bound>, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut accept_loops = tokio::task::JoinSet::new();
    // One table for every listener: the cap counts plain and TLS connections together.
    let connections = Arc::new(limits::Connections::new(state.settings.max_connections));
    for bound in listeners {
        accept_loops.spawn(accept_loop(
            bound,
            state.clone(),
            connections.clone(),
            stop_rx.clone(),
            alive_tx.clone(),
        ));
    }
    drop(alive_tx);
    shutdown.await;
    tracing::info!("shutting down: no new connections, draining requests in flight");
    let _ = stop_tx.send(true);
    while accept_loops.join_next().await.is_some() {}
    let deadline = state.settings.shutdown_timeout;
    if tokio::time::timeout(deadline, alive_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            ?deadline,
            "shutdown deadline passed with connections still open"
        );
    }
}

async fn accept_loop(
    bound: Bound,
    state: Arc<State>,
    connections: Arc<limits::Connections>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let local = match bound.listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "listener has no local address");
            return;
        }
    };
    let misses = Arc::new(tls::MissLog::default());
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(state.settings.max_header_size)
        .header_read_timeout(state.settings.idle_timeout);
    let mut auto = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    auto.http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(state.settings.max_header_size)
        .header_read_timeout(state.settings.idle_timeout);
    auto.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(state.settings.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(state.settings.http2_max_concurrent_streams);
    let builders = Arc::new(Builders { http1, auto });
    // The wait after an accept failure: doubled while the process stays out of descriptors.
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            a = bound.listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = ACCEPT_BACKOFF_MIN;
                a
            }
            Err(error) => {
                let exhausted = limits::is_exhaustion(&error);
                if let Some(suppressed) = connections.accept_errors.allow() {
                    tracing::warn!(%error, suppressed, "accept failed");
                }
                // Retrying at once would fail the same way (the pending connection stays in
                // the backlog): wait, without delaying shutdown. Out of descriptors, idle
                // keep-alive connections give theirs back first.
                let wait = if exhausted {
                    connections.reap_idle();
                    let wait = backoff;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    wait
                } else {
                    ACCEPT_BACKOFF_MIN
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        // Over the cap with nothing idle to close: the newest connection is closed at once.
        let Some(admitted) = connections.admit() else {
            drop(stream);
            continue;
        };
        let open = OpenConnection::new(state.clone(), admitted);
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo {
            peer,
            local,
            tls: bound.tls,
        };
        if bound.tls {
            let builders = builders.clone();
            let state = state.clone();
            let (mut stop, alive) = (stop.clone(), alive.clone());
            let (misses, http2) = (misses.clone(), bound.http2);
            tokio::spawn(async move {
                // A handshake in progress when shutdown starts, or when the connection is closed
                // to make room, is abandoned.
                let shaken = tokio::select! {
                    shaken = handshake(stream, &state, &misses, http2, conn) => shaken,
                    _ = stop.changed() => None,
                    _ = open.slot().reaped() => None,
                };
                let Some((stream, gate)) = shaken else {
                    return;
                };
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                serve_conn(
                    stream,
                    conn,
                    open,
                    Some(gate),
                    h2,
                    &builders,
                    state,
                    stop,
                    alive,
                );
            });
        } else {
            serve_conn(
                stream,
                conn,
                open,
                None,
                bound.http2,
                &builders,
                state.clone(),
                stop.clone(),
                alive.clone(),
            );
        }
    }
}

/// The TLS handshake: the ClientHello's SNI picks the ssl object in the current snapshot, whose
/// config finishes the handshake. Returns the stream and, for objects that verify clients but let
/// some paths through without a certificate, the check each request must pass.
async fn handshake(
    tcp: tokio::net::TcpStream,
    state: &State,
    misses: &tls::MissLog,
    http2: bool,
    conn: ConnInfo,
) -> Option<(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, Gate)> {
    let timeout = state.settings.idle_timeout;
    let lazy = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let start = match tokio::time::timeout(timeout, lazy).await {
        Ok(Ok(start)) => start,
        Ok(Err(error)) => {
            tracing::debug!(peer = %conn.peer, %error, "TLS ClientHello unreadable");
            return None;
        }
        Err(_) => {
            tracing::debug!(peer = %conn.peer, "TLS ClientHello not received in time");
            return None;
        }
    };
    let snapshot = state.snapshot.load();
    let hello = start.client_hello();
    let sni = hello.server_name().map(str::to_owned);
    let served = match snapshot.tls.find(sni.as_deref()) {
        Ok(found) => {
            tracing::debug!(
                sni = sni.as_deref().unwrap_or("-"),
                ssl = %found.served.id,
                how = ?found.how,
                fallback = found.fallback,
                "TLS certificate chosen"
            );
            found.served.clone()
        }
        Err(why) => {
            misses.miss(sni.as_deref(), &why);
            return None;
        }
    };
    drop(snapshot);
    let stream = match tokio::time::timeout(timeout, start.into_stream(served.config(http2))).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(peer = %conn.peer, ssl = %served.id, %error, "TLS handshake failed");
            return None;
        }
        Err(_) => return None,
    };
    let presented = stream.get_ref().1.peer_certificates();
    if let Some(mtls) = &served.mtls {
        if !mtls.chain_within_depth(presented) {
            tracing::info!(peer = %conn.peer, ssl = %served.id, depth = mtls.depth, "client certificate chain has more intermediate CAs than client.depth; connection closed");
            return None;
        }
    }
    let gate = Gate {
        verified: presented.is_some(),
        // Normalised as the Host is, so the two compare; an SNI that is no host name matches
        // no Host, and the request is refused (see `Gate::allows`).
        sni: sni
            .as_deref()
            .and_then(|s| host::normalize(s).ok())
            .map(|h| h.name.into_owned()),
        served,
    };
    Some((stream, gate))
}

/// What a TLS connection showed, checked by the pipeline on each of its requests (as APISIX's
/// access phase), with the same normalised path and host the router uses:
/// - on an object that verifies clients, a connection without a certificate may only reach
///   paths matching `skip_mtls_uri_regex`;
/// - a request whose Host names an object that verifies clients needs a certificate verified
///   in the handshake for that same name, so a client cannot present the SNI of an object
///   without mTLS and the Host of one with it.
struct Gate {
    served: Arc<tls::Served>,
    /// The SNI, normalised as a host name (`None`: absent or not a host name).
    sni: Option<String>,
    verified: bool,
}

impl Gate {
    /// Whether a request for `path` (normalised) on `host` (normalised name, without port) may
    /// proceed; refusals get 400.
    fn allows(&self, snapshot: &Snapshot, path: &str, host: &str) -> bool {
        if !self.verified {
            if let Some(mtls) = &self.served.mtls {
                if !mtls.allows_without_cert(path) {
                    return false;
                }
            }
        }
        if !snapshot.tls.has_mtls() {
            return true;
        }
        let Some((by_host, _)) = snapshot.tls.find_name(host) else {
            return true;
        };
        let Some(mtls) = &by_host.mtls else {
            return true;
        };
        if !self.verified {
            return mtls.allows_without_cert(path);
        }
        if self.sni.as_deref() != Some(host) {
            tracing::warn!(sni = self.sni.as_deref().unwrap_or("-"), %host, ssl = %by_host.id, "client certificate verified for another name than the Host; request refused");
            return false;
        }
        true
    }
}

/// The HTTP builders of one listener, shared by its connections.
struct Builders {
    http1: hyper::server::conn::http1::Builder,
    auto: hyper_util::server::conn::auto::Builder<TokioExecutor>,
}

/// Serves one connection (plain or after the TLS handshake) on its own task.
#[allow(clippy::too_many_arguments)]
fn serve_conn<I>(
    stream: I,
    conn: ConnInfo,
    open: OpenConnection,
    gate: Option<Gate>,
    http2: bool,
    builders: &Builders,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer_text = bytes::Bytes::from(conn.peer_ip().to_string());
    let gate = gate.map(Arc::new);
    let slot = open.slot().clone();
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let state = state.clone();
        let peer_text = peer_text.clone();
        let gate = gate.clone();
        // Not idle while the request is handled: the connection is not closed to make room.
        let busy = slot.request();
        async move {
            let _busy = busy;
            let response = pipeline::handle(&state, conn, gate.as_deref(), &peer_text, req).await;
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let io = TokioIo::new(stream);
    if http2 {
        let c = builders
            .auto
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        tokio::spawn(async move {
            drive(c, |c| c.graceful_shutdown(), open.slot(), stop, alive).await;
            drop(open);
        });
    } else {
        let c = builders.http1.serve_connection(io, service).with_upgrades();
        tokio::spawn(async move {
            drive(c, |c| c.graceful_shutdown(), open.slot(), stop, alive).await;
            drop(open);
        });
    }
}

/// Runs one connection to its end; when `stop` fires, or the connection is closed to make room
/// (`slot`), asks it to finish the request in flight and close. Holding `alive` until then tells
/// `serve` the connection is still open.
async fn drive<C, E>(
    conn: C,
    drain: impl FnOnce(Pin<&mut C>),
    slot: &limits::Slot,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(error) = r {
                tracing::debug!(%error, "client connection ended with an error");
            }
        }
        _ = stop.changed() => {
            drain(conn.as_mut());
            let _ = conn.await;
        }
        _ = slot.reaped() => {
            // A connection that never sent a request has nothing to finish (and hyper would
            // wait for its first request before closing it): dropped at once.
            if !slot.unused() {
                drain(conn.as_mut());
                let _ = conn.await;
            }
        }
    }
    drop(alive);
}
