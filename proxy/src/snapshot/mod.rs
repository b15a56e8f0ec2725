//! The data plane's view of the config: immutable, built off the request path, swapped atomically.
//!
//! A [`Snapshot`] holds the router and, per route, everything a request needs with the service
//! merged in (effective hosts, upstream, timeouts, websocket flag). Requests load the current
//! snapshot once and keep it to the end, so a reload never changes a request in flight.
//!
//! The [`Builder`] keeps state across builds: backends whose upstream definition did not change are
//! reused (balancer state and connection pools survive a reload), and clients are cached per
//! connection policy. Its certificates are indexed by SNI in [`tls`], for the TLS listeners.

pub mod consumers;
pub mod live;
pub mod source;
pub mod tls;

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::path::Path;
use std::sync::Arc;

use crate::config::RouterKind;
use crate::router::{FxHasher, RouteSpec, Router};
use crate::snapshot::consumers::Consumers;
use crate::snapshot::tls::{CertIndex, IndexBuilder, TlsSettings};
use crate::store::ConfigSet;
use crate::upstream::balancer::Latencies;
use crate::upstream::client::{ClientCache, ClientError, ClientKey, HttpClient};
use crate::upstream::health::{self, HealthChecker};
use crate::upstream::{Backend, Timeouts};
use model::{
    Consumer, ConsumerGroup, Credential, GlobalRule, Id, PluginConfig, Route, Service, Ssl,
    Upstream,
};
use plugin_api::chain::Chain;
use plugin_api::registry::Registry;
use plugin_api::upstream::{UpstreamOverride, UpstreamRef};
use plugin_api::BuildContext;

/// Where a matched route sends its requests.
// Nearly every route is `Upstream`; boxing it would add a pointer chase per request to save
// memory on the rare error variants.
#[allow(clippy::large_enum_variant)]
pub enum Target {
    /// Proxy to this backend with this client and these timeouts.
    Upstream {
        /// The backend (shared with other routes using the same upstream).
        backend: Arc<Backend>,
        /// The client for the route's connection policy.
        client: HttpClient,
        /// Effective timeouts (route > upstream > default).
        timeouts: Timeouts,
    },
    /// Neither the route nor its service has an upstream (503).
    NoUpstream,
    /// The route's service does not exist (404, empty body).
    MissingService,
    /// The referenced upstream does not exist or could not be built (502).
    MissingUpstream,
}

/// A route ready to serve.
pub struct RouteEntry {
    /// Route id.
    pub id: String,
    /// Route name, if any.
    pub name: Option<String>,
    /// Service id, if any.
    pub service_id: Option<String>,
    /// The service's name, if it has one (prometheus' `prefer_name`).
    pub service_name: Option<String>,
    /// Where requests go.
    pub target: Target,
    /// Proxy WebSocket upgrades.
    pub enable_websocket: bool,
    /// The route's plugins, with its service's and plugin config's merged in.
    pub plugins: Chain,
    /// The upstreams its plugins may choose instead of `target`, one set per plugin that
    /// declares some ([`plugin_api::upstream`]).
    pub choosable: Vec<Choosable>,
}

/// The upstreams one plugin of a route may choose, built.
pub struct Choosable {
    /// The fingerprint of the declared list ([`plugin_api::upstream::Upstreams::key`]).
    pub key: u64,
    /// One target per declared upstream, in order (a stored one that does not exist is
    /// [`Target::MissingUpstream`]).
    pub targets: Vec<Target>,
    /// The first declared stored upstream that does not exist: its index and id.
    pub missing: Option<(usize, Id)>,
}

/// Where a plugin's choice of upstream sends a request.
pub enum Chosen<'a> {
    /// The route's own target (the plugin kept it, or the choice is not one of the route's).
    Route,
    /// A declared upstream.
    Target(&'a Target),
    /// The choice needs a stored upstream that does not exist (this one).
    Missing(&'a Id),
}

impl RouteEntry {
    /// Where `choice` sends a request to this route: a choice by a plugin whose declared list
    /// is none of the route's plugins' is ignored.
    pub fn chosen(&self, choice: &UpstreamOverride) -> Chosen<'_> {
        let Some(set) = self.choosable.iter().find(|c| c.key == choice.key()) else {
            return Chosen::Route;
        };
        if let Some((at, id)) = &set.missing {
            if *at < choice.required() {
                return Chosen::Missing(id);
            }
        }
        choice
            .index()
            .and_then(|i| set.targets.get(i))
            .map_or(Chosen::Route, Chosen::Target)
    }
}

/// An immutable view of the whole config.
pub struct Snapshot {
    /// Increases with every build.
    pub version: u64,
    /// The route index (shared with the builder, which frees it off the request path).
    pub router: Arc<Router>,
    /// Routes, indexed by the router's match value.
    pub routes: Vec<Arc<RouteEntry>>,
    /// The resources it was built from (served by the control API).
    pub config: Arc<ConfigSet>,
    /// The plugins of every global rule, run before each route's.
    pub global_plugins: Arc<Chain>,
    /// Every consumer, for authentication plugins.
    pub consumers: Arc<Consumers>,
    /// The certificates served by SNI on the TLS listeners.
    pub tls: Arc<CertIndex>,
    /// The health checkers of the upstreams in use, by key (control API, metrics).
    pub health: Vec<Arc<HealthChecker>>,
}

