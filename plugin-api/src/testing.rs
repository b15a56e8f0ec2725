//! Unit-test helpers for plugin authors: run one plugin's phases on a made-up request.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::body::Held;
use crate::chain::Chain;
use crate::client::ClientAddr;
use crate::consumer::{Authenticated, ConsumerEntry, ConsumerIndex};
use crate::{
    Flow, LogCtx, Outcome, Phases, Plugin, Reply, RequestCtx, RequestSummary, ResponseCtx, Rewrite,
};

/// Consumers for a made-up request: who each (plugin, identity) authenticates as.
#[derive(Default)]
pub struct Consumers {
    by_identity: HashMap<(String, String), Arc<Authenticated>>,
    by_name: HashMap<String, Arc<ConsumerEntry>>,
}

impl Consumers {
    /// Adds consumer `username` (with no plugins of its own).
    pub fn add_consumer(&mut self, username: &str) -> Arc<ConsumerEntry> {
        self.by_name
            .entry(username.to_owned())
            .or_insert_with(|| {
                Arc::new(ConsumerEntry {
                    username: username.to_owned(),
                    group_id: None,
                    custom_id: None,
                    chain: Chain::empty(),
                })
            })
            .clone()
    }

    /// Makes `identity` of authentication plugin `plugin` authenticate as `username`, whose
    /// config for the plugin is `conf`.
    pub fn add(&mut self, plugin: &str, identity: &str, username: &str, conf: Value) {
        let consumer = self.add_consumer(username);
        self.by_identity.insert(
            (plugin.to_owned(), identity.to_owned()),
            Arc::new(Authenticated {
                consumer,
                credential_id: None,
                conf,
            }),
        );
    }
}

impl ConsumerIndex for Consumers {
    fn authenticate(&self, plugin: &str, identity: &str) -> Option<Arc<Authenticated>> {
        self.by_identity
            .get(&(plugin.to_owned(), identity.to_owned()))
            .cloned()
    }

    fn named(&self, username: &str) -> Option<Arc<Authenticated>> {
        self.by_name.get(username).map(|consumer| {
            Arc::new(Authenticated {
                consumer: consumer.clone(),
                credential_id: None,
                conf: Value::Null,
            })
        })
    }
}

/// A made-up request: its variables and headers, and what the plugin did to it.
#[derive(Default)]
pub struct Fake {
    /// The request variables (`request_uri`, `http_origin`, ...).
    pub vars: HashMap<&'static str, &'static str>,
    /// The headers going upstream.
    pub headers: HeaderMap,
    /// The headers added to the response.
    pub response_headers: HeaderMap,
    /// What the plugin changed in the request line.
    pub rewrite: Rewrite,
    /// The consumers authentication plugins look up.
    pub consumers: Consumers,
    /// Who the request authenticated as.
    pub consumer: Option<Arc<Authenticated>>,
    /// State kept between phases.
    pub state: http::Extensions,
    /// The request body.
    pub body: Held,
    /// The client address a plugin set ([`RequestCtx::set_client`]).
    pub client_set: ClientAddr,
}

impl Fake {
    /// A request with these variables; `http_*` variables are also set as headers.
    pub fn new(vars: &[(&'static str, &'static str)]) -> Fake {
        let mut fake = Fake::default();
        for (name, value) in vars {
            fake.vars.insert(name, value);
            if let Some(h) = name.strip_prefix("http_") {
                let name = http::HeaderName::from_bytes(h.replace('_', "-").as_bytes())
                    .expect("header name");
                fake.headers
                    .append(name, value.parse().expect("header value"));
            }
        }
        fake
    }

