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
    BuildContext, Flow, LogCtx, Plugin, Reply, RequestCtx, ResponseCtx, UpstreamResponseCtx, Vars,
};

struct Entry {
    name: String,
    priority: i32,
    plugin: Arc<dyn Plugin>,
    meta: Meta,
}

/// The plugins of a route (service and plugin config merged in) or of the global rules.
#[derive(Default)]
pub struct Chain {
    entries: Vec<Entry>,
    /// Why the config could not be built; set, every request gets 503.
    broken: Option<String>,
    /// Some entry has an `upstream_response` phase.
    upstream_response: bool,
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
    // The schema first, for APISIX's wording; then the plugin's own checks.
    let schema = crate::schema::from_rust_types(&kind.schema());
    let checked = crate::schema::check(&schema, &conf).and_then(|()| kind.build(&conf).map(drop));
    match checked {
        Ok(_) => Ok(()),
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
        let upstream_response = entries.iter().any(|e| e.plugin.runs_upstream_response());
        Chain {
            entries,
            broken: None,
            upstream_response,
        }
    }

    /// A chain with no plugins (for requests no route matched).
    pub const fn empty() -> Chain {
        Chain {
            entries: Vec::new(),
            broken: None,
            upstream_response: false,
        }
    }

    /// A chain that answers every request with 503 (e.g. the route's plugin config is missing).
    pub fn failing(reason: String) -> Chain {
        tracing::error!(%reason, "requests through this chain get 503");
        Chain {
            entries: Vec::new(),
            broken: Some(reason),
            upstream_response: false,
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
        if let Some(route) = route {
            for (on, entry) in selection.0.iter_mut().zip(&self.entries) {
                if *on
                    && entry.plugin.prefers_route()
                    && route.entries.iter().any(|r| r.name == entry.name)
                {
                    *on = false;
                }
            }
        }
        selection
    }

    fn active<'a>(&'a self, selection: &'a Selection) -> impl Iterator<Item = &'a Entry> {
        self.entries
            .iter()
            .zip(selection.0.iter().chain(std::iter::repeat(&true)))
            .filter(|(_, on)| **on)
            .map(|(e, _)| e)
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
        for entry in self.active(selection) {
            if let Flow::Respond(reply) = entry.plugin.rewrite(req).await {
                return Flow::Respond(with_error_response(entry, reply));
            }
        }
        Flow::Continue
    }

    /// Runs the `access` phase.
    pub async fn access(&self, selection: &Selection, req: &mut RequestCtx<'_>) -> Flow {
        if let Some(flow) = self.refuse_broken() {
            return flow;
        }
        for entry in self.active(selection) {
            if let Flow::Respond(reply) = entry.plugin.access(req).await {
                return Flow::Respond(with_error_response(entry, reply));
            }
        }
        Flow::Continue
    }

    /// Runs the `before_proxy` phase.
    pub async fn before_proxy(&self, selection: &Selection, req: &mut RequestCtx<'_>) -> Flow {
        for entry in self.active(selection) {
            if let Flow::Respond(reply) = entry.plugin.before_proxy(req).await {
                return Flow::Respond(with_error_response(entry, reply));
            }
        }
        Flow::Continue
    }

    /// Whether some plugin runs in the `upstream_response` phase.
    pub fn has_upstream_response(&self) -> bool {
        self.upstream_response
    }

    /// Runs the `upstream_response` phase.
    pub async fn upstream_response(
        &self,
        selection: &Selection,
        resp: &mut UpstreamResponseCtx<'_>,
    ) -> Flow {
        if !self.upstream_response {
            return Flow::Continue;
        }
        for entry in self.active(selection) {
            if let Flow::Respond(reply) = entry.plugin.upstream_response(resp).await {
                return Flow::Respond(with_error_response(entry, reply));
            }
        }
        Flow::Continue
    }

    /// Runs the `header_filter` phase.
    pub fn header_filter(&self, selection: &Selection, resp: &mut ResponseCtx<'_>) {
        for entry in self.active(selection) {
            entry.plugin.header_filter(resp);
        }
    }

    /// Runs the `log` phase.
    pub fn log(&self, selection: &Selection, done: &LogCtx<'_>) {
        for entry in self.active(selection) {
            entry.plugin.log(done);
        }
    }
}

/// `_meta.error_response` replaces the body of the plugin's error answers.
fn with_error_response(entry: &Entry, mut reply: Reply) -> Reply {
    if reply.status.as_u16() >= 400 {
        if let Some(body) = &entry.meta.error_response {
            reply.body = Bytes::clone(body);
        }
    }
    reply
}
