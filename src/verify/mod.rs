//! `connvault store verify`: the offline check of a data directory.
//!
//! It takes the store's lock (so no server can start on it meanwhile, and it
//! refuses a directory a server holds), copies the store to a scratch
//! directory and opens the copy — sled's recovery rewrites the files it
//! opens, and a check must not change what it checks — then reads every
//! record, opens every sealed secret, checks every index against its records
//! and the change sequence against the progress record, and checks the key
//! file against the store's copy of the keyring.

mod records;

use std::fs::File;
use std::path::{Path, PathBuf};

use connvault_crypto::{Keyring, MasterKey, TenantKey, WrappedKey};
use connvault_store::sled::{CheckCounts, Recovery, SledOptions, SledStore};
use connvault_store::{MetaStore, TenantStore};

use crate::keys_file::{self, KeyFile, KeyFileRead};
use crate::master_key::{CHECK_VALUE_KEY, KeyError, WRAPPED_KEYS_KEY};

/// Why the check could not run (a problem it finds is in the [`Report`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The data directory holds no store.
    #[error("{} holds no store (no {})", data_dir.display(), data_dir.join("store/db").display())]
    NoStore {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// A server has the store open.
    #[error(
        "the store in {} is in use (locked by a running connvault): stop the server first, verify checks a store at rest",
        path.display()
    )]
    Locked {
        /// The store's directory.
        path: PathBuf,
    },
    /// The master key is wrong (or the keyring cannot be read at all).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A file could not be read or copied.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VerifyError {
    let what = what.into();
    move |source| VerifyError::Io { what, source }
}

/// What the check found.
#[derive(Debug, Default)]
pub struct Report {
    /// The data directory checked.
    pub data_dir: PathBuf,
    /// Entries read, by kind.
    pub counts: CheckCounts,
    /// Connections whose sealed secrets opened.
    pub secrets_opened: u64,
    /// The store's progress against its progress record, in words.
    pub progress: String,
    /// The key file against the store's copy, in words.
    pub key_file: String,
    /// Things worth knowing that are not damage (a directory of an older version).
    pub notes: Vec<String>,
    /// Every problem found; empty for a sound data directory.
    pub problems: Vec<String>,
}

/// Copies a directory tree (the store: sled's files and the progress record).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            bytes += copy_tree(&entry.path(), &target)?;
        } else {
            bytes += std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(bytes)
}

/// Checks the data directory `data_dir` with `master`, working on a copy of
/// the store made under `scratch` (the system's temporary directory if `None`).
pub async fn verify(
    data_dir: &Path,
    master: MasterKey,
    scratch: Option<&Path>,
) -> Result<Report, VerifyError> {
    let store_dir = data_dir.join("store");
    let log = store_dir.join("db");
    if !log.is_file() {
        return Err(VerifyError::NoStore {
            data_dir: data_dir.to_owned(),
        });
    }
    // sled locks its log file with `flock`; holding the same lock keeps a
    // server from starting on the directory while it is copied.
    let lock = File::open(&log).map_err(io(format!("opening {}", log.display())))?;
    if let Err(error) = fs2::FileExt::try_lock_exclusive(&lock) {
        if error.kind() == fs2::lock_contended_error().kind() {
            return Err(VerifyError::Locked { path: store_dir });
        }
        return Err(io(format!("locking {}", log.display()))(error));
    }
    let scratch = match scratch {
        Some(dir) => tempfile::Builder::new()
            .prefix("connvault-verify-")
            .tempdir_in(dir),
        None => tempfile::Builder::new()
            .prefix("connvault-verify-")
            .tempdir(),
    }
    .map_err(io("creating a scratch directory"))?;
    let copy = scratch.path().join("store");
    copy_tree(&store_dir, &copy).map_err(io(format!(
        "copying {} to {}",
        store_dir.display(),
        copy.display()
    )))?;
    let key_file = keys_file::read(data_dir).map_err(io("reading the key file"))?;
    drop(lock);

    let mut report = Report {
        data_dir: data_dir.to_owned(),
        ..Report::default()
    };
    let options = SledOptions::default()
        .with_durable(false)
        .with_cache_bytes(64 << 20)
        .with_accept_loss(true);
    let store = match SledStore::open(&copy, options) {
        Ok(store) => store,
        Err(error) => {
            report
                .problems
                .push(format!("the store cannot be opened: {error}"));
            check_key_file_alone(&master, &key_file, &mut report)?;
            return Ok(report);
        }
    };
    report.progress = describe_progress(store.recovery(), &mut report.notes);
    let keyring = open_keyring(&store, master, &key_file, &mut report).await?;
    let mut checker = records::Checker::new(keyring.as_ref());
    match store.check(&mut |visit| checker.visit(visit)) {
        Ok(check) => {
            report.counts = check.counts;
            report.problems.extend(check.problems);
        }
        Err(error) => report.problems.push(format!("the check stopped: {error}")),
    }
    report.secrets_opened = checker.secrets_opened;
    report.problems.extend(checker.problems);
    Ok(report)
}

