//! Traffic: limits, circuit breaking, splitting, request ids and buffering.

pub mod api_breaker;
pub mod limit_conn;
pub mod limit_count;
pub mod limit_req;
pub mod proxy_control;
pub mod request_id;
pub mod traffic_split;
