//! Restoring a backup file into a new data directory.

use std::io::Read;
use std::path::{Path, PathBuf};

use connvault_store::sled::{Progress, RestoreEntry};

use super::{BackupError, BackupReader};
use crate::keys_file::{self, KeyFile};

/// What a restore built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The new data directory.
    pub data_dir: PathBuf,
    /// Store entries restored.
    pub entries: u64,
    /// What the new store holds (its progress record says the same).
    pub progress: Progress,
    /// Who wrote the backup, and when (Unix nanoseconds).
    pub created_by: String,
    /// When the snapshot was taken (Unix time, nanoseconds).
    pub create_time_unix_nanos: i64,
}

/// The store's directory inside a data directory.
fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

/// Whether `dir` is absent (`Ok(false)`), an empty directory (`Ok(true)`),
/// or anything else (an error).
fn check_empty(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(true),
            Some(_) => Err(BackupError::NotEmpty(dir.to_path_buf())),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Builds a new data directory `data_dir` (absent or empty) from the backup
/// that `open` reads: the file is read and checked in full first, so a
/// damaged, truncated or foreign file writes nothing; then read again to
/// build the store and the key file. If that fails, what it wrote is removed.
pub fn restore<R: Read>(
    mut open: impl FnMut() -> std::io::Result<R>,
    data_dir: &Path,
) -> Result<Restored, BackupError> {
    let existed = check_empty(data_dir)?;
    // First pass: every checksum, every bound, before anything is written.
    let mut reader = BackupReader::new(open()?)?;
    while reader.next_chunk()?.is_some() {}
    let result = build(BackupReader::new(open()?)?, data_dir);
    if result.is_err() {
        let _ = if existed {
            std::fs::remove_dir_all(store_dir(data_dir))
                .and(std::fs::remove_file(keys_file::path(data_dir)))
        } else {
            std::fs::remove_dir_all(data_dir)
        };
    }
    result
}

fn build<R: Read>(mut reader: BackupReader<R>, data_dir: &Path) -> Result<Restored, BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)?;
    let header = reader.header().clone();
    keys_file::write(
        data_dir,
        &KeyFile {
            check_value: header.key_check_value.clone(),
            wrapped_keys: header.wrapped_keys.clone(),
        },
    )?;
    // The chunks, entry by entry; the first error stops the import.
    let mut failure: Option<BackupError> = None;
    let mut pending: std::vec::IntoIter<_> = Vec::new().into_iter();
    let mut entries = std::iter::from_fn(|| {
        loop {
            if let Some(entry) = pending.next() {
                let entry: crate::pb::storage::BackupEntry = entry;
                return Some(Ok::<RestoreEntry, connvault_store::StoreError>((
                    entry.tree,
                    entry.key,
                    entry.value,
                )));
            }
            match reader.next_chunk() {
                Ok(Some(chunk)) => pending = chunk.into_iter(),
                Ok(None) => return None,
                Err(error) => {
                    let message = error.to_string();
                    failure = Some(error);
                    return Some(Err(connvault_store::StoreError::Backend(message)));
                }
            }
        }
    });
    let restored =
        connvault_store::sled::restore(&store_dir(data_dir), header.next_id, &mut entries);
    if let Some(error) = failure {
        return Err(error);
    }
    let progress = restored?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(Restored {
        data_dir: data_dir.to_path_buf(),
        entries: reader.entries(),
        progress,
        created_by: header.created_by,
        create_time_unix_nanos: header.create_time_unix_nanos,
    })
}
