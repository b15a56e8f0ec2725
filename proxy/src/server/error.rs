//! Every response the gateway produces itself for a failure, in one place. Bodies are JSON with
//! `Content-Type: application/json`, in APISIX's `{"error_msg": ...}` shape, ending with a newline as APISIX's.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};

use super::body::ResponseBody;
use crate::upstream::FailKind;

/// A failure the gateway answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayError {
    /// The request path cannot be normalised.
    BadPath(super::path::PathError),
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
}

impl GatewayError {
    /// The status and JSON body for this failure.
    pub fn status_and_body(self) -> (StatusCode, &'static str) {
        match self {
            GatewayError::BadPath(_) => (
                StatusCode::BAD_REQUEST,
                r#"{"error_msg":"400 Bad Request: invalid request path"}"#,
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
            GatewayError::Upstream(FailKind::Timeout | FailKind::ConnectTimeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                r#"{"error_msg":"504 Gateway Timeout"}"#,
            ),
            GatewayError::Upstream(
                FailKind::Connect | FailKind::Broken | FailKind::RetryDeadline,
            ) => (
                StatusCode::BAD_GATEWAY,
                r#"{"error_msg":"502 Bad Gateway"}"#,
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
        response
    }
}
