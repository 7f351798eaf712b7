//! Connection strings: a `mongodb://` or `mongodb+srv://` URI and environment variables.

use std::collections::BTreeMap;

use connvault_plugin_sdk::Connection;
use connvault_plugin_sdk::pb::{self, TlsMode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::session::auth_source;
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

/// Renders the URI and variables; the password only when `include_secrets`.
pub fn render(connection: &Connection, include_secrets: bool) -> pb::RenderResponse {
    let host = connection.str("host");
    let port = net::port(connection.int("port"), DEFAULT_PORT);
    let srv = connection.bool("srv");
    let database = connection.str("database");
    let user = connection.str("user");
    let mechanism = connection.str("auth_mechanism");
    let mode = connection.tls_mode();
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
    let mut uri = if srv {
        "mongodb+srv://".to_owned()
    } else {
        "mongodb://".to_owned()
    };
    if !user.is_empty() {
        uri.push_str(&encode(user));
        if let Some(password) = password {
            uri.push(':');
            uri.push_str(&encode(password));
        }
        uri.push('@');
    }
    if srv {
        uri.push_str(&url_host);
    } else {
        uri.push_str(&format!("{url_host}:{port}"));
    }
    uri.push('/');
    uri.push_str(&encode(database));

    let mut options: Vec<(&str, String)> = Vec::new();
    let authenticates = !user.is_empty() || mechanism == "MONGODB-X509";
    if authenticates {
        let source = auth_source(connection);
        // Left out when it is what the URI implies anyway.
        if !connection.str("auth_source").is_empty() || mechanism != "DEFAULT" {
            options.push(("authSource", encode(&source)));
        }
        if mechanism != "DEFAULT" {
            options.push(("authMechanism", mechanism.to_owned()));
        }
    }
    let replica_set = connection.str("replica_set");
    if !replica_set.is_empty() {
        options.push(("replicaSet", encode(replica_set)));
    }
    match mode {
        // mongodb+srv turns TLS on unless told otherwise.
        TlsMode::Disable if srv => options.push(("tls", "false".to_owned())),
        TlsMode::Disable => {}
        TlsMode::Prefer | TlsMode::Require => {
            options.push(("tls", "true".to_owned()));
            options.push(("tlsAllowInvalidCertificates", "true".to_owned()));
        }
        _ => options.push(("tls", "true".to_owned())),
    }
    let app_name = connection.str("app_name");
    if !app_name.is_empty() {
        options.push(("appName", encode(app_name)));
    }
    if !options.is_empty() {
        uri.push('?');
        uri.push_str(
            &options
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }

    let mut env = BTreeMap::new();
    env.insert("MONGODB_URI".to_owned(), uri.clone());
    env.insert("MONGODB_HOST".to_owned(), host.to_owned());
    if !srv {
        env.insert("MONGODB_PORT".to_owned(), port.to_string());
    }
    if !database.is_empty() {
        env.insert("MONGODB_DATABASE".to_owned(), database.to_owned());
    }
    if !user.is_empty() {
        env.insert("MONGODB_USERNAME".to_owned(), user.to_owned());
    }
    if let Some(password) = password {
        env.insert("MONGODB_PASSWORD".to_owned(), password.to_owned());
    }
    pb::RenderResponse {
        uri,
        env: env.into_iter().collect(),
        ..Default::default()
    }
}
