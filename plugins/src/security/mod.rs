//! Security: which requests may pass (addresses, agents, referers, consumers, CSRF, CORS, blocked URIs) and the client address they come from.

pub mod consumer_restriction;
pub mod cors;
pub mod csrf;
pub mod ip_restriction;
pub mod real_ip;
pub mod referer_restriction;
pub mod ua_restriction;
pub mod uri_blocker;
