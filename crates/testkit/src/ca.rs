//! A self-signed certificate authority minted per test run.
//!
//! Tests hand `cert_pem()` to the egress client as an extra root, so TLS
//! verification (chain AND host name) runs exactly as in production; nothing
//! ever switches verification off.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A throwaway CA that signs leaf certificates for test hostnames.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// Mint a fresh CA key and self-signed CA certificate.
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "Steward Test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign CA");
        TestCa { issuer }
    }

    /// The CA certificate in PEM form, to be trusted by the client under test.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A rustls server configuration with a fresh leaf certificate whose
    /// subjectAltNames are `hostnames` (DNS names, or IP literals which become
    /// IP SANs). ALPN offers only `http/1.1`, as the egress client does.
    pub fn server_config(&self, hostnames: &[&str]) -> Arc<rustls::ServerConfig> {
        let (leaf, key) = self.issue_leaf(hostnames);
        let chain = vec![leaf.der().clone(), self.issuer.der().clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl TestCa {
    /// A fresh leaf certificate for `hostnames` as PEM files' contents:
    /// `(certificate chain, PKCS#8 private key)`, for servers configured from
    /// files (Steward's own `[tls]` settings).
    pub fn leaf_pem(&self, hostnames: &[&str]) -> (String, String) {
        let (leaf, key) = self.issue_leaf(hostnames);
        (
            format!("{}{}", leaf.pem(), self.issuer.pem()),
            key.serialize_pem(),
        )
    }

    /// A leaf certificate signed by this CA, with `hostnames` as SANs.
    fn issue_leaf(&self, hostnames: &[&str]) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().expect("generate leaf key");
        let names: Vec<String> = hostnames.iter().map(|h| (*h).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, hostnames.first().copied().unwrap_or("test"));
        let leaf = params.signed_by(&key, &self.issuer).expect("sign leaf");
        (leaf, key)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}
