//! The connvault provider for PostgreSQL (`postgresql`, aliases `POSTGRESQL`, `RDS_POSTGRES`).
//!
//! Tests a connection stage by stage (resolve, TCP connect, TLS, SCRAM/MD5
//! authentication, a probe query, schema `USAGE`), discovers schemas, tables
//! and columns from the catalog, and renders a `postgresql://` URI, a JDBC URL,
//! a libpq key/value string and `PG*` environment variables.
//!
//! ```
//! use connvault_plugin_sdk::{check, pb, Provider};
//! use connvault_plugin_postgres::Postgres;
//! let source = Postgres.data_sources().remove(0);
//! let mut spec = pb::ConnectionSpec::default();
//! spec.config.insert("host".into(), pb::Value { kind: Some(pb::value::Kind::StringValue("db.example".into())) });
//! spec.config.insert("user".into(), pb::Value { kind: Some(pb::value::Kind::StringValue("app".into())) });
//! let connection = check(&source, spec, &[]).unwrap();
//! let rendered = Postgres.render(&connection, false).unwrap();
//! assert_eq!(rendered.uri, "postgresql://app@db.example:5432/postgres?sslmode=disable");
//! ```

mod discover;
mod render;
mod session;

use connvault_plugin_sdk::pb;
use connvault_plugin_sdk::{
    Connection, Deadline, PluginError, Provider, Violations, export_provider, schema,
};
use connvault_provider_kit::{engine, fields, net, tls};

/// The PostgreSQL port when none is configured.
pub const DEFAULT_PORT: u16 = 5432;

/// The PostgreSQL provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct Postgres;

impl Provider for Postgres {
    fn data_sources(&self) -> Vec<pb::DataSource> {
        vec![
            schema::data_source("postgresql", "PostgreSQL")
                .aliases(&["POSTGRESQL", "RDS_POSTGRES"])
                .description(
                    "A PostgreSQL server, or a managed one such as Amazon RDS for PostgreSQL.",
                )
                .supports_tls()
                .supports_tunnel()
                .field(fields::host())
                .field(fields::port(DEFAULT_PORT))
                .field(
                    schema::string("database")
                        .label("Database")
                        .default_value("postgres")
                        .max_length(63)
                        .description("Database to connect to."),
                )
                .field(
                    schema::string("schema")
                        .label("Schema")
                        .default_value("public")
                        .max_length(63)
                        .description(
                            "Schema the connection works in; the test checks USAGE on it.",
                        ),
                )
                .field(
                    schema::string("user")
                        .required()
                        .label("User")
                        .group("Authentication")
                        .max_length(63)
                        .description("Role to log in as."),
                )
                .field(
                    schema::secret("password")
                        .label("Password")
                        .max_length(1024)
                        .description("Password of the role (SCRAM-SHA-256 or MD5 authentication)."),
                )
                .field(
                    schema::string("application_name")
                        .label("Application name")
                        .group("Advanced")
                        .max_length(63)
                        .description("Shown in pg_stat_activity."),
                )
                .field(
                    schema::int("connect_timeout")
                        .label("Connect timeout (s)")
                        .group("Advanced")
                        .range(1, 300)
                        .default_value(10)
                        .description("Longest wait for resolving, connecting, TLS and login."),
                )
                .secret_bound(&["host", "port", "user", "database"])
                .build(),
        ]
    }

    fn validate(&self, connection: &Connection, violations: &mut Violations) {
        fields::check_host(connection.str("host"), violations);
        tls::check_mode(connection, violations);
        tls::check_pem(&connection.tls, violations);
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

export_provider!(Postgres);
