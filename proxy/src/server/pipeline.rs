//! One request, in named steps taken in this order:
//!
//! 1. [`Exchange::admit`]: the request head's size, its Host (normalised once: the mTLS gate,
//!    the router, vars and plugins all use it); [`normalize_path`] and the mTLS gate then
//!    settle the path;
//! 2. routing (in [`Exchange::serve`]), after [`Exchange::read_post_args`] when the route depends
//!    on the body, with [`Exchange::no_route`] for requests no route matches;
//! 3. [`Exchange::request_plugins`]: the `rewrite`, `access` and `before_proxy` phases;
//! 4. [`Exchange::forward`]: the upstream picked (a plugin may choose another), the request body
//!    buffered as configured, the request sent; [`Exchange::upstream_response`] then runs that
//!    phase on the answer;
//! 5. [`Exchange::respond`]: a failure becomes its response (the one place, see
//!    [`GatewayError::response`]), the `Server` header is set, and the response phases
//!    (`header_filter`, body filters, `log`) run;
//! 6. [`Exchange::access_log`]: the access-log record, written when the body ends.

// Steps return `Result<_, Stop>` to end a request early with a plugin's reply; the reply exists
// only on that path and is moved, never copied, so boxing it would cost an allocation for nothing.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::body::ResponseBody;
use super::error::{Fault, GatewayError};
use super::headers::{self, Trust, X_APISIX_UPSTREAM_STATUS};
use super::host::{self, Host, HostError};
use super::path;
use super::post_args::{BodyVars, Plan, Probe};
use super::vars::{answered_by, RequestVars};
use super::{ConnInfo, Gate, ServerSettings, State};
use crate::observe::AccessRecord;
use crate::router::{Match, RequestInfo};
use crate::snapshot::{Chosen, RouteEntry, Snapshot, Target};
use crate::upstream::body::{BodySlot, Buffered, ClientFault};
use crate::upstream::client::HttpClient;
use crate::upstream::forward::upstream_status_header;
use crate::upstream::{forward, Backend, ForwardError, RequestTemplate, Timeouts};
use plugin_api::chain::{Chain, Merged, Selection};
use plugin_api::client::ClientAddr;
use plugin_api::consumer::Authenticated;
use plugin_api::upstream::UpstreamOverride;
use plugin_api::{
    Flow, LogCtx, Outcome, Reply, RequestCtx, RequestSummary, ResponseCtx, Rewrite,
    UpstreamResponseCtx,
};
use plugins::traffic::proxy_control::RequestBuffering;

/// Handles one request and always produces a response. `gate` is the TLS connection's mTLS
/// check, `peer_text` the peer address as text, formatted once per connection.
pub async fn handle(
    state: &State,
    conn: ConnInfo,
    gate: Option<&Gate>,
    peer_text: &Bytes,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let start = Instant::now();
    let _in_flight = super::InFlight::new(&state.counts);
    let snapshot = state.snapshot.load_full();
    let (mut parts, body) = req.into_parts();
    let (client, client_text) = client_ip(state, conn, peer_text, &parts.headers);
    let mut exchange = Exchange {
        state,
        snapshot: &snapshot,
        conn,
        start,
        client,
        client_text,
        body: BodySlot::new(body, state.settings.client_body_timeout),
        plugins: None,
        upstream: None,
        upstream_time: None,
        upstream_status: None,
        tried_statuses: None,
    };
    let authority = host::authority(&mut parts);
    let host_header = authority.as_ref().ok().cloned().flatten();
    let checked_host = check_host(authority, host_header.as_ref());
    // Boxed: the steps' state is most of a request's, and hyper moves the request future
    // several times before and while polling it; behind a box those moves are small (900
    // instructions per request fewer, bench/instructions).
    let outcome =
        Box::pin(exchange.serve(&mut parts, gate, host_header.as_ref(), &checked_host)).await;
    let response = exchange.respond(outcome);
    exchange.access_log(parts, response)
}

/// Why a request ends before (or instead of) the upstream's answer.
enum Stop {
    /// A plugin answered.
    Answered(Reply),
    /// The gateway fails the request.
    Failed(GatewayError),
}

impl From<GatewayError> for Stop {
    fn from(error: GatewayError) -> Stop {
        Stop::Failed(error)
    }
}

/// What a plugin phase's flow means for the request: on, or stopped with the plugin's answer
/// or failure. Every [`Flow`] the pipeline sees goes through here. (Chains answer their plugins'
/// failures themselves: one reaching here is logged and answered the same way.)
fn proceed(flow: Flow) -> Result<(), Stop> {
    match flow {
        Flow::Continue => Ok(()),
        Flow::Respond(reply) => Err(Stop::Answered(reply)),
        Flow::Fail(error) => {
            tracing::error!(%error, "plugin failed");
            Err(Stop::Failed(GatewayError::Plugin(error.status)))
        }
    }
}

