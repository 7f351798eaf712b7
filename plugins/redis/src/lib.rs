//! The connvault provider for Redis (`redis`).
//!
//! Tests a connection stage by stage (resolve, TCP connect, TLS, `AUTH`,
//! `PING` and the version from `INFO server`), summarises the keyspace per
//! database, and renders a `redis://` or `rediss://` URI.
//!
//! ```
//! use connvault_plugin_sdk::{check, pb, Provider};
//! use connvault_plugin_redis::Redis;
//! let source = Redis.data_sources().remove(0);
//! let mut spec = pb::ConnectionSpec::default();
//! spec.config.insert("host".into(), pb::Value { kind: Some(pb::value::Kind::StringValue("cache.example".into())) });
//! let connection = check(&source, spec, &[]).unwrap();
//! assert_eq!(Redis.render(&connection, false).unwrap().uri, "redis://cache.example:6379/0");
//! ```

mod render;
mod session;

use connvault_plugin_sdk::pb;
use connvault_plugin_sdk::{
    Connection, Deadline, PluginError, Provider, Violations, export_provider, schema,
};
use connvault_provider_kit::{engine, fields, net, tls};

/// The Redis port when none is configured.
pub const DEFAULT_PORT: u16 = 6379;

/// The Redis provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct Redis;

impl Provider for Redis {
    fn data_sources(&self) -> Vec<pb::DataSource> {
        vec![
            schema::data_source("redis", "Redis")
                .description("A Redis (or Redis-compatible) server.")
                .supports_tls()
                .supports_tunnel()
                .field(fields::host())
                .field(fields::port(DEFAULT_PORT))
                .field(
                    schema::int("database")
                        .label("Database index")
                        .range(0, 65535)
                        .default_value(0)
                        .description("Logical database selected after login."),
                )
                .field(
                    schema::string("username")
                        .label("Username")
                        .group("Authentication")
                        .max_length(256)
                        .description("ACL user (Redis 6+); empty means the default user."),
                )
                .field(
                    schema::secret("password")
                        .label("Password")
                        .max_length(1024)
                        .description("Password of the ACL user, or `requirepass`."),
                )
                .secret_bound(&["host", "port", "username"])
                .build(),
        ]
    }

    fn validate(&self, connection: &Connection, violations: &mut Violations) {
        fields::check_host(connection.str("host"), violations);
        if !connection.str("username").is_empty() && connection.secret("password").is_none() {
            violations.add("secrets.password", "an ACL username needs a password");
        }
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
        let mut conn = engine::open_or_error(self, connection, deadline)?;
        session::keyspace(&mut conn, request, deadline).map_err(net::plugin_error)
    }

    fn render(
        &self,
        connection: &Connection,
        include_secrets: bool,
    ) -> Result<pb::RenderResponse, PluginError> {
        Ok(render::render(connection, include_secrets))
    }
}

export_provider!(Redis);
