//! Plugins: the runtime and the built-in plugins.
//!
//! A [`PluginKind`] is what a plugin is (name, priority, config schema) and turns a config into a
//! [`Plugin`] instance, once per config version (the snapshot builder does it, never a request).
//! Plugins are written as a [`Kind`], which checks a typed config apart from building an
//! instance: the Admin API only checks ([`PluginKind::check_conf`]).
//! A [`chain::Chain`] holds the instances of one object (a route with its service and plugin
//! config merged in, or the union of the global rules), sorted by priority (higher first), with
//! each instance's `_meta` ([`meta::Meta`]). A request runs the phases in APISIX's order: for
//! each phase the global rules' chain first, then the route's.
//!
//! Phases: an instance declares the ones it runs in ([`Plugin::phases`]); the chain calls only
//! those. `rewrite` and `access` may answer the request ([`Flow::Respond`]), fail it
//! ([`Flow::Fail`]: the chain logs the error and answers with its status) and may change the
//! request that goes upstream; `before_proxy` runs last before the request goes upstream;
//! `header_filter` may change the response status and headers and attach [`BodyFilter`]s, which
//! change the body as it streams (the `body_filter` phase); `log` runs after the response is
//! sent. [`registry`] lists the built-in kinds.

pub mod body;
pub mod chain;
pub mod client;
pub mod consumer;
pub mod drain;
pub mod meta;
pub mod metadata;
pub mod outcome;
pub mod path;
pub mod registry;
pub mod schema;
pub mod testing;
pub mod tls;
pub mod upstream;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use model::expr::Vars;
pub use outcome::{Fault, Outcome};

use body::{RequestBody, ResponseBody};
use client::ClientAddr;
use consumer::{Authenticated, ConsumerIndex};
use upstream::{UpstreamOverride, Upstreams};

/// What a request phase decided.
pub enum Flow {
    /// Go on with the next plugin.
    Continue,
    /// Answer the client with this response; later plugins and the upstream are skipped.
    Respond(Reply),
    /// The plugin could not do its work: the chain logs the error (with the plugin's name) and
    /// answers with [`PluginError::reply`]; later plugins and the upstream are skipped.
    Fail(PluginError),
}

/// Why a plugin could not do its work (a runner that failed, a value no request can carry):
/// an internal failure, answered with a bare status, not a refusal of the request.
#[derive(Debug)]
pub struct PluginError {
    /// The status the client gets.
    pub status: StatusCode,
    /// What went wrong (logged, never sent).
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl PluginError {
    /// A failure answered with `status`.
    pub fn new(
        status: StatusCode,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> PluginError {
        PluginError {
            status,
            source: source.into(),
        }
    }

    /// The answer: the status with no body, as APISIX's plugins exit with a bare status.
    pub fn reply(&self) -> Reply {
        Reply {
            status: self.status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.source, self.status)
    }
}

impl std::error::Error for PluginError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
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
    /// APISIX's usual plugin answer: `{"message": message}` and a new line (as
    /// `core.response.exit` ends a table body).
    pub fn message(status: StatusCode, message: &str) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: Bytes::from(format!("{}\n", serde_json::json!({ "message": message }))),
        }
    }
}

/// The request as the request phases see it.
pub struct RequestCtx<'a> {
    /// The request's variables (`remote_addr`, `http_*`, `arg_*`, ...), as received.
    pub vars: &'a (dyn Vars + Sync),
    /// The client address (after real-ip); [`RequestCtx::set_client`] changes it.
    pub client: IpAddr,
    /// The client address a plugin set, shared with `vars`.
    pub client_set: &'a ClientAddr,
    /// The headers that will go upstream; plugins may change them.
    pub headers: &'a mut HeaderMap,
    /// Headers added to the response, whoever answers (the upstream or a plugin).
    pub response_headers: &'a mut HeaderMap,
    /// Changes to the request line and Host that go upstream.
    pub rewrite: &'a mut Rewrite,
    /// Every consumer (authentication plugins look requests up here).
    pub consumers: &'a dyn ConsumerIndex,
    /// Who the request authenticated as, once an authentication plugin said so.
    pub consumer: &'a mut Option<Arc<Authenticated>>,
    /// Per-request state plugins keep between phases (one value per type).
    pub state: &'a mut http::Extensions,
    /// The request body: read it whole or replace it.
    pub body: &'a mut dyn RequestBody,
}

