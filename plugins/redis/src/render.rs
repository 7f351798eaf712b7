//! Connection strings: `redis://` / `rediss://` URI and environment variables.

use std::collections::BTreeMap;

use connvault_plugin_sdk::Connection;
use connvault_plugin_sdk::pb::{self, TlsMode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::{DEFAULT_PORT, net};

/// What stands in for a secret when the caller did not ask for secrets.
pub const PLACEHOLDER: &str = "REDACTED";

/// Everything but RFC 3986 unreserved characters is encoded.
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
    let database = connection.int("database").unwrap_or(0);
    let username = connection.str("username");
    let mode = connection.tls_mode();
    let password = match connection.secret("password") {
        Some(password) if include_secrets => Some(password),
        Some(_) => Some(PLACEHOLDER),
        None => None,
    };
    let scheme = if mode == TlsMode::Disable {
        "redis"
    } else {
        "rediss"
    };
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let userinfo = match password {
        Some(password) => format!("{}:{}@", encode(username), encode(password)),
        None if !username.is_empty() => format!("{}@", encode(username)),
        None => String::new(),
    };
    let mut uri = format!("{scheme}://{userinfo}{url_host}:{port}/{database}");
    // redis-rs's spelling for "encrypt but do not verify the certificate".
    if matches!(mode, TlsMode::Prefer | TlsMode::Require) {
        uri.push_str("#insecure");
    }

    let mut env = BTreeMap::new();
    env.insert("REDIS_URL".to_owned(), uri.clone());
    env.insert("REDIS_HOST".to_owned(), host.to_owned());
    env.insert("REDIS_PORT".to_owned(), port.to_string());
    if !username.is_empty() {
        env.insert("REDIS_USERNAME".to_owned(), username.to_owned());
    }
    if let Some(password) = password {
        // Read by redis-cli.
        env.insert("REDISCLI_AUTH".to_owned(), password.to_owned());
    }

    pb::RenderResponse {
        uri,
        env: env.into_iter().collect(),
        ..Default::default()
    }
}
