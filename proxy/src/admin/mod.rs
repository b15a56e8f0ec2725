//! Management endpoints: the Admin API (APISIX v3 compatible, [`serve`]), the control API
//! ([`control`]) and the status API ([`status`]).
//!
//! The Admin API answers under `/apisix/admin` as APISIX's does: the same resources, methods,
//! envelopes, status codes and error bodies, so scripts and tools written for APISIX work
//! unchanged. Every write is validated whole (schema, rules, references) before it reaches the
//! store; a rejected write changes nothing. A web page cannot drive it (`browser`), and secrets
//! are shown to admin keys only (`redact`).

// Handlers return `Result<_, FullResponse>` to answer early with a ready error response; the
// response is built only on that path, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod auth;
mod browser;
pub mod control;
mod list;
mod patch;
mod redact;
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
pub use browser::Browser;

use crate::config::AdminRole;
use crate::listener::{self, json, json_value, FullResponse};
use crate::store::{Store, StoreError};
use redact::Audience;

/// The largest Admin API request body (APISIX: 1.5 MiB).
pub const MAX_BODY: usize = 1536 * 1024;

/// The Admin API's state.
pub struct Admin {
    /// Where resources live.
    pub store: Arc<dyn Store>,
    /// Who may call.
    pub auth: Auth,
    /// What a browser may do: Host names, CORS origins, content types of writes.
    pub browser: Browser,
    /// Why writes are refused, when the config comes from a file.
    pub read_only: Option<String>,
    /// The plugins configs may use.
    pub plugins: plugin_api::registry::Registry,
    /// The `Server` header of every answer (`apisix.enable_server_tokens`).
    pub server_header: HeaderValue,
    /// The runners `ext-plugin-*` configs may name (a write naming another is refused).
    pub runners: crate::runners::ext_plugin::KnownRunners,
}

/// A parsed Admin API request.
pub(crate) struct Call {
    method: Method,
    /// Path segments after `/apisix/admin/` (no empty ones).
    segments: Vec<String>,
    args: Vec<(String, String)>,
    body: Bytes,
    /// Who the answer is for: what it may show.
    audience: Audience,
}

impl Call {
    /// Whether the answer names the API version: APISIX's resource handler (resources, their
    /// schemas, plugin schemas) sets `X-API-VERSION`; its refusals of the key and its other
    /// endpoints (`plugins/list`, `plugins/reload`, `schema/validate`, `configs`) do not.
    fn answers_api_version(&self) -> bool {
        let segments: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        match segments.as_slice() {
            ["plugins", "list" | "reload", ..] | ["schema", "validate", ..] => false,
            ["plugins" | "schema", ..] => true,
            [first, ..] => model::Resource::from_segment(first).is_some(),
            [] => false,
        }
    }

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
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> FullResponse {
        let cors_origin = self.browser.cors_origin(req.headers());
        let mut reply = self.answer(req, peer, cors_origin.is_some()).await;
        let headers = reply.headers_mut();
        headers.insert(http::header::SERVER, self.server_header.clone());
        if self.browser.varies() {
            headers.insert(http::header::VARY, HeaderValue::from_static("Origin"));
        }
        // Only listed origins get CORS (APISIX answers `*` to every page).
        if let Some(origin) = cors_origin {
            headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            for (name, value) in [
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

    /// `cors`: the request's origin is allowed CORS.
    async fn answer(&self, req: Request<Incoming>, peer: SocketAddr, cors: bool) -> FullResponse {
        if !self.auth.address_allowed(peer.ip()) {
            tracing::warn!(client = %peer.ip(), "Admin API request from a client outside allow_admin refused");
            return error(
                StatusCode::FORBIDDEN,
                "403 Forbidden: your address is not allowed to use the Admin API",
            );
        }
        if let Err(refused) = self.browser.check_host(req.uri(), req.headers()) {
            tracing::warn!(client = %peer.ip(), ?refused, "Admin API request with a Host not allowed refused");
            return refused.reply();
        }
        let path = req.uri().path().to_owned();
        let Some(rest) = path.strip_prefix("/apisix/admin") else {
            return not_found();
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            return not_found();
        }
        let method = req.method().clone();
        if method == Method::HEAD && rest.trim_matches('/').is_empty() {
            return json(StatusCode::OK, "");
        }
        if method == Method::OPTIONS && self.browser.answers_preflight() {
            let mut reply = json(StatusCode::OK, "");
            if cors {
                let headers = reply.headers_mut();
                headers.insert(
                    http::header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("POST, GET, PUT, OPTIONS, DELETE, PATCH"),
                );
                // The headers the page asks for (a literal `*` does not cover `Content-Type` on
                // a request with credentials).
                let asked = req
                    .headers()
                    .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("*"));
                headers.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
            }
            return reply;
        }
        if let Err(refused) = self.browser.check_write(&method, req.headers()) {
            tracing::warn!(client = %peer.ip(), ?refused, "Admin API write from a browser context refused");
            return refused.reply();
        }
        let audience = match self.auth.check(&method, req.uri().query(), req.headers()) {
            Ok(AdminRole::Admin) => Audience::Admin,
            Ok(AdminRole::Viewer) => Audience::Reader,
            Err(refusal) => {
                return json_value(
                    StatusCode::UNAUTHORIZED,
                    &json!({"error_msg": "failed to check token", "description": refusal.description()}),
                )
            }
        };
        if !matches!(
            method,
            Method::GET | Method::PUT | Method::POST | Method::PATCH | Method::DELETE
        ) {
            return not_found();
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
            audience,
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
        let mut reply = resources::dispatch(self, &call).await;
        if call.answers_api_version() {
            reply.headers_mut().insert(
                HeaderName::from_static("x-api-version"),
                HeaderValue::from_static("v3"),
            );
        }
        reply
    }
}

/// `{"error_msg": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: &str) -> FullResponse {
    json_value(status, &json!({ "error_msg": message }))
}

/// APISIX's answer to a path it does not serve.
pub(crate) fn not_found() -> FullResponse {
    json(StatusCode::NOT_FOUND, r#"{"error_msg":"404 Not Found"}"#)
}

/// A store failure: 503 with the store's message.
pub(crate) fn unavailable(e: &StoreError) -> FullResponse {
    error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
}
