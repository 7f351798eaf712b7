//! Durable storage of connvault's tenants and connections, on sled 0.34.
//!
//! Records are opaque bytes: the server encodes them (protobuf) and hands the
//! store only the fields it indexes — tenant id, connection id (a UUID v7, so
//! ids sort in creation order) and the normalised display name, which is
//! unique within a tenant. Every mutation that touches several keys (a record
//! and its name index, a tenant and all its connections) is one sled
//! transaction, and every mutating call returns only once its data is durable
//! (see [`StoreOptions::durable`]): sled's own `flush()` does not `fsync`, so
//! the store adds an `fsync` and shares it between concurrent writers (group
//! commit).
//!
//! Connection writes and audit appends go through one writer thread that
//! applies whatever is queued in a single transaction (each write still
//! checked on its own), because sled 0.34 forces a log write per transaction;
//! a flusher thread then makes the batch durable while the next one is
//! applied. Their `*_async` variants wait without blocking a thread. The rest
//! of the API is synchronous and may block on disk I/O: from async code call
//! it through `tokio::task::spawn_blocking`.
//!
//! ```
//! use connvault_store::{ConnectionRecord, Store, StoreOptions, TenantRecord};
//!
//! # fn main() -> Result<(), connvault_store::StoreError> {
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("data"), StoreOptions::default())?;
//! store.create_tenant(&TenantRecord { tenant_id: "acme".into(), value: b"tenant".to_vec() })?;
//! let record = ConnectionRecord {
//!     tenant_id: "acme".into(),
//!     id: "0190c0de-0000-7000-8000-000000000001".into(),
//!     display_name_key: "warehouse".into(),
//!     value: b"encoded connection".to_vec(),
//! };
//! store.create_connection(&record)?;
//! let page = store.list_connections("acme", None, 50)?;
//! assert_eq!(page, vec![record]);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Tests may unwrap: a panic is the failure report there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod durability;
mod keys;
mod store;
mod writer;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod store_tests;

pub use keys::{MAX_ID_LEN, MAX_NAME_KEY_LEN, MAX_TENANT_ID_LEN, MAX_VALUE_LEN};
pub use store::Store;

use std::path::PathBuf;

/// A tenant: its id and its record, opaque to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// Tenant id (1 to [`MAX_TENANT_ID_LEN`] bytes).
    pub tenant_id: String,
    /// The encoded tenant.
    pub value: Vec<u8>,
}

/// A connection: the fields the store indexes plus the encoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// Owning tenant.
    pub tenant_id: String,
    /// Connection id, a UUID v7 in text form (ids sort in creation order).
    pub id: String,
    /// The display name as normalised by the server (e.g. lowercased); unique
    /// within the tenant.
    pub display_name_key: String,
    /// The encoded connection.
    pub value: Vec<u8>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log: increasing in append order, never reused.
    pub seq: u64,
    /// Tenant the entry is about.
    pub tenant_id: String,
    /// The encoded entry.
    pub value: Vec<u8>,
}

/// An audit entry appended in the same transaction as a connection write
/// (only if the write succeeds), so the change and its record commit together.
#[derive(Debug, Clone, Copy)]
pub struct AuditAppend<'a> {
    /// Tenant the entry is about (filed under it).
    pub tenant_id: &'a str,
    /// The encoded entry.
    pub value: &'a [u8],
}

/// How to open a [`Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Whether mutating calls wait until their data is on disk (flush + fsync,
    /// shared between concurrent writers). Default `true`; `false` is for
    /// benchmarks and tests that do not measure durability.
    pub durable: bool,
    /// Capacity of sled's page cache in bytes (`None`: sled's default, 1 GiB).
    /// What the cache holds is what the store keeps in memory beyond the
    /// data being written.
    pub cache_bytes: Option<u64>,
}

impl StoreOptions {
    /// Sets [`StoreOptions::durable`].
    pub fn with_durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Sets [`StoreOptions::cache_bytes`].
    pub fn with_cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = Some(bytes);
        self
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durable: true,
            cache_bytes: None,
        }
    }
}

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
    /// Compare-and-swap lost: the stored value changed since it was read.
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
    /// Another process has the data directory open.
    #[error(
        "data directory {} is locked: another connvault process is using it",
        path.display()
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
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
    /// Other error from sled.
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(e) => StoreError::Io(e),
            sled::Error::Corruption { at, .. } => {
                StoreError::Corrupt(format!("sled reported corruption at {at:?}"))
            }
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
