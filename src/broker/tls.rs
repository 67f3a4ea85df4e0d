//! TLS for the embedded broker: the server's certificate (chain) and key,
//! and for its Schema Registry optionally the CA that client certificates
//! must be signed by (mTLS).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// A TLS server configuration from a PEM certificate (chain) and private
/// key; with `client_ca`, clients must present a certificate signed by a CA
/// in that PEM file.
pub fn server_tls(
    certfile: &Path,
    keyfile: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>> {
    let read = |path: &Path| {
        std::fs::read(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))
    };
    let cert_pem = read(certfile)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Config(format!(
                "certfile {} is not valid PEM: {e}",
                certfile.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "certfile {} holds no certificate: expected PEM '-----BEGIN CERTIFICATE-----' \
             blocks (the server certificate first, then its chain)",
            certfile.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(keyfile)?).map_err(|e| {
        Error::Config(format!(
            "keyfile {} holds no usable private key ({e}): expected an unencrypted PEM \
             'PRIVATE KEY', 'RSA PRIVATE KEY' or 'EC PRIVATE KEY'",
            keyfile.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(path)?).flatten() {
                roots
                    .add(cert)
                    .map_err(|e| Error::Config(format!("client CA {}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(Error::Config(format!(
                    "client CA file {} holds no PEM certificate",
                    path.display()
                )));
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| Error::Config(format!("client CA {}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        Error::Config(format!(
            "certfile {} and keyfile {} do not make a usable TLS identity: {e}",
            certfile.display(),
            keyfile.display()
        ))
    })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tls_files_are_config_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("tskafka-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let err = server_tls(&cert, &key, None).err().unwrap().to_string();
        assert!(
            err.contains("cert.pem") && err.contains("no certificate"),
            "{err}"
        );
        let err = server_tls(&dir.join("missing.pem"), &key, None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
