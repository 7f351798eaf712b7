//! Reaching the server: the address, TLS (optionally mutual) and the bearer token.

use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use secrecy::{ExposeSecret, SecretString};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::CliError;

/// How to reach and authenticate to the server (flags of every client verb).
#[derive(Debug, Clone, clap::Args)]
pub struct Connect {
    /// The server: host:port, or an http:// or https:// URL.
    #[arg(
        long,
        env = "CONNVAULT_ADDR",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub addr: String,
    /// The bearer token (a JWT). Prefer the variable: flags land in shell history.
    #[arg(long, env = "CONNVAULT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<SecretString>,
    /// CA certificates (PEM) that issued the server's certificate: turns TLS on.
    #[arg(long, env = "CONNVAULT_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// A client certificate chain (PEM), for a server that requires mutual TLS.
    #[arg(
        long,
        env = "CONNVAULT_CLIENT_CERT",
        requires = "client_key",
        global = true
    )]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "CONNVAULT_CLIENT_KEY",
        requires = "client_cert",
        global = true
    )]
    pub client_key: Option<PathBuf>,
    /// The name the server's certificate must carry [default: the address's host].
    #[arg(long, global = true)]
    pub server_name: Option<String>,
    /// Seconds to wait for the connection.
    #[arg(long, default_value_t = 10, global = true)]
    pub connect_timeout: u64,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel that sends the token.
pub type Authed = InterceptedService<Channel, Bearer>;

impl Connect {
    /// `host:port` of `--addr`, and whether it asked for TLS by scheme.
    fn target(&self) -> (String, bool) {
        let addr = self.addr.trim();
        if let Some(rest) = addr.strip_prefix("https://") {
            (rest.trim_end_matches('/').to_owned(), true)
        } else if let Some(rest) = addr.strip_prefix("http://") {
            (rest.trim_end_matches('/').to_owned(), false)
        } else {
            (addr.to_owned(), false)
        }
    }

    /// Connects (over TLS when a CA is given or the address says https).
    pub async fn channel(&self) -> Result<Authed, CliError> {
        let (target, https) = self.target();
        let timeout = std::time::Duration::from_secs(self.connect_timeout.max(1));
        let endpoint = Endpoint::from_shared(format!("http://{target}"))
            .map_err(|error| CliError::Usage(format!("--addr {}: {error}", self.addr)))?
            .connect_timeout(timeout);
        let channel = if https || self.ca_cert.is_some() {
            let connector = tokio_rustls::TlsConnector::from(Arc::new(self.tls_config()?));
            let host = target
                .rsplit_once(':')
                .map_or(target.as_str(), |(host, _)| host)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let name = ServerName::try_from(self.server_name.clone().unwrap_or(host))
                .map_err(|error| CliError::Usage(format!("--server-name: {error}")))?;
            let addr = target.clone();
            endpoint
                .connect_with_connector(tower::service_fn(move |_| {
                    let connector = connector.clone();
                    let name = name.clone();
                    let addr = addr.clone();
                    async move {
                        let tcp = tokio::net::TcpStream::connect(&addr).await?;
                        let tls = connector.connect(name, tcp).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(tls))
                    }
                }))
                .await
        } else {
            endpoint.connect().await
        }
        .map_err(|error| CliError::Connect(format!("{target}: {}", source_chain(&error))))?;
        let token = match &self.token {
            Some(token) => Some(
                format!("Bearer {}", token.expose_secret().trim())
                    .parse()
                    .map_err(|_| CliError::Usage("the token is not a valid header value".into()))?,
            ),
            None => None,
        };
        Ok(InterceptedService::new(channel, Bearer(token)))
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, CliError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_cert {
            Some(path) => {
                for certificate in CertificateDer::pem_file_iter(path)
                    .map_err(|error| CliError::Input(format!("{}: {error}", path.display())))?
                {
                    let certificate = certificate
                        .map_err(|error| CliError::Input(format!("{}: {error}", path.display())))?;
                    roots
                        .add(certificate)
                        .map_err(|error| CliError::Input(format!("{}: {error}", path.display())))?;
                }
            }
            // Without --ca-cert, the public web PKI (a server behind a public certificate).
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| CliError::Internal(format!("TLS: {error}")))?
        .with_root_certificates(roots);
        let mut config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|error| CliError::Input(format!("{}: {error}", cert.display())))?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|error| CliError::Input(format!("{}: {error}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|error| CliError::Input(format!("client certificate: {error}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// An error and its causes on one line (tonic's transport error says little alone).
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
