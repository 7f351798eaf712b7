//! MongoDB's staged session.
//!
//! The driver dials by itself and takes no ready stream, so the stages split:
//! resolve, connect and TLS run on connvault's own socket through
//! provider-kit (the addresses connvault approves are the ones dialled), an
//! `isMaster` on that socket proves the protocol, and the driver then logs in
//! on a direct connection of its own to the address that socket reached
//! (the host name for `verify-full`, see [`login`]). The driver reads TLS
//! material from files only:
//! it gets anonymous in-memory files (memfd) that never touch a disk.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use connvault_plugin_sdk::pb::{ErrorCategory, Stage, TlsMode};
use connvault_plugin_sdk::{Connection, Deadline, StageError, TestReport};
use connvault_provider_kit::engine::Engine;
use connvault_provider_kit::session::Stream;
use mongodb::bson::doc;
use mongodb::options::{AuthMechanism, ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
use mongodb::{Client, error::ErrorKind};

use crate::{DEFAULT_PORT, MongoDb, net, tls, wire};

/// A logged-in driver client and the in-memory files its TLS settings name.
pub struct Session {
    /// The driver's client, on a direct connection.
    pub client: Client,
    _files: Vec<PemFile>,
}

/// Where the test dials: the host (an SRV target for `mongodb+srv`) and its addresses.
struct Target {
    host: String,
    port: u16,
    addresses: Vec<std::net::SocketAddr>,
}

impl Engine for MongoDb {
    type Session = Session;

    fn open(
        &self,
        connection: &Connection,
        deadline: Deadline,
        report: &mut TestReport,
    ) -> Option<Session> {
        let target = report.stage(Stage::Resolve, || {
            net::bounded(deadline, "resolving the host", resolve(connection))
        });
        let stream = report.stage(Stage::Connect, || {
            let target = net::prior(target.as_ref())?;
            net::bounded(
                deadline,
                "connecting",
                net::connect(connection, &target.host, &target.addresses),
            )
        });
        let reached = stream.as_ref().and_then(|stream| stream.peer_addr().ok());
        let mode = connection.tls_mode();
        let stream: Option<Stream> = if mode == TlsMode::Disable {
            report.skip(Stage::Tls, "TLS is disabled for this connection");
            stream.map(|stream| Box::new(stream) as Stream)
        } else {
            report.stage(Stage::Tls, || {
                let stream = net::prior(stream)?;
                let target = net::prior(target.as_ref())?;
                let config = tls::client_config(&connection.tls, mode)?;
                let name = tls::server_name(&connection.tls, &target.host)?;
                net::bounded(deadline, "the TLS handshake", async move {
                    tokio_rustls::TlsConnector::from(config)
                        .connect(name, stream)
                        .await
                        .map(|encrypted| Box::new(encrypted) as Stream)
                        .map_err(|error| tls::handshake_error(&error))
                })
            })
        };
        report.stage(Stage::Authenticate, || {
            let mut stream = net::prior(stream)?;
            let target = net::prior(target.as_ref())?;
            let reached = net::prior(reached)?;
            net::bounded(deadline, "logging in", async move {
                let hello = wire::is_master(&mut stream).await?;
                let wanted = connection.str("replica_set");
                if !wanted.is_empty() && hello.set_name.as_deref() != Some(wanted) {
                    return Err(StageError::new(
                        ErrorCategory::Config,
                        format!("the server is not a member of replica set {wanted:?}"),
                    ));
                }
                drop(stream);
                login(connection, target, reached, mode, deadline).await
            })
        })
    }

    /// `buildInfo`: the server's version.
    fn probe(&self, session: &mut Session, deadline: Deadline) -> Result<String, StageError> {
        net::bounded(deadline, "the probe command", async {
            let info = session
                .client
                .database("admin")
                .run_command(doc! { "buildInfo": 1 })
                .await
                .map_err(|error| classify(&error, "buildInfo"))?;
            Ok(info.get_str("version").unwrap_or("unknown").to_owned())
        })
    }
}

/// The host to dial: the first SRV target of a `mongodb+srv` name, else the host.
async fn resolve(connection: &Connection<'_>) -> Result<Target, StageError> {
    let host = connection.str("host");
    let (host, port) = if connection.bool("srv") {
        let options = ClientOptions::parse(format!("mongodb+srv://{host}/"))
            .await
            .map_err(|_| {
                StageError::new(
                    ErrorCategory::Dns,
                    format!("could not resolve the SRV records of {host:?}"),
                )
            })?;
        match options.hosts.first() {
            Some(ServerAddress::Tcp { host, port }) => (host.clone(), port.unwrap_or(DEFAULT_PORT)),
            _ => {
                return Err(StageError::new(
                    ErrorCategory::Dns,
                    format!("the SRV records of {host:?} name no TCP server"),
                ));
            }
        }
    } else {
        (
            host.to_owned(),
            net::port(connection.int("port"), DEFAULT_PORT),
        )
    };
    let addresses = net::resolve(connection, &host, port).await?;
    Ok(Target {
        host,
        port,
        addresses,
    })
}

/// An anonymous in-memory file holding PEM text, for the driver to open by path.
struct PemFile(memfd::Memfd);

impl PemFile {
    fn new(name: &str, pem: &str) -> Result<Self, StageError> {
        let failed = |_| {
            StageError::new(
                ErrorCategory::Internal,
                "could not hold TLS material in memory",
            )
        };
        let file = memfd::MemfdOptions::default()
            .close_on_exec(true)
            .create(name)
            .map_err(|_| {
                StageError::new(
                    ErrorCategory::Internal,
                    "could not hold TLS material in memory",
                )
            })?;
        file.as_file().write_all(pem.as_bytes()).map_err(failed)?;
        Ok(Self(file))
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }
}

impl Drop for PemFile {
    fn drop(&mut self) {
        // The client key may be in here: overwrite it before the memory goes.
        use std::os::unix::fs::FileExt;
        if let Ok(metadata) = self.0.as_file().metadata() {
            let zeros = vec![0u8; usize::try_from(metadata.len()).unwrap_or(0)];
            let _ = self.0.as_file().write_all_at(&zeros, 0);
        }
    }
}

/// The driver's TLS settings for `mode`, and the files they name.
fn tls_options(connection: &Connection, mode: TlsMode) -> Result<(Tls, Vec<PemFile>), StageError> {
    let material = &connection.tls;
    let mut files = Vec::new();
    let mut options = TlsOptions::default();
    match mode {
        TlsMode::Disable | TlsMode::Unspecified => return Ok((Tls::Disabled, files)),
        // Encrypt without checking the certificate (validate refuses a CA here).
        TlsMode::Prefer | TlsMode::Require => options.allow_invalid_certificates = Some(true),
        _ => {
            if !material.ca_pem.is_empty() {
                let file = PemFile::new("connvault-ca", &material.ca_pem)?;
                options.ca_file_path = Some(file.path());
                files.push(file);
            }
        }
    }
    if !material.client_cert_pem.is_empty() {
        let both = format!("{}\n{}", material.client_cert_pem, material.client_key_pem);
        let file = PemFile::new("connvault-client", &both)?;
        options.cert_key_file_path = Some(file.path());
        files.push(file);
    }
    Ok((Tls::Enabled(options), files))
}

/// The driver's login on a direct connection (the authenticate stage).
///
/// The driver is given the address the connect stage reached (the one the
/// egress grant approved), so it cannot resolve the name to another one;
/// except with `verify-full`, where it must dial the host name because it
/// checks the certificate against the name it dials and cannot be told
/// another. It then resolves the name again itself, and a different answer
/// could only lead it to a peer holding a trusted certificate for that name.
async fn login(
    connection: &Connection<'_>,
    target: &Target,
    reached: std::net::SocketAddr,
    mode: TlsMode,
    deadline: Deadline,
) -> Result<Session, StageError> {
    net::refuse_unless_permitted(connection, &target.host, reached)?;
    let (tls, files) = tls_options(connection, mode)?;
    let left = deadline.remaining().max(Duration::from_millis(1));
    let mut options = ClientOptions::default();
    let host = if mode == TlsMode::VerifyFull {
        target.host.clone()
    } else {
        reached.ip().to_string()
    };
    options.hosts = vec![ServerAddress::Tcp {
        host,
        port: Some(target.port),
    }];
    options.direct_connection = Some(true);
    options.tls = Some(tls);
    options.server_selection_timeout = Some(left);
    options.connect_timeout = Some(left);
    let app_name = connection.str("app_name");
    options.app_name = Some(
        if app_name.is_empty() {
            "connvault"
        } else {
            app_name
        }
        .to_owned(),
    );
    options.credential = credential(connection);
    let client =
        Client::with_options(options).map_err(|error| classify(&error, "starting the driver"))?;
    client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .map_err(|error| classify(&error, "logging in"))?;
    Ok(Session {
        client,
        _files: files,
    })
}

/// The driver's credential for the connection's user, source and mechanism.
fn credential(connection: &Connection) -> Option<Credential> {
    let user = connection.str("user");
    let mechanism = connection.str("auth_mechanism");
    if user.is_empty() && mechanism != "MONGODB-X509" {
        return None;
    }
    let mut credential = Credential::default();
    credential.username = (!user.is_empty()).then(|| user.to_owned());
    credential.password = connection.secret("password").map(str::to_owned);
    credential.mechanism = match mechanism {
        "SCRAM-SHA-1" => Some(AuthMechanism::ScramSha1),
        "SCRAM-SHA-256" => Some(AuthMechanism::ScramSha256),
        "PLAIN" => Some(AuthMechanism::Plain),
        "MONGODB-X509" => Some(AuthMechanism::MongoDbX509),
        _ => None,
    };
    credential.source = Some(auth_source(connection));
    Some(credential)
}

/// `auth_source`, else what MongoDB defaults to for the mechanism and database.
pub fn auth_source(connection: &Connection) -> String {
    let source = connection.str("auth_source");
    let database = connection.str("database");
    match connection.str("auth_mechanism") {
        _ if !source.is_empty() => source.to_owned(),
        "PLAIN" | "MONGODB-X509" => "$external".to_owned(),
        _ if !database.is_empty() => database.to_owned(),
        _ => "admin".to_owned(),
    }
}

/// Maps a driver error to a category. Messages are connvault's words: the
/// driver's text can quote what the server said.
pub fn classify(error: &mongodb::error::Error, doing: &str) -> StageError {
    let (category, what) = match &*error.kind {
        ErrorKind::Authentication { .. } => (
            ErrorCategory::Auth,
            "the server refused the credentials".to_owned(),
        ),
        ErrorKind::Command(command) => {
            let category = match command.code {
                18 => ErrorCategory::Auth,
                13 => ErrorCategory::Permission,
                26 => ErrorCategory::Config,
                91 | 189 | 11600 | 11602 | 13436 => ErrorCategory::Unreachable,
                _ => ErrorCategory::Protocol,
            };
            (
                category,
                format!("the server answered error {}", command.code),
            )
        }
        ErrorKind::ServerSelection { message, .. } => {
            let lower = message.to_ascii_lowercase();
            let category = if lower.contains("certificate") || lower.contains("tls") {
                ErrorCategory::Tls
            } else if lower.contains("timed out") {
                ErrorCategory::Timeout
            } else {
                ErrorCategory::Unreachable
            };
            (
                category,
                "the driver's own connection to the server failed".to_owned(),
            )
        }
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => (
            ErrorCategory::Unreachable,
            "the connection broke".to_owned(),
        ),
        ErrorKind::DnsResolve { .. } => (ErrorCategory::Dns, "the host did not resolve".to_owned()),
        ErrorKind::InvalidTlsConfig { .. } => (
            ErrorCategory::Config,
            "the TLS material is not usable".to_owned(),
        ),
        _ => (
            ErrorCategory::Protocol,
            "the server's answer was unexpected".to_owned(),
        ),
    };
    StageError::new(category, format!("{doing} failed: {what}"))
}
