//! What the writer thread applies: one queued mutation, what it returns,
//! and the trees it transacts over (shared by the queue in `writer.rs` and
//! the transaction in `apply.rs`).

use sled::Tree;

use super::audit_entry::AuditBytes;

/// One mutation, its keys already built and checked by the caller. A
/// connection write may carry an audit entry, appended in the same
/// transaction if (and only if) the write succeeds, and appends one change
/// log entry per connection it changes.
pub(crate) enum Write {
    CreateConnection {
        audit: Option<AuditBytes>,
        tenant_id: String,
        tenant_key: Vec<u8>,
        key: Vec<u8>,
        name_key: Vec<u8>,
        id: String,
        stored: Vec<u8>,
    },
    UpdateConnection {
        audit: Option<AuditBytes>,
        tenant_id: String,
        key: Vec<u8>,
        id: String,
        display_name_key: String,
        new_name_key: Vec<u8>,
        /// The new entry, at `expected_revision + 1`.
        stored: Vec<u8>,
        expected_revision: u64,
    },
    /// All or nothing; `keys` pairs each connection key with its id.
    DeleteConnections {
        audit: Option<AuditBytes>,
        tenant_id: String,
        keys: Vec<(Vec<u8>, String)>,
        expected_revision: Option<u64>,
    },
    AppendAudit(AuditBytes),
    /// Removes the audit entries with these sequence numbers (and their
    /// tenant index keys); entries already gone are skipped.
    DeleteAudit(Vec<u64>),
}

impl Write {
    /// The audit entry this write appends, if any.
    pub(crate) fn audit(&self) -> Option<&AuditBytes> {
        match self {
            Write::CreateConnection { audit, .. }
            | Write::UpdateConnection { audit, .. }
            | Write::DeleteConnections { audit, .. } => audit.as_ref(),
            Write::AppendAudit(audit) => Some(audit),
            Write::DeleteAudit(_) => None,
        }
    }

    /// How many change log entries the write appends if it succeeds.
    pub(crate) fn changes(&self) -> usize {
        match self {
            Write::CreateConnection { .. } | Write::UpdateConnection { .. } => 1,
            Write::DeleteConnections { keys, .. } => keys.len(),
            Write::AppendAudit(_) | Write::DeleteAudit(_) => 0,
        }
    }
}

/// What a write returns.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Done {
    /// Connections deleted.
    pub(crate) count: usize,
    /// Sequence number of the audit entry appended.
    pub(crate) seq: Option<u64>,
    /// The connection's revision after the write.
    pub(crate) revision: u64,
    /// The last change log entry the write appended (0: none).
    pub(crate) change_seq: u64,
}

/// The trees the writer transacts over.
#[derive(Clone)]
pub(crate) struct Trees {
    pub(crate) tenants: Tree,
    pub(crate) connections: Tree,
    pub(crate) names: Tree,
    pub(crate) audit: Tree,
    pub(crate) cache: Tree,
    pub(crate) changes: Tree,
}
