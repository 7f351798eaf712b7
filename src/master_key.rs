//! Loads the master key, and the keyring (data keys wrapped under it).
//!
//! The key check value and the wrapped data keys live in the key file
//! (`keys.v1`, see [`crate::keys_file`]) and, as a copy, in the store's
//! `meta` tree. The file is the authority: a wrong master key is refused at
//! start, before anything is served, whatever state the store is in.

use std::path::{Path, PathBuf};

use connvault_crypto::{CryptoError, Keyring, MasterKey, TenantKey, WrappedKey};
use connvault_store::{Store, StoreError};
use secrecy::{ExposeSecret, SecretString};

use crate::keys_file::{self, KeyFile, KeyFileRead};

/// Meta keys of the store's copy of the keyring.
pub const CHECK_VALUE_KEY: &str = "keyring/check_value";
/// See [`CHECK_VALUE_KEY`].
pub const WRAPPED_KEYS_KEY: &str = "keyring/wrapped_keys";
/// Meta key of a keyring change in progress (the store's part of it): set
/// before the key file is replaced, cleared once the store's copy follows,
/// so a crash between the two is finished or undone at the next start.
pub const PENDING_KEY: &str = "keyring/pending";
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
    /// The key file cannot be read or written.
    #[error("key file {}: {source}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is damaged and the store holds no copy to check the
    /// master key against.
    #[error(
        "the key file {} is damaged (its checksum does not match) and the store holds no copy of the keyring: restore the key file from a backup of this data directory",
        path.display()
    )]
    KeyFileDamaged {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds a keyring the store lost or holds differently.
    #[error(
        "the store {what} the keyring the key file {} holds: the store lost or damaged data. Restore the data directory from a backup, or start once with --accept-data-loss to restore the store's copy from the key file (the master key was checked against the file)",
        path.display()
    )]
    StoreKeyring {
        /// The key file.
        path: PathBuf,
        /// "has lost" or "holds a different copy of".
        what: &'static str,
    },
    /// The key file, the only holder of the per-tenant keys, is damaged or
    /// missing.
    #[error(
        "the key file {} is {what}, and it alone holds the per-tenant data keys (the store keeps no copy of them): restore the key file from a backup of this data directory",
        path.display()
    )]
    TenantKeysLost {
        /// The file.
        path: PathBuf,
        /// "damaged" or "missing".
        what: &'static str,
    },
    /// The store holds data but neither it nor a key file holds a keyring.
    #[error(
        "the store holds tenants but neither it nor a key file ({}) holds the keyring they were sealed with: restore the data directory from a backup",
        path.display()
    )]
    NoKeyring {
        /// Where the key file was looked for.
        path: PathBuf,
    },
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

/// What opening the keyring found or did, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringState {
    /// The key file and the store's copy agree.
    Intact,
    /// A new data directory: a keyring was made, and stored in both places.
    Created,
    /// The key file was missing (a data directory of an older version) and
    /// was written from the store's copy, checked against the master key.
    FileCreated,
    /// The key file was damaged and was rewritten from the store's copy,
    /// checked against the master key.
    FileRepaired,
    /// The store had lost or changed its copy; restored from the key file
    /// (only with `accept_data_loss`).
    StoreRepaired,
}

fn wrong_key(error: CryptoError) -> KeyError {
    match error {
        CryptoError::WrongMasterKey => KeyError::WrongMasterKey,
        other => KeyError::Crypto(other),
    }
}

fn verify(master: &MasterKey, check_value: &[u8]) -> Result<(), KeyError> {
    Keyring::verify_check_value(master, check_value).map_err(wrong_key)
}

/// Checks `master` against the key file of `data_dir`, if there is a sound
/// one: a wrong key is refused before the store is even opened (and before
/// sled's recovery touches its files).
pub fn check_key_file(master: &MasterKey, data_dir: &Path) -> Result<(), KeyError> {
    match keys_file::read(data_dir) {
        Ok(KeyFileRead::Present(keys)) => verify(master, &keys.check_value),
        // Absent or damaged: the keyring's open decides with the store's copy.
        Ok(_) => Ok(()),
        Err(source) => Err(KeyError::KeyFile {
            path: keys_file::path(data_dir),
            source,
        }),
    }
}