    /// The request as a plugin phase sees it.
    pub fn ctx(&mut self) -> RequestCtx<'_> {
        RequestCtx {
            vars: &self.vars,
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_set: &self.client_set,
            headers: &mut self.headers,
            response_headers: &mut self.response_headers,
            rewrite: &mut self.rewrite,
            consumers: &self.consumers,
            consumer: &mut self.consumer,
            state: &mut self.state,
            body: &mut self.body,
        }
    }

    /// Runs `rewrite` (which the plugin must declare); the reply if it answered (or failed).
    pub async fn rewrite(&mut self, plugin: &dyn Plugin) -> Option<Reply> {
        declares(plugin, Phases::REWRITE);
        reply_of(plugin.rewrite(&mut self.ctx()).await)
    }

    /// Runs `access` (which the plugin must declare); the reply if it answered (or failed).
    pub async fn access(&mut self, plugin: &dyn Plugin) -> Option<Reply> {
        declares(plugin, Phases::ACCESS);
        reply_of(plugin.access(&mut self.ctx()).await)
    }

    /// Runs `filter` (a plugin's header-filter step) on a 200 response with `headers`; the
    /// headers after it.
    pub fn header_filter_with(
        &mut self,
        filter: impl FnOnce(&mut ResponseCtx<'_>),
        mut headers: HeaderMap,
    ) -> HeaderMap {
        filter(&mut ResponseCtx {
            status: &mut StatusCode::OK.clone(),
            headers: &mut headers,
            replace_body: &mut None,
            state: &mut self.state,
            body_filters: &mut Vec::new(),
            encoding: &mut None,
        });
        headers
    }

    /// Runs `header_filter` (which the plugin must declare) on a response with `status` and
    /// `headers`; the headers after it.
    pub fn header_filter(
        &mut self,
        plugin: &dyn Plugin,
        mut status: StatusCode,
        mut headers: HeaderMap,
    ) -> HeaderMap {
        declares(plugin, Phases::HEADER_FILTER);
        plugin.header_filter(&mut ResponseCtx {
            status: &mut status,
            headers: &mut headers,
            replace_body: &mut None,
            body_filters: &mut Vec::new(),
            encoding: &mut None,
            state: &mut self.state,
        });
        headers
    }
}

/// The text of a header, if set once.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    assert!(all.next().is_none(), "{name} set more than once");
    first.to_str().ok()
}

/// Runs `access` (which the plugin must declare) with `vars` and `state`; the plugin's answer
/// (if any) and the response headers it added.
pub async fn access(
    plugin: &dyn Plugin,
    vars: &[(&str, &str)],
    state: &mut http::Extensions,
) -> (Option<Reply>, HeaderMap) {
    declares(plugin, Phases::ACCESS);
    let vars: HashMap<&str, &str> = vars.iter().copied().collect();
    let mut headers = HeaderMap::new();
    let mut response_headers = HeaderMap::new();
    let mut ctx = RequestCtx {
        vars: &vars,
        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        client_set: &ClientAddr::default(),
        headers: &mut headers,
        response_headers: &mut response_headers,
        rewrite: &mut Rewrite::default(),
        consumers: &Consumers::default(),
        consumer: &mut None,
        state,
        body: &mut Held::default(),
    };
    let reply = reply_of(plugin.access(&mut ctx).await);
    (reply, response_headers)
}

/// The reply a chain would send for a plugin's `flow` (before `_meta.error_response`).
pub fn reply_of(flow: Flow) -> Option<Reply> {
    match flow {
        Flow::Continue => None,
        Flow::Respond(reply) => Some(reply),
        Flow::Fail(error) => Some(error.reply()),
    }
}

/// Runs `log` for a response the upstream answered with `status`, with the request's `state`.
pub fn log(plugin: &dyn Plugin, status: u16, state: &http::Extensions) {
    log_with(plugin, status, Some(status), state);
}

/// Runs `log` for a response a plugin made (it never went upstream).
pub fn log_plugin_answered(plugin: &dyn Plugin, status: u16, state: &http::Extensions) {
    log_with(plugin, status, None, state);
}

/// Panics unless `plugin` declares `phase`: a chain would never call it there.
fn declares(plugin: &dyn Plugin, phase: Phases) {
    assert!(
        plugin.phases().contains(phase),
        "the plugin does not declare the phase it is run in ({phase:?})"
    );
}

/// The log phase's facts of `GET /` from 127.0.0.1 to route `1` on `localhost`.
pub fn request_summary() -> RequestSummary {
    RequestSummary {
        method: http::Method::GET,
        uri: "/".to_owned(),
        host: "localhost".to_owned(),
        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        route_id: "1".to_owned(),
        service_id: None,
        route_name: None,
        service_name: None,
        matched_uri: String::new(),
        matched_host: String::new(),
        request_length: 0,
    }
}

fn log_with(plugin: &dyn Plugin, status: u16, upstream: Option<u16>, state: &http::Extensions) {
    declares(plugin, Phases::LOG);
    let request = request_summary();
    plugin.log(&LogCtx {
        status: StatusCode::from_u16(status).unwrap_or_default(),
        request: &request,
        bytes_sent: 0,
        latency: std::time::Duration::ZERO,
        upstream: None,
        upstream_status: upstream.and_then(|s| StatusCode::from_u16(s).ok()),
        state,
        consumer_name: None,
        outcome: if upstream.is_some() {
            Outcome::Upstream
        } else {
            Outcome::Plugin
        },
    });
}
