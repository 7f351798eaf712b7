//! PostgreSQL's steps of the staged session and test: TLS, login, probe and
//! the schema privilege check; the order of the stages lives in
//! [`connvault_provider_kit`].
//!
//! The TLS stage is done here rather than inside tokio-postgres so that it is
//! reported (and timed) on its own: we send PostgreSQL's `SSLRequest`, read the
//! one-byte answer, run the rustls handshake, then hand the encrypted stream to
//! `connect_raw` with TLS turned off in the driver.

use std::time::Duration;

use connvault_plugin_sdk::pb::{ErrorCategory, TlsMode};
use connvault_plugin_sdk::{Connection, Deadline, StageError, TestReport};
use connvault_provider_kit::engine::Engine;
use connvault_provider_kit::session::{self, Handshake, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use crate::{DEFAULT_PORT, Postgres, net, tls};

/// `SSLRequest`: length 8, then the magic request code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

impl Engine for Postgres {
    type Session = Client;
    const AUTHORIZES: bool = true;

    /// Runs resolve, connect, TLS and authenticate within `connect_timeout`.
    fn open(
        &self,
        connection: &Connection,
        deadline: Deadline,
        report: &mut TestReport,
    ) -> Option<Client> {
        let deadline = login_deadline(connection, deadline);
        session::open(self, connection, DEFAULT_PORT, deadline, report)
    }

    /// `SELECT 1`, then the server's version.
    fn probe(&self, client: &mut Client, deadline: Deadline) -> Result<String, StageError> {
        probe(client, deadline)
    }

    /// Whether the user may use the connection's schema.
    fn authorize(
        &self,
        client: &mut Client,
        connection: &Connection,
        deadline: Deadline,
    ) -> Result<(), StageError> {
        schema_usage(client, connection.str("schema"), deadline)
    }
}

impl Handshake for Postgres {
    type Session = Client;

    async fn start_tls(
        &self,
        mut stream: TcpStream,
        connection: &Connection<'_>,
        mode: TlsMode,
    ) -> Result<Stream, StageError> {
        let config = tls::client_config(&connection.tls, mode)?;
        let name = tls::server_name(&connection.tls, connection.str("host"))?;
        let protocol = |error: std::io::Error| {
            StageError::new(
                ErrorCategory::Protocol,
                format!(
                    "asking the server for TLS failed: {}",
                    net::io_problem(&error)
                ),
            )
        };
        stream.write_all(&SSL_REQUEST).await.map_err(protocol)?;
        let answer = stream.read_u8().await.map_err(protocol)?;
        match answer {
            b'S' => {
                let connector = tokio_rustls::TlsConnector::from(config);
                let encrypted = connector
                    .connect(name, stream)
                    .await
                    .map_err(|error| tls::handshake_error(&error))?;
                Ok(Box::new(encrypted) as Stream)
            }
            // `prefer` falls back to plain text on the same socket, as libpq does.
            b'N' if mode == TlsMode::Prefer => Ok(Box::new(stream)),
            b'N' => Err(StageError::new(
                ErrorCategory::Tls,
                "the server does not accept TLS connections, but TLS is required",
            )),
            // Never quote the byte: it is the start of whatever else listens there.
            _ => Err(StageError::new(
                ErrorCategory::Protocol,
                "the server did not answer the TLS request as PostgreSQL does: is this a PostgreSQL server?",
            )),
        }
    }

    async fn authenticate(
        &self,
        stream: Stream,
        connection: &Connection<'_>,
    ) -> Result<Client, StageError> {
        let mut config = tokio_postgres::Config::new();
        config
            .user(connection.str("user"))
            .dbname(connection.str("database"))
            // TLS, if any, is already in place underneath.
            .ssl_mode(SslMode::Disable);
        if let Some(password) = connection.secret("password") {
            config.password(password);
        }
        let application_name = connection.str("application_name");
        if !application_name.is_empty() {
            config.application_name(application_name);
        }
        let (client, driver) = config
            .connect_raw(stream, NoTls)
            .await
            .map_err(|error| classify(&error, "logging in"))?;
        // The driver future owns the socket; it ends when `client` is dropped.
        tokio::spawn(async move {
            let _ = driver.await;
        });
        Ok(client)
    }
}

/// The host's deadline, shortened to `connect_timeout` for the login stages.
fn login_deadline(connection: &Connection, deadline: Deadline) -> Deadline {
    let configured = connection
        .int("connect_timeout")
        .and_then(|seconds| u64::try_from(seconds).ok())
        .map_or(deadline.remaining(), Duration::from_secs);
    let bound = deadline.remaining().min(configured);
    // Deadline::from_millis(0) means "the host default": never ask for 0.
    Deadline::from_millis(u32::try_from(bound.as_millis()).unwrap_or(u32::MAX).max(1))
}

/// `SELECT 1`, then the server's version.
pub fn probe(client: &Client, deadline: Deadline) -> Result<String, StageError> {
    net::bounded(deadline, "the probe query", async {
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|error| classify(&error, "SELECT 1"))?;
        let row = client
            .query_one("SELECT current_setting('server_version')", &[])
            .await
            .map_err(|error| classify(&error, "reading the server version"))?;
        row.try_get::<_, String>(0)
            .map(|version| net::remote_text(&version))
            .map_err(|error| classify(&error, "reading the server version"))
    })
}

