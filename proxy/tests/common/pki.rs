//! A test certificate authority (rcgen): a CA and leaf certificates it signs, in PEM.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA signing leaf certificates.
pub struct Pki {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// A fresh self-signed CA.
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let ca = params.self_signed(&key).expect("ca");
        Pki {
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An ECDSA P-256 leaf for `names` (its SANs): (certificate, key).
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        self.leaf_with(names, KeyPair::generate().expect("key"))
    }

    /// A leaf for `names` with the key `key`: (certificate, key).
    pub fn leaf_with(&self, names: &[&str], key: KeyPair) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        (cert.pem(), key.serialize_pem())
    }
}
