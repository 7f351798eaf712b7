//! Connection strings: `postgresql://` URI, JDBC URL, libpq key/value, `PG*` variables.

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

fn sslmode(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Prefer => "prefer",
        TlsMode::Require => "require",
        TlsMode::VerifyCa => "verify-ca",
        TlsMode::VerifyFull => "verify-full",
        _ => "disable",
    }
}

/// Quotes a libpq conninfo value when it needs it (empty, spaces, quotes, backslashes).
fn conninfo_value(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '\'', '\\', '\t']) {
        return value.to_owned();
    }
    let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

/// Renders every form; the password only when `include_secrets`.
pub fn render(connection: &Connection, include_secrets: bool) -> pb::RenderResponse {
    let host = connection.str("host");
    let port = net::port(connection.int("port"), DEFAULT_PORT);
    let database = connection.str("database");
    let user = connection.str("user");
    let schema = connection.str("schema");
    let application_name = connection.str("application_name");
    let timeout = connection.int("connect_timeout");
    let mode = sslmode(connection.tls_mode());
    let password = match connection.secret("password") {
        Some(password) if include_secrets => Some(password),
        Some(_) => Some(PLACEHOLDER),
        None => None,
    };
    // A bare IPv6 address needs brackets inside a URL.
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let search_path =
        (!schema.is_empty() && schema != "public").then(|| format!("-c search_path={schema}"));

    let mut uri = format!("postgresql://{}", encode(user));
    if let Some(password) = password {
        uri.push(':');
        uri.push_str(&encode(password));
    }
    uri.push_str(&format!(
        "@{url_host}:{port}/{}?sslmode={mode}",
        encode(database)
    ));
    if !application_name.is_empty() {
        uri.push_str(&format!("&application_name={}", encode(application_name)));
    }
    if let Some(seconds) = timeout {
        if seconds != 10 {
            uri.push_str(&format!("&connect_timeout={seconds}"));
        }
    }
    if let Some(options) = &search_path {
        uri.push_str(&format!("&options={}", encode(options)));
    }

    let mut jdbc = format!(
        "jdbc:postgresql://{url_host}:{port}/{}?user={}",
        encode(database),
        encode(user)
    );
    if let Some(password) = password {
        jdbc.push_str(&format!("&password={}", encode(password)));
    }
    jdbc.push_str(&format!("&sslmode={mode}"));
    if !schema.is_empty() {
        jdbc.push_str(&format!("&currentSchema={}", encode(schema)));
    }
    if !application_name.is_empty() {
        jdbc.push_str(&format!("&ApplicationName={}", encode(application_name)));
    }
    if let Some(seconds) = timeout {
        jdbc.push_str(&format!("&connectTimeout={seconds}"));
    }

    let mut pairs: Vec<(&str, String)> = vec![
        ("host", host.to_owned()),
        ("port", port.to_string()),
        ("dbname", database.to_owned()),
        ("user", user.to_owned()),
    ];
    if let Some(password) = password {
        pairs.push(("password", password.to_owned()));
    }
    pairs.push(("sslmode", mode.to_owned()));
    if !application_name.is_empty() {
        pairs.push(("application_name", application_name.to_owned()));
    }
    if let Some(seconds) = timeout {
        pairs.push(("connect_timeout", seconds.to_string()));
    }
    if let Some(options) = &search_path {
        pairs.push(("options", options.clone()));
    }
    let dsn = pairs
        .iter()
        .map(|(key, value)| format!("{key}={}", conninfo_value(value)))
        .collect::<Vec<_>>()
        .join(" ");

    let mut env = BTreeMap::new();
    env.insert("PGHOST".to_owned(), host.to_owned());
    env.insert("PGPORT".to_owned(), port.to_string());
    env.insert("PGDATABASE".to_owned(), database.to_owned());
    env.insert("PGUSER".to_owned(), user.to_owned());
    env.insert("PGSSLMODE".to_owned(), mode.to_owned());
    if let Some(password) = password {
        env.insert("PGPASSWORD".to_owned(), password.to_owned());
    }
    if !application_name.is_empty() {
        env.insert("PGAPPNAME".to_owned(), application_name.to_owned());
    }
    if let Some(seconds) = timeout {
        env.insert("PGCONNECT_TIMEOUT".to_owned(), seconds.to_string());
    }
    if let Some(options) = search_path {
        env.insert("PGOPTIONS".to_owned(), options);
    }

    pb::RenderResponse {
        uri,
        jdbc_url: jdbc,
        dsn,
        env: env.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_values_are_quoted_only_when_needed() {
        assert_eq!(conninfo_value("plain"), "plain");
        assert_eq!(conninfo_value(""), "''");
        assert_eq!(conninfo_value("it's a\\b"), "'it\\'s a\\\\b'");
    }
}
