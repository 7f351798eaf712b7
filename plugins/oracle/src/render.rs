//! Connection strings: EZConnect, TNS descriptor, JDBC thin URL, environment variables.

use std::collections::BTreeMap;

use connvault_plugin_sdk::Connection;
use connvault_plugin_sdk::pb::{self, TlsMode};

use crate::descriptor::{self, Security, Service, Target};

/// What stands in for a secret when the caller did not ask for secrets.
pub const PLACEHOLDER: &str = "REDACTED";

/// Renders every form; the password only when `include_secrets`.
///
/// Credentials are not written into the JDBC URL or the descriptor: Oracle
/// clients take them as separate properties (`user`, `password`), which
/// spares quoting rules that differ from client to client.
pub fn render(
    connection: &Connection,
    target: &Target,
    include_secrets: bool,
) -> pb::RenderResponse {
    let given = connection.str("connect_descriptor");
    let mode = connection.tls_mode();
    let tcps = target.protocol == "TCPS";
    let security = Security {
        dn_match: mode == TlsMode::VerifyFull,
        cert_dn: connection.str("ssl_server_cert_dn"),
        wallet: connection.str("wallet_location"),
    };
    let descriptor = if given.is_empty() {
        descriptor::build(target, tcps.then_some(&security))
    } else {
        given.to_owned()
    };
    // EZConnect names services only; a SID or a given descriptor needs the descriptor.
    let ezconnect = match (&target.service, given.is_empty()) {
        (Service::Name(service), true) => {
            Some(ezconnect(target, service, tcps.then_some(&security)))
        }
        _ => None,
    };
    let jdbc_url = match (&target.service, tcps || !given.is_empty()) {
        (Service::Name(service), false) => format!(
            "jdbc:oracle:thin:@//{}:{}/{service}",
            url_host(&target.host),
            target.port
        ),
        (Service::Sid(sid), false) => format!(
            "jdbc:oracle:thin:@{}:{}:{sid}",
            url_host(&target.host),
            target.port
        ),
        (_, true) => format!("jdbc:oracle:thin:@{descriptor}"),
    };
    let uri = ezconnect.unwrap_or_else(|| descriptor.clone());

    let mut env = BTreeMap::new();
    env.insert("TWO_TASK".to_owned(), uri.clone());
    env.insert("ORACLE_HOST".to_owned(), target.host.clone());
    env.insert("ORACLE_PORT".to_owned(), target.port.to_string());
    match &target.service {
        Service::Name(name) => env.insert("ORACLE_SERVICE_NAME".to_owned(), name.clone()),
        Service::Sid(sid) => env.insert("ORACLE_SID".to_owned(), sid.clone()),
    };
    env.insert("ORACLE_USER".to_owned(), connection.str("user").to_owned());
    if let Some(password) = connection.secret("password") {
        let shown = if include_secrets {
            password
        } else {
            PLACEHOLDER
        };
        env.insert("ORACLE_PASSWORD".to_owned(), shown.to_owned());
    }
    let schema = connection.str("schema");
    if !schema.is_empty() {
        env.insert("ORACLE_SCHEMA".to_owned(), schema.to_owned());
    }
    pb::RenderResponse {
        uri,
        jdbc_url,
        dsn: descriptor,
        env: env.into_iter().collect(),
    }
}

/// A bare IPv6 address needs brackets in EZConnect and the JDBC URL.
fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// `[tcps://]host:port/service[?ssl_server_dn_match=...]` (EZConnect Plus for TCPS settings).
fn ezconnect(target: &Target, service: &str, security: Option<&Security>) -> String {
    let mut text = String::new();
    if security.is_some() {
        text.push_str("tcps://");
    }
    text.push_str(&format!(
        "{}:{}/{service}",
        url_host(&target.host),
        target.port
    ));
    if let Some(security) = security {
        let mut parameters = vec![format!(
            "ssl_server_dn_match={}",
            if security.dn_match { "on" } else { "off" }
        )];
        if !security.cert_dn.is_empty() {
            parameters.push(format!("ssl_server_cert_dn=\"{}\"", security.cert_dn));
        }
        if !security.wallet.is_empty() {
            parameters.push(format!("wallet_location={}", security.wallet));
        }
        text.push('?');
        text.push_str(&parameters.join("&"));
    }
    text
}
