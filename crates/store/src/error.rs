//! The one error type every store backend reports.

use std::path::PathBuf;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist.
    #[error("not found")]
    NotFound,
    /// A record with this id, or a connection with this display name in the
    /// same tenant, already exists.
    #[error("already exists")]
    AlreadyExists,
    /// Compare-and-swap lost: the stored record changed since it was read.
    #[error("the record was changed concurrently; read it again and retry")]
    Conflict,
    /// The tenant does not exist.
    #[error("tenant not found")]
    TenantNotFound,
    /// The tenant still has connections and the delete was not forced.
    #[error("tenant still has {connections} connection(s)")]
    TenantNotEmpty {
        /// How many.
        connections: u64,
    },
    /// A query the backend will not run at this size (e.g. an in-memory sort
    /// of more connections than it allows).
    #[error("the query is too large: {0}")]
    QueryTooLarge(String),
    /// Another process has the data directory open.
    #[error(
        "data directory {} is locked: another connvault process is using it",
        path.display()
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The store holds less than it acknowledged as durable: its log was
    /// damaged and cut short at recovery, or its progress record is missing
    /// or damaged (see [`crate::sled::LostWrites`]).
    #[error("{0}")]
    Lost(Box<crate::sled::LostWrites>),
    /// Stored data does not decode.
    #[error("corrupt data in store: {0}")]
    Corrupt(String),
    /// An argument is out of bounds (empty or oversized id, key or value).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A flush to disk failed; the store refuses durable writes until restart.
    #[error("durability failure: {0}")]
    Durability(String),
    /// File system error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Other error from the backend.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
