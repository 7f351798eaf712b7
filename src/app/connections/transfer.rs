//! Moving a tenant between installations: its export (connections with
//! their secrets opened, for an age envelope made by the caller of
//! [`App::export_tenant`]) and its import, re-sealed under this server's keys.

use std::collections::BTreeSet;

use connvault_crypto::SecretMap;
use connvault_store::{ConnectionQuery, StoreError};
use prost::Message as _;
use zeroize::Zeroizing;

use super::records::{Loaded, to_record};
use crate::app::App;
use crate::error::ServiceError;
use crate::names::{connection_name, parse_tenant, tenant_name};
use crate::pb::{storage, v1};
use crate::record_format;

/// The export format this build writes and reads.
pub const EXPORT_FORMAT: u32 = 1;
/// Connections read per store page while exporting.
const PAGE: usize = 500;
/// The most conflicts an ALREADY_EXISTS message lists one by one.
const LISTED_CONFLICTS: usize = 20;

/// A connection of an export, decoded and checked.
struct Incoming {
    id: String,
    connection: v1::Connection,
    secrets: SecretMap,
}

impl App {
    /// The plaintext export of tenant `name` (`tenants/{t}`): the tenant and
    /// every connection with its secrets opened. Zeroed when dropped; the
    /// caller encrypts it before it goes anywhere.
    pub async fn export_tenant(
        &self,
        name: &str,
    ) -> Result<(Zeroizing<Vec<u8>>, usize), ServiceError> {
        let tenant = self.get_tenant(name).await?;
        let tenant_id = parse_tenant(name, "name")?;
        let mut export = storage::TenantExport {
            format: EXPORT_FORMAT,
            created_by: format!("connvault {}", env!("CARGO_PKG_VERSION")),
            create_time_unix_nanos: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            tenant_id: tenant_id.clone(),
            tenant: tenant.encode_to_vec(),
            connections: Vec::new(),
        };
        let mut after = None;
        loop {
            let page = self
                .store
                .list_connections(&ConnectionQuery {
                    tenant_id: tenant_id.clone(),
                    filter: Default::default(),
                    order: Default::default(),
                    after: after.take(),
                    limit: PAGE,
                })
                .await?;
            for record in page.records {
                let unreadable = || {
                    ServiceError::DataLoss(format!(
                        "{} cannot be read back",
                        connection_name(&tenant_id, &record.id)
                    ))
                };
                let stored =
                    record_format::decode_connection(&record.value).map_err(|_| unreadable())?;
                let loaded = Loaded {
                    tenant: tenant_id.clone(),
                    id: record.id.clone(),
                    value: Vec::new(),
                    revision: record.revision,
                    stored,
                };
                let secrets = self.open(&loaded)?;
                let secrets = secrets
                    .to_bytes()
                    .map_err(|_| ServiceError::Internal("encoding secrets failed".into()))?;
                export.connections.push(storage::ExportedConnection {
                    id: record.id,
                    record: record_format::encode_connection(&loaded.stored.connection, &[]),
                    secrets: secrets.to_vec(),
                });
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let count = export.connections.len();
        let bytes = Zeroizing::new(export.encode_to_vec());
        for connection in &mut export.connections {
            zeroize::Zeroize::zeroize(&mut connection.secrets);
        }
        Ok((bytes, count))
    }

    /// Imports an export's plaintext: creates the tenant (or, with
    /// `skip_existing`, uses the existing one) and each connection with its
    /// id and display name, secrets sealed under this server's keys.
    /// Conflicts refuse the whole import (ALREADY_EXISTS listing them)
    /// unless `skip_existing`, which skips and reports them. A failure
    /// midway removes what this import wrote.
    pub async fn import_tenant(
        &self,
        plaintext: &[u8],
        skip_existing: bool,
        egress_admin: bool,
    ) -> Result<v1::ImportTenantResponse, ServiceError> {
        let export = storage::TenantExport::decode(plaintext)
            .map_err(|_| ServiceError::invalid("data", "the export does not decode"))?;
        if export.format != EXPORT_FORMAT {
            return Err(ServiceError::invalid(
                "data",
                format!(
                    "export format {} is not supported (this build reads format {EXPORT_FORMAT})",
                    export.format
                ),
            ));
        }
        let tenant_id = export.tenant_id.clone();
        let parent = tenant_name(&tenant_id);
        let tenant = v1::Tenant::decode(export.tenant.as_slice())
            .map_err(|_| ServiceError::invalid("data", "the export's tenant does not decode"))?;
        let incoming = decode_connections(&export)?;
        let tenant_exists = self.get_tenant(&parent).await.is_ok();
        let mut conflicts = Vec::new();
        if tenant_exists {
            conflicts.push(v1::ImportConflict {
                name: parent.clone(),
                display_name: tenant.display_name.clone(),
                reason: "tenant exists".into(),
            });
            for connection in &incoming {
                if let Some(reason) = self.conflict(&tenant_id, connection).await? {
                    conflicts.push(conflict(&tenant_id, connection, reason));
                }
            }
        }
        if !conflicts.is_empty() && !skip_existing {
            return Err(refused(&conflicts));
        }
        let tenant_created = !tenant_exists;
        if tenant_created {
            self.create_tenant_as(tenant_id.clone(), Some(tenant), egress_admin)
                .await?;
        }
        let mut response = v1::ImportTenantResponse {
            tenant: parent.clone(),
            tenant_created,
            imported: Vec::new(),
            skipped: conflicts
                .into_iter()
                .filter(|conflict| conflict.name != parent)
                .collect(),
        };
        let skipped: BTreeSet<String> = response.skipped.iter().map(|c| c.name.clone()).collect();
        for connection in &incoming {
            let name = connection_name(&tenant_id, &connection.id);
            if skipped.contains(&name) {
                continue;
            }
            match self.import_one(&tenant_id, connection).await {
                Ok(()) => response.imported.push(name),
                // Taken meanwhile by a concurrent write.
                Err(ImportError::Taken(reason)) if skip_existing => response
                    .skipped
                    .push(conflict(&tenant_id, connection, reason)),
                Err(error) => {
                    self.undo_import(&tenant_id, &response.imported, tenant_created)
                        .await;
                    return Err(match error {
                        ImportError::Taken(reason) => {
                            refused(&[conflict(&tenant_id, connection, reason)])
                        }
                        ImportError::Failed(error) => error,
                    });
                }
            }
        }
        Ok(response)
    }

    /// Why `connection` cannot be imported into `tenant` as it is, if so.
    async fn conflict(
        &self,
        tenant: &str,
        connection: &Incoming,
    ) -> Result<Option<&'static str>, ServiceError> {
        match self.store.get_connection(tenant, &connection.id).await {
            Ok(_) => return Ok(Some("id exists")),
            Err(StoreError::NotFound) => {}
            Err(error) => return Err(error.into()),
        }
        let key = connection.connection.display_name.to_lowercase();
        Ok(self
            .name_in_use(tenant, &key)
            .await?
            .then_some("display name taken"))
    }

    async fn import_one(&self, tenant: &str, connection: &Incoming) -> Result<(), ImportError> {
        // Held from the seal to the write, as every write does: a rotation
        // waits for values sealed under the version it retires.
        let _gate = self.keys.seal_guard().await;
        let sealed = if connection.secrets.is_empty() {
            Vec::new()
        } else {
            self.seal(tenant, &connection.id, &connection.secrets)
                .map_err(ImportError::Failed)?
        };
        let record = to_record(tenant, &connection.id, &connection.connection, &sealed);
        match self.store.create_connection(&record, None).await {
            Ok(_) => Ok(()),
            Err(StoreError::AlreadyExists) => Err(ImportError::Taken("id or display name taken")),
            Err(error) => Err(ImportError::Failed(error.into())),
        }
    }

    /// Removes what a failed import wrote (best effort: logged if it fails).
    async fn undo_import(&self, tenant: &str, imported: &[String], tenant_created: bool) {
        let ids: Vec<String> = imported
            .iter()
            .filter_map(|name| name.rsplit('/').next().map(str::to_owned))
            .collect();
        let result = if tenant_created {
            let mut change = self.keys.change().await;
            let deleted = self.store.delete_tenant(tenant, true).await.map(drop);
            if deleted.is_ok()
                && let Err(error) = change.destroy_tenant_keys(tenant).await
            {
                tracing::error!(%error, tenant, "could not destroy the failed import's tenant key now; the next start destroys it");
            }
            deleted
        } else if ids.is_empty() {
            Ok(())
        } else {
            self.store.batch_delete(tenant, &ids).await.map(drop)
        };
        if let Err(error) = result {
            tracing::error!(%error, tenant, connections = ids.len(), "removing a failed import's connections failed");
        }
    }
}

enum ImportError {
    Taken(&'static str),
    Failed(ServiceError),
}

fn conflict(tenant: &str, connection: &Incoming, reason: &str) -> v1::ImportConflict {
    v1::ImportConflict {
        name: connection_name(tenant, &connection.id),
        display_name: connection.connection.display_name.clone(),
        reason: reason.to_owned(),
    }
}

/// ALREADY_EXISTS naming each conflict (the first few; then how many more).
fn refused(conflicts: &[v1::ImportConflict]) -> ServiceError {
    let mut listed: Vec<String> = conflicts
        .iter()
        .take(LISTED_CONFLICTS)
        .map(|c| format!("{} ({:?}): {}", c.name, c.display_name, c.reason))
        .collect();
    if conflicts.len() > LISTED_CONFLICTS {
        listed.push(format!("and {} more", conflicts.len() - LISTED_CONFLICTS));
    }
    ServiceError::AlreadyExists(format!(
        "the import conflicts with this installation; nothing was imported (retry with skip_existing to skip these): {}",
        listed.join("; ")
    ))
}

/// The export's connections, each checked: a UUID id, a record that
/// decodes, secrets that decode; ids and display names distinct.
fn decode_connections(export: &storage::TenantExport) -> Result<Vec<Incoming>, ServiceError> {
    let mut ids = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(export.connections.len());
    for (index, exported) in export.connections.iter().enumerate() {
        let bad = |what: &str| {
            ServiceError::invalid("data", format!("connection {index} of the export: {what}"))
        };
        if uuid::Uuid::parse_str(&exported.id).is_err() {
            return Err(bad("its id is not a UUID"));
        }
        let stored = record_format::decode_connection(&exported.record)
            .map_err(|_| bad("its record does not decode"))?;
        let secrets = SecretMap::from_bytes(&exported.secrets)
            .map_err(|_| bad("its secrets do not decode"))?;
        let key = stored.connection.display_name.to_lowercase();
        if !ids.insert(exported.id.clone()) || !names.insert(key) {
            return Err(bad("its id or display name repeats"));
        }
        out.push(Incoming {
            id: exported.id.clone(),
            connection: stored.connection,
            secrets,
        });
    }
    Ok(out)
}
