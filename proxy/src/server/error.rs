//! Every failure the gateway makes itself, and the one place it becomes a response: what went
//! wrong ([`GatewayError`]), whose doing it is ([`Fault`]), whether the same request may succeed
//! when sent again, and APISIX's answer for it. Bodies are JSON with
//! `Content-Type: application/json`, in APISIX's `{"error_msg": ...}` shape, ending with a newline
//! as APISIX's.

use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use http::{Response, StatusCode};

use super::body::ResponseBody;
use crate::upstream::body::ClientFault;
use crate::upstream::FailKind;

pub use plugin_api::Fault;

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
    /// A plugin failed; the client gets this status, with no body (as APISIX's plugins exit).
    Plugin(StatusCode),
}

impl GatewayError {
    /// Whose doing this failure is.
    pub fn fault(self) -> Fault {
        match self {
            GatewayError::BadPath(_)
            | GatewayError::BadHost(_)
            | GatewayError::ClientCertRequired
            | GatewayError::HeaderTooLarge
            | GatewayError::RouteNotFound
            | GatewayError::Client(_) => Fault::Client,
            GatewayError::Upstream(_) => Fault::Upstream,
            GatewayError::Plugin(_) => Fault::Plugin,
            GatewayError::ServiceNotFound
            | GatewayError::NoUpstream
            | GatewayError::UpstreamNotFound => Fault::Internal,
        }
    }

    /// Whether the same request, sent again unchanged, may succeed: the failure is passing (an
    /// upstream down or slow, a body that came too slowly, too many bodies streaming, a plugin's
    /// server error), not in the request or the configuration.
    pub fn retry_allowed(self) -> bool {
        match self {
            GatewayError::Plugin(status) => status.is_server_error(),
            GatewayError::Upstream(_)
            | GatewayError::Client(ClientFault::BodyTimeout | ClientFault::TooManyStreams) => true,
            GatewayError::BadPath(_)
            | GatewayError::BadHost(_)
            | GatewayError::ClientCertRequired
            | GatewayError::HeaderTooLarge
            | GatewayError::RouteNotFound
            | GatewayError::ServiceNotFound
            | GatewayError::NoUpstream
            | GatewayError::UpstreamNotFound
            | GatewayError::Client(ClientFault::BodyBroken | ClientFault::BodyTooLarge) => false,
        }
    }

    /// The status of this failure's response.
    pub fn status(self) -> StatusCode {
        self.status_and_body().0
    }

    /// The status and JSON body for this failure (a plugin's has none).
    fn status_and_body(self) -> (StatusCode, &'static str) {
        match self {
            GatewayError::Plugin(status) => (status, ""),
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

    /// The response for this failure, the only place one is made (the `Server` header is added
    /// by the pipeline, as to every response).
    pub fn response(self) -> Response<ResponseBody> {
        let (status, body) = self.status_and_body();
        if body.is_empty() {
            let mut response = Response::new(ResponseBody::fixed(bytes::Bytes::new()));
            *response.status_mut() = status;
            return response;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_and_retries() {
        let cases = [
            (GatewayError::RouteNotFound, Fault::Client, false),
            (GatewayError::HeaderTooLarge, Fault::Client, false),
            (
                GatewayError::Client(ClientFault::BodyTimeout),
                Fault::Client,
                true,
            ),
            (
                GatewayError::Upstream(FailKind::Connect),
                Fault::Upstream,
                true,
            ),
            (GatewayError::NoUpstream, Fault::Internal, false),
            (
                GatewayError::Plugin(StatusCode::SERVICE_UNAVAILABLE),
                Fault::Plugin,
                true,
            ),
            (
                GatewayError::Plugin(StatusCode::FORBIDDEN),
                Fault::Plugin,
                false,
            ),
        ];
        for (error, fault, retry) in cases {
            assert_eq!(error.fault(), fault, "{error:?}");
            assert_eq!(error.retry_allowed(), retry, "{error:?}");
        }
    }

    #[tokio::test]
    async fn responses() {
        let not_found = GatewayError::RouteNotFound.response();
        assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            not_found
                .headers()
                .get(CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
            Some(&b"application/json"[..])
        );
        assert!(not_found.headers().get(CONNECTION).is_none());
        let slow = GatewayError::Client(ClientFault::BodyTimeout).response();
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            slow.headers().get(CONNECTION).map(HeaderValue::as_bytes),
            Some(&b"close"[..]),
            "the body was not read to its end"
        );
        let failed = GatewayError::Plugin(StatusCode::BAD_GATEWAY).response();
        assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
        assert!(failed.headers().is_empty(), "a bare status");
    }
}
