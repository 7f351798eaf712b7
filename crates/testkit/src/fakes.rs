//! Fake listeners for the stages a provider can be tested on without its
//! database: a TLS listener with a test CA's certificate, and [`serve`] for
//! a provider's own fake (a peer that speaks another protocol is
//! [`crate::listeners::foreign_server`]).
//!
//! Each runs on a free loopback port in a thread of its own and serves a
//! bounded number of connections, so a test that forgets it leaks nothing
//! for long.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::servers::Pem;

/// Most connections a fake serves before it stops listening.
const MAX_CONNECTIONS: usize = 64;

/// How long a fake keeps one connection before closing it.
const HOLD: Duration = Duration::from_secs(10);

/// The rustls server configuration for `pem` (a certificate chain and its key).
pub fn server_config(pem: &Pem) -> Arc<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pem.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("server certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(pem.key_pem.as_bytes()).expect("server key PEM");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server certificate and key");
    Arc::new(config)
}

/// A listener that completes a TLS handshake with `pem`'s certificate and
/// then reads (and ignores) whatever the client sends; returns its port.
pub fn tls_server(pem: &Pem) -> u16 {
    let config = server_config(pem);
    serve(move |stream| {
        let Ok(connection) = rustls::ServerConnection::new(Arc::clone(&config)) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(connection, stream);
        let mut buffer = [0u8; 1024];
        while matches!(tls.read(&mut buffer), Ok(read) if read > 0) {}
    })
}

/// Runs `handle` on each accepted connection in a thread of its own, with a
/// read timeout of [`HOLD`]; returns the listener's port.
pub fn serve(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(MAX_CONNECTIONS).flatten() {
            let handle = Arc::clone(&handle);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(HOLD));
                handle(stream);
            });
        }
    });
    port
}
