//! Taking a backup on the server: a snapshot spooled to a temporary file.

use std::io::{Seek as _, SeekFrom};
use std::path::Path;

use connvault_store::StoreError;
use connvault_store::sled::{SledStore, SnapshotSink, SnapshotStart};

use super::{BackupError, BackupWriter};
use crate::keys_file::{self, KeyFileRead};
use crate::pb::storage;

/// A backup file spooled on the server, rewound, ready to stream.
#[derive(Debug)]
pub struct Spooled {
    /// The file (unlinked: it disappears with its last handle).
    pub file: std::fs::File,
    /// Its length in bytes.
    pub len: u64,
    /// Store entries it holds.
    pub entries: u64,
    /// The newest change log entry it holds.
    pub last_change_seq: u64,
}

/// Spools into the backup file while the store holds writes off: the key
/// file is read at the snapshot point too, so the pair is consistent.
struct Sink<'a> {
    data_dir: &'a Path,
    out: Option<std::io::BufWriter<std::fs::File>>,
    writer: Option<BackupWriter<std::io::BufWriter<std::fs::File>>>,
}

fn store_error(error: BackupError) -> StoreError {
    match error {
        BackupError::Io(error) => StoreError::Io(error),
        BackupError::Store(error) => error,
        other => StoreError::Backend(other.to_string()),
    }
}

impl SnapshotSink for Sink<'_> {
    fn begin(&mut self, start: &SnapshotStart) -> connvault_store::Result<()> {
        let keys = match keys_file::read(self.data_dir)? {
            KeyFileRead::Present(keys) => keys,
            KeyFileRead::Absent => {
                return Err(store_error(BackupError::KeyFile {
                    dir: self.data_dir.to_path_buf(),
                    what: "missing",
                }));
            }
            KeyFileRead::Damaged => {
                return Err(store_error(BackupError::KeyFile {
                    dir: self.data_dir.to_path_buf(),
                    what: "damaged",
                }));
            }
        };
        let header = storage::BackupHeader {
            created_by: format!("connvault {}", env!("CARGO_PKG_VERSION")),
            create_time_unix_nanos: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            next_id: start.next_id,
            last_change_seq: start.last_change_seq,
            key_check_value: keys.check_value,
            wrapped_keys: keys.wrapped_keys,
        };
        let out = self
            .out
            .take()
            .ok_or_else(|| StoreError::Backend("the snapshot began twice".into()))?;
        self.writer = Some(BackupWriter::new(out, &header).map_err(store_error)?);
        Ok(())
    }

    fn entry(&mut self, tree: &[u8], key: &[u8], value: &[u8]) -> connvault_store::Result<()> {
        self.writer
            .as_mut()
            .ok_or_else(|| StoreError::Backend("an entry before the snapshot began".into()))?
            .entry(tree, key, value)
            .map_err(store_error)
    }
}

/// Takes a consistent backup of `store` (whose data directory is
/// `data_dir`) into an unlinked temporary file in `spool_dir` (blocking:
/// run it off the async runtime). Writes wait only while the snapshot reads
/// the store into the local file.
pub fn take(store: &SledStore, data_dir: &Path, spool_dir: &Path) -> Result<Spooled, BackupError> {
    let file = tempfile::tempfile_in(spool_dir)?;
    let mut sink = Sink {
        data_dir,
        out: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
        writer: None,
    };
    let start = store.snapshot(&mut sink)?;
    let writer = sink
        .writer
        .ok_or_else(|| BackupError::Damaged("the snapshot never began".into()))?;
    let (out, entries) = writer.finish()?;
    let mut file = out
        .into_inner()
        .map_err(|error| BackupError::Io(error.into_error()))?;
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    Ok(Spooled {
        file,
        len,
        entries,
        last_change_seq: start.last_change_seq,
    })
}
