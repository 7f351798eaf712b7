//! Opening a MySQL session stage by stage.
//!
//! mysql_async does its own TCP connect and TLS upgrade, so the Connect stage
//! proves TCP reachability on its own socket and the driver's login then
//! covers TLS and authentication; its outcome is split between the TLS and
//! Authenticate stages by the kind of error.
//!
//! The driver is given the address the Connect stage reached (the one the
//! host approved), never the host name: resolving the name again could
//! answer with an address nobody checked. TLS still verifies the host name.

use connvault_plugin_sdk::pb::{ErrorCategory, Stage, TlsMode};
use connvault_plugin_sdk::{Connection, Deadline, StageError, TestReport};
use connvault_provider_kit::engine::Engine;
use connvault_provider_kit::session;
use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, OptsBuilder, SslOpts};

use std::net::IpAddr;

use crate::{DEFAULT_PORT, MySql, net, tls};

impl Engine for MySql {
    type Session = Conn;

    /// Runs resolve, connect, TLS and login.
    fn open(
        &self,
        connection: &Connection,
        deadline: Deadline,
        report: &mut TestReport,
    ) -> Option<Conn> {
        // The driver connects on its own: this socket only proves reachability
        // and tells which approved address to hand the driver.
        let reached = session::reach(connection, DEFAULT_PORT, deadline, report)
            .and_then(|stream| stream.peer_addr().ok());
        let mode = connection.tls_mode();
        let login = reached.map(|address| {
            net::bounded(
                deadline,
                "logging in",
                login(connection, address.ip(), mode),
            )
        });
        if mode == TlsMode::Disable {
            report.skip(Stage::Tls, "TLS is disabled for this connection");
        } else {
            report.stage(Stage::Tls, || match &login {
                Some(Err(error)) if error.category == ErrorCategory::Tls => Err(error.clone()),
                _ => Ok(()),
            });
        }
        report.stage(Stage::Authenticate, || net::prior(login)?)
    }

    /// `SELECT VERSION()`.
    fn probe(&self, conn: &mut Conn, deadline: Deadline) -> Result<String, StageError> {
        probe(conn, deadline)
    }

    /// Says goodbye politely (COM_QUIT).
    fn close(&self, conn: Option<Conn>, deadline: Deadline) {
        close(conn, deadline);
    }
}

fn tls_options(connection: &Connection, mode: TlsMode) -> Option<SslOpts> {
    let tls = &connection.tls;
    let has_ca = !tls.ca_pem.is_empty();
    let mut options = SslOpts::default();
    if has_ca {
        options = options.with_root_certs(vec![tls.ca_pem.as_bytes().to_vec().into()]);
    }
    options = match mode {
        TlsMode::Disable | TlsMode::Unspecified => return None,
        TlsMode::Prefer => options.with_danger_accept_invalid_certs(true),
        TlsMode::Require if !has_ca => options.with_danger_accept_invalid_certs(true),
        TlsMode::Require | TlsMode::VerifyCa => options.with_danger_skip_domain_validation(true),
        TlsMode::VerifyFull => options,
    };
    // The driver dials an address: verify the certificate for the server
    // name, or else the host name as configured.
    let name = if tls.server_name.is_empty() {
        connection.str("host")
    } else {
        tls.server_name.as_str()
    };
    options = options.with_danger_tls_hostname_override(Some(name.to_owned()));
    if !tls.client_cert_pem.is_empty() {
        options = options.with_client_identity(Some(ClientIdentity::new(
            tls.client_cert_pem.as_bytes().to_vec().into(),
            tls.client_key_pem.as_bytes().to_vec().into(),
        )));
    }
    Some(options)
}

fn options(connection: &Connection, address: IpAddr, tls: Option<SslOpts>) -> OptsBuilder {
    let database = connection.str("database");
    OptsBuilder::default()
        .ip_or_hostname(address.to_string())
        .tcp_port(net::port(connection.int("port"), DEFAULT_PORT))
        .user(Some(connection.str("user")))
        .pass(connection.secret("password"))
        .db_name((!database.is_empty()).then_some(database))
        // Never switch to a local unix socket: we test what a remote client sees.
        .prefer_socket(false)
        .ssl_opts(tls)
}

async fn login(
    connection: &Connection<'_>,
    address: IpAddr,
    mode: TlsMode,
) -> Result<Conn, StageError> {
    let tls = tls_options(connection, mode);
    match Conn::new(options(connection, address, tls)).await {
        Ok(conn) => Ok(conn),
        // `prefer` falls back to plain text when the server has no TLS.
        Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))
            if mode == TlsMode::Prefer =>
        {
            Conn::new(options(connection, address, None))
                .await
                .map_err(|error| classify(&error))
        }
        Err(error) => Err(classify(&error)),
    }
}

