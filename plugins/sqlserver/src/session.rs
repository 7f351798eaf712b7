//! SQL Server's staged session: TCP through provider-kit, the pre-login
//! exchange and TLS here ([`crate::tds`]), the login in tiberius over the
//! same socket, then the probe and the schema permission check.

use connvault_plugin_sdk::pb::{ErrorCategory, Stage, TlsMode};
use connvault_plugin_sdk::{Connection, Deadline, StageError, TestReport};
use connvault_provider_kit::engine::Engine;
use connvault_provider_kit::session::{self, Stream};
use tiberius::{AuthMethod, Client, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::tds::{self, Answer, Encryption, Framing, PreloginError, Replay};
use crate::{DEFAULT_PORT, SqlServer, classify, net, tls};

/// An authenticated tiberius client over connvault's own transport.
pub type Session = Client<Compat<Replay<Stream>>>;

/// What the authenticate stage starts from.
enum Prepared {
    /// TLS is disabled: the pre-login exchange is still to do.
    Plain(TcpStream),
    /// The TLS stage ran the pre-login exchange (and TLS, if the server offers it).
    Negotiated(Negotiated),
}

/// A socket past the TLS stage: what the server answered, and the stream to log in over.
pub struct Negotiated {
    stream: Stream,
    answer: Answer,
}

impl Engine for SqlServer {
    type Session = Session;
    const AUTHORIZES: bool = true;

    /// Runs resolve, connect, pre-login and TLS, then tiberius's login.
    fn open(
        &self,
        connection: &Connection,
        deadline: Deadline,
        report: &mut TestReport,
    ) -> Option<Session> {
        let stream = session::reach(connection, DEFAULT_PORT, deadline, report);
        let mode = connection.tls_mode();
        let instance = connection.str("instance_name");
        let negotiated = if mode == TlsMode::Disable {
            report.skip(
                Stage::Tls,
                "TLS is disabled for this connection: the login is sent unencrypted",
            );
            stream.map(Prepared::Plain)
        } else {
            report
                .stage(Stage::Tls, || {
                    let stream = net::prior(stream)?;
                    net::bounded(
                        deadline,
                        "the TLS handshake",
                        encrypt(stream, connection, mode),
                    )
                })
                .map(Prepared::Negotiated)
        };
        report.stage(Stage::Authenticate, || {
            let prepared = net::prior(negotiated)?;
            net::bounded(deadline, "logging in", async move {
                let negotiated = match prepared {
                    Prepared::Plain(stream) => plain(stream, instance).await?,
                    Prepared::Negotiated(negotiated) => negotiated,
                };
                login(negotiated, connection).await
            })
        })
    }

    /// The server's product version.
    fn probe(&self, client: &mut Session, deadline: Deadline) -> Result<String, StageError> {
        net::bounded(deadline, "the probe query", async {
            let row = client
                .simple_query("SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128))")
                .await
                .map_err(|error| classify::driver(&error, "the probe query"))?
                .into_row()
                .await
                .map_err(|error| classify::driver(&error, "the probe query"))?;
            let version = row
                .and_then(|row| row.get::<&str, _>(0).map(str::to_owned))
                .ok_or_else(|| {
                    StageError::new(ErrorCategory::Protocol, "the probe query returned no row")
                })?;
            Ok(version)
        })
    }

    /// Whether the user may read the connection's schema.
    fn authorize(
        &self,
        client: &mut Session,
        connection: &Connection,
        deadline: Deadline,
    ) -> Result<(), StageError> {
        let schema = connection.str("schema");
        net::bounded(deadline, "the schema permission check", async {
            let row = client
                .query(
                    "SELECT CAST(HAS_PERMS_BY_NAME(@P1, 'SCHEMA', 'SELECT') AS int)",
                    &[&schema],
                )
                .await
                .map_err(|error| classify::driver(&error, "checking schema permissions"))?
                .into_row()
                .await
                .map_err(|error| classify::driver(&error, "checking schema permissions"))?;
            match row.and_then(|row| row.get::<i32, _>(0)) {
                Some(1) => Ok(()),
                Some(_) => Err(StageError::new(
                    ErrorCategory::Permission,
                    format!("the user may not SELECT in schema {schema:?}"),
                )),
                None => Err(StageError::new(
                    ErrorCategory::Config,
                    format!("schema {schema:?} does not exist in this database"),
                )),
            }
        })
    }
}

fn prelogin_error(error: PreloginError) -> StageError {
    match error {
        PreloginError::Io(_) => StageError::new(
            ErrorCategory::Unreachable,
            "the server closed the connection during the pre-login exchange",
        ),
        PreloginError::NotTds => StageError::new(
            ErrorCategory::Protocol,
            "the server did not answer the TDS pre-login: is this a SQL Server?",
        ),
    }
}

fn check_instance(answer: &Answer, instance: &str) -> Result<(), StageError> {
    if answer.wrong_instance {
        return Err(StageError::new(
            ErrorCategory::Config,
            format!("the server at this port is not instance {instance:?}"),
        ));
    }
    Ok(())
}

/// The pre-login exchange without TLS (TLS disabled).
async fn plain(mut stream: TcpStream, instance: &str) -> Result<Negotiated, StageError> {
    let answer = tds::exchange(&mut stream, Encryption::NotSupported, instance)
        .await
        .map_err(prelogin_error)?;
    check_instance(&answer, instance)?;
    if matches!(answer.encryption, Encryption::On | Encryption::Required) {
        return Err(StageError::new(
            ErrorCategory::Tls,
            "the server requires encryption, but TLS is disabled for this connection",
        ));
    }
    Ok(Negotiated {
        stream: Box::new(stream),
        answer,
    })
}

/// The pre-login exchange asking for encryption, then the TLS handshake in
/// pre-login packets (the TLS stage).
async fn encrypt(
    mut stream: TcpStream,
    connection: &Connection<'_>,
    mode: TlsMode,
) -> Result<Negotiated, StageError> {
    let config = tls::client_config(&connection.tls, mode)?;
    let name = tls::server_name(&connection.tls, connection.str("host"))?;
    let instance = connection.str("instance_name");
    let answer = tds::exchange(&mut stream, Encryption::On, instance)
        .await
        .map_err(prelogin_error)?;
    check_instance(&answer, instance)?;
    if answer.encryption == Encryption::NotSupported {
        // `prefer` goes on in plain text, as the server offers no TLS.
        if mode == TlsMode::Prefer {
            return Ok(Negotiated {
                stream: Box::new(stream),
                answer,
            });
        }
        return Err(StageError::new(
            ErrorCategory::Tls,
            "the server does not support encryption, but TLS is required",
        ));
    }
    let mut encrypted = tokio_rustls::TlsConnector::from(config)
        .connect(name, Framing::new(stream))
        .await
        .map_err(|error| tls::handshake_error(&error))?;
    encrypted.get_mut().0.handshake_done();
    Ok(Negotiated {
        stream: Box::new(encrypted),
        answer,
    })
}

/// tiberius's login over the negotiated stream (the authenticate stage).
async fn login(negotiated: Negotiated, connection: &Connection<'_>) -> Result<Session, StageError> {
    let mut config = tiberius::Config::new();
    config.host(connection.str("host"));
    config.port(net::port(connection.int("port"), DEFAULT_PORT));
    let database = connection.str("database");
    if !database.is_empty() {
        config.database(database);
    }
    let instance = connection.str("instance_name");
    if !instance.is_empty() {
        config.instance_name(instance);
    }
    let application = connection.str("application_name");
    config.application_name(if application.is_empty() {
        "connvault"
    } else {
        application
    });
    config.readonly(connection.str("application_intent") == "ReadOnly");
    config.authentication(AuthMethod::sql_server(
        connection.str("user"),
        connection.secret("password").unwrap_or_default(),
    ));
    // TLS, if any, is already in place underneath.
    config.encryption(EncryptionLevel::NotSupported);
    let stream = Replay::new(negotiated.stream, negotiated.answer.packet);
    Client::connect(config, stream.compat())
        .await
        .map_err(|error| classify::driver(&error, "logging in"))
}
