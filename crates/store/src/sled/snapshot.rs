//! Consistent snapshots of a running store, and restoring one into a new
//! directory.
//!
//! sled 0.34 has no read snapshots (its iterators see concurrent writes, and
//! its transactions cannot scan), so consistency comes from the store's own
//! write paths: every mutation holds the snapshot gate shared while it
//! applies (the writer thread for each batch of connection writes and audit
//! appends; tenant, meta and cache writes for their own transaction), and
//! [`SledStore::snapshot`] holds it exclusively while it reads every tree.
//! The snapshot point is the moment it takes the gate: every write
//! acknowledged before then was applied before then, so it is in the
//! snapshot, and no write is half in it. Writes queue meanwhile (the
//! snapshot should therefore spool to fast local storage, not to a slow
//! reader) and go on once it is read. Before it returns, the snapshot waits
//! for a group commit, so everything it holds is durable in the store too.
//!
//! Sequence numbers (change log, audit log) come from sled's id generator,
//! which lives outside the trees: the snapshot records the next free id and
//! [`restore`] moves the new store's generator past it.

use std::collections::HashMap;
use std::path::Path;

use super::progress::COMMIT_KEY;
use super::{Progress, SledOptions, SledStore};
use crate::{Result, StoreError};

/// The meta entry a snapshot leaves out: sled's copy of the progress mark
/// belongs to the store it was taken from (a restored store starts its own).
pub const RESTORE_SKIPPED_META: &str = COMMIT_KEY;

/// The meta tree's name.
const META_TREE: &[u8] = b"meta";
/// How long [`restore`] waits for sled to let go of a directory it just
/// closed (its background threads hold the file lock a moment longer).
const REOPEN_ATTEMPTS: usize = 200;
const REOPEN_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
/// sled 0.34's default `idgen_persist_interval`, which the store opens with.
const SLED_IDGEN_INTERVAL: u64 = 1_000_000;
/// Far above any real store's ids; keeps the arithmetic below from overflowing.
const MAX_NEXT_ID: u64 = 1 << 60;

/// What a snapshot starts with, read at the snapshot point.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotStart {
    /// Every sequence number the store handed out is below this.
    pub next_id: u64,
    /// The newest change log sequence number at the snapshot point.
    pub last_change_seq: u64,
}

/// Where a snapshot goes: called on the snapshotting thread while writes are
/// held off, so it should be quick (spool to a local file).
pub trait SnapshotSink {
    /// The snapshot point was taken; entries follow.
    fn begin(&mut self, start: &SnapshotStart) -> Result<()>;
    /// One entry of tree `tree`, in tree order then key order.
    fn entry(&mut self, tree: &[u8], key: &[u8], value: &[u8]) -> Result<()>;
}