/// `SELECT VERSION()`.
pub fn probe(conn: &mut Conn, deadline: Deadline) -> Result<String, StageError> {
    net::bounded(deadline, "the probe query", async {
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|error| classify(&error))?;
        version
            .map(|version| net::remote_text(&version))
            .ok_or_else(|| {
                StageError::new(ErrorCategory::Protocol, "SELECT VERSION() returned no row")
            })
    })
}

/// Says goodbye politely (COM_QUIT) so the server does not log an aborted
/// connection, within what is left of the deadline (at most half a second).
pub fn close(conn: Option<Conn>, deadline: Deadline) {
    let Some(conn) = conn else { return };
    let left = deadline
        .remaining()
        .min(std::time::Duration::from_millis(500));
    let millis = u32::try_from(left.as_millis()).unwrap_or(500);
    // Deadline::from_millis(0) would mean "the host default": with no time left, just drop.
    if millis == 0 {
        return;
    }
    let _ = net::bounded(Deadline::from_millis(millis), "closing", async {
        conn.disconnect().await.map_err(|error| classify(&error))
    });
}

/// Maps a driver error to a category and a message of our own words.
///
/// A server error (an `ERR` packet, which a MySQL server sends as such) is
/// quoted, printable and bounded: it is the server's own message and never
/// holds the password. Everything else is described, never quoted: the
/// driver's text can carry bytes another service sent (a greeting it could
/// not parse, the name of an authentication plugin).
pub fn classify(error: &mysql_async::Error) -> StageError {
    use mysql_async::{DriverError, Error, IoError};
    let category = match error {
        Error::Server(server) => match server.code {
            // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR, plugin auth failures
            1045 | 1698 | 1251 => ErrorCategory::Auth,
            // ER_DBACCESS_DENIED_ERROR, ER_HOST_NOT_PRIVILEGED, ER_TABLEACCESS_DENIED_ERROR
            1044 | 1130 | 1142 | 1227 => ErrorCategory::Permission,
            // ER_BAD_DB_ERROR
            1049 => ErrorCategory::Config,
            // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS, host blocked
            1040 | 1203 | 1129 => ErrorCategory::Unreachable,
            _ => ErrorCategory::Protocol,
        },
        Error::Driver(DriverError::NoClientSslFlagFromServer) => ErrorCategory::Tls,
        Error::Io(IoError::Tls(_)) => ErrorCategory::Tls,
        Error::Io(IoError::Io(io)) if is_tls(io) => ErrorCategory::Tls,
        Error::Io(_) => ErrorCategory::Unreachable,
        _ => ErrorCategory::Protocol,
    };
    let message = match error {
        Error::Server(server) => format!(
            "the server refused: {} (error {})",
            net::remote_text(&server.message),
            server.code
        ),
        Error::Driver(driver) => driver_problem(driver).to_owned(),
        Error::Io(IoError::Tls(_)) => "the TLS handshake could not complete".to_owned(),
        Error::Io(IoError::Io(io)) => match tls::tls_problem(io) {
            Some(problem) => format!("TLS handshake failed: {problem}"),
            None => format!("the connection failed: {}", net::io_problem(io)),
        },
        _ => "the MySQL driver failed".to_owned(),
    };
    StageError::new(category, message)
}

fn is_tls(io: &std::io::Error) -> bool {
    tls::tls_problem(io).is_some()
}

/// A driver error as a fixed phrase.
fn driver_problem(error: &mysql_async::DriverError) -> &'static str {
    use mysql_async::DriverError;
    match error {
        DriverError::NoClientSslFlagFromServer => {
            "the server does not accept TLS connections, but TLS is required"
        }
        DriverError::CantParseServerVersion { .. } => {
            "the server's greeting is not MySQL's: is this a MySQL server?"
        }
        DriverError::UnknownAuthPlugin { .. } => {
            "the server asked for an authentication method connvault does not support"
        }
        DriverError::PacketOutOfOrder | DriverError::UnexpectedPacket { .. } => {
            "the server did not speak the MySQL protocol as expected: is this a MySQL server?"
        }
        DriverError::PacketTooLarge => "the server sent a packet larger than allowed",
        DriverError::ConnectionClosed => "the server closed the connection",
        DriverError::MysqlOldPasswordDisabled => {
            "the server asked for the insecure mysql_old_password method, which is disabled"
        }
        _ => "the MySQL driver failed",
    }
}
