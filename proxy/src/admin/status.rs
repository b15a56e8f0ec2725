//! The status API (APISIX's `apisix.status`, e.g. `127.0.0.1:7085`), for liveness and readiness
//! probes:
//! - `GET /status` → 200 `{"status":"ok"}` while the process serves;
//! - `GET /status/ready` → 200 `{"status":"ok"}` once a config has been loaded, else 503
//!   `{"status":"error","error":"..."}`;
//! - anything else → 404 `{"error_msg":"not found"}`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::server::State;

/// Serves the status API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "status API accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, &req)) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let (status, body) = match req.uri().path() {
        "/status" if get => (StatusCode::OK, r#"{"status":"ok"}"#),
        "/status/ready" if get => {
            if state.snapshot.load().version > 0 {
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
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
