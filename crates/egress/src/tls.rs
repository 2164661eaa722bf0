//! TLS client configuration.
//!
//! We connect to a pinned IP address but verify the certificate against the
//! URL's host NAME: pinning defeats rebinding, verification keeps the
//! document authentic (the client_id URL is the client's identity).

use std::sync::Arc;

use rustls::RootCertStore;

use crate::error::EgressConfigError;

/// Build the client config: webpki roots plus the configured extra roots,
/// an explicit aws-lc-rs provider (no process-global default), ALPN http/1.1.
pub(crate) fn client_config(
    extra_roots_pem: &[Vec<u8>],
) -> Result<Arc<rustls::ClientConfig>, EgressConfigError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for (index, pem) in extra_roots_pem.iter().enumerate() {
        let mut reader = pem.as_slice();
        let mut found = 0usize;
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|source| EgressConfigError::RootPem { index, source })?;
            roots.add(cert).map_err(EgressConfigError::RootRejected)?;
            found += 1;
        }
        if found == 0 {
            return Err(EgressConfigError::RootEmpty { index });
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(EgressConfigError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_certificates_is_rejected() {
        assert!(matches!(
            client_config(&[b"not a pem file".to_vec()]),
            Err(EgressConfigError::RootEmpty { index: 0 })
        ));
        assert!(client_config(&[]).is_ok());
    }
}
