//! The connvault provider for the generic JDBC data-source shape (`jdbc`).
//!
//! It validates a JDBC URL (sub-protocol, host, port) and the settings around
//! it. Its test checks only that the URL's host resolves and accepts TCP
//! connections: it does not speak the database's protocol, so it cannot check
//! credentials or TLS.
//!
//! ```
//! use connvault_plugin_sdk::{check, pb, Provider};
//! use connvault_plugin_jdbc::Jdbc;
//! let source = Jdbc.data_sources().remove(0);
//! let mut spec = pb::ConnectionSpec::default();
//! spec.config.insert("jdbc_url".into(), pb::Value { kind: Some(pb::value::Kind::StringValue("jdbc:postgresql://db.example/app".into())) });
//! let connection = check(&source, spec, &[]).unwrap();
//! assert_eq!(Jdbc.render(&connection, false).unwrap().jdbc_url, "jdbc:postgresql://db.example/app");
//! ```

mod credentials;
mod url;

use std::collections::BTreeMap;

use connvault_plugin_sdk::pb::{self, Stage};
use connvault_plugin_sdk::{
    Connection, Deadline, PluginError, Provider, TestReport, Violations, export_provider, schema,
};
use connvault_provider_kit::net;

pub use url::{Target, parse as parse_url};

/// What the test says about the stages it cannot run.
pub const NOT_SPOKEN: &str = "not checked: the jdbc provider tests DNS and TCP reachability only and does not speak the database's protocol";

/// What stands in for a secret when the caller did not ask for secrets.
pub const PLACEHOLDER: &str = "REDACTED";

/// The generic JDBC provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct Jdbc;

impl Provider for Jdbc {
    fn data_sources(&self) -> Vec<pb::DataSource> {
        vec![
            schema::data_source("jdbc", "JDBC")
                .supports_tunnel()
                .description(
                    "Any database reached through a JDBC driver. connvault checks the URL and that its host is reachable; the driver itself runs elsewhere.",
                )
                .field(
                    schema::string("jdbc_url")
                        .required()
                        .label("JDBC URL")
                        .max_length(2048)
                        .description("For example jdbc:postgresql://host:5432/db. No password in the URL."),
                )
                .field(schema::string("schema").label("Schema").max_length(128))
                .field(
                    schema::boolean("enforce_ssl")
                        .label("Enforce SSL")
                        .default_value(false)
                        .description("Clients must use TLS; the URL must not turn it off."),
                )
                .field(
                    schema::string("user")
                        .label("User")
                        .group("Authentication")
                        .max_length(256),
                )
                .field(schema::secret("password").label("Password").max_length(1024))
                .field(
                    schema::string("secret_reference")
                        .label("Secret reference")
                        .group("Authentication")
                        .max_length(2048)
                        .description("Where the credentials are kept instead of a password (for example a secrets-manager ARN)."),
                )
                .field(
                    schema::text("custom_certificate")
                        .label("Custom certificate (PEM)")
                        .group("Advanced")
                        .description("CA certificate the driver should trust."),
                )
                .field(
                    schema::string("driver_class_name")
                        .label("Driver class name")
                        .group("Advanced")
                        .pattern(r"[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*")
                        .pattern_message("must be a Java class name such as org.postgresql.Driver")
                        .max_length(512),
                )
                .field(
                    schema::string("driver_jar_uri")
                        .label("Driver JAR URI")
                        .group("Advanced")
                        .max_length(2048)
                        .description("s3://, gs://, https:// or file:// location of the driver JAR."),
                )
                // The driver code and the TLS it is told to use decide who can read
                // the password as much as the URL does.
                .secret_bound(&[
                    "jdbc_url",
                    "user",
                    "enforce_ssl",
                    "custom_certificate",
                    "driver_class_name",
                    "driver_jar_uri",
                ])
                .build(),
        ]
    }

