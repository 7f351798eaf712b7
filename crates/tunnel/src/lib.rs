//! SSH tunnels for connvault: reach a data source through a bastion host.
//!
//! [`open`] connects to the bastion, checks its host key against the pinned
//! SHA256 fingerprints (OpenSSH's `SHA256:...` form), authenticates with a
//! private key or a password, and opens a `direct-tcpip` channel to the
//! database through it, which proves the bastion will forward there. The
//! returned [`Tunnel`] then listens on an ephemeral loopback port for the
//! length of one plugin call: each connection accepted there is carried over
//! a channel of its own (the first one over the channel already open), up to
//! [`Limits::max_channels`]. Dropping the tunnel stops it.
//!
//! Each failure is a [`TunnelError`] whose [`Failure`] says which step
//! failed, in words safe to show (never a secret, never text the bastion sent).
//!
//! ```no_run
//! # async fn demo() -> Result<(), connvault_tunnel::TunnelError> {
//! use connvault_tunnel::{Auth, HostKeys, Limits, TunnelConfig};
//! let config = TunnelConfig {
//!     host: "bastion.example".into(),
//!     port: 22,
//!     user: "tunnel".into(),
//!     auth: Auth::Password("secret".into()),
//!     host_keys: HostKeys::Pinned(vec!["SHA256:...".into()]),
//! };
//! let addresses = ["192.0.2.10:22".parse().unwrap()];
//! let tunnel = connvault_tunnel::open(
//!     &config,
//!     &addresses,
//!     ("db.internal", 5432),
//!     std::time::Duration::from_secs(10),
//!     Limits::default(),
//! )
//! .await?;
//! println!("connect to {}", tunnel.local_addr());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod forward;
mod keys;
mod open;

use std::net::SocketAddr;

use secrecy::SecretString;

pub use self::keys::{check_fingerprint, check_private_key};
pub use self::open::{Tunnel, open};

/// How connvault logs in to a bastion.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A private key (OpenSSH, PKCS#8 or PEM), encrypted with `passphrase` when given.
    Key {
        /// The key's text.
        key: SecretString,
        /// Its passphrase, if it is encrypted.
        passphrase: Option<SecretString>,
    },
    /// A password.
    Password(SecretString),
}

/// Which host keys the bastion may present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeys {
    /// One of these SHA256 fingerprints (`SHA256:` and unpadded base64).
    Pinned(Vec<String>),
    /// Any key (development servers only); the key seen is still reported.
    AnyUnverified,
}

/// Where and how to reach a bastion.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    /// The bastion's host name or address (as the connection names it).
    pub host: String,
    /// Its SSH port.
    pub port: u16,
    /// The user to log in as.
    pub user: String,
    /// How to log in.
    pub auth: Auth,
    /// Which host keys to accept.
    pub host_keys: HostKeys,
}

/// Bounds on one tunnel.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections the local end accepts over the tunnel's life.
    pub max_channels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_channels: 16 }
    }
}

/// Which step of opening a tunnel failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// No address of the bastion accepted a TCP connection.
    Unreachable,
    /// A step did not finish before the deadline.
    Timeout,
    /// The bastion is not an SSH server, or the handshake broke off.
    Protocol,
    /// The bastion presented a host key that is not pinned.
    HostKey,
    /// The bastion refused the user and credentials.
    Auth,
    /// The bastion would not open a channel to the database.
    Forward,
    /// The connection's own tunnel settings are unusable (a key that does not read).
    Config,
    /// The local end could not be set up.
    Internal,
}

/// A step of opening a tunnel failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TunnelError {
    /// Which step.
    pub failure: Failure,
    /// What happened, safe to show.
    pub message: String,
}

impl TunnelError {
    fn new(failure: Failure, message: impl Into<String>) -> Self {
        Self {
            failure,
            message: message.into(),
        }
    }
}

/// `host:port`, with brackets around an IPv6 literal.
fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What [`open`] found out on the way, for the stage message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The bastion address that answered.
    pub bastion: SocketAddr,
    /// The fingerprint of the host key it presented.
    pub host_key: String,
}
