//! Opens the data directory for the server: the store (sled, with connection
//! entries of older layouts upgraded before anything is served) and the
//! keyring. A store that lost acknowledged writes, and a wrong master key,
//! are refused here, before anything is served.

use std::path::Path;
use std::sync::Arc;

use connvault_crypto::{Keyring, MasterKey};
use connvault_store::sled::{LostWrites, Recovery, SledOptions, SledStore};
use connvault_store::{Store, StoreError};

use crate::audit::AuditLog;
use crate::config::Config;
use crate::error::ServiceError;
use crate::master_key::{self, KeyError, KeyringState};
use crate::pb::v1;
use crate::record_format;

/// Why the data directory could not be opened for serving; each message
/// says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process holds the data directory.
    #[error("{0}: is another connvault running on this data directory?")]
    Locked(StoreError),
    /// The store lost acknowledged writes (see docs/operations.md).
    #[error(
        "refusing to start: {0}. sled drops its log from a damaged byte on. Restore the data directory from a backup; or, to serve what is left, start once with --accept-data-loss (the loss is logged and audited). `connvault store verify --data-dir DIR` lists what the store holds"
    )]
    Lost(Box<LostWrites>),
    /// The store's files are damaged beyond what sled recovers.
    #[error(
        "refusing to start: {0}. Restore the data directory from a backup; `connvault store verify --data-dir DIR` reports what can still be read"
    )]
    Damaged(StoreError),
    /// The store could not be opened (I/O).
    #[error("cannot open the store: {0}")]
    Store(StoreError),
    /// The keyring could not be opened (wrong master key, damaged key file).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The loss accepted at this start could not be audited.
    #[error("cannot audit the accepted data loss: {0}")]
    Audit(ServiceError),
}

impl From<StoreError> for OpenError {
    fn from(error: StoreError) -> Self {
        match error {
            error @ StoreError::Locked { .. } => OpenError::Locked(error),
            StoreError::Lost(lost) => OpenError::Lost(lost),
            error @ StoreError::Corrupt(_) => OpenError::Damaged(error),
            other => OpenError::Store(other),
        }
    }
}

/// The store and keyring the server serves from, and what opening them found.
pub struct Serving {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The same store as its backend, for what only sled offers (backups).
    pub sled: SledStore,
    /// The keyring.
    pub keyring: Keyring,
    /// What the store's open found about its progress.
    pub recovery: Recovery,
    /// What opening the keyring found or did.
    pub keyring_state: KeyringState,
}

/// Opens the store of `config`'s data directory and its keyring, as the
/// server does at start.
pub async fn open_for_serving(config: &Config, master: MasterKey) -> Result<Serving, OpenError> {
    master_key::check_key_file(&master, &config.data_dir)?;
    let path = config.data_dir.join("store");
    let options = SledOptions::default()
        .with_durable(config.durable)
        .with_cache_bytes(config.store_cache_mb.saturating_mul(1024 * 1024))
        .with_accept_loss(config.accept_data_loss);
    let store = tokio::task::spawn_blocking(move || open_sled(&path, options))
        .await
        .map_err(|error| {
            OpenError::Store(StoreError::Backend(format!("store task failed: {error}")))
        })??;
    let recovery = store.recovery().clone();
    if config.accept_data_loss && !matches!(recovery, Recovery::Lost(_)) {
        tracing::info!("--accept-data-loss was given, but the store lost nothing");
    }
    let sled = store.clone();
    let store: Arc<dyn Store> = Arc::new(store);
    let (keyring, keyring_state) = master_key::open_keyring(
        store.as_ref(),
        master,
        &config.data_dir,
        config.accept_data_loss,
    )
    .await?;
    match keyring_state {
        KeyringState::FileCreated => tracing::info!(
            file = %crate::keys_file::path(&config.data_dir).display(),
            "wrote the key file from the store's copy of the keyring (a data directory of an older version)"
        ),
        KeyringState::Created => tracing::info!("created the keyring of a new data directory"),
        _ => {}
    }
    Ok(Serving {
        store,
        sled,
        keyring,
        recovery,
        keyring_state,
    })
}

/// Opens sled and rewrites format-1 connection entries (blocking).
pub fn open_sled(path: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
    let store = SledStore::open(path, options)?;
    match store.recovery() {
        Recovery::Created { recovered } => tracing::info!(
            change = recovered.last_change_seq,
            "created the store's progress record (a new store, or the first start of this version on an older one)"
        ),
        Recovery::Lost(lost) => tracing::error!(
            "{lost}; starting anyway with what is left (--accept-data-loss); the progress record now matches the store"
        ),
        _ => {}
    }
    let upgraded = store.upgrade_legacy(record_format::upgrade_legacy_connection)?;
    if upgraded > 0 {
        tracing::info!(
            connections = upgraded,
            "upgraded connections stored by an older version to the current record layout"
        );
    }
    Ok(store)
}

/// Audits a loss the operator accepted at this start (`--accept-data-loss`):
/// one durable event, method `AcceptDataLoss`, outcome `DATA_LOSS`, naming
/// what was lost in its resource.
pub async fn audit_accepted_loss(
    audit: &AuditLog,
    recovery: &Recovery,
    keyring_state: KeyringState,
) -> Result<(), OpenError> {
    let mut lost = Vec::new();
    if let Recovery::Lost(loss) = recovery {
        lost.push(match loss.recorded {
            Some(recorded) => format!(
                "store: recovered to commit {} (change {}) of {} (change {}) acknowledged",
                loss.recovered.commit,
                loss.recovered.last_change_seq,
                recorded.commit,
                recorded.last_change_seq
            ),
            None => format!(
                "store: progress record missing or damaged; recovered to commit {} (change {})",
                loss.recovered.commit, loss.recovered.last_change_seq
            ),
        });
    }
    if keyring_state == KeyringState::StoreRepaired {
        lost.push("keyring: the store's copy restored from the key file".to_owned());
    }
    if lost.is_empty() {
        return Ok(());
    }
    let event = v1::AuditEvent {
        principal: "operator (--accept-data-loss)".into(),
        resource: lost.join("; "),
        method: "AcceptDataLoss".into(),
        outcome: "DATA_LOSS".into(),
        ..v1::AuditEvent::default()
    };
    audit.write(event, true).await.map_err(OpenError::Audit)
}
