//! Every store call on connections, one small function per operation, and
//! the store's refusals in the API's words.

use connvault_store::{AuditAppend, ConnectionRecord, StoreError};

use crate::app::list::connection_view;
use crate::app::{App, stamped};
use crate::error::ServiceError;
use crate::names::{connection_name, parse_connection, tenant_name};
use crate::pb::v1;
use crate::record_format::{self, StoredConnection};

/// A connection read from the store, with the bytes its etag uses and the
/// revision its compare-and-swap uses.
pub(in crate::app) struct Loaded {
    /// The tenant's id.
    pub(super) tenant: String,
    /// The connection's id.
    pub(super) id: String,
    /// The stored bytes: the etag derives from them.
    pub(super) value: Vec<u8>,
    /// The store's revision: a write back must still find it.
    pub(super) revision: u64,
    /// The decoded record (its connection named).
    pub(super) stored: StoredConnection,
}

impl Loaded {
    /// The stored connection.
    pub(in crate::app) fn connection(&self) -> &v1::Connection {
        &self.stored.connection
    }

    /// The connection as the API answers with it (no secrets, with its etag).
    pub(in crate::app) fn into_view(self) -> v1::Connection {
        stamped(self.stored.connection, &self.value)
    }
}

/// ALREADY_EXISTS for a display name taken in `parent`.
pub(super) fn name_taken(display_name: &str, parent: &str) -> ServiceError {
    ServiceError::AlreadyExists(format!(
        "a connection named {display_name:?} already exists in {parent}"
    ))
}

/// The store record of `connection` (its secrets already sealed).
pub(super) fn to_record(
    tenant: &str,
    id: &str,
    connection: &v1::Connection,
    sealed_secrets: &[u8],
) -> ConnectionRecord {
    ConnectionRecord {
        tenant_id: tenant.to_owned(),
        id: id.to_owned(),
        display_name_key: connection.display_name.to_lowercase(),
        index: record_format::connection_index(connection),
        revision: 0,
        value: record_format::encode_connection(connection, sealed_secrets),
    }
}

impl App {
    /// Reads connection `name` (given in request field `field`); NOT_FOUND names it.
    pub(super) async fn load(&self, name: &str, field: &str) -> Result<Loaded, ServiceError> {
        let (tenant, id) = parse_connection(name, field)?;
        let record = self
            .store
            .get_connection(&tenant, &id)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| match error {
                ServiceError::DataLoss(_) => {
                    ServiceError::DataLoss(format!("{name} cannot be read back"))
                }
                other => other.naming_missing(name),
            })?;
        let mut stored = record_format::decode_connection(&record.value)
            .map_err(|_| ServiceError::DataLoss(format!("{name} cannot be read back")))?;
        stored.connection.name = connection_name(&tenant, &id);
        Ok(Loaded {
            tenant,
            id,
            value: record.value,
            revision: record.revision,
            stored,
        })
    }

    /// NOT_FOUND naming `name` unless connection `id` of `tenant` exists.
    pub(in crate::app) async fn require_connection(
        &self,
        tenant: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ServiceError> {
        self.store
            .get_connection(tenant, id)
            .await
            .map(drop)
            .map_err(ServiceError::from)
            .map_err(|error| error.naming_missing(name))
    }

    /// Whether a connection of `tenant` has the lowercased display name `name_key`.
    pub(super) async fn name_in_use(
        &self,
        tenant: &str,
        name_key: &str,
    ) -> Result<bool, ServiceError> {
        Ok(self
            .store
            .find_connection_by_name(tenant, name_key)
            .await?
            .is_some())
    }

    /// Stores a new connection of `parent` with `audit` in the same transaction.
    pub(super) async fn insert(
        &self,
        record: &ConnectionRecord,
        audit: Option<AuditAppend<'_>>,
        parent: &str,
        display_name: &str,
    ) -> Result<Option<u64>, ServiceError> {
        self.store
            .create_connection(record, audit)
            .await
            .map(|committed| committed.audit_seq)
            .map_err(ServiceError::from)
            .map_err(|error| match error.store_error() {
                Some(StoreError::AlreadyExists) => name_taken(display_name, parent),
                _ => error.naming_missing(parent),
            })
    }

    /// Replaces `loaded` with `connection` (secrets sealed into
    /// `sealed_secrets`) if the record is still at the revision that was
    /// loaded (compare-and-swap), with `audit` in the same transaction;
    /// answers with the connection as a read would decode it.
    pub(super) async fn write_back(
        &self,
        loaded: &Loaded,
        connection: &v1::Connection,
        sealed_secrets: &[u8],
        name: &str,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<(v1::Connection, Option<u64>), ServiceError> {
        let record = to_record(&loaded.tenant, &loaded.id, connection, sealed_secrets);
        let parent = tenant_name(&loaded.tenant);
        let committed = self
            .store
            .update_connection(&record, loaded.revision, audit)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| match error.store_error() {
                Some(StoreError::AlreadyExists) => name_taken(&connection.display_name, &parent),
                _ => error.naming_missing(name),
            })?;
        tracing::info!(tenant = %loaded.tenant, connection = %loaded.id, "connection updated");
        Ok((connection_view(&record)?, committed.audit_seq))
    }

    /// Deletes `loaded` if it is still at the loaded revision, with `audit` in the same transaction.
    pub(super) async fn remove(
        &self,
        loaded: &Loaded,
        name: &str,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Option<u64>, ServiceError> {
        self.store
            .delete_connection(&loaded.tenant, &loaded.id, Some(loaded.revision), audit)
            .await
            .map(|committed| committed.audit_seq)
            .map_err(ServiceError::from)
            .map_err(|error| error.naming_missing(name))
    }

    /// Deletes connections `ids` of `tenant`, all or nothing.
    pub(super) async fn remove_batch(
        &self,
        tenant: &str,
        ids: Vec<String>,
    ) -> Result<(), ServiceError> {
        self.store
            .batch_delete(tenant, &ids)
            .await
            .map(drop)
            .map_err(ServiceError::from)
            .map_err(|error| {
                error.naming_missing("one or more of the named connections (nothing was deleted)")
            })
    }
}