/// Whether the user may use `schema` (PostgreSQL's `USAGE` privilege).
pub fn schema_usage(client: &Client, schema: &str, deadline: Deadline) -> Result<(), StageError> {
    net::bounded(deadline, "the schema privilege check", async {
        let rows = client
            .query(
                "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_catalog.pg_namespace WHERE nspname = $1",
                &[&schema],
            )
            .await
            .map_err(|error| classify(&error, "checking schema privileges"))?;
        let Some(row) = rows.first() else {
            return Err(StageError::new(
                ErrorCategory::Config,
                format!("schema {schema:?} does not exist"),
            ));
        };
        let usage: bool = row
            .try_get(0)
            .map_err(|error| classify(&error, "checking schema privileges"))?;
        if usage {
            Ok(())
        } else {
            Err(StageError::new(
                ErrorCategory::Permission,
                format!("the user lacks USAGE on schema {schema:?}"),
            ))
        }
    })
}

/// Maps a driver error to a category and a message.
///
/// A server error (`ErrorResponse`, a well-formed protocol message a
/// PostgreSQL server sends as such) is quoted, printable and bounded: its
/// message is the server's own (`password authentication failed for user
/// "app"`) and never holds the password. Any other failure is tokio-postgres's
/// own fixed text ("unexpected message from server"), which quotes nothing
/// the server sent.
pub fn classify(error: &tokio_postgres::Error, doing: &str) -> StageError {
    if let Some(db) = error.as_db_error() {
        let sqlstate = db.code().code();
        let category = match sqlstate {
            // invalid_password, invalid_authorization_specification (pg_hba, unknown role)
            "28P01" | "28000" => ErrorCategory::Auth,
            "42501" => ErrorCategory::Permission,
            // unknown database, unknown schema
            "3D000" | "3F000" => ErrorCategory::Config,
            // too many connections, starting up or shutting down
            "53300" | "57P03" => ErrorCategory::Unreachable,
            _ => ErrorCategory::Protocol,
        };
        let sqlstate = net::remote_text(sqlstate);
        return StageError::new(
            category,
            format!(
                "{doing} failed: {} (SQLSTATE {sqlstate})",
                net::remote_text(db.message())
            ),
        );
    }
    let text = error.to_string();
    let category = if text.contains("password missing") {
        ErrorCategory::Auth
    } else if std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>()) {
        ErrorCategory::Unreachable
    } else {
        ErrorCategory::Protocol
    };
    StageError::new(category, format!("{doing} failed: {text}"))
}
