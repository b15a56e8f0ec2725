//! Shared support of the built-in plugins (no plugin imports another).

pub mod headers;
pub mod limit_key;
pub mod log_entry;
pub mod query;
pub mod regex;
pub mod regex_uri;
pub mod schema;