/// One request on its way through the steps, and what they learned for the response and log
/// phases.
struct Exchange<'s> {
    state: &'s State,
    snapshot: &'s Arc<Snapshot>,
    conn: ConnInfo,
    start: Instant,
    /// The client address (after `real_ip_header`, then the `real-ip` plugin), and as text.
    client: IpAddr,
    client_text: Bytes,
    body: BodySlot,
    /// The plugin state, once plugins ran.
    plugins: Option<PluginRun>,
    /// The node that answered (or was tried last).
    upstream: Option<Authority>,
    upstream_time: Option<Duration>,
    /// The status the upstream answered, or the one an upstream failure became.
    upstream_status: Option<StatusCode>,
    /// `X-APISIX-Upstream-Status` when every try failed.
    tried_statuses: Option<HeaderValue>,
}

impl<'s> Exchange<'s> {
    /// From admission to the upstream's answer (after its `upstream_response` phase).
    async fn serve(
        &mut self,
        parts: &mut Parts,
        gate: Option<&Gate>,
        host_header: Option<&HeaderValue>,
        checked_host: &Result<Host<'_>, HostError>,
    ) -> Result<Response<ResponseBody>, Stop> {
        let (host, raw_host) = self.admit(parts, checked_host).await?;
        // The path is read from a copy of the URI (shared bytes, not copied), so that the body
        // read for routing can be kept in `parts` while the path is borrowed.
        let uri = parts.uri.clone();
        let (path, sent) = normalize_path(&self.state.settings, uri.path())?;
        // mTLS decides on the path and host the router sees, so `/public/../secret` cannot
        // pass a `skip_mtls_uri_regex` meant for `/public`.
        if gate.is_some_and(|g| !g.allows(self.snapshot, &path, host)) {
            return Err(GatewayError::ClientCertRequired.into());
        }
        // As APISIX, routing and plugins see the forwarding headers the upstream would get
        // (plugins may change them); only the client's address is named after the plugins.
        let settings = &self.state.settings;
        headers::describe_request(
            &mut parts.headers,
            host_header,
            self.conn.local.port(),
            self.conn.tls,
            Trust::of(self.conn.peer_ip(), settings.trusted_addresses.as_deref()),
        );
        // With `match_uri_encoded_slash`, only the router sees `%2F` kept encoded (so it can
        // be part of a path parameter), and the request goes upstream as it was sent.
        let match_path = if self.state.settings.match_uri_encoded_slash {
            path::keep_encoded_slash(uri.path(), &path)
        } else {
            None
        };
        let routed_path = match_path.as_deref().unwrap_or(&path);
        self.read_post_args(parts, &path, routed_path, (host, raw_host))
            .await;
        let vars = self.vars(parts, &path, host);
        let (found, route) = self.route(&vars, routed_path, raw_host).await?;
        let mut chosen = upstream_of(&route.target);
        let route_vars = RequestVars {
            params: &found.params,
            route: Some(route),
            real_ip: ClientAddr::default(),
            ..vars
        };
        let changed = match (sent.as_ref().unwrap_or(&path), &match_path) {
            (Cow::Owned(p), None) => Some(p.as_str()),
            _ => None,
        };
        let path_and_query = upstream_path(&parts.uri, changed);
        let websocket = route.enable_websocket && headers::wants_websocket(&parts.headers);
        // Plugins see the request as received (through `vars`) and change the copy that goes
        // upstream; without plugins the headers are moved, not copied.
        let plugins_on = !self.snapshot.global_plugins.is_empty() || !route.plugins.is_empty();
        // What real-ip set (address and port), for the response phase's `remote_port`.
        let (plugin_headers, real_ip) = if plugins_on {
            let (headers, real_ip) = self
                .request_plugins(route, &found, &route_vars, websocket, &mut chosen)
                .await?;
            (Some(headers), real_ip)
        } else {
            (None, ClientAddr::default())
        };
        let (backend, client_pool, timeouts) = chosen?;
        let hash_key = backend.hash_key(&route_vars);
        let upstream_headers = match plugin_headers {
            Some(h) => h,
            None => client_headers(std::mem::take(&mut parts.headers), websocket),
        };
        let client_upgrade = websocket
            .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
            .flatten();
        let request = Upstreamed {
            backend,
            client_pool,
            timeouts,
            hash_key: hash_key.as_deref(),
            method: &parts.method,
            path_and_query,
            headers: upstream_headers,
            host: host_header,
        };
        let response = self.forward(request, client_upgrade).await?;
        // The request's headers are still there when plugins run: with plugins, a copy went
        // upstream. (The router's path parameters are not kept this long.)
        let vars = RequestVars {
            route: Some(route),
            // `client` is the address real-ip found, if it ran; its port answers `remote_port`.
            real_ip,
            ..self.vars(parts, &path, host)
        };
        self.upstream_response(route, &vars, response).await
    }

