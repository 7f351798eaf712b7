//! Group commit: make writes durable with one flush for many writers.
//!
//! sled 0.34's `flush()` writes its log and calls `sync_file_range`, which
//! survives a process kill but not a power cut (no `fsync`, the directory never
//! synced; sled issues #1351 and #1452). A durable write therefore needs
//! `flush()` followed by an `fsync` of the log file (and of new blob files and
//! the directories that name them). That costs a disk round trip, so it is
//! shared: a writer that finished its write registers; if no flush is running
//! it becomes the flusher, otherwise it waits. A flush covers exactly the
//! writers that registered before it *started*, so writers arriving while one
//! flush runs are all acknowledged by the next one.
//!
//! Each flush also leaves the store's high-water mark (`progress.rs`): in
//! sled before the flush, in the progress file after the `fsync`; a write is
//! acknowledged only once a mark covering it is on disk. The store's flusher
//! thread runs the two stages as a pipeline ([`Durability::begin`] then,
//! on another thread, [`Durability::finish`]): the mark of one group commit
//! is written while sled flushes the next.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::progress::{Mark, Progress};
use crate::{Result, StoreError};

/// Files whose `fsync` completes sled's flush.
struct SyncFiles {
    dir: PathBuf,
    /// A second handle on sled's log file `db`. `fsync` applies to the inode,
    /// so syncing through our handle persists sled's writes. (sled's lock is a
    /// `flock` on its own open file description; this handle does not touch it.)
    log: File,
    /// Blob files already synced; sled writes values too large for its log as
    /// separate files under `blobs/` without syncing them.
    synced_blobs: Mutex<HashSet<OsString>>,
    /// The high-water mark each flush leaves in sled and in the progress file.
    mark: Mark,
}

#[derive(Default)]
struct State {
    /// Number of flushes started; the running or last flush has this number.
    started: u64,
    /// The highest flush whose sled part is done (its mark may be pending).
    synced: u64,
    /// The highest finished flush (sled and mark, or failed).
    completed: u64,
    /// The highest flush that succeeded, mark included.
    last_ok: u64,
    /// Whether a flush's sled part is running (one at a time).
    flushing: bool,
    /// Set by the first failed flush. After a failed `fsync` the kernel may
    /// have dropped dirty pages and a retry can falsely succeed (PostgreSQL's
    /// "fsyncgate"), so every later durable write fails until restart.
    failed: Option<String>,
}

