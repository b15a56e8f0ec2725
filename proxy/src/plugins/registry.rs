//! The built-in plugin kinds, by name; what the Admin API validates against and lists.

use std::sync::{PoisonError, RwLock};

use super::{
    api_breaker, basic_auth, consumer_restriction, cors, csrf, echo, ext_plugin, fault_injection,
    file_logger, gzip, hmac_auth, http_logger, ip_restriction, jwt_auth, key_auth, limit_conn,
    limit_count, limit_req, mocking, prometheus, proxy_control, proxy_rewrite, real_ip, redirect,
    referer_restriction, request_id, response_rewrite, traffic_split, ua_restriction, uri_blocker,
    PluginKind,
};

/// Every built-in kind.
static KINDS: &[&dyn PluginKind] = &[
    &real_ip::RealIp,
    &proxy_control::ProxyControl,
    &ext_plugin::PRE_REQ,
    &request_id::RequestId,
    &fault_injection::FaultInjection,
    &mocking::Mocking,
    &cors::Cors,
    &ip_restriction::IpRestriction,
    &ua_restriction::UaRestriction,
    &referer_restriction::RefererRestriction,
    &csrf::Csrf,
    &uri_blocker::UriBlocker,
    &hmac_auth::HmacAuth,
    &basic_auth::BasicAuth,
    &jwt_auth::JwtAuth,
    &key_auth::KeyAuth,
    &consumer_restriction::ConsumerRestriction,
    &proxy_rewrite::ProxyRewrite,
    &api_breaker::ApiBreaker,
    &limit_conn::LimitConn,
    &limit_count::LimitCount,
    &limit_req::LimitReq,
    &traffic_split::TrafficSplit,
    &redirect::Redirect,
    &response_rewrite::ResponseRewrite,
    &gzip::Gzip,
    &echo::Echo,
    &prometheus::Prometheus,
    &http_logger::HttpLogger,
    &file_logger::FileLogger,
    &ext_plugin::POST_REQ,
    &ext_plugin::POST_RESP,
];

/// The plugins config.yaml's `plugins:` enables; `None` (no such key) enables every one. Set
/// once per process, when the gateway starts (as APISIX reads it at start).
static ENABLED: RwLock<Option<Vec<String>>> = RwLock::new(None);

/// Enables only `names` (`None`: every built-in plugin). The others are unknown plugins: the
/// Admin API refuses them, `/plugins/list` leaves them out, routes using them answer 503.
pub fn enable_only(names: Option<&[String]>) {
    *ENABLED.write().unwrap_or_else(PoisonError::into_inner) = names.map(<[String]>::to_vec);
}

fn enabled(name: &str) -> bool {
    ENABLED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_none_or(|list| list.iter().any(|n| n == name))
}

/// Whether a built-in plugin is named `name` (enabled or not).
pub fn exists(name: &str) -> bool {
    KINDS.iter().any(|k| k.name() == name)
}

/// The enabled kind named `name`.
pub fn kind(name: &str) -> Option<&'static dyn PluginKind> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.name() == name)
        .filter(|_| enabled(name))
}

/// Every enabled kind, higher priority first (APISIX's order for `/plugins/list`).
pub fn all() -> Vec<&'static dyn PluginKind> {
    let mut kinds: Vec<_> = KINDS
        .iter()
        .copied()
        .filter(|k| enabled(k.name()))
        .collect();
    kinds.sort_by(|a, b| b.priority().cmp(&a.priority()).then(a.name().cmp(b.name())));
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        let kinds = all();
        for (i, k) in kinds.iter().enumerate() {
            assert!(
                kinds[..i].iter().all(|o| o.name() != k.name()),
                "{} twice",
                k.name()
            );
            assert_eq!(kind(k.name()).map(|f| f.name()), Some(k.name()));
        }
        assert!(kind("no-such-plugin").is_none());
        assert!(kinds.windows(2).all(|w| w[0].priority() >= w[1].priority()));
    }
}