    /// The request's variables before routing (no route, no path parameters, no address set
    /// by a plugin).
    fn vars<'v>(&self, parts: &'v Parts, path: &'v str, host: &'v str) -> RequestVars<'v> {
        RequestVars {
            parts,
            path,
            host,
            remote: self.client,
            real_ip: ClientAddr::default(),
            conn: self.conn,
            params: &[],
            route: None,
        }
    }

    /// Admission: the head's size and the Host are checked. Gives the host without and with
    /// its port.
    async fn admit<'h>(
        &mut self,
        parts: &mut Parts,
        checked_host: &'h Result<Host<'_>, HostError>,
    ) -> Result<(&'h str, &'h str), GatewayError> {
        if head_size(parts) > self.state.settings.max_header_size {
            return Err(GatewayError::HeaderTooLarge);
        }
        let host = match checked_host {
            Ok(h) => (&*h.name, &*h.with_port),
            Err(e) => return Err(GatewayError::BadHost(*e)),
        };
        Ok(host)
    }

    /// Reads the body before routing when the route depends on it: some route's `vars` read
    /// it (`post_arg_*`, `post_arg.*`) and routing without it asked for it (see
    /// [`post_args`](super::post_args)). A body over `client_max_body_size` is left for the 413
    /// of `forward`.
    async fn read_post_args(
        &mut self,
        parts: &mut Parts,
        path: &str,
        routed_path: &str,
        (host, raw_host): (&str, &str),
    ) {
        let router = &self.snapshot.router;
        let wanted = BodyVars {
            fields: router.reads_post_args(),
            paths: router.reads_body_paths(),
        };
        if wanted == BodyVars::default() {
            return;
        }
        let settings = &self.state.settings;
        let limit = match usize::try_from(settings.client_max_body_size) {
            Ok(max) if max > 0 => max.min(settings.client_body_buffer_size),
            _ => settings.client_body_buffer_size,
        };
        let Some(plan) = Plan::new(parts, limit, wanted) else {
            return;
        };
        let asked = {
            let vars = self.vars(parts, path, host);
            let probe = Probe::new(&vars);
            let _routed = router.find(&RequestInfo {
                path: routed_path,
                host,
                raw_host,
                method: &parts.method,
                remote_addr: self.client,
                vars: &probe,
            });
            probe.asked()
        };
        if !asked {
            return;
        }
        if let Some(args) = plan.read(&mut self.body).await {
            parts.extensions.insert(args);
        }
    }

    /// Routing on the normalised path (`match_path`, `%2F` kept when so configured): the route
    /// matched, or why the request ends here (no route, or the route's service is missing).
    async fn route<'v>(
        &mut self,
        vars: &'v RequestVars<'_>,
        match_path: &'v str,
        raw_host: &'v str,
    ) -> Result<(Match<'s, 'v>, &'s RouteEntry), Stop> {
        let snapshot = self.snapshot;
        let found = snapshot.router.find(&RequestInfo {
            path: match_path,
            host: vars.host,
            raw_host,
            method: &vars.parts.method,
            remote_addr: vars.remote,
            vars,
        });
        let Some(found) = found else {
            return Err(self.no_route(vars).await);
        };
        let route = &snapshot.routes[found.value as usize];
        // As APISIX: a missing service fails before any plugin (global rules included); a
        // missing upstream (none configured, or its id not found) only once the request would
        // go upstream, so `redirect`, `mocking`, `echo` and the like answer on such routes.
        if let Target::MissingService = route.target {
            return Err(GatewayError::ServiceNotFound.into());
        }
        Ok((found, route))
    }

    /// No route matched: as APISIX, the global rules still run (a global ip-restriction,
    /// prometheus, a logger), and the 404 follows unless one of them answers.
    async fn no_route(&mut self, vars: &RequestVars<'_>) -> Stop {
        if !self.snapshot.global_plugins.is_empty() {
            let mut headers = client_headers(vars.parts.headers.clone(), false);
            let mut run = PluginRun::new(self.snapshot, None, vars, self.start);
            let ran = request_phases(
                self.snapshot,
                &NO_ROUTE,
                &mut run,
                vars,
                self.client,
                &mut headers,
                &mut self.body,
            )
            .await;
            self.apply_client(&vars.real_ip, &mut run);
            self.plugins = Some(run);
            if let Err(answered) = ran {
                return answered;
            }
        }
        Stop::Failed(GatewayError::RouteNotFound)
    }

    /// The client address a plugin set (`real-ip`, through `RequestCtx::set_client`) is the
    /// client's from here on: toward the upstream, in the log phase and the access log. Gives
    /// it (empty when none was set) for the response phase's `remote_addr` / `remote_port`.
    fn apply_client(&mut self, set: &ClientAddr, run: &mut PluginRun) -> ClientAddr {
        let Some(real) = set.get() else {
            return ClientAddr::default();
        };
        self.client = real;
        self.client_text = Bytes::from(real.to_string());
        run.request.client = real;
        set.clone()
    }

    /// The request phases on a copy of the client's headers, which goes upstream. `real-ip`
    /// may change the client address, a plugin the upstream (`chosen`). Gives the
    /// headers and what real-ip set.
    async fn request_plugins<'r>(
        &mut self,
        route: &'r RouteEntry,
        found: &Match<'_, '_>,
        vars: &RequestVars<'_>,
        websocket: bool,
        chosen: &mut Result<Picked<'r>, GatewayError>,
    ) -> Result<(HeaderMap, ClientAddr), Stop> {
        let snapshot = self.snapshot;
        let mut headers = client_headers(vars.parts.headers.clone(), websocket);
        let route_index = found.value as usize;
        let mut run = PluginRun::new(snapshot, Some(route_index), vars, self.start);
        run.request.matched_uri = found.uri.to_owned();
        run.request.matched_host = found.host.unwrap_or_default().to_owned();
        let ran = request_phases(
            snapshot,
            &route.plugins,
            &mut run,
            vars,
            self.client,
            &mut headers,
            &mut self.body,
        )
        .await;
        if let Some(len) = self.body.replaced_len() {
            headers.remove(header::TRANSFER_ENCODING);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        let real_ip = self.apply_client(&vars.real_ip, &mut run);
        if let Some(choice) = run.state.get::<UpstreamOverride>() {
            match route.chosen(choice) {
                Chosen::Route => {}
                Chosen::Target(target) => *chosen = upstream_of(target),
                Chosen::Missing(id) => {
                    tracing::error!(route = %route.id, upstream = %id.0, "failed to fetch upstream info by upstream id");
                    *chosen = Err(GatewayError::Plugin(StatusCode::INTERNAL_SERVER_ERROR));
                }
            }
        }
        self.plugins = Some(run);
        ran?;
        Ok((headers, real_ip))
    }

    /// Sends the request to the upstream picked: the client is named to it, the body
    /// buffered as configured, then the tries run. Gives the answer as sent downstream.
    async fn forward(
        &mut self,
        mut request: Upstreamed<'_>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        request.headers.remove(header::HOST);
        headers::name_client(&mut request.headers, self.client_text.clone());
        let rewrite = self
            .plugins
            .as_mut()
            .map(|run| std::mem::take(&mut run.rewrite))
            .unwrap_or_default();
        self.buffer_body(request.backend.definition.is_grpc())
            .await?;
        let backend = request.backend;
        let template = RequestTemplate {
            method: rewrite.method.unwrap_or_else(|| request.method.clone()),
            path_and_query: rewrite.path_and_query.unwrap_or(request.path_and_query),
            headers: request.headers,
            host: request.host.cloned(),
            host_override: rewrite.host,
        };
        let sent = forward(
            backend,
            request.client_pool,
            request.timeouts,
            template,
            &self.body,
            request.hash_key,
        )
        .await;
        let proxied = match sent {
            Ok(proxied) => proxied,
            Err(ForwardError::Client(fault)) => return Err(GatewayError::Client(fault)),
            Err(ForwardError::Upstream(failed)) => {
                self.upstream = failed.node.map(|n| backend.nodes()[n].authority.clone());
                let settings = &self.state.settings;
                self.tried_statuses =
                    upstream_status_header(&failed.statuses, settings.show_upstream_status);
                return Err(GatewayError::Upstream(failed.kind));
            }
        };
        let node = &backend.nodes()[proxied.node].authority;
        self.upstream = Some(node.clone());
        self.upstream_time = Some(proxied.upstream_time);
        self.upstream_status = Some(proxied.response.status());
        // `$balancer_ip` / `$balancer_port` for the response phase (response-rewrite).
        if let Some(run) = self.plugins.as_mut() {
            let answered = answered_by(&proxied.response, node, proxied.upstream_time);
            run.state.insert(answered);
        }
        Ok(downstream_response(
            &self.state.settings,
            proxied.response,
            &proxied.earlier,
            client_upgrade,
            request.timeouts,
        ))
    }

    /// The request body is read whole before the upstream is connected (nginx's
    /// `proxy_request_buffering on`), so a client slow to send it holds no upstream
    /// connection; `proxy-control` turns that off per route, and gRPC streams (interactive)
    /// never wait. A body that streams counts against its client's cap.
    async fn buffer_body(&mut self, grpc: bool) -> Result<(), GatewayError> {
        let buffering = !grpc
            && self
                .plugins
                .as_ref()
                .and_then(|run| run.state.get::<RequestBuffering>())
                .is_none_or(|b| b.0);
        let settings = &self.state.settings;
        let in_memory = if buffering {
            settings.client_body_buffer_size
        } else {
            0
        };
        match self
            .body
            .buffer(in_memory, settings.client_max_body_size)
            .await
        {
            Err(fault) => Err(GatewayError::Client(fault)),
            Ok(Buffered::Held) => Ok(()),
            Ok(Buffered::Streams) if grpc => Ok(()),
            Ok(Buffered::Streams) => match settings.streamed_bodies.acquire(self.client) {
                Some(permit) => {
                    self.body.hold_permit(permit);
                    Ok(())
                }
                None => Err(GatewayError::Client(ClientFault::TooManyStreams)),
            },
        }
    }

    /// The `upstream_response` phase (global rules, route, consumer) on the upstream's
    /// answer, for chains with such plugins; a plugin's reply replaces the answer.
    async fn upstream_response(
        &mut self,
        route: &RouteEntry,
        vars: &RequestVars<'_>,
        response: Response<ResponseBody>,
    ) -> Result<Response<ResponseBody>, Stop> {
        let Some(run) = self.plugins.as_mut() else {
            return Ok(response);
        };
        let global = &self.snapshot.global_plugins;
        let consumer = run.consumer.as_deref();
        let merged = Merged::new(
            &route.plugins,
            &run.route,
            consumer.map(|found| (&found.consumer.chain, &run.consumer_plugins)),
        );
        if !global.has_upstream_response() && !merged.has_upstream_response() {
            return Ok(response);
        }
        let (mut head, mut body) = response.into_parts();
        let mut ctx = UpstreamResponseCtx {
            vars,
            consumer_name: consumer.map(|c| c.consumer.username.as_str()),
            request_body: &mut self.body,
            status: &mut head.status,
            headers: &mut head.headers,
            body: &mut body,
            state: &mut run.state,
        };
        proceed(global.upstream_response(&run.global, &mut ctx).await)?;
        proceed(merged.upstream_response(&mut ctx).await)?;
        Ok(Response::from_parts(head, body))
    }

    /// The response: a failure's own (made here and nowhere else), the `Server` header, then
    /// the response phases when plugins ran.
    fn respond(&mut self, outcome: Result<Response<ResponseBody>, Stop>) -> Response<ResponseBody> {
        let (mut response, outcome) = match outcome {
            Ok(response) => (response, Outcome::Upstream),
            Err(Stop::Answered(reply)) => (plugin_response(reply), Outcome::Plugin),
            Err(Stop::Failed(error)) => (self.failed(error), Outcome::Failed(error.fault())),
        };
        response
            .headers_mut()
            .insert(header::SERVER, self.state.settings.server_header.clone());
        if let Some(run) = self.plugins.take() {
            let answered = self.upstream.as_ref().map(ToString::to_string);
            let upstream = (answered, self.upstream_status);
            response = response_phases(self.snapshot, run, response, upstream, outcome);
        }
        response
    }

    /// The response of a request the gateway fails. Only an upstream's failure has an upstream
    /// status, the one api-breaker, loggers and metrics count against the upstream.
    fn failed(&mut self, error: GatewayError) -> Response<ResponseBody> {
        let fault = error.fault();
        tracing::debug!(
            ?error,
            ?fault,
            retry = error.retry_allowed(),
            "request failed"
        );
        if fault == Fault::Upstream {
            self.upstream_status = Some(error.status());
        }
        let mut response = error.response();
        if let Some(statuses) = self.tried_statuses.take() {
            response
                .headers_mut()
                .insert(X_APISIX_UPSTREAM_STATUS.clone(), statuses);
        }
        response
    }

    /// Attaches the access-log record, written when the body ends.
    fn access_log(
        self,
        parts: Parts,
        mut response: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        if let Some(log) = &self.state.access_log {
            let status = response.status();
            response.body_mut().set_record(AccessRecord {
                log: log.clone(),
                client: self.client,
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                status,
                upstream: self.upstream,
                upstream_time: self.upstream_time,
                start: self.start,
            });
        }
        response
    }
}

