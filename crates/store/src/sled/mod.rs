//! The embedded backend: one sled 0.34 database in a data directory.
//!
//! Connection writes and audit appends go through one writer thread that
//! applies whatever is queued in a single transaction (each write still
//! checked on its own), because sled 0.34 forces a log write per transaction;
//! a flusher thread then makes the batch durable (sled's flush plus `fsync`,
//! shared between concurrent writers: group commit) while the next one is
//! applied. Reads answer from sled's page cache without blocking, so the
//! async traits run them inline; the other writes block on the flush and run
//! on tokio's blocking pool.

mod apply;
mod audit;
mod audit_entry;
mod backend;
mod change_entry;
mod check;
mod connections;
mod durability;
#[doc(hidden)]
pub mod fuzzing;
mod layout;
mod list;
mod meta_cache;
mod progress;
mod snapshot;
mod tenants;
mod upgrade;
mod write;
mod writer;

#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod tests;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{IVec, Tree};

use self::durability::Durability;
use self::write::{Done, Trees, Write};
use self::writer::Writer;
use crate::{Result, StoreError};

pub use check::{CheckCounts, StoreCheck, Visit};
pub use progress::{LostWrites, PROGRESS_FILE, Progress, Recovery};
pub use snapshot::{RESTORE_SKIPPED_META, RestoreEntry, SnapshotSink, SnapshotStart, restore};
pub use upgrade::LegacyConnection;

/// How to open a [`SledStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SledOptions {
    /// Whether mutating calls wait until their data is on disk (flush + fsync,
    /// shared between concurrent writers). Default `true`; `false` is for
    /// benchmarks and tests that do not measure durability.
    pub durable: bool,
    /// Capacity of sled's page cache in bytes (`None`: sled's default, 1 GiB).
    /// What the cache holds is what the store keeps in memory beyond the
    /// data being written.
    pub cache_bytes: Option<u64>,
    /// Open a store that lost acknowledged writes (its progress record says
    /// more was durable than sled recovered) instead of failing with
    /// [`StoreError::Lost`]: the record is reset to what sled holds and
    /// [`SledStore::recovery`] says what was lost. Default `false`.
    pub accept_loss: bool,
}

impl SledOptions {
    /// Sets [`SledOptions::durable`].
    pub fn with_durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Sets [`SledOptions::cache_bytes`].
    pub fn with_cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = Some(bytes);
        self
    }

    /// Sets [`SledOptions::accept_loss`].
    pub fn with_accept_loss(mut self, accept: bool) -> Self {
        self.accept_loss = accept;
        self
    }
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            durable: true,
            cache_bytes: None,
            accept_loss: false,
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(e) => StoreError::Io(e),
            sled::Error::Corruption { at, .. } => {
                StoreError::Corrupt(format!("sled reported corruption at {at:?}"))
            }
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// Abort a sled transaction with a store error.
fn abort<T>(e: StoreError) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Turns a store error raised inside a transaction closure into an abort.
trait OrAbort<T> {
    fn or_abort(self) -> std::result::Result<T, ConflictableTransactionError<StoreError>>;
}

impl<T> OrAbort<T> for Result<T> {
    fn or_abort(self) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
        self.map_err(ConflictableTransactionError::Abort)
    }
}

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

fn open_error(path: &Path, e: sled::Error) -> StoreError {
    match &e {
        sled::Error::Io(io)
            // sled 0.34 reports a held `flock` as an `Other` error whose
            // message says "could not acquire lock"; the errno is EWOULDBLOCK.
            if io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock") =>
        {
            StoreError::Locked {
                path: path.to_path_buf(),
            }
        }
        sled::Error::Io(_) => e.into(),
        // A damaged `conf` reads as "unsupported", a damaged snapshot or log
        // as corruption: either way sled cannot recover these files.
        _ => StoreError::Corrupt(format!(
            "sled cannot recover its files in {}: {e}",
            path.display()
        )),
    }
}

