//! Opening a tunnel step by step: TCP to the bastion, the SSH handshake with
//! the host key check, authentication, the first channel to the database.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::PrivateKeyWithHashAlg;
use russh::keys::PublicKeyOrCertificate;
use secrecy::ExposeSecret;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::forward::serve;
use crate::keys::{decode, fingerprint_of};
use crate::{Auth, Failure, HostKeys, Limits, Opened, TunnelConfig, TunnelError, endpoint};

/// The host key check, run by russh during the handshake.
pub(crate) struct Client {
    host_keys: HostKeys,
    /// The fingerprint the bastion presented, for the messages.
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fingerprint = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => fingerprint_of(key),
            PublicKeyOrCertificate::Certificate(certificate) => fingerprint_of(
                &russh::keys::PublicKey::from(certificate.public_key().clone()),
            ),
        };
        let accepted = match &self.host_keys {
            HostKeys::Pinned(pinned) => pinned.contains(&fingerprint),
            HostKeys::AnyUnverified => true,
        };
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(fingerprint);
        Ok(accepted)
    }
}

/// A running tunnel: its local end forwards to the database through the
/// bastion until it is dropped.
pub struct Tunnel {
    local: SocketAddr,
    opened: Opened,
    handle: Arc<Handle<Client>>,
    serving: JoinHandle<()>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Tunnel")
            .field("local", &self.local)
            .field("opened", &self.opened)
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// The loopback address to connect to instead of the database.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What opening it found out: the bastion address and its host key.
    pub fn opened(&self) -> &Opened {
        &self.opened
    }

    /// Stops forwarding and says goodbye to the bastion.
    pub async fn close(self) {
        self.serving.abort();
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        // Aborting the accept loop drops every forwarding task with it; the
        // session ends when the last handle goes.
        self.serving.abort();
    }
}

/// Runs `step` unless the deadline passes first (then TIMEOUT naming it).
async fn within<T>(
    deadline: Instant,
    what: &str,
    step: impl Future<Output = Result<T, TunnelError>>,
) -> Result<T, TunnelError> {
    match tokio::time::timeout_at(deadline, step).await {
        Ok(outcome) => outcome,
        Err(_) => Err(TunnelError::new(
            Failure::Timeout,
            format!("{what} did not finish before the deadline"),
        )),
    }
}

/// Connects to the first of `addresses` that accepts.
async fn dial(config: &TunnelConfig, addresses: &[SocketAddr]) -> Result<TcpStream, TunnelError> {
    let mut last = format!(
        "the bastion {} resolved to no address",
        endpoint(&config.host, config.port)
    );
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => {
                last = format!(
                    "could not connect to the bastion at {address}: {}",
                    io_problem(&error)
                )
            }
        }
    }
    Err(TunnelError::new(Failure::Unreachable, last))
}

/// An I/O failure in words of our own.
fn io_problem(error: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused",
        ErrorKind::ConnectionReset => "the connection was reset",
        ErrorKind::TimedOut => "timed out",
        ErrorKind::HostUnreachable => "no route to the host",
        ErrorKind::NetworkUnreachable => "the network is unreachable",
        ErrorKind::UnexpectedEof => "the bastion closed the connection",
        _ => "an I/O error",
    }
}

