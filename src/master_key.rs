//! Loads the master key, and the keyring (data keys wrapped under it) kept
//! in the store.
//!
//! The store keeps a key check value and the wrapped data keys in its `meta`
//! tree: a wrong master key is refused at start, before anything is served.

use std::path::Path;

use connvault_crypto::{CryptoError, Keyring, MasterKey, WrappedKey};
use connvault_store::{MetaStore, StoreError};
use secrecy::{ExposeSecret, SecretString};

const CHECK_VALUE_KEY: &str = "keyring/check_value";
const WRAPPED_KEYS_KEY: &str = "keyring/wrapped_keys";
/// Name of the development master key file inside the data directory.
pub const DEV_KEY_FILE: &str = "dev-master.key";

/// Why the keyring could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No master key was configured.
    #[error(
        "no master key: set CONNVAULT_MASTER_KEY (base64 of 32 bytes), pass --master-key-file, or run with --dev"
    )]
    Missing,
    /// The master key is not the one this data directory was sealed with.
    #[error(
        "the master key does not match this data directory (key check value differs); refusing to start"
    )]
    WrongMasterKey,
    /// A crypto failure (bad key file, bad encoding...).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the master key came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `CONNVAULT_MASTER_KEY`.
    Environment,
    /// `--master-key-file`.
    File,
    /// A development key in the data directory (created now or earlier).
    Dev {
        /// Whether it was created at this start.
        created: bool,
    },
}

/// Finds the master key: the environment value, else the key file, else (in dev mode) the data dir's.
pub fn load_master_key(
    env_value: Option<SecretString>,
    key_file: Option<&Path>,
    dev: bool,
    data_dir: &Path,
) -> Result<(MasterKey, KeySource), KeyError> {
    if let Some(value) = env_value {
        return Ok((
            MasterKey::from_base64(value.expose_secret().trim())?,
            KeySource::Environment,
        ));
    }
    if let Some(path) = key_file {
        return Ok((MasterKey::load_file(path)?, KeySource::File));
    }
    if dev {
        let path = data_dir.join(DEV_KEY_FILE);
        if path.exists() {
            return Ok((
                MasterKey::load_file(&path)?,
                KeySource::Dev { created: false },
            ));
        }
        return Ok((
            MasterKey::create_dev_file(&path)?,
            KeySource::Dev { created: true },
        ));
    }
    Err(KeyError::Missing)
}

/// Opens the keyring stored in `store`, creating it (check value and a first
/// data key) on a new data directory. A wrong master key is refused.
pub async fn open_keyring<S: MetaStore + ?Sized>(
    store: &S,
    master: MasterKey,
) -> Result<Keyring, KeyError> {
    let check = Keyring::check_value(&master);
    match store.get_meta(CHECK_VALUE_KEY).await? {
        Some(stored) => {
            Keyring::verify_check_value(&master, &stored).map_err(|_| KeyError::WrongMasterKey)?
        }
        None => store.cas_meta(CHECK_VALUE_KEY, None, Some(&check)).await?,
    }
    let wrapped = match store.get_meta(WRAPPED_KEYS_KEY).await? {
        Some(bytes) => WrappedKey::decode_list(&bytes)?,
        None => Vec::new(),
    };
    let mut keyring = Keyring::new(master, wrapped).map_err(|error| match error {
        CryptoError::WrongMasterKey => KeyError::WrongMasterKey,
        other => KeyError::Crypto(other),
    })?;
    if keyring.current_version().is_none() {
        keyring.add_data_key()?;
        let encoded = WrappedKey::encode_list(keyring.wrapped_keys());
        store
            .cas_meta(WRAPPED_KEYS_KEY, None, Some(&encoded))
            .await?;
    }
    Ok(keyring)
}
