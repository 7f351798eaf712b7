//! Durable storage of connvault's tenants, connections, audit log and change
//! log, behind async traits ([`Store`]) with an embedded sled backend
//! ([`sled::SledStore`]).
//!
//! Records are opaque bytes: the server encodes them and hands the store
//! only what it indexes — tenant id, connection id (a UUID v7, so ids sort
//! in creation order), the normalised display name (unique within a
//! tenant), and the fields a list filters and orders by
//! ([`ConnectionIndex`]). Connection writes compare and swap on the store's
//! own revision, may carry an audit entry that commits with them, and each
//! appends to a change log with a sequence number that only grows.
//!
//! A new backend implements the traits of [`traits`] and runs the
//! conformance suite ([`conformance::run_all`], feature `conformance`)
//! before anything else.
//!
//! ```
//! use connvault_store::sled::{SledOptions, SledStore};
//! use connvault_store::{
//!     ConnectionIndex, ConnectionQuery, ConnectionRecord, ConnectionStore, TenantRecord,
//!     TenantStore,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), connvault_store::StoreError> {
//! # let dir = tempfile::tempdir()?;
//! let store = SledStore::open(dir.path().join("data"), SledOptions::default())?;
//! store.create_tenant(&TenantRecord { tenant_id: "acme".into(), value: b"tenant".to_vec() }).await?;
//! let record = ConnectionRecord {
//!     tenant_id: "acme".into(),
//!     id: "0190c0de-0000-7000-8000-000000000001".into(),
//!     display_name_key: "warehouse".into(),
//!     index: ConnectionIndex { data_source: "postgresql".into(), ..Default::default() },
//!     revision: 0,
//!     value: b"encoded connection".to_vec(),
//! };
//! let committed = store.create_connection(&record, None).await?;
//! assert_eq!(committed.revision, 1);
//! let page = store
//!     .list_connections(&ConnectionQuery {
//!         tenant_id: "acme".into(),
//!         filter: Default::default(),
//!         order: Default::default(),
//!         after: None,
//!         limit: 50,
//!     })
//!     .await?;
//! assert_eq!(page.records, vec![ConnectionRecord { revision: 1, ..record }]);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Tests may unwrap: a panic is the failure report there.
#![cfg_attr(
    any(test, feature = "conformance"),
    allow(clippy::unwrap_used, clippy::expect_used)
)]

mod error;
mod query;
mod record;
pub mod sled;
pub mod traits;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use error::{Result, StoreError};
pub use query::{ConnectionFilter, ConnectionOrder, ConnectionPage, ConnectionQuery};
pub use record::{
    AuditAppend, AuditRecord, Change, ChangeKind, Committed, ConnectionIndex, ConnectionRecord,
    TenantRecord,
};
pub use traits::{
    AuditStore, CacheStore, ChangeLog, ConnectionStore, MetaStore, Store, TenantStore,
};

/// Longest tenant id.
pub const MAX_TENANT_ID_LEN: usize = 255;
/// Longest connection id.
pub const MAX_ID_LEN: usize = 255;
/// Longest display name key.
pub const MAX_NAME_KEY_LEN: usize = 1024;
/// Largest stored value.
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// Longest list cursor a backend accepts back.
pub const MAX_CURSOR_LEN: usize = 4096;
