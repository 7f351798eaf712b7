//! The store's durable high-water mark, kept outside sled.
//!
//! sled's recovery treats the first record that fails its checksum as the
//! end of the log and cuts the file there: everything written after a
//! damaged byte is gone, and the store opens without a word. So each group
//! commit also leaves a mark in two places: inside sled (the meta key
//! [`COMMIT_KEY`], inserted just before the flush, so it lies after every
//! write the flush acknowledges) and, once sled's flush and `fsync` are
//! done, in the small file `progress` beside sled's own files. At open, a
//! sled that recovered to a lower mark than the file holds lost
//! acknowledged writes.
//!
//! The file holds two fixed-size slots, each checksummed (CRC32) and written
//! in place with `fdatasync`: commit `n` goes to slot `n % 2`, so a torn or
//! damaged slot leaves the other, one commit older, which is still a sound
//! (lower) mark. The mark is written only after sled's data is on disk, so
//! it never claims more than sled has.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sled::Tree;

use crate::{Result, StoreError};

/// Name of the progress file inside the store's directory.
pub const PROGRESS_FILE: &str = "progress";
/// The meta key holding sled's copy of the mark.
pub(crate) const COMMIT_KEY: &str = "sled.commit";

const MAGIC: [u8; 8] = *b"cvprog\x00\x01";
/// magic, commit, last change sequence, CRC32 of the 24 bytes before it.
const SLOT_LEN: usize = 28;
/// Slots lie in different 512-byte sectors: a torn sector hits one of them.
const SLOT_STRIDE: u64 = 512;
const FILE_LEN: usize = 1024;

/// How far the store got: the number of group commits made durable, and the
/// newest change log sequence number one of them covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Group commits (sled flush + `fsync`) completed.
    pub commit: u64,
    /// The newest change log entry a completed commit covered (0: none).
    pub last_change_seq: u64,
}

impl Progress {
    /// Whether this holds less than `other` (some of `other`'s writes are missing).
    pub fn is_behind(&self, other: &Progress) -> bool {
        self.commit < other.commit || self.last_change_seq < other.last_change_seq
    }

    pub(crate) fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.commit.to_be_bytes());
        out[8..].copy_from_slice(&self.last_change_seq.to_be_bytes());
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Progress> {
        let commit = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let last_change_seq = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
        (bytes.len() == 16).then_some(Progress {
            commit,
            last_change_seq,
        })
    }
}

/// What the store lost, or may have lost: the mark it had recorded and what
/// sled recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostWrites {
    /// The store's directory.
    pub path: PathBuf,
    /// The mark the progress file held; `None` if the file is missing or
    /// damaged although this store has kept one.
    pub recorded: Option<Progress>,
    /// What sled recovered.
    pub recovered: Progress,
}

impl LostWrites {
    /// How many change log sequence numbers between what was recovered and
    /// what was recorded are gone (each a connection write), if known.
    pub fn lost_change_seqs(&self) -> Option<u64> {
        self.recorded.map(|recorded| {
            recorded
                .last_change_seq
                .saturating_sub(self.recovered.last_change_seq)
        })
    }
}

impl std::fmt::Display for LostWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = self.path.display();
        match self.recorded {
            Some(recorded) => write!(
                f,
                "the store in {dir} lost acknowledged writes: it recovered to group commit {} \
                 (change {}) but had made group commit {} (change {}) durable; the writes of \
                 {} group commit(s), with up to {} connection change(s), are gone",
                self.recovered.commit,
                self.recovered.last_change_seq,
                recorded.commit,
                recorded.last_change_seq,
                recorded.commit.saturating_sub(self.recovered.commit),
                recorded
                    .last_change_seq
                    .saturating_sub(self.recovered.last_change_seq),
            ),
            None => write!(
                f,
                "the progress record {} is missing or damaged while the store in {dir} is not \
                 new (it recovered to group commit {}, change {}): whether acknowledged writes \
                 were lost cannot be told",
                self.path.join(PROGRESS_FILE).display(),
                self.recovered.commit,
                self.recovered.last_change_seq,
            ),
        }
    }
}

