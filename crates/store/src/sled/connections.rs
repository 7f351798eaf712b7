//! Connection writes (through the writer thread) and point reads.

use std::collections::BTreeSet;

use super::audit_entry::AuditBytes;
use super::write::{Done, Write};
use super::{SledStore, layout};
use crate::{AuditAppend, Committed, ConnectionRecord, MAX_ID_LEN, Result, StoreError};

fn audit_bytes(audit: Option<AuditAppend<'_>>) -> Result<Option<AuditBytes>> {
    audit
        .map(|audit| AuditBytes::new(audit.tenant_id, audit.value))
        .transpose()
}

fn check_connection(record: &ConnectionRecord) -> Result<()> {
    layout::tenant_prefix(&record.tenant_id)?;
    layout::check_len("connection id", record.id.as_bytes(), MAX_ID_LEN)?;
    layout::name_key(&record.tenant_id, &record.display_name_key)?;
    layout::check_value(&record.value)
}

impl From<Done> for Committed {
    fn from(done: Done) -> Self {
        Committed {
            revision: done.revision,
            change_seq: done.change_seq,
            audit_seq: done.seq,
            deleted: done.count,
        }
    }
}

impl SledStore {
    pub(crate) fn create_write(
        record: &ConnectionRecord,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Write> {
        check_connection(record)?;
        Ok(Write::CreateConnection {
            audit: audit_bytes(audit)?,
            tenant_id: record.tenant_id.clone(),
            tenant_key: record.tenant_id.as_bytes().to_vec(),
            key: layout::connection_key(&record.tenant_id, &record.id)?,
            name_key: layout::name_key(&record.tenant_id, &record.display_name_key)?,
            id: record.id.clone(),
            stored: layout::encode_connection(
                &record.display_name_key,
                1,
                &record.index,
                &record.value,
            )?,
        })
    }

    /// Creates a connection, blocking the calling thread until it is
    /// committed (and durable): for tools and benchmarks that drive the
    /// store from their own threads.
    pub fn create_connection_blocking(&self, record: &ConnectionRecord) -> Result<Committed> {
        let write = Self::create_write(record, None)?;
        self.write_blocking(write, self.inner.durable)
            .map(Committed::from)
    }

    pub(crate) fn get_connection_now(&self, tenant_id: &str, id: &str) -> Result<ConnectionRecord> {
        let key = layout::connection_key(tenant_id, id)?;
        let stored = self
            .inner
            .connections
            .get(key)?
            .ok_or(StoreError::NotFound)?;
        record_from_entry(tenant_id, id.to_owned(), &stored)
    }

    pub(crate) fn update_write(
        record: &ConnectionRecord,
        expected_revision: u64,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Write> {
        check_connection(record)?;
        let revision = expected_revision
            .checked_add(1)
            .ok_or_else(|| StoreError::InvalidArgument("revision overflow".into()))?;
        Ok(Write::UpdateConnection {
            audit: audit_bytes(audit)?,
            tenant_id: record.tenant_id.clone(),
            key: layout::connection_key(&record.tenant_id, &record.id)?,
            id: record.id.clone(),
            display_name_key: record.display_name_key.clone(),
            new_name_key: layout::name_key(&record.tenant_id, &record.display_name_key)?,
            stored: layout::encode_connection(
                &record.display_name_key,
                revision,
                &record.index,
                &record.value,
            )?,
            expected_revision,
        })
    }

    pub(crate) fn delete_write(
        tenant_id: &str,
        ids: &[&str],
        expected_revision: Option<u64>,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Write> {
        layout::tenant_prefix(tenant_id)?;
        let keys = ids
            .iter()
            .map(|id| Ok((layout::connection_key(tenant_id, id)?, (*id).to_owned())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Write::DeleteConnections {
            audit: audit_bytes(audit)?,
            tenant_id: tenant_id.to_owned(),
            keys,
            expected_revision,
        })
    }

    /// The write of a batch delete: ids deduplicated (`None` for no ids).
    pub(crate) fn batch_delete_write(tenant_id: &str, ids: &[String]) -> Result<Option<Write>> {
        let ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        if ids.is_empty() {
            layout::tenant_prefix(tenant_id)?;
            return Ok(None);
        }
        Self::delete_write(tenant_id, &ids, None, None).map(Some)
    }

    pub(crate) fn find_connection_by_name_now(
        &self,
        tenant_id: &str,
        display_name_key: &str,
    ) -> Result<Option<String>> {
        let key = layout::name_key(tenant_id, display_name_key)?;
        self.inner
            .names
            .get(key)?
            .map(|id| layout::utf8(&id, "connection id"))
            .transpose()
    }

    /// Queues a write for the writer thread and waits for it.
    pub(crate) async fn commit(&self, write: Write) -> Result<Committed> {
        self.write(write, self.inner.durable)
            .await
            .map(Committed::from)
    }
}

/// A record from its stored entry.
pub(crate) fn record_from_entry(
    tenant_id: &str,
    id: String,
    stored: &[u8],
) -> Result<ConnectionRecord> {
    Ok(layout::decode_connection(stored)?.into_record(tenant_id, id))
}
