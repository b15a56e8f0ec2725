//! One request: load the snapshot, normalise the Host and the path (once: the mTLS gate, the
//! router, vars and plugins all use these), route, forward, shape the response.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::body::ResponseBody;
use super::error::{Fault, GatewayError};
use super::headers::{self, X_APISIX_UPSTREAM_STATUS};
use super::host::{self, Host, HostError};
use super::path;
use super::vars::{answered_by, PostArgs, RealIp, RequestVars};
use super::{ConnInfo, Gate, State};
use crate::observe::AccessRecord;
use crate::router::RequestInfo;
use crate::snapshot::{RouteEntry, Snapshot, Target};
use crate::upstream::body::{BodySlot, Buffered, ClientFault};
use crate::upstream::client::HttpClient;
use crate::upstream::forward::upstream_status_header;
use crate::upstream::Backend;
use crate::upstream::{forward, ForwardError, RequestTemplate};
use plugin_api::chain::{Chain, Selection};
use plugin_api::consumer::Authenticated;
use plugin_api::{
    Flow, LogCtx, Reply, RequestCtx, RequestSummary, ResponseCtx, Rewrite, UpstreamResponseCtx,
};
use plugins::traffic::proxy_control::RequestBuffering;
use plugins::traffic::traffic_split::UpstreamChoice;

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
    let mut body = BodySlot::new(body, state.settings.client_body_timeout);
    let (mut client, mut client_text) = client_ip(state, conn, peer_text, &parts.headers);
    // The one normalised host every decision below uses (router, mTLS gate, vars, plugins).
    let authority = host::authority(&mut parts);
    let host_header = authority.as_ref().ok().cloned().flatten();
    let checked_host = match (authority, &host_header) {
        (Err(e), _) => Err(e),
        (Ok(_), None) => Ok(Host::default()),
        (Ok(_), Some(h)) => h
            .to_str()
            .map_err(|_| HostError::BadName)
            .and_then(host::normalize),
    };

    let mut upstream = None;
    let mut upstream_time = None;
    let mut upstream_status = None;
    // `X-APISIX-Upstream-Status` when every try failed.
    let mut tried_statuses = None;
    let mut plugins: Option<PluginRun> = None;
    let outcome = 'route: {
        if head_size(&parts) > state.settings.max_header_size {
            break 'route Err(GatewayError::HeaderTooLarge);
        }
        let (host, raw_host) = match &checked_host {
            Ok(h) => (&*h.name, &*h.with_port),
            Err(e) => break 'route Err(GatewayError::BadHost(*e)),
        };
        if snapshot.router.reads_post_args() {
            // A body over `client_max_body_size` is left for the 413 below.
            let settings = &state.settings;
            let limit = match usize::try_from(settings.client_max_body_size) {
                Ok(max) if max > 0 => max.min(settings.client_body_buffer_size),
                _ => settings.client_body_buffer_size,
            };
            if let Some(args) = PostArgs::read(&parts, &mut body, limit).await {
                parts.extensions.insert(args);
            }
        }
        let path = match path::normalize(parts.uri.path()) {
            Ok(p) => p,
            Err(e) => break 'route Err(GatewayError::BadPath(e)),
        };
        // With `normalize_uri_like_servlet` (or else `delete_uri_tail_slash`), routing, plugins
        // and logs see the path without its `;` parameters (its trailing `/`), and the upstream
        // gets it as it was (`sent`).
        let (path, sent) = if state.settings.normalize_uri_like_servlet {
            match path::like_servlet(&path) {
                Err(e) => break 'route Err(GatewayError::BadPath(e)),
                Ok(Some(servlet)) => (Cow::Owned(servlet), Some(path)),
                Ok(None) => (path, None),
            }
        } else if state.settings.delete_uri_tail_slash && path.ends_with('/') {
            (Cow::Owned(path[..path.len() - 1].to_owned()), Some(path))
        } else {
            (path, None)
        };
        // mTLS decides on the path and host the router sees, so `/public/../secret` cannot
        // pass a `skip_mtls_uri_regex` meant for `/public`.
        if gate.is_some_and(|g| !g.allows(&snapshot, &path, host)) {
            break 'route Err(GatewayError::ClientCertRequired);
        }
        // With `match_uri_encoded_slash`, only the router sees `%2F` kept encoded (so it can
        // be part of a path parameter), and the request goes upstream as it was sent.
        let match_path = if state.settings.match_uri_encoded_slash {
            path::keep_encoded_slash(parts.uri.path(), &path)
        } else {
            None
        };
        let vars = RequestVars {
            parts: &parts,
            path: &path,
            host,
            remote: client,
            real_ip: RealIp::default(),
            conn,
            params: &[],
            route: None,
        };
        let found = snapshot.router.find(&RequestInfo {
            path: match_path.as_deref().unwrap_or(&path),
            host,
            raw_host,
            method: &parts.method,
            remote_addr: client,
            vars: &vars,
        });
        let Some(found) = found else {
            // As APISIX, the global rules run on requests no route matched (a global
            // ip-restriction, prometheus, a logger); the 404 follows unless one of them answers.
            if !snapshot.global_plugins.is_empty() {
                let mut headers = client_headers(parts.headers.clone(), false);
                let mut run = PluginRun::new(&snapshot, None, &vars, start);
                let flow = request_phases(
                    &snapshot,
                    &NO_ROUTE,
                    &mut run,
                    &vars,
                    client,
                    &mut headers,
                    &mut body,
                )
                .await;
                plugins = Some(run);
                if let Flow::Respond(reply) = flow {
                    break 'route Ok(plugin_response(reply));
                }
            }
            break 'route Err(GatewayError::RouteNotFound);
        };
        let route_index = found.value as usize;
        let route = &snapshot.routes[route_index];
        let mut chosen = upstream_of(&route.target);
        // As APISIX: a missing service fails before any plugin (global rules included); a
        // missing upstream (none configured, or its id not found) only once the request would
        // go upstream, so `redirect`, `mocking`, `echo` and the like answer on such routes.
        if let Err(GatewayError::ServiceNotFound) = chosen {
            break 'route Err(GatewayError::ServiceNotFound);
        }
        let route_vars = RequestVars {
            params: &found.params,
            route: Some(route),
            real_ip: RealIp::default(),
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
        let plugins_on = !snapshot.global_plugins.is_empty() || !route.plugins.is_empty();
        let mut plugin_headers = None;
        // What real-ip set (address and port), for the response phase's `remote_port`.
        let mut real_ip = RealIp::default();
        if plugins_on {
            let mut headers = client_headers(parts.headers.clone(), websocket);
            let mut run = PluginRun::new(&snapshot, Some(route_index), &route_vars, start);
            run.request.matched_uri = found.uri.to_owned();
            run.request.matched_host = found.host.unwrap_or_default().to_owned();
            let flow = request_phases(
                &snapshot,
                &route.plugins,
                &mut run,
                &route_vars,
                client,
                &mut headers,
                &mut body,
            )
            .await;
            if let Some(len) = body.replaced_len() {
                headers.remove(header::TRANSFER_ENCODING);
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            // The client address `real-ip` found goes upstream, to the log phase and the access log.
            if let Some(real) = route_vars.real_ip.get() {
                real_ip = route_vars.real_ip.clone();
                client = real;
                client_text = Bytes::from(real.to_string());
                run.request.client = real;
            }
            if let Some(choice) = run.state.get::<UpstreamChoice>() {
                if let Some(target) = route
                    .alternatives
                    .get(choice.index)
                    .filter(|_| choice.rules == route.alternatives_rules)
                {
                    chosen = upstream_of(target);
                }
            }
            plugins = Some(run);
            if let Flow::Respond(reply) = flow {
                break 'route Ok(plugin_response(reply));
            }
            plugin_headers = Some(headers);
        }
        let (backend, client_pool, timeouts) = match chosen {
            Ok(found) => found,
            Err(e) => break 'route Err(e),
        };
        let hash_key = backend.hash_key(&route_vars);
        let mut upstream_headers = match plugin_headers {
            Some(h) => h,
            None => client_headers(std::mem::take(&mut parts.headers), websocket),
        };
        upstream_headers.remove(header::HOST);
        headers::set_forwarded(
            &mut upstream_headers,
            client_text,
            host_header.as_ref(),
            conn.local.port(),
            conn.tls,
        );
        let client_upgrade = websocket
            .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
            .flatten();
        let rewrite = plugins
            .as_mut()
            .map(|run| std::mem::take(&mut run.rewrite))
            .unwrap_or_default();
        // The body is read whole before the upstream is connected (nginx's
        // `proxy_request_buffering on`), so a client slow to send it holds no upstream
        // connection; `proxy-control` turns that off per route, and gRPC streams (interactive)
        // never wait. A body that streams counts against its client's cap.
        let grpc = backend.definition.is_grpc();
        let buffering = !grpc
            && plugins
                .as_ref()
                .and_then(|run| run.state.get::<RequestBuffering>())
                .is_none_or(|b| b.0);
        let settings = &state.settings;
        let in_memory = if buffering {
            settings.client_body_buffer_size
        } else {
            0
        };
        match body.buffer(in_memory, settings.client_max_body_size).await {
            Err(fault) => break 'route Err(GatewayError::Client(fault)),
            Ok(Buffered::Held) => {}
            Ok(Buffered::Streams) if grpc => {}
            Ok(Buffered::Streams) => match settings.streamed_bodies.acquire(client) {
                Some(permit) => body.hold_permit(permit),
                None => break 'route Err(GatewayError::Client(ClientFault::TooManyStreams)),
            },
        }
        let template = RequestTemplate {
            method: rewrite.method.unwrap_or_else(|| parts.method.clone()),
            path_and_query: rewrite.path_and_query.unwrap_or(path_and_query),
            headers: upstream_headers,
            host: host_header.clone(),
            host_override: rewrite.host,
        };
        match forward(
            backend,
            client_pool,
            timeouts,
            template,
            &body,
            hash_key.as_deref(),
        )
        .await
        {
            Ok(proxied) => {
                upstream = Some(backend.nodes()[proxied.node].authority.clone());
                upstream_time = Some(proxied.upstream_time);
                upstream_status = Some(proxied.response.status());
                // `$balancer_ip` / `$balancer_port` for the response phase (response-rewrite).
                if let Some(run) = plugins.as_mut() {
                    let node = &backend.nodes()[proxied.node].authority;
                    let answered = answered_by(&proxied.response, node, proxied.upstream_time);
                    run.state.insert(answered);
                }
                let response = downstream_response(
                    state,
                    proxied.response,
                    &proxied.earlier,
                    client_upgrade,
                    timeouts,
                );
                match plugins.as_mut() {
                    Some(run) => {
                        // The request's headers are still there: with plugins, a copy went
                        // upstream. (The router's path parameters are not kept this long.)
                        let vars = RequestVars {
                            parts: &parts,
                            path: &path,
                            host,
                            remote: client,
                            conn,
                            params: &[],
                            route: Some(route),
                            // `client` is the address real-ip found, if it ran; its port
                            // answers `remote_port`.
                            real_ip,
                        };
                        upstream_response_phase(&snapshot, route, run, &vars, &mut body, response)
                            .await
                    }
                    None => Ok(response),
                }
            }
            Err(failed) => {
                let error = match failed {
                    ForwardError::Client(fault) => GatewayError::Client(fault),
                    ForwardError::Upstream(failed) => {
                        upstream = failed.node.map(|n| backend.nodes()[n].authority.clone());
                        tried_statuses =
                            upstream_status_header(&failed.statuses, settings.show_upstream_status);
                        GatewayError::Upstream(failed.kind)
                    }
                };
                // Only an upstream's failure has an upstream status, the one api-breaker,
                // loggers and metrics count against the upstream.
                if error.fault() == Fault::Upstream {
                    upstream_status = Some(error.status_and_body().0);
                }
                Err(error)
            }
        }
    };
    let mut response = outcome.unwrap_or_else(GatewayError::response);
    if let Some(statuses) = tried_statuses {
        response
            .headers_mut()
            .insert(X_APISIX_UPSTREAM_STATUS.clone(), statuses);
    }
    set_server_header(response.headers_mut(), &state.settings.server_header);
    if let Some(run) = plugins {
        let answered = upstream.as_ref().map(ToString::to_string);
        response = response_phases(&snapshot, run, response, answered, upstream_status);
    }
    if let Some(log) = &state.access_log {
        let status = response.status();
        response.body_mut().set_record(AccessRecord {
            log: log.clone(),
            client,
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            status,
            upstream,
            upstream_time,
            start,
        });
    }
    response
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
    /// Which of the consumer's plugins run (chosen when it authenticated).
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
/// answers.
async fn request_phases(
    snapshot: &Snapshot,
    route_plugins: &Chain,
    run: &mut PluginRun,
    vars: &RequestVars<'_>,
    client: IpAddr,
    upstream_headers: &mut HeaderMap,
    body: &mut BodySlot,
) -> Flow {
    let mut ctx = RequestCtx {
        vars,
        client,
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
        if let flow @ Flow::Respond(_) = chain.rewrite(selection, &mut ctx).await {
            return flow;
        }
    }
    // An authenticated consumer: its identity goes upstream, and its own plugins (merged over
    // its group's) run after the route's in each phase, the response phases included.
    let consumer_chain = match ctx.consumer.clone() {
        Some(found) => {
            identify(ctx.headers, &found);
            let chain = &found.consumer.chain;
            let selection = chain.select(vars);
            run.consumer_plugins = selection.clone();
            if let flow @ Flow::Respond(_) = chain.rewrite(&selection, &mut ctx).await {
                return flow;
            }
            Some((found, selection))
        }
        None => None,
    };
    for (chain, selection) in [(global.as_ref(), &run.global), (route_plugins, &run.route)] {
        if let flow @ Flow::Respond(_) = chain.access(selection, &mut ctx).await {
            return flow;
        }
    }
    if let Some((found, selection)) = &consumer_chain {
        if let flow @ Flow::Respond(_) = found.consumer.chain.access(selection, &mut ctx).await {
            return flow;
        }
    }
    for (chain, selection) in [(global.as_ref(), &run.global), (route_plugins, &run.route)] {
        if let flow @ Flow::Respond(_) = chain.before_proxy(selection, &mut ctx).await {
            return flow;
        }
    }
    Flow::Continue
}

/// The `upstream_response` phase (global rules first) on the upstream's response, for chains
/// with such plugins; a plugin's reply replaces the response.
async fn upstream_response_phase(
    snapshot: &Snapshot,
    route: &RouteEntry,
    run: &mut PluginRun,
    vars: &RequestVars<'_>,
    request_body: &mut BodySlot,
    response: Response<ResponseBody>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let global = &snapshot.global_plugins;
    if !global.has_upstream_response() && !route.plugins.has_upstream_response() {
        return Ok(response);
    }
    let (mut head, mut body) = response.into_parts();
    let mut ctx = UpstreamResponseCtx {
        vars,
        consumer_name: run.consumer.as_ref().map(|c| c.consumer.username.as_str()),
        request_body,
        status: &mut head.status,
        headers: &mut head.headers,
        body: &mut body,
        state: &mut run.state,
    };
    for (chain, selection) in [(global.as_ref(), &run.global), (&route.plugins, &run.route)] {
        if let Flow::Respond(reply) = chain.upstream_response(selection, &mut ctx).await {
            return Ok(plugin_response(reply));
        }
    }
    Ok(Response::from_parts(head, body))
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
    upstream: Option<String>,
    upstream_status: Option<StatusCode>,
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
    route_plugins.header_filter(&run.route, &mut ctx);
    if let Some(found) = &consumer {
        found
            .consumer
            .chain
            .header_filter(&run.consumer_plugins, &mut ctx);
    }
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
        };
        snapshot.global_plugins.log(&run.global, &done);
        run.route_plugins(&snapshot).log(&run.route, &done);
        if let Some(found) = &consumer {
            found.consumer.chain.log(&run.consumer_plugins, &done);
        }
    }));
    Response::from_parts(head, body)
}

/// The backend, client and timeouts of a target, or the error a request to it gets.
fn upstream_of(
    target: &Target,
) -> Result<(&Arc<Backend>, &HttpClient, crate::upstream::Timeouts), GatewayError> {
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
    state: &State,
    mut response: Response<Incoming>,
    earlier: &[StatusCode],
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    timeouts: crate::upstream::Timeouts,
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
    if let Some(value) = upstream_status_header(&statuses, state.settings.show_upstream_status) {
        head.headers.insert(X_APISIX_UPSTREAM_STATUS.clone(), value);
    }
    Response::from_parts(head, ResponseBody::upstream(body, timeouts.read))
}

/// Bytes of the request head as received (request line and header lines), near enough.
fn head_size(parts: &http::request::Parts) -> usize {
    let line = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + 12;
    parts
        .headers
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// nginx's `request_length`: the head as received and the body its `Content-Length` announces.
fn request_length(parts: &http::request::Parts) -> u64 {
    let body = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    u64::try_from(head_size(parts))
        .unwrap_or(u64::MAX)
        .saturating_add(body)
}

fn set_server_header(headers: &mut HeaderMap, value: &HeaderValue) {
    headers.insert(header::SERVER, value.clone());
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
