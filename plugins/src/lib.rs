//! Ferrogate's built-in plugins, in folders by APISIX's categories, written against the plugin
//! API (`plugin_api`) like a plugin in a user's crate. [`builtin`] lists their kinds; a gateway
//! builds its registry from them (with its own kinds and a user's).

pub mod auth;
pub mod observability;
pub mod security;
pub mod support;
pub mod traffic;
pub mod transform;

use std::sync::Arc;

use plugin_api::PluginKind;

/// What a node's `config.yaml` tells the built-in plugins (APISIX's plugins read these from
/// its local config), given to their kinds when a gateway makes its registry.
#[derive(Debug, Clone, Default)]
pub struct NodeSettings {
    /// The port `redirect`'s `http_to_https` sends clients to (`None`: https's default).
    pub https_port: Option<u16>,
}

/// The kinds of the built-in plugins, for a node without settings of theirs ([`builtin_for`]).
pub fn builtin() -> Vec<Arc<dyn PluginKind>> {
    builtin_for(&NodeSettings::default())
}

/// The kinds of the built-in plugins on a node with `node`'s settings. Each call makes new
/// kinds: state a kind shares between its instances (limit-count's counters) belongs to one
/// gateway.
pub fn builtin_for(node: &NodeSettings) -> Vec<Arc<dyn PluginKind>> {
    vec![
        Arc::new(security::real_ip::RealIp),
        Arc::new(traffic::proxy_control::ProxyControl),
        Arc::new(traffic::request_id::RequestId),
        Arc::new(transform::fault_injection::FaultInjection),
        Arc::new(transform::mocking::Mocking),
        Arc::new(security::cors::Cors),
        Arc::new(security::ip_restriction::IpRestriction),
        Arc::new(security::ua_restriction::UaRestriction),
        Arc::new(security::referer_restriction::RefererRestriction),
        Arc::new(security::csrf::Csrf),
        Arc::new(security::uri_blocker::UriBlocker),
        Arc::new(auth::hmac_auth::HmacAuth),
        Arc::new(auth::basic_auth::BasicAuth),
        Arc::new(auth::jwt_auth::JwtAuth),
        Arc::new(auth::key_auth::KeyAuth),
        Arc::new(security::consumer_restriction::ConsumerRestriction),
        Arc::new(transform::proxy_rewrite::ProxyRewrite),
        Arc::new(traffic::api_breaker::ApiBreaker),
        Arc::new(traffic::limit_conn::LimitConn),
        Arc::new(traffic::limit_count::LimitCount::default()),
        Arc::new(traffic::limit_req::LimitReq),
        Arc::new(traffic::traffic_split::TrafficSplit),
        Arc::new(transform::redirect::Redirect::new(node.https_port)),
        Arc::new(transform::response_rewrite::ResponseRewrite),
        Arc::new(transform::gzip::Gzip),
        Arc::new(transform::echo::Echo),
        Arc::new(observability::http_logger::HttpLogger),
        Arc::new(observability::file_logger::FileLogger),
    ]
}

#[cfg(test)]
mod tests {
    use plugin_api::registry::Registry;

    #[test]
    fn names_are_unique_and_found() {
        let registry = Registry::new(super::builtin());
        let kinds = registry.all();
        for (i, k) in kinds.iter().enumerate() {
            assert!(
                kinds[..i].iter().all(|o| o.name() != k.name()),
                "{} twice",
                k.name()
            );
            assert_eq!(registry.kind(k.name()).map(|f| f.name()), Some(k.name()));
        }
        assert!(registry.kind("no-such-plugin").is_none());
        assert!(kinds.windows(2).all(|w| w[0].priority() >= w[1].priority()));
    }

    /// The folders of plugins; shared code lives in `support/`.
    const CATEGORIES: [&str; 5] = ["auth", "observability", "security", "traffic", "transform"];

    /// The module names `super::` can reach from `line` (`super::a` or `super::{a, b::c}`).
    fn super_paths(line: &str) -> Vec<&str> {
        let mut names = Vec::new();
        for (at, _) in line.match_indices("super::") {
            let rest = &line[at + "super::".len()..];
            let list = match rest.strip_prefix('{') {
                Some(inner) => &inner[..inner.find('}').unwrap_or(inner.len())],
                None => rest,
            };
            for item in list.split(',') {
                let item = item.trim();
                let end = item
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(item.len());
                names.push(&item[..end]);
                if !rest.starts_with('{') {
                    break;
                }
            }
        }
        names
    }

    #[test]
    fn no_plugin_imports_another() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for category in CATEGORIES {
            let dir = std::fs::read_dir(src.join(category)).expect("plugin folder");
            for entry in dir {
                let path = entry.expect("folder entry").path();
                if path.extension().is_some_and(|e| e == "rs") {
                    files.push((category, path));
                }
            }
        }
        let modules: Vec<String> = files
            .iter()
            .filter_map(|(_, path)| Some(path.file_stem()?.to_str()?.to_owned()))
            .filter(|stem| stem != "mod")
            .collect();
        let mut found = Vec::new();
        for (_, path) in &files {
            let text = std::fs::read_to_string(path).expect("readable source");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                let other_plugin = super_paths(code)
                    .iter()
                    .any(|name| modules.iter().any(|m| m == name));
                let by_crate_path = CATEGORIES
                    .iter()
                    .any(|c| code.contains(&format!("crate::{c}::")));
                if other_plugin || by_crate_path {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(
            found.is_empty(),
            "plugins import other plugins (move shared code to support/):\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn super_paths_are_read() {
        assert_eq!(super_paths("use super::key_auth::hide;"), ["key_auth"]);
        assert_eq!(super_paths("use super::{a, b::c};"), ["a", "b"]);
        assert_eq!(super_paths("use super::*;"), [""]);
        assert!(super_paths("use crate::support::query;").is_empty());
    }
}
