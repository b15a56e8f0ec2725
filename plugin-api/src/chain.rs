//! The plugins of one object, built once per config version and run per request.
//!
//! A chain is sorted by priority, higher first (a `_meta.priority` overrides the kind's), ties by
//! name. Disabled instances are left out. A chain whose config cannot be built (possible only if
//! the store holds something the Admin API would refuse) fails closed: every request through it
//! gets 503, so a broken auth plugin never opens a route. Once a consumer authenticated, the
//! route's chain and the consumer's run as one ([`Merged`]), without building a third.

use std::iter::Peekable;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use crate::meta::{self, Meta};
use crate::registry::Registry;
use crate::upstream::Upstreams;
use crate::{
    BuildContext, Flow, LogCtx, Phases, Plugin, Reply, RequestCtx, ResponseCtx,
    UpstreamResponseCtx, Vars,
};

struct Entry {
    name: String,
    priority: i32,
    plugin: Arc<dyn Plugin>,
    meta: Meta,
    /// The upstreams the instance may choose ([`crate::Kind::upstreams`]).
    upstreams: Upstreams,
}

/// The phases, in the order of [`Chain`]'s per-phase lists.
const PHASES: [Phases; 6] = [
    Phases::REWRITE,
    Phases::ACCESS,
    Phases::BEFORE_PROXY,
    Phases::UPSTREAM_RESPONSE,
    Phases::HEADER_FILTER,
    Phases::LOG,
];
const REWRITE: usize = 0;
const ACCESS: usize = 1;
const BEFORE_PROXY: usize = 2;
const UPSTREAM_RESPONSE: usize = 3;
const HEADER_FILTER: usize = 4;
const LOG: usize = 5;

/// The plugins of a route (service and plugin config merged in) or of the global rules.
#[derive(Default)]
pub struct Chain {
    entries: Vec<Entry>,
    /// Per phase (in the order of [`PHASES`]), the entries that declare it, in run order.
    by_phase: [Vec<usize>; PHASES.len()],
    /// Some entry has a `_meta.filter` (without, every entry is selected without evaluating).
    filters: bool,
    /// The plugins configured with `_meta.disable` (left out, but they still replace another
    /// chain's in [`Chain::give_way`]).
    disabled: Vec<String>,
    /// Why the config could not be built; set, every request gets 503.
    broken: Option<String>,
}

/// Which entries of a chain run for one request (their `_meta.filter` held).
#[derive(Debug, Clone, Default)]
pub struct Selection(Vec<bool>);

/// Checks one plugin config as the Admin API does: `Ok` for a valid or disabled one.
///
/// # Errors
/// APISIX's messages: `unknown plugin [name]`, or `failed to check the configuration of plugin
/// <name> err: <why>`.
pub fn check(registry: &Registry, name: &str, conf: &Value) -> Result<(), String> {
    let failed =
        |why: String| format!("failed to check the configuration of plugin {name} err: {why}");
    let (conf, meta) = meta::split(conf).map_err(failed)?;
    let kind = registry
        .kind(name)
        .ok_or_else(|| format!("unknown plugin [{name}]"))?;
    // The schema first, for APISIX's wording; then the plugin's own checks, building nothing.
    match kind.check_conf(&conf) {
        Ok(()) => Ok(()),
        // APISIX accepts a disabled plugin whose config fails its check.
        Err(_) if meta.disable => Ok(()),
        Err(why) => Err(failed(why)),
    }
}

