//! Applying one batch of queued writes in one sled transaction: each write
//! is checked and applied on its own (seeing the writes before it), with its
//! audit entry and change log entries, and fails alone.

use sled::Tree;
use sled::transaction::{
    TransactionError, Transactional as _, TransactionalTree, UnabortableTransactionError,
};

use super::audit_entry::{self, AuditBytes};
use super::change_entry;
use super::layout;
use super::write::{Done, Trees, Write};
use crate::{ChangeKind, Result, StoreError};

/// Removes the cache entries of the connections a batch deleted. A cache
/// entry needs its connection to be written, so none can appear after the
/// delete committed; the sweep runs before the batch is flushed.
pub(crate) fn sweep_caches(
    trees: &Trees,
    writes: &[Write],
    results: Vec<Result<Done>>,
) -> Vec<Result<Done>> {
    writes
        .iter()
        .zip(results)
        .map(|(write, result)| match (write, result) {
            (
                Write::DeleteConnections {
                    tenant_id, keys, ..
                },
                Ok(done),
            ) => {
                for (_, id) in keys {
                    layout::cache_prefix(tenant_id, id)
                        .and_then(|prefix| sweep_prefix(&trees.cache, &prefix))?;
                }
                Ok(done)
            }
            (_, result) => result,
        })
        .collect()
}

/// Removes every key under `prefix`; returns how many.
pub(crate) fn sweep_prefix(tree: &Tree, prefix: &[u8]) -> Result<usize> {
    let keys = tree
        .scan_prefix(prefix)
        .keys()
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Ok(0);
    }
    let mut batch = sled::Batch::default();
    for key in &keys {
        batch.remove(key);
    }
    tree.apply_batch(batch)?;
    Ok(keys.len())
}

/// Sequence numbers taken for one write before its transaction, so a
/// retried transaction reuses them; sled's ids are monotonic across restarts.
struct Seqs {
    audit: Option<u64>,
    changes: Vec<u64>,
}

/// Applies a batch in one transaction; the outer error fails every write.
pub(crate) fn apply(db: &sled::Db, trees: &Trees, writes: &[Write]) -> Result<Vec<Result<Done>>> {
    let seqs = writes
        .iter()
        .map(|write| {
            Ok(Seqs {
                audit: write
                    .audit()
                    .map(|_| db.generate_id())
                    .transpose()?
                    .map(|id| id + 1),
                changes: (0..write.changes())
                    .map(|_| db.generate_id().map(|id| id + 1))
                    .collect::<std::result::Result<_, _>>()?,
            })
        })
        .collect::<Result<Vec<Seqs>>>()?;
    (
        &trees.tenants,
        &trees.connections,
        &trees.names,
        &trees.audit,
        &trees.changes,
    )
        .transaction(|(tenants, connections, names, audit, changes)| {
            let tx = Tx {
                tenants,
                connections,
                names,
                audit,
                changes,
            };
            let mut results = Vec::with_capacity(writes.len());
            for (write, seqs) in writes.iter().zip(&seqs) {
                let result = match tx.apply(write, &seqs.changes) {
                    Ok(mut done) => {
                        if let (Some(audit), Some(seq)) = (write.audit(), seqs.audit) {
                            tx.append_audit(audit, seq)?;
                            done.seq = Some(seq);
                        }
                        Ok(done)
                    }
                    Err(Failed::Write(error)) => Err(error),
                    Err(Failed::Transaction(error)) => return Err(error.into()),
                };
                results.push(result);
            }
            Ok(results)
        })
        .map_err(|error| match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => error.into(),
        })
}

/// Why one write inside the batch's transaction did not happen.
enum Failed {
    /// The write's own failure (a taken name, a stale value): nothing of it
    /// is written, the rest of the batch goes on.
    Write(StoreError),
    /// sled's: the whole transaction retries or fails.
    Transaction(UnabortableTransactionError),
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Failed::Write(error)
    }
}

impl From<UnabortableTransactionError> for Failed {
    fn from(error: UnabortableTransactionError) -> Self {
        Failed::Transaction(error)
    }
}

struct Tx<'a> {
    tenants: &'a TransactionalTree,
    connections: &'a TransactionalTree,
    names: &'a TransactionalTree,
    audit: &'a TransactionalTree,
    changes: &'a TransactionalTree,
}

