//! The listening socket in front of tonic: a bounded number of connections,
//! each admitted only once its TLS handshake (when configured) and HTTP/2
//! preface arrived within a deadline, accept errors met with a pause, and
//! refusals counted in a log line a second rather than one each.
//!
//! tonic serves what [`Incoming`] yields; everything before HTTP/2 happens here:
//! - `accept.rs`: the accept loop, the connection limit, the pause after errors;
//! - `handshake.rs`: TLS and the preface under `handshake_timeout_ms`;
//! - `limits.rs`: the open-file limit, handshake slots, the log throttle;
//! - `tls.rs` / `reload.rs`: the certificate files and their reloading;
//! - `conn.rs`: the connection handed to tonic.

mod accept;
mod conn;
mod handshake;
pub(crate) mod limits;
mod reload;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

pub use conn::Connection;
pub use limits::raise_open_file_limit;
pub use tls::{TlsConfig, TlsError};

/// `[listener]`: how many connections the server holds and how long a new
/// one may take to start speaking HTTP/2.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// Connections open at once, handshaking or established; past it new
    /// connections wait in the kernel's backlog. Lowered at start to fit
    /// the open-file limit.
    pub max_connections: usize,
    /// Connections in their handshake (TLS and the HTTP/2 preface) at once;
    /// when all are taken, the oldest handshake is closed for the newcomer.
    pub max_handshakes: usize,
    /// How long a connection may take from accept to its HTTP/2 preface
    /// (TLS handshake included), in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Seconds between HTTP/2 pings on a connection that has been silent
    /// (0: no pings, a vanished client is noticed only by TCP).
    pub http2_keepalive_interval_secs: u64,
    /// Seconds to wait for a ping's answer before closing the connection.
    pub http2_keepalive_timeout_secs: u64,
    /// Seconds a connection may live before the server sends GOAWAY and the
    /// client reconnects (0: no limit). A client that holds an idle
    /// connection open forever would otherwise keep its slot forever.
    pub max_connection_age_secs: u64,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_handshakes: 1_024,
            handshake_timeout_ms: 10_000,
            http2_keepalive_interval_secs: 60,
            http2_keepalive_timeout_secs: 20,
            max_connection_age_secs: 3_600,
        }
    }
}

impl ListenerConfig {
    /// The HTTP/2 ping interval, `None` when pings are off.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        (self.http2_keepalive_interval_secs > 0)
            .then(|| Duration::from_secs(self.http2_keepalive_interval_secs))
    }

    /// How long a connection may live, `None` without a limit.
    pub fn max_connection_age(&self) -> Option<Duration> {
        (self.max_connection_age_secs > 0)
            .then(|| Duration::from_secs(self.max_connection_age_secs))
    }

    /// How long a ping may go unanswered.
    pub fn keepalive_timeout(&self) -> Duration {
        Duration::from_secs(self.http2_keepalive_timeout_secs.max(1))
    }
}

/// Whether serving plaintext on `listen` is refused: anywhere but loopback
/// without TLS, unless `--dev` or `--insecure-plaintext` says otherwise.
pub fn plaintext_refused(listen: SocketAddr, tls: &TlsConfig, dev: bool, insecure: bool) -> bool {
    !tls.enabled() && !listen.ip().to_canonical().is_loopback() && !dev && !insecure
}

/// How often the certificate files are checked for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The TLS settings loaded at start, before anything else, so bad files stop
/// the server at once; `None` without TLS.
pub struct Tls(Arc<reload::TlsState>);

impl Tls {
    /// Reads the files `config` names.
    pub fn load(config: &TlsConfig) -> Result<Option<Tls>, TlsError> {
        Ok(reload::TlsState::load(config, tls::Alpn::H2)?.map(Tls))
    }

    /// Reads the files `config` names for the HTTP listener, which offers
    /// HTTP/1.1 in ALPN where the gRPC port offers `h2`.
    pub fn load_http(config: &TlsConfig) -> Result<Option<Tls>, TlsError> {
        Ok(reload::TlsState::load(config, tls::Alpn::Http11)?.map(Tls))
    }

    /// The acceptor for a new handshake, with the configuration in force.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.0.current())
    }

    /// Starts reloading the files on change, for as long as `self` lives.
    pub(crate) fn watch(&self) {
        tokio::spawn(reload::reload_on_change(
            Arc::downgrade(&self.0),
            RELOAD_EVERY,
        ));
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.0.mutual()
    }
}

/// The connections ready for HTTP/2, for `serve_with_incoming_shutdown`.
/// Dropping it stops the accept loop and closes the listening socket.
pub struct Incoming {
    ready: mpsc::Receiver<Connection>,
}

impl tokio_stream::Stream for Incoming {
    type Item = Result<Connection, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().ready.poll_recv(cx).map(|next| next.map(Ok))
    }
}

/// Connections the kernel may queue before the accept loop takes them
/// (capped by `net.core.somaxconn`); tokio's default, 1,024, overflowed
/// under a burst of connects and cost each dropped client a 1-second SYN
/// retransmission.
const BACKLOG: u32 = 4_096;

/// Binds the listening socket.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As tokio's TcpListener::bind: a restart need not wait out TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Starts accepting on `listener` (and reloading the certificate when TLS
/// is on); `open_files` is the soft open-file limit the connection limit
/// must fit under.
pub fn start(
    listener: TcpListener,
    config: &ListenerConfig,
    tls: Option<Tls>,
    open_files: Option<u64>,
) -> Incoming {
    let max_connections =
        limits::fit_connections(config.max_connections, open_files).min(Semaphore::MAX_PERMITS);
    let tls = tls.map(|Tls(state)| state);
    if let Some(state) = &tls {
        tokio::spawn(reload::reload_on_change(
            Arc::downgrade(state),
            RELOAD_EVERY,
        ));
    }
    let handshaking = Arc::new(handshake::Handshaking {
        slots: limits::Handshakes::new(config.max_handshakes.min(max_connections)),
        timeout: Duration::from_millis(config.handshake_timeout_ms.max(1)),
        tls,
        logs: handshake::Logs::new(),
    });
    tracing::info!(
        max_connections,
        max_handshakes = config.max_handshakes.min(max_connections),
        handshake_timeout_ms = config.handshake_timeout_ms,
        "connection limits"
    );
    let (sender, ready) = mpsc::channel(64);
    tokio::spawn(accept::accept_loop(
        listener,
        Arc::new(Semaphore::new(max_connections)),
        max_connections,
        handshaking,
        sender,
    ));
    Incoming { ready }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_refused_off_loopback_unless_asked_for() {
        let tls = TlsConfig {
            cert_file: Some("cert.pem".into()),
            key_file: Some("key.pem".into()),
            client_ca_file: None,
        };
        let none = TlsConfig::default();
        let public: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let lan: SocketAddr = "[2001:db8::1]:50051".parse().unwrap();
        for loopback in [
            "127.0.0.1:50051",
            "127.8.9.10:1",
            "[::1]:50051",
            "[::ffff:127.0.0.1]:1",
        ] {
            let loopback: SocketAddr = loopback.parse().unwrap();
            assert!(
                !plaintext_refused(loopback, &none, false, false),
                "{loopback}"
            );
        }
        assert!(plaintext_refused(public, &none, false, false));
        assert!(plaintext_refused(lan, &none, false, false));
        assert!(!plaintext_refused(public, &tls, false, false));
        assert!(!plaintext_refused(public, &none, true, false));
        assert!(!plaintext_refused(public, &none, false, true));
    }
}
