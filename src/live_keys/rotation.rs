//! Data-key rotation: a new version made current, every record re-sealed
//! under it in the background, old versions destroyed once no record uses
//! them.
//!
//! Nothing of the rotation is recorded but the keyring itself: a keyring
//! holding more than one version *is* a rotation in progress, and a start
//! resumes it. A record is re-sealed by a compare-and-swap write of the
//! whole record (its revision and etag change, the change log records an
//! update), so at every instant a record is sealed under a version the
//! keyring holds. A version goes only after a full pass found no record
//! under it.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};

use connvault_crypto::Sealed;
use connvault_store::{
    ConnectionFilter, ConnectionOrder, ConnectionQuery, ConnectionRecord, StoreError,
};

use super::LiveKeys;
use crate::app::secrets_aad;
use crate::master_key::KeyError;
use crate::record_format;

/// Records read per page, and re-sealed concurrently (so their writes
/// share group commits).
const PAGE: usize = 256;
const TENANT_PAGE: usize = 500;

/// What the rotation has done since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationProgress {
    /// A rotation is re-sealing records.
    pub running: bool,
    /// Records re-sealed.
    pub resealed: u64,
    /// Records under an old version that could not be opened in the last pass.
    pub unreadable: u64,
}

/// Records counted by the version they are sealed under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Records by version.
    pub by_version: BTreeMap<u32, u64>,
    /// Records with no secrets.
    pub without_secrets: u64,
}

/// Why a rotation could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotateError {
    /// One is running, or stalled on records it cannot open.
    #[error(
        "the last data-key rotation has not finished (versions {0:?} are still held): wait for it, or see GetKeyStatus for records it cannot re-seal"
    )]
    Running(Vec<u32>),
    /// The keyring could not be changed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What one pass over the records found.
#[derive(Debug, Default)]
struct Pass {
    resealed: u64,
    unreadable: u64,
}

