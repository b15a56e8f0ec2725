//! Consumers as the data plane sees them: who a request authenticates as.
//!
//! Each authentication plugin (`key-auth`, `basic-auth`, ...) names the identity a consumer's or
//! credential's config holds for it ([`super::PluginKind::consumer_identity`]: key-auth's `key`,
//! basic-auth's `username`); [`Consumers`] indexes consumers by (plugin, identity). A consumer's
//! other plugins, merged over its group's, form its [`Chain`], run after authentication (APISIX's
//! precedence: consumer > consumer group > route).

use std::collections::HashMap;
use std::sync::Arc;

use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::StatusCode;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::chain::Chain;
use super::{parse_conf, registry, BuildContext, Flow, Reply, RequestCtx};
use crate::model::{jsonschema, Consumer, ConsumerGroup, Credential};

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

/// Every consumer, by username and by authentication identity.
#[derive(Default)]
pub struct Consumers {
    by_name: HashMap<String, Arc<ConsumerEntry>>,
    by_identity: HashMap<(String, String), Arc<Authenticated>>,
}

impl Consumers {
    /// Indexes consumers, their credentials (`(username, credential id, credential)`) and groups.
    /// A consumer whose group is missing keeps its own plugins only (logged).
    pub fn build(
        consumers: &[Arc<Consumer>],
        credentials: &[(String, String, Arc<Credential>)],
        groups: &[Arc<ConsumerGroup>],
        base: &BuildContext,
    ) -> Consumers {
        let groups: HashMap<&str, &Arc<ConsumerGroup>> = groups
            .iter()
            .filter_map(|g| g.id.as_ref().map(|id| (id.0.as_str(), g)))
            .collect();
        let mut index = Consumers::default();
        for consumer in consumers {
            let group_id = consumer.group_id.as_ref().map(|g| g.0.clone());
            let group = group_id.as_deref().and_then(|g| groups.get(g));
            if let (Some(id), None) = (&group_id, group) {
                tracing::error!(consumer = %consumer.username, group = %id, "consumer group not found; its plugins are not applied");
            }
            let mut merged = Map::new();
            let layers = [group.map(|g| &g.plugins), consumer.plugins.as_ref()];
            for (name, conf) in layers.into_iter().flatten().flatten() {
                if !is_auth(name) {
                    merged.insert(name.clone(), conf.clone());
                }
            }
            let entry = Arc::new(ConsumerEntry {
                username: consumer.username.clone(),
                group_id,
                custom_id: consumer
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("custom_id").cloned()),
                chain: Chain::build(
                    &merged,
                    &BuildContext {
                        owner: format!("consumer#{}", consumer.username),
                        ..base.clone()
                    },
                ),
            });
            for (name, conf) in consumer.plugins.iter().flatten() {
                index.add(name, conf, &entry, None);
            }
            index.by_name.insert(consumer.username.clone(), entry);
        }
        for (username, id, credential) in credentials {
            let Some(entry) = index.by_name.get(username).cloned() else {
                continue;
            };
            for (name, conf) in credential.plugins.iter().flatten() {
                index.add(name, conf, &entry, Some(id.clone()));
            }
        }
        index
    }

    fn add(
        &mut self,
        plugin: &str,
        conf: &Value,
        entry: &Arc<ConsumerEntry>,
        credential: Option<String>,
    ) {
        let Some(Ok(identity)) = registry::kind(plugin).and_then(|k| k.consumer_identity(conf))
        else {
            return;
        };
        if has_secret_ref(conf) {
            // References are not resolved here; their text must never pass as the secret.
            tracing::error!(plugin, consumer = %entry.username, "a secret reference in an authentication config is not resolved; the config is not used");
            return;
        }
        let found = Arc::new(Authenticated {
            consumer: entry.clone(),
            credential_id: credential,
            conf: conf.clone(),
        });
        if self
            .by_identity
            .insert((plugin.to_owned(), identity), found)
            .is_some()
        {
            tracing::error!(plugin, consumer = %entry.username, "two consumers share one identity; the later one wins");
        }
    }

    /// Who `identity` is for authentication plugin `plugin`.
    pub fn authenticate(&self, plugin: &str, identity: &str) -> Option<Arc<Authenticated>> {
        self.by_identity
            .get(&(plugin.to_owned(), identity.to_owned()))
            .cloned()
    }

    /// The consumer named `username` (the anonymous consumer of an auth plugin).
    pub fn named(&self, username: &str) -> Option<Arc<Authenticated>> {
        self.by_name.get(username).map(|c| {
            Arc::new(Authenticated {
                consumer: c.clone(),
                credential_id: None,
                conf: Value::Null,
            })
        })
    }
}

/// Whether a config holds a secret reference (`$env://...`, `$secret://...`) as a value.
fn has_secret_ref(conf: &Value) -> bool {
    conf.as_object().into_iter().flatten().any(|(_, v)| {
        v.as_str()
            .is_some_and(|s| s.starts_with("$env://") || s.starts_with("$secret://"))
    })
}

/// Parses an authentication plugin's consumer (or credential) config: its schema first, for
/// APISIX's wording of a failure, then the plugin's own type.
///
/// # Errors
/// The first failure.
pub fn consumer_conf<T: DeserializeOwned + JsonSchema>(conf: &Value) -> Result<T, String> {
    let schema = jsonschema::from_rust_types(&crate::model::schema_of::<T>());
    jsonschema::check(&schema, conf)?;
    parse_conf(conf)
}

/// Whether `name` is an authentication plugin.
pub fn is_auth(name: &str) -> bool {
    registry::kind(name).is_some_and(|k| k.is_auth())
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
