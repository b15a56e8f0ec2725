//! TLS termination: certificates by SNI from `ssls` objects (YAML and Admin API), RSA + ECDSA on
//! one object, hot rotation, mTLS, HTTP/2 by ALPN. Real rustls clients against a real gateway.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::admin::{embedded_config, Admin};
use common::pki::Pki;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use plugin_api::tls::NoVerification;
use rcgen::KeyPair;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, SignatureScheme};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const RSA_KEY: &str = include_str!("fixtures/rsa2048.key");

/// An RSA leaf for `names`, signed by `pki`.
fn rsa_leaf(pki: &Pki, names: &[&str]) -> (String, String) {
    pki.leaf_with(names, KeyPair::from_pem(RSA_KEY).expect("rsa key"))
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("cert")
}

/// How a test client connects.
#[derive(Default, Clone)]
struct Opts {
    /// ALPN protocols offered.
    alpn: Vec<Vec<u8>>,
    /// Signature schemes offered (all the provider's when empty).
    schemes: Vec<SignatureScheme>,
    /// Client certificate and key (PEM).
    client_cert: Option<(String, String)>,
    /// Verify the server against this CA (PEM) instead of accepting anything.
    trust: Option<String>,
    /// TLS versions offered (rustls's defaults when empty).
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
}

fn client_config(opts: &Opts) -> ClientConfig {
    let mut provider = rustls::crypto::ring::default_provider();
    if !opts.schemes.is_empty() {
        // Only the schemes asked for are offered for the server's signature. The provider's
        // table is a static slice: the few entries of a test's table are leaked.
        let algorithms = &mut provider.signature_verification_algorithms;
        let kept: Vec<_> = algorithms
            .mapping
            .iter()
            .filter(|(scheme, _)| opts.schemes.contains(scheme))
            .copied()
            .collect();
        algorithms.mapping = Box::leak(kept.into_boxed_slice());
    }
    let provider = Arc::new(provider);
    let versions = if opts.versions.is_empty() {
        rustls::DEFAULT_VERSIONS.to_vec()
    } else {
        opts.versions.clone()
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .expect("versions");
    let builder = match &opts.trust {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(der(ca)).expect("root");
            builder.with_root_certificates(roots)
        }
        // Any certificate: the tests compare the served certificate themselves.
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider.clone()))),
    };
    let mut config = match &opts.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![der(cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
            )
            .expect("client cert"),
    };
    config.alpn_protocols = opts.alpn.clone();
    config
}

/// A TLS connection to `addr` sending `sni` (none when `None`).
async fn connect(
    addr: SocketAddr,
    sni: Option<&str>,
    opts: &Opts,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut config = client_config(opts);
    config.enable_sni = sni.is_some();
    let name = ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_owned()).expect("name");
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The leaf certificate the gateway served for `sni`, or the handshake error.
async fn served(addr: SocketAddr, sni: Option<&str>) -> Result<CertificateDer<'static>, String> {
    let tls = connect(addr, sni, &Opts::default())
        .await
        .map_err(|e| e.to_string())?;
    let certs = tls.get_ref().1.peer_certificates().expect("server certs");
    Ok(certs[0].clone().into_owned())
}

/// One HTTP/1.1 GET over `tls`; `Err` when the connection fails.
async fn get_over(
    tls: TlsStream<TcpStream>,
    host: &str,
    path: &str,
) -> Result<(u16, Bytes), String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

fn tls_config(extra: &str) -> String {
    format!("apisix:\n  ssl:\n    enable: true\n    listen: [{{ip: 127.0.0.1, port: 0}}]\n{extra}")
}

/// `apisix.yaml` (as JSON, which is YAML) with a catch-all route to `upstream` and `ssls`.
fn declarative(upstream: &Upstream, ssls: serde_json::Value) -> String {
    let doc = json!({
        "routes": [{"id": "1", "uri": "/*", "upstream": {"nodes": {upstream.node(): 1}}}],
        "ssls": ssls,
    });
    format!("{doc}\n#END\n")
}

