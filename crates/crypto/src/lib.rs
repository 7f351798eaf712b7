//! Envelope encryption for connvault's secrets.
//!
//! A 256-bit [`MasterKey`] (loaded from a file or the environment) wraps
//! versioned data keys; a [`Keyring`] holds the unwrapped data keys and seals
//! [`SecretMap`]s with AES-256-GCM. Every seal uses a fresh random 96-bit nonce,
//! and the associated data ([`Aad`]) binds the ciphertext to its tenant, record,
//! purpose and data-key version, so a ciphertext moved anywhere else fails to
//! open. Every failure to open is the single opaque [`CryptoError::Open`]: there
//! is no oracle telling an attacker *why* a ciphertext was refused.
//!
//! Secrets in memory are zeroized on drop and their `Debug` output is
//! `[redacted]`.
//!
//! ```
//! use connvault_crypto::{Aad, Keyring, MasterKey, SecretMap, SecretString, ExposeSecret};
//!
//! # fn main() -> Result<(), connvault_crypto::CryptoError> {
//! let master = MasterKey::generate()?;
//! // Persist `Keyring::check_value(&master)` and the wrapped keys next to the data.
//! let check = Keyring::check_value(&master);
//! let mut keyring = Keyring::new(master, Vec::new())?;
//! let _wrapped = keyring.add_data_key()?; // persist this too
//!
//! let mut secrets = SecretMap::new();
//! secrets.insert("password", SecretString::from("hunter2"));
//! let aad = Aad { tenant: "acme", record_id: "0190c0de-0000-7000-8000-000000000000", purpose: "connection" };
//! let sealed = keyring.seal(&aad, &secrets)?;
//! let bytes = sealed.to_bytes();
//!
//! let opened = keyring.open(&aad, &connvault_crypto::Sealed::from_bytes(&bytes)?)?;
//! assert_eq!(opened.get("password").map(|s| s.expose_secret()), Some("hunter2"));
//!
//! // At the next start, a wrong master key is refused before anything is served.
//! assert!(Keyring::verify_check_value(&MasterKey::generate()?, &check).is_err());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Tests may unwrap: a panic is the failure report there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod keyring;
mod master;
mod sealed;
mod secret_map;

pub use keyring::{CHECK_VALUE_LEN, Keyring, TenantKey, WrappedKey};
pub use master::MasterKey;
pub use sealed::{Aad, MAX_CIPHERTEXT_LEN, Sealed};
pub use secrecy::{ExposeSecret, SecretString};
pub use secret_map::SecretMap;

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Opening a sealed value fails with exactly one variant, [`CryptoError::Open`],
/// whatever the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A master key did not decode to exactly 32 bytes.
    #[error("master key must be exactly 32 bytes, got {0}")]
    MasterKeyLength(usize),
    /// A master key was not valid base64.
    #[error("master key is not valid base64 (expected 32 bytes, base64-encoded)")]
    MasterKeyEncoding,
    /// The master key file is readable or writable by group or other.
    #[error(
        "master key file {} has mode {mode:o}: it must not be accessible by group or other (chmod 600 it)",
        path.display()
    )]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The master key file could not be read or written.
    #[error("master key file {}: {source}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The master key does not match the stored key check value or does not
    /// unwrap the stored data keys.
    #[error("wrong master key: it does not match the key that protects this data")]
    WrongMasterKey,
    /// The keyring has no data key yet: call [`Keyring::add_data_key`] first.
    #[error("the keyring has no data key")]
    NoDataKey,
    /// The persisted keyring is inconsistent (e.g. a duplicate version).
    #[error("invalid keyring: {0}")]
    InvalidKeyring(String),
    /// A persisted wrapped key could not be decoded.
    #[error("malformed wrapped data key")]
    MalformedWrappedKey,
    /// Sealing failed (input too large for AES-GCM or the secret map).
    #[error("cannot seal secrets")]
    Seal,
    /// A sealed value could not be opened. Deliberately carries no detail.
    #[error("cannot open sealed secrets")]
    Open,
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Rng,
}

/// Shorthand for results of this crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
