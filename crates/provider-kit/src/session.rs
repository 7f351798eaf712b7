//! Opening a session stage by stage: resolve, connect, TLS, authenticate.
//!
//! Providers whose driver accepts a ready byte stream (PostgreSQL, Redis) do
//! TLS themselves so that it is reported and timed as its own stage; the
//! order of the stages, their deadlines and what is skipped after a failure
//! live here once, and a provider supplies only its TLS upgrade and its login
//! through [`Handshake`].

use std::future::Future;

use connvault_plugin_sdk::pb::{Stage, TlsMode};
use connvault_plugin_sdk::{Connection, Deadline, StageError, TestReport};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::net;

/// A byte stream a driver can speak over: plain TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// The stream the TLS stage hands to the authenticate stage.
pub type Stream = Box<dyn Io>;

/// The engine-specific steps of opening a session.
pub trait Handshake {
    /// What a successful login gives: a client or connection of the driver.
    type Session;

    /// Upgrades `stream` to TLS in `mode` (never `Disable`): the TLS stage.
    fn start_tls(
        &self,
        stream: TcpStream,
        connection: &Connection<'_>,
        mode: TlsMode,
    ) -> impl Future<Output = Result<Stream, StageError>>;

    /// Logs in over `stream`: the authenticate stage.
    fn authenticate(
        &self,
        stream: Stream,
        connection: &Connection<'_>,
    ) -> impl Future<Output = Result<Self::Session, StageError>>;
}

/// Runs resolve, connect, TLS and authenticate against the connection's
/// `host` and `port` (or `default_port`); `None` once a stage failed.
///
/// Stages after a failure are still passed to the report, which records them
/// as skipped without running them, so a client always sees the whole list.
pub fn open<H: Handshake>(
    handshake: &H,
    connection: &Connection,
    default_port: u16,
    deadline: Deadline,
    report: &mut TestReport,
) -> Option<H::Session> {
    let stream = reach(connection, default_port, deadline, report);
    let mode = connection.tls_mode();
    let stream: Option<Stream> = if mode == TlsMode::Disable {
        report.skip(Stage::Tls, "TLS is disabled for this connection");
        stream.map(|stream| Box::new(stream) as Stream)
    } else {
        report.stage(Stage::Tls, || {
            let stream = net::prior(stream)?;
            net::bounded(
                deadline,
                "the TLS handshake",
                handshake.start_tls(stream, connection, mode),
            )
        })
    };
    report.stage(Stage::Authenticate, || {
        let stream = net::prior(stream)?;
        net::bounded(
            deadline,
            "logging in",
            handshake.authenticate(stream, connection),
        )
    })
}

/// The resolve and connect stages: a TCP stream to the connection's `host`
/// and `port` (or `default_port`); `None` once a stage failed.
pub fn reach(
    connection: &Connection,
    default_port: u16,
    deadline: Deadline,
    report: &mut TestReport,
) -> Option<TcpStream> {
    let host = connection.str("host");
    let port = net::port(connection.int("port"), default_port);
    let addresses = report.stage(Stage::Resolve, || {
        net::bounded(
            deadline,
            "resolving the host",
            net::resolve(connection, host, port),
        )
    });
    report.stage(Stage::Connect, || {
        net::bounded(
            deadline,
            "connecting",
            net::connect(connection, host, &net::prior(addresses)?),
        )
    })
}
