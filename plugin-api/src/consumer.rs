//! Consumers as the data plane sees them: who a request authenticates as.
//!
//! Each authentication plugin (`key-auth`, `basic-auth`, ...) names the identity a consumer's or
//! credential's config holds for it ([`crate::PluginKind::consumer_identity`]: key-auth's `key`,
//! basic-auth's `username`); the gateway's [`ConsumerIndex`] finds consumers by (plugin, identity). A consumer's
//! other plugins, merged over its group's, form its [`Chain`], run after authentication (APISIX's
//! precedence: consumer > consumer group > route).

use std::sync::Arc;

use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::StatusCode;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::chain::Chain;
use crate::{Flow, Reply, RequestCtx};

/// One consumer.
pub struct ConsumerEntry {
    /// The username.
    pub username: String,
    /// Its consumer group, if any.
    pub group_id: Option<String>,
    /// Its `custom_id` label (sent upstream as `X-Consumer-Custom-ID`).
    pub custom_id: Option<String>,
    /// Its non-authentication plugins, merged over its group's.
    pub chain: Chain,
}

/// A match of an authentication plugin's identity.
pub struct Authenticated {
    /// Who.
    pub consumer: Arc<ConsumerEntry>,
    /// The credential that matched, when not the consumer's own plugin config.
    pub credential_id: Option<String>,
    /// The plugin's config on the consumer or credential (e.g. basic-auth's password).
    pub conf: Value,
}

/// Who a request may authenticate as: the gateway's index of every consumer.
pub trait ConsumerIndex: Send + Sync {
    /// Who `identity` is for authentication plugin `plugin`.
    fn authenticate(&self, plugin: &str, identity: &str) -> Option<Arc<Authenticated>>;

    /// The consumer named `username` (the anonymous consumer of an auth plugin).
    fn named(&self, username: &str) -> Option<Arc<Authenticated>>;
}

/// Parses an authentication plugin's consumer (or credential) config: its schema first, for
/// APISIX's wording of a failure, then the plugin's own type.
///
/// # Errors
/// The first failure.
pub fn consumer_conf<T: DeserializeOwned + JsonSchema>(conf: &Value) -> Result<T, String> {
    crate::schema::checked_conf(conf)
}

/// How an authentication plugin ends: the request becomes the consumer it found, else the
/// route's anonymous consumer (if configured), and `hide` then removes the credentials (the
/// plugin's `hide_credentials`); else 401 `{"message": why}` with `WWW-Authenticate: challenge`.
pub fn admit(
    req: &mut RequestCtx<'_>,
    found: Result<Arc<Authenticated>, &str>,
    anonymous: Option<&str>,
    challenge: &HeaderValue,
    hide: impl FnOnce(&mut RequestCtx<'_>),
) -> Flow {
    let refuse = |message: &str| {
        let mut reply = Reply::message(StatusCode::UNAUTHORIZED, message);
        reply.headers.insert(WWW_AUTHENTICATE, challenge.clone());
        Flow::Respond(reply)
    };
    let found = match (found, anonymous) {
        (Ok(found), _) => found,
        (Err(_), Some(name)) => match req.consumers.named(name) {
            Some(found) => found,
            None => return refuse("Invalid user authorization"),
        },
        (Err(why), None) => return refuse(why),
    };
    hide(req);
    *req.consumer = Some(found);
    Flow::Continue
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
