//! The write combiner: one thread applies the hot mutations in shared sled
//! transactions, another makes them durable.
//!
//! sled 0.34 makes every transaction and batch cost a forced log write: its
//! `pin_log` seals the current I/O buffer and writes it out, `sync_file_range`
//! included, under a global lock that excludes every other write. A server
//! that gives each create, update, delete and audit event its own transaction
//! therefore runs at the disk's pace whether or not it is durable
//! (~1,300 creates/s here, flushes off). So connection writes and audit
//! appends are queued to one writer thread that takes everything waiting (up
//! to [`MAX_BATCH`]) and applies it in one transaction: each write still
//! succeeds or fails on its own (its checks run inside the transaction, and
//! see the writes before it in the batch), but they share one `pin_log`.
//! Writes that must be durable then go to a flusher thread, which runs the
//! group commit of [`Durability`] while the writer applies the next batch.
//!
//! Order is kept: writes are applied in the order they were queued, and a
//! caller that waited for one write before queueing the next (an audit
//! `STARTED` event before its mutation) finds them in that order in the log.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use sled::Tree;
use sled::transaction::{
    TransactionError, Transactional as _, TransactionalTree, UnabortableTransactionError,
};

use crate::durability::Durability;
use crate::keys;
use crate::{Result, StoreError};

/// The most writes applied in one transaction: bounds the transaction's
/// memory and the latency of the writes queued behind it.
const MAX_BATCH: usize = 256;
/// How long the writer keeps gathering a batch once a second write is
/// waiting: under load more writers are about to arrive, and each batch
/// costs sled a forced log write; a lone write is applied at once.
const GATHER: std::time::Duration = std::time::Duration::from_micros(200);
/// Audit keyspace: `0x00 || seq` holds entries, `0x01 || tenant prefix || seq`
/// indexes them by tenant.
pub(crate) const AUDIT_ENTRY: u8 = 0x00;
pub(crate) const AUDIT_BY_TENANT: u8 = 0x01;

/// An audit entry to append, its keys already checked.
pub(crate) struct AuditBytes {
    pub(crate) tenant_prefix: Vec<u8>,
    pub(crate) tenant_id: String,
    pub(crate) value: Vec<u8>,
}

/// One mutation, its keys already built and checked by the caller. A
/// connection write may carry an audit entry, appended in the same
/// transaction if (and only if) the write succeeds.
pub(crate) enum Write {
    CreateConnection {
        audit: Option<AuditBytes>,
        tenant_key: Vec<u8>,
        key: Vec<u8>,
        name_key: Vec<u8>,
        id: Vec<u8>,
        stored: Vec<u8>,
    },
    UpdateConnection {
        audit: Option<AuditBytes>,
        tenant_id: String,
        key: Vec<u8>,
        id: Vec<u8>,
        display_name_key: String,
        new_name_key: Vec<u8>,
        stored: Vec<u8>,
        expected: Vec<u8>,
    },
    /// All or nothing; `keys` pairs each connection key with its id.
    DeleteConnections {
        audit: Option<AuditBytes>,
        tenant_id: String,
        keys: Vec<(Vec<u8>, String)>,
        expected: Option<Vec<u8>>,
    },
    AppendAudit(AuditBytes),
    /// Removes the audit entries with these sequence numbers (and their
    /// tenant index keys); entries already gone are skipped.
    DeleteAudit(Vec<u64>),
}

impl Write {
    /// The audit entry this write appends, if any.
    fn audit(&self) -> Option<&AuditBytes> {
        match self {
            Write::CreateConnection { audit, .. }
            | Write::UpdateConnection { audit, .. }
            | Write::DeleteConnections { audit, .. } => audit.as_ref(),
            Write::AppendAudit(audit) => Some(audit),
            Write::DeleteAudit(_) => None,
        }
    }
}

/// What a write returns.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Done {
    /// Connections deleted.
    pub(crate) count: usize,
    /// Sequence number of the audit entry appended.
    pub(crate) seq: Option<u64>,
}

enum Reply {
    Blocking(SyncSender<Result<Done>>),
    Async(tokio::sync::oneshot::Sender<Result<Done>>),
}

