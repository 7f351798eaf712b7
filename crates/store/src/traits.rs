//! The storage contract, as async traits so a networked backend can
//! implement it: every call may wait on I/O, and none blocks its caller's
//! thread (a backend whose reads are cheap may answer inline).
//!
//! Every mutating call returns once its data is durable (as the backend
//! defines it: sled's flush plus `fsync`, PostgreSQL's `COMMIT`).

use async_trait::async_trait;

use crate::{
    AuditAppend, AuditRecord, Change, Committed, ConnectionPage, ConnectionQuery, ConnectionRecord,
    Result, TenantRecord,
};

/// Tenants.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a tenant; [`crate::StoreError::AlreadyExists`] if its id is taken.
    async fn create_tenant(&self, record: &TenantRecord) -> Result<()>;

    /// Reads a tenant; [`crate::StoreError::TenantNotFound`] if absent.
    async fn get_tenant(&self, tenant_id: &str) -> Result<TenantRecord>;

    /// Replaces a tenant's value if it still equals `expected_old_value`
    /// ([`crate::StoreError::Conflict`] otherwise).
    async fn update_tenant(&self, record: &TenantRecord, expected_old_value: &[u8]) -> Result<()>;

    /// Tenants in id order, starting after `after`, at most `limit`.
    async fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Vec<TenantRecord>>;

    /// Number of connections of a tenant.
    async fn tenant_connection_count(&self, tenant_id: &str) -> Result<u64>;

    /// Deletes a tenant. Without `force` it must have no connections
    /// ([`crate::StoreError::TenantNotEmpty`]); with `force` the tenant, all
    /// its connections and their cache entries go in one atomic write, each
    /// deleted connection recorded in the change log. Returns the number of
    /// connections deleted.
    async fn delete_tenant(&self, tenant_id: &str, force: bool) -> Result<u64>;
}

/// Connections, with a unique display name per tenant and revisions for
/// compare-and-swap. A write may carry an audit entry, appended in the same
/// atomic write if and only if the write succeeds.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Creates a connection at revision 1. [`crate::StoreError::TenantNotFound`]
    /// if the tenant does not exist; [`crate::StoreError::AlreadyExists`] if
    /// the id or the display name key is taken in this tenant.
    async fn create_connection(
        &self,
        record: &ConnectionRecord,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Committed>;

    /// Reads a connection; [`crate::StoreError::NotFound`] if absent.
    async fn get_connection(&self, tenant_id: &str, id: &str) -> Result<ConnectionRecord>;

    /// The id of the connection holding a display name key in a tenant.
    async fn find_connection_by_name(
        &self,
        tenant_id: &str,
        display_name_key: &str,
    ) -> Result<Option<String>>;

    /// Replaces a connection if its revision is still `expected_revision`
    /// ([`crate::StoreError::Conflict`] otherwise), moving its name if the
    /// display name key changed ([`crate::StoreError::AlreadyExists`] if the
    /// new one is taken). The record's own `revision` is ignored.
    async fn update_connection(
        &self,
        record: &ConnectionRecord,
        expected_revision: u64,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Committed>;

    /// Deletes a connection; with `expected_revision`, only if it is still
    /// at that revision ([`crate::StoreError::Conflict`]).
    async fn delete_connection(
        &self,
        tenant_id: &str,
        id: &str,
        expected_revision: Option<u64>,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Committed>;

    /// Deletes several connections of one tenant, all or nothing: if any is
    /// missing ([`crate::StoreError::NotFound`]) none is deleted. Duplicate
    /// ids count once; [`Committed::deleted`] says how many went.
    async fn batch_delete(&self, tenant_id: &str, ids: &[String]) -> Result<Committed>;

    /// One page of a tenant's connections, filtered and ordered as the query
    /// says. The cost is bounded by the page and the backend's scan budget,
    /// not by the tenant's size, for the id order.
    async fn list_connections(&self, query: &ConnectionQuery) -> Result<ConnectionPage>;
}

/// The change log: one entry per connection write, in commit order.
#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// The sequence number of the newest change (0 before the first).
    async fn last_change_seq(&self) -> Result<u64>;

    /// Changes with `seq > after`, oldest first, at most `limit`, of one
    /// tenant or (with `None`) of all.
    async fn changes(
        &self,
        tenant_id: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry; returns its sequence number (from 1, increasing in
    /// append order, not necessarily contiguous). With `durable` false the
    /// entry is durable once any later durable write is.
    async fn append_audit(&self, tenant_id: &str, value: &[u8], durable: bool) -> Result<u64>;

    /// Entries with `seq > after_seq` in order, at most `limit`, of one
    /// tenant or (with `None`) of all.
    async fn list_audit(
        &self,
        tenant_id: Option<&str>,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>>;

    /// Deletes the entries with these sequence numbers (retention); entries
    /// already gone are skipped. Returns how many were deleted.
    async fn delete_audit(&self, seqs: Vec<u64>) -> Result<usize>;
}

/// A small keyspace of server-wide values (the keyring's wrapped keys).
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// Reads a value.
    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Writes a value.
    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()>;

    /// Compare-and-swap: `expected == None` means "absent", `new == None`
    /// deletes. [`crate::StoreError::Conflict`] if the current value differs.
    async fn cas_meta(&self, key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<()>;
}

/// Per-connection cached data (discovered metadata), dropped with the
/// connection or its tenant.
#[async_trait]
pub trait CacheStore: Send + Sync {
    /// Stores an entry; the connection must exist ([`crate::StoreError::NotFound`]).
    async fn put_cache(
        &self,
        tenant_id: &str,
        connection_id: &str,
        key: &str,
        value: &[u8],
    ) -> Result<()>;

    /// Reads an entry.
    async fn get_cache(
        &self,
        tenant_id: &str,
        connection_id: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>>;

    /// Removes the entries of one connection, or of the whole tenant with
    /// `None`. Returns how many were removed.
    async fn clear_cache(&self, tenant_id: &str, connection_id: Option<&str>) -> Result<usize>;
}

/// Everything the server needs of a backend.
pub trait Store:
    TenantStore + ConnectionStore + ChangeLog + AuditStore + MetaStore + CacheStore
{
}

impl<T> Store for T where
    T: TenantStore + ConnectionStore + ChangeLog + AuditStore + MetaStore + CacheStore
{
}
