//! The connvault provider for SQL Server (`sqlserver`, aliases `SQL_SERVER`,
//! `MSSQL`, `AZURE_SQL`).
//!
//! Tests a connection stage by stage: resolve and TCP connect (provider-kit),
//! the TDS pre-login exchange and TLS negotiated inside it (done here with
//! rustls, [`tds`]), SQL authentication by [tiberius](https://docs.rs/tiberius)
//! over that same socket, a probe of the product version and `SELECT`
//! permission on the schema. Discovers schemas, tables and columns through
//! `INFORMATION_SCHEMA`, and renders an ADO.NET connection string, a JDBC URL,
//! an ODBC connection string and `sqlcmd` environment variables.
//!
//! ```
//! use connvault_plugin_sdk::{check, pb, Provider};
//! use connvault_plugin_sqlserver::SqlServer;
//! let source = SqlServer.data_sources().remove(0);
//! let text = |v: &str| pb::Value { kind: Some(pb::value::Kind::StringValue(v.into())) };
//! let mut spec = pb::ConnectionSpec::default();
//! spec.config.insert("host".into(), text("db.example"));
//! spec.config.insert("user".into(), text("app"));
//! let connection = check(&source, spec, &[]).unwrap();
//! let rendered = SqlServer.render(&connection, false).unwrap();
//! assert_eq!(rendered.jdbc_url, "jdbc:sqlserver://db.example:1433;user={app};encrypt=false");
//! ```

mod classify;
mod discover;
mod render;
mod session;
pub mod tds;

use connvault_plugin_sdk::pb;
use connvault_plugin_sdk::{
    Connection, Deadline, PluginError, Provider, Violations, export_provider, schema,
};
use connvault_provider_kit::{engine, fields, net, tls};

pub use render::PLACEHOLDER;

/// The SQL Server port when none is configured.
pub const DEFAULT_PORT: u16 = 1433;

/// The SQL Server provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct SqlServer;

impl Provider for SqlServer {
    fn data_sources(&self) -> Vec<pb::DataSource> {
        vec![
            schema::data_source("sqlserver", "SQL Server")
                .aliases(&["SQL_SERVER", "MSSQL", "AZURE_SQL"])
                .description(
                    "Microsoft SQL Server, Azure SQL Database or Azure SQL Managed Instance, with SQL authentication.",
                )
                .supports_tls()
                .supports_tunnel()
                .field(fields::host())
                .field(fields::port(DEFAULT_PORT))
                .field(
                    schema::string("instance_name")
                        .label("Instance name")
                        .pattern("[A-Za-z0-9_$#-]+")
                        .pattern_message("must be letters, digits, _, $, # and -")
                        .max_length(16)
                        .description("Named instance the server must be; it is reached at `port` (the SQL Server Browser is not asked)."),
                )
                .field(
                    schema::string("database")
                        .label("Database")
                        .max_length(128)
                        .description("Database to connect to; the login's default database when empty."),
                )
                .field(
                    schema::string("schema")
                        .label("Schema")
                        .default_value("dbo")
                        .max_length(128)
                        .description("Schema the connection works in; the test checks SELECT permission on it."),
                )
                .field(
                    schema::string("user")
                        .required()
                        .label("User")
                        .group("Authentication")
                        .max_length(128)
                        .description("SQL Server login (SQL authentication)."),
                )
                .field(
                    schema::secret("password")
                        .label("Password")
                        .max_length(128)
                        .description("Password of the login."),
                )
                .field(
                    schema::string("application_name")
                        .label("Application name")
                        .group("Advanced")
                        .max_length(128)
                        .description("Shown in sys.dm_exec_sessions; `connvault` when the test logs in without one."),
                )
                .field(
                    schema::enumeration("application_intent", &["ReadWrite", "ReadOnly"])
                        .label("Application intent")
                        .group("Advanced")
                        .default_value("ReadWrite")
                        .description("ReadOnly routes to a readable secondary of an availability group."),
                )
                .secret_bound(&["host", "port", "instance_name", "user"])
                .build(),
        ]
    }

    fn validate(&self, connection: &Connection, violations: &mut Violations) {
        fields::check_host(connection.str("host"), violations);
        tls::check_mode(connection, violations);
        tls::check_pem(&connection.tls, violations);
        if !connection.tls.client_cert_pem.is_empty() {
            violations.add(
                "tls.client_cert_pem",
                "SQL Server logins do not use client certificates",
            );
        }
    }

    fn test(
        &self,
        connection: &Connection,
        deadline: Deadline,
    ) -> Result<pb::TestResponse, PluginError> {
        Ok(engine::test(self, connection, deadline))
    }

    fn discover(
        &self,
        connection: &Connection,
        request: &pb::DiscoverRequest,
        deadline: Deadline,
    ) -> Result<pb::DiscoverResponse, PluginError> {
        discover::run(connection, request, deadline)
    }

    fn render(
        &self,
        connection: &Connection,
        include_secrets: bool,
    ) -> Result<pb::RenderResponse, PluginError> {
        Ok(render::render(connection, include_secrets))
    }
}

export_provider!(SqlServer);
