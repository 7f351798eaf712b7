//! The audit log and the change log: appends go through the writer thread,
//! listings are range scans.

use std::ops::Bound;

use super::audit_entry::{self, AUDIT_BY_TENANT, AuditBytes};
use super::write::{Done, Write};
use super::{SledStore, change_entry, layout};
use crate::{AuditRecord, Change, Result, StoreError};

fn sequence(done: Done) -> Result<u64> {
    done.seq
        .ok_or_else(|| StoreError::Corrupt("an audit write returned no sequence".into()))
}

impl SledStore {
    /// Appends an audit entry without blocking a thread: durably with
    /// `durable`, otherwise durable once any later durable write is (sled
    /// keeps one ordered log for all trees).
    pub(crate) async fn append_audit_now(
        &self,
        tenant_id: &str,
        value: &[u8],
        durable: bool,
    ) -> Result<u64> {
        let write = Write::AppendAudit(AuditBytes::new(tenant_id, value)?);
        sequence(self.write(write, durable && self.inner.durable).await?)
    }

    /// Deletes the audit entries with these sequence numbers. Not flushed on
    /// its own: the next durable write carries it.
    pub(crate) async fn delete_audit_now(&self, seqs: Vec<u64>) -> Result<usize> {
        if seqs.is_empty() {
            return Ok(0);
        }
        Ok(self.write(Write::DeleteAudit(seqs), false).await?.count)
    }

    pub(crate) fn list_audit_now(
        &self,
        tenant_id: Option<&str>,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        let audit = &self.inner.audit;
        let start = Bound::Excluded(audit_entry::entry_key(after_seq));
        let Some(tenant_id) = tenant_id else {
            return audit
                .range((start, Bound::Excluded(vec![AUDIT_BY_TENANT])))
                .take(limit)
                .map(|entry| {
                    let (key, value) = entry?;
                    audit_entry::decode(&key, &value)
                })
                .collect();
        };
        let tenant_prefix = layout::tenant_prefix(tenant_id)?;
        let start = audit_entry::tenant_index_key(&tenant_prefix, after_seq);
        let end = audit_entry::tenant_index_key(&tenant_prefix, u64::MAX);
        let index_prefix_len = start.len() - 8;
        audit
            .range((Bound::Excluded(start), Bound::Included(end)))
            .keys()
            .take(limit)
            .map(|key| {
                let key = key?;
                let seq_bytes = key
                    .get(index_prefix_len..)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .ok_or_else(|| StoreError::Corrupt("audit index key".into()))?;
                let entry_key = audit_entry::entry_key(u64::from_be_bytes(seq_bytes));
                let value = audit
                    .get(&entry_key)?
                    .ok_or_else(|| StoreError::Corrupt("audit index points nowhere".into()))?;
                audit_entry::decode(&entry_key, &value)
            })
            .collect()
    }

    pub(crate) fn last_change_seq_now(&self) -> Result<u64> {
        super::progress::last_change_seq(&self.inner.changes)
    }

    pub(crate) fn changes_now(
        &self,
        tenant_id: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        let start = Bound::Excluded(after.to_be_bytes().to_vec());
        for entry in self.inner.changes.range((start, Bound::Unbounded)) {
            if changes.len() >= limit {
                break;
            }
            let (key, value) = entry?;
            if tenant_id
                .is_some_and(|tenant| change_entry::tenant_of(&value) != Some(tenant.as_bytes()))
            {
                continue;
            }
            changes.push(change_entry::decode(&key, &value)?);
        }
        Ok(changes)
    }
}
