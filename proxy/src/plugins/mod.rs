//! Plugins: the runtime and the built-in plugins.
//!
//! A [`PluginKind`] is what a plugin is (name, priority, config schema) and turns a config into a
//! [`Plugin`] instance, once per config version (the snapshot builder does it, never a request).
//! A [`chain::Chain`] holds the instances of one object (a route with its service and plugin
//! config merged in, or the union of the global rules), sorted by priority (higher first), with
//! each instance's `_meta` ([`meta::Meta`]). A request runs the phases in APISIX's order: for
//! each phase the global rules' chain first, then the route's.
//!
//! Phases: `rewrite` and `access` may answer the request ([`Flow::Respond`]) and may change the
//! request that goes upstream; `header_filter` may change the response status and headers; `log`
//! runs after the response is sent. [`registry`] lists the built-in kinds.

pub mod api_breaker;
pub mod basic_auth;
pub mod chain;
pub mod consumer_restriction;
pub mod consumers;
pub mod cors;
pub mod csrf;
pub mod fault_injection;
pub mod file_logger;
pub mod hmac_auth;
pub mod http_logger;
pub mod ip_restriction;
pub mod jwt_auth;
pub mod key_auth;
pub mod limit_conn;
pub mod limit_count;
pub mod limit_key;
pub mod limit_req;
pub mod log_entry;
pub mod meta;
pub mod mocking;
pub mod prometheus;
pub mod proxy_rewrite;
pub mod real_ip;
pub mod redirect;
pub mod referer_restriction;
pub mod registry;
pub mod request_id;
pub mod response_rewrite;
#[cfg(test)]
mod testing;
pub mod traffic_split;
pub mod ua_restriction;
pub mod uri_blocker;

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::router::expr::Vars;

/// What a request phase decided.
pub enum Flow {
    /// Go on with the next plugin.
    Continue,
    /// Answer the client with this response; later plugins and the upstream are skipped.
    Respond(Reply),
}

/// A response made by a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers (`Content-Type: application/json` is added to a JSON body without one).
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// APISIX's usual plugin answer: `{"message": message}`.
    pub fn message(status: StatusCode, message: &str) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: Bytes::from(serde_json::json!({ "message": message }).to_string()),
        }
    }
}

/// The request as the request phases see it.
pub struct RequestCtx<'a> {
    /// The request's variables (`remote_addr`, `http_*`, `arg_*`, ...), as received.
    pub vars: &'a (dyn Vars + Sync),
    /// The client address (after real-ip).
    pub client: IpAddr,
    /// The headers that will go upstream; plugins may change them.
    pub headers: &'a mut HeaderMap,
    /// Headers added to the response, whoever answers (the upstream or a plugin).
    pub response_headers: &'a mut HeaderMap,
    /// Changes to the request line and Host that go upstream.
    pub rewrite: &'a mut Rewrite,
    /// The request body, which a plugin may read whole (it still goes upstream).
    pub body: &'a mut crate::upstream::body::ClientBody,
    /// Every consumer (authentication plugins look requests up here).
    pub consumers: &'a consumers::Consumers,
    /// Who the request authenticated as, once an authentication plugin said so.
    pub consumer: &'a mut Option<std::sync::Arc<consumers::Authenticated>>,
    /// Per-request state plugins keep between phases (one value per type).
    pub state: &'a mut http::Extensions,
}

/// Changes plugins make to what goes upstream; `None` leaves the request's own.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// The method.
    pub method: Option<Method>,
    /// The path and query (sent as given: the plugin is responsible for its encoding).
    pub path_and_query: Option<PathAndQuery>,
    /// The Host header; wins over the upstream's `pass_host`.
    pub host: Option<HeaderValue>,
}

/// The response head as `header_filter` sees it.
pub struct ResponseCtx<'a> {
    /// Status code.
    pub status: &'a mut StatusCode,
    /// Headers.
    pub headers: &'a mut HeaderMap,
    /// A body to send instead of the response's own (its length headers are fixed up).
    pub replace_body: &'a mut Option<Bytes>,
    /// Per-request state kept by the request phases.
    pub state: &'a mut http::Extensions,
}

/// A finished request as `log` sees it.
pub struct LogCtx<'a> {
    /// The status sent.
    pub status: StatusCode,
    /// What the request was.
    pub request: &'a RequestSummary,
    /// Response body bytes sent.
    pub bytes_sent: u64,
    /// From the request's arrival to the end of the response.
    pub latency: Duration,
    /// The upstream node that answered (`host:port`), if any.
    pub upstream: Option<&'a str>,
    /// Per-request state kept by the earlier phases.
    pub state: &'a http::Extensions,
}

/// The request facts the log phase needs, captured when the request arrived.
#[derive(Debug, Clone)]
pub struct RequestSummary {
    /// Method.
    pub method: Method,
    /// The request URI as received (path and query).
    pub uri: String,
    /// The Host, without port.
    pub host: String,
    /// The client address.
    pub client: IpAddr,
    /// The matched route's id.
    pub route_id: String,
    /// Its service's id, if any.
    pub service_id: Option<String>,
    /// Its name, if any.
    pub route_name: Option<String>,
}

/// A configured plugin instance. Every phase has a default that does nothing.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// Runs before access control (authentication lives here).
    async fn rewrite(&self, _req: &mut RequestCtx<'_>) -> Flow {
        Flow::Continue
    }

    /// Runs after `rewrite` (access control, limits).
    async fn access(&self, _req: &mut RequestCtx<'_>) -> Flow {
        Flow::Continue
    }

    /// Runs on the response head, before it is sent.
    fn header_filter(&self, _resp: &mut ResponseCtx<'_>) {}

    /// Runs after the response was sent.
    fn log(&self, _done: &LogCtx<'_>) {}
}

/// A plugin kind: its identity and how to build instances from configs.
pub trait PluginKind: Send + Sync + 'static {
    /// The name used in `plugins` maps.
    fn name(&self) -> &'static str;

    /// APISIX's priority: higher runs first in every phase.
    fn priority(&self) -> i32;

    /// The JSON schema of a config (served by the Admin API).
    fn schema(&self) -> Value;

    /// Validates a config and builds the instance.
    ///
    /// # Errors
    /// What is wrong with the config, for the Admin API's message.
    fn build(&self, conf: &Value) -> Result<std::sync::Arc<dyn Plugin>, String>;

    /// Whether this is an authentication plugin (configured on consumers and credentials too).
    fn is_auth(&self) -> bool {
        false
    }

    /// For authentication plugins: checks a consumer's or credential's config and returns the
    /// identity it holds (key-auth's `key`, basic-auth's `username`); `None` for the others.
    fn consumer_identity(&self, _conf: &Value) -> Option<Result<String, String>> {
        None
    }

    /// The JSON schema of a consumer's config (authentication plugins).
    fn consumer_schema(&self) -> Option<Value> {
        None
    }
}

/// Parses a plugin config with serde, naming the failing field.
///
/// # Errors
/// The field path and serde's message.
pub fn parse_conf<T: DeserializeOwned>(conf: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(conf).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("property \"{path}\" validation failed: {}", e.inner())
        }
    })
}
