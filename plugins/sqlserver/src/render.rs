//! Connection strings: ADO.NET, JDBC (`jdbc:sqlserver://`), ODBC, `sqlcmd` variables.
//!
//! The TLS mode becomes the drivers' `Encrypt` and `TrustServerCertificate`:
//! `disable` → not encrypted; `prefer` → not required, certificate trusted;
//! `require` → encrypted, certificate trusted (checked when a CA is given);
//! `verify-ca` and `verify-full` → encrypted and checked. The drivers have
//! no chain-only check, so `verify-ca` renders as the stricter full check,
//! and a CA given to connvault must be installed where the client runs.

use std::collections::BTreeMap;

use connvault_plugin_sdk::Connection;
use connvault_plugin_sdk::pb::{self, TlsMode};

use crate::{DEFAULT_PORT, net};

/// What stands in for a secret when the caller did not ask for secrets.
pub const PLACEHOLDER: &str = "REDACTED";

/// `Encrypt` and `TrustServerCertificate` for a TLS mode.
fn encrypt_and_trust(connection: &Connection) -> (bool, bool) {
    let has_ca = !connection.tls.ca_pem.is_empty();
    match connection.tls_mode() {
        TlsMode::Prefer => (false, true),
        TlsMode::Require => (true, !has_ca),
        TlsMode::VerifyCa | TlsMode::VerifyFull => (true, false),
        _ => (false, false),
    }
}

/// An ADO.NET (and ODBC-compatible) value: double-quoted, quotes doubled,
/// when it holds anything the syntax gives a meaning.
pub fn ado_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value.trim() == value
        && !value.contains([';', '"', '\''])
        && !value.starts_with('{');
    if plain {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('"', "\"\""))
    }
}

/// A JDBC property value: always in braces, a `}` doubled (the SQL Server
/// JDBC driver's escape).
pub fn jdbc_value(value: &str) -> String {
    format!("{{{}}}", value.replace('}', "}}"))
}

/// An ODBC attribute value: in braces when it needs them, a `}` doubled.
pub fn odbc_value(value: &str) -> String {
    let plain = !value.is_empty() && value.trim() == value && !value.contains([';', '{', '}', '=']);
    if plain {
        value.to_owned()
    } else {
        format!("{{{}}}", value.replace('}', "}}"))
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

fn true_false(flag: bool) -> &'static str {
    if flag { "True" } else { "False" }
}

/// Renders every form; the password only when `include_secrets`.
pub fn render(connection: &Connection, include_secrets: bool) -> pb::RenderResponse {
    let host = connection.str("host");
    let port = net::port(connection.int("port"), DEFAULT_PORT);
    let instance = connection.str("instance_name");
    let database = connection.str("database");
    let user = connection.str("user");
    let application = connection.str("application_name");
    let read_only = connection.str("application_intent") == "ReadOnly";
    let server_name = connection.tls.server_name.as_str();
    let (encrypt, trust) = encrypt_and_trust(connection);
    let password = match connection.secret("password") {
        Some(password) if include_secrets => Some(password),
        Some(_) => Some(PLACEHOLDER),
        None => None,
    };
    // With both, drivers use the port and ignore the instance for routing.
    let server = if instance.is_empty() {
        format!("tcp:{host},{port}")
    } else {
        format!("tcp:{host}\\{instance},{port}")
    };

    let mut ado = vec![("Server", ado_value(&server))];
    let mut odbc = vec![
        ("Driver", "{ODBC Driver 18 for SQL Server}".to_owned()),
        ("Server", odbc_value(&server)),
    ];
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let mut jdbc = if instance.is_empty() {
        format!("jdbc:sqlserver://{url_host}:{port}")
    } else {
        format!("jdbc:sqlserver://{url_host}\\{instance}:{port}")
    };
    let mut jdbc_property = |key: &str, value: String| {
        jdbc.push(';');
        jdbc.push_str(key);
        jdbc.push('=');
        jdbc.push_str(&value);
    };
    if !database.is_empty() {
        ado.push(("Database", ado_value(database)));
        odbc.push(("Database", odbc_value(database)));
        jdbc_property("databaseName", jdbc_value(database));
    }
    ado.push(("User ID", ado_value(user)));
    odbc.push(("UID", odbc_value(user)));
    jdbc_property("user", jdbc_value(user));
    if let Some(password) = password {
        ado.push(("Password", ado_value(password)));
        odbc.push(("PWD", odbc_value(password)));
        jdbc_property("password", jdbc_value(password));
    }
    ado.push(("Encrypt", true_false(encrypt).to_owned()));
    odbc.push(("Encrypt", yes_no(encrypt).to_owned()));
    jdbc_property("encrypt", true_false(encrypt).to_ascii_lowercase());
    if trust {
        ado.push(("TrustServerCertificate", "True".to_owned()));
        odbc.push(("TrustServerCertificate", "yes".to_owned()));
        jdbc_property("trustServerCertificate", "true".to_owned());
    } else if encrypt {
        ado.push(("TrustServerCertificate", "False".to_owned()));
        odbc.push(("TrustServerCertificate", "no".to_owned()));
        jdbc_property("trustServerCertificate", "false".to_owned());
    }
    if encrypt && !trust && !server_name.is_empty() {
        ado.push(("HostNameInCertificate", ado_value(server_name)));
        odbc.push(("HostNameInCertificate", odbc_value(server_name)));
        jdbc_property("hostNameInCertificate", jdbc_value(server_name));
    }
    if !application.is_empty() {
        ado.push(("Application Name", ado_value(application)));
        odbc.push(("APP", odbc_value(application)));
        jdbc_property("applicationName", jdbc_value(application));
    }
    if read_only {
        ado.push(("ApplicationIntent", "ReadOnly".to_owned()));
        odbc.push(("ApplicationIntent", "ReadOnly".to_owned()));
        jdbc_property("applicationIntent", "ReadOnly".to_owned());
    }
    let join = |pairs: &[(&str, String)]| {
        pairs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(";")
    };
    let ado = join(&ado);

    let mut env = BTreeMap::new();
    env.insert("MSSQL_CONNECTION_STRING".to_owned(), ado.clone());
    env.insert("SQLCMDSERVER".to_owned(), server);
    env.insert("SQLCMDUSER".to_owned(), user.to_owned());
    if let Some(password) = password {
        env.insert("SQLCMDPASSWORD".to_owned(), password.to_owned());
    }
    if !database.is_empty() {
        env.insert("SQLCMDDBNAME".to_owned(), database.to_owned());
    }

    pb::RenderResponse {
        uri: ado,
        jdbc_url: jdbc,
        dsn: join(&odbc),
        env: env.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(ado_value("plain"), "plain");
        assert_eq!(ado_value("a;b"), "\"a;b\"");
        assert_eq!(ado_value("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(ado_value(" padded"), "\" padded\"");
        assert_eq!(odbc_value("a}b;"), "{a}}b;}");
        assert_eq!(odbc_value("plain"), "plain");
        assert_eq!(jdbc_value("a}b"), "{a}}b}");
    }
}
