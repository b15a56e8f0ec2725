//! The status API (APISIX's `apisix.status`, e.g. `127.0.0.1:7085`), for liveness and readiness
//! probes:
//! - `GET /status` → 200 `{"status":"ok"}` while the process serves;
//! - `GET /status/ready` → 200 `{"status":"ok"}` once a config has been loaded, else 503
//!   `{"status":"error","error":"..."}`;
//! - anything else → 404 `{"error_msg":"not found"}`.

use std::future::Future;
use std::sync::Arc;

use http::{Method, Request, StatusCode};
use tokio::net::TcpListener;

use crate::listener::{self, json, FullResponse};
use crate::snapshot::Snapshot;

/// Serves the status API on `listener` until `stop` completes; `current` gives the snapshot being
/// served.
pub async fn serve(
    listener: TcpListener,
    current: impl Fn() -> Arc<Snapshot> + Send + Sync + 'static,
    stop: impl Future<Output = ()>,
) {
    listener::serve(
        listener,
        "status API",
        move |req, _| {
            let reply = answer(&current(), &req);
            async move { reply }
        },
        stop,
    )
    .await;
}

fn answer<B>(snapshot: &Snapshot, req: &Request<B>) -> FullResponse {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let (status, body) = match req.uri().path() {
        "/status" if get => (StatusCode::OK, r#"{"status":"ok"}"#),
        "/status/ready" if get => {
            if snapshot.version > 0 {
                (StatusCode::OK, r#"{"status":"ok"}"#)
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"status":"error","error":"no configuration loaded"}"#,
                )
            }
        }
        _ => (StatusCode::NOT_FOUND, r#"{"error_msg":"not found"}"#),
    };
    json(status, body)
}
