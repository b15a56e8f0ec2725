//! Headers between client, gateway and upstream.
//!
//! Hop-by-hop headers (`Connection` and the headers it names, `Keep-Alive`, `Proxy-Connection`,
//! `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) never cross the gateway, except `Upgrade` and
//! `Connection: upgrade` on a WebSocket route. The pipeline removes them from the client's headers
//! before plugins run, so a client's `Connection` cannot name away a header the gateway or a
//! plugin sets. Toward the upstream, as APISIX: `X-Forwarded-Proto`, `-Host` and `-Port` describe
//! the request as the gateway received it and `Forwarded` is removed, before routing and plugins
//! (which may change them; a trusted peer's own values stay); once the plugins ran, `X-Real-IP`
//! is the client address and `X-Forwarded-For` appends it to the chain.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

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

/// How far the peer's own forwarding headers are believed (`apisix.trusted_addresses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// No trusted addresses are configured: the peer's `X-Forwarded-Proto`, `-Host`, `-Port`
    /// and `Forwarded` are replaced, its `X-Forwarded-For` chain is kept.
    Unset,
    /// The peer is a trusted address: the values it sent are kept.
    Trusted,
    /// The peer is not a trusted address: its values are replaced and its `X-Forwarded-For`
    /// is dropped.
    Untrusted,
}

impl Trust {
    /// The trust `peer` (the connection's address) gets from `trusted` (`None`: not configured).
    pub fn of(peer: IpAddr, trusted: Option<&[IpNet]>) -> Trust {
        match trusted {
            None => Trust::Unset,
            Some(nets) if nets.iter().any(|net| net.contains(&peer)) => Trust::Trusted,
            Some(_) => Trust::Untrusted,
        }
    }
}

/// Describes the request as the gateway received it, on the client's headers before routing
/// and plugins see them (so a plugin may change or remove what is set here): `X-Forwarded-Proto`
/// (the scheme), `-Host` (the client's Host as sent) and `-Port` (the Host's port, else
/// `listen_port`), `Forwarded` removed; a trusted peer's own non-empty values stay (its first
/// value of each), an untrusted peer's `X-Forwarded-For` goes.
pub fn describe_request(
    headers: &mut HeaderMap,
    host: Option<&HeaderValue>,
    listen_port: u16,
    tls: bool,
    trust: Trust,
) {
    let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
    let port = host
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .filter(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(_, p)| HeaderValue::from_str(p).ok())
        .unwrap_or_else(|| HeaderValue::from(listen_port));
    let own = [
        (&X_FORWARDED_PROTO, Some(proto)),
        (&X_FORWARDED_HOST, host.cloned()),
        (&X_FORWARDED_PORT, Some(port)),
        (&header::FORWARDED, None),
    ];
    for (name, value) in own {
        // Only a trusted peer's values are looked at: one lookup per header otherwise.
        if trust == Trust::Trusted {
            if let Some(first) = headers.get(name).filter(|v| !v.is_empty()).cloned() {
                headers.insert(name, first);
                continue;
            }
        }
        match value {
            Some(value) => {
                headers.insert(name, value);
            }
            None => {
                headers.remove(name);
            }
        }
    }
    if trust == Trust::Untrusted {
        headers.remove(&X_FORWARDED_FOR);
    }
}

/// Names the client (`client`, its address as text) to the upstream, after the plugins ran:
/// `X-Real-IP` is the client, `X-Forwarded-For` the chain the request carries then (the
/// client's, or what a plugin made of it) with the client appended.
pub fn name_client(headers: &mut HeaderMap, client: Bytes) {
    let mut chain = Vec::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        if !value.is_empty() {
            if !chain.is_empty() {
                chain.extend_from_slice(b", ");
            }
            chain.extend_from_slice(value.as_bytes());
        }
    }
    let xff = if chain.is_empty() {
        client.clone()
    } else {
        chain.extend_from_slice(b", ");
        chain.extend_from_slice(&client);
        Bytes::from(chain)
    };
    if let Ok(v) = HeaderValue::from_maybe_shared(xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(client) {
        headers.insert(X_REAL_IP.clone(), v);
    }
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

    fn get(h: &HeaderMap, name: &str) -> Option<String> {
        h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    #[test]
    fn forwarded_headers() {
        let sent = [
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "grpc"),
            ("x-forwarded-port", ""),
            ("forwarded", "for=x"),
        ];
        let host = HeaderValue::from_static("api.test:8080");
        // Without trusted addresses: replaced, the chain kept.
        let mut h = map(&sent);
        describe_request(&mut h, Some(&host), 9080, false, Trust::Unset);
        assert_eq!(get(&h, "x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(h.get_all("x-forwarded-proto").iter().count(), 1);
        assert_eq!(
            get(&h, "x-forwarded-host").as_deref(),
            Some("api.test:8080")
        );
        assert_eq!(get(&h, "x-forwarded-port").as_deref(), Some("8080"));
        assert_eq!(get(&h, "forwarded"), None);
        name_client(&mut h, Bytes::from_static(b"10.0.0.2"));
        assert_eq!(
            get(&h, "x-forwarded-for").as_deref(),
            Some("1.1.1.1, 10.0.0.2")
        );
        assert_eq!(get(&h, "x-real-ip").as_deref(), Some("10.0.0.2"));
        // A trusted peer's own values stay (the first of each; an empty one is replaced).
        let mut h = map(&sent);
        describe_request(&mut h, Some(&host), 9080, false, Trust::Trusted);
        assert_eq!(get(&h, "x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(h.get_all("x-forwarded-proto").iter().count(), 1);
        assert_eq!(get(&h, "x-forwarded-port").as_deref(), Some("8080"));
        assert_eq!(get(&h, "forwarded").as_deref(), Some("for=x"));
        assert_eq!(get(&h, "x-forwarded-for").as_deref(), Some("1.1.1.1"));
        // An untrusted one loses its chain too.
        let mut h = map(&sent);
        describe_request(&mut h, None, 9080, true, Trust::Untrusted);
        assert_eq!(get(&h, "x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(get(&h, "x-forwarded-host"), None);
        assert_eq!(get(&h, "x-forwarded-port").as_deref(), Some("9080"));
        assert_eq!(get(&h, "x-forwarded-for"), None);
        name_client(&mut h, Bytes::from_static(b"::1"));
        assert_eq!(get(&h, "x-forwarded-for").as_deref(), Some("::1"));
        // An IPv6 Host without a port: the listener's.
        let mut h = HeaderMap::new();
        let v6 = HeaderValue::from_static("[::1]");
        describe_request(&mut h, Some(&v6), 9443, true, Trust::Unset);
        assert_eq!(get(&h, "x-forwarded-port").as_deref(), Some("9443"));
        // Several X-Forwarded-For lines make one chain.
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
        ]);
        name_client(&mut h, Bytes::from_static(b"3.3.3.3"));
        assert_eq!(
            get(&h, "x-forwarded-for").as_deref(),
            Some("1.1.1.1, 2.2.2.2, 3.3.3.3")
        );
    }

    #[test]
    fn trust_of_a_peer() {
        let nets: Vec<IpNet> = vec!["127.0.0.1/32".parse().expect("net")];
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(Trust::of(local, None), Trust::Unset);
        assert_eq!(Trust::of(local, Some(&nets)), Trust::Trusted);
        assert_eq!(Trust::of(other, Some(&nets)), Trust::Untrusted);
    }
}