impl RequestCtx<'_> {
    /// Makes `addr` (and `port`, when given; else one set before stays) the client's for the
    /// rest of the request: `client`, the variables `remote_addr` and `remote_port` of later
    /// plugins, the `X-Real-IP` / `X-Forwarded-For` going upstream, the log phase and the
    /// access log.
    pub fn set_client(&mut self, addr: IpAddr, port: Option<u16>) {
        self.client = addr;
        self.client_set.set(addr, port);
    }

    /// Sends the request to an upstream the plugin declared ([`Kind::upstreams`]), or keeps
    /// the route's own; replaces an earlier plugin's choice.
    pub fn choose_upstream(&mut self, choice: UpstreamOverride) {
        self.state.insert(choice);
    }
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

/// The upstream's response as `upstream_response` sees it: after the upstream answered, before
/// `header_filter`. The body may be read whole or replaced.
pub struct UpstreamResponseCtx<'a> {
    /// The request's variables, as received.
    pub vars: &'a (dyn Vars + Sync),
    /// The authenticated consumer's name, if any.
    pub consumer_name: Option<&'a str>,
    /// The request body (already sent: only a body a plugin read or replaced is still there).
    pub request_body: &'a mut dyn RequestBody,
    /// Status code.
    pub status: &'a mut StatusCode,
    /// Headers.
    pub headers: &'a mut HeaderMap,
    /// The body ([`ResponseBody::read_all`] reads it whole).
    pub body: &'a mut dyn ResponseBody,
    /// Per-request state kept by the request phases.
    pub state: &'a mut http::Extensions,
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
    /// Filters the body goes through, in the order added (the `body_filter` phase).
    pub body_filters: &'a mut Vec<Box<dyn BodyFilter>>,
    /// A content encoding applied after every plugin's filters, as nginx's gzip module runs
    /// after APISIX's (the last plugin to set one wins).
    pub encoding: &'a mut Option<Arc<dyn Encoding>>,
}

/// A content encoding (gzip), chosen by a plugin's `header_filter` and applied once every
/// plugin's `header_filter` ran: the other plugins see the response unencoded.
pub trait Encoding: Send + Sync {
    /// Whether to encode the response with these `headers`; if so, changes the headers
    /// (`Content-Encoding`, length, ...) and returns the encoder, which runs after every body
    /// filter.
    fn start(&self, headers: &mut HeaderMap) -> Option<Box<dyn BodyFilter>>;
}

/// Changes a response body as it streams (APISIX's `body_filter` phase), chunk by chunk. A
/// filter is attached to one response by a plugin's `header_filter`; with any filter attached
/// the body's length is unknown and the response is sent chunked.
pub trait BodyFilter: Send {
    /// One chunk of the body; returns what to send in its place (empty holds it back).
    fn chunk(&mut self, chunk: Bytes) -> Bytes;

    /// The body ended; returns what to send last.
    fn finish(&mut self) -> Bytes;
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
    /// The upstream's status (the gateway's 502 or 504 when every try failed); `None` when the
    /// request never went upstream (a plugin answered, no route).
    pub upstream_status: Option<StatusCode>,
    /// Per-request state kept by the earlier phases.
    pub state: &'a http::Extensions,
    /// The authenticated consumer's name, if any.
    pub consumer_name: Option<&'a str>,
    /// Who answered: the upstream, a plugin, or the gateway failing the request (and whose
    /// doing the failure is).
    pub outcome: Outcome,
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
    /// Its service's name, if any.
    pub service_name: Option<String>,
    /// The route's `uri` pattern that matched (empty without a route).
    pub matched_uri: String,
    /// The route's host pattern that matched (empty without one).
    pub matched_host: String,
    /// The request's size as received: request line, headers and body (nginx's
    /// `request_length`).
    pub request_length: u64,
}

/// A set of phases: the ones a plugin runs in ([`Plugin::phases`]). Combine with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Phases(u8);

