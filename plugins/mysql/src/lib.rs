//! The connvault provider for MySQL and the MariaDB family (`mysql`, aliases
//! `MYSQL`, `RDS_MYSQL`, `GAUSSDB_MYSQL`, `gaussdb-mysql`, `mariadb`).
//!
//! Tests a connection stage by stage (resolve, TCP connect, TLS, login, a
//! `SELECT VERSION()` probe), discovers databases, tables and columns through
//! `information_schema`, and renders a `mysql://` URI, a JDBC URL, a Go-style
//! DSN and environment variables.
//!
//! ```
//! use connvault_plugin_sdk::{check, pb, Provider};
//! use connvault_plugin_mysql::MySql;
//! let source = MySql.data_sources().remove(0);
//! let mut spec = pb::ConnectionSpec::default();
//! spec.config.insert("host".into(), pb::Value { kind: Some(pb::value::Kind::StringValue("db.example".into())) });
//! spec.config.insert("user".into(), pb::Value { kind: Some(pb::value::Kind::StringValue("app".into())) });
//! let connection = check(&source, spec, &[]).unwrap();
//! assert_eq!(MySql.render(&connection, false).unwrap().uri, "mysql://app@db.example:3306/");
//! ```

mod discover;
mod render;
mod session;

use connvault_plugin_sdk::pb;
use connvault_plugin_sdk::{
    Connection, Deadline, PluginError, Provider, Violations, export_provider, schema,
};
use connvault_provider_kit::{engine, fields, net, tls};

/// The MySQL port when none is configured.
pub const DEFAULT_PORT: u16 = 3306;

/// The MySQL / MariaDB provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct MySql;

impl Provider for MySql {
    fn data_sources(&self) -> Vec<pb::DataSource> {
        vec![
            schema::data_source("mysql", "MySQL / MariaDB")
                .aliases(&["MYSQL", "RDS_MYSQL", "GAUSSDB_MYSQL", "gaussdb-mysql", "mariadb"])
                .description(
                    "A MySQL-protocol server: MySQL, MariaDB, Amazon RDS for MySQL, GaussDB(for MySQL).",
                )
                .supports_tls()
                .field(fields::host())
                .field(fields::port(DEFAULT_PORT))
                .field(
                    schema::string("database")
                        .label("Database")
                        .max_length(64)
                        .description("Default database (optional)."),
                )
                .field(
                    schema::string("user")
                        .required()
                        .label("User")
                        .group("Authentication")
                        .max_length(80)
                        .description("Account to log in as."),
                )
                .field(
                    schema::secret("password")
                        .label("Password")
                        .max_length(1024)
                        .description("Password of the account."),
                )
                .secret_bound(&["host", "port", "user"])
                .build(),
        ]
    }

    fn validate(&self, connection: &Connection, violations: &mut Violations) {
        fields::check_host(connection.str("host"), violations);
        tls::check_mode(connection, violations);
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

export_provider!(MySql);