impl Reply {
    fn send(self, result: Result<Done>) {
        // A caller that stopped waiting (a cancelled request) is not an error:
        // the write happened or not regardless of who listens.
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(result);
            }
            Reply::Async(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

struct Job {
    write: Write,
    durable: bool,
    reply: Reply,
}

/// The trees the writer transacts over.
#[derive(Clone)]
pub(crate) struct Trees {
    pub(crate) tenants: Tree,
    pub(crate) connections: Tree,
    pub(crate) names: Tree,
    pub(crate) audit: Tree,
    pub(crate) cache: Tree,
}

/// A handle on the writer and flusher threads; dropping it drains the queue
/// and joins them.
pub(crate) struct Writer {
    queue: Option<Sender<Job>>,
    /// Transactions applied so far (each one batch of writes).
    batches: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

fn writer_gone() -> StoreError {
    StoreError::Backend("the store's writer thread has stopped".into())
}

impl Writer {
    /// Starts the writer and flusher threads.
    pub(crate) fn start(db: sled::Db, trees: Trees, durability: Arc<Durability>) -> Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let (to_flusher, flushes) = mpsc::channel::<Vec<(Reply, Result<Done>)>>();
        let flusher_db = db.clone();
        let flusher_durability = Arc::clone(&durability);
        let flusher = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || flush_loop(&flusher_db, &flusher_durability, &flushes))?;
        let batches = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&batches);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(&db, &trees, &jobs, &to_flusher, &counter))?;
        Ok(Self {
            queue: Some(queue),
            batches,
            threads: vec![writer, flusher],
        })
    }

    /// Transactions applied so far.
    pub(crate) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    fn submit(&self, write: Write, durable: bool, reply: Reply) -> bool {
        let job = Job {
            write,
            durable,
            reply,
        };
        self.queue
            .as_ref()
            .is_some_and(|queue| queue.send(job).is_ok())
    }

    /// Queues a write and blocks the calling thread until it is applied
    /// (and durable, with `durable`).
    pub(crate) fn write_blocking(&self, write: Write, durable: bool) -> Result<Done> {
        let (tx, rx) = mpsc::sync_channel(1);
        if !self.submit(write, durable, Reply::Blocking(tx)) {
            return Err(writer_gone());
        }
        rx.recv().map_err(|_| writer_gone())?
    }

    /// Queues a write and waits for it without blocking a thread.
    pub(crate) async fn write(&self, write: Write, durable: bool) -> Result<Done> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !self.submit(write, durable, Reply::Async(tx)) {
            return Err(writer_gone());
        }
        rx.await.map_err(|_| writer_gone())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the writer after it applied what is queued;
        // the writer's exit closes the flusher's queue in turn.
        self.queue = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn write_loop(
    db: &sled::Db,
    trees: &Trees,
    jobs: &Receiver<Job>,
    to_flusher: &Sender<Vec<(Reply, Result<Done>)>>,
    batches: &AtomicU64,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let gather_until = std::time::Instant::now() + GATHER;
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(mpsc::TryRecvError::Empty)
                    if batch.len() > 1 && std::time::Instant::now() < gather_until =>
                {
                    std::thread::yield_now();
                }
                Err(_) => break,
            }
        }
        let (writes, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|job| (job.write, (job.reply, job.durable)))
            .unzip();
        // sled can panic; a panic fails this batch, not the thread.
        let results = catch_unwind(AssertUnwindSafe(|| apply(db, trees, &writes)))
            .unwrap_or_else(|_| Err(StoreError::Backend("the store panicked in a write".into())));
        batches.fetch_add(1, Ordering::Relaxed);
        let results: Vec<Result<Done>> = match results {
            Ok(results) => sweep_caches(trees, &writes, results),
            Err(error) => {
                let message = error.to_string();
                writes
                    .iter()
                    .map(|_| Err(StoreError::Backend(message.clone())))
                    .collect()
            }
        };
        let mut to_flush = Vec::new();
        for ((reply, durable), result) in replies.into_iter().zip(results) {
            if durable && result.is_ok() {
                to_flush.push((reply, result));
            } else {
                reply.send(result);
            }
        }
        if !to_flush.is_empty() {
            if let Err(mpsc::SendError(unsent)) = to_flusher.send(to_flush) {
                for (reply, _) in unsent {
                    reply.send(Err(writer_gone()));
                }
            }
        }
    }
}

fn flush_loop(
    db: &sled::Db,
    durability: &Durability,
    flushes: &Receiver<Vec<(Reply, Result<Done>)>>,
) {
    while let Ok(mut waiting) = flushes.recv() {
        while let Ok(more) = flushes.try_recv() {
            waiting.extend(more);
        }
        let writes = waiting.len() as u64;
        let flushed = catch_unwind(AssertUnwindSafe(|| durability.wait_many(db, writes)))
            .unwrap_or_else(|_| Err(StoreError::Durability("flush panicked".into())));
        match flushed {
            Ok(()) => {
                for (reply, result) in waiting {
                    reply.send(result);
                }
            }
            Err(error) => {
                let message = error.to_string();
                for (reply, _) in waiting {
                    reply.send(Err(StoreError::Durability(message.clone())));
                }
            }
        }
    }
}

