//! Observability: logging finished requests.

pub mod file_logger;
pub mod http_logger;
