//! Ferrogate: an API gateway compatible with Apache APISIX's data model.
//!
//! A request flows: listener → HTTP server → one atomic load of the current [`snapshot`] →
//! [`router`] match (404 JSON if none) → [`upstream`] pick and forward with retries → response
//! streamed back → access log line. Config flows: the declarative file ([`store`]) → validation
//! ([`model`]) → snapshot builder (off the request path) → atomic swap.
//!
//! # Layout
//! - [`config`]: the node config (`conf/config.yaml`): typed, defaulted, validated.
//! - [`model`]: routes, services and upstreams with APISIX's fields, and their validation.
//! - [`store`]: where resources come from: the standalone `apisix.yaml` and its reload.
//! - [`snapshot`]: the immutable data-plane view, built from resources and swapped atomically.
//! - [`router`]: the route index and matching; `router::expr` is the `vars` language.
//! - [`upstream`]: balancers, connection pools, retries and timeouts.
//! - [`server`]: listeners, connections, the request pipeline, gateway-made responses.
//! - [`admin`]: management endpoints (the status API so far).
//! - [`observe`]: error log setup and the access log.
//! - [`gateway`]: wires all of the above into a running gateway.

pub mod admin;
pub mod config;
pub mod gateway;
pub mod model;
pub mod observe;
pub mod router;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod upstream;
