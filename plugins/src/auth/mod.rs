//! Authentication: who a request is (the consumer it authenticates as).

pub mod basic_auth;
pub mod hmac_auth;
pub mod jwt_auth;
pub mod key_auth;
