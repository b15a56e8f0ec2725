//! Referential integrity: a write may only reference objects that exist (APISIX's 400
//! `failed to fetch upstream info by upstream id [X], response code: 404`), and an object still
//! referenced may not be deleted without `?force=true` (`can not delete this upstream, route [1]
//! is still using it now`).

use http::StatusCode;
use serde_json::{Map, Value};

use super::{error, unavailable, Admin};
use crate::listener::FullResponse;
use model::Resource;
use plugin_api::meta;
use plugin_api::registry::Registry;
use plugin_api::upstream::UpstreamRef;

/// The references a value of `resource` holds: (field, referenced resource).
fn references(resource: Resource) -> &'static [(&'static str, Resource)] {
    match resource {
        Resource::Route => &[
            ("upstream_id", Resource::Upstream),
            ("service_id", Resource::Service),
            ("plugin_config_id", Resource::PluginConfig),
        ],
        Resource::Service => &[("upstream_id", Resource::Upstream)],
        Resource::Consumer => &[("group_id", Resource::ConsumerGroup)],
        _ => &[],
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks that everything `value` (to be stored at `key`) references exists, that global-rule
/// plugins and authentication identities are unique.
pub(super) async fn check_write(
    admin: &Admin,
    resource: Resource,
    key: &str,
    id: &str,
    value: &Map<String, Value>,
) -> Result<(), FullResponse> {
    for (field, target) in references(resource) {
        let Some(ref_id) = value.get(*field).and_then(text) else {
            continue;
        };
        let key = format!("{}/{ref_id}", target.segment());
        match admin.store.get(&key).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let noun = target.noun();
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "failed to fetch {noun} info by {noun} id [{ref_id}], response code: 404"
                    ),
                ));
            }
            Err(e) => return Err(unavailable(&e)),
        }
    }
    let tls_cert = value
        .get("upstream")
        .unwrap_or(&Value::Null)
        .get("tls")
        .or_else(|| {
            (resource == Resource::Upstream)
                .then(|| value.get("tls"))
                .flatten()
        })
        .and_then(|t| t.get("client_cert_id"))
        .and_then(text);
    if let Some(cert_id) = tls_cert {
        let found = admin
            .store
            .get(&format!("ssls/{cert_id}"))
            .await
            .map_err(|e| unavailable(&e))?;
        let is_client = found
            .and_then(|e| serde_json::from_slice::<Value>(&e.value).ok())
            .map(|v| v.get("type").and_then(Value::as_str) == Some("client"));
        match is_client {
            Some(true) => {}
            Some(false) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    &format!("failed to fetch ssl info by ssl id [{cert_id}], wrong ssl type"),
                ))
            }
            None => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    &format!("failed to fetch ssl info by ssl id [{cert_id}], response code: 404"),
                ))
            }
        }
    }
    if matches!(resource, Resource::Consumer | Resource::Credential) {
        unique_identities(admin, key, value).await?;
    }
    if resource == Resource::GlobalRule {
        let listing = admin
            .store
            .list("global_rules/")
            .await
            .map_err(|e| unavailable(&e))?;
        let plugins = value.get("plugins").and_then(Value::as_object);
        for entry in &listing.entries {
            let other_id = &entry.key["global_rules/".len()..];
            if other_id == id {
                continue;
            }
            let Ok(other) = serde_json::from_slice::<Value>(&entry.value) else {
                continue;
            };
            let theirs = other.get("plugins").and_then(Value::as_object);
            if let Some(name) = plugins
                .into_iter()
                .flat_map(|p| p.keys())
                .find(|name| theirs.is_some_and(|t| t.contains_key(*name)))
            {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    &format!("plugin '{name}' already exists in global rule with id '{other_id}'"),
                ));
            }
        }
    }
    Ok(())
}