/// The upstream a route's target names: its backend, client and timeouts.
type Picked<'a> = (&'a Arc<Backend>, &'a HttpClient, Timeouts);

/// The request as it goes upstream, before forwarding headers and plugins' rewrites.
struct Upstreamed<'a> {
    backend: &'a Arc<Backend>,
    client_pool: &'a HttpClient,
    timeouts: Timeouts,
    hash_key: Option<&'a str>,
    method: &'a http::Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
    /// The client's Host.
    host: Option<&'a HeaderValue>,
}

/// The request's Host, checked: none is fine only when the request had none to give (HTTP/1.0).
fn check_host(
    authority: Result<Option<HeaderValue>, HostError>,
    header: Option<&HeaderValue>,
) -> Result<Host<'_>, HostError> {
    match (authority, header) {
        (Err(e), _) => Err(e),
        (Ok(_), None) => Ok(Host::default()),
        (Ok(_), Some(h)) => h
            .to_str()
            .map_err(|_| HostError::BadName)
            .and_then(host::normalize),
    }
}

/// The normalised path routing, plugins and logs see, and, when the settings changed it
/// further, the path as it goes upstream: with `normalize_uri_like_servlet` (or else
/// `delete_uri_tail_slash`) the path loses its `;` parameters (its trailing `/`), and the
/// upstream gets it as it was.
fn normalize_path<'p>(
    settings: &ServerSettings,
    raw: &'p str,
) -> Result<(Cow<'p, str>, Option<Cow<'p, str>>), GatewayError> {
    let path = path::normalize(raw).map_err(GatewayError::BadPath)?;
    if settings.normalize_uri_like_servlet {
        match path::like_servlet(&path) {
            Err(e) => Err(GatewayError::BadPath(e)),
            Ok(Some(servlet)) => Ok((Cow::Owned(servlet), Some(path))),
            Ok(None) => Ok((path, None)),
        }
    } else if settings.delete_uri_tail_slash && path.ends_with('/') {
        Ok((Cow::Owned(path[..path.len() - 1].to_owned()), Some(path)))
    } else {
        Ok((path, None))
    }
}