/// Removes the cache entries of the connections a batch deleted. A cache
/// entry needs its connection to be written, so none can appear after the
/// delete committed; the sweep runs before the batch is flushed.
fn sweep_caches(trees: &Trees, writes: &[Write], results: Vec<Result<Done>>) -> Vec<Result<Done>> {
    writes
        .iter()
        .zip(results)
        .map(|(write, result)| match (write, result) {
            (
                Write::DeleteConnections {
                    tenant_id, keys, ..
                },
                Ok(done),
            ) => {
                for (_, id) in keys {
                    keys::cache_prefix(tenant_id, id)
                        .and_then(|prefix| sweep_prefix(&trees.cache, &prefix))?;
                }
                Ok(done)
            }
            (_, result) => result,
        })
        .collect()
}

/// Removes every key under `prefix`; returns how many.
pub(crate) fn sweep_prefix(tree: &Tree, prefix: &[u8]) -> Result<usize> {
    let keys = tree
        .scan_prefix(prefix)
        .keys()
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Ok(0);
    }
    let mut batch = sled::Batch::default();
    for key in &keys {
        batch.remove(key);
    }
    tree.apply_batch(batch)?;
    Ok(keys.len())
}

/// Applies a batch in one transaction; the outer error fails every write.
fn apply(db: &sled::Db, trees: &Trees, writes: &[Write]) -> Result<Vec<Result<Done>>> {
    // Audit sequence numbers are taken before the transaction so a retried
    // transaction reuses them; sled's ids are monotonic across restarts.
    let audits = writes
        .iter()
        .map(|write| {
            write
                .audit()
                .map(|audit| Ok((audit, db.generate_id()? + 1)))
                .transpose()
        })
        .collect::<Result<Vec<Option<(&AuditBytes, u64)>>>>()?;
    (
        &trees.tenants,
        &trees.connections,
        &trees.names,
        &trees.audit,
    )
        .transaction(|(tenants, connections, names, audit)| {
            let tx = Tx {
                tenants,
                connections,
                names,
                audit,
            };
            let mut results = Vec::with_capacity(writes.len());
            for (write, entry) in writes.iter().zip(&audits) {
                let result = match tx.apply(write) {
                    Ok(mut done) => {
                        if let Some((audit, seq)) = entry {
                            tx.append_audit(audit, *seq)?;
                            done.seq = Some(*seq);
                        }
                        Ok(done)
                    }
                    Err(Failed::Write(error)) => Err(error),
                    Err(Failed::Transaction(error)) => return Err(error.into()),
                };
                results.push(result);
            }
            Ok(results)
        })
        .map_err(|error| match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => error.into(),
        })
}

/// Why one write inside the batch's transaction did not happen.
enum Failed {
    /// The write's own failure (a taken name, a stale value): nothing of it
    /// is written, the rest of the batch goes on.
    Write(StoreError),
    /// sled's: the whole transaction retries or fails.
    Transaction(UnabortableTransactionError),
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Failed::Write(error)
    }
}

impl From<UnabortableTransactionError> for Failed {
    fn from(error: UnabortableTransactionError) -> Self {
        Failed::Transaction(error)
    }
}

struct Tx<'a> {
    tenants: &'a TransactionalTree,
    connections: &'a TransactionalTree,
    names: &'a TransactionalTree,
    audit: &'a TransactionalTree,
}

