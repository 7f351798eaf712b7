//! The connvault provider for MongoDB (`mongodb`, aliases `MONGODB`,
//! `MONGODB_SRV`, `DOCUMENTDB`), on the official `mongodb` driver.
//!
//! Tests a connection stage by stage: resolve (the SRV and TXT records of a
//! `mongodb+srv` name through the driver's resolver, then the host), TCP
//! connect and TLS through provider-kit on connvault's own socket, then
//! authenticate: an `isMaster` on that socket proves the peer speaks
//! MongoDB (and is the configured replica set), and the driver logs in on a
//! direct connection of its own. The probe reads `buildInfo`. Discovery lists
//! databases and collections, with field names and types sampled from a few
//! documents. Render gives the connection URI and environment variables.
//!
//! ```
//! use connvault_plugin_sdk::{check, pb, Provider};
//! use connvault_plugin_mongodb::MongoDb;
//! let source = MongoDb.data_sources().remove(0);
//! let text = |v: &str| pb::Value { kind: Some(pb::value::Kind::StringValue(v.into())) };
//! let mut spec = pb::ConnectionSpec::default();
//! spec.config.insert("host".into(), text("mongo.example"));
//! spec.config.insert("database".into(), text("shop"));
//! let connection = check(&source, spec, &[]).unwrap();
//! assert_eq!(MongoDb.render(&connection, false).unwrap().uri, "mongodb://mongo.example:27017/shop");
//! ```

mod discover;
mod render;
mod session;
mod wire;

use connvault_plugin_sdk::pb::{self, TlsMode};
use connvault_plugin_sdk::{
    Connection, Deadline, PluginError, Provider, Violations, export_provider, schema,
};
use connvault_provider_kit::{engine, fields, net, tls};

pub use render::PLACEHOLDER;

/// The MongoDB port when none is configured.
pub const DEFAULT_PORT: u16 = 27017;

/// Authentication mechanisms the driver is built with here.
pub const MECHANISMS: [&str; 5] = [
    "DEFAULT",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "PLAIN",
    "MONGODB-X509",
];

/// The MongoDB provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct MongoDb;

impl Provider for MongoDb {
    fn data_sources(&self) -> Vec<pb::DataSource> {
        vec![
            schema::data_source("mongodb", "MongoDB")
                .aliases(&["MONGODB", "MONGODB_SRV", "DOCUMENTDB"])
                .description(
                    "A MongoDB server or replica set (mongodb:// or mongodb+srv://), MongoDB Atlas, or Amazon DocumentDB.",
                )
                .supports_tls()
                .field(fields::host())
                .field(fields::port(DEFAULT_PORT))
                .field(
                    schema::boolean("srv")
                        .label("DNS seed list (mongodb+srv)")
                        .default_value(false)
                        .description("`host` is a DNS name whose SRV records list the servers; `port` is not used."),
                )
                .field(
                    schema::string("database")
                        .label("Database")
                        .pattern("[^/\\\\. \"$]+")
                        .max_length(64)
                        .description("Default database of the connection."),
                )
                .field(
                    schema::string("user")
                        .label("User")
                        .group("Authentication")
                        .max_length(256)
                        .description("User to authenticate as; none for a server without access control."),
                )
                .field(
                    schema::secret("password")
                        .label("Password")
                        .max_length(1024)
                        .description("Password of the user."),
                )
                .field(
                    schema::string("auth_source")
                        .label("Authentication database")
                        .group("Authentication")
                        .max_length(64)
                        .description("Database holding the user (authSource); `database`, else `admin`, when empty."),
                )
                .field(
                    schema::enumeration("auth_mechanism", &MECHANISMS)
                        .label("Authentication mechanism")
                        .group("Authentication")
                        .default_value("DEFAULT")
                        .description("DEFAULT negotiates SCRAM; MONGODB-X509 uses the TLS client certificate; PLAIN (LDAP) sends the password, so it needs TLS."),
                )
                .field(
                    schema::string("replica_set")
                        .label("Replica set")
                        .max_length(128)
                        .description("Name of the replica set; the test checks the server belongs to it."),
                )
                .field(
                    schema::string("app_name")
                        .label("Application name")
                        .group("Advanced")
                        .max_length(128)
                        .description("Shown in the server's logs and currentOp."),
                )
                .secret_bound(&["host", "port", "srv", "user", "auth_source", "auth_mechanism"])
                .build(),
        ]
    }

    fn validate(&self, connection: &Connection, violations: &mut Violations) {
        fields::check_host(connection.str("host"), violations);
        tls::check_mode(connection, violations);
        tls::check_pem(&connection.tls, violations);
        let mode = connection.tls_mode();
        if connection.bool("srv") && connection.int("port") != Some(i64::from(DEFAULT_PORT)) {
            violations.add(
                "config.port",
                "a mongodb+srv name takes no port: its SRV records give them",
            );
        }
        if !connection.tls.server_name.is_empty() {
            violations.add(
                "tls.server_name",
                "the MongoDB driver checks the certificate against the host name; it cannot be set",
            );
        }
        let has_ca = !connection.tls.ca_pem.is_empty();
        if mode == TlsMode::VerifyCa || (mode == TlsMode::Require && has_ca) {
            violations.add(
                "tls.mode",
                "the MongoDB driver cannot check the chain without the name: use verify-full, or require without a CA",
            );
        }
        let user = connection.str("user");
        let password = connection.secret("password").is_some();
        match connection.str("auth_mechanism") {
            "MONGODB-X509" => {
                if connection.tls.client_cert_pem.is_empty() || mode == TlsMode::Disable {
                    violations.add(
                        "tls.client_cert_pem",
                        "MONGODB-X509 needs TLS and a client certificate",
                    );
                }
                if password {
                    violations.add("secrets.password", "MONGODB-X509 takes no password");
                }
            }
            mechanism => {
                if password && user.is_empty() {
                    violations.add("config.user", "a password needs a user");
                }
                if mechanism != "DEFAULT" && user.is_empty() {
                    violations.add("config.user", "this mechanism needs a user");
                }
                if mechanism == "PLAIN" && mode == TlsMode::Disable {
                    violations.add("tls.mode", "PLAIN sends the password as it is: turn TLS on");
                }
            }
        }
    }

    /// `host` and `port`; none for a `mongodb+srv` name, whose servers only
    /// its SRV records name (the egress policy decides on each as it is dialled).
    fn targets(&self, connection: &Connection) -> Option<Vec<pb::NetworkTarget>> {
        if connection.bool("srv") {
            return None;
        }
        connvault_plugin_sdk::host_and_port(connection)
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
        let session = engine::open_or_error(self, connection, deadline)?;
        net::bounded(
            deadline,
            "discovery",
            discover::catalog(&session.client, request),
        )
        .map_err(net::plugin_error)
    }

    fn render(
        &self,
        connection: &Connection,
        include_secrets: bool,
    ) -> Result<pb::RenderResponse, PluginError> {
        Ok(render::render(connection, include_secrets))
    }
}

export_provider!(MongoDb);
