//! The certificates the TLS listeners serve: from `ssls` objects, chosen by SNI, with per-object
//! mTLS.
//!
//! Every snapshot carries a [`CertIndex`] built from its `ssls` (off the request path; objects that
//! did not change are reused, so a certificate is parsed once per change, never per handshake).
//! A handshake reads the ClientHello, looks the SNI up in the current snapshot's index and
//! continues with the chosen object's [`ServerConfig`]: its certificates (the [`ResolvesServerCert`]
//! picks the pair whose key type the client can verify, e.g. ECDSA or RSA), its TLS versions and
//! its client-certificate verifier. Each object has its own session cache, so a session resumed
//! under one name can never skip another object's client-certificate check.
//!
//! Lookup order for a name: `snis` exact, `snis` wildcard (`*.example.com` covers exactly one
//! more label), then the certificates' SAN lists (exact, then wildcard), then a bare `*`. With no
//! SNI, or no match, `apisix.ssl.fallback_sni` is looked up the same way.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use regex::RegexSet;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};

use model::{certified_key, Ssl, SslProtocol, SslType};

/// Node-level TLS settings that shape every index (`apisix.ssl`).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Versions offered when an object sets no `ssl_protocols`.
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// Looked up when the client sends no SNI or nothing matches it.
    pub fallback_sni: Option<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            versions: vec![&rustls::version::TLS12, &rustls::version::TLS13],
            fallback_sni: None,
        }
    }
}

impl TlsSettings {
    /// Settings from `ssl_protocols` names (as [`crate::config::SslSection::protocols`] returns).
    pub fn new(protocols: &[&str], fallback_sni: Option<String>) -> TlsSettings {
        let versions = protocols
            .iter()
            .filter_map(|p| match *p {
                "TLSv1.2" => Some(&rustls::version::TLS12),
                "TLSv1.3" => Some(&rustls::version::TLS13),
                _ => None,
            })
            .collect::<Vec<_>>();
        let defaults = TlsSettings::default();
        TlsSettings {
            versions: if versions.is_empty() {
                defaults.versions
            } else {
                versions
            },
            fallback_sni: fallback_sni.map(|n| normalize(&n)),
        }
    }
}

/// One `ssls` object, ready to serve.
pub struct Served {
    /// The object's id.
    pub id: String,
    /// Offers h2 and http/1.1 by ALPN.
    h2: Arc<ServerConfig>,
    /// Offers http/1.1 only.
    h1: Arc<ServerConfig>,
    /// Client-certificate policy, when the object verifies clients.
    pub mtls: Option<Mtls>,
}

impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served").field("id", &self.id).finish()
    }
}

impl Served {
    /// The server config for a listener that offers HTTP/2 (`http2`) or not.
    pub fn config(&self, http2: bool) -> Arc<ServerConfig> {
        if http2 {
            self.h2.clone()
        } else {
            self.h1.clone()
        }
    }
}

/// `client` of an ssl object: what a connection must show.
#[derive(Debug)]
pub struct Mtls {
    /// Most intermediate CA certificates between the client's certificate and `client.ca` in
    /// the verified chain (`depth`, default 1), as nginx's `ssl_verify_depth` (OpenSSL): neither
    /// the client's certificate nor the trust anchor counts, so 0 allows only certificates
    /// signed by `client.ca` itself.
    pub depth: u32,
    /// Request paths allowed without a client certificate (`skip_mtls_uri_regex`); when set, the
    /// handshake asks for a certificate without requiring one.
    pub skip: Option<RegexSet>,
    /// `client.ca`, the trust anchors the chain is verified against.
    roots: Arc<RootCertStore>,
    /// The signature algorithms the handshake's verifier accepts.
    algorithms: WebPkiSupportedAlgorithms,
}