/// The plugins of requests no route matched: none (only the global rules run).
static NO_ROUTE: Chain = Chain::empty();

/// The plugin state of one request.
struct PluginRun {
    global: Selection,
    route: Selection,
    /// The matched route (none: only the global rules run).
    route_index: Option<usize>,
    /// Who the request authenticated as.
    consumer: Option<Arc<Authenticated>>,
    /// Which of the consumer's plugins run (chosen when it authenticated; `route` then leaves
    /// out the route's plugins the consumer has too).
    consumer_plugins: Selection,
    state: http::Extensions,
    response_headers: HeaderMap,
    rewrite: Rewrite,
    /// The client's body while request plugins may read it.
    request: RequestSummary,
    start: Instant,
}

impl PluginRun {
    /// The plugin state of a request to `route_index` (or to no route) seen through `vars`.
    fn new(
        snapshot: &Snapshot,
        route_index: Option<usize>,
        vars: &RequestVars<'_>,
        start: Instant,
    ) -> PluginRun {
        let route = route_index.map(|i| &snapshot.routes[i]);
        let parts = vars.parts;
        PluginRun {
            global: snapshot
                .global_plugins
                .select_beside(vars, route.map(|r| &r.plugins)),
            route: route.map(|r| r.plugins.select(vars)).unwrap_or_default(),
            route_index,
            consumer: None,
            consumer_plugins: Selection::default(),
            state: http::Extensions::new(),
            response_headers: HeaderMap::new(),
            rewrite: Rewrite::default(),
            request: RequestSummary {
                method: parts.method.clone(),
                uri: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
                host: vars.host.to_owned(),
                client: vars.remote,
                route_id: route.map(|r| r.id.clone()).unwrap_or_default(),
                service_id: route.and_then(|r| r.service_id.clone()),
                route_name: route.and_then(|r| r.name.clone()),
                service_name: route.and_then(|r| r.service_name.clone()),
                matched_uri: String::new(),
                matched_host: String::new(),
                request_length: request_length(parts),
            },
            start,
        }
    }