#[tokio::test]
async fn certificates_are_chosen_by_sni() {
    let pki = Pki::new();
    let (a, a_key) = pki.leaf(&["a.test"]);
    let (wild, wild_key) = pki.leaf(&["*.wild.test"]);
    let (san, san_key) = pki.leaf(&["c.test", "san-only.test", "*.sanwild.test"]);
    let (exact, exact_key) = pki.leaf(&["x.wild.test"]);
    let up = upstream("u", Behaviour::Echo).await;
    let ssls = json!([
        {"id": "a", "cert": a, "key": a_key, "snis": ["a.test"]},
        {"id": "b", "cert": wild, "key": wild_key, "snis": ["*.wild.test"]},
        {"id": "c", "cert": san, "key": san_key, "sni": "c.test"},
        {"id": "d", "cert": exact, "key": exact_key, "snis": ["x.wild.test"]},
        {"id": "off", "cert": a, "key": a_key, "snis": ["off.test"], "status": 0},
    ]);
    let gw = gateway_with(
        &declarative(&up, ssls.clone()),
        &tls_config("    fallback_sni: a.test\n"),
    )
    .await;
    let addr = gw.gateway.tls_addrs()[0];
    let is = |got: Result<CertificateDer<'static>, String>, want: &str, case: &str| {
        assert_eq!(got.expect(case), der(want), "{case}");
    };
    is(served(addr, Some("a.test")).await, &a, "exact");
    is(served(addr, Some("A.Test")).await, &a, "case-insensitive");
    is(served(addr, Some("y.wild.test")).await, &wild, "wildcard");
    is(
        served(addr, Some("x.wild.test")).await,
        &exact,
        "exact beats wildcard",
    );
    is(served(addr, Some("c.test")).await, &san, "sni");
    is(served(addr, Some("san-only.test")).await, &san, "SAN only");
    is(
        served(addr, Some("q.sanwild.test")).await,
        &san,
        "SAN wildcard",
    );
    is(
        served(addr, Some("a.b.wild.test")).await,
        &a,
        "one label only: fallback",
    );
    is(served(addr, None).await, &a, "no SNI: fallback");
    is(
        served(addr, Some("off.test")).await,
        &a,
        "status 0 is not served",
    );
    is(
        served(addr, Some("nothing.test")).await,
        &a,
        "unknown: fallback",
    );

    // A real verifying client accepts the chosen certificate.
    let opts = Opts {
        trust: Some(pki.ca_pem.clone()),
        ..Opts::default()
    };
    let tls = connect(addr, Some("y.wild.test"), &opts)
        .await
        .expect("verified");
    let (status, body) = get_over(tls, "y.wild.test", "/hello").await.expect("get");
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
    drop(gw);

    // Without fallback_sni, unknown names and missing SNI fail the handshake.
    let gw = gateway_with(&declarative(&up, ssls), &tls_config("")).await;
    let addr = gw.gateway.tls_addrs()[0];
    assert!(served(addr, Some("nothing.test")).await.is_err());
    assert!(served(addr, None).await.is_err());
    assert!(served(addr, Some("a.b.wild.test")).await.is_err());
    is(
        served(addr, Some("a.test")).await,
        &a,
        "still serves known names",
    );
}

#[tokio::test]
async fn rsa_and_ecdsa_on_one_object() {
    let pki = Pki::new();
    let (ec, ec_key) = pki.leaf(&["both.test"]);
    let (rsa, rsa_key) = rsa_leaf(&pki, &["both.test"]);
    let up = upstream("u", Behaviour::Echo).await;
    let ssls = json!([{"id": "1", "cert": rsa, "key": rsa_key, "certs": [ec], "keys": [ec_key], "snis": ["both.test"]}]);
    let gw = gateway_with(&declarative(&up, ssls), &tls_config("")).await;
    let addr = gw.gateway.tls_addrs()[0];
    let with_schemes = |schemes: Vec<SignatureScheme>| Opts {
        schemes,
        ..Opts::default()
    };
    let leaf =
        |tls: TlsStream<TcpStream>| tls.get_ref().1.peer_certificates().expect("certs")[0].clone();
    let tls = connect(
        addr,
        Some("both.test"),
        &with_schemes(vec![SignatureScheme::ECDSA_NISTP256_SHA256]),
    )
    .await
    .expect("ecdsa client");
    assert_eq!(leaf(tls), der(&ec));
    let tls = connect(
        addr,
        Some("both.test"),
        &with_schemes(vec![
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA256,
        ]),
    )
    .await
    .expect("rsa client");
    assert_eq!(leaf(tls), der(&rsa));
}

/// A gateway on the embedded store with the Admin API and a TLS listener.
async fn admin_tls_gateway(extra: &str) -> (TestGateway, Admin) {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_in(dir, &format!("{}{}", embedded_config(), tls_config(extra))).await;
    let admin = Admin::for_gateway(&gw);
    (gw, admin)
}