impl Mtls {
    /// Used by [`crate::server`] after the handshake (whose verifier checked the chain but does
    /// not say which path it took): whether some verified path from the presented certificate
    /// to `client.ca` has at most `depth` intermediates. Certificates the client sends that are
    /// not on that path (the CA itself, as curl and OpenSSL send it) do not count. `None` (no
    /// certificate) passes: the skip paths decide; an empty list fails.
    pub fn chain_within_depth(&self, presented: Option<&[CertificateDer<'_>]>) -> bool {
        let Some(presented) = presented else {
            return true;
        };
        let Some((leaf, sent)) = presented.split_first() else {
            return false;
        };
        let Ok(leaf) = webpki::EndEntityCert::try_from(leaf) else {
            return false;
        };
        let depth = usize::try_from(self.depth).unwrap_or(usize::MAX);
        // Rejecting a longer path makes webpki try the others, so a shorter one still passes.
        let within = |path: &webpki::VerifiedPath<'_>| {
            if path.intermediate_certificates().count() <= depth {
                Ok(())
            } else {
                Err(webpki::Error::MaximumPathDepthExceeded)
            }
        };
        leaf.verify_for_usage(
            self.algorithms.all,
            &self.roots.roots,
            sent,
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            Some(&within),
        )
        .is_ok()
    }

    /// Whether a request for `path` may proceed on a connection that showed no certificate.
    pub fn allows_without_cert(&self, path: &str) -> bool {
        self.skip.as_ref().is_some_and(|s| s.is_match(path))
    }
}

/// How a name found its certificate (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Listed in `snis`.
    Exact,
    /// A `*.` pattern in `snis`.
    Wildcard,
    /// A DNS name in the certificate's SAN list.
    San,
    /// A `*.` DNS name in the certificate's SAN list.
    SanWildcard,
    /// A bare `*` in `snis`.
    Any,
}

/// Why no certificate was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoMatch {
    /// The client sent no SNI and there is no usable `fallback_sni`.
    NoSni,
    /// Nothing matches the name, nor the `fallback_sni` if any.
    Unknown(String),
}

impl fmt::Display for NoMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoMatch::NoSni => f.write_str(
                "the client sent no SNI and apisix.ssl.fallback_sni is unset or matches nothing",
            ),
            NoMatch::Unknown(name) => write!(
                f,
                "no ssl object lists `{name}` in snis or in its certificates' SANs, and fallback_sni matches nothing"
            ),
        }
    }
}

/// A found certificate.
#[derive(Debug)]
pub struct Found<'a> {
    /// The object.
    pub served: &'a Arc<Served>,
    /// How the name matched.
    pub how: How,
    /// Whether the match is for `fallback_sni` rather than the client's name.
    pub fallback: bool,
}

/// The served certificates of one snapshot, indexed by name.
#[derive(Default)]
pub struct CertIndex {
    entries: Vec<Arc<Served>>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
    san: HashMap<String, usize>,
    san_wildcard: HashMap<String, usize>,
    any: Option<usize>,
    fallback_sni: Option<String>,
    /// Some object verifies client certificates.
    has_mtls: bool,
}

impl fmt::Debug for CertIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertIndex")
            .field("entries", &self.entries)
            .finish()
    }
}

impl CertIndex {
    /// Whether no certificate is served.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether some served object verifies client certificates.
    pub fn has_mtls(&self) -> bool {
        self.has_mtls
    }

    /// The object serving `name` (lower case), without the fallback.
    pub fn find_name(&self, name: &str) -> Option<(&Arc<Served>, How)> {
        self.lookup(name.trim_end_matches('.'))
            .map(|(i, how)| (&self.entries[i], how))
    }

    /// The certificate for `sni` (see the module docs for the order).
    ///
    /// # Errors
    /// [`NoMatch`] when neither the name nor `fallback_sni` has a certificate.
    pub fn find(&self, sni: Option<&str>) -> Result<Found<'_>, NoMatch> {
        if let Some(name) = sni {
            if let Some((i, how)) = self.lookup(&normalize(name)) {
                return Ok(Found {
                    served: &self.entries[i],
                    how,
                    fallback: false,
                });
            }
        }
        if let Some((i, how)) = self.fallback_sni.as_deref().and_then(|f| self.lookup(f)) {
            return Ok(Found {
                served: &self.entries[i],
                how,
                fallback: true,
            });
        }
        Err(match sni {
            None => NoMatch::NoSni,
            Some(name) => NoMatch::Unknown(name.to_owned()),
        })
    }

    fn lookup(&self, name: &str) -> Option<(usize, How)> {
        let parent = name.split_once('.').map(|(_, p)| p);
        if let Some(&i) = self.exact.get(name) {
            return Some((i, How::Exact));
        }
        if let Some(&i) = parent.and_then(|p| self.wildcard.get(p)) {
            return Some((i, How::Wildcard));
        }
        if let Some(&i) = self.san.get(name) {
            return Some((i, How::San));
        }
        if let Some(&i) = parent.and_then(|p| self.san_wildcard.get(p)) {
            return Some((i, How::SanWildcard));
        }
        self.any.map(|i| (i, How::Any))
    }
}

