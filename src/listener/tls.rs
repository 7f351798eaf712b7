//! The server's TLS settings: certificate chain and key from PEM files, an
//! optional client CA for mutual TLS, TLS 1.2 and 1.3 only, ALPN `h2`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use serde::Deserialize;
use zeroize::Zeroizing;

/// `[tls]`: where the server's certificate and key are, and whom it trusts
/// for client certificates. Without `cert_file` the listener speaks plaintext.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The server certificate chain, PEM, leaf first.
    pub cert_file: Option<PathBuf>,
    /// The server's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// CA certificates, PEM: when set, every client must present a
    /// certificate they issued (mutual TLS), checked during the handshake.
    pub client_ca_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether the listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some() || self.client_ca_file.is_some()
    }

    /// The files to watch for changes.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        [&self.cert_file, &self.key_file, &self.client_ca_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// Why the TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A setting needs another that is missing.
    #[error("TLS needs both tls.cert_file and tls.key_file ({0})")]
    Incomplete(&'static str),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM section of the expected kind.
    #[error("{path}: no {what} found: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
        /// Why.
        source: pem::Error,
    },
    /// rustls refused the certificate, key or CA (a key that does not match
    /// the certificate, an unsupported key type, a malformed CA).
    #[error("{path}: {source}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The client CA cannot verify client certificates.
    #[error("{path}: {source}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::server::VerifierBuilderError,
    },
}

/// The one crypto provider of the workspace (ring; the providers' TLS uses it too).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        path: path.to_owned(),
        what: "certificate",
        source,
    };
    let certificates = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certificates.is_empty() {
        return Err(pem_error(pem::Error::NoItemsFound));
    }
    Ok(certificates)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The file's bytes are zeroed on drop; the parsed key zeroes its own.
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|source| TlsError::Pem {
        path: path.to_owned(),
        what: "private key",
        source,
    })
}

/// The application protocols a listener offers in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// gRPC: HTTP/2 only.
    H2,
    /// The HTTP listener (browsers, scrapers): HTTP/1.1 only.
    Http11,
}

/// Builds the rustls server configuration from the files `config` names;
/// `Ok(None)` when TLS is not configured.
pub(crate) fn server_config(
    config: &TlsConfig,
    alpn: Alpn,
) -> Result<Option<ServerConfig>, TlsError> {
    if !config.enabled() {
        return Ok(None);
    }
    let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
        return Err(TlsError::Incomplete(if config.cert_file.is_none() {
            "tls.cert_file is not set"
        } else {
            "tls.key_file is not set"
        }));
    };
    let chain = certificates(cert_file)?;
    let key = private_key(key_file)?;
    let provider = provider();
    // rustls implements nothing older than TLS 1.2; naming both versions
    // keeps it so whatever its defaults become.
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Refused {
            path: cert_file.clone(),
            source,
        })?;
    let builder = match &config.client_ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates(ca_file)? {
                roots.add(certificate).map_err(|source| TlsError::Refused {
                    path: ca_file.clone(),
                    source,
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|source| TlsError::ClientCa {
                    path: ca_file.clone(),
                    source,
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    // with_single_cert also checks that the key belongs to the leaf certificate.
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Refused {
            path: key_file.clone(),
            source,
        })?;
    server.alpn_protocols = match alpn {
        Alpn::H2 => vec![b"h2".to_vec()],
        Alpn::Http11 => vec![b"http/1.1".to_vec()],
    };
    Ok(Some(server))
}