impl Snapshot {
    /// A snapshot with no routes (every request gets 404).
    pub fn empty(kind: RouterKind) -> Snapshot {
        Snapshot {
            version: 0,
            router: Arc::new(Router::build(kind, Vec::new())),
            routes: Vec::new(),
            config: Arc::default(),
            global_plugins: Arc::default(),
            consumers: Arc::default(),
            tls: Arc::default(),
            health: Vec::new(),
        }
    }
}

/// Settings that shape every build.
pub struct BuildSettings {
    /// Which router.
    pub router: RouterKind,
    /// Keep-alive pool size when an upstream sets none.
    pub keepalive: usize,
    /// Keep-alive idle time when an upstream sets none.
    pub keepalive_timeout: std::time::Duration,
    /// The plugin kinds chains are built from.
    pub registry: Registry,
    /// What plugin instances are built with (its `owner` is set per object).
    pub plugins: BuildContext,
}

/// Builds snapshots, keeping backends, clients and unchanged routes across builds.
///
/// A build costs a table lookup per unchanged route plus the router index; the tables that
/// say which backends and clients are in use are kept up to date as routes change, not
/// recomputed. Routers of earlier snapshots are released here, on the building thread, once no
/// snapshot uses them (rather than on whichever request thread drops the last snapshot).
pub struct Builder {
    settings: BuildSettings,
    clients: ClientCache,
    /// Backends by key, with how many cached routes use each.
    backends: FastMap<String, (Arc<Backend>, usize)>,
    /// The clients cached routes use, with how many use each.
    client_uses: FastMap<ClientKey, usize>,
    /// What each route built into last time, by route id.
    routes: FastMap<String, CachedRoute>,
    /// Routers of earlier snapshots, dropped here once nothing else holds them.
    retired: Vec<Arc<Router>>,
    /// Increases with every build; marks the cached routes the build used.
    generation: u64,
    /// The global rules of the last build and their chain.
    global: Option<(Vec<Arc<GlobalRule>>, Arc<Chain>)>,
    /// The consumer resources of the last build and their index.
    consumers: Option<(ConsumerSources, Arc<Consumers>)>,
    /// The certificate index, rebuilt only for ssl objects that changed.
    tls: IndexBuilder,
    /// The ssl objects of the last build by id (for `tls.client_cert_id`).
    ssls: FastMap<String, Arc<Ssl>>,
    /// Health checkers of the backends, started when a backend with `checks` is built and
    /// stopped when its upstream is no longer used.
    health: health::Registry,
    /// The ewma balancers' latency averages, by node address (see `balancer::Latencies`).
    latencies: Latencies,
    /// The plugin metadata changed since the last build: every chain is built again.
    metadata_changed: bool,
    version: u64,
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A route as built, with what it was built from. Reused while the route, its service and its
/// referenced upstream are the same objects (the store hands out a new object for every change).
struct CachedRoute {
    route: Arc<Route>,
    service: Option<Arc<Service>>,
    upstream: Option<Arc<Upstream>>,
    plugin_config: Option<Arc<PluginConfig>>,
    /// Router input; its `value` is unused (the build passes the route's position).
    spec: Arc<RouteSpec>,
    entry: Arc<RouteEntry>,
    /// The keys of the backends in [`Builder::backends`] the route counts as a use of (its
    /// own, then those its plugins may choose).
    backends: Vec<String>,
    /// The client keys in [`Builder::client_uses`] the route counts as a use of.
    clients: Vec<ClientKey>,
    /// The stored upstreams its plugins may choose, as found when built: the route is rebuilt
    /// when one of them changes.
    chosen_upstreams: Vec<(Id, Option<Arc<Upstream>>)>,
    generation: u64,
}

/// The objects a consumer index was built from.
struct ConsumerSources {
    consumers: Vec<Arc<Consumer>>,
    credentials: Vec<Arc<Credential>>,
    groups: Vec<Arc<ConsumerGroup>>,
}

impl ConsumerSources {
    fn same_as(&self, other: &ConsumerSources) -> bool {
        fn all_same<T>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
        }
        all_same(&self.consumers, &other.consumers)
            && all_same(&self.credentials, &other.credentials)
            && all_same(&self.groups, &other.groups)
    }
}

/// What a route refers to, looked up in the build's resources.
struct Links<'a> {
    /// `None`: no service; `Some(None)`: a service that does not exist.
    service: Option<Option<&'a Arc<Service>>>,
    /// The referenced upstream (the route's or its service's `upstream_id`).
    upstream: Option<&'a Arc<Upstream>>,
    /// The route's plugin config.
    plugin_config: Option<&'a Arc<PluginConfig>>,
}

