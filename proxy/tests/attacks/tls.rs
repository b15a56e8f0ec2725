//! Client certificate chains against `client.depth`, counted as nginx's `ssl_verify_depth`:
//! the intermediate CAs of the verified path, not the certificates the client sends.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::ClientConfig;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::*;

/// A certificate with the key and issuer handle that sign below it.
struct Ca {
    cert: Certificate,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}

fn root(name: &str) -> Ca {
    let params = ca_params(name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("root");
    Ca {
        cert,
        issuer: Issuer::new(params, key),
    }
}

fn intermediate(name: &str, parent: &Ca) -> Ca {
    let params = ca_params(name);
    let key = KeyPair::generate().expect("key");
    let cert = params
        .signed_by(&key, &parent.issuer)
        .expect("intermediate");
    Ca {
        cert,
        issuer: Issuer::new(params, key),
    }
}

/// A leaf for `names` signed by `ca`: (certificate, key PEM).
fn leaf(names: &[&str], ca: &Ca) -> (Certificate, String) {
    let params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("params");
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("leaf");
    (cert, key.serialize_pem())
}

/// GET / over TLS with SNI `sni`, presenting `chain` (leaf first) with `key`: the status, or
/// `Err` when the handshake or the connection fails.
async fn get_with_chain(
    addr: SocketAddr,
    server_ca: &Ca,
    sni: &'static str,
    chain: Vec<CertificateDer<'static>>,
    key: &str,
) -> Result<u16, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(server_ca.cert.der().clone())
        .expect("server root");
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(
                chain,
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
            )
            .expect("client certificate");
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(sni).expect("name"), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", sni)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

#[tokio::test]
async fn client_depth_counts_intermediates_of_the_verified_chain() {
    let server_ca = root("server root");
    let (server_cert, server_key) = leaf(&["d0.test", "d1.test", "d2.test"], &server_ca);
    let server_pem = server_cert.pem();
    let der = |(cert, key): (Certificate, String)| (cert.der().clone(), key);

    let client_root = root("client root");
    let int1 = intermediate("client intermediate 1", &client_root);
    let int2 = intermediate("client intermediate 2", &int1);
    let (by_root, by_root_key) = der(leaf(&["client"], &client_root));
    let (by_int1, by_int1_key) = der(leaf(&["client"], &int1));
    let (by_int2, by_int2_key) = der(leaf(&["client"], &int2));
    // Same names, other keys: a chain that looks right and verifies nowhere.
    let forged_root = root("client root");
    let forged_int1 = intermediate("client intermediate 1", &forged_root);
    let (forged, forged_key) = der(leaf(&["client"], &forged_int1));

    let (root_der, int1_der, int2_der) = (
        client_root.cert.der().clone(),
        int1.cert.der().clone(),
        int2.cert.der().clone(),
    );
    let ca = client_root.cert.pem();
    let up = upstream("u", Behaviour::Echo).await;
    let object = |id: &str, depth: Option<u32>| {
        let mut client = json!({"ca": ca});
        if let Some(d) = depth {
            client["depth"] = json!(d);
        }
        json!({"id": id, "cert": server_pem, "key": server_key, "sni": format!("{id}.test"), "client": client})
    };
    let doc = json!({
        "routes": [{"id": "1", "uri": "/*", "upstream": {"nodes": {up.node(): 1}}}],
        "ssls": [object("d0", Some(0)), object("d1", None), object("d2", Some(2))],
    });
    let gw = gateway_with(
        &format!("{doc}\n#END\n"),
        "apisix:\n  ssl:\n    enable: true\n    listen: [{ip: 127.0.0.1, port: 0}]\n",
    )
    .await;
    let addr = gw.gateway.tls_addrs()[0];
    let try_chain = |sni: &'static str, chain: Vec<CertificateDer<'static>>, key: String| {
        let server_ca = &server_ca;
        async move { get_with_chain(addr, server_ca, sni, chain, &key).await }
    };

    // Default depth 1. curl and OpenSSL send the CA along with the leaf: it is the trust
    // anchor, not an intermediate.
    assert_eq!(
        try_chain(
            "d1.test",
            vec![by_root.clone(), root_der.clone()],
            by_root_key.clone()
        )
        .await,
        Ok(200)
    );
    assert_eq!(
        try_chain("d1.test", vec![by_root.clone()], by_root_key.clone()).await,
        Ok(200)
    );
    // One intermediate, sent with or without the root.
    assert_eq!(
        try_chain(
            "d1.test",
            vec![by_int1.clone(), int1_der.clone()],
            by_int1_key.clone()
        )
        .await,
        Ok(200)
    );
    assert_eq!(
        try_chain(
            "d1.test",
            vec![by_int1.clone(), int1_der.clone(), root_der.clone()],
            by_int1_key.clone()
        )
        .await,
        Ok(200)
    );
    // Two intermediates: over depth 1, within depth 2.
    let two = vec![by_int2.clone(), int2_der.clone(), int1_der.clone()];
    assert!(
        try_chain("d1.test", two.clone(), by_int2_key.clone())
            .await
            .is_err(),
        "two intermediates at depth 1"
    );
    let mut two_and_root = two.clone();
    two_and_root.push(root_der.clone());
    assert!(
        try_chain("d1.test", two_and_root, by_int2_key.clone())
            .await
            .is_err(),
        "two intermediates at depth 1, root sent too"
    );
    assert_eq!(
        try_chain("d2.test", two.clone(), by_int2_key.clone()).await,
        Ok(200)
    );

    // Depth 0: only certificates signed by client.ca itself.
    assert_eq!(
        try_chain(
            "d0.test",
            vec![by_root.clone(), root_der.clone()],
            by_root_key.clone()
        )
        .await,
        Ok(200)
    );
    assert!(
        try_chain(
            "d0.test",
            vec![by_int1.clone(), int1_der.clone()],
            by_int1_key.clone()
        )
        .await
        .is_err(),
        "an intermediate at depth 0"
    );

    // Unverifiable chains fail at any depth: a missing intermediate, a forged chain.
    assert!(
        try_chain(
            "d2.test",
            vec![by_int2.clone(), int2_der.clone()],
            by_int2_key.clone()
        )
        .await
        .is_err(),
        "missing intermediate"
    );
    assert!(
        try_chain(
            "d2.test",
            vec![forged, forged_int1.cert.der().clone()],
            forged_key
        )
        .await
        .is_err(),
        "forged chain"
    );

    // After the refusals, good clients are served as before.
    assert_eq!(
        try_chain("d2.test", vec![by_int1, int1_der], by_int1_key).await,
        Ok(200)
    );
    assert_eq!(
        try_chain("d1.test", vec![by_root, root_der], by_root_key).await,
        Ok(200)
    );
}
