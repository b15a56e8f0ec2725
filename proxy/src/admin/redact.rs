//! Secrets in resources, and who is shown them. The one place that decides what leaves the
//! gateway when a resource is shown, by the Admin API and by the control API.
//!
//! - SSL private keys (`ssls`: `key`, `keys`) are never shown to anyone, as in APISIX.
//! - An admin key (or anyone, with `admin_key_required: false` on loopback) sees every other
//!   field, as in APISIX: scripts read a consumer, change it and write it back whole.
//! - A viewer key and the control API (which has no authentication) never see a secret: every
//!   field named in [`SECRET_FIELDS`], at any depth (upstream `tls.client_key`, inline upstreams
//!   of routes, services and `traffic-split`, `basic-auth` `password`, `jwt-auth` `secret`,
//!   `hmac-auth` `secret_key`, `http-logger` `auth_header`), and the `key` of the plugins in
//!   [`SECRET_KEY_PLUGINS`], is removed.

use serde_json::Value;

use model::Resource;

/// Who a resource is shown to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// An admin key: every field but SSL private keys.
    Admin,
    /// A viewer key or the control API: no secret at all.
    Reader,
}

/// Field names that hold a secret wherever they appear in a resource.
const SECRET_FIELDS: &[&str] = &[
    "client_key",
    "password",
    "secret",
    "secret_key",
    "auth_header",
];

/// Plugins whose `key` is a secret (elsewhere `key` names a thing: `limit-*`'s key, `jwt-auth`'s
/// consumer key, a header in `api-breaker`).
const SECRET_KEY_PLUGINS: &[&str] = &["key-auth", "csrf"];

/// Removes from `value` (a `resource` as stored) what `audience` may not see.
pub fn redact(resource: Resource, value: &mut Value, audience: Audience) {
    if resource == Resource::Ssl {
        if let Value::Object(map) = value {
            map.remove("key");
            map.remove("keys");
        }
    }
    if audience == Audience::Admin {
        return;
    }
    remove_secret_fields(value);
    if let Some(Value::Object(plugins)) = value.get_mut("plugins") {
        for (name, conf) in plugins.iter_mut() {
            if SECRET_KEY_PLUGINS.contains(&name.as_str()) {
                if let Value::Object(conf) = conf {
                    conf.remove("key");
                }
            }
        }
    }
}

fn remove_secret_fields(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !SECRET_FIELDS.contains(&k.as_str()));
            map.values_mut().for_each(remove_secret_fields);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_secret_fields),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn plugins_named_here_exist() {
        for name in SECRET_KEY_PLUGINS {
            assert!(
                plugin_api::registry::Registry::new(plugins::builtin())
                    .all()
                    .iter()
                    .any(|k| k.name() == *name),
                "{name}"
            );
        }
    }

    #[test]
    fn readers_see_no_secret_admins_see_all_but_ssl_keys() {
        let route = json!({
            "uri": "/a",
            "upstream": {"nodes": {"127.0.0.1:1": 1}, "tls": {"client_cert": "CERT", "client_key": "PRIVATE"}},
            "plugins": {
                "key-auth": {"key": "K1", "header": "apikey"},
                "limit-count": {"count": 1, "time_window": 1, "key": "remote_addr"},
                "http-logger": {"uri": "http://log", "auth_header": "Bearer T"},
                "traffic-split": {"rules": [{"weighted_upstreams": [{"upstream": {"tls": {"client_key": "P2"}}}]}]}
            }
        });
        let mut admin = route.clone();
        redact(Resource::Route, &mut admin, Audience::Admin);
        assert_eq!(admin, route, "admins see everything on a route");
        let mut reader = route.clone();
        redact(Resource::Route, &mut reader, Audience::Reader);
        let text = reader.to_string();
        for secret in ["PRIVATE", "K1", "Bearer T", "P2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(reader["upstream"]["tls"]["client_cert"], "CERT");
        assert_eq!(reader["plugins"]["limit-count"]["key"], "remote_addr");
        assert_eq!(reader["plugins"]["key-auth"]["header"], "apikey");

        let consumer = json!({"username": "jack", "plugins": {
            "basic-auth": {"username": "jack", "password": "PW"},
            "jwt-auth": {"key": "jack-key", "secret": "JS"},
            "hmac-auth": {"key_id": "id", "secret_key": "HS"}
        }});
        let mut reader = consumer.clone();
        redact(Resource::Consumer, &mut reader, Audience::Reader);
        let text = reader.to_string();
        for secret in ["PW", "JS", "HS"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(reader["plugins"]["jwt-auth"]["key"], "jack-key");

        let ssl = json!({"cert": "C", "key": "SK", "keys": ["SK2"], "snis": ["a"]});
        for audience in [Audience::Admin, Audience::Reader] {
            let mut shown = ssl.clone();
            redact(Resource::Ssl, &mut shown, audience);
            assert_eq!(shown, json!({"cert": "C", "snis": ["a"]}));
        }
    }
}
