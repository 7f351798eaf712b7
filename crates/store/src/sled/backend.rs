//! The storage traits on sled: reads run inline (sled answers from its page
//! cache without blocking, and a hop to the blocking pool would cost more
//! than the read), connection writes and audit appends wait on the writer
//! thread without blocking, and the other writes (which block on a flush)
//! run on the blocking pool.

use async_trait::async_trait;

use super::SledStore;
use crate::traits::{AuditStore, CacheStore, ChangeLog, ConnectionStore, MetaStore, TenantStore};
use crate::{
    AuditAppend, AuditRecord, Change, Committed, ConnectionPage, ConnectionQuery, ConnectionRecord,
    Result, TenantRecord,
};

#[async_trait]
impl TenantStore for SledStore {
    async fn create_tenant(&self, record: &TenantRecord) -> Result<()> {
        let record = record.clone();
        self.blocking(move |store| store.create_tenant_blocking(&record))
            .await
    }

    async fn get_tenant(&self, tenant_id: &str) -> Result<TenantRecord> {
        self.get_tenant_now(tenant_id)
    }

    async fn update_tenant(&self, record: &TenantRecord, expected_old_value: &[u8]) -> Result<()> {
        let (record, expected) = (record.clone(), expected_old_value.to_vec());
        self.blocking(move |store| store.update_tenant_blocking(&record, &expected))
            .await
    }

    async fn list_tenants(&self, after: Option<&str>, limit: usize) -> Result<Vec<TenantRecord>> {
        self.list_tenants_now(after, limit)
    }

    async fn tenant_connection_count(&self, tenant_id: &str) -> Result<u64> {
        self.tenant_connection_count_now(tenant_id)
    }

    async fn delete_tenant(&self, tenant_id: &str, force: bool) -> Result<u64> {
        let tenant_id = tenant_id.to_owned();
        self.blocking(move |store| store.delete_tenant_blocking(&tenant_id, force))
            .await
    }
}

#[async_trait]
impl ConnectionStore for SledStore {
    async fn create_connection(
        &self,
        record: &ConnectionRecord,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Committed> {
        self.commit(Self::create_write(record, audit)?).await
    }

    async fn get_connection(&self, tenant_id: &str, id: &str) -> Result<ConnectionRecord> {
        self.get_connection_now(tenant_id, id)
    }

    async fn find_connection_by_name(
        &self,
        tenant_id: &str,
        display_name_key: &str,
    ) -> Result<Option<String>> {
        self.find_connection_by_name_now(tenant_id, display_name_key)
    }

    async fn update_connection(
        &self,
        record: &ConnectionRecord,
        expected_revision: u64,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Committed> {
        self.commit(Self::update_write(record, expected_revision, audit)?)
            .await
    }

    async fn delete_connection(
        &self,
        tenant_id: &str,
        id: &str,
        expected_revision: Option<u64>,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Committed> {
        self.commit(Self::delete_write(
            tenant_id,
            &[id],
            expected_revision,
            audit,
        )?)
        .await
    }

    async fn batch_delete(&self, tenant_id: &str, ids: &[String]) -> Result<Committed> {
        match Self::batch_delete_write(tenant_id, ids)? {
            Some(write) => self.commit(write).await,
            None => Ok(Committed::default()),
        }
    }

    async fn list_connections(&self, query: &ConnectionQuery) -> Result<ConnectionPage> {
        self.list_connections_now(query)
    }
}

#[async_trait]
impl ChangeLog for SledStore {
    async fn last_change_seq(&self) -> Result<u64> {
        self.last_change_seq_now()
    }

    async fn changes(
        &self,
        tenant_id: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>> {
        self.changes_now(tenant_id, after, limit)
    }
}

#[async_trait]
impl AuditStore for SledStore {
    async fn append_audit(&self, tenant_id: &str, value: &[u8], durable: bool) -> Result<u64> {
        self.append_audit_now(tenant_id, value, durable).await
    }

    async fn list_audit(
        &self,
        tenant_id: Option<&str>,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        self.list_audit_now(tenant_id, after_seq, limit)
    }

    async fn delete_audit(&self, seqs: Vec<u64>) -> Result<usize> {
        self.delete_audit_now(seqs).await
    }
}

#[async_trait]
impl MetaStore for SledStore {
    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.get_meta_now(key)
    }

    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.blocking(move |store| store.put_meta_blocking(&key, &value))
            .await
    }

    async fn cas_meta(&self, key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<()> {
        let key = key.to_owned();
        let expected = expected.map(<[u8]>::to_vec);
        let new = new.map(<[u8]>::to_vec);
        self.blocking(move |store| {
            store.cas_meta_blocking(&key, expected.as_deref(), new.as_deref())
        })
        .await
    }
}

#[async_trait]
impl CacheStore for SledStore {
    async fn put_cache(
        &self,
        tenant_id: &str,
        connection_id: &str,
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        let args = (
            tenant_id.to_owned(),
            connection_id.to_owned(),
            key.to_owned(),
            value.to_vec(),
        );
        self.blocking(move |store| {
            let (tenant_id, connection_id, key, value) = &args;
            store.put_cache_blocking(tenant_id, connection_id, key, value)
        })
        .await
    }

    async fn get_cache(
        &self,
        tenant_id: &str,
        connection_id: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.get_cache_now(tenant_id, connection_id, key)
    }

    async fn clear_cache(&self, tenant_id: &str, connection_id: Option<&str>) -> Result<usize> {
        let tenant_id = tenant_id.to_owned();
        let connection_id = connection_id.map(str::to_owned);
        self.blocking(move |store| store.clear_cache_blocking(&tenant_id, connection_id.as_deref()))
            .await
    }
}
