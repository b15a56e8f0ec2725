//! The data plane's view of the config: immutable, built off the request path, swapped atomically.
//!
//! A [`Snapshot`] holds the router and, per route, everything a request needs with the service
//! merged in (effective hosts, upstream, timeouts, websocket flag). Requests load the current
//! snapshot once and keep it to the end, so a reload never changes a request in flight.
//!
//! The [`Builder`] keeps state across builds: backends whose upstream definition did not change are
//! reused (balancer state and connection pools survive a reload), and clients are cached per
//! connection policy.

pub mod live;
pub mod source;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::model::{GlobalRule, Id, PluginConfig, Route, Service, Upstream};
use crate::plugins::chain::Chain;
use crate::router::{RouteSpec, Router, RouterKind};
use crate::store::Declarative;
use crate::upstream::client::{ClientCache, ClientError, ClientKey, HttpClient};
use crate::upstream::{Backend, Timeouts};

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
    /// Where requests go.
    pub target: Target,
    /// Proxy WebSocket upgrades.
    pub enable_websocket: bool,
    /// The route's plugins, with its service's and plugin config's merged in.
    pub plugins: Chain,
}

/// An immutable view of the whole config.
pub struct Snapshot {
    /// Increases with every build.
    pub version: u64,
    /// The route index.
    pub router: Router,
    /// Routes, indexed by the router's match value.
    pub routes: Vec<Arc<RouteEntry>>,
    /// The resources it was built from (served by the control API).
    pub config: Arc<Declarative>,
    /// The plugins of every global rule, run before each route's.
    pub global_plugins: Arc<Chain>,
}