impl Tx<'_> {
    /// Applies one write, checking everything before writing anything;
    /// `changes` are the sequence numbers of its change log entries.
    fn apply(&self, write: &Write, changes: &[u64]) -> std::result::Result<Done, Failed> {
        match write {
            Write::CreateConnection {
                audit: _,
                tenant_id,
                tenant_key,
                key,
                name_key,
                id,
                stored,
            } => {
                let tenant = self
                    .tenants
                    .get(tenant_key)?
                    .ok_or(StoreError::TenantNotFound)?;
                let (count, tenant_value) = layout::decode_tenant(&tenant)?;
                if self.connections.get(key)?.is_some() || self.names.get(name_key)?.is_some() {
                    return Err(StoreError::AlreadyExists.into());
                }
                let tenant = layout::encode_tenant(count + 1, tenant_value);
                self.connections.insert(key.as_slice(), stored.as_slice())?;
                self.names.insert(name_key.as_slice(), id.as_bytes())?;
                self.tenants.insert(tenant_key.as_slice(), tenant)?;
                let change_seq = self.record(changes, 0, ChangeKind::Created, tenant_id, id, 1)?;
                Ok(Done {
                    revision: 1,
                    change_seq,
                    ..Done::default()
                })
            }
            Write::UpdateConnection {
                audit: _,
                tenant_id,
                key,
                id,
                display_name_key,
                new_name_key,
                stored,
                expected_revision,
            } => {
                let old = self.connections.get(key)?.ok_or(StoreError::NotFound)?;
                let old = layout::decode_connection(&old)?;
                if old.revision != *expected_revision {
                    return Err(StoreError::Conflict.into());
                }
                if old.name != display_name_key {
                    if let Some(owner) = self.names.get(new_name_key)? {
                        if owner.as_ref() != id.as_bytes() {
                            return Err(StoreError::AlreadyExists.into());
                        }
                    }
                    let old_name_key = layout::name_key(tenant_id, old.name)?;
                    self.names.remove(old_name_key)?;
                    self.names.insert(new_name_key.as_slice(), id.as_bytes())?;
                }
                self.connections.insert(key.as_slice(), stored.as_slice())?;
                let revision = expected_revision + 1;
                let change_seq =
                    self.record(changes, 0, ChangeKind::Updated, tenant_id, id, revision)?;
                Ok(Done {
                    revision,
                    change_seq,
                    ..Done::default()
                })
            }
            Write::DeleteConnections {
                audit: _,
                tenant_id,
                keys: connection_keys,
                expected_revision,
            } => self.delete(tenant_id, connection_keys, *expected_revision, changes),
            // The entry itself is the write's audit entry, appended by the caller.
            Write::AppendAudit(_) => Ok(Done::default()),
            Write::DeleteAudit(seqs) => self.delete_audit(seqs),
        }
    }

    /// Appends change `changes[at]`; returns its sequence number.
    fn record(
        &self,
        changes: &[u64],
        at: usize,
        kind: ChangeKind,
        tenant_id: &str,
        id: &str,
        revision: u64,
    ) -> std::result::Result<u64, Failed> {
        let seq = *changes
            .get(at)
            .ok_or_else(|| StoreError::Backend("no change sequence reserved".into()))?;
        let value = change_entry::encode(kind, tenant_id, id, revision)?;
        self.changes.insert(&seq.to_be_bytes(), value)?;
        Ok(seq)
    }

    fn append_audit(
        &self,
        audit: &AuditBytes,
        seq: u64,
    ) -> std::result::Result<(), UnabortableTransactionError> {
        self.audit
            .insert(audit_entry::entry_key(seq), audit.entry())?;
        self.audit.insert(audit.index_key(seq), &[])?;
        Ok(())
    }

    fn delete_audit(&self, seqs: &[u64]) -> std::result::Result<Done, Failed> {
        // Read everything first: a write that fails leaves nothing behind.
        let mut found = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            let key = audit_entry::entry_key(seq);
            let Some(entry) = self.audit.get(&key)? else {
                continue;
            };
            let tenant_prefix = layout::tenant_prefix(&audit_entry::tenant_of(&entry)?)?;
            found.push((key, audit_entry::tenant_index_key(&tenant_prefix, seq)));
        }
        for (key, index) in &found {
            self.audit.remove(key.as_slice())?;
            self.audit.remove(index.as_slice())?;
        }
        Ok(Done {
            count: found.len(),
            ..Done::default()
        })
    }

    fn delete(
        &self,
        tenant_id: &str,
        connection_keys: &[(Vec<u8>, String)],
        expected_revision: Option<u64>,
        changes: &[u64],
    ) -> std::result::Result<Done, Failed> {
        // Check everything first: a write that fails leaves nothing behind.
        let mut found = Vec::with_capacity(connection_keys.len());
        for (key, id) in connection_keys {
            let old = self.connections.get(key)?.ok_or(StoreError::NotFound)?;
            let old = layout::decode_connection(&old)?;
            if expected_revision.is_some_and(|expected| expected != old.revision) {
                return Err(StoreError::Conflict.into());
            }
            found.push((key, id, layout::name_key(tenant_id, old.name)?));
        }
        let tenant_key = tenant_id.as_bytes();
        let tenant = self.tenants.get(tenant_key)?.ok_or_else(|| {
            StoreError::Corrupt(format!("connections of missing tenant {tenant_id:?}"))
        })?;
        let (count, tenant_value) = layout::decode_tenant(&tenant)?;
        let mut change_seq = 0;
        for (at, (key, id, name_key)) in found.iter().enumerate() {
            self.connections.remove(key.as_slice())?;
            if self
                .names
                .get(name_key)?
                .is_some_and(|owner| owner.as_ref() == id.as_bytes())
            {
                self.names.remove(name_key.as_slice())?;
            }
            change_seq = self.record(changes, at, ChangeKind::Deleted, tenant_id, id, 0)?;
        }
        let remaining = count.saturating_sub(found.len() as u64);
        self.tenants
            .insert(tenant_key, layout::encode_tenant(remaining, tenant_value))?;
        Ok(Done {
            count: found.len(),
            change_seq,
            ..Done::default()
        })
    }
}
