//! Where routes, services and upstreams come from.
//!
//! This version has the standalone backend only: [`declarative`] reads APISIX's `apisix.yaml` /
//! `apisix.json` and [`watch`] reloads it when it changes. The revisioned `Store` with embedded and
//! etcd backends arrives with the Admin API.

pub mod declarative;
pub mod watch;

pub use declarative::{Declarative, FileError, Format, Loaded};