/// Opens the keyring of the data directory `data_dir` (key file) and
/// `store` (its copy), creating it on a new data directory. A wrong master
/// key is refused. A store that lost or changed its copy is refused unless
/// `accept_data_loss`, which restores the copy from the key file.
pub async fn open_keyring<S: Store + ?Sized>(
    store: &S,
    master: MasterKey,
    data_dir: &Path,
    accept_data_loss: bool,
) -> Result<(Keyring, KeyringState), KeyError> {
    let path = keys_file::path(data_dir);
    let file = keys_file::read(data_dir).map_err(|source| KeyError::KeyFile {
        path: path.clone(),
        source,
    })?;
    let mut stored = KeyFile {
        check_value: store.get_meta(CHECK_VALUE_KEY).await?.unwrap_or_default(),
        wrapped_keys: store.get_meta(WRAPPED_KEYS_KEY).await?.unwrap_or_default(),
        tenant_keys: Vec::new(),
    };
    if let Some(pending) = store.get_meta(PENDING_KEY).await? {
        finish_pending(store, &file, &pending, &mut stored).await?;
    }
    let in_store = !stored.check_value.is_empty();
    let (keys, mut state) = match file {
        KeyFileRead::Present(keys) => {
            verify(&master, &keys.check_value)?;
            if keys.same_store_part(&stored) {
                (keys, KeyringState::Intact)
            } else {
                let what = if in_store {
                    "holds a different copy of"
                } else {
                    "has lost"
                };
                if !accept_data_loss {
                    return Err(KeyError::StoreKeyring { path, what });
                }
                tracing::error!(key_file = %path.display(), "the store {what} the keyring; restoring its copy from the key file (--accept-data-loss)");
                store.put_meta(CHECK_VALUE_KEY, &keys.check_value).await?;
                store.put_meta(WRAPPED_KEYS_KEY, &keys.wrapped_keys).await?;
                (keys, KeyringState::StoreRepaired)
            }
        }
        file if in_store => {
            verify(&master, &stored.check_value)?;
            if WrappedKey::list_is_marked(&stored.wrapped_keys) {
                let what = if file == KeyFileRead::Damaged {
                    "damaged"
                } else {
                    "missing"
                };
                return Err(KeyError::TenantKeysLost { path, what });
            }
            let state = if file == KeyFileRead::Damaged {
                tracing::error!(key_file = %path.display(), "the key file is damaged; rewriting it from the store's copy of the keyring, which the master key matches");
                KeyringState::FileRepaired
            } else {
                KeyringState::FileCreated
            };
            (stored, state)
        }
        KeyFileRead::Damaged => return Err(KeyError::KeyFileDamaged { path }),
        _ => {
            // A new data directory, unless the store already holds data
            // sealed under a keyring nobody kept.
            if !store.list_tenants(None, 1).await?.is_empty() {
                return Err(KeyError::NoKeyring { path });
            }
            let check_value = Keyring::check_value(&master).to_vec();
            store
                .cas_meta(CHECK_VALUE_KEY, None, Some(&check_value))
                .await?;
            let keys = KeyFile {
                check_value,
                wrapped_keys: stored.wrapped_keys,
                tenant_keys: Vec::new(),
            };
            (keys, KeyringState::Created)
        }
    };
    let wrapped = if keys.wrapped_keys.is_empty() {
        Vec::new()
    } else {
        WrappedKey::decode_list(&keys.wrapped_keys)?
    };
    let tenant_keys = TenantKey::decode_list(&keys.tenant_keys)?;
    let mut keyring = Keyring::new(master, wrapped)
        .and_then(|keyring| keyring.with_tenant_keys(tenant_keys))
        .map_err(wrong_key)?;
    let mut keys = keys;
    if keyring.current_version().is_none() {
        // The first data key (a crash last time may have stored the check
        // value without it).
        keyring.add_data_key()?;
        let encoded = WrappedKey::encode_list(keyring.wrapped_keys());
        let expected = (!keys.wrapped_keys.is_empty()).then_some(keys.wrapped_keys.as_slice());
        store
            .cas_meta(WRAPPED_KEYS_KEY, expected, Some(&encoded))
            .await?;
        keys.wrapped_keys = encoded;
        if state == KeyringState::Intact {
            state = KeyringState::Created;
        }
    }
    // The store's copy is durable first, then the file: a crash between
    // leaves a store whose copy recreates the file.
    if state != KeyringState::Intact {
        keys_file::write(data_dir, &keys).map_err(|source| KeyError::KeyFile { path, source })?;
    }
    Ok((keyring, state))
}