impl SledStore {
    /// Takes a consistent snapshot of every tree into `sink` while the store
    /// keeps serving (see the module documentation); returns what it
    /// started from once everything in it is durable.
    pub fn snapshot(&self, sink: &mut dyn SnapshotSink) -> Result<SnapshotStart> {
        let inner = &self.inner;
        let exclusive = inner
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Every id handed out so far is below this one (ids are taken under
        // the gate, by the writes it holds off).
        let next_id = inner.db.generate_id()?.saturating_add(1);
        let start = SnapshotStart {
            next_id,
            last_change_seq: super::progress::last_change_seq(&inner.changes)?,
        };
        sink.begin(&start)?;
        let mut names = inner.db.tree_names();
        names.sort();
        for name in names {
            let tree = inner.db.open_tree(&name)?;
            for entry in tree.iter() {
                let (key, value) = entry?;
                if name == META_TREE && key == COMMIT_KEY.as_bytes() {
                    continue;
                }
                sink.entry(&name, &key, &value)?;
            }
        }
        drop(exclusive);
        self.durable()?;
        Ok(start)
    }
}

/// One entry to restore: tree name, key, value.
pub type RestoreEntry = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Builds a new store in directory `path` (which must be absent or empty)
/// from a snapshot's entries, moves its id generator past `next_id`, and
/// creates its progress record; returns what the new store holds. On error
/// the caller removes the directory.
pub fn restore(
    path: &Path,
    next_id: u64,
    entries: &mut dyn Iterator<Item = Result<RestoreEntry>>,
) -> Result<Progress> {
    if next_id > MAX_NEXT_ID {
        return Err(StoreError::InvalidArgument(format!(
            "next id {next_id} is over {MAX_NEXT_ID}"
        )));
    }
    if std::fs::read_dir(path).is_ok_and(|mut dir| dir.next().is_some()) {
        return Err(StoreError::InvalidArgument(format!(
            "{} is not empty",
            path.display()
        )));
    }
    std::fs::create_dir_all(path)?;
    {
        let db = sled::Config::new().path(path).open()?;
        let mut trees: HashMap<Vec<u8>, sled::Tree> = HashMap::new();
        for entry in entries {
            let (tree, key, value) = entry?;
            if tree == META_TREE && key == COMMIT_KEY.as_bytes() {
                continue;
            }
            let tree = match trees.get(&tree) {
                Some(tree) => tree,
                None => {
                    let opened = db.open_tree(&tree)?;
                    trees.entry(tree).or_insert(opened)
                }
            };
            tree.insert(key, value)?;
        }
        db.flush()?;
    }
    advance_ids(path, next_id)?;
    let store = reopen(path, SledOptions::default())?;
    let recovered = store.recovery().recovered();
    drop(store);
    Ok(recovered)
}

/// sled keeps its id generator's state in a counter it persists every
/// `idgen_persist_interval` ids and, on reopening, resumes at the counter
/// plus twice the interval. Reopening once with the interval set to `I`
/// (`next_id` rounded up to a multiple of sled's default interval, which
/// every later open uses and whose multiples sled expects the counter to
/// be) therefore resumes at `2 * I`; the first id taken then persists that
/// counter, so every later open resumes above it. Checked, with a plain
/// loop as the fallback.
fn advance_ids(path: &Path, next_id: u64) -> Result<()> {
    let interval = next_id.div_ceil(SLED_IDGEN_INTERVAL).max(1) * SLED_IDGEN_INTERVAL;
    let db = reopen_raw(path, interval)?;
    let mut id = db.generate_id()?;
    while id < next_id {
        id = db.generate_id()?;
    }
    db.flush()?;
    Ok(())
}

fn reopen_raw(path: &Path, idgen_interval: u64) -> Result<sled::Db> {
    let config = sled::Config::new()
        .path(path)
        .idgen_persist_interval(idgen_interval);
    retry_locked(path, || Ok(config.open()?))
}

fn reopen(path: &Path, options: SledOptions) -> Result<SledStore> {
    retry_locked(path, || SledStore::open(path, options.clone()))
}

/// Runs `open` until sled's lock on a directory this process just closed is
/// released (bounded).
fn retry_locked<T>(path: &Path, mut open: impl FnMut() -> Result<T>) -> Result<T> {
    for _ in 0..REOPEN_ATTEMPTS {
        match open() {
            Err(StoreError::Locked { .. }) => std::thread::sleep(REOPEN_PAUSE),
            Err(StoreError::Io(error)) if error.to_string().contains("could not acquire lock") => {
                std::thread::sleep(REOPEN_PAUSE)
            }
            other => return other,
        }
    }
    Err(StoreError::Locked {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ChangeLog as _, ConnectionIndex, ConnectionRecord, ConnectionStore as _, MetaStore as _,
        TenantRecord, TenantStore as _,
    };

    #[derive(Default)]
    struct Collect {
        start: Option<SnapshotStart>,
        entries: Vec<RestoreEntry>,
    }

    impl SnapshotSink for Collect {
        fn begin(&mut self, start: &SnapshotStart) -> Result<()> {
            self.start = Some(start.clone());
            Ok(())
        }
        fn entry(&mut self, tree: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
            self.entries
                .push((tree.to_vec(), key.to_vec(), value.to_vec()));
            Ok(())
        }
    }

    fn record(tenant: &str, n: usize) -> ConnectionRecord {
        ConnectionRecord {
            tenant_id: tenant.into(),
            id: format!("0190c0de-0000-7000-8000-{n:012}"),
            display_name_key: format!("c{n}"),
            index: ConnectionIndex {
                data_source: "postgresql".into(),
                ..Default::default()
            },
            revision: 0,
            value: format!("value {n}").into_bytes(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_taken_under_writes_restores_every_acknowledged_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path().join("a"), SledOptions::default()).unwrap();
        store
            .create_tenant(&TenantRecord {
                tenant_id: "t".into(),
                value: b"tenant".to_vec(),
            })
            .await
            .unwrap();
        store.put_meta("keyring/x", b"opaque").await.unwrap();
        // Writers keep creating while the snapshot runs; each records what
        // was acknowledged before the snapshot started.
        let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..3 {
            let (store, acknowledged, stop) = (store.clone(), acknowledged.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut n = w * 100_000;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store
                        .create_connection(&record("t", n), None)
                        .await
                        .unwrap();
                    acknowledged.lock().unwrap().push(n);
                    n += 1;
                }
            }));
        }
        while acknowledged.lock().unwrap().len() < 60 {
            tokio::task::yield_now().await;
        }
        let before: Vec<usize> = acknowledged.lock().unwrap().clone();
        let snapshotting = store.clone();
        let collected = tokio::task::spawn_blocking(move || {
            let mut sink = Collect::default();
            snapshotting.snapshot(&mut sink).map(|_| sink)
        })
        .await
        .unwrap()
        .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for writer in writers {
            writer.await.unwrap();
        }
        let start = collected.start.clone().unwrap();
        assert!(
            !collected
                .entries
                .iter()
                .any(|(tree, key, _)| tree == META_TREE && key == COMMIT_KEY.as_bytes())
        );
        let restored_dir = dir.path().join("b");
        let mut entries = collected.entries.into_iter().map(Ok);
        let progress = restore(&restored_dir, start.next_id, &mut entries).unwrap();
        assert_eq!(progress.last_change_seq, start.last_change_seq);
        let restored = reopen(&restored_dir, SledOptions::default()).unwrap();
        for n in &before {
            let got = restored.get_connection("t", &record("t", *n).id).await;
            assert_eq!(got.unwrap().value, record("t", *n).value, "connection {n}");
        }
        let count = restored.tenant_connection_count("t").await.unwrap();
        let listed = restored.inner.connections.len() as u64;
        assert_eq!(
            count, listed,
            "the tenant's counter matches its connections"
        );
        assert!(count >= before.len() as u64);
        assert_eq!(
            restored.get_meta("keyring/x").await.unwrap().as_deref(),
            Some(&b"opaque"[..])
        );
        assert_eq!(
            restored.check(&mut |_| {}).unwrap().problems,
            Vec::<String>::new()
        );
        // New writes take sequence numbers above everything restored.
        let last = restored.last_change_seq().await.unwrap();
        restored
            .create_connection(&record("t", 999_999), None)
            .await
            .unwrap();
        assert!(restored.last_change_seq().await.unwrap() > last);
        assert!(restored.inner.db.generate_id().unwrap() >= start.next_id);
        // And again after another restart (sled resumes from its counter).
        drop(restored);
        let again = reopen(&restored_dir, SledOptions::default()).unwrap();
        again
            .create_connection(&record("t", 999_998), None)
            .await
            .unwrap();
        assert!(again.inner.db.generate_id().unwrap() >= start.next_id);
    }

    #[test]
    fn restore_refuses_a_directory_that_is_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        let error = restore(dir.path(), 1, &mut std::iter::empty()).unwrap_err();
        assert!(error.to_string().contains("not empty"), "{error}");
    }
}