/// What opening the store found about its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recovery {
    /// sled holds at least what the progress record says.
    Intact {
        /// What the progress record held.
        recorded: Progress,
        /// What sled recovered.
        recovered: Progress,
    },
    /// There was no progress record and sled had never kept one: a new
    /// store, or one written by an older version. The record was created
    /// from what sled holds.
    Created {
        /// What sled holds.
        recovered: Progress,
    },
    /// Writes were lost, and the caller accepted it
    /// ([`super::SledOptions::accept_loss`]): the progress record was reset
    /// to what sled recovered.
    Lost(LostWrites),
}

impl Recovery {
    /// What sled recovered.
    pub fn recovered(&self) -> Progress {
        match self {
            Recovery::Intact { recovered, .. } | Recovery::Created { recovered } => *recovered,
            Recovery::Lost(lost) => lost.recovered,
        }
    }
}

fn checksum(bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(bytes);
    hasher.finalize()
}

fn encode_slot(progress: Progress) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..8].copy_from_slice(&MAGIC);
    slot[8..24].copy_from_slice(&progress.to_bytes());
    let crc = checksum(&slot[..24]);
    slot[24..].copy_from_slice(&crc.to_be_bytes());
    slot
}

fn decode_slot(slot: &[u8]) -> Option<Progress> {
    let slot = slot.get(..SLOT_LEN)?;
    if slot[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(slot[24..28].try_into().ok()?);
    if crc != checksum(&slot[..24]) {
        return None;
    }
    Progress::from_bytes(&slot[8..24])
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// Reads the progress file of store directory `dir`: `Ok(None)` if there is
/// none, `Ok(Some(None))` if it exists but neither slot is valid.
pub(crate) fn read(dir: &Path) -> Result<Option<Option<Progress>>> {
    let bytes = match std::fs::read(dir.join(PROGRESS_FILE)) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let slots = [0, SLOT_STRIDE as usize].map(|at| bytes.get(at..).and_then(decode_slot));
    Ok(Some(slots.into_iter().flatten().max_by_key(|p| p.commit)))
}

/// Replaces the progress file of `dir` with one holding `progress`, atomically:
/// a temporary file written and synced, renamed over, the directory synced.
pub(crate) fn create(dir: &Path, progress: Progress) -> Result<()> {
    let mut bytes = vec![0u8; FILE_LEN];
    let slot = encode_slot(progress);
    bytes[..SLOT_LEN].copy_from_slice(&slot);
    bytes[SLOT_STRIDE as usize..SLOT_STRIDE as usize + SLOT_LEN].copy_from_slice(&slot);
    let tmp = dir.join(format!("{PROGRESS_FILE}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(PROGRESS_FILE))?;
    sync_dir(dir)?;
    Ok(())
}

/// The mark a durable store leaves at each group commit.
pub(crate) struct Mark {
    file: File,
    meta: Tree,
    changes: Tree,
    /// The last commit before this process: flush `n` of this process is
    /// commit `base + n`.
    base: u64,
    /// The highest commit recorded in the file. Marks of pipelined flushes
    /// may arrive out of order; one already covered by a higher commit is
    /// not written (it would overwrite that commit's slot with less).
    recorded: Mutex<u64>,
}

impl Mark {
    /// Opens the progress file of `dir` (which must exist) to record commits
    /// numbered from `after + 1`.
    pub(crate) fn open(dir: &Path, after: u64, meta: Tree, changes: Tree) -> Result<Mark> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(PROGRESS_FILE))?;
        Ok(Mark {
            file,
            meta,
            changes,
            base: after,
            recorded: Mutex::new(after),
        })
    }

    /// Puts the mark of this process's flush `flush` into sled, before the
    /// flush: the flush then covers it and every write applied before it.
    pub(crate) fn stage(&self, flush: u64) -> Result<Progress> {
        let progress = Progress {
            commit: self.base + flush,
            last_change_seq: last_change_seq(&self.changes)?,
        };
        self.meta.insert(COMMIT_KEY, &progress.to_bytes())?;
        Ok(progress)
    }

    /// Records a staged mark once sled's flush and `fsync` succeeded.
    pub(crate) fn record(&self, progress: Progress) -> Result<()> {
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        if progress.commit <= *recorded {
            return Ok(());
        }
        let slot = encode_slot(progress);
        self.file
            .write_all_at(&slot, (progress.commit % 2) * SLOT_STRIDE)?;
        self.file.sync_data()?;
        *recorded = progress.commit;
        Ok(())
    }
}

/// The newest change log sequence number in `changes` (0: none).
pub(crate) fn last_change_seq(changes: &Tree) -> Result<u64> {
    match changes.last()? {
        Some((key, _)) => <[u8; 8]>::try_from(key.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("change log key".into())),
        None => Ok(0),
    }
}

/// What sled itself recovered: its copy of the mark and its change log.
pub(crate) fn recovered(meta: &Tree, changes: &Tree) -> Result<(Option<Progress>, u64)> {
    let staged = match meta.get(COMMIT_KEY)? {
        Some(bytes) => Some(Progress::from_bytes(&bytes).ok_or_else(|| {
            StoreError::Corrupt(format!("the store's commit mark ({COMMIT_KEY})"))
        })?),
        None => None,
    };
    Ok((staged, last_change_seq(changes)?))
}

/// Compares what sled recovered in `dir` with the progress file, creating
/// or resetting the file as needed; returns what was found and the number of
/// the last commit. Lost writes are an error unless `accept_loss`.
pub(crate) fn check(
    dir: &Path,
    meta: &Tree,
    changes: &Tree,
    accept_loss: bool,
) -> Result<(Recovery, u64)> {
    let (staged, last_change) = recovered(meta, changes)?;
    // sled's mark was staged before its flush: the commit it names may not
    // have completed, but every write of the commits before it did.
    let recovered = Progress {
        commit: staged.map_or(0, |p| p.commit),
        last_change_seq: last_change,
    };
    let recorded = read(dir)?;
    let loss = |recorded| LostWrites {
        path: dir.to_path_buf(),
        recorded,
        recovered,
    };
    match recorded {
        // A store this version never flushed: make its record now.
        None if staged.is_none() => {
            create(dir, recovered)?;
            Ok((Recovery::Created { recovered }, recovered.commit))
        }
        Some(Some(recorded)) if !recovered.is_behind(&recorded) => Ok((
            Recovery::Intact {
                recorded,
                recovered,
            },
            recovered.commit.max(recorded.commit),
        )),
        // Missing or damaged though sled has kept a mark, or behind it.
        recorded => {
            let lost = loss(recorded.flatten());
            if !accept_loss {
                return Err(StoreError::Lost(Box::new(lost)));
            }
            create(dir, recovered)?;
            Ok((Recovery::Lost(lost), recovered.commit))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_and_refuse_damage() {
        let progress = Progress {
            commit: 7,
            last_change_seq: 42,
        };
        let slot = encode_slot(progress);
        assert_eq!(decode_slot(&slot), Some(progress));
        for at in 0..SLOT_LEN {
            let mut bad = slot;
            bad[at] ^= 0x10;
            assert_eq!(decode_slot(&bad), None, "flip at {at}");
        }
        assert_eq!(decode_slot(&slot[..SLOT_LEN - 1]), None);
    }

    #[test]
    fn the_newest_valid_slot_wins() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        create(dir.path(), Progress::default()).unwrap();
        let db = sled::Config::new().temporary(true).open().unwrap();
        let mark = Mark::open(
            dir.path(),
            0,
            db.open_tree("meta").unwrap(),
            db.open_tree("changes").unwrap(),
        )
        .unwrap();
        for flush in 1..=3 {
            let staged = mark.stage(flush).unwrap();
            mark.record(staged).unwrap();
        }
        // A mark already covered by a higher one is not written.
        mark.record(Progress::default()).unwrap();
        let newest = Progress {
            commit: 3,
            last_change_seq: 0,
        };
        assert_eq!(read(dir.path()).unwrap(), Some(Some(newest)));
        // A torn write of the newest slot leaves the one before.
        let path = dir.path().join(PROGRESS_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SLOT_STRIDE as usize + 10] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().unwrap().commit, 2);
        bytes[10] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(None));
    }
}
