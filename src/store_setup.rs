//! Opens the configured store backend for the server: sled in the data
//! directory, with connection entries of older layouts upgraded before
//! anything is served.

use std::path::Path;
use std::sync::Arc;

use connvault_store::sled::{SledOptions, SledStore};
use connvault_store::{Store, StoreError};

use crate::config::Config;
use crate::record_format;

/// Opens the store of `config` and upgrades what older versions wrote.
pub async fn open(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let path = config.data_dir.join("store");
    let options = SledOptions::default()
        .with_durable(config.durable)
        .with_cache_bytes(config.store_cache_mb.saturating_mul(1024 * 1024));
    let store = tokio::task::spawn_blocking(move || open_sled(&path, options))
        .await
        .map_err(|error| StoreError::Backend(format!("store task failed: {error}")))??;
    Ok(Arc::new(store))
}

/// Opens sled and rewrites format-1 connection entries (blocking).
pub fn open_sled(path: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
    let store = SledStore::open(path, options)?;
    let upgraded = store.upgrade_legacy(record_format::upgrade_legacy_connection)?;
    if upgraded > 0 {
        tracing::info!(
            connections = upgraded,
            "upgraded connections stored by an older version to the current record layout"
        );
    }
    Ok(store)
}
