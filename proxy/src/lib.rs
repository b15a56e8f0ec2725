//! Ferrogate: an API gateway compatible with Apache APISIX's data model.
//!
//! A request flows: listener → HTTP server → one atomic load of the current [`snapshot`] →
//! [`router`] match (404 JSON if none) → [`upstream`] pick and forward with retries → response
//! streamed back → access log line. Config flows: the declarative file ([`store`]) → validation
//! ([`model`]) → snapshot builder (off the request path) → atomic swap.
//!
//! # Layout
//! - [`config`]: the node config (`conf/config.yaml`): typed, defaulted, validated.
//! - [`model`]: APISIX's resources (routes, services, upstreams, consumers, ...) and their
//!   validation.
//! - [`store`]: where resources live: the embedded store, etcd, the standalone `apisix.yaml`.
//! - [`snapshot`]: the immutable data-plane view, built from resources and swapped atomically.
//! - [`router`]: the route index and matching; `router::expr` is the `vars` language.
//! - [`upstream`]: balancers, connection pools, retries and timeouts, node health checks.
//! - [`server`]: listeners, connections, the request pipeline, gateway-made responses.
//! - [`plugins`]: the plugin runtime (phases, `_meta`, chains) and the built-in plugins.
//! - [`runners`]: the external plugin runners (out-of-process and in-process Python) the
//!   `ext-plugin-*` plugins call.
//! - [`admin`]: management endpoints: the Admin API, the control API, the status API.
//! - [`observe`]: error log setup and the access log.
//! - [`gateway`]: wires all of the above into a running gateway.

pub mod admin;
pub mod config;
pub mod gateway;
pub mod model;
pub mod observe;
pub mod plugins;
pub mod router;
pub mod runners;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod upstream;
