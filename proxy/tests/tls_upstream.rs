//! https upstreams: certificates verified by default, a configured CA, `tls.verify: false`, mTLS.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::pki::Pki;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn der_chain(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.expect("cert"))
        .collect()
}

fn der_key(pem: &str) -> PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("key")
}

/// An https echo server; with `client_ca` it requires a client certificate from that CA.
async fn tls_upstream(cert: &str, key: &str, client_ca: Option<&str>) -> std::net::SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(der_chain(ca));
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(der_chain(cert), der_key(key))
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let host = req
                        .headers()
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("");
                    let body = serde_json::json!({"server": "tls", "host": host}).to_string();
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                        body,
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn route(addr: std::net::SocketAddr, tls: &str) -> String {
    format!(
        "routes:\n  - id: 1\n    uri: /tls\n    upstream:\n      scheme: https\n      pass_host: node\n      nodes: [{{host: localhost, port: {}, weight: 1}}]\n{tls}#END\n",
        addr.port()
    )
}

#[tokio::test]
async fn upstream_certificates_are_verified_by_default() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["localhost"]);
    let addr = tls_upstream(&cert, &key, None).await;
    // Not trusted: the CA is not in the system roots.
    let gw = gateway(&route(addr, "")).await;
    assert_eq!(get(&gw.url("/tls")).await.status, 502);
    drop(gw);

    // Trusted through apisix.ssl.ssl_trusted_certificate.
    let ca_file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(ca_file.path(), pki.ca_pem.clone()).expect("write ca");
    let gw = gateway_with(
        &route(addr, ""),
        &format!(
            "apisix:\n  node_listen: [{{ip: 127.0.0.1, port: 0}}]\n  ssl: {{ssl_trusted_certificate: {}}}\n",
            ca_file.path().display()
        ),
    )
    .await;
    let got = get(&gw.url("/tls")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["server"], "tls");
    assert_eq!(got.json()["host"], format!("localhost:{}", addr.port()));
}

#[tokio::test]
async fn wrong_name_fails_and_verify_false_opts_out() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["other.example"]);
    let addr = tls_upstream(&cert, &key, None).await;
    let gw = gateway(&route(addr, "")).await;
    assert_eq!(get(&gw.url("/tls")).await.status, 502);
    let gw = gateway(&route(addr, "      tls: {verify: false}\n")).await;
    assert_eq!(get(&gw.url("/tls")).await.status, 200);
}

#[tokio::test]
async fn client_certificates_for_mtls() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["localhost"]);
    let addr = tls_upstream(&cert, &key, Some(&pki.ca_pem.clone())).await;
    let (client_cert, client_key) = pki.leaf(&["gateway-client"]);
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("          {l}\n"))
            .collect::<String>()
    };
    let with_cert = format!(
        "      tls:\n        verify: false\n        client_cert: |\n{}        client_key: |\n{}",
        indent(&client_cert),
        indent(&client_key)
    );
    let gw = gateway(&route(addr, &with_cert)).await;
    assert_eq!(get(&gw.url("/tls")).await.status, 200);
    let gw = gateway(&route(addr, "      tls: {verify: false}\n")).await;
    assert_eq!(
        get(&gw.url("/tls")).await.status,
        502,
        "no client certificate"
    );
}

#[tokio::test]
async fn client_certificate_from_an_ssl_object() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["localhost"]);
    let addr = tls_upstream(&cert, &key, Some(&pki.ca_pem.clone())).await;
    let (client_cert, client_key) = pki.leaf(&["gateway-client"]);
    let doc = serde_json::json!({
        "ssls": [{"id": "c1", "type": "client", "cert": client_cert, "key": client_key}],
        "routes": [{"id": "1", "uri": "/tls", "upstream": {
            "scheme": "https", "pass_host": "node",
            "nodes": [{"host": "localhost", "port": addr.port(), "weight": 1}],
            "tls": {"verify": false, "client_cert_id": "c1"}}}],
    });
    let gw = gateway(&format!("{doc}\n#END\n")).await;
    assert_eq!(get(&gw.url("/tls")).await.status, 200);
}

#[tokio::test]
async fn sni_is_upstream_host_when_pass_host_rewrites() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["api.internal"]);
    let addr = tls_upstream(&cert, &key, None).await;
    let ca_file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(ca_file.path(), pki.ca_pem.clone()).expect("write ca");
    let config = format!(
        "apisix:\n  ssl: {{ssl_trusted_certificate: {}}}\n",
        ca_file.path().display()
    );
    let routes = |pass: &str| {
        format!(
            "routes:\n  - id: 1\n    uri: /tls\n    upstream:\n      scheme: https\n      {pass}\n      nodes: {{\"127.0.0.1:{}\": 1}}\n#END\n",
            addr.port()
        )
    };
    let gw = gateway_with(
        &routes("pass_host: rewrite\n      upstream_host: api.internal"),
        &config,
    )
    .await;
    let got = get(&gw.url("/tls")).await;
    assert_eq!(got.status, 200, "verified as api.internal");
    assert_eq!(got.json()["host"], "api.internal");
    let gw = gateway_with(&routes("pass_host: node"), &config).await;
    assert_eq!(
        get(&gw.url("/tls")).await.status,
        502,
        "an IP node is not api.internal"
    );
}

#[tokio::test]
async fn changing_the_client_cert_ssl_object_rebuilds_the_client() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["localhost"]);
    let addr = tls_upstream(&cert, &key, Some(&pki.ca_pem.clone())).await;
    let (stranger, stranger_key) = Pki::new().leaf(&["gateway-client"]);
    let (trusted, trusted_key) = pki.leaf(&["gateway-client"]);
    let (gw, admin) = common::admin::embedded_gateway().await;
    let ssl =
        |cert: &str, key: &str| serde_json::json!({"type": "client", "cert": cert, "key": key});
    let put = admin.put("/ssls/c1", ssl(&stranger, &stranger_key)).await;
    assert!(put.status.is_success(), "{:?}", put.body);
    let route = serde_json::json!({"uri": "/tls", "upstream": {
        "scheme": "https", "pass_host": "node",
        "nodes": [{"host": "localhost", "port": addr.port(), "weight": 1}],
        "tls": {"verify": false, "client_cert_id": "c1"}}});
    common::admin::apply(&gw, &admin, "/routes/1", route, "/tls", 502).await;
    // Only the ssl object changes: the route must pick up the new certificate.
    common::admin::apply(
        &gw,
        &admin,
        "/ssls/c1",
        ssl(&trusted, &trusted_key),
        "/tls",
        200,
    )
    .await;
}
