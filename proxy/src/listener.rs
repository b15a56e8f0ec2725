//! The HTTP side shared by the management listeners (Admin API, control API, status API) and the
//! Prometheus exporter: an accept loop serving HTTP/1.1 with a handler that gets the request and
//! the peer address, and JSON response helpers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// A response with a buffered body, as the management listeners answer.
pub type FullResponse = Response<Full<Bytes>>;

/// Serves `listener` until `stop` completes, then closes every connection and returns (so
/// whatever the handler holds is released when this returns); `name` appears in logs.
pub async fn serve<H, F>(
    listener: TcpListener,
    name: &'static str,
    handler: H,
    stop: impl Future<Output = ()>,
) where
    H: Fn(http::Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = FullResponse> + Send + 'static,
{
    let handler = Arc::new(handler);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stop => break,
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "{name} accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = handler.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let answer = handler(req, peer);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    connections.shutdown().await;
}

/// The `Server` header of every answer the gateway sends, the proxy's and the management
/// listeners' alike: the product with its version when `apisix.enable_server_tokens` is on,
/// the product alone when it is off.
pub fn server_header(enable_server_tokens: bool) -> HeaderValue {
    HeaderValue::from_static(if enable_server_tokens {
        concat!("ferrogate/", env!("CARGO_PKG_VERSION"))
    } else {
        "ferrogate"
    })
}

/// A JSON response.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> FullResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON response from a value.
pub fn json_value(status: StatusCode, body: &serde_json::Value) -> FullResponse {
    json(status, body.to_string())
}