    /// The matched route's plugins (none without a route).
    fn route_plugins<'s>(&self, snapshot: &'s Snapshot) -> &'s Chain {
        self.route_index
            .map_or(&NO_ROUTE, |i| &snapshot.routes[i].plugins)
    }
}

/// `rewrite`, `access` then `before_proxy`, each with the global rules first, until a plugin
/// answers. Once the route's `rewrite` authenticated a consumer, its plugins (merged over its
/// group's) join the route's, as in APISIX: the ones the route lacks run `rewrite`, then every
/// later phase runs both as one chain in priority order, the consumer's config of a plugin
/// replacing the route's.
async fn request_phases(
    snapshot: &Snapshot,
    route_plugins: &Chain,
    run: &mut PluginRun,
    vars: &RequestVars<'_>,
    client: IpAddr,
    upstream_headers: &mut HeaderMap,
    body: &mut BodySlot,
) -> Result<(), Stop> {
    let mut ctx = RequestCtx {
        vars,
        client,
        client_set: &vars.real_ip,
        headers: upstream_headers,
        response_headers: &mut run.response_headers,
        rewrite: &mut run.rewrite,
        consumers: &*snapshot.consumers,
        consumer: &mut run.consumer,
        state: &mut run.state,
        body,
    };
    let global = &snapshot.global_plugins;
    for (chain, selection) in [(global.as_ref(), &run.global), (route_plugins, &run.route)] {
        proceed(chain.rewrite(selection, &mut ctx).await)?;
    }
    // An authenticated consumer: its identity goes upstream, and its plugins join the route's.
    let consumer = ctx.consumer.clone();
    if let Some(found) = &consumer {
        identify(ctx.headers, found);
        run.consumer_plugins = found.consumer.chain.select(vars);
        route_plugins.give_way(&found.consumer.chain, &mut run.route);
    }
    let merged = Merged::new(
        route_plugins,
        &run.route,
        consumer
            .as_deref()
            .map(|found| (&found.consumer.chain, &run.consumer_plugins)),
    );
    proceed(merged.rewrite_after_auth(&mut ctx).await)?;
    proceed(global.access(&run.global, &mut ctx).await)?;
    proceed(merged.access(&mut ctx).await)?;
    proceed(global.before_proxy(&run.global, &mut ctx).await)?;
    proceed(merged.before_proxy(&mut ctx).await)?;
    Ok(())
}

