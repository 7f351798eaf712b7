//! Connection strings: `mysql://` URI, JDBC URL, Go-driver DSN, environment variables.

use std::collections::BTreeMap;

use connvault_plugin_sdk::Connection;
use connvault_plugin_sdk::pb::{self, TlsMode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::{DEFAULT_PORT, net};

/// What stands in for a secret when the caller did not ask for secrets.
pub const PLACEHOLDER: &str = "REDACTED";

/// Everything but RFC 3986 unreserved characters is encoded: safe in userinfo, path and query.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// MySQL's `ssl-mode` vocabulary (the command-line client and Connector/J's `sslMode`).
fn ssl_mode(mode: TlsMode) -> Option<&'static str> {
    match mode {
        TlsMode::Prefer => Some("PREFERRED"),
        TlsMode::Require => Some("REQUIRED"),
        TlsMode::VerifyCa => Some("VERIFY_CA"),
        TlsMode::VerifyFull => Some("VERIFY_IDENTITY"),
        _ => None,
    }
}

/// Renders every form; the password only when `include_secrets`.
pub fn render(connection: &Connection, include_secrets: bool) -> pb::RenderResponse {
    let host = connection.str("host");
    let port = net::port(connection.int("port"), DEFAULT_PORT);
    let database = connection.str("database");
    let user = connection.str("user");
    let mode = ssl_mode(connection.tls_mode());
    let password = match connection.secret("password") {
        Some(password) if include_secrets => Some(password),
        Some(_) => Some(PLACEHOLDER),
        None => None,
    };
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };

    let mut uri = format!("mysql://{}", encode(user));
    if let Some(password) = password {
        uri.push(':');
        uri.push_str(&encode(password));
    }
    uri.push_str(&format!("@{url_host}:{port}/{}", encode(database)));
    if let Some(mode) = mode {
        uri.push_str(&format!("?ssl-mode={mode}"));
    }

    let mut jdbc = format!(
        "jdbc:mysql://{url_host}:{port}/{}?user={}",
        encode(database),
        encode(user)
    );
    if let Some(password) = password {
        jdbc.push_str(&format!("&password={}", encode(password)));
    }
    jdbc.push_str(&format!("&sslMode={}", mode.unwrap_or("DISABLED")));

    // go-sql-driver/mysql: user:password@tcp(host:port)/db?tls=...
    let mut dsn = user.to_owned();
    if let Some(password) = password {
        dsn.push(':');
        dsn.push_str(password);
    }
    dsn.push_str(&format!("@tcp({url_host}:{port})/{database}"));
    match connection.tls_mode() {
        TlsMode::Prefer => dsn.push_str("?tls=preferred"),
        TlsMode::Require | TlsMode::VerifyCa => dsn.push_str("?tls=skip-verify"),
        TlsMode::VerifyFull => dsn.push_str("?tls=true"),
        _ => {}
    }

    let mut env = BTreeMap::new();
    env.insert("MYSQL_HOST".to_owned(), host.to_owned());
    env.insert("MYSQL_TCP_PORT".to_owned(), port.to_string());
    env.insert("MYSQL_USER".to_owned(), user.to_owned());
    if !database.is_empty() {
        env.insert("MYSQL_DATABASE".to_owned(), database.to_owned());
    }
    if let Some(password) = password {
        // Read by the mysql and mariadb command-line clients.
        env.insert("MYSQL_PWD".to_owned(), password.to_owned());
    }
    if let Some(mode) = mode {
        env.insert("MYSQL_SSL_MODE".to_owned(), mode.to_owned());
    }

    pb::RenderResponse {
        uri,
        jdbc_url: jdbc,
        dsn,
        env: env.into_iter().collect(),
    }
}
