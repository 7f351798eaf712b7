//! The keyring of a running server, and the changes made to it while it
//! serves: a tenant's own data key made with the tenant and destroyed with
//! it (crypto-shredding), data-key rotation, master-key rewrap.
//!
//! Readers take a snapshot ([`LiveKeys::keyring`]); a change clones the
//! keyring, persists the clone ([`crate::master_key::persist_keyring`]:
//! key file and store copy, crash-safe) and only then swaps it in, so
//! nothing is ever sealed under a key that is not durable. Changes are
//! serialized by one lock ([`LiveKeys::change`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use connvault_crypto::{Keyring, MasterKey};
use connvault_store::{Store, StoreError};

mod rotation;

pub use rotation::{Census, RotateError, RotationProgress, sealed_version};

use crate::keys_file::KeyFile;
use crate::master_key::{self, KeyError};

/// The live keyring of a server.
pub struct LiveKeys {
    current: RwLock<Arc<Keyring>>,
    persisted: tokio::sync::Mutex<KeyFile>,
    /// Held (shared) from a seal to the write that stores it; a rotation
    /// takes it exclusively once after making a new version current, so no
    /// value sealed under the old version is still on its way to the store.
    seal_gate: tokio::sync::RwLock<()>,
    store: Arc<dyn Store>,
    data_dir: PathBuf,
    rotation: std::sync::Mutex<RotationProgress>,
}

impl std::fmt::Debug for LiveKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKeys")
            .field("keyring", &*self.keyring())
            .finish_non_exhaustive()
    }
}

/// A change of the keyring in progress: holds the change lock.
pub struct KeyChange<'a> {
    keys: &'a LiveKeys,
    persisted: tokio::sync::MutexGuard<'a, KeyFile>,
}

impl LiveKeys {
    /// The live keyring of the data directory `data_dir`, whose key file and
    /// store copy hold `keyring` (as [`master_key::open_keyring`] opened it).
    pub fn new(store: Arc<dyn Store>, keyring: Keyring, data_dir: &Path) -> Self {
        let persisted = master_key::key_file_of(&keyring);
        Self {
            current: RwLock::new(Arc::new(keyring)),
            persisted: tokio::sync::Mutex::new(persisted),
            seal_gate: tokio::sync::RwLock::new(()),
            store,
            data_dir: data_dir.to_owned(),
            rotation: std::sync::Mutex::default(),
        }
    }

    /// The keyring as it is now.
    pub fn keyring(&self) -> Arc<Keyring> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Hold this from sealing a value until the write storing it returns.
    pub async fn seal_guard(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.seal_gate.read().await
    }

    /// Waits until every value sealed before now has been stored (or failed).
    pub async fn drain_seals(&self) {
        drop(self.seal_gate.write().await);
    }

    /// Starts a change (waits for the one in progress).
    pub async fn change(&self) -> KeyChange<'_> {
        KeyChange {
            keys: self,
            persisted: self.persisted.lock().await,
        }
    }

    /// The store the keyring's copy lives in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Destroys the keys of tenants the store does not hold: a crash between
    /// deleting a tenant and destroying its key (or between making a key and
    /// creating the tenant) leaves one. Returns how many tenants' keys went.
    pub async fn destroy_orphan_keys(&self) -> Result<usize, KeyError> {
        let mut change = self.change().await;
        let keyring = self.keyring();
        let mut orphans = Vec::new();
        for tenant in keyring.keyed_tenants() {
            match self.store.get_tenant(tenant).await {
                Err(StoreError::TenantNotFound) => orphans.push(tenant.to_owned()),
                Err(error) => return Err(error.into()),
                Ok(_) => {}
            }
        }
        for tenant in &orphans {
            tracing::info!(tenant = %tenant, "destroyed the data key of a tenant that no longer exists (a delete or create interrupted last time)");
        }
        if !orphans.is_empty() {
            change
                .apply(|keyring| {
                    for tenant in &orphans {
                        keyring.remove_tenant(tenant);
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(orphans.len())
    }
}

impl KeyChange<'_> {
    /// Applies `edit` to a copy of the keyring, persists it, then makes it live.
    pub async fn apply<T>(
        &mut self,
        edit: impl FnOnce(&mut Keyring) -> Result<T, connvault_crypto::CryptoError>,
    ) -> Result<T, KeyError> {
        let mut keyring = Keyring::clone(&self.keys.keyring());
        let out = edit(&mut keyring)?;
        self.install(keyring).await?;
        Ok(out)
    }

    /// Persists `keyring` and makes it live.
    async fn install(&mut self, keyring: Keyring) -> Result<(), KeyError> {
        let persisted = master_key::persist_keyring(
            self.keys.store.as_ref(),
            &self.keys.data_dir,
            &self.persisted,
            &keyring,
        )
        .await?;
        *self.persisted = persisted;
        *self
            .keys
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(keyring);
        Ok(())
    }

    /// Gives `tenant` a data key of its own (unless it has one), durable
    /// before this returns.
    pub async fn add_tenant_key(&mut self, tenant: &str) -> Result<(), KeyError> {
        if self.keys.keyring().has_tenant_keys(tenant) {
            return Ok(());
        }
        self.apply(|keyring| keyring.add_tenant_key(tenant).map(drop))
            .await
    }

    /// Destroys every data key of `tenant`.
    pub async fn destroy_tenant_keys(&mut self, tenant: &str) -> Result<bool, KeyError> {
        if !self.keys.keyring().has_tenant_keys(tenant) {
            return Ok(false);
        }
        self.apply(|keyring| Ok(keyring.remove_tenant(tenant)))
            .await
    }

    /// Replaces the master key: every data key wrapped anew under `new`,
    /// the check value follows; no record is rewritten. Afterwards the old
    /// master key is refused.
    pub async fn rewrap(&mut self, new: MasterKey) -> Result<(), KeyError> {
        let keyring = self.keys.keyring().rewrapped(new)?;
        self.install(keyring).await
    }
}