    fn validate(&self, connection: &Connection, violations: &mut Violations) {
        let jdbc_url = connection.str("jdbc_url");
        match url::parse(jdbc_url) {
            Err(problem) => violations.add("config.jdbc_url", problem),
            Ok(target) => {
                if let Some(part) = target.credentials {
                    violations.add(
                        "config.jdbc_url",
                        format!(
                            "must not contain a password ({part} carries one): put it in `secrets.password`"
                        ),
                    );
                }
            }
        }
        if connection.bool("enforce_ssl") && turns_tls_off(jdbc_url) {
            violations.add(
                "config.enforce_ssl",
                "SSL is enforced but the JDBC URL turns it off",
            );
        }
        if connection.secret("password").is_some() && !connection.str("secret_reference").is_empty()
        {
            violations.add(
                "config.secret_reference",
                "set either a password or a secret reference, not both",
            );
        }
        let certificate = connection.str("custom_certificate");
        if !certificate.is_empty() && !certificate.contains("-----BEGIN CERTIFICATE-----") {
            violations.add("config.custom_certificate", "must be a PEM certificate");
        }
        let jar = connection.str("driver_jar_uri");
        if !jar.is_empty() {
            let known = ["s3://", "gs://", "https://", "file://", "abfss://"];
            if !known.iter().any(|scheme| jar.starts_with(scheme)) {
                violations.add(
                    "config.driver_jar_uri",
                    "must be an s3://, gs://, abfss://, https:// or file:// URI",
                );
            }
            if connection.str("driver_class_name").is_empty() {
                violations.add("config.driver_class_name", "is required with a driver JAR");
            }
        }
    }

    /// The URL's first host and port: what `test` connects to, so the
    /// server checks its egress policy against the host the URL names.
    fn targets(&self, connection: &Connection) -> Option<Vec<pb::NetworkTarget>> {
        let target = url::parse(connection.str("jdbc_url")).ok()?;
        Some(vec![pb::NetworkTarget {
            field: "config.jdbc_url".to_owned(),
            host: target.host,
            port: u32::from(target.port),
        }])
    }

    fn test(
        &self,
        connection: &Connection,
        deadline: Deadline,
    ) -> Result<pb::TestResponse, PluginError> {
        let mut report = TestReport::new();
        let target = url::parse(connection.str("jdbc_url"))
            .map_err(|problem| PluginError::invalid_argument("config.jdbc_url", problem))?;
        let addresses = report.stage(Stage::Resolve, || {
            net::bounded(
                deadline,
                "resolving the host",
                net::resolve(connection, &target.host, target.port),
            )
        });
        report.stage(Stage::Connect, || {
            let addresses = net::prior(addresses)?;
            net::bounded(deadline, "connecting", async {
                net::connect(connection, &target.host, &addresses)
                    .await
                    .map(drop)
            })
        });
        if !report.failed() {
            for stage in [Stage::Tls, Stage::Authenticate, Stage::Probe] {
                report.skip(stage, NOT_SPOKEN);
            }
        }
        Ok(report.finish())
    }

    fn render(
        &self,
        connection: &Connection,
        include_secrets: bool,
    ) -> Result<pb::RenderResponse, PluginError> {
        let jdbc_url = connection.str("jdbc_url").to_owned();
        let mut env = BTreeMap::new();
        env.insert("JDBC_URL".to_owned(), jdbc_url.clone());
        for (name, key) in [
            ("JDBC_USER", "user"),
            ("JDBC_SCHEMA", "schema"),
            ("JDBC_DRIVER_CLASS", "driver_class_name"),
            ("JDBC_DRIVER_JAR", "driver_jar_uri"),
            ("JDBC_SECRET_REFERENCE", "secret_reference"),
        ] {
            let value = connection.str(key);
            if !value.is_empty() {
                env.insert(name.to_owned(), value.to_owned());
            }
        }
        if let Some(password) = connection.secret("password") {
            let shown = if include_secrets {
                password
            } else {
                PLACEHOLDER
            };
            env.insert("JDBC_PASSWORD".to_owned(), shown.to_owned());
        }
        Ok(pb::RenderResponse {
            jdbc_url,
            env: env.into_iter().collect(),
            ..Default::default()
        })
    }
}

/// Whether the URL explicitly disables TLS in a driver's usual vocabulary.
fn turns_tls_off(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    [
        "ssl=false",
        "sslmode=disable",
        "usessl=false",
        "encrypt=false",
        "sslmode=disabled",
    ]
    .iter()
    .any(|setting| lower.contains(setting))
}

export_provider!(Jdbc);