/// Opens a tunnel to `target` (the database's host and port, as the
/// bastion resolves them) through the bastion of `config`, dialled at
/// `addresses` (which the caller resolved and checked), every step within
/// `timeout`.
pub async fn open(
    config: &TunnelConfig,
    addresses: &[SocketAddr],
    target: (&str, u16),
    timeout: Duration,
    limits: Limits,
) -> Result<Tunnel, TunnelError> {
    let deadline = Instant::now() + timeout;
    let bastion = endpoint(&config.host, config.port);
    let stream = within(
        deadline,
        "connecting to the bastion",
        dial(config, addresses),
    )
    .await?;
    let peer = stream.peer_addr().map_err(|error| {
        TunnelError::new(
            Failure::Unreachable,
            format!("the bastion connection failed: {}", io_problem(&error)),
        )
    })?;

    let seen = Arc::new(Mutex::new(None));
    let client = Client {
        host_keys: config.host_keys.clone(),
        seen: Arc::clone(&seen),
    };
    let ssh_config = Arc::new(client::Config {
        nodelay: true,
        // A tunnel lives for one call; a silent bastion ends it.
        inactivity_timeout: Some(timeout),
        ..Default::default()
    });
    let handshake = within(deadline, "the SSH handshake with the bastion", async {
        client::connect_stream(ssh_config, stream, client)
            .await
            .map_err(|error| {
                let presented = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
                match (error, presented) {
                    (russh::Error::UnknownKey, Some(fingerprint)) => TunnelError::new(
                        Failure::HostKey,
                        format!(
                            "the bastion {bastion} presented host key {fingerprint}, which is not among the pinned fingerprints"
                        ),
                    ),
                    (error, _) => {
                        tracing::debug!(%bastion, %error, "SSH handshake failed");
                        TunnelError::new(
                            Failure::Protocol,
                            format!("the SSH handshake with the bastion {bastion} failed (is it an SSH server?)"),
                        )
                    }
                }
            })
    });
    let mut handle = handshake.await?;
    let host_key = seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_default();

    within(
        deadline,
        "logging in to the bastion",
        authenticate(&mut handle, config, &bastion),
    )
    .await?;

    let (host, port) = target;
    let forward_to = endpoint(host, port);
    let first = within(deadline, "opening the forwarded channel", async {
        handle
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
            .await
            .map_err(|error| forward_error(&error, &bastion, &forward_to))
    })
    .await?;

    let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|error| {
        TunnelError::new(
            Failure::Internal,
            format!(
                "could not listen on loopback for the tunnel: {}",
                io_problem(&error)
            ),
        )
    })?;
    let local = listener.local_addr().map_err(|error| {
        TunnelError::new(
            Failure::Internal,
            format!(
                "could not listen on loopback for the tunnel: {}",
                io_problem(&error)
            ),
        )
    })?;
    let handle = Arc::new(handle);
    let serving = tokio::spawn(serve(
        listener,
        Arc::clone(&handle),
        first,
        (host.to_owned(), port),
        limits,
    ));
    Ok(Tunnel {
        local,
        opened: Opened {
            bastion: peer,
            host_key,
        },
        handle,
        serving,
    })
}

/// Logs in with the configured key or password.
async fn authenticate(
    handle: &mut Handle<Client>,
    config: &TunnelConfig,
    bastion: &str,
) -> Result<(), TunnelError> {
    let refused = |error: russh::Error| {
        tracing::debug!(%bastion, %error, "SSH authentication broke off");
        TunnelError::new(
            Failure::Protocol,
            format!("the bastion {bastion} broke off the authentication"),
        )
    };
    let (result, method) = match &config.auth {
        Auth::Key { key, passphrase } => {
            let key = decode(key, passphrase.as_ref())?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(refused)?
                .flatten();
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            (
                handle
                    .authenticate_publickey(config.user.as_str(), key)
                    .await
                    .map_err(refused)?,
                "private key",
            )
        }
        Auth::Password(password) => (
            handle
                .authenticate_password(config.user.as_str(), password.expose_secret())
                .await
                .map_err(refused)?,
            "password",
        ),
    };
    match result {
        AuthResult::Success => Ok(()),
        AuthResult::Failure { .. } => Err(TunnelError::new(
            Failure::Auth,
            format!(
                "the bastion {bastion} refused user {:?} with the {method}",
                config.user
            ),
        )),
    }
}

/// FORWARD when the bastion refuses the channel, in the RFC's words.
pub(crate) fn forward_error(error: &russh::Error, bastion: &str, target: &str) -> TunnelError {
    let why = match error {
        russh::Error::ChannelOpenFailure(reason) => match reason {
            russh::ChannelOpenFailure::AdministrativelyProhibited => {
                "forwarding there is prohibited by its configuration"
            }
            russh::ChannelOpenFailure::ConnectFailed => "it could not connect there",
            russh::ChannelOpenFailure::ResourceShortage => "it is short of resources",
            _ => "it refused",
        },
        _ => "the session broke off",
    };
    TunnelError::new(
        Failure::Forward,
        format!("the bastion {bastion} did not open a channel to {target}: {why}"),
    )
}
