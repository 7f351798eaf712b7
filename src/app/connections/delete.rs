//! Deleting connections: one under an etag, or a batch of one tenant's, all or nothing.

use connvault_store::AuditAppend;

use crate::app::{App, etag_of};
use crate::error::{ServiceError, Violation};
use crate::names::{parse_connection, parse_tenant};

/// The most connections one batch delete may name.
const MAX_BATCH: usize = crate::bounds::MAX_BATCH_NAMES;

impl App {
    /// Deletes a connection (ABORTED if `etag` is set and stale).
    pub async fn delete_connection(&self, name: &str, etag: &str) -> Result<(), ServiceError> {
        self.delete_connection_audited(name, etag, None)
            .await
            .map(drop)
    }

    /// [`App::delete_connection`], appending `audit` in the delete's own store
    /// transaction; returns the entry's sequence number when it was appended.
    pub async fn delete_connection_audited(
        &self,
        name: &str,
        etag: &str,
        audit: Option<AuditAppend<'_>>,
    ) -> Result<Option<u64>, ServiceError> {
        let loaded = self.load(name, "name").await?;
        if !etag.is_empty() && etag != etag_of(&loaded.value) {
            return Err(ServiceError::Aborted(
                "etag does not match: the connection changed since it was read".into(),
            ));
        }
        let sequence = self.remove(&loaded, name, audit).await?;
        tracing::info!(tenant = %loaded.tenant, connection = %loaded.id, "connection deleted");
        Ok(sequence)
    }

    /// Deletes the named connections of one tenant, all or nothing.
    pub async fn batch_delete_connections(
        &self,
        parent: &str,
        names: &[String],
    ) -> Result<(), ServiceError> {
        let tenant = parse_tenant(parent, "parent")?;
        if names.is_empty() || names.len() > MAX_BATCH {
            return Err(ServiceError::invalid(
                "names",
                format!("must name 1-{MAX_BATCH} connections"),
            ));
        }
        let mut ids = Vec::with_capacity(names.len());
        let mut violations = Vec::new();
        for (index, name) in names.iter().enumerate() {
            match parse_connection(name, &format!("names[{index}]")) {
                Ok((owner, id)) if owner == tenant => ids.push(id),
                Ok(_) => violations.push(Violation {
                    field: format!("names[{index}]"),
                    description: format!("is not in {parent}"),
                }),
                Err(ServiceError::InvalidArgument(mut bad)) => violations.append(&mut bad),
                Err(other) => return Err(other),
            }
        }
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let count = ids.len();
        self.remove_batch(&tenant, ids).await?;
        tracing::info!(tenant = %tenant, count, "connections deleted in a batch");
        Ok(())
    }
}