/// Lower case, without a trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// An object as parsed (`None`: not servable) with its certificates' SAN DNS names.
type Prepared = (Option<Arc<Served>>, Vec<String>);

/// Builds indexes, reusing the parsed form of objects that did not change between builds.
#[derive(Default)]
pub struct IndexBuilder {
    settings: TlsSettings,
    /// The objects of the last build with what they became.
    last: Vec<(Arc<Ssl>, Prepared)>,
    index: Arc<CertIndex>,
}

impl IndexBuilder {
    /// A builder with `settings`.
    pub fn new(settings: TlsSettings) -> IndexBuilder {
        IndexBuilder {
            settings,
            last: Vec::new(),
            index: Arc::default(),
        }
    }

    /// The index for `ssls`; the same `Arc` as last time when no object changed.
    pub fn build(&mut self, ssls: &[Arc<Ssl>]) -> Arc<CertIndex> {
        if self.last.len() == ssls.len()
            && self
                .last
                .iter()
                .zip(ssls)
                .all(|(l, s)| Arc::ptr_eq(&l.0, s))
        {
            return self.index.clone();
        }
        // The old objects are held in `previous` until the end, so their addresses stay unique.
        let previous_objects = std::mem::take(&mut self.last);
        let mut previous: HashMap<*const Ssl, Prepared> = previous_objects
            .iter()
            .map(|(ssl, prepared)| (Arc::as_ptr(ssl), prepared.clone()))
            .collect();
        let mut next = Vec::with_capacity(ssls.len());
        for ssl in ssls {
            let prepared = match previous.remove(&Arc::as_ptr(ssl)) {
                Some(done) => done,
                None => self.prepare(ssl),
            };
            next.push((ssl.clone(), prepared));
        }
        drop(previous_objects);
        let mut index = CertIndex {
            fallback_sni: self.settings.fallback_sni.clone(),
            ..CertIndex::default()
        };
        for (ssl, (served, sans)) in &next {
            let Some(served) = served else { continue };
            let i = index.entries.len();
            index.entries.push(served.clone());
            index.has_mtls |= served.mtls.is_some();
            for sni in ssl.sni.iter().chain(ssl.snis.iter().flatten()) {
                let sni = normalize(sni);
                let (map, key) = match sni.strip_prefix("*.") {
                    _ if sni == "*" => {
                        index.any.get_or_insert(i);
                        continue;
                    }
                    Some(parent) => (&mut index.wildcard, parent.to_owned()),
                    None => (&mut index.exact, sni),
                };
                if let Some(&other) = map.get(&key) {
                    tracing::warn!(sni = %key, ssl = %served.id, served_by = %index.entries[other].id, "sni listed by two ssl objects; the first (by id) is served");
                    continue;
                }
                map.insert(key, i);
            }
            for san in sans {
                let (map, key) = match san.strip_prefix("*.") {
                    Some(parent) => (&mut index.san_wildcard, parent.to_owned()),
                    None => (&mut index.san, san.clone()),
                };
                map.entry(key).or_insert(i);
            }
        }
        self.last = next;
        self.index = Arc::new(index);
        self.index.clone()
    }

