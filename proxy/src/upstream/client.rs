//! Pooled HTTP(S) clients to upstream nodes.
//!
//! One hyper-util client per distinct connection policy (TLS verification, client certificate,
//! keep-alive pool, connect timeout). Clients are cached across config reloads, so unchanged
//! upstreams keep their idle connections. Within a client the pool is keyed by scheme, host and
//! port, as APISIX's keep-alive pool key.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::body::RequestBody;

/// The client type used for every upstream request.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// Everything that makes two upstream connections non-interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Verify the upstream's certificate.
    pub verify: bool,
    /// Client certificate and key (PEM) for mTLS.
    pub client_cert: Option<(String, String)>,
    /// The ssl object `client_cert` came from (`tls.client_cert_id`), if any.
    pub client_cert_id: Option<String>,
    /// The TLS server name (SNI, and the name verified) when not the node's host
    /// (`upstream_host` with `pass_host: rewrite`).
    pub sni: Option<String>,
    /// Speak HTTP/2 only (gRPC upstreams): prior knowledge in cleartext, `h2` by ALPN over TLS.
    pub http2: bool,
    /// Idle connections kept per node; 0 disables keep-alive.
    pub pool_size: usize,
    /// Idle time before a pooled connection is closed.
    pub idle_timeout: Duration,
    /// Time allowed to establish a connection (TCP and TLS).
    pub connect_timeout: Duration,
}

/// Builds and caches clients.
pub struct ClientCache {
    roots: Arc<RootCertStore>,
    clients: HashMap<ClientKey, HttpClient>,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The trusted CA file could not be read or holds no certificate.
    #[error("trusted certificates {path}: {message}")]
    TrustedCertificates {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The client certificate or key is not usable.
    #[error("invalid client certificate: {0}")]
    ClientCert(String),
    /// `upstream_host` is not usable as a TLS server name.
    #[error("invalid TLS server name {0}")]
    ServerName(String),
}

impl ClientCache {
    /// A cache trusting the system's roots, plus the PEM bundle at `extra_ca` if given.
    ///
    /// # Errors
    /// When `extra_ca` cannot be read or holds no certificate.
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, ClientError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!("no system root certificates found; https upstreams need a trusted CA");
        }
        if let Some(path) = extra_ca {
            let err = |message: String| ClientError::TrustedCertificates {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            let certs = pem_certs(&pem).map_err(err)?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(err("no certificate found".to_owned()));
            }
        }
        Ok(Self {
            roots: Arc::new(roots),
            clients: HashMap::new(),
        })
    }

    /// The client for `key`, built on first use.
    ///
    /// # Errors
    /// When the client certificate or key cannot be used.
    pub fn get(&mut self, key: &ClientKey) -> Result<HttpClient, ClientError> {
        if let Some(c) = self.clients.get(key) {
            return Ok(c.clone());
        }
        let client = self.build(key)?;
        self.clients.insert(key.clone(), client.clone());
        Ok(client)
    }

    /// Drops clients whose key is not in `used` (their pools close when the last request ends).
    pub fn retain(&mut self, used: &std::collections::HashSet<ClientKey>) {
        self.clients.retain(|k, _| used.contains(k));
    }

    fn build(&self, key: &ClientKey) -> Result<HttpClient, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::ClientCert(e.to_string()))?;
        let builder = if key.verify {
            builder.with_root_certificates(self.roots.clone())
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(plugin_api::tls::NoVerification(
                    provider,
                )))
        };
        let tls = match &key.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, private_key)) => {
                let certs = pem_certs(cert.as_bytes()).map_err(ClientError::ClientCert)?;
                let key = PrivateKeyDer::from_pem_slice(private_key.as_bytes())
                    .map_err(|e| ClientError::ClientCert(format!("client_key: {e}")))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| ClientError::ClientCert(e.to_string()))?
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(key.connect_timeout));
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let builder = match &key.sni {
            Some(name) => {
                let name = ServerName::try_from(name.trim_matches(['[', ']']).to_owned())
                    .map_err(|e| ClientError::ServerName(format!("{name}: {e}")))?;
                builder.with_server_name_resolver(FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = if key.http2 {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        };
        Ok(Client::builder(TokioExecutor::new())
            .http2_only(key.http2)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(key.idle_timeout)
            .pool_max_idle_per_host(key.pool_size)
            .build(connector))
    }
}

fn pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate found".to_owned());
    }
    Ok(certs)
}
