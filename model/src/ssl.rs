//! SSL: a certificate and private key, served for matching SNIs (`type: server`) or presented to
//! upstreams (`type: client`), with optional client-certificate verification (mTLS).

use regex::Regex;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{is_host_pattern, one_or_many, Checker, Id, Labels};

/// An SSL object as stored (APISIX's ssl schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ssl {
    /// SSL id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// `server` (default): served to clients; `client`: presented to upstreams.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<SslType>,
    /// Certificate chain (PEM).
    pub cert: String,
    /// Private key of `cert` (PEM).
    pub key: String,
    /// Host pattern this certificate is served for (exclusive with `snis`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Host patterns this certificate is served for (exclusive with `sni`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snis: Option<Vec<String>>,
    /// Extra certificates (PEM), e.g. an ECC one beside an RSA `cert`; paired with `keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certs: Option<Vec<String>>,
    /// Private keys of `certs` (PEM), in the same order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// Client-certificate verification (mTLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<SslClient>,
    /// 1 = enabled (default), 0 = not served.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1))]
    pub status: Option<u8>,
    /// TLS versions offered; absent means the listener's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_protocols: Option<Vec<SslProtocol>>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub desc: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// Creation time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// Update time (unix seconds, server-managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
}

/// What an SSL object is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SslType {
    /// Served to clients whose SNI matches.
    #[default]
    Server,
    /// Presented to upstreams (referenced by `upstream.tls.client_cert_id`).
    Client,
}

/// A TLS version in `ssl_protocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SslProtocol {
    /// TLS 1.1.
    #[serde(rename = "TLSv1.1")]
    TlsV1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSv1.2")]
    TlsV1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSv1.3")]
    TlsV1_3,
}

/// `client`: verification of client certificates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SslClient {
    /// CA certificates (PEM) that client certificates must chain to.
    pub ca: String,
    /// Maximum verification depth (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Request paths (regexes) for which no client certificate is required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_mtls_uri_regex: Option<Vec<String>>,
}

impl Ssl {
    /// The type (`server` by default).
    pub fn kind(&self) -> SslType {
        self.kind.unwrap_or_default()
    }

    /// Checks the rules the type cannot express.
    pub fn validate(&self, check: &mut Checker<'_>) {
        let snis = one_or_many(check, "sni", self.sni.as_ref(), "snis", self.snis.as_ref());
        if self.kind() == SslType::Server && self.sni.is_none() && self.snis.is_none() {
            check.error("sni", "one of sni or snis is required for type server");
        }
        match (&self.sni, &self.snis) {
            (Some(sni), None) if !is_host_pattern(sni) => {
                check.error("sni", format!("invalid host `{sni}`"));
            }
            (None, Some(_)) => check.hosts("snis", &snis),
            _ => {}
        }
        let mut check_pairs = pem_certs(check, "cert", &self.cert);
        check_pairs &= pem_key(check, "key", &self.key);
        let certs = self.certs.as_deref().unwrap_or_default();
        let keys = self.keys.as_deref().unwrap_or_default();
        if certs.len() != keys.len() {
            check.error(
                "keys",
                "certs and keys must have the same number of entries",
            );
            check_pairs = false;
        }
        for (i, c) in certs.iter().enumerate() {
            check_pairs &= pem_certs(check, &format!("certs[{i}]"), c);
        }
        for (i, k) in keys.iter().enumerate() {
            check_pairs &= pem_key(check, &format!("keys[{i}]"), k);
        }
        if check_pairs {
            let provider = rustls::crypto::ring::default_provider();
            for (i, (cert, key)) in self.pairs().enumerate() {
                if let Err(e) = certified_key(cert, key, &provider) {
                    let field = if i == 0 {
                        "key".to_owned()
                    } else {
                        format!("keys[{}]", i - 1)
                    };
                    check.error(&field, format!("failed to handle cert-key pair[{i}]: {e}"));
                }
            }
        }
        if let Some(client) = &self.client {
            pem_certs(check, "client.ca", &client.ca);
            for (i, re) in client.skip_mtls_uri_regex.iter().flatten().enumerate() {
                if let Err(e) = Regex::new(re) {
                    check.error(
                        &format!("client.skip_mtls_uri_regex[{i}]"),
                        format!("invalid regex: {e}"),
                    );
                }
            }
        }
        if self.status.is_some_and(|s| s > 1) {
            check.error("status", "must be 0 or 1");
        }
        check.metadata(None, self.desc.as_deref(), self.labels.as_ref());
    }
}

impl Ssl {
    /// Every certificate with its key: `cert`/`key` first, then `certs`/`keys` in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        let extra = self
            .certs
            .iter()
            .flatten()
            .zip(self.keys.iter().flatten())
            .map(|(c, k)| (c.as_str(), k.as_str()));
        std::iter::once((self.cert.as_str(), self.key.as_str())).chain(extra)
    }
}

