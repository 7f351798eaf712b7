//! Backups of a running server and restoring them into a new data
//! directory (docs/operations.md, "Backup and restore").
//!
//! A backup is a consistent snapshot of every tree of the store
//! ([`connvault_store::sled::SledStore::snapshot`]: the store's writes hold a
//! gate shared, the snapshot holds it exclusively while it reads) plus the
//! key file, in a versioned, checksummed file ([`format`]). Secrets stay
//! sealed: the file holds the data keys only wrapped under the master key,
//! so it is useless without it. [`take`] spools a snapshot on the server;
//! [`restore`] builds a fresh data directory from a file.

pub mod envelope;
pub mod format;
pub mod restore;
pub mod take;

pub use format::{BackupReader, BackupWriter, FORMAT_VERSION, MAGIC};
pub use restore::{Restored, restore};
pub use take::{Spooled, take};

/// Why a backup could not be taken, read or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The file does not start with the backup magic.
    #[error("not a connvault backup file (wrong magic bytes)")]
    NotABackup,
    /// A format version this build does not read.
    #[error(
        "backup format version {0} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u32),
    /// A checksum or the layout is wrong.
    #[error("the backup file is damaged: {0}")]
    Damaged(String),
    /// The file ends too early.
    #[error("the backup file is truncated")]
    Truncated,
    /// A part is over its size bound.
    #[error("{0} is too large for a backup file")]
    TooLarge(String),
    /// The data directory to restore into holds something already.
    #[error("{} is not empty: restore builds a new data directory", .0.display())]
    NotEmpty(std::path::PathBuf),
    /// The key file of the server's data directory cannot be read.
    #[error("the key file of {} is {what}: a backup needs the keyring", dir.display())]
    KeyFile {
        /// The data directory.
        dir: std::path::PathBuf,
        /// `missing` or `damaged`.
        what: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] connvault_store::StoreError),
    /// File system error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