impl Chain {
    /// Builds the chain of a `plugins` map with the kinds of `registry`.
    pub fn build(registry: &Registry, plugins: &Map<String, Value>, ctx: &BuildContext) -> Chain {
        let mut entries = Vec::with_capacity(plugins.len());
        let mut disabled = Vec::new();
        for (name, conf) in plugins {
            let built = meta::split(conf).and_then(|(conf, meta)| {
                if meta.disable {
                    return Ok(None);
                }
                let kind = registry
                    .kind(name)
                    .ok_or_else(|| format!("unknown plugin [{name}]"))?;
                let (plugin, upstreams) = kind.build_choosing(&conf, ctx)?;
                Ok(Some(Entry {
                    name: name.clone(),
                    priority: meta.priority.unwrap_or_else(|| kind.priority()),
                    plugin,
                    meta,
                    upstreams,
                }))
            });
            match built {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => disabled.push(name.clone()),
                Err(why) => {
                    return Chain::failing(format!("invalid config of plugin {name}: {why}"))
                }
            }
        }
        entries.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        let by_phase = PHASES.map(|phase| {
            entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.plugin.phases().contains(phase))
                .map(|(i, _)| i)
                .collect()
        });
        Chain {
            filters: entries.iter().any(|e| e.meta.filter.is_some()),
            entries,
            by_phase,
            disabled,
            broken: None,
        }
    }

    /// A chain with no plugins (for requests no route matched).
    pub const fn empty() -> Chain {
        Chain {
            entries: Vec::new(),
            by_phase: [const { Vec::new() }; PHASES.len()],
            filters: false,
            disabled: Vec::new(),
            broken: None,
        }
    }

    /// A chain that answers every request with 503 (e.g. the route's plugin config is missing).
    pub fn failing(reason: String) -> Chain {
        tracing::error!(%reason, "requests through this chain get 503");
        Chain {
            broken: Some(reason),
            ..Chain::empty()
        }
    }

    /// Whether the chain does nothing (requests skip the plugin machinery).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.broken.is_none()
    }

    /// The names in run order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// The upstreams its plugins may choose, by plugin name (plugins that declare none are left
    /// out), in run order.
    pub fn upstreams(&self) -> impl Iterator<Item = (&str, &Upstreams)> {
        self.entries
            .iter()
            .filter(|e| !e.upstreams.is_empty())
            .map(|e| (e.name.as_str(), &e.upstreams))
    }

    /// Evaluates the `_meta.filter`s for a request, once.
    pub fn select(&self, vars: &dyn Vars) -> Selection {
        if !self.filters {
            // Entries past the end of a selection are selected.
            return Selection::default();
        }
        Selection(
            self.entries
                .iter()
                .map(|e| e.meta.filter.as_ref().is_none_or(|f| f.eval(vars)))
                .collect(),
        )
    }

    /// [`Chain::select`] for the global rules of a request to a route with the plugins
    /// `route`: a plugin that defers to the route's own config ([`Plugin::prefers_route`],
    /// APISIX's `run_policy = "prefer_route"`) is left out when the route has it too.
    pub fn select_beside(&self, vars: &dyn Vars, route: Option<&Chain>) -> Selection {
        let mut selection = self.select(vars);
        let Some(route) = route else {
            return selection;
        };
        for (i, entry) in self.entries.iter().enumerate() {
            if entry.plugin.prefers_route() && route.entries.iter().any(|r| r.name == entry.name) {
                selection.0.resize(self.entries.len(), true);
                if let Some(on) = selection.0.get_mut(i) {
                    *on = false;
                }
            }
        }
        selection
    }

    /// Whether some plugin of the chain runs in one of `phases`. A chain that failed to build
    /// runs `rewrite` and `access` (it refuses every request there).
    pub fn runs(&self, phases: Phases) -> bool {
        let refuses = self.broken.is_some()
            && (phases.contains(Phases::REWRITE) || phases.contains(Phases::ACCESS));
        refuses
            || PHASES
                .iter()
                .zip(&self.by_phase)
                .any(|(phase, list)| phases.contains(*phase) && !list.is_empty())
    }

    /// The selected entries that run in `phase` (an index of [`PHASES`]), in run order.
    fn active<'a>(
        &'a self,
        phase: usize,
        selection: &'a Selection,
    ) -> impl Iterator<Item = &'a Entry> {
        self.by_phase[phase]
            .iter()
            .filter(|&&i| selection.0.get(i).copied().unwrap_or(true))
            .filter_map(|&i| self.entries.get(i))
    }

    fn refuse_broken(&self) -> Option<Flow> {
        self.broken.as_ref().map(|_| {
            Flow::Respond(Reply::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "the plugin configuration of this route is invalid",
            ))
        })
    }

    /// Runs the `rewrite` phase.
    pub async fn rewrite(&self, selection: &Selection, req: &mut RequestCtx<'_>) -> Flow {
        if let Some(flow) = self.refuse_broken() {
            return flow;
        }
        run_rewrite(self.active(REWRITE, selection), req).await
    }

    /// Runs the `access` phase.
    pub async fn access(&self, selection: &Selection, req: &mut RequestCtx<'_>) -> Flow {
        if let Some(flow) = self.refuse_broken() {
            return flow;
        }
        run_access(self.active(ACCESS, selection), req).await
    }

    /// Runs the `before_proxy` phase.
    pub async fn before_proxy(&self, selection: &Selection, req: &mut RequestCtx<'_>) -> Flow {
        run_before_proxy(self.active(BEFORE_PROXY, selection), req).await
    }

    /// Whether some plugin runs in the `upstream_response` phase.
    pub fn has_upstream_response(&self) -> bool {
        self.runs(Phases::UPSTREAM_RESPONSE)
    }

    /// Runs the `upstream_response` phase.
    pub async fn upstream_response(
        &self,
        selection: &Selection,
        resp: &mut UpstreamResponseCtx<'_>,
    ) -> Flow {
        run_upstream_response(self.active(UPSTREAM_RESPONSE, selection), resp).await
    }

    /// Runs the `header_filter` phase.
    pub fn header_filter(&self, selection: &Selection, resp: &mut ResponseCtx<'_>) {
        for entry in self.active(HEADER_FILTER, selection) {
            entry.plugin.header_filter(resp);
        }
    }

    /// Runs the `log` phase.
    pub fn log(&self, selection: &Selection, done: &LogCtx<'_>) {
        for entry in self.active(LOG, selection) {
            entry.plugin.log(done);
        }
    }

    /// Whether the chain's config names the plugin `name` (enabled or disabled).
    fn configures(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name) || self.disabled.iter().any(|d| d == name)
    }

    /// Once a consumer authenticated, for the route's chain (`self`) and its `selection`:
    /// switches off the route's plugins that `consumer`'s chain configures too (a disabled one
    /// included). The consumer's config of a plugin replaces the route's (APISIX merges the
    /// consumer's plugins over the route's).
    pub fn give_way(&self, consumer: &Chain, selection: &mut Selection) {
        for (i, entry) in self.entries.iter().enumerate() {
            if consumer.configures(&entry.name) {
                selection.0.resize(self.entries.len(), true);
                if let Some(on) = selection.0.get_mut(i) {
                    *on = false;
                }
            }
        }
    }
}