/// A PEM certificate chain and its PEM private key as a rustls signing identity.
///
/// # Errors
/// When either does not parse, the key type is not supported, or the key is not the
/// certificate's.
pub fn certified_key(
    cert: &str,
    key: &str,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("failed to parse cert: {}", pem_error(&e)))?;
    if chain.is_empty() {
        return Err("failed to parse cert: no certificate found".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| format!("failed to parse key: {}", pem_error(&e)))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => "the key does not match the certificate".to_owned(),
        other => format!("unusable key: {other}"),
    })
}

/// APISIX's checks of an SSL's PEM texts, after its schema and with its messages (OpenSSL's
/// wording for what does not parse): `cert`/`key`, then (servers only) as many `certs` as `keys`
/// and each pair, then `client.ca`. Whether a key is its certificate's is left to
/// [`Ssl::validate`], as APISIX does not check it.
///
/// # Errors
/// APISIX's message for the first failure.
pub fn check_as_apisix(value: &Value) -> Result<(), String> {
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    let list = |name: &str| -> Vec<String> {
        value
            .get(name)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    if let (Some(cert), Some(key)) = (text(value, "cert"), text(value, "key")) {
        parse_pem_pair(&cert, Some(&key))?;
    }
    if text(value, "type").as_deref() == Some("client") {
        return Ok(());
    }
    let (certs, keys) = (list("certs"), list("keys"));
    if certs.len() != keys.len() {
        return Err("mismatched number of certs and keys".to_owned());
    }
    for (i, (cert, key)) in certs.iter().zip(&keys).enumerate() {
        parse_pem_pair(cert, Some(key))
            .map_err(|e| format!("failed to handle cert-key pair[{}]: {e}", i + 1))?;
    }
    if let Some(ca) = value.get("client").and_then(|c| text(c, "ca")) {
        parse_pem_pair(&ca, None).map_err(|e| format!("failed to validate client_cert: {e}"))?;
    }
    Ok(())
}

/// Whether a PEM certificate chain (and a PEM private key) parse, as APISIX's `validate`
/// answers; secret references are left alone.
fn parse_pem_pair(cert: &str, key: Option<&str>) -> Result<(), String> {
    if is_secret_ref(cert) || key.is_some_and(is_secret_ref) {
        return Ok(());
    }
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>();
    let parsed = chain.is_ok_and(|chain| {
        !chain.is_empty()
            && chain
                .iter()
                .all(|der| webpki::EndEntityCert::try_from(der).is_ok())
    });
    if !parsed {
        return Err("failed to parse cert: PEM_read_bio_X509_AUX() failed".to_owned());
    }
    let Some(key) = key else {
        return Ok(());
    };
    let usable = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .is_ok_and(|der| rustls::crypto::ring::sign::any_supported_type(&der).is_ok());
    if usable {
        Ok(())
    } else {
        Err("failed to parse key: PEM_read_bio_PrivateKey() failed".to_owned())
    }
}

/// Whether `s` is a secret reference (`$secret://...`, `$env://...`) rather than a value.
fn is_secret_ref(s: &str) -> bool {
    s.starts_with("$secret://") || s.starts_with("$env://")
}

/// Checks that `text` holds at least one PEM certificate and that every one decodes.
fn pem_certs(check: &mut Checker<'_>, field: &str, text: &str) -> bool {
    if is_secret_ref(text) {
        check.error(field, "secret references are not supported yet");
        return false;
    }
    let mut found = false;
    for item in CertificateDer::pem_slice_iter(text.as_bytes()) {
        match item {
            Ok(_) => found = true,
            Err(e) => {
                check.error(field, format!("invalid PEM certificate: {}", pem_error(&e)));
                return false;
            }
        }
    }
    if !found {
        check.error(
            field,
            "expected a PEM certificate (-----BEGIN CERTIFICATE-----)",
        );
    }
    found
}

/// Checks that `text` holds a PEM private key (PKCS#8, PKCS#1 or SEC1) that decodes.
fn pem_key(check: &mut Checker<'_>, field: &str, text: &str) -> bool {
    if is_secret_ref(text) {
        check.error(field, "secret references are not supported yet");
        return false;
    }
    match PrivateKeyDer::from_pem_slice(text.as_bytes()) {
        Ok(_) => return true,
        Err(pem::Error::NoItemsFound) => check.error(
            field,
            "expected a PEM private key (-----BEGIN PRIVATE KEY-----)",
        ),
        Err(e) => check.error(field, format!("invalid PEM private key: {}", pem_error(&e))),
    }
    false
}

/// A PEM error as text, with marker lines shown as text rather than bytes.
fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!(
                "missing `-----END {}-----`",
                String::from_utf8_lossy(end_marker)
            )
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("illegal section start `{}`", String::from_utf8_lossy(line))
        }
        other => other.to_string(),
    }
}
