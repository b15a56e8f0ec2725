//! Ferrogate: an API gateway compatible with Apache APISIX's data model.
//!
//! A request flows: listener → HTTP server → one atomic load of the current [`snapshot`] →
//! [`router`] match (404 JSON if none) → [`upstream`] pick and forward with retries → response
//! streamed back → access log line. Config flows: the Admin API or the standalone file
//! ([`store`]) → validation ([`model`], with this gateway's plugin registry) → snapshot builder
//! (off the request path) → atomic swap.
//!
//! # Layout
//! - [`config`]: the node config (`conf/config.yaml`): typed, defaulted, validated.
//! - [`store`]: where resources live: the embedded store, etcd, the standalone `apisix.yaml`.
//! - [`snapshot`]: the immutable data-plane view, built from resources and swapped atomically.
//! - [`router`]: the route index and matching.
//! - [`upstream`]: balancers, connection pools, retries and timeouts, node health checks.
//! - [`server`]: listeners, connections, the request pipeline, gateway-made responses.
//! - [`runners`]: the external plugin runners (out-of-process and in-process Python) and the
//!   `ext-plugin-*` plugins that call them.
//! - [`admin`]: management endpoints: the Admin API, the control API, the status API.
//! - [`listener`]: the small HTTP listener the management endpoints and the metrics exporter
//!   share.
//! - [`observe`]: error log setup, the access log, the `prometheus` plugin and its metrics.
//! - [`gateway`]: wires all of the above into a running gateway, with its plugin registry.
//! - [`Ferrogate`]: the `ferrogate` command as a library, to run it with a user's plugins.
//!
//! The modules form layers, each using only the ones below it: [`config`]; then [`router`],
//! [`upstream`], [`store`], [`runners`], [`listener`]; then [`snapshot`]; then [`observe`]; then
//! [`server`] and [`admin`]; then [`gateway`]. No dependency circle spans two modules
//! (`proxy/tests/layers.rs` fails on one).
//!
//! The crates below it: [`model`] (APISIX's resources, their validation, the `vars` language),
//! [`plugin_api`] (what a plugin is written against) and [`plugins`] (the built-in plugins).

pub mod admin;
mod cli;
pub mod config;
pub mod gateway;
pub mod listener;
pub mod observe;
pub mod router;
pub mod runners;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod upstream;

pub use cli::Ferrogate;
pub use model;
pub use plugin_api;
pub use plugins;
