//! The control API (APISIX's, on `127.0.0.1:9090` by default; never expose it): what the data
//! plane is serving right now, read from the current snapshot.
//! - `GET /v1/routes`, `/v1/route/{id}`, `/v1/services`, `/v1/service/{id}`, `/v1/upstreams`,
//!   `/v1/upstream/{id}`: the objects in memory (a list, or one object; 404 when unknown);
//! - `GET /v1/healthcheck`: every health checker (one per upstream in use with `checks`, from
//!   the moment its snapshot is built), as APISIX: `[{name, type, nodes: [{ip, port, hostname,
//!   status, counter: {success, http_failure, tcp_failure, timeout_failure}}]}]`;
//! - `GET /v1/healthcheck/{upstreams|routes|services}/{id}`: one checker (404 when none);
//! - `GET /v1/schema`: the resource schemas.
//!
//! It has no authentication, so objects are shown without their secrets (upstream client keys,
//! plugin credentials: `admin::redact`).

use std::future::Future;
use std::sync::Arc;

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::redact::{redact, Audience};
use crate::listener::{self, json, json_value, FullResponse};
use crate::snapshot::Snapshot;
use model::{Id, Resource};

/// Serves the control API on `listener` until `stop` completes; `current` gives the snapshot
/// being served.
pub async fn serve(
    listener: TcpListener,
    current: impl Fn() -> Arc<Snapshot> + Send + Sync + 'static,
    stop: impl Future<Output = ()>,
) {
    listener::serve(
        listener,
        "control API",
        move |req, _| {
            let reply = answer(&current(), req.method(), req.uri().path());
            async move { reply }
        },
        stop,
    )
    .await;
}

fn answer(snapshot: &Snapshot, method: &Method, path: &str) -> FullResponse {
    if method != Method::GET {
        return json(StatusCode::NOT_FOUND, r#"{"error_msg":"not found"}"#);
    }
    let config = &snapshot.config;
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["v1", "routes"] => all(Resource::Route, &config.routes),
        ["v1", "route", id] => one(Resource::Route, &config.routes, id, |r| r.id.as_ref()),
        ["v1", "services"] => all(Resource::Service, &config.services),
        ["v1", "service", id] => one(Resource::Service, &config.services, id, |s| s.id.as_ref()),
        ["v1", "upstreams"] => all(Resource::Upstream, &config.upstreams),
        ["v1", "upstream", id] => one(Resource::Upstream, &config.upstreams, id, |u| u.id.as_ref()),
        ["v1", "healthcheck"] => {
            let all: Vec<Value> = snapshot.health.iter().map(|c| c.to_json()).collect();
            json_value(StatusCode::OK, &Value::Array(all))
        }
        ["v1", "healthcheck", kind @ ("upstreams" | "routes" | "services"), id] => {
            let key = format!("/apisix/{kind}/{id}");
            match snapshot.health.iter().find(|c| c.key() == key) {
                Some(c) => json_value(StatusCode::OK, &c.to_json()),
                None => json_value(
                    StatusCode::NOT_FOUND,
                    &json!({ "error_msg": format!("no checker for {kind}[{id}]") }),
                ),
            }
        }
        ["v1", "schema"] => {
            let main: serde_json::Map<String, Value> = Resource::ALL
                .iter()
                .map(|r| (r.schema_name().to_owned(), r.schema()))
                .collect();
            json_value(StatusCode::OK, &json!({ "main": main, "plugins": {} }))
        }
        _ => json(StatusCode::NOT_FOUND, r#"{"error_msg":"not found"}"#),
    }
}

/// An object as the control API shows it: without its secrets.
fn shown<T: Serialize>(resource: Resource, item: &T) -> Value {
    let mut value = serde_json::to_value(item).unwrap_or(Value::Null);
    redact(resource, &mut value, Audience::Reader);
    value
}

fn all<T: Serialize>(resource: Resource, items: &[T]) -> FullResponse {
    let shown: Vec<Value> = items.iter().map(|i| shown(resource, i)).collect();
    json_value(StatusCode::OK, &Value::Array(shown))
}

fn one<T: Serialize>(
    resource: Resource,
    items: &[T],
    id: &str,
    id_of: impl Fn(&T) -> Option<&Id>,
) -> FullResponse {
    match items.iter().find(|i| id_of(i).is_some_and(|i| i.0 == id)) {
        Some(item) => json_value(StatusCode::OK, &shown(resource, item)),
        None => json(StatusCode::NOT_FOUND, r#"{"error_msg":"not found"}"#),
    }
}
