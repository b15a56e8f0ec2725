//! Headers between client, gateway and upstream.
//!
//! Hop-by-hop headers (`Connection` and the headers it names, `Keep-Alive`, `Proxy-Connection`,
//! `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) never cross the gateway, except `Upgrade` and
//! `Connection: upgrade` on a WebSocket route. The pipeline removes them from the client's headers
//! before plugins run, so a client's `Connection` cannot name away a header the gateway or a
//! plugin sets. Toward the upstream, as APISIX: `X-Real-IP` is the
//! client address, `X-Forwarded-For` appends it to the incoming chain, `X-Forwarded-Proto`,
//! `-Host` and `-Port` describe the request as the gateway received it, and `Forwarded` is removed.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// The header naming the upstream's status on 5xx answers.
pub static X_APISIX_UPSTREAM_STATUS: HeaderName =
    HeaderName::from_static("x-apisix-upstream-status");

/// Removes hop-by-hop headers. With `keep_upgrade`, `Upgrade` stays and `Connection` is set to
/// `upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none: one pass over the names is cheaper than six removals.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if let Some(conn) = headers.get(header::CONNECTION) {
        let named: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .filter(|n| !(keep_upgrade && n == header::UPGRADE))
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Whether the request asks for a WebSocket upgrade.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Sets the `X-Real-IP` / `X-Forwarded-*` headers for the upstream request.
/// `client` is the client address as text; `host` is the client's Host (with port if sent);
/// `listen_port` is the port the client reached; `tls` whether it came over TLS.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: Bytes,
    host: Option<&HeaderValue>,
    listen_port: u16,
    tls: bool,
) {
    let ip = client;
    let xff = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(chain) if !chain.is_empty() => [chain, b", ", &ip].concat().into(),
        _ => ip.clone(),
    };
    if let Ok(v) = HeaderValue::from_maybe_shared(xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(ip) {
        headers.insert(X_REAL_IP.clone(), v);
    }
    let proto = if tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    let port = host
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .filter(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(_, p)| HeaderValue::from_str(p).ok())
        .unwrap_or_else(|| HeaderValue::from(listen_port));
    match host {
        Some(h) => {
            headers.insert(X_FORWARDED_HOST.clone(), h.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
    headers.insert(X_FORWARDED_PORT.clone(), port);
    headers.remove(header::FORWARDED);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    #[test]
    fn hop_by_hop_is_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn websocket_keeps_upgrade() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_websocket(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(
            h.get("upgrade").map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert_eq!(
            h.get("connection").map(|v| v.as_bytes()),
            Some(&b"upgrade"[..])
        );
    }

    #[test]
    fn forwarded_headers() {
        let mut h = map(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=x")]);
        let host = HeaderValue::from_static("api.test:8080");
        set_forwarded(
            &mut h,
            Bytes::from_static(b"10.0.0.2"),
            Some(&host),
            9080,
            false,
        );
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(get("x-forwarded-for").as_deref(), Some("1.1.1.1, 10.0.0.2"));
        assert_eq!(get("x-real-ip").as_deref(), Some("10.0.0.2"));
        assert_eq!(get("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(get("x-forwarded-host").as_deref(), Some("api.test:8080"));
        assert_eq!(get("x-forwarded-port").as_deref(), Some("8080"));
        assert_eq!(get("forwarded"), None);
        let mut h = HeaderMap::new();
        set_forwarded(
            &mut h,
            Bytes::from_static(b"::1"),
            Some(&HeaderValue::from_static("[::1]")),
            9080,
            true,
        );
        assert_eq!(
            h.get("x-forwarded-proto").map(|v| v.as_bytes()),
            Some(&b"https"[..])
        );
        assert_eq!(
            h.get("x-forwarded-port").map(|v| v.as_bytes()),
            Some(&b"9080"[..])
        );
    }
}