/// Waits until `sni` is served `want` (or fails when `want` is `None`).
async fn wait_served(addr: SocketAddr, sni: &str, want: Option<&CertificateDer<'static>>) {
    for _ in 0..300 {
        let got = served(addr, Some(sni)).await.ok();
        if got.as_ref() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{sni} was not served the expected certificate in time");
}

#[tokio::test]
async fn admin_api_changes_apply_to_new_handshakes() {
    let pki = Pki::new();
    let (one, one_key) = pki.leaf(&["api.test"]);
    let (two, two_key) = pki.leaf(&["api.test"]);
    let (_, other_key) = pki.leaf(&["api.test"]);
    let (gw, admin) = admin_tls_gateway("").await;
    let addr = gw.gateway.tls_addrs()[0];
    assert!(served(addr, Some("api.test")).await.is_err(), "no ssl yet");

    let put = admin
        .put(
            "/ssls/1",
            json!({"cert": one, "key": one_key, "snis": ["api.test"]}),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.json());
    assert!(put.json()["value"].get("key").is_none(), "keys never leave");
    wait_served(addr, "api.test", Some(&der(&one))).await;

    let put = admin
        .put(
            "/ssls/1",
            json!({"cert": two, "key": two_key, "snis": ["api.test"]}),
        )
        .await;
    assert_eq!(put.status, 200);
    wait_served(addr, "api.test", Some(&der(&two))).await;

    // A key that is not the certificate's is refused and changes nothing.
    let bad = admin
        .put(
            "/ssls/1",
            json!({"cert": two, "key": other_key, "snis": ["api.test"]}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let msg = bad.json()["error_msg"].as_str().unwrap_or("").to_owned();
    assert!(msg.contains("does not match"), "{msg}");
    let garbage = admin
        .put(
            "/ssls/1",
            json!({"cert": "not a cert", "key": two_key, "sni": "api.test"}),
        )
        .await;
    assert_eq!(garbage.status, 400);
    assert_eq!(served(addr, Some("api.test")).await, Ok(der(&two)));

    assert_eq!(admin.delete("/ssls/1").await.status, 200);
    wait_served(addr, "api.test", None).await;
}

#[tokio::test]
async fn rotation_under_load_fails_no_handshake() {
    let pki = Pki::new();
    let pairs: Vec<(String, String)> = (0..2).map(|_| pki.leaf(&["rot.test"])).collect();
    let (gw, admin) = admin_tls_gateway("").await;
    let addr = gw.gateway.tls_addrs()[0];
    let put = |i: usize| {
        let (cert, key) = pairs[i % 2].clone();
        let admin = &admin;
        async move {
            let got = admin
                .put(
                    "/ssls/rot",
                    json!({"cert": cert, "key": key, "sni": "rot.test"}),
                )
                .await;
            assert!(got.status.is_success(), "{}", got.json());
        }
    };
    put(0).await;
    wait_served(addr, "rot.test", Some(&der(&pairs[0].0))).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (stop, ok, failed, seen) = (stop.clone(), ok.clone(), failed.clone(), seen.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match served(addr, Some("rot.test")).await {
                    Ok(cert) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        seen.lock().expect("lock").insert(cert.to_vec());
                    }
                    Err(e) => {
                        eprintln!("handshake failed: {e}");
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    for i in 1..=20 {
        put(i).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("client task");
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "failed handshakes");
    assert!(ok.load(Ordering::SeqCst) > 20, "handshakes ran");
    assert_eq!(
        seen.lock().expect("lock").len(),
        2,
        "both certificates served"
    );
}

#[tokio::test]
async fn client_certificates_are_verified() {
    let pki = Pki::new();
    let clients = Pki::new();
    let (cert, key) = pki.leaf(&["m.test", "skip.test", "open.test"]);
    let (good, good_key) = clients.leaf(&["client"]);
    let (stranger, stranger_key) = Pki::new().leaf(&["client"]);
    let up = upstream("u", Behaviour::Echo).await;
    let ssls = json!([
        {"id": "strict", "cert": cert, "key": key, "sni": "m.test", "client": {"ca": clients.ca_pem}},
        {"id": "skip", "cert": cert, "key": key, "sni": "skip.test",
         "client": {"ca": clients.ca_pem, "skip_mtls_uri_regex": ["^/public/"]}},
        {"id": "open", "cert": cert, "key": key, "sni": "open.test"},
    ]);
    let gw = gateway_with(&declarative(&up, ssls), &tls_config("")).await;
    let addr = gw.gateway.tls_addrs()[0];
    let with = |pair: Option<(&String, &String)>| Opts {
        client_cert: pair.map(|(c, k)| (c.clone(), k.clone())),
        ..Opts::default()
    };
    let get_host = |sni: &'static str, host: &'static str, opts: Opts, path: &'static str| async move {
        match connect(addr, Some(sni), &opts).await {
            Ok(tls) => get_over(tls, host, path).await,
            Err(e) => Err(e.to_string()),
        }
    };
    let get = |sni: &'static str, opts: Opts, path: &'static str| get_host(sni, sni, opts, path);

    let (status, _) = get("m.test", with(Some((&good, &good_key))), "/x")
        .await
        .expect("trusted client");
    assert_eq!(status, 200);
    assert!(
        get("m.test", with(None), "/x").await.is_err(),
        "no certificate"
    );
    assert!(
        get("m.test", with(Some((&stranger, &stranger_key))), "/x")
            .await
            .is_err(),
        "untrusted certificate"
    );

    let (status, _) = get_host("m.test", "M.test:443", with(Some((&good, &good_key))), "/x")
        .await
        .expect("Host with a port");
    assert_eq!(status, 200);

    // The SNI of an object without mTLS cannot reach a Host whose object requires it (APISIX).
    let (status, _) = get_host("open.test", "open.test", with(None), "/x")
        .await
        .expect("open");
    assert_eq!(status, 200);
    let (status, _) = get_host("open.test", "m.test", with(None), "/x")
        .await
        .expect("answered");
    assert_eq!(status, 400, "mTLS bypass through another SNI");
    let (status, _) = get_host("open.test", "skip.test", with(None), "/public/a")
        .await
        .expect("answered");
    assert_eq!(status, 200, "the Host's skip_mtls_uri_regex applies");
    let (status, _) = get_host("skip.test", "m.test", with(Some((&good, &good_key))), "/x")
        .await
        .expect("answered");
    assert_eq!(status, 400, "certificate verified for another name");

    // skip_mtls_uri_regex: the handshake asks without requiring; paths decide.
    let (status, _) = get("skip.test", with(None), "/public/a")
        .await
        .expect("skipped path");
    assert_eq!(status, 200);
    let (status, body) = get("skip.test", with(None), "/private")
        .await
        .expect("answered");
    assert_eq!(status, 400, "{body:?}");
    let (status, _) = get("skip.test", with(Some((&good, &good_key))), "/private")
        .await
        .expect("with certificate");
    assert_eq!(status, 200);
    assert!(
        get(
            "skip.test",
            with(Some((&stranger, &stranger_key))),
            "/public/a"
        )
        .await
        .is_err(),
        "a presented certificate must still be valid"
    );
}

#[tokio::test]
async fn http2_by_alpn() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["h2.test"]);
    let up = upstream("u", Behaviour::Echo).await;
    let ssls = json!([{"id": "1", "cert": cert, "key": key, "sni": "h2.test"}]);
    let gw = gateway_with(
        &declarative(&up, ssls),
        "apisix:\n  ssl:\n    enable: true\n    listen: [{ip: 127.0.0.1, port: 0}, {ip: 127.0.0.1, port: 0, enable_http2: false}]\n",
    )
    .await;
    let both = Opts {
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        ..Opts::default()
    };
    let tls = connect(gw.gateway.tls_addrs()[0], Some("h2.test"), &both)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    for i in 0..3 {
        let req = http::Request::get(format!("https://h2.test/h2/{i}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let resp = sender.send_request(req).await.expect("h2 response");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(echo["uri"], format!("/h2/{i}"));
    }

    // The listener with enable_http2: false negotiates http/1.1.
    let tls = connect(gw.gateway.tls_addrs()[1], Some("h2.test"), &both)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (status, _) = get_over(tls, "h2.test", "/one").await.expect("http/1.1");
    assert_eq!(status, 200);
}

/// A gRPC-like HTTP/2 upstream (h2c, or TLS with ALPN `h2` when `tls` holds a certificate and
/// key): answers with the request body prefixed by the path and the `te` header it got, then the
/// trailers `grpc-status: 0` and `grpc-message: ok`.
async fn h2_upstream(tls: Option<(String, String)>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tls.map(|(cert, key)| {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![der(&cert)],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
        )
        .expect("config");
        config.alpn_protocols = vec![b"h2".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let te = req
                            .headers()
                            .get("te")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_owned();
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.expect("body").to_bytes();
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        trailers.insert("grpc-message", http::HeaderValue::from_static("ok"));
                        let out = http_body_util::Full::new(Bytes::from(format!(
                            "{path} te={te} {}",
                            String::from_utf8_lossy(&body)
                        )))
                        .with_trailers(async move { Some(Ok(trailers)) });
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(out)
                                .expect("response"),
                        )
                    },
                );
                let h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = h2.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = h2.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn grpc_passthrough_keeps_trailers() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["grpc.test"]);
    let (up_cert, up_key) = pki.leaf(&["backend.test"]);
    let plain = h2_upstream(None).await;
    let secure = h2_upstream(Some((up_cert, up_key))).await;
    let doc = json!({
        "routes": [
            {"id": "1", "uri": "/plain.Echo/*", "upstream": {"scheme": "grpc", "nodes": {plain.to_string(): 1}}},
            {"id": "2", "uri": "/secure.Echo/*", "upstream": {"scheme": "grpcs", "nodes": {secure.to_string(): 1},
             "tls": {"verify": false}}},
        ],
        "ssls": [{"id": "1", "cert": cert, "key": key, "sni": "grpc.test"}],
    });
    let gw = gateway_with(&format!("{doc}\n#END\n"), &tls_config("")).await;
    let opts = Opts {
        alpn: vec![b"h2".to_vec()],
        ..Opts::default()
    };
    let tls = connect(gw.gateway.tls_addrs()[0], Some("grpc.test"), &opts)
        .await
        .expect("handshake");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    for path in ["/plain.Echo/Say", "/secure.Echo/Say"] {
        let req = http::Request::post(format!("https://grpc.test{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(http_body_util::Full::new(Bytes::from_static(
                b"\0\0\0\0\x02hi",
            )))
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let collected = resp.into_body().collect().await.expect("body");
        let trailers = collected.trailers().cloned().expect("trailers preserved");
        assert_eq!(trailers["grpc-status"], "0", "{path}");
        assert_eq!(trailers["grpc-message"], "ok");
        let body = collected.to_bytes();
        assert_eq!(
            &body[..],
            format!("{path} te=trailers \0\0\0\0\x02hi").as_bytes(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn standalone_file_changes_apply_to_new_handshakes() {
    let pki = Pki::new();
    let (one, one_key) = pki.leaf(&["file.test"]);
    let (two, two_key) = pki.leaf(&["file.test"]);
    let up = upstream("u", Behaviour::Echo).await;
    let ssls =
        |cert: &str, key: &str| json!([{"id": "1", "cert": cert, "key": key, "sni": "file.test"}]);
    let gw = gateway_with(&declarative(&up, ssls(&one, &one_key)), &tls_config("")).await;
    let addr = gw.gateway.tls_addrs()[0];
    assert_eq!(served(addr, Some("file.test")).await, Ok(der(&one)));
    let version = gw.gateway.snapshot_version();
    gw.write_routes(&declarative(&up, ssls(&two, &two_key)));
    gw.wait_for_version(version).await;
    assert_eq!(served(addr, Some("file.test")).await, Ok(der(&two)));
}

#[tokio::test]
async fn ssl_protocols_of_the_listener_and_of_an_object() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["v.test", "v13.test"]);
    let up = upstream("u", Behaviour::Echo).await;
    let ssls = json!([
        {"id": "1", "cert": cert, "key": key, "sni": "v.test"},
        {"id": "2", "cert": cert, "key": key, "sni": "v13.test", "ssl_protocols": ["TLSv1.3"]},
    ]);
    let only = |v: &'static rustls::SupportedProtocolVersion| Opts {
        versions: vec![v],
        ..Opts::default()
    };
    let (tls12, tls13) = (&rustls::version::TLS12, &rustls::version::TLS13);
    let gw = gateway_with(&declarative(&up, ssls.clone()), &tls_config("")).await;
    let addr = gw.gateway.tls_addrs()[0];
    assert!(connect(addr, Some("v.test"), &only(tls12)).await.is_ok());
    assert!(connect(addr, Some("v.test"), &only(tls13)).await.is_ok());
    assert!(connect(addr, Some("v13.test"), &only(tls13)).await.is_ok());
    assert!(
        connect(addr, Some("v13.test"), &only(tls12)).await.is_err(),
        "the object allows TLS 1.3 only"
    );
    drop(gw);
    let gw = gateway_with(
        &declarative(&up, ssls),
        &tls_config("    ssl_protocols: TLSv1.2\n"),
    )
    .await;
    let addr = gw.gateway.tls_addrs()[0];
    assert!(connect(addr, Some("v.test"), &only(tls12)).await.is_ok());
    assert!(
        connect(addr, Some("v.test"), &only(tls13)).await.is_err(),
        "the listener offers TLS 1.2 only"
    );
    assert!(
        connect(addr, Some("v13.test"), &only(tls13)).await.is_ok(),
        "an object's ssl_protocols wins"
    );
}