/// A route's plugins: its service's, overridden by its plugin config's, overridden by its own
/// (APISIX's precedence, route > plugin config > service). A plugin config the route names but
/// that does not exist makes every request 503, as APISIX does.
fn route_plugins(
    route: &Route,
    service: Option<&Arc<Service>>,
    plugin_config: Option<&Arc<PluginConfig>>,
    registry: &Registry,
    base: &BuildContext,
) -> Chain {
    if let (Some(id), None) = (&route.plugin_config_id, plugin_config) {
        return Chain::failing(format!("plugin config {} not found", id.0));
    }
    let layers = [
        service.and_then(|s| s.plugins.as_ref()),
        plugin_config.map(|p| &p.plugins),
        route.plugins.as_ref(),
    ];
    if layers.iter().all(|l| l.is_none_or(|m| m.is_empty())) {
        return Chain::default();
    }
    let mut merged = serde_json::Map::new();
    for layer in layers.into_iter().flatten() {
        for (name, conf) in layer {
            merged.insert(name.clone(), conf.clone());
        }
    }
    let ctx = BuildContext {
        owner: format!("route#{}", route.id.as_ref().map_or("", |i| i.0.as_str())),
        ..base.clone()
    };
    Chain::build(registry, &merged, &ctx)
}

fn same<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl Builder {
    /// A builder; `trusted_ca` adds a CA bundle to the system roots for https upstreams.
    ///
    /// # Errors
    /// When the CA bundle cannot be read.
    pub fn new(settings: BuildSettings, trusted_ca: Option<&Path>) -> Result<Builder, ClientError> {
        Ok(Builder {
            settings,
            clients: ClientCache::new(trusted_ca)?,
            backends: FastMap::default(),
            client_uses: FastMap::default(),
            routes: FastMap::default(),
            retired: Vec::new(),
            generation: 0,
            global: None,
            consumers: None,
            tls: IndexBuilder::default(),
            ssls: FastMap::default(),
            health: health::Registry::default(),
            latencies: Latencies::default(),
            metadata_changed: false,
            version: 0,
        })
    }

    /// Sets the plugin metadata later builds hand to the plugin kinds; a changed set makes the
    /// next build build every chain again (routes, global rules, consumers), so instances read
    /// metadata when built and never per request.
    pub fn set_metadata(&mut self, metadata: plugin_api::metadata::MetadataSet) {
        if !self.settings.plugins.metadata.same(&metadata) {
            self.settings.plugins.metadata = metadata;
            self.metadata_changed = true;
            self.global = None;
            self.consumers = None;
        }
    }

    /// Sets the node-level TLS settings (`apisix.ssl`) later builds use.
    pub fn set_tls(&mut self, settings: TlsSettings) {
        self.tls = IndexBuilder::new(settings);
    }

    /// Turns upstream health checks on (the default) or off; a node that serves no traffic (a
    /// control plane) runs no checker.
    pub fn set_health_checks(&mut self, on: bool) {
        self.health.set_enabled(on);
    }

    /// The router the snapshots use.
    pub fn router_kind(&self) -> RouterKind {
        self.settings.router
    }

    /// Builds a snapshot from validated resources. Routes whose route, service and upstream
    /// objects are the ones of the last build are not built again.
    pub fn build(&mut self, config: Arc<ConfigSet>) -> Snapshot {
        // Routers no snapshot holds any more are freed here, off the request path.
        self.retired.retain(|r| Arc::strong_count(r) > 1);
        let chains_stale = std::mem::take(&mut self.metadata_changed);
        let upstreams: FastMap<&Id, &Arc<Upstream>> = config
            .upstreams
            .iter()
            .filter_map(|u| u.id.as_ref().map(|id| (id, u)))
            .collect();
        let services: FastMap<&Id, &Arc<Service>> = config
            .services
            .iter()
            .filter_map(|s| s.id.as_ref().map(|id| (id, s)))
            .collect();
        let plugin_configs: FastMap<&Id, &Arc<PluginConfig>> = config
            .plugin_configs
            .iter()
            .filter_map(|p| p.id.as_ref().map(|id| (id, p)))
            .collect();
        let ssls_changed = self.refresh_ssls(&config.ssls);
        let mut specs = Vec::with_capacity(config.routes.len());
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut clients_released = false;
        // Cached routes this build uses (ids may repeat in a file: count each once).
        let mut current = 0;
        self.generation += 1;
        let generation = self.generation;
        for route in &config.routes {
            if route.status == Some(0) {
                continue;
            }
            let id = route.id.as_ref().map_or("", |i| i.0.as_str());
            let service = route
                .service_id
                .as_ref()
                .map(|sid| services.get(sid).copied());
            let referenced = route
                .upstream_id
                .as_ref()
                .or_else(|| service.flatten().and_then(|s| s.upstream_id.as_ref()))
                .and_then(|uid| upstreams.get(uid).copied());
            let plugin_config = route
                .plugin_config_id
                .as_ref()
                .and_then(|pid| plugin_configs.get(pid).copied());
            if let Some(cached) = self.routes.get_mut(id) {
                if !chains_stale
                    && Arc::ptr_eq(&cached.route, route)
                    && same(cached.service.as_ref(), service.flatten())
                    && same(cached.upstream.as_ref(), referenced)
                    && same(cached.plugin_config.as_ref(), plugin_config)
                    && cached
                        .chosen_upstreams
                        .iter()
                        .all(|(uid, was)| same(was.as_ref(), upstreams.get(uid).copied()))
                    // A client certificate taken from a changed ssl object needs a new client.
                    && !(ssls_changed && cached.clients.iter().any(|k| k.client_cert_id.is_some()))
                {
                    if cached.generation != generation {
                        cached.generation = generation;
                        current += 1;
                    }
                    specs.push(cached.spec.clone());
                    routes.push(cached.entry.clone());
                    continue;
                }
            }
            // Built (and its uses counted) before the old version is released, so a backend
            // both use survives.
            let links = Links {
                service,
                upstream: referenced,
                plugin_config,
            };
            let fresh = self.route(route, links, &upstreams);
            let old = match fresh {
                Some(mut fresh) => {
                    fresh.generation = generation;
                    specs.push(fresh.spec.clone());
                    routes.push(fresh.entry.clone());
                    let old = self.routes.insert(id.to_owned(), fresh);
                    if old.as_ref().is_none_or(|o| o.generation != generation) {
                        current += 1;
                    }
                    old
                }
                None => {
                    let old = self.routes.remove(id);
                    if old.as_ref().is_some_and(|o| o.generation == generation) {
                        current -= 1;
                    }
                    old
                }
            };
            if let Some(old) = old {
                clients_released |= self.release(&old);
            }
        }
        if self.routes.len() > current {
            let stale: Vec<String> = self
                .routes
                .iter()
                .filter(|(_, c)| c.generation != generation)
                .map(|(id, _)| id.clone())
                .collect();
            for id in stale {
                if let Some(old) = self.routes.remove(&id) {
                    clients_released |= self.release(&old);
                }
            }
        }
        if clients_released {
            let used: HashSet<ClientKey> = self.client_uses.keys().cloned().collect();
            self.clients.retain(&used);
        }
        let backends = &self.backends;
        self.health.retain(|key| backends.contains_key(key));
        self.version += 1;
        let router = Arc::new(Router::build_with_values(
            self.settings.router,
            specs
                .iter()
                .enumerate()
                .map(|(i, spec)| (u32::try_from(i).unwrap_or(u32::MAX), &**spec)),
        ));
        self.retired.push(router.clone());
        Snapshot {
            version: self.version,
            router,
            routes,
            global_plugins: self.global_plugins(&config.global_rules),
            consumers: self.consumers(&config),
            tls: self.tls.build(&config.ssls),
            health: self.health.list(),
            config,
        }
    }

    /// Keeps the ssl objects by id; returns whether any changed since the last build.
    fn refresh_ssls(&mut self, ssls: &[Arc<Ssl>]) -> bool {
        let unchanged = self.ssls.len() == ssls.len()
            && ssls.iter().all(|s| {
                let id = s.id.as_ref().map_or("", |i| i.0.as_str());
                self.ssls.get(id).is_some_and(|old| Arc::ptr_eq(old, s))
            });
        if unchanged {
            return false;
        }
        self.ssls = ssls
            .iter()
            .map(|s| {
                (
                    s.id.as_ref().map_or_else(String::new, |i| i.0.clone()),
                    s.clone(),
                )
            })
            .collect();
        true
    }

    /// The consumer index, reused while consumers, credentials and groups are the same objects.
    fn consumers(&mut self, config: &ConfigSet) -> Arc<Consumers> {
        let sources = ConsumerSources {
            consumers: config.consumers.clone(),
            credentials: config
                .credentials
                .iter()
                .map(|(_, _, c)| c.clone())
                .collect(),
            groups: config.consumer_groups.clone(),
        };
        if let Some((cached, index)) = &self.consumers {
            if cached.same_as(&sources) {
                return index.clone();
            }
        }
        let index = Arc::new(Consumers::build(
            &config.consumers,
            &config.credentials,
            &config.consumer_groups,
            &self.settings.registry,
            &self.settings.plugins,
        ));
        self.consumers = Some((sources, index.clone()));
        index
    }

    /// The chain of all global rules' plugins, reused while the rules are the same objects. A
    /// plugin in several rules runs once, from the rule with the smallest id (APISIX refuses
    /// such writes; the data plane logs and drops the repeats).
    fn global_plugins(&mut self, rules: &[Arc<GlobalRule>]) -> Arc<Chain> {
        if let Some((cached, chain)) = &self.global {
            if cached.len() == rules.len()
                && cached.iter().zip(rules).all(|(a, b)| Arc::ptr_eq(a, b))
            {
                return chain.clone();
            }
        }
        let mut merged = serde_json::Map::new();
        for rule in rules {
            for (name, conf) in &rule.plugins {
                if merged.contains_key(name) {
                    let id = rule.id.as_ref().map_or("", |i| i.0.as_str());
                    tracing::error!(plugin = %name, global_rule = %id, "plugin already in another global rule; dropped");
                    continue;
                }
                merged.insert(name.clone(), conf.clone());
            }
        }
        let ctx = BuildContext {
            owner: "global_rules".to_owned(),
            ..self.settings.plugins.clone()
        };
        let chain = Arc::new(Chain::build(&self.settings.registry, &merged, &ctx));
        self.global = Some((rules.to_vec(), chain.clone()));
        chain
    }

    /// Counts a backend and client a route uses.
    fn acquire(&mut self, resolved: &Resolved) {
        if let Some((_, uses)) = resolved
            .backend
            .as_deref()
            .and_then(|k| self.backends.get_mut(k))
        {
            *uses += 1;
        }
        if let Some(k) = &resolved.client {
            match self.client_uses.get_mut(k) {
                Some(uses) => *uses += 1,
                None => {
                    self.client_uses.insert(k.clone(), 1);
                }
            }
        }
    }

    /// Uncounts the backend and client of a route no longer served; forgets those nothing
    /// uses. Returns whether a client is no longer used.
    fn release(&mut self, route: &CachedRoute) -> bool {
        for key in &route.backends {
            if let Some((_, uses)) = self.backends.get_mut(key) {
                *uses = uses.saturating_sub(1);
                if *uses == 0 {
                    self.backends.remove(key);
                }
            }
        }
        let mut released = false;
        for key in &route.clients {
            if let Some(uses) = self.client_uses.get_mut(key) {
                *uses = uses.saturating_sub(1);
                if *uses == 0 {
                    self.client_uses.remove(key);
                    released = true;
                }
            }
        }
        released
    }

    /// Builds one route (its router spec and its entry) and counts the backend and client it
    /// uses; `None` when the route cannot be served.
    fn route(
        &mut self,
        route: &Arc<Route>,
        links: Links<'_>,
        upstreams: &FastMap<&Id, &Arc<Upstream>>,
    ) -> Option<CachedRoute> {
        let Links {
            service,
            upstream: referenced,
            plugin_config,
        } = links;
        let id = route.id.as_ref().map_or_else(String::new, |i| i.0.clone());
        let vars = match route.compiled_vars() {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(route = %id, error = %e, "invalid vars, route skipped");
                return None;
            }
        };
        let (resolved, hosts) = match service {
            Some(None) => (
                Resolved::new(Target::MissingService),
                route.host_list().unwrap_or_default(),
            ),
            Some(Some(svc)) => (
                self.target(route, Some(svc), upstreams),
                route.host_list().unwrap_or_else(|| {
                    svc.hosts
                        .iter()
                        .flatten()
                        .map(|h| h.to_ascii_lowercase())
                        .collect()
                }),
            ),
            None => (
                self.target(route, None, upstreams),
                route.host_list().unwrap_or_default(),
            ),
        };
        let methods = route
            .methods
            .iter()
            .flatten()
            .filter_map(|m| m.parse().ok())
            .collect();
        let spec = RouteSpec {
            value: 0,
            id: id.clone(),
            uris: route.uri_list(),
            hosts,
            methods,
            remote_addrs: route.remote_addr_list(),
            vars,
            priority: route.priority.unwrap_or(0),
        };
        let enable_websocket = route
            .enable_websocket
            .or_else(|| service.flatten().and_then(|s| s.enable_websocket))
            .unwrap_or(false);
        let plugins = route_plugins(
            route,
            service.flatten(),
            plugin_config,
            &self.settings.registry,
            &self.settings.plugins,
        );
        let mut chosen_upstreams = Vec::new();
        let mut resolved_all = vec![resolved];
        let mut sets = Vec::new();
        for (name, declared) in plugins.upstreams() {
            let mut missing = None;
            for (position, declared_ref) in declared.refs().iter().enumerate() {
                let resolved = match declared_ref {
                    UpstreamRef::Id(uid) => {
                        let found = upstreams.get(uid).copied();
                        chosen_upstreams.push((uid.clone(), found.cloned()));
                        if found.is_none() && missing.is_none() {
                            missing = Some((position, uid.clone()));
                        }
                        match found {
                            Some(u) => {
                                self.resolve(route, format!("/apisix/upstreams/{}", uid.0), u)
                            }
                            None => Resolved::new(Target::MissingUpstream),
                        }
                    }
                    UpstreamRef::Inline(u) => {
                        let key = format!("/apisix/routes/{id}/{name}/{position}");
                        // As APISIX, which sets no scheme for an upstream a plugin defines
                        // unless it is https, `pass_host: node` sends the node's host alone.
                        let bare_host = u.scheme.as_deref() != Some("https");
                        self.resolve_with(route, key, u, bare_host)
                    }
                };
                resolved_all.push(resolved);
            }
            sets.push((declared.key(), declared.refs().len(), missing));
        }
        let mut backends = Vec::new();
        let mut clients = Vec::new();
        let mut targets = Vec::with_capacity(resolved_all.len());
        for resolved in resolved_all {
            self.acquire(&resolved);
            backends.extend(resolved.backend);
            clients.extend(resolved.client);
            targets.push(resolved.target);
        }
        let mut targets = targets.into_iter();
        let target = targets.next().unwrap_or(Target::NoUpstream);
        let choosable = sets
            .into_iter()
            .map(|(key, len, missing)| Choosable {
                key,
                targets: targets.by_ref().take(len).collect(),
                missing,
            })
            .collect();
        let entry = Arc::new(RouteEntry {
            id,
            name: route.name.clone(),
            service_id: route.service_id.as_ref().map(|s| s.0.clone()),
            service_name: service.flatten().and_then(|s| s.name.clone()),
            target,
            enable_websocket,
            plugins,
            choosable,
        });
        Some(CachedRoute {
            route: route.clone(),
            service: service.flatten().cloned(),
            upstream: referenced.cloned(),
            plugin_config: plugin_config.cloned(),
            spec: Arc::new(spec),
            entry,
            backends,
            clients,
            chosen_upstreams,
            generation: 0,
        })
    }

    /// Resolves the upstream of a route (route > service; `upstream_id` > inline), then builds it
    /// with [`Builder::resolve`]. The backend is the known one for its key while its definition
    /// is unchanged, else a new one replacing it (routes still on the old one use the same
    /// source, so they are being rebuilt too).
    fn target(
        &mut self,
        route: &Route,
        service: Option<&Service>,
        upstreams: &FastMap<&Id, &Arc<Upstream>>,
    ) -> Resolved {
        let route_id = route.id.as_ref().map_or("", |i| i.0.as_str());
        let reference = |id: &Id| {
            upstreams
                .get(id)
                .map(|u| (format!("/apisix/upstreams/{}", id.0), &***u))
        };
        let chosen = if let Some(id) = &route.upstream_id {
            reference(id)
        } else if let Some(u) = &route.upstream {
            Some((format!("/apisix/routes/{route_id}"), u))
        } else if let Some(svc) = service {
            let svc_id = svc.id.as_ref().map_or("", |i| i.0.as_str());
            match (&svc.upstream_id, &svc.upstream) {
                (Some(id), _) => reference(id),
                (None, Some(u)) => Some((format!("/apisix/services/{svc_id}"), u)),
                (None, None) => return Resolved::new(Target::NoUpstream),
            }
        } else {
            return Resolved::new(Target::NoUpstream);
        };
        let Some((key, definition)) = chosen else {
            return Resolved::new(Target::MissingUpstream);
        };
        self.resolve(route, key, definition)
    }

    /// The target for upstream `definition` known by `key` (e.g. `/apisix/upstreams/1`),
    /// with the route's timeouts.
    fn resolve(&mut self, route: &Route, key: String, definition: &Upstream) -> Resolved {
        self.resolve_with(route, key, definition, false)
    }

    /// [`Builder::resolve`]; with `bare_host`, `pass_host: node` sends the node's host without
    /// its port.
    fn resolve_with(
        &mut self,
        route: &Route,
        key: String,
        definition: &Upstream,
        bare_host: bool,
    ) -> Resolved {
        let known = match self.backends.get(&key) {
            Some((b, _)) if b.definition == *definition => Some(b.clone()),
            _ => None,
        };
        let backend = match known {
            Some(b) => b,
            None => {
                let checker = self.health.checker(&key, definition, &mut self.clients);
                let mut b =
                    Backend::with_checker(key.clone(), definition, checker, &self.latencies);
                if bare_host {
                    b.strip_node_ports();
                }
                let b = Arc::new(b);
                // Replaces a changed one; a new one counts no use yet.
                let uses = self.backends.get(&key).map_or(0, |(_, uses)| *uses);
                self.backends.insert(key.clone(), (b.clone(), uses));
                b
            }
        };
        let timeouts = route
            .timeout
            .as_ref()
            .map_or(backend.timeouts, Timeouts::from_model);
        let client_key = self.client_key(definition, timeouts);
        match self.clients.get(&client_key) {
            Ok(client) => Resolved {
                target: Target::Upstream {
                    backend,
                    client,
                    timeouts,
                },
                backend: Some(key),
                client: Some(client_key),
            },
            Err(e) => {
                tracing::error!(upstream = %key, error = %e, "cannot build the upstream client");
                Resolved {
                    target: Target::MissingUpstream,
                    backend: Some(key),
                    client: None,
                }
            }
        }
    }

    fn client_key(&self, u: &Upstream, timeouts: Timeouts) -> ClientKey {
        let tls = u.tls.as_ref();
        let (pool_size, idle_timeout) = match &u.keepalive_pool {
            Some(p) if p.idle_timeout == 0.0 => (0, std::time::Duration::ZERO),
            Some(p) => (
                p.size,
                std::time::Duration::try_from_secs_f64(p.idle_timeout)
                    .unwrap_or(self.settings.keepalive_timeout),
            ),
            None => (self.settings.keepalive, self.settings.keepalive_timeout),
        };
        let client_cert_id = tls.and_then(|t| t.client_cert_id.as_ref());
        let client_cert = match client_cert_id {
            Some(id) => match self.ssls.get(&id.0) {
                Some(ssl) => Some((ssl.cert.clone(), ssl.key.clone())),
                None => {
                    tracing::error!(ssl = %id.0, "tls.client_cert_id names no ssl object; no client certificate is sent");
                    None
                }
            },
            None => tls.and_then(|t| t.client_cert.clone().zip(t.client_key.clone())),
        };
        // APISIX sends `upstream_host` as the TLS server name when it rewrites the Host.
        let sni = match (u.is_tls(), u.pass_host.as_deref()) {
            (true, Some("rewrite")) => u.upstream_host.clone().filter(|h| !h.is_empty()),
            _ => None,
        };
        ClientKey {
            verify: tls.and_then(|t| t.verify).unwrap_or(true),
            client_cert,
            client_cert_id: client_cert_id.map(|i| i.0.clone()),
            sni,
            http2: u.is_grpc(),
            pool_size,
            idle_timeout,
            connect_timeout: timeouts.connect,
        }
    }
}