/// Finishes a keyring change a crash interrupted: if the key file holds it,
/// the store's copy follows; if not, it never took effect and is dropped.
async fn finish_pending<S: Store + ?Sized>(
    store: &S,
    file: &KeyFileRead,
    pending: &[u8],
    stored: &mut KeyFile,
) -> Result<(), KeyError> {
    match (file, decode_store_part(pending)) {
        (KeyFileRead::Present(keys), Some(next)) if keys.same_store_part(&next) => {
            store.put_meta(CHECK_VALUE_KEY, &next.check_value).await?;
            store.put_meta(WRAPPED_KEYS_KEY, &next.wrapped_keys).await?;
            tracing::info!("finished a keyring change interrupted last time (the key file had it)");
            *stored = next;
        }
        _ => tracing::info!(
            "dropped a keyring change interrupted last time (the key file never had it)"
        ),
    }
    store.cas_meta(PENDING_KEY, Some(pending), None).await?;
    Ok(())
}

fn encode_store_part(keys: &KeyFile) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + keys.check_value.len() + keys.wrapped_keys.len());
    let len = u32::try_from(keys.check_value.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&keys.check_value);
    out.extend_from_slice(&keys.wrapped_keys);
    out
}

fn decode_store_part(bytes: &[u8]) -> Option<KeyFile> {
    let (len, rest) = bytes.split_at_checked(4)?;
    let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
    let (check_value, wrapped_keys) = rest.split_at_checked(len)?;
    Some(KeyFile {
        check_value: check_value.to_vec(),
        wrapped_keys: wrapped_keys.to_vec(),
        tenant_keys: Vec::new(),
    })
}

/// What the key file holds for `keyring`: its check value, its global keys
/// (marked when tenant keys exist) and its tenant keys.
pub fn key_file_of(keyring: &Keyring) -> KeyFile {
    let tenant_keys = keyring.tenant_keys();
    KeyFile {
        check_value: keyring.master_check_value().to_vec(),
        wrapped_keys: WrappedKey::encode_list_marked(
            keyring.wrapped_keys(),
            !tenant_keys.is_empty(),
        ),
        tenant_keys: if tenant_keys.is_empty() {
            Vec::new()
        } else {
            TenantKey::encode_list(&tenant_keys)
        },
    }
}

/// Persists `keyring`, which replaces the persisted `old`: the key file,
/// and the store's copy when its part changed. Crash-safe: a change of the
/// store's part is first recorded as pending in the store, then the key
/// file is replaced atomically, then the copy follows and the pending record
/// goes; [`open_keyring`] finishes or drops a change a crash interrupted.
/// Returns what is now persisted.
pub async fn persist_keyring<S: Store + ?Sized>(
    store: &S,
    data_dir: &Path,
    old: &KeyFile,
    keyring: &Keyring,
) -> Result<KeyFile, KeyError> {
    let new = key_file_of(keyring);
    let store_changes = !new.same_store_part(old);
    let pending = encode_store_part(&new);
    if store_changes {
        store.put_meta(PENDING_KEY, &pending).await?;
    }
    keys_file::write(data_dir, &new).map_err(|source| KeyError::KeyFile {
        path: keys_file::path(data_dir),
        source,
    })?;
    if store_changes {
        store.put_meta(CHECK_VALUE_KEY, &new.check_value).await?;
        store.put_meta(WRAPPED_KEYS_KEY, &new.wrapped_keys).await?;
        store.cas_meta(PENDING_KEY, Some(&pending), None).await?;
    }
    Ok(new)
}

#[cfg(test)]
#[path = "master_key_tests.rs"]
mod tests;