impl Phases {
    /// No phase (a plugin whose config leaves it nothing to do).
    pub const NONE: Phases = Phases(0);
    /// [`Plugin::rewrite`].
    pub const REWRITE: Phases = Phases(1);
    /// [`Plugin::access`].
    pub const ACCESS: Phases = Phases(1 << 1);
    /// [`Plugin::before_proxy`].
    pub const BEFORE_PROXY: Phases = Phases(1 << 2);
    /// [`Plugin::upstream_response`].
    pub const UPSTREAM_RESPONSE: Phases = Phases(1 << 3);
    /// [`Plugin::header_filter`].
    pub const HEADER_FILTER: Phases = Phases(1 << 4);
    /// [`Plugin::log`].
    pub const LOG: Phases = Phases(1 << 5);

    /// Every phase of `other` is in this set.
    pub const fn contains(self, other: Phases) -> bool {
        self.0 & other.0 == other.0
    }

    /// The phases of both sets.
    #[must_use]
    pub const fn union(self, other: Phases) -> Phases {
        Phases(self.0 | other.0)
    }
}

impl std::ops::BitOr for Phases {
    type Output = Phases;

    fn bitor(self, other: Phases) -> Phases {
        self.union(other)
    }
}

impl std::ops::BitOrAssign for Phases {
    fn bitor_assign(&mut self, other: Phases) {
        *self = self.union(other);
    }
}