/// A route's target with the backend and client it uses (to be counted).
struct Resolved {
    target: Target,
    backend: Option<String>,
    client: Option<ClientKey>,
}

impl Resolved {
    fn new(target: Target) -> Resolved {
        Resolved {
            target,
            backend: None,
            client: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::upstream::Upstreams;

    fn builder() -> Builder {
        Builder::new(
            BuildSettings {
                router: RouterKind::HostUri,
                keepalive: 320,
                keepalive_timeout: std::time::Duration::from_secs(60),
                registry: crate::gateway::plugin_registry(None, None, &[]),
                plugins: BuildContext::default(),
            },
            None,
        )
        .expect("builder")
    }

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Arc<T> {
        Arc::new(serde_json::from_str(json).expect("valid json"))
    }

    fn backend(s: &Snapshot, i: usize) -> Option<Arc<Backend>> {
        match &s.routes[i].target {
            Target::Upstream { backend, .. } => Some(backend.clone()),
            _ => None,
        }
    }

    #[test]
    fn backends_follow_the_routes_that_use_them() {
        let mut b = builder();
        let up: Arc<Upstream> = parse(r#"{"id":"u","nodes":{"127.0.0.1:1980":1}}"#);
        let r1: Arc<Route> = parse(r#"{"id":"1","uri":"/a","upstream_id":"u"}"#);
        let r2: Arc<Route> =
            parse(r#"{"id":"2","uri":"/b","upstream":{"nodes":{"127.0.0.1:1981":1}}}"#);
        let config = |routes: Vec<Arc<Route>>| {
            Arc::new(ConfigSet {
                routes,
                upstreams: vec![up.clone()],
                ..ConfigSet::default()
            })
        };
        let first = b.build(config(vec![r1.clone(), r2.clone()]));
        assert_eq!(first.routes.len(), 2);
        let (shared, inline) = (backend(&first, 0), backend(&first, 1));
        assert_eq!(b.backends.len(), 2);

        // A route changing only its uri keeps its (inline) backend; the other route is reused.
        let r2b: Arc<Route> =
            parse(r#"{"id":"2","uri":"/c","upstream":{"nodes":{"127.0.0.1:1981":1}}}"#);
        let second = b.build(config(vec![r1.clone(), r2b]));
        assert!(Arc::ptr_eq(&first.routes[0], &second.routes[0]));
        assert!(!Arc::ptr_eq(&first.routes[1], &second.routes[1]));
        let same_backend = |a: &Option<Arc<Backend>>, b: &Option<Arc<Backend>>| match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        assert!(same_backend(&inline, &backend(&second, 1)));
        assert_eq!(second.router.len(), 2);

        // Removing the route forgets its backend; adding it back builds a new one.
        let third = b.build(config(vec![r1.clone()]));
        assert_eq!(third.routes.len(), 1);
        assert_eq!(b.backends.len(), 1);
        assert_eq!(b.routes.len(), 1);
        assert!(same_backend(&shared, &backend(&third, 0)));
        let fourth = b.build(config(vec![r1, r2]));
        assert!(!same_backend(&inline, &backend(&fourth, 1)));
        assert_eq!(b.backends.len(), 2);
        assert_eq!(b.client_uses.values().sum::<usize>(), 2);

        // Disabled routes count as removed.
        let off: Arc<Route> = parse(r#"{"id":"1","uri":"/a","upstream_id":"u","status":0}"#);
        b.build(config(vec![off]));
        assert!(b.backends.is_empty());
        assert!(b.client_uses.is_empty());
        assert!(b.routes.is_empty());
    }

    #[test]
    fn upstreams_plugins_may_choose_are_built_and_followed() {
        let mut b = builder();
        let up = |port: u16| -> Arc<Upstream> {
            parse(&format!(r#"{{"id":"u","nodes":{{"127.0.0.1:{port}":1}}}}"#))
        };
        let route: Arc<Route> = parse(
            r#"{"id":"1","uri":"/a","upstream":{"nodes":{"127.0.0.1:1980":1}},
                "plugins":{"traffic-split":{"rules":[{"weighted_upstreams":[
                    {"upstream_id":"u"},{"upstream":{"nodes":{"127.0.0.1:1982":1}}},{"weight":1},
                    {"upstream_id":"missing"}]}]}}}"#,
        );
        let config = |u: Arc<Upstream>| {
            Arc::new(ConfigSet {
                routes: vec![route.clone()],
                upstreams: vec![u],
                ..ConfigSet::default()
            })
        };
        let first = b.build(config(up(1981)));
        let entry = &first.routes[0];
        assert_eq!(entry.choosable.len(), 1, "one plugin declares upstreams");
        let set = &entry.choosable[0];
        assert_eq!(set.targets.len(), 3);
        let node = |t: &Target| match t {
            Target::Upstream { backend, .. } => Some(backend.nodes()[0].authority.to_string()),
            _ => None,
        };
        assert_eq!(node(&set.targets[0]).as_deref(), Some("127.0.0.1:1981"));
        assert_eq!(node(&set.targets[1]).as_deref(), Some("127.0.0.1:1982"));
        assert!(matches!(set.targets[2], Target::MissingUpstream));
        assert_eq!(set.missing, Some((2, Id("missing".into()))));
        assert_eq!(b.backends.len(), 3, "the route's, u and the inline one");
        let conf = &route.plugins.as_ref().expect("plugins")["traffic-split"];
        let declared = b
            .settings
            .registry
            .kind("traffic-split")
            .expect("kind")
            .upstreams_of(conf);
        let chosen = |choice| match entry.chosen(&choice) {
            Chosen::Route => "route".to_owned(),
            Chosen::Target(t) => node(t).unwrap_or_default(),
            Chosen::Missing(id) => format!("missing {}", id.0),
        };
        assert_eq!(chosen(declared.choose(Some(1))), "127.0.0.1:1982");
        assert_eq!(chosen(declared.choose(None)), "route");
        assert_eq!(
            chosen(declared.choose(Some(0)).requiring(2)),
            "127.0.0.1:1981"
        );
        assert_eq!(
            chosen(declared.choose(None).requiring(3)),
            "missing missing"
        );
        assert_eq!(
            chosen(Upstreams::default().choose(Some(0))),
            "route",
            "another list"
        );

        // The same objects: reused. A changed upstream u: rebuilt.
        let same_u = first.config.upstreams[0].clone();
        let second = b.build(config(same_u));
        assert!(Arc::ptr_eq(&first.routes[0], &second.routes[0]));
        let third = b.build(config(up(1983)));
        assert!(!Arc::ptr_eq(&second.routes[0], &third.routes[0]));
        assert_eq!(
            node(&third.routes[0].choosable[0].targets[0]).as_deref(),
            Some("127.0.0.1:1983")
        );
        assert_eq!(b.backends.len(), 3);

        // Removing the route releases every backend and client it used.
        b.build(Arc::default());
        assert!(b.backends.is_empty());
        assert!(b.client_uses.is_empty());
    }

    #[test]
    fn health_checkers_follow_upstream_changes() {
        let mut b = builder();
        let config = |nodes: &str, checks: &str| {
            let up: Arc<Upstream> = parse(&format!(
                r#"{{"id":"u","nodes":{nodes},"checks":{{"active":{checks}}}}}"#
            ));
            let route: Arc<Route> = parse(r#"{"id":"1","uri":"/a","upstream_id":"u"}"#);
            Arc::new(ConfigSet {
                routes: vec![route],
                upstreams: vec![up],
                ..ConfigSet::default()
            })
        };
        let hosts = |s: &Snapshot| -> Vec<String> {
            s.health[0]
                .targets()
                .iter()
                .map(|t| format!("{}:{}", t.host, t.port))
                .collect()
        };
        let first = b.build(config(r#"{"127.0.0.1:1":1,"127.0.0.1:2":1}"#, "{}"));
        assert_eq!(first.health.len(), 1);
        assert_eq!(first.health[0].key(), "/apisix/upstreams/u");
        assert_eq!(hosts(&first), vec!["127.0.0.1:1", "127.0.0.1:2"]);

        // Nodes change, checks do not: the same checker, probing the new node set.
        let second = b.build(config(r#"{"127.0.0.1:2":1,"127.0.0.1:3":1}"#, "{}"));
        assert!(Arc::ptr_eq(&first.health[0], &second.health[0]));
        assert_eq!(hosts(&second), vec!["127.0.0.1:2", "127.0.0.1:3"]);

        // Checks change: a new checker.
        let third = b.build(config(
            r#"{"127.0.0.1:2":1,"127.0.0.1:3":1}"#,
            r#"{"type":"tcp"}"#,
        ));
        assert!(!Arc::ptr_eq(&second.health[0], &third.health[0]));

        // No route uses the upstream: no checker.
        let fourth = b.build(Arc::default());
        assert!(fourth.health.is_empty());

        // Health checks off (a control plane): no checker at all.
        b.set_health_checks(false);
        let fifth = b.build(config(r#"{"127.0.0.1:5":1}"#, "{}"));
        assert!(fifth.health.is_empty());
    }

    #[test]
    fn old_routers_are_freed_by_the_builder() {
        let mut b = builder();
        let first = b.build(Arc::default());
        let weak = Arc::downgrade(&first.router);
        drop(first);
        // The builder still holds it, so no request thread frees it ...
        assert!(weak.upgrade().is_some());
        b.build(Arc::default());
        // ... and the next build does.
        assert!(weak.upgrade().is_none());
    }
}