/// The group-commit coordinator of one store.
pub(crate) struct Durability {
    files: Option<SyncFiles>,
    state: Mutex<State>,
    flushed: Condvar,
    flushes: AtomicU64,
    durable_writes: AtomicU64,
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

impl Durability {
    /// `mark == None` (a store that is not durable) makes
    /// [`Durability::wait`] a no-op (benchmarks only).
    pub(crate) fn new(dir: &Path, mark: Option<Mark>) -> Result<Self> {
        let files = if let Some(mark) = mark {
            let log = File::open(dir.join("db"))?;
            // Make the files sled created at open, and their names, durable.
            log.sync_all()?;
            if let Ok(conf) = File::open(dir.join("conf")) {
                conf.sync_all()?;
            }
            sync_dir(&dir.join("blobs"))?;
            sync_dir(dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
            Some(SyncFiles {
                dir: dir.to_path_buf(),
                log,
                synced_blobs: Mutex::new(HashSet::new()),
                mark,
            })
        } else {
            None
        };
        Ok(Self {
            files,
            state: Mutex::new(State::default()),
            flushed: Condvar::new(),
            flushes: AtomicU64::new(0),
            durable_writes: AtomicU64::new(0),
        })
    }

    /// Number of flushes (sled flush + fsync) run so far.
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Number of writes acknowledged as durable so far.
    pub(crate) fn durable_writes(&self) -> u64 {
        self.durable_writes.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain counters, always consistent between statements:
        // a panic elsewhere cannot leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once every write this thread completed before the call is
    /// durable. Call it after the write, never while holding a lock a flusher
    /// could need.
    pub(crate) fn wait(&self, db: &sled::Db) -> Result<()> {
        self.wait_many(db, 1)
    }

    /// [`Durability::wait`] on behalf of `writes` writes completed before the
    /// call.
    pub(crate) fn wait_many(&self, db: &sled::Db, writes: u64) -> Result<()> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        let mut state = self.lock();
        // A flush that starts from now on covers our write; one already
        // running may have started before our write finished.
        let target = state.started + 1;
        loop {
            if let Some(failed) = &state.failed {
                return Err(StoreError::Durability(failed.clone()));
            }
            if state.completed >= target {
                // Every flush is of the whole database: any successful flush
                // numbered `target` or later covers us.
                if state.last_ok >= target {
                    self.durable_writes.fetch_add(writes, Ordering::Relaxed);
                    return Ok(());
                }
                continue; // `failed` is set: report it above.
            }
            if state.flushing || state.synced >= target {
                // A flush covering us (or one we must not overlap) is
                // running, or its mark is being written.
                state = self
                    .flushed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Become the flusher, and write the mark too.
            let (number, mut stage) = self.start(state);
            stage.result = self.flush_sled(db, files, number);
            let mut finish = Finish {
                durability: self,
                number,
                result: Err("the flush panicked".to_owned()),
            };
            finish.result = match stage.finish() {
                Ok(progress) => files.mark.record(progress).map_err(|e| e.to_string()),
                Err(error) => Err(error),
            };
            drop(finish);
            state = self.lock();
        }
    }

    /// Starts flush `number`: marks the sled part running.
    fn start<'a>(&'a self, mut state: MutexGuard<'a, State>) -> (u64, Stage<'a>) {
        state.flushing = true;
        state.started += 1;
        let number = state.started;
        drop(state);
        let stage = Stage {
            durability: self,
            number,
            result: Err("the flush panicked".to_owned()),
            done: false,
        };
        (number, stage)
    }

    /// The first stage of a pipelined group commit (the store's flusher
    /// thread): waits for the running flush's sled part, then flushes sled
    /// and `fsync`s, covering every write completed before the call. The
    /// next `begin` may run while [`Durability::finish`] writes this one's mark.
    pub(crate) fn begin(&self, db: &sled::Db) -> Ticket {
        let Some(files) = &self.files else {
            return Ticket::NotDurable;
        };
        let mut state = self.lock();
        while state.flushing && state.failed.is_none() {
            state = self
                .flushed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if let Some(failed) = &state.failed {
            return Ticket::Failed(failed.clone());
        }
        let (number, mut stage) = self.start(state);
        stage.result = self.flush_sled(db, files, number);
        match stage.finish() {
            Ok(progress) => Ticket::Synced { number, progress },
            Err(error) => Ticket::Failed(error),
        }
    }

    /// The second stage: writes the mark of a [`Durability::begin`], then
    /// publishes the flush; `Ok` once the `writes` it covers are durable.
    pub(crate) fn finish(&self, ticket: Ticket, writes: u64) -> Result<()> {
        let (Some(files), Ticket::Synced { number, progress }) = (&self.files, &ticket) else {
            return match ticket {
                Ticket::Failed(error) => Err(StoreError::Durability(error)),
                _ => Ok(()),
            };
        };
        let mut finish = Finish {
            durability: self,
            number: *number,
            result: Err("writing the progress record panicked".to_owned()),
        };
        finish.result = files.mark.record(*progress).map_err(|e| e.to_string());
        let result = finish.result.clone();
        drop(finish);
        match result {
            Ok(()) => {
                self.durable_writes.fetch_add(writes, Ordering::Relaxed);
                Ok(())
            }
            Err(_) => {
                let failed = self.lock().failed.clone().unwrap_or_default();
                Err(StoreError::Durability(failed))
            }
        }
    }

    /// sled's part of flush `number`: the mark staged in sled after every
    /// write the flush covers, sled's flush, the `fsync`s.
    fn flush_sled(
        &self,
        db: &sled::Db,
        files: &SyncFiles,
        number: u64,
    ) -> std::result::Result<Progress, String> {
        let flush = || -> Result<Progress> {
            let progress = files.mark.stage(number)?;
            db.flush()?;
            files.log.sync_all()?;
            self.sync_new_blobs(files)?;
            self.flushes.fetch_add(1, Ordering::Relaxed);
            Ok(progress)
        };
        flush().map_err(|e| e.to_string())
    }

    fn sync_new_blobs(&self, files: &SyncFiles) -> Result<()> {
        let blobs = files.dir.join("blobs");
        let mut synced = files
            .synced_blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut present = HashSet::new();
        let mut new = false;
        for entry in std::fs::read_dir(&blobs)? {
            let entry = entry?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                match File::open(entry.path()) {
                    Ok(file) => file.sync_all()?,
                    // sled garbage-collected it meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                new = true;
            }
            present.insert(name);
        }
        if new {
            sync_dir(&blobs)?;
        }
        *synced = present;
        Ok(())
    }
}

/// A pipelined flush whose sled part is done: the mark is still to write.
pub(crate) enum Ticket {
    /// The store is not durable: nothing to wait for.
    NotDurable,
    /// The flush (or an earlier one) failed.
    Failed(String),
    /// sled's part of flush `number` is on disk.
    Synced {
        /// The flush.
        number: u64,
        /// The mark to record.
        progress: Progress,
    },
}

/// Ends the sled part of a flush: lets the next flush start, and publishes a
/// failure at once (also if sled panicked), so no writer waits forever.
struct Stage<'a> {
    durability: &'a Durability,
    number: u64,
    result: std::result::Result<Progress, String>,
    done: bool,
}

impl Stage<'_> {
    fn finish(mut self) -> std::result::Result<Progress, String> {
        self.done = true;
        self.result.clone()
    }
}

impl Drop for Stage<'_> {
    fn drop(&mut self) {
        let mut state = self.durability.lock();
        state.flushing = false;
        let result = if self.done {
            self.result.clone()
        } else {
            Err("the flush panicked".to_owned())
        };
        match result {
            Ok(_) => state.synced = state.synced.max(self.number),
            Err(e) => {
                state.completed = state.completed.max(self.number);
                if state.failed.is_none() {
                    state.failed = Some(format!("flush to disk failed: {e}"));
                }
            }
        }
        drop(state);
        self.durability.flushed.notify_all();
    }
}

/// Publishes a flush's outcome once its mark is written (or failed) and
/// wakes the waiters, also if writing the mark panicked.
struct Finish<'a> {
    durability: &'a Durability,
    number: u64,
    result: std::result::Result<(), String>,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let mut state = self.durability.lock();
        state.completed = state.completed.max(self.number);
        match &self.result {
            Ok(()) => state.last_ok = state.last_ok.max(self.number),
            Err(e) => {
                if state.failed.is_none() {
                    state.failed = Some(format!("flush to disk failed: {e}"));
                }
            }
        }
        drop(state);
        self.durability.flushed.notify_all();
    }
}
