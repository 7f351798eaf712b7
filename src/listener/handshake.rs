//! Turns an accepted socket into a connection ready for HTTP/2: the TLS
//! handshake (when configured) and the client's HTTP/2 preface, both within
//! one deadline and in a bounded number of slots. Sockets that never get
//! there are closed and counted, never logged one by one.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::TcpConnectInfo;

use super::conn::{Connection, PREFACE, Transport};
use super::limits::{Handshakes, Slot, Throttle};
use super::reload::TlsState;

/// What every handshake needs, shared by the accept loop and its handshakes.
pub(crate) struct Handshaking {
    pub(crate) slots: Arc<Handshakes>,
    pub(crate) timeout: Duration,
    pub(crate) tls: Option<Arc<TlsState>>,
    pub(crate) logs: Logs,
}

/// One throttled log per kind of refusal: at most a line a second each.
pub(crate) struct Logs {
    pub(crate) accept_failed: Throttle,
    pub(crate) accept_aborted: Throttle,
    pub(crate) at_limit: Throttle,
    evicted: Throttle,
    timed_out: Throttle,
    tls_failed: Throttle,
    not_http2: Throttle,
}

impl Logs {
    pub(crate) fn new() -> Self {
        Self {
            accept_failed: Throttle::per_second(),
            accept_aborted: Throttle::per_second(),
            at_limit: Throttle::per_second(),
            evicted: Throttle::per_second(),
            timed_out: Throttle::per_second(),
            tls_failed: Throttle::per_second(),
            not_http2: Throttle::per_second(),
        }
    }
}

/// Why a socket did not become a connection.
#[derive(Debug)]
enum Refusal {
    /// The TLS handshake failed (a plaintext client, no or a bad client certificate...).
    Tls(io::Error),
    /// The peer closed, or sent something other than the HTTP/2 preface.
    NotHttp2(Option<io::Error>),
}

impl Handshaking {
    /// Takes a handshake slot for a socket just accepted, cancelling the
    /// oldest handshake when all are taken.
    pub(crate) fn admit(&self) -> Slot {
        let (slot, evicted) = self.slots.admit();
        if evicted && let Some(suppressed) = self.logs.evicted.admit() {
            tracing::warn!(
                suppressed,
                "every handshake slot is taken: closed the oldest connection still in its handshake (listener.max_handshakes)"
            );
        }
        slot
    }

    /// Completes the handshake of `stream` and hands the connection to
    /// `ready`; on failure, timeout or cancellation the socket is closed.
    pub(crate) async fn run(
        self: Arc<Self>,
        stream: TcpStream,
        remote: SocketAddr,
        permit: OwnedSemaphorePermit,
        mut slot: Slot,
        ready: mpsc::Sender<Connection>,
    ) {
        let info = TcpConnectInfo {
            local_addr: stream.local_addr().ok(),
            remote_addr: Some(remote),
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(self.timeout, establish(stream, self.tls.as_deref())) => outcome,
            () = slot.cancelled() => {
                tracing::trace!(%remote, "handshake cancelled for a newer connection");
                return;
            }
        };
        // The slot is for handshakes only; the connection keeps its permit.
        drop(slot);
        match outcome {
            Ok(Ok(transport)) => {
                // Fails only when the server is shutting down: the connection closes.
                let _ = ready.send(Connection::new(transport, info, permit)).await;
            }
            Ok(Err(Refusal::Tls(error))) => {
                if let Some(suppressed) = self.logs.tls_failed.admit() {
                    tracing::info!(%remote, %error, suppressed, "TLS handshake failed");
                }
            }
            Ok(Err(Refusal::NotHttp2(error))) => {
                if let Some(suppressed) = self.logs.not_http2.admit() {
                    let error = error.map(|error| error.to_string());
                    tracing::debug!(%remote, ?error, suppressed, "closed a connection that did not start HTTP/2");
                }
            }
            Err(_elapsed) => {
                if let Some(suppressed) = self.logs.timed_out.admit() {
                    tracing::info!(
                        %remote,
                        timeout = ?self.timeout,
                        suppressed,
                        "closed a connection that did not complete its handshake in time (listener.handshake_timeout_ms)"
                    );
                }
            }
        }
    }
}

/// TLS (if configured), then the 24-byte HTTP/2 preface, read here so an
/// idle socket costs a handshake slot and never a served connection.
async fn establish(stream: TcpStream, tls: Option<&TlsState>) -> Result<Transport, Refusal> {
    let mut transport = match tls {
        Some(tls) => Transport::Tls(Box::new(
            TlsAcceptor::from(tls.current())
                .accept(stream)
                .await
                .map_err(Refusal::Tls)?,
        )),
        None => Transport::Plain(stream),
    };
    let mut preface = [0u8; PREFACE.len()];
    match transport.read_exact(&mut preface).await {
        Ok(_) if &preface == PREFACE => Ok(transport),
        Ok(_) => Err(Refusal::NotHttp2(None)),
        Err(error) => Err(Refusal::NotHttp2(Some(error))),
    }
}
