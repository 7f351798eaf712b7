//! rustls client configuration for the connection's TLS mode (libpq's sslmode vocabulary).
//!
//! `prefer` and `require` encrypt without checking the certificate (unless a CA
//! is given, when `require` checks the chain like libpq does); `verify-ca`
//! checks the chain but not the host name; `verify-full` checks both. Without
//! a CA the public web roots are trusted.

use std::sync::Arc;

use connvault_plugin_sdk::pb::{self, ErrorCategory, TlsMode};
use connvault_plugin_sdk::{Connection, StageError, Violations};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// TLS material or a server name on a connection whose TLS is disabled
/// would be silently ignored: reported by `validate` on `tls.mode`.
pub fn check_mode(connection: &Connection, violations: &mut Violations) {
    let tls = &connection.tls;
    let material =
        !tls.ca_pem.is_empty() || !tls.client_cert_pem.is_empty() || !tls.server_name.is_empty();
    if connection.tls_mode() == TlsMode::Disable && material {
        violations.add(
            "tls.mode",
            "TLS material or a server name is set but TLS is disabled: choose a TLS mode",
        );
    }
}

/// Checks the PEM material parses (pure): reported by `validate`.
pub fn check_pem(tls: &pb::Tls, violations: &mut Violations) {
    if !tls.ca_pem.is_empty() && certificates(&tls.ca_pem).is_err() {
        violations.add("tls.ca_pem", "could not parse the CA certificate(s)");
    }
    if !tls.client_cert_pem.is_empty() && certificates(&tls.client_cert_pem).is_err() {
        violations.add(
            "tls.client_cert_pem",
            "could not parse the client certificate",
        );
    }
    if !tls.client_key_pem.is_empty()
        && PrivateKeyDer::from_pem_slice(tls.client_key_pem.as_bytes()).is_err()
    {
        // Never echo the key: only say it did not parse.
        violations.add("tls.client_key_pem", "could not parse the client key");
    }
}

fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, ()> {
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ())?;
    if certificates.is_empty() {
        return Err(());
    }
    Ok(certificates)
}

fn config_error(message: &str) -> StageError {
    StageError::new(ErrorCategory::Config, message)
}

/// The server name to present and verify: `tls.server_name`, else the host.
pub fn server_name(tls: &pb::Tls, host: &str) -> Result<ServerName<'static>, StageError> {
    let name = if tls.server_name.is_empty() {
        host
    } else {
        &tls.server_name
    };
    ServerName::try_from(name.to_owned())
        .map_err(|_| config_error("the TLS server name is not a valid DNS name or IP address"))
}

/// Builds the client configuration for `mode` (which must not be `disable`).
pub fn client_config(tls: &pb::Tls, mode: TlsMode) -> Result<Arc<ClientConfig>, StageError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let has_ca = !tls.ca_pem.is_empty();
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        TlsMode::Prefer => Arc::new(AcceptAny(provider.signature_verification_algorithms)),
        TlsMode::Require if !has_ca => {
            Arc::new(AcceptAny(provider.signature_verification_algorithms))
        }
        TlsMode::VerifyFull => webpki(tls, &provider)?,
        _ => Arc::new(ChainOnly(webpki(tls, &provider)?)),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| StageError::new(ErrorCategory::Internal, "no TLS protocol version available"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = if tls.client_cert_pem.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain = certificates(&tls.client_cert_pem)
            .map_err(|()| config_error("could not parse the client certificate"))?;
        let key = PrivateKeyDer::from_pem_slice(tls.client_key_pem.as_bytes())
            .map_err(|_| config_error("could not parse the client key"))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|_| config_error("the client certificate and key do not go together"))?
    };
    Ok(Arc::new(config))
}

fn webpki(
    tls: &pb::Tls,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, StageError> {
    let mut roots = RootCertStore::empty();
    if tls.ca_pem.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        let certificates = certificates(&tls.ca_pem)
            .map_err(|()| config_error("could not parse the CA certificate(s)"))?;
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|_| config_error("a CA certificate is not usable as a trust anchor"))?;
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|_| config_error("could not build a certificate verifier from the CA"))
}

/// `verify-ca`: the chain must lead to a trusted CA; the name may differ.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // webpki checks the chain before the name, so a name error means the chain was good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require`: encryption without authentication of the server, as libpq does.
/// Handshake signatures are still checked, so the peer must hold the key of the
/// certificate it presents.
#[derive(Debug)]
struct AcceptAny(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Describes a failed handshake in words of our own: rustls's text can
/// carry what the peer sent (the names in its certificate, the number of a
/// record type it should not have sent), so only the kind of failure is kept.
pub fn handshake_error(error: &std::io::Error) -> StageError {
    let detail = tls_problem(error).unwrap_or_else(|| crate::net::io_problem(error));
    StageError::new(
        ErrorCategory::Tls,
        format!("TLS handshake failed: {detail}"),
    )
}

/// The [`describe`] phrase of the rustls error inside an I/O error (as
/// tokio-rustls and drivers report handshake failures), if there is one.
pub fn tls_problem(error: &std::io::Error) -> Option<&'static str> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(describe)
}

/// A rustls error as a fixed phrase: what went wrong, never what the peer sent.
pub fn describe(error: &rustls::Error) -> &'static str {
    use rustls::Error;
    match error {
        Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet"
            }
            CertificateError::UnknownIssuer => {
                "the server's certificate is not signed by a trusted CA"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the server's certificate is not valid for the server name"
            }
            CertificateError::Revoked => "the server's certificate is revoked",
            CertificateError::BadSignature => "the server's certificate has a bad signature",
            _ => "the server's certificate was refused",
        },
        Error::NoCertificatesPresented => "the server presented no certificate",
        Error::AlertReceived(_) => "the server refused the handshake (it sent a TLS alert)",
        Error::PeerIncompatible(_) => {
            "the server supports no TLS version or cipher suite connvault accepts"
        }
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
        | Error::PeerMisbehaved(_)
        | Error::PeerSentOversizedRecord
        | Error::DecryptError => {
            "the server did not speak TLS as expected: is TLS enabled on this port?"
        }
        _ => "the TLS handshake could not complete",
    }
}
