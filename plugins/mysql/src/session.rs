//! Opening a MySQL session stage by stage.
//!
//! mysql_async does its own TCP connect and TLS upgrade, so the Connect stage
//! proves TCP reachability on its own socket and the driver's login then
//! covers TLS and authentication; its outcome is split between the TLS and
//! Authenticate stages by the kind of error.

use connvault_plugin_sdk::pb::{ErrorCategory, Stage, TlsMode};
use connvault_plugin_sdk::{Connection, Deadline, StageError, TestReport};
use connvault_provider_kit::engine::Engine;
use connvault_provider_kit::session;
use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, OptsBuilder, SslOpts};

use crate::{DEFAULT_PORT, MySql, net};

impl Engine for MySql {
    type Session = Conn;

    /// Runs resolve, connect, TLS and login.
    fn open(
        &self,
        connection: &Connection,
        deadline: Deadline,
        report: &mut TestReport,
    ) -> Option<Conn> {
        // The driver connects on its own: this socket only proves reachability.
        let reachable = session::reach(connection, DEFAULT_PORT, deadline, report).map(drop);
        let mode = connection.tls_mode();
        let login =
            reachable.map(|()| net::bounded(deadline, "logging in", login(connection, mode)));
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
    if !tls.server_name.is_empty() {
        options = options.with_danger_tls_hostname_override(Some(tls.server_name.clone()));
    }
    if !tls.client_cert_pem.is_empty() {
        options = options.with_client_identity(Some(ClientIdentity::new(
            tls.client_cert_pem.as_bytes().to_vec().into(),
            tls.client_key_pem.as_bytes().to_vec().into(),
        )));
    }
    Some(options)
}

fn options(connection: &Connection, tls: Option<SslOpts>) -> OptsBuilder {
    let database = connection.str("database");
    OptsBuilder::default()
        .ip_or_hostname(connection.str("host"))
        .tcp_port(net::port(connection.int("port"), DEFAULT_PORT))
        .user(Some(connection.str("user")))
        .pass(connection.secret("password"))
        .db_name((!database.is_empty()).then_some(database))
        // Never switch to a local unix socket: we test what a remote client sees.
        .prefer_socket(false)
        .ssl_opts(tls)
}

async fn login(connection: &Connection<'_>, mode: TlsMode) -> Result<Conn, StageError> {
    let tls = tls_options(connection, mode);
    match Conn::new(options(connection, tls)).await {
        Ok(conn) => Ok(conn),
        // `prefer` falls back to plain text when the server has no TLS.
        Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))
            if mode == TlsMode::Prefer =>
        {
            Conn::new(options(connection, None))
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
        version.ok_or_else(|| {
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

/// Maps a driver error to a category; messages never contain the password.
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
        Error::Io(IoError::Io(io)) if io.to_string().contains("certificate") => ErrorCategory::Tls,
        Error::Io(_) => ErrorCategory::Unreachable,
        _ => ErrorCategory::Protocol,
    };
    let message = match error {
        Error::Driver(DriverError::NoClientSslFlagFromServer) => {
            "the server does not accept TLS connections, but TLS is required".to_owned()
        }
        Error::Server(server) => format!(
            "the server refused: {} (error {})",
            server.message, server.code
        ),
        other => other.to_string(),
    };
    StageError::new(category, message)
}