/// Authentication identities (key-auth keys, basic-auth usernames, ...) are unique across every
/// consumer and credential (APISIX ≥ 3.18 refuses duplicates at write time).
async fn unique_identities(
    admin: &Admin,
    key: &str,
    value: &Map<String, Value>,
) -> Result<(), FullResponse> {
    let identities = |plugins: Option<&Map<String, Value>>| -> Vec<(String, String)> {
        plugins
            .into_iter()
            .flatten()
            .filter_map(|(name, conf)| {
                let identity = admin.plugins.kind(name)?.consumer_identity(conf)?.ok()?;
                Some((name.clone(), identity))
            })
            .collect()
    };
    let mine = identities(value.get("plugins").and_then(Value::as_object));
    if mine.is_empty() {
        return Ok(());
    }
    let listing = admin
        .store
        .list("consumers/")
        .await
        .map_err(|e| unavailable(&e))?;
    for entry in &listing.entries {
        // Replacing an object does not conflict with its old self, nor a consumer with its
        // own credentials (APISIX's `is_self`).
        let own_credential = !key.contains("/credentials/")
            && entry
                .key
                .strip_prefix(key)
                .is_some_and(|rest| rest.starts_with("/credentials/"));
        if entry.key == key || own_credential {
            continue;
        }
        let Ok(other) = serde_json::from_slice::<Value>(&entry.value) else {
            continue;
        };
        let theirs = identities(other.get("plugins").and_then(Value::as_object));
        if let Some((plugin, _)) = mine.iter().find(|m| theirs.contains(m)) {
            // APISIX's words: the field that must be unique, then who holds it.
            let field = match plugin.as_str() {
                "basic-auth" => "username",
                "hmac-auth" => "key_id",
                _ => "key",
            };
            let path = entry.key.strip_prefix("consumers/").unwrap_or(&entry.key);
            let owner = match path.split_once("/credentials/") {
                Some((consumer, credential)) => {
                    format!("credential: {credential} of consumer: {consumer}")
                }
                None => format!("consumer: {path}"),
            };
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("duplicate {field} of plugin {plugin} found with {owner}"),
            ));
        }
    }
    Ok(())
}

/// Whether a plugin of `value` may send requests to upstream `id`: the stored upstreams its
/// kind declares for its config ([`plugin_api::Kind::upstreams`]).
fn plugin_uses(registry: &Registry, value: &Value, id: &str) -> bool {
    let Some(plugins) = value.get("plugins").and_then(Value::as_object) else {
        return false;
    };
    plugins.iter().any(|(name, conf)| {
        let (Some(kind), Ok((conf, _))) = (registry.kind(name), meta::split(conf)) else {
            return false;
        };
        kind.upstreams_of(&conf)
            .refs()
            .iter()
            .any(|r| matches!(r, UpstreamRef::Id(uid) if uid.0 == id))
    })
}

/// Checks that nothing references `resource` `id` before it is deleted.
pub(super) async fn check_delete(
    admin: &Admin,
    resource: Resource,
    id: &str,
) -> Result<(), FullResponse> {
    let (users, what): (&[Resource], &str) = match resource {
        Resource::Upstream => (&[Resource::Route, Resource::Service], "this upstream"),
        Resource::Service => (&[Resource::Route], "this service directly"),
        Resource::PluginConfig => (&[Resource::Route], "this plugin config"),
        Resource::ConsumerGroup => (&[Resource::Consumer], "this consumer group"),
        _ => return Ok(()),
    };
    // Upstreams are also referenced by plugins that may send requests to them, in any object
    // with plugins; APISIX checks each kind of object in this order, the plugin before the
    // object's own `upstream_id`.
    let plugin_users: &[(Resource, &str)] = if resource == Resource::Upstream {
        &[
            (Resource::Route, "route"),
            (Resource::Service, "service"),
            (Resource::PluginConfig, "plugin_config"),
            (Resource::Consumer, "consumer"),
            (Resource::ConsumerGroup, "consumer_group"),
            (Resource::GlobalRule, "global_rules"),
        ]
    } else {
        &[]
    };
    let mut all_users: Vec<(Resource, Option<&str>)> =
        plugin_users.iter().map(|(r, n)| (*r, Some(*n))).collect();
    for user in users {
        if !all_users.iter().any(|(r, _)| r == user) {
            all_users.push((*user, None));
        }
    }
    for (user, plugin_user) in &all_users {
        let field = references(*user)
            .iter()
            .find(|(_, t)| *t == resource)
            .map(|(f, _)| *f);
        let listing = admin
            .store
            .list(&format!("{}/", user.segment()))
            .await
            .map_err(|e| unavailable(&e))?;
        for entry in &listing.entries {
            let user_id = &entry.key[user.segment().len() + 1..];
            if user_id.contains('/') {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<Value>(&entry.value) else {
                continue;
            };
            if let Some(name) = plugin_user {
                if plugin_uses(&admin.plugins, &value, id) {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "can not delete {what}, plugin in {name} [{user_id}] is still using it now"
                        ),
                    ));
                }
            }
            let Some(field) = field else {
                continue;
            };
            if value.get(field).and_then(text).as_deref() == Some(id) {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "can not delete {what}, {} [{user_id}] is still using it now",
                        user.noun()
                    ),
                ));
            }
        }
    }
    Ok(())
}
