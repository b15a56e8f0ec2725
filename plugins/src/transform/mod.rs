//! Transformation: changing the request or the response, or answering in place of the upstream.

pub mod echo;
pub mod fault_injection;
pub mod gzip;
pub mod mocking;
pub mod proxy_rewrite;
pub mod redirect;
pub mod response_rewrite;
