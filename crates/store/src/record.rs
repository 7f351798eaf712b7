//! What the store keeps: tenants, connections (the fields it indexes plus an
//! opaque encoded value), audit entries and the change log.

use std::collections::BTreeMap;

/// A tenant: its id and its record, opaque to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// Tenant id (1 to [`crate::MAX_TENANT_ID_LEN`] bytes).
    pub tenant_id: String,
    /// The encoded tenant.
    pub value: Vec<u8>,
}

/// The fields of a connection a list query filters and orders by. The store
/// keeps them beside the opaque value so a backend can answer a query
/// without decoding records (a SQL backend keeps them as columns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionIndex {
    /// The data source id (`postgresql`).
    pub data_source: String,
    /// The owning product, lowercase (empty: none).
    pub product: String,
    /// The connection's labels.
    pub labels: BTreeMap<String, String>,
    /// Last update, in nanoseconds since the Unix epoch.
    pub update_time_nanos: i64,
}

/// A connection: the fields the store indexes plus the encoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// Owning tenant.
    pub tenant_id: String,
    /// Connection id, a UUID v7 in text form (ids sort in creation order).
    pub id: String,
    /// The display name as normalised by the server (lowercased); unique
    /// within the tenant, and the key of [`crate::ConnectionOrder::DisplayName`].
    pub display_name_key: String,
    /// What list queries filter and order by.
    pub index: ConnectionIndex,
    /// The store's revision of the record: 1 when created, one more on every
    /// update. Ignored on writes (the store assigns it); set on reads.
    pub revision: u64,
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

/// An audit entry appended in the same atomic write as a connection write
/// (only if the write succeeds), so the change and its record commit together.
#[derive(Debug, Clone, Copy)]
pub struct AuditAppend<'a> {
    /// Tenant the entry is about (filed under it).
    pub tenant_id: &'a str,
    /// The encoded entry.
    pub value: &'a [u8],
}

/// What a committed connection write reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// The record's revision after the write (0 for a delete).
    pub revision: u64,
    /// The write's position in the change log (the last one, for a write that
    /// changed several connections; 0 if it changed none).
    pub change_seq: u64,
    /// Sequence number of the audit entry appended with it, if any.
    pub audit_seq: Option<u64>,
    /// Connections the write removed (deletes).
    pub deleted: usize,
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// It was created.
    Created,
    /// It was updated.
    Updated,
    /// It was deleted (alone, in a batch or with its tenant).
    Deleted,
}

/// One entry of the change log: every connection write appends one, in the
/// same atomic write, with a sequence number that only grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Position in the log: increasing in commit order, never reused.
    pub seq: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The connection's tenant.
    pub tenant_id: String,
    /// The connection's id.
    pub id: String,
    /// The connection's revision after the change (0 for a delete).
    pub revision: u64,
}
