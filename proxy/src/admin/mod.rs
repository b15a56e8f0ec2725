//! Management endpoints: the Admin API (APISIX v3 compatible, [`serve`]), the control API
//! ([`control`]) and the status API ([`status`]).
//!
//! The Admin API answers under `/apisix/admin` as APISIX's does: the same resources, methods,
//! envelopes, status codes and error bodies, so scripts and tools written for APISIX work
//! unchanged. Every write is validated whole (schema, rules, references) before it reaches the
//! store; a rejected write changes nothing.

// Handlers return `Result<_, Reply>` to answer early with a ready error response; the response
// is built only on that path, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod auth;
pub mod control;
mod list;
pub(crate) mod listener;
mod patch;
mod references;
mod resources;
pub mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;

pub use auth::Auth;
use listener::{json, json_value, Reply};

use crate::store::{Store, StoreError};

/// The largest Admin API request body (APISIX: 1.5 MiB).
pub const MAX_BODY: usize = 1536 * 1024;

/// The Admin API's state.
pub struct Admin {
    /// Where resources live.
    pub store: Arc<dyn Store>,
    /// Who may call.
    pub auth: Auth,
    /// Add CORS headers and answer `OPTIONS`.
    pub cors: bool,
    /// Why writes are refused, when the config comes from a file.
    pub read_only: Option<String>,
}

/// A parsed Admin API request.
pub(crate) struct Call {
    method: Method,
    /// Path segments after `/apisix/admin/` (no empty ones).
    segments: Vec<String>,
    args: Vec<(String, String)>,
    body: Bytes,
}

impl Call {
    fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves the Admin API on `listener` until `stop` completes.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, stop: impl Future<Output = ()>) {
    listener::serve(
        listener,
        "Admin API",
        move |req, peer| {
            let admin = admin.clone();
            async move { admin.handle(req, peer).await }
        },
        stop,
    )
    .await;
}

impl Admin {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Reply {
        let mut reply = self.answer(req, peer).await;
        let headers = reply.headers_mut();
        headers.insert(
            HeaderName::from_static("x-api-version"),
            HeaderValue::from_static("v3"),
        );
        headers.insert(
            http::header::SERVER,
            HeaderValue::from_static(concat!("ferrogate/", env!("CARGO_PKG_VERSION"))),
        );
        if self.cors {
            for (name, value) in [
                ("access-control-allow-origin", "*"),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "*"),
                ("access-control-max-age", "3600"),
            ] {
                headers.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
        }
        reply
    }

    async fn answer(&self, req: Request<Incoming>, peer: SocketAddr) -> Reply {
        if !self.auth.address_allowed(peer.ip()) {
            tracing::warn!(client = %peer.ip(), "Admin API request from a client outside allow_admin refused");
            return error(
                StatusCode::FORBIDDEN,
                "403 Forbidden: your address is not allowed to use the Admin API",
            );
        }
        let path = req.uri().path().to_owned();
        let Some(rest) = path.strip_prefix("/apisix/admin") else {
            return json(StatusCode::NOT_FOUND, r#"{"error_msg":"404 Not Found"}"#);
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            return json(StatusCode::NOT_FOUND, r#"{"error_msg":"404 Not Found"}"#);
        }
        let method = req.method().clone();
        if method == Method::HEAD && rest.trim_matches('/').is_empty() {
            return json(StatusCode::OK, "");
        }
        if method == Method::OPTIONS && self.cors {
            let mut reply = json(StatusCode::OK, "");
            let headers = reply.headers_mut();
            headers.insert(
                HeaderName::from_static("access-control-allow-methods"),
                HeaderValue::from_static("POST, GET, PUT, OPTIONS, DELETE, PATCH"),
            );
            headers.insert(
                HeaderName::from_static("access-control-allow-headers"),
                HeaderValue::from_static("*"),
            );
            return reply;
        }
        if let Err(refusal) = self.auth.check(&method, req.uri().query(), req.headers()) {
            return json_value(
                StatusCode::UNAUTHORIZED,
                &json!({"error_msg": "failed to check token", "description": refusal.description()}),
            );
        }
        if !matches!(
            method,
            Method::GET | Method::PUT | Method::POST | Method::PATCH | Method::DELETE
        ) {
            return json(StatusCode::NOT_FOUND, r#"{"error_msg":"404 Not Found"}"#);
        }
        let args = req
            .uri()
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body too large: the limit is {MAX_BODY} bytes"),
                );
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the request body: {e}"),
                );
            }
        };
        let call = Call {
            method,
            segments: rest
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            args,
            body,
        };
        if call.method != Method::GET {
            if let Some(why) = &self.read_only {
                let validating = call
                    .segments
                    .first()
                    .is_some_and(|s| s == "schema" || s == "configs");
                if !validating {
                    return error(StatusCode::BAD_REQUEST, why);
                }
            }
        }
        resources::dispatch(self, &call).await
    }
}

/// `{"error_msg": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: &str) -> Reply {
    json_value(status, &json!({ "error_msg": message }))
}

/// A store failure: 503 with the store's message.
pub(crate) fn unavailable(e: &StoreError) -> Reply {
    error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
}
