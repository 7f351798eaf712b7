//! The meta keyspace (server-wide values) and the per-connection cache.

use sled::transaction::Transactional as _;

use super::apply::sweep_prefix;
use super::{SledStore, abort, layout, tx_error};
use crate::{Result, StoreError};

/// Longest meta key.
const MAX_META_KEY_LEN: usize = 255;

impl SledStore {
    pub(crate) fn get_meta_now(&self, key: &str) -> Result<Option<Vec<u8>>> {
        layout::check_len("meta key", key.as_bytes(), MAX_META_KEY_LEN)?;
        Ok(self.inner.meta.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Writes a meta value and waits until it is durable: for tools that
    /// drive the store from their own threads.
    pub fn put_meta_blocking(&self, key: &str, value: &[u8]) -> Result<()> {
        layout::check_len("meta key", key.as_bytes(), MAX_META_KEY_LEN)?;
        layout::check_value(value)?;
        let held = self.writing();
        self.inner.meta.insert(key.as_bytes(), value)?;
        drop(held);
        self.durable()
    }

    pub(crate) fn cas_meta_blocking(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<()> {
        layout::check_len("meta key", key.as_bytes(), MAX_META_KEY_LEN)?;
        if let Some(new) = new {
            layout::check_value(new)?;
        }
        let held = self.writing();
        self.inner
            .meta
            .compare_and_swap(key.as_bytes(), expected, new)?
            .map_err(|_| StoreError::Conflict)?;
        drop(held);
        self.durable()
    }

    pub(crate) fn put_cache_blocking(
        &self,
        tenant_id: &str,
        connection_id: &str,
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        let connection_key = layout::connection_key(tenant_id, connection_id)?;
        let mut cache_key = layout::cache_prefix(tenant_id, connection_id)?;
        cache_key.extend_from_slice(key.as_bytes());
        layout::check_value(value)?;
        let held = self.writing();
        (&self.inner.connections, &self.inner.cache)
            .transaction(|(connections, cache)| {
                if connections.get(&connection_key)?.is_none() {
                    return abort(StoreError::NotFound);
                }
                cache.insert(cache_key.as_slice(), value)?;
                Ok(())
            })
            .map_err(tx_error)?;
        drop(held);
        self.durable()
    }

    pub(crate) fn get_cache_now(
        &self,
        tenant_id: &str,
        connection_id: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        let mut cache_key = layout::cache_prefix(tenant_id, connection_id)?;
        cache_key.extend_from_slice(key.as_bytes());
        Ok(self.inner.cache.get(cache_key)?.map(|v| v.to_vec()))
    }

    pub(crate) fn clear_cache_blocking(
        &self,
        tenant_id: &str,
        connection_id: Option<&str>,
    ) -> Result<usize> {
        let prefix = match connection_id {
            Some(id) => layout::cache_prefix(tenant_id, id)?,
            None => layout::tenant_prefix(tenant_id)?,
        };
        let removed = self.sweep_cache(&prefix)?;
        self.durable()?;
        Ok(removed)
    }

    pub(crate) fn sweep_cache(&self, prefix: &[u8]) -> Result<usize> {
        let _held = self.writing();
        sweep_prefix(&self.inner.cache, prefix)
    }
}
