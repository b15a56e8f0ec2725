//! The plugins of one object, built once per config version and run per request.
//!
//! A chain is sorted by priority, higher first (a `_meta.priority` overrides the kind's), ties by
//! name. Disabled instances are left out. A chain whose config cannot be built (possible only if
//! the store holds something the Admin API would refuse) fails closed: every request through it
//! gets 503, so a broken auth plugin never opens a route.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use crate::meta::{self, Meta};
use crate::registry::Registry;
use crate::{
    BuildContext, Flow, LogCtx, Phases, Plugin, Reply, RequestCtx, ResponseCtx,
    UpstreamResponseCtx, Vars,
};

struct Entry {
    name: String,
    priority: i32,
    plugin: Arc<dyn Plugin>,
    meta: Meta,
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
        for (name, conf) in plugins {
            let built = meta::split(conf).and_then(|(conf, meta)| {
                if meta.disable {
                    return Ok(None);
                }
                let kind = registry
                    .kind(name)
                    .ok_or_else(|| format!("unknown plugin [{name}]"))?;
                let plugin = kind.build_with(&conf, ctx)?;
                Ok(Some(Entry {
                    name: name.clone(),
                    priority: meta.priority.unwrap_or_else(|| kind.priority()),
                    plugin,
                    meta,
                }))
            });
            match built {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => {}
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
            broken: None,
        }
    }

    /// A chain with no plugins (for requests no route matched).
    pub const fn empty() -> Chain {
        Chain {
            entries: Vec::new(),
            by_phase: [const { Vec::new() }; PHASES.len()],
            filters: false,
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
        for entry in self.active(REWRITE, selection) {
            match entry.plugin.rewrite(req).await {
                Flow::Continue => {}
                flow => return answer(entry, flow),
            }
        }
        Flow::Continue
    }

    /// Runs the `access` phase.
    pub async fn access(&self, selection: &Selection, req: &mut RequestCtx<'_>) -> Flow {
        if let Some(flow) = self.refuse_broken() {
            return flow;
        }
        for entry in self.active(ACCESS, selection) {
            match entry.plugin.access(req).await {
                Flow::Continue => {}
                flow => return answer(entry, flow),
            }
        }
        Flow::Continue
    }

    /// Runs the `before_proxy` phase.
    pub async fn before_proxy(&self, selection: &Selection, req: &mut RequestCtx<'_>) -> Flow {
        for entry in self.active(BEFORE_PROXY, selection) {
            match entry.plugin.before_proxy(req).await {
                Flow::Continue => {}
                flow => return answer(entry, flow),
            }
        }
        Flow::Continue
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
        for entry in self.active(UPSTREAM_RESPONSE, selection) {
            match entry.plugin.upstream_response(resp).await {
                Flow::Continue => {}
                flow => return answer(entry, flow),
            }
        }
        Flow::Continue
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
    use crate::consumer::ConsumerEntry;
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
        phases: Phases,
        fails: bool,
        calls: Calls,
    }

    impl Recorder {
        fn record(&self, phase: &str) {
            let mut calls = self.calls.lock().expect("not poisoned");
            calls.push(format!("{}:{phase}", self.name));
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

        fn build(&self, _conf: &Value) -> Result<Arc<dyn Plugin>, String> {
            Ok(Arc::new(Recorder {
                name: self.name,
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
    /// for a route's own) and `broken` (5, fails in access), recording into `calls`.
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

    fn log(chain: &Chain, selection: &Selection) {
        let request = RequestSummary {
            method: http::Method::GET,
            uri: "/".to_owned(),
            host: "localhost".to_owned(),
            client: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            route_id: "1".to_owned(),
            service_id: None,
            route_name: None,
            service_name: None,
            matched_uri: String::new(),
            matched_host: String::new(),
            request_length: 0,
        };
        chain.log(
            selection,
            &LogCtx {
                status: StatusCode::OK,
                request: &request,
                bytes_sent: 0,
                latency: std::time::Duration::ZERO,
                upstream: None,
                upstream_status: None,
                state: &http::Extensions::new(),
                consumer_name: None,
            },
        );
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

    /// A consumer's own chain runs any phase through the same calls as a route's (the
    /// gateway runs its `header_filter` and `log` after the route's).
    #[tokio::test]
    async fn a_consumer_chain_runs_every_phase() {
        let calls = Calls::default();
        let consumer = ConsumerEntry {
            username: "jack".to_owned(),
            group_id: None,
            custom_id: None,
            chain: chain(&calls, json!({"b": {}})),
        };
        let selection = consumer.chain.select(&Fake::new(&[]).vars);
        header_filter(&consumer.chain, &selection);
        log(&consumer.chain, &selection);
        assert_eq!(taken(&calls), ["b:header_filter", "b:log"]);
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
