//! See main.rs. Every security decision sees the path and Host the router sees: spelling either
//! differently (`/public/../secret`, `SECURE.LOCAL.`, an HTTP/2 `:authority` that differs from
//! `Host`) cannot skip a client certificate or a host route's authentication, and a client's
//! `Connection` header cannot remove what the gateway or a plugin sends upstream. Requests are
//! written as raw bytes where an HTTP client library would tidy them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::pki::Pki;
use crate::common::*;

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("cert")
}

/// Sends `request` over TLS to `addr` (SNI `sni`, trusting `server_ca`, presenting `client` if
/// given) and returns everything the gateway answers until it closes.
async fn raw_tls(
    addr: SocketAddr,
    sni: &str,
    server_ca: &str,
    client: Option<&(String, String)>,
    request: &str,
) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der(server_ca)).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![der(cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
            )
            .expect("client cert"),
    };
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(sni.to_owned()).expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status of a raw HTTP/1 response (0 when there is none).
fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The JSON body of a raw HTTP/1 response (the gateway's and the echo upstream's bodies are
/// sent with a length, not chunked).
fn body_json(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {response:?}"))
}

/// A GET of `path` with `Host: host` and `extra` header lines, closing the connection after.
fn get_req(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn mtls_skip_paths_see_the_normalised_path() {
    let server = Pki::new();
    let clients = Pki::new();
    let (cert, key) = server.leaf(&["skip.test"]);
    let good = clients.leaf(&["client"]);
    let up = upstream("u", Behaviour::Echo).await;
    let doc = json!({
        "routes": [{"id": "1", "uri": "/*", "upstream": {"nodes": {up.node(): 1}}}],
        "ssls": [{"id": "skip", "cert": cert, "key": key, "sni": "skip.test",
                  "client": {"ca": clients.ca_pem, "skip_mtls_uri_regex": ["^/public/"]}}],
    });
    let gw = gateway_with(
        &format!("{doc}\n#END\n"),
        "apisix:\n  ssl:\n    enable: true\n    listen: [{ip: 127.0.0.1, port: 0}]\n",
    )
    .await;
    let addr = gw.gateway.tls_addrs()[0];
    let get = |path: &str, client: Option<&(String, String)>| {
        let request = get_req(path, "skip.test", "");
        let ca = server.ca_pem.clone();
        let client = client.cloned();
        async move { raw_tls(addr, "skip.test", &ca, client.as_ref(), &request).await }
    };

    let ok = get("/public/a", None).await;
    assert_eq!(
        status(&ok),
        200,
        "the public path works without a certificate"
    );
    assert_eq!(body_json(&ok)["uri"], "/public/a");

    let before = up.hits();
    for path in [
        "/secret",
        "/public/../secret",
        "/public/..%2fsecret",
        "/public/..%2Fsecret",
        "/public/%2e%2e/secret",
        "/public/%2E%2E/secret",
        "/public/.%2e/secret",
        "/public//../secret",
        "/public/./../secret",
        "/public/%2e/../secret",
        "/public%2f..%2fsecret",
    ] {
        let got = get(path, None).await;
        assert_eq!(status(&got), 400, "{path} without a certificate: {got:?}");
        assert_eq!(
            body_json(&got)["error_msg"],
            "client certificate required",
            "{path}"
        );
    }
    assert_eq!(up.hits(), before, "no refused request reached the upstream");

    // The same normalised path decides the other way round too.
    let got = get("/secret/../public/a", None).await;
    assert_eq!(status(&got), 200);
    assert_eq!(body_json(&got)["uri"], "/public/a");
    // With the certificate, the secret path is served; the public one still works after.
    let got = get("/public/../secret", Some(&good)).await;
    assert_eq!(status(&got), 200, "{got:?}");
    assert_eq!(body_json(&got)["uri"], "/secret");
    assert_eq!(status(&get("/public/b", None).await), 200);
}

/// A gateway with a key-auth route and an ip-restriction route on hosts, a catch-all route
/// without hosts, and a route whose plugins set headers; consumer `jack` has key `jack-key`.
async fn host_gateway(extra: &str) -> (TestGateway, Upstream, Upstream) {
    let secure = upstream("secure", Behaviour::Echo).await;
    let open = upstream("open", Behaviour::Echo).await;
    let doc = json!({
        "consumers": [{"username": "jack", "plugins": {"key-auth": {"key": "jack-key"}}}],
        "routes": [
            {"id": "secure", "uri": "/*", "hosts": ["secure.local"],
             "plugins": {"key-auth": {}}, "upstream": {"nodes": {secure.node(): 1}}},
            {"id": "denied", "uri": "/*", "hosts": ["denied.local"],
             "plugins": {"ip-restriction": {"blacklist": ["127.0.0.0/8"]}},
             "upstream": {"nodes": {secure.node(): 1}}},
            {"id": "ported", "uri": "/*", "hosts": ["ported.local:8080"],
             "plugins": {"key-auth": {}}, "upstream": {"nodes": {secure.node(): 1}}},
            {"id": "headers", "uri": "/headers", "enable_websocket": true,
             "plugins": {"key-auth": {},
                         "proxy-rewrite": {"headers": {"set": {"X-Added": "by-plugin"}}}},
             "upstream": {"nodes": {open.node(): 1}}},
            {"id": "open", "uri": "/*", "upstream": {"nodes": {open.node(): 1}}},
        ],
    });
    let gw = gateway_with(&format!("{doc}\n#END\n"), extra).await;
    (gw, secure, open)
}

#[tokio::test]
async fn host_spellings_reach_the_protected_host_route() {
    let (gw, secure, open) = host_gateway("").await;
    let addr = gw.addr();
    for host in [
        "secure.local",
        "secure.local.",
        "SECURE.LOCAL.",
        "Secure.Local",
        "secure.local:9080",
        "secure.local.:9080",
        "SECURE.LOCAL.:09080",
        "secure.local:",
    ] {
        let got = raw(addr, get_req("/x", host, "").as_bytes()).await;
        assert_eq!(status(&got), 401, "Host {host:?} without a key: {got:?}");
        let got = raw(addr, get_req("/x", host, "apikey: jack-key\r\n").as_bytes()).await;
        assert_eq!(status(&got), 200, "Host {host:?} with the key: {got:?}");
        assert_eq!(body_json(&got)["server"], "secure", "{host:?}");
        assert_eq!(
            body_json(&got)["headers"]["x-consumer-username"],
            "jack",
            "{host:?}"
        );
        // The upstream gets the Host as the client sent it (pass_host: pass), as APISIX.
        assert_eq!(body_json(&got)["headers"]["host"], host, "{host:?}");
    }
    for host in ["denied.local", "DENIED.local.", "denied.local.:80"] {
        let got = raw(addr, get_req("/x", host, "").as_bytes()).await;
        assert_eq!(status(&got), 403, "Host {host:?}: {got:?}");
    }
    // A route host with a port matches the same host spelled differently with that port.
    for host in [
        "ported.local:8080",
        "PORTED.LOCAL.:8080",
        "ported.local:08080",
    ] {
        let got = raw(addr, get_req("/x", host, "").as_bytes()).await;
        assert_eq!(status(&got), 401, "Host {host:?}: {got:?}");
    }
    // The request-target's authority wins over the Host header (RFC 9112 3.2.2).
    let got = raw(
        addr,
        b"GET http://SECURE.LOCAL./x HTTP/1.1\r\nHost: other.local\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&got), 401, "absolute-form: {got:?}");
    assert_eq!(open.hits(), 0, "no spelling fell through to the catch-all");

    // Normal traffic: other hosts reach the catch-all; the protected host works with the key.
    let got = get_with(&gw.url("/y"), &[("host", "other.local")]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["server"], "open");
    let got = get_with(
        &gw.url("/y"),
        &[("host", "secure.local"), ("apikey", "jack-key")],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["server"], "secure");
    assert!(secure.hits() > 0);
}

#[tokio::test]
async fn invalid_missing_and_repeated_hosts_get_400() {
    let (gw, secure, open) = host_gateway("").await;
    let addr = gw.addr();
    for host in [
        "secure.local:abc",
        "secure.local:99999",
        "secure.local:-1",
        "secure.local:80:80",
        "secure..local",
        ".secure.local",
        "secure.local..",
        "secure local",
        "secure.local/x",
        "secure.local\\x",
        "jack@secure.local",
        "[::1",
        "[secure.local]",
        "secure%2elocal",
        "",
    ] {
        let got = raw(addr, get_req("/x", host, "").as_bytes()).await;
        assert_eq!(status(&got), 400, "Host {host:?}: {got:?}");
        assert_eq!(
            body_json(&got)["error_msg"],
            "400 Bad Request: invalid Host header",
            "{host:?}"
        );
    }
    let refused: [&[u8]; 4] = [
        b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: secure.local\r\nHost: secure.local\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: other.local\r\nHost: secure.local\r\nConnection: close\r\n\r\n",
        b"GET http://secure.local/x HTTP/1.1\r\nConnection: close\r\n\r\n",
    ];
    for request in refused {
        let got = raw(addr, request).await;
        assert_eq!(
            status(&got),
            400,
            "{:?}: {got:?}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(
        secure.hits() + open.hits(),
        0,
        "no refused request went upstream"
    );

    // HTTP/1.0 may omit the Host: it reaches the host-less route.
    let got = raw(addr, b"GET /x HTTP/1.0\r\n\r\n").await;
    assert_eq!(status(&got), 200, "{got:?}");
    assert_eq!(body_json(&got)["server"], "open");
    // IPv6 literals are hosts too.
    let got = raw(addr, get_req("/x", "[::1]:9080", "").as_bytes()).await;
    assert_eq!(status(&got), 200, "{got:?}");
    assert_eq!(
        get_with(&gw.url("/y"), &[("host", "other.local")])
            .await
            .status,
        200
    );
}

/// One HTTP/2 request (prior knowledge) to `addr` for `uri` with `headers`: status and body.
async fn h2_get(addr: SocketAddr, uri: &str, headers: &[(&str, &str)]) -> (u16, Bytes) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut req = http::Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .expect("h2 response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

#[tokio::test]
async fn http2_authority_spellings_reach_the_protected_host_route() {
    let (gw, _secure, open) = host_gateway(
        "apisix:\n  node_listen:\n    - {ip: 127.0.0.1, port: 0, enable_http2: true}\n",
    )
    .await;
    let addr = gw.addr();
    let port = addr.port();
    for authority in [
        "secure.local".to_owned(),
        "secure.local.".to_owned(),
        "SECURE.LOCAL.".to_owned(),
        format!("SECURE.local.:{port}"),
    ] {
        let uri = format!("http://{authority}/x");
        let (status, body) = h2_get(addr, &uri, &[]).await;
        assert_eq!(status, 401, ":authority {authority}: {body:?}");
        let (status, body) = h2_get(addr, &uri, &[("apikey", "jack-key")]).await;
        assert_eq!(status, 200, ":authority {authority}: {body:?}");
        let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(echo["server"], "secure");
    }
    // `:authority` decides (RFC 9113 8.3.1), whatever the `host` header says.
    let (status, _) = h2_get(addr, "http://secure.local/x", &[("host", "other.local")]).await;
    assert_eq!(
        status, 401,
        "`host` cannot move the request off the protected route"
    );
    let (status, _) = h2_get(addr, "http://SECURE.LOCAL./x", &[("host", "other.local")]).await;
    assert_eq!(status, 401);
    let (status, body) = h2_get(addr, "http://other.local/x", &[("host", "secure.local")]).await;
    assert_eq!(status, 200, "{body:?}");
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(echo["server"], "open");
    assert_eq!(
        echo["headers"]["host"], "other.local",
        "the upstream gets the authority that routed the request"
    );
    assert_eq!(
        open.hits(),
        1,
        "only the request meant for the catch-all reached it"
    );
    // Two `host` headers are refused on HTTP/2 as on HTTP/1.1.
    let (status, _) = h2_get(
        addr,
        "http://secure.local/x",
        &[("host", "secure.local"), ("host", "other.local")],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn connection_cannot_remove_what_the_gateway_and_plugins_send() {
    let (gw, _secure, open) = host_gateway("").await;
    let addr = gw.addr();
    let got = raw(
        addr,
        b"GET /headers HTTP/1.1\r\nHost: api.local\r\napikey: jack-key\r\n\
          X-Consumer-Username: admin\r\nX-Hop: dropped\r\nKeep-Alive: timeout=5\r\n\
          Connection: X-Consumer-Username, X-Real-IP, X-Forwarded-For, X-Added, X-Hop, close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&got), 200, "{got:?}");
    let seen = &body_json(&got)["headers"];
    assert_eq!(
        seen["x-consumer-username"], "jack",
        "set by key-auth: {seen}"
    );
    assert_eq!(seen["x-real-ip"], "127.0.0.1", "set by the gateway: {seen}");
    assert_eq!(
        seen["x-forwarded-for"], "127.0.0.1",
        "set by the gateway: {seen}"
    );
    assert_eq!(seen["x-added"], "by-plugin", "set by proxy-rewrite: {seen}");
    // The client's own hop-by-hop headers still stop at the gateway.
    assert!(seen.get("x-hop").is_none(), "{seen}");
    assert!(seen.get("keep-alive").is_none(), "{seen}");
    let upstream_connection = seen["connection"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        !upstream_connection.contains("x-"),
        "the client's Connection does not go upstream: {seen}"
    );

    // A WebSocket upgrade on the same route (plugins on) still goes through.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"GET /headers HTTP/1.1\r\nHost: api.local\r\napikey: jack-key\r\nConnection: Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.expect("101");
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    s.write_all(b"ping").await.expect("write");
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(open.hits(), 2);
}
