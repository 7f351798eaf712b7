//! Tenants: a record and a connection counter under the tenant id.

use std::ops::Bound;

use sled::transaction::Transactional as _;

use super::{OrAbort as _, SledStore, abort, change_entry, keys_with_prefix, layout, tx_error};
use crate::{ChangeKind, Result, StoreError, TenantRecord};

/// How often a forced tenant delete rescans after racing a concurrent writer.
const DELETE_TENANT_ATTEMPTS: usize = 16;

impl SledStore {
    /// Creates a tenant, blocking the calling thread until it is durable: for
    /// tools and benchmarks that drive the store from their own threads.
    pub fn create_tenant_blocking(&self, record: &TenantRecord) -> Result<()> {
        layout::tenant_prefix(&record.tenant_id)?;
        layout::check_value(&record.value)?;
        let stored = layout::encode_tenant(0, &record.value);
        let held = self.writing();
        self.inner
            .tenants
            .compare_and_swap(record.tenant_id.as_bytes(), None::<&[u8]>, Some(stored))?
            .map_err(|_| StoreError::AlreadyExists)?;
        drop(held);
        self.durable()
    }

    /// A tenant's stored entry (its counter and value).
    fn tenant_entry(&self, tenant_id: &str) -> Result<sled::IVec> {
        layout::tenant_prefix(tenant_id)?;
        self.inner
            .tenants
            .get(tenant_id.as_bytes())?
            .ok_or(StoreError::TenantNotFound)
    }

    pub(crate) fn get_tenant_now(&self, tenant_id: &str) -> Result<TenantRecord> {
        let stored = self.tenant_entry(tenant_id)?;
        let (_, value) = layout::decode_tenant(&stored)?;
        Ok(TenantRecord {
            tenant_id: tenant_id.to_owned(),
            value: value.to_vec(),
        })
    }

    pub(crate) fn update_tenant_blocking(
        &self,
        record: &TenantRecord,
        expected_old_value: &[u8],
    ) -> Result<()> {
        layout::tenant_prefix(&record.tenant_id)?;
        layout::check_value(&record.value)?;
        let key = record.tenant_id.as_bytes();
        let held = self.writing();
        self.inner
            .tenants
            .transaction(|tenants| {
                let Some(stored) = tenants.get(key)? else {
                    return abort(StoreError::TenantNotFound);
                };
                let (count, old) = layout::decode_tenant(&stored).or_abort()?;
                if old != expected_old_value {
                    return abort(StoreError::Conflict);
                }
                tenants.insert(key, layout::encode_tenant(count, &record.value))?;
                Ok(())
            })
            .map_err(tx_error)?;
        drop(held);
        self.durable()
    }

    pub(crate) fn list_tenants_now(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TenantRecord>> {
        let start = match after {
            Some(after) => Bound::Excluded(after.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.inner
            .tenants
            .range((start, Bound::<Vec<u8>>::Unbounded))
            .take(limit)
            .map(|entry| {
                let (key, stored) = entry?;
                let (_, value) = layout::decode_tenant(&stored)?;
                Ok(TenantRecord {
                    tenant_id: layout::utf8(&key, "tenant id")?,
                    value: value.to_vec(),
                })
            })
            .collect()
    }

    pub(crate) fn tenant_connection_count_now(&self, tenant_id: &str) -> Result<u64> {
        Ok(layout::decode_tenant(&self.tenant_entry(tenant_id)?)?.0)
    }

    pub(crate) fn delete_tenant_blocking(&self, tenant_id: &str, force: bool) -> Result<u64> {
        let prefix = layout::tenant_prefix(tenant_id)?;
        let tenant_key = tenant_id.as_bytes();
        let inner = &self.inner;
        if !force {
            let held = self.writing();
            inner
                .tenants
                .transaction(|tenants| {
                    let Some(stored) = tenants.get(tenant_key)? else {
                        return abort(StoreError::TenantNotFound);
                    };
                    let (count, _) = layout::decode_tenant(&stored).or_abort()?;
                    if count > 0 {
                        return abort(StoreError::TenantNotEmpty { connections: count });
                    }
                    tenants.remove(tenant_key)?;
                    Ok(())
                })
                .map_err(tx_error)?;
            drop(held);
            self.durable()?;
            return Ok(0);
        }
        let mut attempt = 0;
        let deleted = loop {
            attempt += 1;
            // Keys, sequence numbers and the transaction under one hold, so a
            // snapshot never sees a sequence number taken but not used yet.
            let held = self.writing();
            // sled transactions cannot scan, so collect the keys first; the
            // transaction re-reads the tenant's connection counter and each
            // record, and a mismatch (a concurrent create, delete or rename)
            // aborts with Conflict and we rescan.
            let connection_keys = keys_with_prefix(&inner.connections, &prefix)?;
            let name_keys = keys_with_prefix(&inner.names, &prefix)?;
            let cache_keys = keys_with_prefix(&inner.cache, &prefix)?;
            // Change sequence numbers are taken outside the transaction so a
            // retry reuses them.
            let seqs = connection_keys
                .iter()
                .map(|_| inner.db.generate_id().map(|id| id + 1))
                .collect::<std::result::Result<Vec<u64>, _>>()?;
            let result = (
                &inner.tenants,
                &inner.connections,
                &inner.names,
                &inner.cache,
                &inner.changes,
            )
                .transaction(|(tenants, connections, names, cache, changes)| {
                    let Some(stored) = tenants.get(tenant_key)? else {
                        return abort(StoreError::TenantNotFound);
                    };
                    let (count, _) = layout::decode_tenant(&stored).or_abort()?;
                    if count != connection_keys.len() as u64 {
                        return abort(StoreError::Conflict);
                    }
                    for (key, seq) in connection_keys.iter().zip(&seqs) {
                        let Some(record) = connections.remove(key)? else {
                            return abort(StoreError::Conflict);
                        };
                        let entry = layout::decode_connection(&record).or_abort()?;
                        names.remove(layout::name_key(tenant_id, entry.name).or_abort()?)?;
                        let id = layout::utf8(&key[prefix.len()..], "connection id").or_abort()?;
                        let change = change_entry::encode(ChangeKind::Deleted, tenant_id, &id, 0)
                            .or_abort()?;
                        changes.insert(&seq.to_be_bytes(), change)?;
                    }
                    for key in &name_keys {
                        names.remove(key)?;
                    }
                    for key in &cache_keys {
                        cache.remove(key)?;
                    }
                    tenants.remove(tenant_key)?;
                    Ok(count)
                })
                .map_err(tx_error);
            drop(held);
            match result {
                Err(StoreError::Conflict) if attempt < DELETE_TENANT_ATTEMPTS => continue,
                other => break other?,
            }
        };
        // A cache entry written between the scan and the commit is an orphan
        // nothing can reach; sweep it (cache writes need the connection, so
        // no new one can appear now).
        self.sweep_cache(&prefix)?;
        self.durable()?;
        Ok(deleted)
    }
}