/// The route's plugins of one request, with those of the consumer it authenticated as (merged
/// over its group's) merged in: the phases after authentication run both chains as one, in
/// priority order (ties by name), and a plugin both have runs with the consumer's config only.
///
/// The route's selection is the one [`Chain::give_way`] left, so the route's instance of a plugin
/// the consumer has too stays out; the consumer's selection is its chain's [`Chain::select`].
#[derive(Clone, Copy)]
pub struct Merged<'a> {
    route: &'a Chain,
    route_selection: &'a Selection,
    consumer: Option<(&'a Chain, &'a Selection)>,
}

impl<'a> Merged<'a> {
    /// The route's chain and selection, and the consumer's (none before authentication).
    pub fn new(
        route: &'a Chain,
        route_selection: &'a Selection,
        consumer: Option<(&'a Chain, &'a Selection)>,
    ) -> Merged<'a> {
        Merged {
            route,
            route_selection,
            consumer,
        }
    }

    /// The selected entries of both chains that run in `phase`, in priority order.
    fn active(
        &self,
        phase: usize,
    ) -> ByPriority<impl Iterator<Item = &'a Entry> + 'a, impl Iterator<Item = &'a Entry> + 'a>
    {
        let consumer = self
            .consumer
            .into_iter()
            .flat_map(move |(chain, selection)| chain.active(phase, selection));
        ByPriority {
            route: self.route.active(phase, self.route_selection).peekable(),
            consumer: consumer.peekable(),
        }
    }

    /// A 503 when either chain could not be built.
    fn refuse_broken(&self) -> Option<Flow> {
        self.route
            .refuse_broken()
            .or_else(|| self.consumer.and_then(|(chain, _)| chain.refuse_broken()))
    }

    /// Runs, right after the route's `rewrite` phase authenticated the consumer, the `rewrite`
    /// phase of the consumer's plugins the route does not have (the route's own ran already,
    /// the consumer's config of one of them does not run it again); authentication plugins are
    /// not in a consumer's chain. Without a consumer, nothing runs.
    pub async fn rewrite_after_auth(&self, req: &mut RequestCtx<'_>) -> Flow {
        let Some((consumer, selection)) = self.consumer else {
            return Flow::Continue;
        };
        if let Some(flow) = consumer.refuse_broken() {
            return flow;
        }
        let route = self.route;
        let added = consumer
            .active(REWRITE, selection)
            .filter(|e| !route.configures(&e.name));
        run_rewrite(added, req).await
    }

    /// Runs the `access` phase.
    pub async fn access(&self, req: &mut RequestCtx<'_>) -> Flow {
        if let Some(flow) = self.refuse_broken() {
            return flow;
        }
        run_access(self.active(ACCESS), req).await
    }

    /// Runs the `before_proxy` phase.
    pub async fn before_proxy(&self, req: &mut RequestCtx<'_>) -> Flow {
        run_before_proxy(self.active(BEFORE_PROXY), req).await
    }

    /// Whether some plugin runs in the `upstream_response` phase.
    pub fn has_upstream_response(&self) -> bool {
        self.route.has_upstream_response()
            || self
                .consumer
                .is_some_and(|(chain, _)| chain.has_upstream_response())
    }

    /// Runs the `upstream_response` phase.
    pub async fn upstream_response(&self, resp: &mut UpstreamResponseCtx<'_>) -> Flow {
        run_upstream_response(self.active(UPSTREAM_RESPONSE), resp).await
    }

    /// Runs the `header_filter` phase.
    pub fn header_filter(&self, resp: &mut ResponseCtx<'_>) {
        for entry in self.active(HEADER_FILTER) {
            entry.plugin.header_filter(resp);
        }
    }

    /// Runs the `log` phase.
    pub fn log(&self, done: &LogCtx<'_>) {
        for entry in self.active(LOG) {
            entry.plugin.log(done);
        }
    }
}