/// A configured plugin instance. It declares the phases it runs in ([`Plugin::phases`]); the
/// chain calls only those (the others' defaults do nothing).
#[async_trait::async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The phases this instance implements, asked once when its chain is built: the chain
    /// calls no other phase of it, and a phase no plugin of a chain declares costs nothing.
    fn phases(&self) -> Phases;

    /// Runs before access control (authentication lives here).
    async fn rewrite(&self, _req: &mut RequestCtx<'_>) -> Flow {
        Flow::Continue
    }

    /// Runs after `rewrite` (access control, limits).
    async fn access(&self, _req: &mut RequestCtx<'_>) -> Flow {
        Flow::Continue
    }

    /// Runs after `access`, last before the request goes upstream.
    async fn before_proxy(&self, _req: &mut RequestCtx<'_>) -> Flow {
        Flow::Continue
    }

    /// Runs once the upstream answered, before `header_filter`. A reply replaces the
    /// upstream's response.
    async fn upstream_response(&self, _resp: &mut UpstreamResponseCtx<'_>) -> Flow {
        Flow::Continue
    }

    /// Runs on the response head, before it is sent; may attach body filters.
    fn header_filter(&self, _resp: &mut ResponseCtx<'_>) {}

    /// Runs after the response was sent.
    fn log(&self, _done: &LogCtx<'_>) {}

    /// Whether a global rule's instance stands aside for the route's own when the route has
    /// this plugin too (APISIX's `run_policy = "prefer_route"`).
    fn prefers_route(&self) -> bool {
        false
    }
}

/// What an instance is built for, besides its config.
#[derive(Clone, Default)]
pub struct BuildContext {
    /// The object the config belongs to (`route#1`, `global_rules`, `consumer#jack`).
    pub owner: String,
    /// The gateway's shutdown drain, which loggers join (`None` when only checking a config).
    pub drain: Option<Arc<drain::Drain>>,
    /// Where queues of entries waiting to be sent are reported (`None`: not reported).
    pub batches: Option<Arc<dyn BatchWatch>>,
    /// The checked plugin metadata of the gateway (empty when only checking a config).
    pub metadata: metadata::MetadataSet,
}

impl BuildContext {
    /// The checked metadata of `plugin` ([`Kind::plugin_metadata`] made it a `T`), if any.
    pub fn metadata<T: std::any::Any>(&self, plugin: &str) -> Option<&T> {
        self.metadata.get(plugin)
    }
}

/// Entries a plugin holds before sending them (a logger's batch), as metrics show them.
pub trait BatchQueue: Send + Sync {
    /// Entries waiting in the queue (or being sent).
    fn entries(&self) -> usize;
}

/// Reports plugins' batch queues (the gateway's metrics: `apisix_batch_process_entries`).
pub trait BatchWatch: Send + Sync {
    /// Reports `queue` of plugin `name`, started by a request to route `route_id` on server
    /// address `server_addr`, for as long as it lives.
    fn watch(
        &self,
        name: &str,
        route_id: &str,
        server_addr: &str,
        queue: std::sync::Weak<dyn BatchQueue>,
    );
}

/// Where the upstream answer came from, kept in the request state by the gateway for the
/// response phases (`balancer_ip`, `balancer_port`, `upstream_response_time`).
#[derive(Debug, Clone)]
pub struct Balancer {
    /// The address connected to (a domain node's resolved address), or the node's host.
    pub ip: String,
    /// The port connected to.
    pub port: u16,
    /// From the start of the answering try to the response head (the upstream latency).
    pub time: std::time::Duration,
}

/// A plugin kind: its identity and how to build instances from configs.
pub trait PluginKind: Send + Sync + 'static {
    /// The name used in `plugins` maps.
    fn name(&self) -> &'static str;

    /// APISIX's priority: higher runs first in every phase.
    fn priority(&self) -> i32;

    /// The JSON schema of a config (served by the Admin API).
    fn schema(&self) -> Value;

    /// Checks a config without building an instance (the Admin API's check). Kinds written with
    /// [`Kind`] check the schema, parse and run [`Kind::check`]; a kind implementing this trait
    /// directly checks the schema and builds an instance it drops, unless it overrides this.
    ///
    /// # Errors
    /// What is wrong with the config, for the Admin API's message.
    fn check_conf(&self, conf: &Value) -> Result<(), String> {
        schema::check(&schema::from_rust_types(&self.schema()), conf)?;
        self.build(conf).map(drop)
    }

    /// Validates a config and builds the instance.
    ///
    /// # Errors
    /// What is wrong with the config, for the Admin API's message.
    fn build(&self, conf: &Value) -> Result<Arc<dyn Plugin>, String>;

    /// Builds the instance that serves requests; kinds that need more than the config (the
    /// external plugins need their runner) override this.
    ///
    /// # Errors
    /// As [`PluginKind::build`].
    fn build_with(&self, conf: &Value, _ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        self.build(conf)
    }

    /// Builds the instance that serves requests, with the upstreams it may choose
    /// ([`Kind::upstreams`]; none unless a kind says otherwise).
    ///
    /// # Errors
    /// As [`PluginKind::build`].
    fn build_choosing(
        &self,
        conf: &Value,
        ctx: &BuildContext,
    ) -> Result<(Arc<dyn Plugin>, Upstreams), String> {
        Ok((self.build_with(conf, ctx)?, Upstreams::default()))
    }

    /// The upstreams an instance of a valid config may choose ([`Kind::upstreams`]), building
    /// nothing (the Admin API checks upstream references with it); none for an invalid config.
    fn upstreams_of(&self, _conf: &Value) -> Upstreams {
        Upstreams::default()
    }

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

    /// The JSON schema of the plugin's metadata (`plugin_metadata/<name>`); `None` when the
    /// plugin reads none (any object is then accepted, as APISIX does).
    fn metadata_schema(&self) -> Option<Value> {
        None
    }

    /// Checks the plugin's metadata as written (against [`PluginKind::metadata_schema`], then
    /// the kind's own rules) into what its instances read ([`BuildContext::metadata`]); `None`
    /// for a plugin that reads none.
    ///
    /// # Errors
    /// What is wrong with the metadata, for the Admin API's message.
    fn check_metadata(&self, _metadata: &Value) -> Result<Option<metadata::Metadata>, String> {
        Ok(None)
    }
}