impl LiveKeys {
    /// What the rotation has done.
    pub fn rotation(&self) -> RotationProgress {
        *self.rotation.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, edit: impl FnOnce(&mut RotationProgress)) {
        edit(&mut self.rotation.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Makes a new data-key version current for every tenant and starts
    /// re-sealing the records in the background. Returns the new version.
    pub async fn rotate(self: &Arc<Self>) -> Result<u32, RotateError> {
        let mut change = self.change().await;
        let versions = self.keyring().versions();
        if versions.len() > 1 || self.rotation().running {
            return Err(RotateError::Running(versions));
        }
        let tenants = self.tenant_ids().await.map_err(KeyError::from)?;
        let version = change
            .apply(|keyring| keyring.rotate(tenants.iter().map(String::as_str)))
            .await?;
        drop(change);
        tracing::info!(
            version,
            tenants = tenants.len(),
            "data-key version made current; re-sealing every record under it"
        );
        self.update(|progress| progress.running = true);
        // Every value sealed under the old version reaches the store before
        // the first pass starts reading.
        self.drain_seals().await;
        tokio::spawn(Arc::clone(self).run_rotation());
        Ok(version)
    }

    /// Resumes a rotation a stop interrupted (the keyring holds more than
    /// one version). Returns whether there was one.
    pub fn resume_rotation(self: &Arc<Self>) -> bool {
        let versions = self.keyring().versions();
        if versions.len() < 2 {
            return false;
        }
        tracing::info!(
            ?versions,
            "resuming the data-key rotation an earlier run left unfinished"
        );
        self.update(|progress| progress.running = true);
        tokio::spawn(Arc::clone(self).run_rotation());
        true
    }

    async fn run_rotation(self: Arc<Self>) {
        loop {
            let pass = match self.pass().await {
                Ok(pass) => pass,
                Err(error) => {
                    tracing::error!(%error, "the data-key rotation stopped; it resumes at the next start");
                    break;
                }
            };
            self.update(|progress| progress.unreadable = pass.unreadable);
            if pass.unreadable > 0 && pass.resealed == 0 {
                tracing::error!(
                    unreadable = pass.unreadable,
                    "the data-key rotation cannot re-seal records whose secrets do not open; their versions are kept (run `connvault store verify`)"
                );
                break;
            }
            if pass.resealed == 0 && pass.unreadable == 0 {
                match self.destroy_old_versions().await {
                    Ok(versions) => tracing::info!(
                        ?versions,
                        "data-key rotation finished: no record uses the old versions, destroyed"
                    ),
                    Err(error) => {
                        tracing::error!(%error, "could not destroy the old data-key versions; the next start retries")
                    }
                }
                break;
            }
        }
        self.update(|progress| progress.running = false);
    }

    async fn destroy_old_versions(&self) -> Result<Vec<u32>, KeyError> {
        let mut change = self.change().await;
        let keyring = self.keyring();
        let current = keyring.current_version();
        let old: Vec<u32> = keyring
            .versions()
            .into_iter()
            .filter(|version| Some(*version) != current)
            .collect();
        change
            .apply(|keyring| {
                old.iter()
                    .try_for_each(|version| keyring.remove_version(*version))
            })
            .await?;
        Ok(old)
    }

    /// Every tenant id the store holds.
    async fn tenant_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        loop {
            let page = self
                .store
                .list_tenants(ids.last().map(String::as_str), TENANT_PAGE)
                .await?;
            let done = page.len() < TENANT_PAGE;
            ids.extend(page.into_iter().map(|tenant| tenant.tenant_id));
            if done {
                return Ok(ids);
            }
        }
    }

    /// Calls `visit` with every page of every tenant's connections.
    async fn for_each_page<F, Fut>(&self, mut visit: F) -> Result<(), StoreError>
    where
        F: FnMut(Vec<ConnectionRecord>) -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>>,
    {
        for tenant in self.tenant_ids().await? {
            let mut after = None;
            loop {
                let query = ConnectionQuery {
                    tenant_id: tenant.clone(),
                    filter: ConnectionFilter::default(),
                    order: ConnectionOrder::Id,
                    after,
                    limit: PAGE,
                };
                let page = match self.store.list_connections(&query).await {
                    Ok(page) => page,
                    // Deleted meanwhile.
                    Err(StoreError::TenantNotFound) => break,
                    Err(error) => return Err(error),
                };
                visit(page.records).await?;
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Counts the records by the version their secrets are sealed under.
    pub async fn census(&self) -> Result<Census, StoreError> {
        let mut census = Census::default();
        self.for_each_page(|records| {
            for record in &records {
                match sealed_version(record) {
                    Some(version) => *census.by_version.entry(version).or_default() += 1,
                    None => census.without_secrets += 1,
                }
            }
            std::future::ready(Ok(()))
        })
        .await?;
        Ok(census)
    }

    /// Re-seals every record not under the current version.
    async fn pass(self: &Arc<Self>) -> Result<Pass, StoreError> {
        let mut pass = Pass::default();
        let this = Arc::clone(self);
        let totals = std::sync::Mutex::new(&mut pass);
        self.for_each_page(|records| {
            let this = Arc::clone(&this);
            let totals = &totals;
            async move {
                let Some(current) = this.keyring().current_version() else {
                    return Ok(());
                };
                let mut tasks = tokio::task::JoinSet::new();
                for record in records {
                    if sealed_version(&record).is_some_and(|version| version != current) {
                        tasks.spawn(Arc::clone(&this).reseal(record));
                    }
                }
                let (mut resealed, mut unreadable) = (0, 0);
                while let Some(done) = tasks.join_next().await {
                    match done {
                        Ok(Ok(Resealed::Done)) => resealed += 1,
                        Ok(Ok(Resealed::Unreadable)) => unreadable += 1,
                        Ok(Ok(Resealed::Gone)) => {}
                        Ok(Err(error)) => return Err(error),
                        Err(error) => {
                            return Err(StoreError::Backend(format!(
                                "a re-seal task failed: {error}"
                            )));
                        }
                    }
                }
                this.update(|progress| progress.resealed += resealed);
                let mut totals = totals.lock().unwrap_or_else(PoisonError::into_inner);
                totals.resealed += resealed;
                totals.unreadable += unreadable;
                Ok(())
            }
        })
        .await?;
        Ok(pass)
    }

    /// Re-seals one record under the current version (compare-and-swap;
    /// re-read and retried when a client wrote it meanwhile).
    async fn reseal(self: Arc<Self>, mut record: ConnectionRecord) -> Result<Resealed, StoreError> {
        loop {
            let _gate = self.seal_guard().await;
            let keyring = self.keyring();
            let Some(current) = keyring.current_version() else {
                return Ok(Resealed::Gone);
            };
            if sealed_version(&record).is_none_or(|version| version == current) {
                return Ok(Resealed::Gone);
            }
            let Ok(stored) = record_format::decode_connection(&record.value) else {
                return Ok(Resealed::Unreadable);
            };
            let aad = secrets_aad(&record.tenant_id, &record.id);
            let secrets = match Sealed::from_bytes(&stored.sealed_secrets)
                .and_then(|sealed| keyring.open(&aad, &sealed))
            {
                Ok(secrets) => secrets,
                Err(_) => {
                    tracing::error!(tenant = %record.tenant_id, connection = %record.id, "rotation: the secrets of this connection do not open; left under their version");
                    return Ok(Resealed::Unreadable);
                }
            };
            let Ok(sealed) = keyring.seal(&aad, &secrets) else {
                return Err(StoreError::Backend("re-sealing failed".into()));
            };
            let next = ConnectionRecord {
                value: record_format::encode_connection(&stored.connection, &sealed.to_bytes()),
                ..record.clone()
            };
            match self
                .store
                .update_connection(&next, record.revision, None)
                .await
            {
                Ok(_) => return Ok(Resealed::Done),
                Err(StoreError::Conflict) => {}
                Err(StoreError::NotFound | StoreError::TenantNotFound) => {
                    return Ok(Resealed::Gone);
                }
                Err(error) => return Err(error),
            }
            match self
                .store
                .get_connection(&record.tenant_id, &record.id)
                .await
            {
                Ok(again) => record = again,
                Err(StoreError::NotFound | StoreError::TenantNotFound) => {
                    return Ok(Resealed::Gone);
                }
                Err(error) => return Err(error),
            }
        }
    }
}

enum Resealed {
    Done,
    Unreadable,
    Gone,
}

/// The data-key version of a record's sealed secrets (`None`: no secrets,
/// or a record that does not decode).
pub fn sealed_version(record: &ConnectionRecord) -> Option<u32> {
    let stored = record_format::decode_connection(&record.value).ok()?;
    Sealed::from_bytes(&stored.sealed_secrets)
        .ok()
        .map(|sealed| sealed.key_version)
}