/// Two runs of entries, each in chain order, as one run in chain order (higher priority first,
/// ties by name; the route's first on a full tie, which a merge never leaves).
struct ByPriority<R: Iterator, C: Iterator> {
    route: Peekable<R>,
    consumer: Peekable<C>,
}

impl<'a, R, C> Iterator for ByPriority<R, C>
where
    R: Iterator<Item = &'a Entry>,
    C: Iterator<Item = &'a Entry>,
{
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        let route_first = match (self.route.peek(), self.consumer.peek()) {
            (Some(r), Some(c)) => c
                .priority
                .cmp(&r.priority)
                .then_with(|| r.name.cmp(&c.name))
                .is_le(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if route_first {
            self.route.next()
        } else {
            self.consumer.next()
        }
    }
}

/// Defines, for each request-side phase, the loop that runs it over `entries` in order until a
/// plugin does not continue (its answer then leaves the chain through [`answer`]).
macro_rules! phase_loops {
    ($($name:ident: $method:ident($ctx:ty);)*) => {$(
        async fn $name<'a>(entries: impl Iterator<Item = &'a Entry>, ctx: &mut $ctx) -> Flow {
            for entry in entries {
                match entry.plugin.$method(ctx).await {
                    Flow::Continue => {}
                    flow => return answer(entry, flow),
                }
            }
            Flow::Continue
        }
    )*};
}