    /// Parses one object; objects that are disabled, for upstreams, or unusable serve nothing.
    fn prepare(&self, ssl: &Ssl) -> (Option<Arc<Served>>, Vec<String>) {
        let id = ssl.id.as_ref().map_or("", |i| i.0.as_str()).to_owned();
        if ssl.status == Some(0) || ssl.kind() == SslType::Client {
            return (None, Vec::new());
        }
        match served(ssl, &id, &self.settings) {
            Ok((served, sans)) => {
                tracing::debug!(ssl = %id, ?sans, "ssl object ready");
                (Some(Arc::new(served)), sans)
            }
            Err(e) => {
                tracing::error!(ssl = %id, error = %e, "ssl object cannot be served");
                (None, Vec::new())
            }
        }
    }
}

/// The parsed object and the DNS names of its certificates' SANs.
fn served(ssl: &Ssl, id: &str, settings: &TlsSettings) -> Result<(Served, Vec<String>), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut keys = Vec::new();
    let mut sans = Vec::new();
    for (i, (cert, key)) in ssl.pairs().enumerate() {
        let certified =
            certified_key(cert, key, &provider).map_err(|e| format!("cert-key pair[{i}]: {e}"))?;
        if let Some(leaf) = certified.cert.first() {
            if let Ok(parsed) = webpki::EndEntityCert::try_from(leaf) {
                for name in parsed.valid_dns_names() {
                    let name = normalize(name);
                    if !sans.contains(&name) {
                        sans.push(name);
                    }
                }
            }
        }
        keys.push(Arc::new(certified));
    }
    let versions: Vec<&'static SupportedProtocolVersion> = match &ssl.ssl_protocols {
        None => settings.versions.clone(),
        Some(list) => list
            .iter()
            .filter_map(|p| match p {
                SslProtocol::TlsV1_2 => Some(&rustls::version::TLS12),
                SslProtocol::TlsV1_3 => Some(&rustls::version::TLS13),
                SslProtocol::TlsV1_1 => None,
            })
            .collect(),
    };
    if versions.is_empty() {
        return Err("ssl_protocols leaves no supported version (TLSv1.2 or TLSv1.3)".to_owned());
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let (builder, mtls) = match &ssl.client {
        None => (builder.with_no_client_auth(), None),
        Some(client) => {
            let mut roots = RootCertStore::empty();
            let cas = CertificateDer::pem_slice_iter(client.ca.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client.ca: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(cas);
            if added == 0 {
                return Err("client.ca: no usable CA certificate".to_owned());
            }
            let skip = match client.skip_mtls_uri_regex.as_deref() {
                Some(list) if !list.is_empty() => Some(
                    RegexSet::new(list).map_err(|e| format!("client.skip_mtls_uri_regex: {e}"))?,
                ),
                _ => None,
            };
            let roots = Arc::new(roots);
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            if skip.is_some() {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| format!("client.ca: {e}"))?;
            let mtls = Mtls {
                depth: client.depth.unwrap_or(1),
                skip,
                roots,
                algorithms: provider.signature_verification_algorithms,
            };
            (builder.with_client_cert_verifier(verifier), Some(mtls))
        }
    };
    let mut h1 = builder.with_cert_resolver(Arc::new(Keys(keys)));
    h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut h2 = h1.clone();
    h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((
        Served {
            id: id.to_owned(),
            h2: Arc::new(h2),
            h1: Arc::new(h1),
            mtls,
        },
        sans,
    ))
}

/// The certificate/key pairs of one object: the first whose key the client can verify wins.
#[derive(Debug)]
struct Keys(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for Keys {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        self.0
            .iter()
            .find(|k| k.key.choose_scheme(schemes).is_some())
            .cloned()
    }
}

/// Remembers the names already warned about, so an unknown SNI is logged at warn level once
/// (later at debug). Bounded: past the limit every miss is logged at debug only.
#[derive(Default)]
pub struct MissLog(Mutex<HashSet<String>>);

const MISS_LOG_LIMIT: usize = 1024;

impl MissLog {
    /// Logs that `sni` found no certificate.
    pub fn miss(&self, sni: Option<&str>, why: &NoMatch) {
        let key = sni.unwrap_or("").to_owned();
        let first = match self.0.lock() {
            Ok(mut seen) if seen.len() < MISS_LOG_LIMIT => seen.insert(key),
            _ => false,
        };
        if first {
            tracing::warn!(sni = sni.unwrap_or("-"), reason = %why, "TLS handshake refused: no certificate");
        } else {
            tracing::debug!(sni = sni.unwrap_or("-"), reason = %why, "TLS handshake refused: no certificate");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Id;

    fn ssl(id: &str, snis: &[&str], sans: &[&str]) -> Arc<Ssl> {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.self_signed(&key).expect("cert");
        Arc::new(Ssl {
            id: Some(Id(id.to_owned())),
            cert: cert.pem(),
            key: key.serialize_pem(),
            snis: Some(snis.iter().map(|s| s.to_string()).collect()),
            ..Ssl::default()
        })
    }

    #[test]
    fn lookup_order() {
        let ssls = vec![
            ssl("exact", &["api.test", "Other.Test."], &["api.test"]),
            ssl("wild", &["*.api.test"], &["*.api.test"]),
            ssl(
                "sans",
                &["sans.test"],
                &["sans.test", "extra.test", "*.w.test"],
            ),
            ssl("dup", &["api.test"], &["api.test"]),
            ssl("any", &["*"], &["any.test"]),
        ];
        let mut builder = IndexBuilder::default();
        let index = builder.build(&ssls);
        let table = [
            ("api.test", "exact", How::Exact),
            ("API.test.", "exact", How::Exact),
            ("other.test", "exact", How::Exact),
            ("a.api.test", "wild", How::Wildcard),
            ("extra.test", "sans", How::San),
            ("x.w.test", "sans", How::SanWildcard),
            ("a.b.api.test", "any", How::Any),
            ("nothing.test", "any", How::Any),
        ];
        for (name, id, how) in table {
            let found = index.find(Some(name)).expect(name);
            assert_eq!((found.served.id.as_str(), found.how), (id, how), "{name}");
            assert!(!found.fallback);
        }
    }

    #[test]
    fn fallback_and_misses() {
        let ssls = vec![ssl("a", &["a.test"], &["a.test"])];
        let mut builder = IndexBuilder::default();
        let index = builder.build(&ssls);
        assert_eq!(index.find(None).expect_err("no sni"), NoMatch::NoSni);
        assert_eq!(
            index.find(Some("b.test")).expect_err("unknown"),
            NoMatch::Unknown("b.test".into())
        );
        let mut builder = IndexBuilder::new(TlsSettings::new(&["TLSv1.3"], Some("A.test".into())));
        let index = builder.build(&ssls);
        let found = index.find(None).expect("fallback");
        assert!(found.fallback && found.served.id == "a");
        assert!(index.find(Some("b.test")).expect("fallback").fallback);
    }

    #[test]
    fn unchanged_objects_are_not_parsed_again() {
        let (a, b) = (
            ssl("a", &["a.test"], &["a.test"]),
            ssl("b", &["b.test"], &["b.test"]),
        );
        let mut builder = IndexBuilder::default();
        let first = builder.build(&[a.clone(), b.clone()]);
        assert!(Arc::ptr_eq(&first, &builder.build(&[a.clone(), b.clone()])));
        let b2 = ssl("b", &["b.test"], &["b.test"]);
        let second = builder.build(&[a.clone(), b2]);
        assert!(!Arc::ptr_eq(&first, &second));
        let served = |i: &CertIndex, n: &str| i.find(Some(n)).expect(n).served.clone();
        assert!(Arc::ptr_eq(
            &served(&first, "a.test"),
            &served(&second, "a.test")
        ));
        assert!(!Arc::ptr_eq(
            &served(&first, "b.test"),
            &served(&second, "b.test")
        ));
    }

    #[test]
    fn disabled_client_and_broken_objects_serve_nothing() {
        let mut off = (*ssl("off", &["off.test"], &["off.test"])).clone();
        off.status = Some(0);
        let mut client = (*ssl("client", &["c.test"], &["c.test"])).clone();
        client.kind = Some(SslType::Client);
        let mut broken = (*ssl("broken", &["x.test"], &["x.test"])).clone();
        broken.key = ssl("other", &[], &["x.test"]).key.clone();
        let mut builder = IndexBuilder::default();
        let index = builder.build(&[Arc::new(off), Arc::new(client), Arc::new(broken)]);
        assert!(index.is_empty());
    }
}
