//! Every response the gateway produces itself for a failure, in one place. Bodies are JSON with
//! `Content-Type: application/json`, in APISIX's `{"error_msg": ...}` shape, ending with a newline as APISIX's.

use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use http::{Response, StatusCode};

use super::body::ResponseBody;
use crate::upstream::body::ClientFault;
use crate::upstream::FailKind;

/// Whose doing a failure is: what may be counted against an upstream (circuit breakers,
/// passive health checks, retries, the upstream status of the access log) is decided from this,
/// never from the status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client's request is at fault (malformed, too large, too slow).
    Client,
    /// The upstream failed (no node, connect error, timeout, broken connection).
    Upstream,
    /// The gateway's configuration cannot serve the request (no route, no upstream defined).
    Gateway,
}

/// A failure the gateway answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayError {
    /// The request path cannot be normalised.
    BadPath(super::path::PathError),
    /// The request's Host is missing (HTTP/1.1), repeated or not `name[:port]`.
    BadHost(super::host::HostError),
    /// The path needs a client certificate the TLS connection did not show.
    ClientCertRequired,
    /// The request head is larger than `max_header_size`.
    HeaderTooLarge,
    /// No route matches.
    RouteNotFound,
    /// The route's service does not exist.
    ServiceNotFound,
    /// Neither route nor service has an upstream.
    NoUpstream,
    /// The referenced upstream does not exist.
    UpstreamNotFound,
    /// Every try failed.
    Upstream(FailKind),
    /// The client's request body failed or is refused.
    Client(ClientFault),
}

impl GatewayError {
    /// Whose doing this failure is.
    pub fn fault(self) -> Fault {
        match self {
            GatewayError::BadPath(_)
            | GatewayError::BadHost(_)
            | GatewayError::ClientCertRequired
            | GatewayError::HeaderTooLarge
            | GatewayError::Client(_) => Fault::Client,
            GatewayError::Upstream(_) => Fault::Upstream,
            GatewayError::RouteNotFound
            | GatewayError::ServiceNotFound
            | GatewayError::NoUpstream
            | GatewayError::UpstreamNotFound => Fault::Gateway,
        }
    }

    /// The status and JSON body for this failure.
    pub fn status_and_body(self) -> (StatusCode, &'static str) {
        match self {
            GatewayError::BadPath(_) => (
                StatusCode::BAD_REQUEST,
                r#"{"error_msg":"400 Bad Request: invalid request path"}"#,
            ),
            GatewayError::BadHost(_) => (
                StatusCode::BAD_REQUEST,
                r#"{"error_msg":"400 Bad Request: invalid Host header"}"#,
            ),
            GatewayError::ClientCertRequired => (
                StatusCode::BAD_REQUEST,
                r#"{"error_msg":"client certificate required"}"#,
            ),
            GatewayError::HeaderTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                r#"{"error_msg":"431 Request Header Fields Too Large"}"#,
            ),
            GatewayError::RouteNotFound => (
                StatusCode::NOT_FOUND,
                r#"{"error_msg":"404 Route Not Found"}"#,
            ),
            GatewayError::ServiceNotFound => (
                StatusCode::NOT_FOUND,
                r#"{"error_msg":"404 Service Not Found"}"#,
            ),
            GatewayError::NoUpstream => (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error_msg":"missing upstream configuration in Route or Service"}"#,
            ),
            GatewayError::UpstreamNotFound => (
                StatusCode::BAD_GATEWAY,
                r#"{"error_msg":"failed to find upstream by id"}"#,
            ),
            GatewayError::Upstream(FailKind::NoNode) => (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error_msg":"no valid upstream node"}"#,
            ),
            GatewayError::Upstream(FailKind::Resolve) => (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error_msg":"failed to resolve the upstream node's host"}"#,
            ),
            GatewayError::Upstream(FailKind::Timeout | FailKind::ConnectTimeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                r#"{"error_msg":"504 Gateway Time-out"}"#,
            ),
            GatewayError::Upstream(
                FailKind::Connect | FailKind::Broken | FailKind::RetryDeadline,
            ) => (
                StatusCode::BAD_GATEWAY,
                r#"{"error_msg":"502 Bad Gateway"}"#,
            ),
            GatewayError::Client(ClientFault::BodyBroken) => (
                StatusCode::BAD_REQUEST,
                r#"{"error_msg":"400 Bad Request: invalid request body"}"#,
            ),
            GatewayError::Client(ClientFault::BodyTimeout) => (
                StatusCode::REQUEST_TIMEOUT,
                r#"{"error_msg":"408 Request Time-out"}"#,
            ),
            GatewayError::Client(ClientFault::BodyTooLarge) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"error_msg":"413 Request Entity Too Large"}"#,
            ),
            GatewayError::Client(ClientFault::TooManyStreams) => (
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"error_msg":"429 Too Many Requests: too many request bodies streaming from this client"}"#,
            ),
        }
    }

    /// The response for this failure (the `Server` header is added by the pipeline).
    pub fn response(self) -> Response<ResponseBody> {
        let (status, body) = self.status_and_body();
        let mut response = Response::new(ResponseBody::fixed(bytes::Bytes::from(
            [body, "\n"].concat(),
        )));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let GatewayError::Client(_) = self {
            // The request body was not read to its end (or its framing is broken): the
            // connection cannot carry another request (hyper drops the header on HTTP/2).
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