phase_loops! {
    run_rewrite: rewrite(RequestCtx<'_>);
    run_access: access(RequestCtx<'_>);
    run_before_proxy: before_proxy(RequestCtx<'_>);
    run_upstream_response: upstream_response(UpstreamResponseCtx<'_>);
}

/// How a plugin's answer leaves the chain: a failure is logged (once, here) and becomes its
/// reply; `_meta.error_response` replaces the body of an error answer.
fn answer(entry: &Entry, flow: Flow) -> Flow {
    let mut reply = match flow {
        Flow::Continue => return Flow::Continue,
        Flow::Respond(reply) => reply,
        Flow::Fail(error) => {
            tracing::error!(plugin = %entry.name, status = %error.status, error = %error.source, "plugin failed");
            error.reply()
        }
    };
    if reply.status.as_u16() >= 400 {
        if let Some(body) = &entry.meta.error_response {
            reply.body = Bytes::clone(body);
        }
    }
    Flow::Respond(reply)
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, PoisonError};

    use http::HeaderMap;
    use serde_json::json;

    use super::*;
    use crate::testing::Fake;
    use crate::{PluginError, PluginKind, RequestSummary};

    type Calls = Arc<Mutex<Vec<String>>>;

    /// A kind whose instances record each phase they are called in (`<name>:<phase>`), or fail
    /// in `access` when `fails`.
    struct Probe {
        name: &'static str,
        priority: i32,
        phases: Phases,
        fails: bool,
        calls: Calls,
    }

    struct Recorder {
        name: &'static str,
        /// The config's `tag`, recorded after the name.
        tag: String,
        phases: Phases,
        fails: bool,
        calls: Calls,
    }

    impl Recorder {
        fn record(&self, phase: &str) {
            let mut calls = self.calls.lock().expect("not poisoned");
            calls.push(format!("{}{}:{phase}", self.name, self.tag));
        }
    }

    #[async_trait::async_trait]
    impl Plugin for Recorder {
        fn phases(&self) -> Phases {
            self.phases
        }

        async fn rewrite(&self, _req: &mut RequestCtx<'_>) -> Flow {
            self.record("rewrite");
            Flow::Continue
        }

        async fn access(&self, _req: &mut RequestCtx<'_>) -> Flow {
            self.record("access");
            if self.fails {
                return Flow::Fail(PluginError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the backend is down",
                ));
            }
            Flow::Continue
        }

        fn header_filter(&self, _resp: &mut ResponseCtx<'_>) {
            self.record("header_filter");
        }

        fn log(&self, _done: &LogCtx<'_>) {
            self.record("log");
        }

        fn prefers_route(&self) -> bool {
            self.name == "b"
        }
    }

    impl PluginKind for Probe {
        fn name(&self) -> &'static str {
            self.name
        }

        fn priority(&self) -> i32 {
            self.priority
        }

        fn schema(&self) -> Value {
            json!({"type": "object"})
        }

        fn build(&self, conf: &Value) -> Result<Arc<dyn Plugin>, String> {
            Ok(Arc::new(Recorder {
                name: self.name,
                tag: conf["tag"].as_str().unwrap_or_default().to_owned(),
                phases: self.phases,
                fails: self.fails,
                calls: self.calls.clone(),
            }))
        }
    }

    const ALL: Phases = Phases::REWRITE
        .union(Phases::ACCESS)
        .union(Phases::HEADER_FILTER)
        .union(Phases::LOG);

    /// A registry of `a` (priority 10, access only), `b` (20, every phase it has; stands aside
    /// for a route's own), `c` (15) and `d` (12) (every phase) and `broken` (5, fails in
    /// access), recording into `calls` (with the config's `tag` after the name).
    fn registry(calls: &Calls) -> Registry {
        let probe = |name, priority, phases, fails| {
            Arc::new(Probe {
                name,
                priority,
                phases,
                fails,
                calls: calls.clone(),
            }) as Arc<dyn PluginKind>
        };
        Registry::new(vec![
            probe("a", 10, Phases::ACCESS, false),
            probe("b", 20, ALL, false),
            probe("c", 15, ALL, false),
            probe("d", 12, ALL, false),
            probe("broken", 5, Phases::ACCESS, true),
        ])
    }

    fn chain(calls: &Calls, plugins: Value) -> Chain {
        let Value::Object(plugins) = plugins else {
            panic!("a plugins map");
        };
        Chain::build(&registry(calls), &plugins, &BuildContext::default())
    }

    fn taken(calls: &Calls) -> Vec<String> {
        std::mem::take(&mut *calls.lock().expect("not poisoned"))
    }

    fn header_filter(chain: &Chain, selection: &Selection) {
        chain.header_filter(
            selection,
            &mut ResponseCtx {
                status: &mut StatusCode::OK.clone(),
                headers: &mut HeaderMap::new(),
                replace_body: &mut None,
                state: &mut http::Extensions::new(),
                body_filters: &mut Vec::new(),
                encoding: &mut None,
            },
        );
    }

    fn log_ctx<'a>(request: &'a RequestSummary, state: &'a http::Extensions) -> LogCtx<'a> {
        LogCtx {
            status: StatusCode::OK,
            request,
            bytes_sent: 0,
            latency: std::time::Duration::ZERO,
            upstream: None,
            upstream_status: None,
            state,
            consumer_name: None,
            outcome: crate::Outcome::Plugin,
        }
    }

    fn log(chain: &Chain, selection: &Selection) {
        let request = crate::testing::request_summary();
        chain.log(selection, &log_ctx(&request, &http::Extensions::new()));
    }

    /// Runs every phase but `upstream_response`, each letting the request through.
    async fn run_all(chain: &Chain, fake: &mut Fake) {
        let selection = chain.select(&fake.vars);
        let mut flows = Vec::new();
        flows.push(chain.rewrite(&selection, &mut fake.ctx()).await);
        flows.push(chain.access(&selection, &mut fake.ctx()).await);
        flows.push(chain.before_proxy(&selection, &mut fake.ctx()).await);
        assert!(flows.iter().all(|f| matches!(f, Flow::Continue)));
        header_filter(chain, &selection);
        log(chain, &selection);
    }

    #[tokio::test]
    async fn plugins_run_only_in_their_phases_by_priority() {
        let calls = Calls::default();
        let chain = chain(&calls, json!({"a": {}, "b": {}}));
        let mut fake = Fake::new(&[]);
        run_all(&chain, &mut fake).await;
        assert_eq!(
            taken(&calls),
            [
                "b:rewrite",
                "b:access",
                "a:access",
                "b:header_filter",
                "b:log"
            ]
        );
        assert!(chain.runs(Phases::ACCESS) && chain.runs(Phases::LOG));
        assert!(!chain.runs(Phases::BEFORE_PROXY) && !chain.has_upstream_response());
        assert!(chain.runs(Phases::BEFORE_PROXY | Phases::REWRITE));

        // `_meta.priority` reorders within each phase.
        let chain = self::chain(&calls, json!({"a": {"_meta": {"priority": 30}}, "b": {}}));
        run_all(&chain, &mut fake).await;
        assert_eq!(
            taken(&calls),
            [
                "b:rewrite",
                "a:access",
                "b:access",
                "b:header_filter",
                "b:log"
            ]
        );
    }

    #[tokio::test]
    async fn filters_select_per_request() {
        let calls = Calls::default();
        let chain = chain(
            &calls,
            json!({"a": {"_meta": {"filter": [["arg_x", "==", "1"]]}}, "b": {}}),
        );
        run_all(&chain, &mut Fake::new(&[])).await;
        assert_eq!(
            taken(&calls),
            ["b:rewrite", "b:access", "b:header_filter", "b:log"]
        );
        run_all(&chain, &mut Fake::new(&[("arg_x", "1")])).await;
        assert!(taken(&calls).contains(&"a:access".to_owned()));
    }

    #[tokio::test]
    async fn a_global_rule_stands_aside_for_the_routes_own() {
        let calls = Calls::default();
        let route = chain(&calls, json!({"b": {}}));
        let fake = Fake::new(&[("arg_x", "1")]);
        for global in [
            chain(&calls, json!({"a": {}, "b": {}})),
            chain(
                &calls,
                json!({"a": {"_meta": {"filter": [["arg_x", "==", "1"]]}}, "b": {}}),
            ),
        ] {
            let selection = global.select_beside(&fake.vars, Some(&route));
            log(&global, &selection);
            header_filter(&global, &selection);
            assert!(taken(&calls).is_empty());
            let selection = global.select_beside(&fake.vars, None);
            log(&global, &selection);
            assert_eq!(taken(&calls), ["b:log"]);
        }
    }

    #[tokio::test]
    async fn a_failure_is_the_plugins_error_reply() {
        let calls = Calls::default();
        let mut fake = Fake::new(&[]);
        for (meta, body) in [
            (json!({}), ""),
            (json!({"_meta": {"error_response": "sorry"}}), "sorry"),
        ] {
            let chain = chain(&calls, json!({"a": {}, "broken": meta}));
            let selection = chain.select(&fake.vars);
            let Flow::Respond(reply) = chain.access(&selection, &mut fake.ctx()).await else {
                panic!("the failure answers");
            };
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(reply.body, body.as_bytes());
            assert!(reply.headers.is_empty());
        }
        assert_eq!(taken(&calls), ["a:access", "broken:access"].repeat(2));
    }

    /// The phases after authentication for a route's chain and a consumer's, merged as the
    /// gateway runs them: the consumer's added plugins' `rewrite`, then every later phase.
    async fn run_merged(route: &Chain, consumer: &Chain, fake: &mut Fake) {
        let mut route_selection = route.select(&fake.vars);
        let consumer_selection = consumer.select(&fake.vars);
        route.give_way(consumer, &mut route_selection);
        let merged = Merged::new(
            route,
            &route_selection,
            Some((consumer, &consumer_selection)),
        );
        let mut flows = vec![merged.rewrite_after_auth(&mut fake.ctx()).await];
        flows.push(merged.access(&mut fake.ctx()).await);
        flows.push(merged.before_proxy(&mut fake.ctx()).await);
        assert!(flows.iter().all(|f| matches!(f, Flow::Continue)));
        let mut resp = ResponseCtx {
            status: &mut StatusCode::OK.clone(),
            headers: &mut HeaderMap::new(),
            replace_body: &mut None,
            state: &mut http::Extensions::new(),
            body_filters: &mut Vec::new(),
            encoding: &mut None,
        };
        merged.header_filter(&mut resp);
        let request = crate::testing::request_summary();
        merged.log(&log_ctx(&request, &http::Extensions::new()));
    }

    /// A consumer's plugins run among the route's by priority in every phase after
    /// authentication; only the ones the route lacks run `rewrite` there.
    #[tokio::test]
    async fn consumer_plugins_interleave_with_the_routes_by_priority() {
        let calls = Calls::default();
        let route = chain(&calls, json!({"b": {}, "a": {}}));
        let consumer = chain(&calls, json!({"c": {}, "d": {}}));
        run_merged(&route, &consumer, &mut Fake::new(&[])).await;
        assert_eq!(
            taken(&calls),
            [
                "c:rewrite",
                "d:rewrite",
                "b:access",
                "c:access",
                "d:access",
                "a:access",
                "b:header_filter",
                "c:header_filter",
                "d:header_filter",
                "b:log",
                "c:log",
                "d:log"
            ]
        );
        // `_meta.priority` on the consumer's side moves its plugin among the route's.
        let consumer = chain(&calls, json!({"c": {"_meta": {"priority": 5}}}));
        run_merged(&route, &consumer, &mut Fake::new(&[])).await;
        let access: Vec<String> = taken(&calls)
            .into_iter()
            .filter(|c| c.ends_with(":access"))
            .collect();
        assert_eq!(access, ["b:access", "a:access", "c:access"]);
    }

    /// A plugin on both runs once per phase, with the consumer's config; its `rewrite` ran with
    /// the route's before authentication and is not run again.
    #[tokio::test]
    async fn the_consumers_config_of_a_plugin_replaces_the_routes() {
        let calls = Calls::default();
        let route = chain(&calls, json!({"b": {"tag": "R"}, "a": {}}));
        let consumer = chain(&calls, json!({"b": {"tag": "C"}, "c": {}}));
        let mut fake = Fake::new(&[]);
        let selection = route.select(&fake.vars);
        assert!(matches!(
            route.rewrite(&selection, &mut fake.ctx()).await,
            Flow::Continue
        ));
        run_merged(&route, &consumer, &mut fake).await;
        assert_eq!(
            taken(&calls),
            [
                "bR:rewrite",
                "c:rewrite",
                "bC:access",
                "c:access",
                "a:access",
                "bC:header_filter",
                "c:header_filter",
                "bC:log",
                "c:log"
            ]
        );
        // The consumer's own filter decides for its config: the route's does not come back.
        let consumer = chain(
            &calls,
            json!({"b": {"tag": "C", "_meta": {"filter": [["arg_x", "==", "1"]]}}}),
        );
        run_merged(&route, &consumer, &mut Fake::new(&[])).await;
        assert_eq!(taken(&calls), ["a:access"]);
        // A config the consumer disables replaces the route's too: neither runs.
        let consumer = chain(&calls, json!({"b": {"_meta": {"disable": true}}}));
        run_merged(&route, &consumer, &mut Fake::new(&[])).await;
        assert_eq!(taken(&calls), ["a:access"]);
        // A plugin the route disables is the route's: the consumer's does not run its rewrite.
        let route = chain(&calls, json!({"c": {"_meta": {"disable": true}}}));
        let consumer = chain(&calls, json!({"c": {}}));
        run_merged(&route, &consumer, &mut Fake::new(&[])).await;
        assert_eq!(taken(&calls), ["c:access", "c:header_filter", "c:log"]);
    }

    /// Without a consumer, a merged run is the route's chain; a consumer's chain that could not
    /// be built refuses the request.
    #[tokio::test]
    async fn a_merged_run_without_or_with_a_broken_consumer() {
        let calls = Calls::default();
        let route = chain(&calls, json!({"a": {}}));
        let selection = Selection::default();
        let mut fake = Fake::new(&[]);
        let alone = Merged::new(&route, &selection, None);
        assert!(matches!(
            alone.rewrite_after_auth(&mut fake.ctx()).await,
            Flow::Continue
        ));
        assert!(matches!(
            alone.access(&mut fake.ctx()).await,
            Flow::Continue
        ));
        assert_eq!(taken(&calls), ["a:access"]);
        let broken = Chain::failing("bad".to_owned());
        let merged = Merged::new(&route, &selection, Some((&broken, &selection)));
        let Flow::Respond(reply) = merged.rewrite_after_auth(&mut fake.ctx()).await else {
            panic!("refused");
        };
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(taken(&calls).is_empty());
    }

    /// A [`crate::Kind`] that counts the instances it builds, with a config of `limit` (at
    /// least 1, which the schema cannot say).
    #[derive(Default)]
    struct Counted(Mutex<usize>);

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Limit {
        limit: u32,
    }

    impl crate::Kind for Counted {
        type Conf = Limit;
        type Checked = u32;
        const NAME: &'static str = "counted";
        const PRIORITY: i32 = 1;

        fn check(&self, conf: Limit) -> Result<u32, String> {
            if conf.limit == 0 {
                return Err("limit must be at least 1".to_owned());
            }
            Ok(conf.limit)
        }

        fn instance(&self, _limit: u32, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            Ok(Arc::new(Recorder {
                name: "counted",
                tag: String::new(),
                phases: Phases::NONE,
                fails: false,
                calls: Calls::default(),
            }))
        }
    }

    /// The Admin API's check runs the schema and the kind's check, and builds no instance;
    /// building checks as well.
    #[test]
    fn checking_builds_nothing() {
        let kind = Arc::new(Counted::default());
        let registry = Registry::new(vec![kind.clone() as Arc<dyn PluginKind>]);
        assert_eq!(check(&registry, "counted", &json!({"limit": 2})), Ok(()));
        let schema_first = check(&registry, "counted", &json!({"limit": "x"}))
            .err()
            .unwrap_or_default();
        assert!(
            schema_first.contains("property \"limit\" validation failed"),
            "{schema_first}"
        );
        assert_eq!(
            check(&registry, "counted", &json!({"limit": 0})),
            Err(
                "failed to check the configuration of plugin counted err: limit must be at least 1"
                    .to_owned()
            )
        );
        assert_eq!(*kind.0.lock().unwrap_or_else(PoisonError::into_inner), 0);
        assert!(kind.build(&json!({"limit": 0})).is_err());
        assert!(kind.build(&json!({"limit": 3})).is_ok());
        assert_eq!(*kind.0.lock().unwrap_or_else(PoisonError::into_inner), 1);
    }
}
