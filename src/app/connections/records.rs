//! Every store call on connections, one small function per operation, and
//! the store's refusals in the API's words.

use connvault_store::{AuditAppend, ConnectionRecord, StoreError};
use prost::Message;

use crate::app::list::decode_connection;
use crate::app::{App, stamped};
use crate::error::ServiceError;
use crate::names::{parse_connection, tenant_name};
use crate::pb::storage::StoredConnection;
use crate::pb::v1;

/// A connection read from the store, with the bytes its etag and CAS use.
pub(in crate::app) struct Loaded {
    /// The tenant's id.
    pub(super) tenant: String,
    /// The connection's id.
    pub(super) id: String,
    /// The stored bytes: the etag and the compare-and-swap of a write use them.
    pub(super) value: Vec<u8>,
    /// The decoded record.
    pub(super) stored: StoredConnection,
}

impl Loaded {
    /// The stored connection (an empty one if the record holds none).
    pub(super) fn connection(&self) -> &v1::Connection {
        static EMPTY: std::sync::OnceLock<v1::Connection> = std::sync::OnceLock::new();
        self.stored
            .connection
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
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

impl App {
    /// Reads connection `name` (given in request field `field`); NOT_FOUND names it.
    pub(super) async fn load(&self, name: &str, field: &str) -> Result<Loaded, ServiceError> {
        let (tenant, id) = parse_connection(name, field)?;
        let (t, i) = (tenant.clone(), id.clone());
        let record = self
            .read(|store| store.get_connection(&t, &i))
            .map_err(|error| error.naming_missing(name))?;
        let stored = StoredConnection::decode(record.value.as_slice())
            .map_err(|_| ServiceError::DataLoss(format!("{name} cannot be read back")))?;
        Ok(Loaded {
            tenant,
            id,
            value: record.value,
            stored,
        })
    }

    /// NOT_FOUND naming `name` unless connection `id` of `tenant` exists.
    pub(in crate::app) fn require_connection(
        &self,
        tenant: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ServiceError> {
        self.read(|store| store.get_connection(tenant, id))
            .map(drop)
            .map_err(|error| error.naming_missing(name))
    }

    /// Whether a connection of `tenant` has the lowercased display name `name_key`.
    pub(super) async fn name_in_use(
        &self,
        tenant: &str,
        name_key: &str,
    ) -> Result<bool, ServiceError> {
        let (t, key) = (tenant.to_owned(), name_key.to_owned());
        Ok(self
            .blocking(move |store| store.find_connection_by_name(&t, &key))
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
            .create_connection_async(record, audit)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| match error.store_error() {
                Some(StoreError::AlreadyExists) => name_taken(display_name, parent),
                _ => error.naming_missing(parent),
            })
    }

    /// Replaces `loaded` with `stored` if the record is still what was loaded
    /// (compare-and-swap), with `audit` in the same transaction; answers with
    /// the connection as a read would decode it.
    pub(super) async fn write_back(
        &self,
        loaded: &Loaded,
        stored: StoredConnection,
        name: &str,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<(v1::Connection, Option<u64>), ServiceError> {
        let display_name = stored
            .connection
            .as_ref()
            .map(|c| c.display_name.clone())
            .unwrap_or_default();
        let record = ConnectionRecord {
            tenant_id: loaded.tenant.clone(),
            id: loaded.id.clone(),
            display_name_key: display_name.to_lowercase(),
            value: stored.encode_to_vec(),
        };
        let value = record.value.clone();
        let expected = loaded.value.clone();
        let parent = tenant_name(&loaded.tenant);
        let sequence = self
            .store
            .update_connection_async(&record, &expected, audit)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| match error.store_error() {
                Some(StoreError::AlreadyExists) => name_taken(&display_name, &parent),
                _ => error.naming_missing(name),
            })?;
        tracing::info!(tenant = %loaded.tenant, connection = %loaded.id, "connection updated");
        Ok((decode_connection(&value)?, sequence))
    }

    /// Deletes `loaded` if it is still what was loaded, with `audit` in the same transaction.
    pub(super) async fn remove(
        &self,
        loaded: &Loaded,
        name: &str,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Option<u64>, ServiceError> {
        self.store
            .delete_connection_async(&loaded.tenant, &loaded.id, Some(&loaded.value), audit)
            .await
            .map_err(ServiceError::from)
            .map_err(|error| error.naming_missing(name))
    }

    /// Deletes connections `ids` of `tenant`, all or nothing.
    pub(super) async fn remove_batch(
        &self,
        tenant: &str,
        ids: Vec<String>,
    ) -> Result<(), ServiceError> {
        let t = tenant.to_owned();
        self.blocking(move |store| store.batch_delete(&t, &ids))
            .await
            .map(drop)
            .map_err(|error| {
                error.naming_missing("one or more of the named connections (nothing was deleted)")
            })
    }
}
