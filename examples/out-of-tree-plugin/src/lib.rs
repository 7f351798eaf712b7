//! An SFTP data source for connvault: host, port, user, a password or a
//! private key, and a start directory. It validates (one of password or key),
//! tests by connecting and reading the server's SSH banner, and renders an
//! `sftp://` URI.

use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

use connvault_plugin_sdk::pb::{ErrorCategory, Stage};
use connvault_plugin_sdk::{
    Connection, Deadline, PluginError, Provider, StageError, TestReport, Violations,
    export_provider, pb, schema,
};

/// The provider: no state.
#[derive(Default)]
pub struct Sftp;

impl Provider for Sftp {
    fn data_sources(&self) -> Vec<pb::DataSource> {
        vec![
            schema::data_source("sftp", "SFTP server")
                .aliases(&["SFTP"])
                .description("Files on an SSH server, reached with SFTP.")
                .field(
                    schema::string("host")
                        .required()
                        .label("Host")
                        .pattern("[A-Za-z0-9._-]+")
                        .pattern_message("must be a host name or an IPv4 address")
                        .max_length(253),
                )
                .field(
                    schema::int("port")
                        .label("Port")
                        .range(1, 65535)
                        .default_value(22),
                )
                .field(schema::string("user").required().label("User"))
                .field(
                    schema::string("directory")
                        .label("Start directory")
                        .default_value("/"),
                )
                .field(schema::secret("password").label("Password"))
                .field(schema::secret("private_key").label("Private key (PEM)"))
                .secret_bound(&["host", "port", "user"])
                .build(),
        ]
    }

    fn validate(&self, connection: &Connection, violations: &mut Violations) {
        let password = connection.secret("password").is_some_and(|s| !s.is_empty());
        let key = connection
            .secret("private_key")
            .is_some_and(|s| !s.is_empty());
        if password == key {
            violations.add(
                "secrets.password",
                "set either a password or a private key, not both and not neither",
            );
        }
        if !connection.str("directory").starts_with('/') {
            violations.add("config.directory", "must be an absolute path");
        }
    }

    fn test(
        &self,
        connection: &Connection,
        deadline: Deadline,
    ) -> Result<pb::TestResponse, PluginError> {
        let mut report = TestReport::new();
        let host = connection.str("host").to_owned();
        let port = u16::try_from(connection.int("port").unwrap_or(22)).unwrap_or(22);
        let address = report.stage(Stage::Resolve, || resolve(connection, &host, port));
        let stream = report.stage(Stage::Connect, || {
            let address =
                address.ok_or_else(|| StageError::new(ErrorCategory::Dns, "no address"))?;
            TcpStream::connect_timeout(&address, deadline.remaining())
                .map_err(|error| StageError::new(ErrorCategory::Unreachable, error.to_string()))
        });
        report.stage(Stage::Authenticate, || ssh_banner(stream, &deadline));
        Ok(report.finish())
    }

    fn render(
        &self,
        connection: &Connection,
        include_secrets: bool,
    ) -> Result<pb::RenderResponse, PluginError> {
        let password = match (include_secrets, connection.secret("password")) {
            (true, Some(password)) if !password.is_empty() => format!(":{password}"),
            (false, Some(password)) if !password.is_empty() => ":REDACTED".to_owned(),
            _ => String::new(),
        };
        Ok(pb::RenderResponse {
            uri: format!(
                "sftp://{}{password}@{}:{}{}",
                connection.str("user"),
                connection.str("host"),
                connection.int("port").unwrap_or(22),
                connection.str("directory")
            ),
            ..Default::default()
        })
    }
}

/// The address to connect to: one the server approved (its egress policy),
/// or, when it approved none in particular, the host's first address.
fn resolve(connection: &Connection, host: &str, port: u16) -> Result<SocketAddr, StageError> {
    if let Some(approved) = connection.egress.approved(host, port) {
        return approved
            .into_iter()
            .next()
            .ok_or_else(|| StageError::new(ErrorCategory::Permission, "no approved address"));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| StageError::new(ErrorCategory::Dns, "the host name does not resolve"))
}

/// Reads the server's identification line; an SSH server speaks first.
fn ssh_banner(stream: Option<TcpStream>, deadline: &Deadline) -> Result<(), StageError> {
    let mut stream =
        stream.ok_or_else(|| StageError::new(ErrorCategory::Unreachable, "not connected"))?;
    let timeout = deadline
        .remaining()
        .max(std::time::Duration::from_millis(1));
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|error| StageError::new(ErrorCategory::Internal, error.to_string()))?;
    let mut banner = [0_u8; 4];
    stream
        .read_exact(&mut banner)
        .map_err(|_| StageError::new(ErrorCategory::Protocol, "the server sent no SSH banner"))?;
    if &banner != b"SSH-" {
        // Never quote what a foreign server sent.
        return Err(StageError::new(
            ErrorCategory::Protocol,
            "the server is not an SSH server",
        ));
    }
    Ok(())
}

export_provider!(Sftp);