/// A plugin kind as a plugin author writes it: checking a config ([`Kind::check`], which the
/// Admin API runs) is apart from building an instance of a checked config ([`Kind::instance`],
/// which the snapshot builder runs). Every `Kind` is a [`PluginKind`].
pub trait Kind: Send + Sync + 'static {
    /// The config as the user writes it; its JSON schema is the kind's schema.
    type Conf: DeserializeOwned + schemars::JsonSchema;
    /// A config that passed [`Kind::check`], compiled for [`Kind::instance`].
    type Checked: Send + Sync + 'static;
    /// The name used in `plugins` maps.
    const NAME: &'static str;
    /// APISIX's priority: higher runs first in every phase.
    const PRIORITY: i32;
    /// Whether this is an authentication plugin (configured on consumers and credentials too).
    const IS_AUTH: bool = false;

    /// The JSON schema served by the Admin API: the config type's, unless a kind shows it in
    /// another shape.
    fn conf_schema(&self) -> Value {
        schema::schema_of::<Self::Conf>()
    }

    /// Checks a parsed config: what its schema cannot say.
    ///
    /// # Errors
    /// What is wrong with the config, for the Admin API's message.
    fn check(&self, conf: Self::Conf) -> Result<Self::Checked, String>;

    /// Builds the instance that serves requests from a checked config.
    ///
    /// # Errors
    /// Why the instance cannot be built.
    fn instance(
        &self,
        checked: Self::Checked,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Plugin>, String>;

    /// The upstreams an instance of `checked` may send requests to instead of its route's
    /// ([`upstream`]): the gateway builds them with the snapshot, and the instance picks one
    /// per request with [`RequestCtx::choose_upstream`]. None by default.
    fn upstreams(&self, _checked: &Self::Checked) -> Upstreams {
        Upstreams::default()
    }

    /// For authentication plugins: see [`PluginKind::consumer_identity`].
    fn identity(&self, _conf: &Value) -> Option<Result<String, String>> {
        None
    }

    /// For authentication plugins: see [`PluginKind::consumer_schema`].
    fn identity_schema(&self) -> Option<Value> {
        None
    }

    /// The JSON schema of the plugin's metadata (`plugin_metadata/<name>`), checked before
    /// [`Kind::plugin_metadata`] runs; `None` (the default): the plugin reads no metadata.
    fn plugin_metadata_schema(&self) -> Option<Value> {
        None
    }

    /// Makes the plugin's metadata, which passed [`Kind::plugin_metadata_schema`], into the
    /// value its instances read when built (`ctx.metadata::<T>(Self::NAME)` in
    /// [`Kind::instance`]). Runs when the metadata is written and when the gateway reads it,
    /// never per request. The default reads nothing.
    ///
    /// # Errors
    /// What is wrong with the metadata, for the Admin API's message.
    fn plugin_metadata(&self, _metadata: &Value) -> Result<Option<metadata::Metadata>, String> {
        Ok(None)
    }
}

impl<K: Kind> PluginKind for K {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn priority(&self) -> i32 {
        K::PRIORITY
    }

    fn schema(&self) -> Value {
        self.conf_schema()
    }

    fn check_conf(&self, conf: &Value) -> Result<(), String> {
        self.check(schema::checked_conf(conf)?).map(drop)
    }

    fn build(&self, conf: &Value) -> Result<Arc<dyn Plugin>, String> {
        self.build_with(conf, &BuildContext::default())
    }

    fn build_with(&self, conf: &Value, ctx: &BuildContext) -> Result<Arc<dyn Plugin>, String> {
        self.build_choosing(conf, ctx).map(|(plugin, _)| plugin)
    }

    fn build_choosing(
        &self,
        conf: &Value,
        ctx: &BuildContext,
    ) -> Result<(Arc<dyn Plugin>, Upstreams), String> {
        // A stored config passed the Admin API's schema check already: parse it only.
        let checked = self.check(parse_conf(conf)?)?;
        let upstreams = Kind::upstreams(self, &checked);
        Ok((self.instance(checked, ctx)?, upstreams))
    }

    fn upstreams_of(&self, conf: &Value) -> Upstreams {
        parse_conf(conf)
            .and_then(|conf| self.check(conf))
            .map(|checked| Kind::upstreams(self, &checked))
            .unwrap_or_default()
    }

    fn is_auth(&self) -> bool {
        K::IS_AUTH
    }

    fn consumer_identity(&self, conf: &Value) -> Option<Result<String, String>> {
        self.identity(conf)
    }

    fn consumer_schema(&self) -> Option<Value> {
        self.identity_schema()
    }

    fn metadata_schema(&self) -> Option<Value> {
        self.plugin_metadata_schema()
    }

    fn check_metadata(&self, metadata: &Value) -> Result<Option<metadata::Metadata>, String> {
        match self.plugin_metadata_schema() {
            Some(schema) => {
                schema::check(&schema, metadata)?;
                self.plugin_metadata(metadata)
            }
            None => Ok(None),
        }
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