impl Tx<'_> {
    /// Applies one write, checking everything before writing anything.
    fn apply(&self, write: &Write) -> std::result::Result<Done, Failed> {
        match write {
            Write::CreateConnection {
                audit: _,
                tenant_key,
                key,
                name_key,
                id,
                stored,
            } => {
                let tenant = self
                    .tenants
                    .get(tenant_key)?
                    .ok_or(StoreError::TenantNotFound)?;
                let (count, tenant_value) = keys::decode_tenant(&tenant)?;
                if self.connections.get(key)?.is_some() || self.names.get(name_key)?.is_some() {
                    return Err(StoreError::AlreadyExists.into());
                }
                let tenant = keys::encode_tenant(count + 1, tenant_value);
                self.connections.insert(key.as_slice(), stored.as_slice())?;
                self.names.insert(name_key.as_slice(), id.as_slice())?;
                self.tenants.insert(tenant_key.as_slice(), tenant)?;
                Ok(Done::default())
            }
            Write::UpdateConnection {
                audit: _,
                tenant_id,
                key,
                id,
                display_name_key,
                new_name_key,
                stored,
                expected,
            } => {
                let old = self.connections.get(key)?.ok_or(StoreError::NotFound)?;
                let (old_name, old_value) = keys::decode_connection(&old)?;
                if old_value != expected.as_slice() {
                    return Err(StoreError::Conflict.into());
                }
                if old_name != display_name_key {
                    if let Some(owner) = self.names.get(new_name_key)? {
                        if owner.as_ref() != id.as_slice() {
                            return Err(StoreError::AlreadyExists.into());
                        }
                    }
                    let old_name_key = keys::name_key(tenant_id, old_name)?;
                    self.names.remove(old_name_key)?;
                    self.names.insert(new_name_key.as_slice(), id.as_slice())?;
                }
                self.connections.insert(key.as_slice(), stored.as_slice())?;
                Ok(Done::default())
            }
            Write::DeleteConnections {
                audit: _,
                tenant_id,
                keys: connection_keys,
                expected,
            } => self.delete(tenant_id, connection_keys, expected.as_deref()),
            // The entry itself is the write's audit entry, appended by the caller.
            Write::AppendAudit(_) => Ok(Done::default()),
            Write::DeleteAudit(seqs) => self.delete_audit(seqs),
        }
    }

    fn append_audit(
        &self,
        audit: &AuditBytes,
        seq: u64,
    ) -> std::result::Result<(), UnabortableTransactionError> {
        let AuditBytes {
            tenant_prefix,
            tenant_id,
            value,
        } = audit;
        let mut entry = Vec::with_capacity(1 + tenant_id.len() + value.len());
        entry.push(tenant_prefix[0]);
        entry.extend_from_slice(tenant_id.as_bytes());
        entry.extend_from_slice(value);
        let mut index = Vec::with_capacity(1 + tenant_prefix.len() + 8);
        index.push(AUDIT_BY_TENANT);
        index.extend_from_slice(tenant_prefix);
        index.extend_from_slice(&seq.to_be_bytes());
        self.audit.insert(audit_entry_key(seq), entry)?;
        self.audit.insert(index, &[])?;
        Ok(())
    }

    fn delete_audit(&self, seqs: &[u64]) -> std::result::Result<Done, Failed> {
        // Read everything first: a write that fails leaves nothing behind.
        let mut found = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            let key = audit_entry_key(seq);
            let Some(entry) = self.audit.get(&key)? else {
                continue;
            };
            let mut index = vec![AUDIT_BY_TENANT];
            index.extend_from_slice(&keys::tenant_prefix(&crate::store::audit_entry_tenant(
                &entry,
            )?)?);
            index.extend_from_slice(&seq.to_be_bytes());
            found.push((key, index));
        }
        for (key, index) in &found {
            self.audit.remove(key.as_slice())?;
            self.audit.remove(index.as_slice())?;
        }
        Ok(Done {
            count: found.len(),
            seq: None,
        })
    }

    fn delete(
        &self,
        tenant_id: &str,
        connection_keys: &[(Vec<u8>, String)],
        expected: Option<&[u8]>,
    ) -> std::result::Result<Done, Failed> {
        // Check everything first: a write that fails leaves nothing behind.
        let mut found = Vec::with_capacity(connection_keys.len());
        for (key, id) in connection_keys {
            let old = self.connections.get(key)?.ok_or(StoreError::NotFound)?;
            let (name, value) = keys::decode_connection(&old)?;
            if expected.is_some_and(|expected| expected != value) {
                return Err(StoreError::Conflict.into());
            }
            found.push((key, id, keys::name_key(tenant_id, name)?));
        }
        let tenant_key = tenant_id.as_bytes();
        let tenant = self.tenants.get(tenant_key)?.ok_or_else(|| {
            StoreError::Corrupt(format!("connections of missing tenant {tenant_id:?}"))
        })?;
        let (count, tenant_value) = keys::decode_tenant(&tenant)?;
        for (key, id, name_key) in &found {
            self.connections.remove(key.as_slice())?;
            if self
                .names
                .get(name_key)?
                .is_some_and(|owner| owner.as_ref() == id.as_bytes())
            {
                self.names.remove(name_key.as_slice())?;
            }
        }
        let remaining = count.saturating_sub(found.len() as u64);
        self.tenants
            .insert(tenant_key, keys::encode_tenant(remaining, tenant_value))?;
        Ok(Done {
            count: found.len(),
            seq: None,
        })
    }
}

/// The key of audit entry `seq`.
pub(crate) fn audit_entry_key(seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(AUDIT_ENTRY);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}