/// The consumer headers APISIX sends upstream after authentication.
fn identify(headers: &mut HeaderMap, found: &Authenticated) {
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(http::header::HeaderName::from_static(name), v);
        }
    };
    set("x-consumer-username", &found.consumer.username);
    if let Some(id) = &found.credential_id {
        set("x-credential-identifier", id);
    }
    if let Some(custom) = &found.consumer.custom_id {
        set("x-consumer-custom-id", custom);
    }
    // As APISIX, a client's copy of a header the consumer has no value for is not passed on.
    if found.credential_id.is_none() {
        headers.remove("x-credential-identifier");
    }
    if found.consumer.custom_id.is_none() {
        headers.remove("x-consumer-custom-id");
    }
}

/// A plugin's answer as a response.
fn plugin_response(reply: Reply) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::fixed(reply.body.clone()));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    if !reply.body.is_empty() && !response.headers().contains_key(header::CONTENT_TYPE) {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

/// The response side: headers the request phases added, `header_filter` (global rules first),
/// the body filters it attached, and `log` once the body ends.
fn response_phases(
    snapshot: &Arc<Snapshot>,
    mut run: PluginRun,
    response: Response<ResponseBody>,
    (upstream, upstream_status): (Option<String>, Option<StatusCode>),
    outcome: Outcome,
) -> Response<ResponseBody> {
    let (mut head, mut body) = response.into_parts();
    for (name, value) in &run.response_headers {
        head.headers.append(name, value.clone());
    }
    let route_plugins = run.route_plugins(snapshot);
    let consumer = run.consumer.clone();
    let mut replace_body = None;
    let mut body_filters = Vec::new();
    let mut encoding = None;
    let mut ctx = ResponseCtx {
        status: &mut head.status,
        headers: &mut head.headers,
        replace_body: &mut replace_body,
        state: &mut run.state,
        body_filters: &mut body_filters,
        encoding: &mut encoding,
    };
    snapshot.global_plugins.header_filter(&run.global, &mut ctx);
    Merged::new(
        route_plugins,
        &run.route,
        consumer
            .as_deref()
            .map(|found| (&found.consumer.chain, &run.consumer_plugins)),
    )
    .header_filter(&mut ctx);
    if let Some(new_body) = replace_body {
        // The new body's length is known: hyper sends it as Content-Length.
        head.headers.remove(header::CONTENT_LENGTH);
        head.headers.remove(header::TRANSFER_ENCODING);
        head.headers.remove(header::CONTENT_ENCODING);
        body = ResponseBody::fixed(new_body);
    }
    if let Some(encoder) = encoding.and_then(|e| e.start(&mut head.headers)) {
        body_filters.push(encoder);
    }
    if !body_filters.is_empty() {
        // The filters may change the length: hyper sends the body chunked.
        head.headers.remove(header::CONTENT_LENGTH);
        body.filter(body_filters);
    }
    let status = head.status;
    let snapshot = snapshot.clone();
    body.on_end(Box::new(move |bytes_sent| {
        let done = LogCtx {
            status,
            request: &run.request,
            bytes_sent,
            latency: run.start.elapsed(),
            upstream: upstream.as_deref(),
            upstream_status,
            state: &run.state,
            consumer_name: run.consumer.as_ref().map(|c| c.consumer.username.as_str()),
            outcome,
        };
        snapshot.global_plugins.log(&run.global, &done);
        Merged::new(
            run.route_plugins(&snapshot),
            &run.route,
            consumer
                .as_deref()
                .map(|found| (&found.consumer.chain, &run.consumer_plugins)),
        )
        .log(&done);
    }));
    Response::from_parts(head, body)
}

/// The backend, client and timeouts of a target, or the error a request to it gets.
fn upstream_of(target: &Target) -> Result<Picked<'_>, GatewayError> {
    match target {
        Target::Upstream {
            backend,
            client,
            timeouts,
        } => Ok((backend, client, *timeouts)),
        Target::NoUpstream => Err(GatewayError::NoUpstream),
        Target::MissingService => Err(GatewayError::ServiceNotFound),
        Target::MissingUpstream => Err(GatewayError::UpstreamNotFound),
    }
}