impl Snapshot {
    /// A snapshot with no routes (every request gets 404).
    pub fn empty(kind: RouterKind) -> Snapshot {
        Snapshot {
            version: 0,
            router: Router::build(kind, Vec::new()),
            routes: Vec::new(),
            config: Arc::default(),
            global_plugins: Arc::default(),
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
}

/// Builds snapshots, keeping backends, clients and unchanged routes across builds.
pub struct Builder {
    settings: BuildSettings,
    clients: ClientCache,
    backends: HashMap<String, Arc<Backend>>,
    /// What each route built into last time, by route id.
    routes: HashMap<String, Box<CachedRoute>>,
    /// Increases with every build; marks the cached routes the build used.
    generation: u64,
    /// The global rules of the last build and their chain.
    global: Option<(Vec<Arc<GlobalRule>>, Arc<Chain>)>,
    version: u64,
}

/// A route as built, with what it was built from. Reused while the route, its service and its
/// referenced upstream are the same objects (the store hands out a new object for every change).
struct CachedRoute {
    route: Arc<Route>,
    service: Option<Arc<Service>>,
    upstream: Option<Arc<Upstream>>,
    plugin_config: Option<Arc<PluginConfig>>,
    spec: RouteSpec,
    entry: Arc<RouteEntry>,
    client: Option<ClientKey>,
    generation: u64,
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
    Chain::build(&merged)
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
            backends: HashMap::new(),
            routes: HashMap::new(),
            generation: 0,
            global: None,
            version: 0,
        })
    }

    /// The router the snapshots use.
    pub fn router_kind(&self) -> RouterKind {
        self.settings.router
    }

    /// Builds a snapshot from validated resources. Routes whose route, service and upstream
    /// objects are the ones of the last build are not built again.
    pub fn build(&mut self, config: Arc<Declarative>) -> Snapshot {
        let upstreams: HashMap<&Id, &Arc<Upstream>> = config
            .upstreams
            .iter()
            .filter_map(|u| u.id.as_ref().map(|id| (id, u)))
            .collect();
        let services: HashMap<&Id, &Arc<Service>> = config
            .services
            .iter()
            .filter_map(|s| s.id.as_ref().map(|id| (id, s)))
            .collect();
        let plugin_configs: HashMap<&Id, &Arc<PluginConfig>> = config
            .plugin_configs
            .iter()
            .filter_map(|p| p.id.as_ref().map(|id| (id, p)))
            .collect();
        let mut used_backends = HashMap::new();
        let mut used_clients = HashSet::new();
        let mut specs = Vec::with_capacity(config.routes.len());
        let mut routes = Vec::with_capacity(config.routes.len());
        self.generation += 1;
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
            let reusable = self.routes.get(id).is_some_and(|c| {
                Arc::ptr_eq(&c.route, route)
                    && same(c.service.as_ref(), service.flatten())
                    && same(c.upstream.as_ref(), referenced)
                    && same(c.plugin_config.as_ref(), plugin_config)
            });
            if reusable {
                if let Some(cached) = self.routes.get(id) {
                    if let Target::Upstream { backend, .. } = &cached.entry.target {
                        if !used_backends.contains_key(&backend.key) {
                            used_backends.insert(backend.key.clone(), backend.clone());
                        }
                    }
                    if let Some(k) = cached
                        .client
                        .as_ref()
                        .filter(|k| !used_clients.contains(*k))
                    {
                        used_clients.insert(k.clone());
                    }
                }
            } else {
                match self.route(
                    route,
                    Links {
                        service,
                        upstream: referenced,
                        plugin_config,
                    },
                    &upstreams,
                    &mut used_backends,
                    &mut used_clients,
                ) {
                    Some(fresh) => {
                        self.routes.insert(id.to_owned(), Box::new(fresh));
                    }
                    None => {
                        self.routes.remove(id);
                        continue;
                    }
                }
            }
            let Some(built) = self.routes.get_mut(id) else {
                continue;
            };
            built.generation = self.generation;
            let mut spec = built.spec.clone();
            spec.value = u32::try_from(routes.len()).unwrap_or(u32::MAX);
            specs.push(spec);
            routes.push(built.entry.clone());
        }
        let generation = self.generation;
        self.routes.retain(|_, c| c.generation == generation);
        self.backends = used_backends;
        self.clients.retain(&used_clients);
        self.version += 1;
        Snapshot {
            version: self.version,
            router: Router::build(self.settings.router, specs),
            routes,
            global_plugins: self.global_plugins(&config.global_rules),
            config,
        }
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
        let chain = Arc::new(Chain::build(&merged));
        self.global = Some((rules.to_vec(), chain.clone()));
        chain
    }

    /// Builds one route (its router spec, with `value` set by the caller, and its entry).
    fn route(
        &mut self,
        route: &Arc<Route>,
        links: Links<'_>,
        upstreams: &HashMap<&Id, &Arc<Upstream>>,
        used_backends: &mut HashMap<String, Arc<Backend>>,
        used_clients: &mut HashSet<ClientKey>,
    ) -> Option<CachedRoute> {
        let Links {
            service,
            upstream: referenced,
            plugin_config,
        } = links;
        let id = route.id.as_ref().map_or_else(String::new, |i| i.0.clone());
        let ((target, client), hosts) = match service {
            Some(None) => (
                (Target::MissingService, None),
                route.host_list().unwrap_or_default(),
            ),
            Some(Some(svc)) => (
                self.target(route, Some(svc), upstreams, used_backends, used_clients),
                route.host_list().unwrap_or_else(|| {
                    svc.hosts
                        .iter()
                        .flatten()
                        .map(|h| h.to_ascii_lowercase())
                        .collect()
                }),
            ),
            None => (
                self.target(route, None, upstreams, used_backends, used_clients),
                route.host_list().unwrap_or_default(),
            ),
        };
        let vars = match route.compiled_vars() {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(route = %id, error = %e, "invalid vars, route skipped");
                return None;
            }
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
        let entry = Arc::new(RouteEntry {
            id,
            name: route.name.clone(),
            service_id: route.service_id.as_ref().map(|s| s.0.clone()),
            target,
            enable_websocket,
            plugins: route_plugins(route, service.flatten(), plugin_config),
        });
        Some(CachedRoute {
            route: route.clone(),
            service: service.flatten().cloned(),
            upstream: referenced.cloned(),
            plugin_config: plugin_config.cloned(),
            spec,
            entry,
            client,
            generation: 0,
        })
    }

    /// Resolves the upstream of a route (route > service; `upstream_id` > inline).
    fn target(
        &mut self,
        route: &Route,
        service: Option<&Service>,
        upstreams: &HashMap<&Id, &Arc<Upstream>>,
        used_backends: &mut HashMap<String, Arc<Backend>>,
        used_clients: &mut HashSet<ClientKey>,
    ) -> (Target, Option<ClientKey>) {
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
                (None, None) => return (Target::NoUpstream, None),
            }
        } else {
            return (Target::NoUpstream, None);
        };
        let Some((key, definition)) = chosen else {
            return (Target::MissingUpstream, None);
        };
        let backend = match used_backends.get(&key) {
            Some(b) => b.clone(),
            None => {
                let backend = match self.backends.get(&key) {
                    Some(b) if b.definition == *definition => b.clone(),
                    _ => Arc::new(Backend::new(key.clone(), definition)),
                };
                used_backends.insert(key.clone(), backend.clone());
                backend
            }
        };
        let timeouts = route
            .timeout
            .as_ref()
            .map_or(backend.timeouts, Timeouts::from_model);
        let client_key = self.client_key(definition, timeouts);
        match self.clients.get(&client_key) {
            Ok(client) => {
                used_clients.insert(client_key.clone());
                (
                    Target::Upstream {
                        backend,
                        client,
                        timeouts,
                    },
                    Some(client_key),
                )
            }
            Err(e) => {
                tracing::error!(upstream = %key, error = %e, "cannot build the upstream client");
                (Target::MissingUpstream, None)
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
        ClientKey {
            verify: tls.and_then(|t| t.verify).unwrap_or(true),
            client_cert: tls.and_then(|t| t.client_cert.clone().zip(t.client_key.clone())),
            pool_size,
            idle_timeout,
            connect_timeout: timeouts.connect,
        }
    }
}