fn describe_progress(recovery: &Recovery, notes: &mut Vec<String>) -> String {
    match recovery {
        Recovery::Intact {
            recorded,
            recovered,
        } => format!(
            "the store holds group commit {} (change {}); its progress record says {} (change {}): nothing acknowledged is missing",
            recovered.commit, recovered.last_change_seq, recorded.commit, recorded.last_change_seq
        ),
        Recovery::Created { recovered } => {
            notes.push(
                "no progress record: a data directory of an older version (the server writes one at its next start)".into(),
            );
            format!(
                "the store holds change {}; no progress record to compare with",
                recovered.last_change_seq
            )
        }
        // The store's check lists the loss as a problem.
        Recovery::Lost(lost) => format!("LOST: {lost}"),
        _ => format!("{recovery:?}"),
    }
}

/// Checks the master key against a sound key file when the store cannot be opened.
fn check_key_file_alone(
    master: &MasterKey,
    key_file: &KeyFileRead,
    report: &mut Report,
) -> Result<(), VerifyError> {
    match key_file {
        KeyFileRead::Present(keys) => {
            Keyring::verify_check_value(master, &keys.check_value)
                .map_err(|_| KeyError::WrongMasterKey)?;
            report.key_file = "sound, and the master key matches it".into();
        }
        KeyFileRead::Damaged => {
            report.key_file = "DAMAGED".into();
            report
                .problems
                .push("the key file is damaged (its checksum does not match)".into());
        }
        KeyFileRead::Absent => report.key_file = "absent".into(),
    }
    Ok(())
}

/// The keyring to open secrets with: the key file's (the authority), else
/// the store's copy; compares the two. A wrong master key is an error.
async fn open_keyring(
    store: &SledStore,
    master: MasterKey,
    key_file: &KeyFileRead,
    report: &mut Report,
) -> Result<Option<Keyring>, VerifyError> {
    let meta = |key| async move { store.get_meta(key).await.ok().flatten().unwrap_or_default() };
    let stored = KeyFile {
        check_value: meta(CHECK_VALUE_KEY).await,
        wrapped_keys: meta(WRAPPED_KEYS_KEY).await,
        tenant_keys: Vec::new(),
    };
    let in_store = !stored.check_value.is_empty();
    let keys = match key_file {
        KeyFileRead::Present(keys) => {
            Keyring::verify_check_value(&master, &keys.check_value)
                .map_err(|_| KeyError::WrongMasterKey)?;
            report.key_file = if keys.same_store_part(&stored) {
                "sound, matches the store's copy of the keyring".into()
            } else if in_store {
                report
                    .problems
                    .push("the store's copy of the keyring differs from the key file".into());
                "sound, but the store's copy DIFFERS".into()
            } else {
                report.problems.push(
                    "the store has lost its copy of the keyring (the key file holds it)".into(),
                );
                "sound, but the store's copy is MISSING".into()
            };
            keys.clone()
        }
        other => {
            if *other == KeyFileRead::Damaged {
                report
                    .problems
                    .push("the key file is damaged (its checksum does not match)".into());
                report.key_file = "DAMAGED".into();
            } else {
                report.notes.push(
                    "no key file: a data directory of an older version (the server writes it at its next start)".into(),
                );
                report.key_file = "absent".into();
            }
            if !in_store {
                let tenants = store.list_tenants(None, 1).await.unwrap_or_default();
                if !tenants.is_empty() {
                    report.problems.push(
                        "neither a key file nor the store holds a keyring: no secret can be opened"
                            .into(),
                    );
                }
                return Ok(None);
            }
            Keyring::verify_check_value(&master, &stored.check_value)
                .map_err(|_| KeyError::WrongMasterKey)?;
            if WrappedKey::list_is_marked(&stored.wrapped_keys) {
                report.problems.push(
                    "the per-tenant data keys were in the key file alone: the secrets of tenants with keys of their own cannot be opened".into(),
                );
            }
            stored
        }
    };
    let tenant_keys = match TenantKey::decode_list(&keys.tenant_keys) {
        Ok(keys) => keys,
        Err(error) => {
            report
                .problems
                .push(format!("the tenant data keys: {error}"));
            return Ok(None);
        }
    };
    let wrapped = match WrappedKey::decode_list(&keys.wrapped_keys) {
        Ok(wrapped) => wrapped,
        Err(error) => {
            report
                .problems
                .push(format!("the wrapped data keys: {error}"));
            return Ok(None);
        }
    };
    match Keyring::new(master, wrapped).and_then(|keyring| keyring.with_tenant_keys(tenant_keys)) {
        Ok(keyring) => Ok(Some(keyring)),
        Err(connvault_crypto::CryptoError::WrongMasterKey) => Err(KeyError::WrongMasterKey.into()),
        Err(error) => {
            report.problems.push(format!("the keyring: {error}"));
            Ok(None)
        }
    }
}