/// The path and query sent upstream: the request's own when normalisation changed nothing
/// (`changed` is None), else the normalised path re-encoded, with the query unchanged.
fn upstream_path(uri: &http::Uri, changed: Option<&str>) -> PathAndQuery {
    match changed {
        None => uri.path_and_query().cloned(),
        Some(p) => {
            let encoded = plugin_api::path::encode(p);
            let text = match uri.query() {
                Some(q) => format!("{encoded}?{q}"),
                None => encoded.into_owned(),
            };
            PathAndQuery::try_from(text).ok()
        }
    }
    .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// The upstream's response as sent to the client: hop-by-hop headers removed, the upstream
/// status header added, the body streamed with the read timeout; a WebSocket upgrade is spliced.
fn downstream_response(
    settings: &ServerSettings,
    mut response: Response<Incoming>,
    earlier: &[StatusCode],
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    timeouts: Timeouts,
) -> Response<ResponseBody> {
    let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(on_client)) = (upgraded, client_upgrade) {
        let on_upstream = hyper::upgrade::on(&mut response);
        tokio::spawn(splice(on_client, on_upstream));
    }
    let (mut head, body) = response.into_parts();
    // The client gets the gateway's HTTP version, not the upstream's (as nginx): an HTTP/1.0
    // upstream's answer reaches an HTTP/1.1 client as HTTP/1.1, kept alive, chunked when its
    // length is unknown. (The server itself downgrades it for HTTP/1.0 clients.)
    head.version = http::Version::HTTP_11;
    if head.headers.contains_key(header::TRANSFER_ENCODING) {
        // Both framings (RFC 9112 6.3): the body was read by Transfer-Encoding, so a
        // Content-Length passed on would truncate the client's response or leave it waiting.
        head.headers.remove(header::CONTENT_LENGTH);
    }
    headers::strip_hop_by_hop(&mut head.headers, upgraded);
    let statuses: Vec<StatusCode> = earlier.iter().copied().chain([head.status]).collect();
    if let Some(value) = upstream_status_header(&statuses, settings.show_upstream_status) {
        head.headers.insert(X_APISIX_UPSTREAM_STATUS.clone(), value);
    }
    Response::from_parts(head, ResponseBody::upstream(body, timeouts.read))
}

/// Bytes of the request head as received (request line and header lines), near enough.
fn head_size(parts: &Parts) -> usize {
    let line = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + 12;
    parts
        .headers
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// nginx's `request_length`: the head as received and the body its `Content-Length` announces.
fn request_length(parts: &Parts) -> u64 {
    let body = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    u64::try_from(head_size(parts))
        .unwrap_or(u64::MAX)
        .saturating_add(body)
}

/// The client address: the peer, or the real-ip header when the peer is a trusted proxy.
fn client_ip(
    state: &State,
    conn: ConnInfo,
    peer_text: &Bytes,
    headers: &HeaderMap,
) -> (IpAddr, Bytes) {
    let peer = conn.peer_ip();
    let settings = &state.settings;
    if settings.real_ip_from.iter().any(|net| net.contains(&peer)) {
        if let Some(ip) = headers
            .get(&settings.real_ip_header)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            let ip = ip.to_canonical();
            return (ip, Bytes::from(ip.to_string()));
        }
    }
    (peer, peer_text.clone())
}

/// The client's headers as the upstream copy starts: hop-by-hop headers (and those the client's
/// `Connection` names) are removed here, before plugins run, so a client cannot name a header
/// the gateway or a plugin sets (`X-Consumer-Username`, `X-Real-IP`) and have it dropped; what
/// plugins add is not filtered again. With `websocket`, the upgrade headers stay.
fn client_headers(mut headers: HeaderMap, websocket: bool) -> HeaderMap {
    headers::strip_hop_by_hop(&mut headers, websocket);
    headers
}

/// Copies bytes both ways between an upgraded client and upstream connection.
async fn splice(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "websocket connection ended with an error");
    }
}