/// Range bounds covering every key that starts with `prefix` (a tenant
/// prefix, possibly extended), starting after `after` when given.
fn scoped_range(prefix: &[u8], after: Option<&[u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = match after {
        Some(after) => {
            let mut key = prefix.to_vec();
            key.extend_from_slice(after);
            Bound::Excluded(key)
        }
        None => Bound::Included(prefix.to_vec()),
    };
    (start, Bound::Excluded(layout::prefix_end(prefix)))
}

/// Every key starting with `prefix` (which need not end in `0x00`).
fn keys_with_prefix(tree: &Tree, prefix: &[u8]) -> Result<Vec<IVec>> {
    tree.scan_prefix(prefix)
        .keys()
        .map(|k| k.map_err(StoreError::from))
        .collect()
}

/// Tenants, connections, their unique-name index, a small meta keyspace, an
/// append-only audit log, a change log and a per-connection cache, in one
/// sled database.
///
/// A cheap handle: clones share the database. The traits of
/// [`crate::traits`] are its API; the few inherent methods are for tools
/// (statistics, the legacy upgrade, blocking writes for benchmarks).
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Declared first so it drops (and joins its threads, which hold the
    /// database) before the database does.
    writer: Writer,
    /// Whether writes wait for the disk ([`SledOptions::durable`]).
    durable: bool,
    path: PathBuf,
    db: sled::Db,
    tenants: Tree,
    connections: Tree,
    names: Tree,
    meta: Tree,
    audit: Tree,
    cache: Tree,
    changes: Tree,
    durability: Arc<Durability>,
    /// What the open found about the store's progress.
    recovery: Recovery,
    /// Held shared by every write, exclusively by a snapshot
    /// (`snapshot.rs`): a snapshot sees all of a write or none of it.
    gate: Gate,
}

/// The snapshot gate: every mutation of the trees holds it shared while it
/// applies (not while it waits for the disk); a snapshot holds it
/// exclusively while it reads every tree.
pub(crate) type Gate = Arc<std::sync::RwLock<()>>;

/// Holds `gate` shared. The guarded state is `()`: a panic elsewhere cannot
/// leave anything half-updated, so poisoning is ignored.
pub(crate) fn shared(gate: &Gate) -> std::sync::RwLockReadGuard<'_, ()> {
    gate.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in directory `path`.
    ///
    /// sled holds an exclusive lock on the directory: if another process has
    /// it open this fails at once with [`StoreError::Locked`]. A store that
    /// recovered to less than its progress record says was durable fails
    /// with [`StoreError::Lost`] unless [`SledOptions::accept_loss`].
    pub fn open(path: impl AsRef<Path>, options: SledOptions) -> Result<SledStore> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path)?;
        let mut config = sled::Config::new().path(&path);
        if let Some(bytes) = options.cache_bytes {
            config = config.cache_capacity(bytes);
        }
        // sled's recovery can panic on damaged files: that is a refusal too.
        let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
            .map_err(|_| {
                StoreError::Corrupt(format!(
                    "sled panicked while recovering its files in {}",
                    path.display()
                ))
            })?
            .map_err(|e| open_error(&path, e))?;
        let meta = db.open_tree("meta")?;
        let changes = db.open_tree("changes")?;
        // Before anything is written: a store that lost acknowledged writes
        // is refused while the evidence is intact.
        let (recovery, last_commit) = progress::check(&path, &meta, &changes, options.accept_loss)?;
        let mark = if options.durable {
            Some(progress::Mark::open(
                &path,
                last_commit,
                meta.clone(),
                changes.clone(),
            )?)
        } else {
            None
        };
        let durability = Arc::new(Durability::new(&path, mark)?);
        let trees = Trees {
            tenants: db.open_tree("tenants")?,
            connections: db.open_tree("connections")?,
            names: db.open_tree("names")?,
            audit: db.open_tree("audit")?,
            cache: db.open_tree("cache")?,
            changes,
        };
        let gate = Gate::default();
        let writer = Writer::start(
            db.clone(),
            trees.clone(),
            Arc::clone(&durability),
            Arc::clone(&gate),
        )?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                writer,
                durable: options.durable,
                tenants: trees.tenants,
                connections: trees.connections,
                names: trees.names,
                meta,
                audit: trees.audit,
                cache: trees.cache,
                changes: trees.changes,
                db,
                durability,
                recovery,
                path,
                gate,
            }),
        })
    }

    /// What opening the store found about its progress: intact, created
    /// now, or (with [`SledOptions::accept_loss`]) what was lost.
    pub fn recovery(&self) -> &Recovery {
        &self.inner.recovery
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Flushes run so far (each a sled flush plus fsync).
    pub fn flushes(&self) -> u64 {
        self.inner.durability.flushes()
    }

    /// Writes acknowledged as durable so far; `durable_writes() / flushes()`
    /// is the group-commit batch size.
    pub fn durable_writes(&self) -> u64 {
        self.inner.durability.durable_writes()
    }

    /// Transactions the writer has applied so far; each carries every
    /// connection write and audit append that was queued when it started, so
    /// `writes / write_batches()` is the batch size.
    pub fn write_batches(&self) -> u64 {
        self.inner.writer.batches()
    }

    /// Holds the snapshot gate shared for one write (see [`Gate`]).
    pub(crate) fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        shared(&self.inner.gate)
    }

    /// Waits until the calling thread's completed writes are durable.
    fn durable(&self) -> Result<()> {
        self.inner.durability.wait(&self.inner.db)
    }

    /// Queues a write and blocks until it is applied (and durable with `durable`).
    fn write_blocking(&self, write: Write, durable: bool) -> Result<Done> {
        self.inner.writer.write_blocking(write, durable)
    }

    /// Queues a write and waits for it without blocking a thread.
    async fn write(&self, write: Write, durable: bool) -> Result<Done> {
        self.inner.writer.write(write, durable).await
    }

    /// Runs a blocking operation (one that waits for a flush) on tokio's
    /// blocking pool.
    async fn blocking<T, F>(&self, operation: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&SledStore) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || operation(&store))
            .await
            .map_err(|error| StoreError::Backend(format!("store task failed: {error}")))?
    }
}
