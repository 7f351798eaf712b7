//! The connvault provider for Oracle Database (`oracle`, alias `ORACLE`).
//!
//! A connection names its listener either by host, port and service name (or
//! SID), or by a full Oracle Net connect descriptor. The test resolves the
//! host, connects, and runs the TLS handshake for TCPS; it cannot log in:
//! Oracle's authentication (O5LOGON) is spoken only by Oracle's own client
//! libraries, which no pure-Rust driver replaces and which connvault does
//! not ship, so the authenticate and probe stages are reported as skipped,
//! saying why. It renders a JDBC thin URL, an EZConnect string, a TNS
//! descriptor and environment variables.
//!
//! ```
//! use connvault_plugin_sdk::{check, pb, Provider};
//! use connvault_plugin_oracle::Oracle;
//! let source = Oracle.data_sources().remove(0);
//! let text = |v: &str| pb::Value { kind: Some(pb::value::Kind::StringValue(v.into())) };
//! let mut spec = pb::ConnectionSpec::default();
//! spec.config.insert("host".into(), text("db.example"));
//! spec.config.insert("service_name".into(), text("sales"));
//! spec.config.insert("user".into(), text("app"));
//! let connection = check(&source, spec, &[]).unwrap();
//! let rendered = Oracle.render(&connection, false).unwrap();
//! assert_eq!(rendered.jdbc_url, "jdbc:oracle:thin:@//db.example:1521/sales");
//! ```

pub mod descriptor;
mod render;
mod stages;

use connvault_plugin_sdk::pb::{self, TlsMode};
use connvault_plugin_sdk::{
    Connection, Deadline, PluginError, Provider, Violations, export_provider, schema,
};
use connvault_provider_kit::{fields, tls};

pub use stages::NOT_SPOKEN;

/// The Oracle listener's port when none is configured.
pub const DEFAULT_PORT: u16 = 1521;

/// The Oracle provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct Oracle;

impl Provider for Oracle {
    fn data_sources(&self) -> Vec<pb::DataSource> {
        vec![
            schema::data_source("oracle", "Oracle Database")
                .aliases(&["ORACLE"])
                .description(
                    "An Oracle Database listener, by host, port and service name (or SID) or by a full connect descriptor; TCPS when TLS is on. The test checks DNS, TCP and TLS; it cannot log in (see docs/providers.md).",
                )
                .supports_tls()
                .supports_tunnel()
                .field(
                    // Not required: a connect descriptor may name the host instead.
                    schema::string("host")
                        .label("Host")
                        .pattern("[A-Za-z0-9._:%-]+")
                        .pattern_message("must be a host name or an IP address")
                        .max_length(253)
                        .description("Host name or IP address of the listener (or give `connect_descriptor`)."),
                )
                .field(fields::port(DEFAULT_PORT))
                .field(
                    schema::string("service_name")
                        .label("Service name")
                        .pattern("[A-Za-z0-9._$#-]+")
                        .pattern_message("must be letters, digits, ., _, $, # and -")
                        .max_length(128)
                        .description("Database service the listener hands the connection to (or give `sid`)."),
                )
                .field(
                    schema::string("sid")
                        .label("SID")
                        .pattern("[A-Za-z0-9_$#]+")
                        .pattern_message("must be letters, digits, _, $ and #")
                        .max_length(64)
                        .description("System identifier of an instance, for databases without a service name."),
                )
                .field(
                    schema::string("connect_descriptor")
                        .label("Connect descriptor")
                        .group("Advanced")
                        .max_length(4096)
                        .description("A full (DESCRIPTION=...) descriptor instead of host, port and service; the test dials its first address."),
                )
                .field(
                    schema::string("user")
                        .required()
                        .label("User")
                        .group("Authentication")
                        .max_length(128)
                        .description("Database user to log in as."),
                )
                .field(
                    schema::secret("password")
                        .label("Password")
                        .max_length(1024)
                        .description("Password of the user (Oracle passwords cannot contain double quotes)."),
                )
                .field(
                    schema::string("schema")
                        .label("Schema")
                        .max_length(128)
                        .description("Schema to work in (CURRENT_SCHEMA); the user's own when empty."),
                )
                .field(
                    schema::string("wallet_location")
                        .label("Wallet directory")
                        .group("Advanced")
                        .pattern("[^()\"]+")
                        .pattern_message("must not contain parentheses or double quotes")
                        .max_length(1024)
                        .description("Directory of the client's Oracle wallet for TCPS, where the client runs (rendered, not read by connvault)."),
                )
                .field(
                    schema::string("ssl_server_cert_dn")
                        .label("Server certificate DN")
                        .group("Advanced")
                        .pattern("[^()\"]+")
                        .pattern_message("must not contain parentheses or double quotes")
                        .max_length(1024)
                        .description("Distinguished name the server's certificate must have (SSL_SERVER_CERT_DN), rendered for clients."),
                )
                .secret_bound(&["host", "port", "service_name", "sid", "connect_descriptor", "user"])
                .build(),
        ]
    }

    fn validate(&self, connection: &Connection, violations: &mut Violations) {
        let host = connection.str("host");
        let service = connection.str("service_name");
        let sid = connection.str("sid");
        let text = connection.str("connect_descriptor");
        if text.is_empty() {
            if host.is_empty() {
                violations.add(
                    "config.host",
                    "is required unless `connect_descriptor` is set",
                );
            }
            fields::check_host(host, violations);
            match (service.is_empty(), sid.is_empty()) {
                (true, true) => {
                    violations.add("config.service_name", "give a service name or a SID")
                }
                (false, false) => {
                    violations.add("config.sid", "give a service name or a SID, not both")
                }
                _ => {}
            }
        } else {
            for (field, value) in [("host", host), ("service_name", service), ("sid", sid)] {
                if !value.is_empty() {
                    violations.add(
                        format!("config.{field}"),
                        "the connect descriptor says this already: leave it empty",
                    );
                }
            }
            match descriptor::parse(text).and_then(|root| descriptor::target(&root)) {
                Err(problem) => violations.add("config.connect_descriptor", problem),
                Ok(target) => {
                    let tcps = target.protocol == "TCPS";
                    let tls_on = connection.tls_mode() != TlsMode::Disable;
                    if tcps != tls_on {
                        violations.add(
                            "tls.mode",
                            "the descriptor's PROTOCOL must be TCPS exactly when TLS is on",
                        );
                    }
                }
            }
        }
        if connection
            .secret("password")
            .is_some_and(|password| password.contains('"'))
        {
            violations.add(
                "secrets.password",
                "Oracle passwords cannot contain double quotes",
            );
        }
        tls::check_mode(connection, violations);
        tls::check_pem(&connection.tls, violations);
    }

    /// The descriptor's first address when there is one, else `host` and `port`.
    fn targets(&self, connection: &Connection) -> Option<Vec<pb::NetworkTarget>> {
        if connection.str("connect_descriptor").is_empty() {
            return connvault_plugin_sdk::host_and_port(connection);
        }
        let target = stages::target(connection).ok()?;
        Some(vec![pb::NetworkTarget {
            field: "config.connect_descriptor".to_owned(),
            host: target.host,
            port: u32::from(target.port),
        }])
    }

    fn test(
        &self,
        connection: &Connection,
        deadline: Deadline,
    ) -> Result<pb::TestResponse, PluginError> {
        stages::test(connection, deadline)
    }

    fn render(
        &self,
        connection: &Connection,
        include_secrets: bool,
    ) -> Result<pb::RenderResponse, PluginError> {
        let target = stages::target(connection)?;
        Ok(render::render(connection, &target, include_secrets))
    }
}

export_provider!(Oracle);
