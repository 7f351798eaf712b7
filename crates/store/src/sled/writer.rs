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
//! group commit of [`Durability`] while the writer applies the next batch,
//! and a marker thread, which writes each commit's high-water mark and
//! answers while the flusher flushes the next.
//!
//! Order is kept: writes are applied in the order they were queued, and a
//! caller that waited for one write before queueing the next (an audit
//! `STARTED` event before its mutation) finds them in that order in the log.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use super::apply::{apply, sweep_caches};
use super::durability::{Durability, Ticket};
use super::write::{Done, Trees, Write};
use super::{Gate, shared};
use crate::{Result, StoreError};

/// The most writes applied in one transaction: bounds the transaction's
/// memory and the latency of the writes queued behind it.
const MAX_BATCH: usize = 256;
/// How long the writer keeps gathering a batch once a second write is
/// waiting: under load more writers are about to arrive, and each batch
/// costs sled a forced log write; a lone write is applied at once.
const GATHER: std::time::Duration = std::time::Duration::from_micros(200);

pub(crate) enum Reply {
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

/// Applied writes waiting to be durable, with their answers.
type Waiting = Vec<(Reply, Result<Done>)>;

struct Job {
    write: Write,
    durable: bool,
    reply: Reply,
}

/// A handle on the writer and flusher threads; dropping it drains the queue
/// and joins them.
pub(crate) struct Writer {
    queue: Option<Sender<Job>>,
    /// Transactions applied so far (each one batch of writes).
    batches: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

pub(crate) fn writer_gone() -> StoreError {
    StoreError::Backend("the store's writer thread has stopped".into())
}

impl Writer {
    /// Starts the writer and flusher threads.
    pub(crate) fn start(
        db: sled::Db,
        trees: Trees,
        durability: Arc<Durability>,
        gate: Gate,
    ) -> Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let (to_flusher, flushes) = mpsc::channel::<Waiting>();
        let (to_marker, marks) = mpsc::channel::<(Ticket, Waiting)>();
        let flusher_db = db.clone();
        let flusher_durability = Arc::clone(&durability);
        let flusher = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || flush_loop(&flusher_db, &flusher_durability, &flushes, &to_marker))?;
        let marker = std::thread::Builder::new()
            .name("store-marker".into())
            .spawn(move || mark_loop(&durability, &marks))?;
        let batches = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&batches);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(&db, &trees, &gate, &jobs, &to_flusher, &counter))?;
        Ok(Self {
            queue: Some(queue),
            batches,
            threads: vec![writer, flusher, marker],
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
    gate: &Gate,
    jobs: &Receiver<Job>,
    to_flusher: &Sender<Waiting>,
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
        // A snapshot waits for the batch being applied and holds the next
        // one back until it has read every tree.
        let held = shared(gate);
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
        drop(held);
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

/// The first stage of each group commit: sled's flush and `fsync` for every
/// write waiting; the marker thread writes the mark and answers while this
/// thread flushes the next batch. (Marking inline when nothing else waits
/// saved a lone writer a thread hop but lost the overlap under load, where
/// the next batch is often queued a moment after the flush returns.)
fn flush_loop(
    db: &sled::Db,
    durability: &Durability,
    flushes: &Receiver<Waiting>,
    to_marker: &Sender<(Ticket, Waiting)>,
) {
    while let Ok(mut waiting) = flushes.recv() {
        while let Ok(more) = flushes.try_recv() {
            waiting.extend(more);
        }
        let ticket = catch_unwind(AssertUnwindSafe(|| durability.begin(db)))
            .unwrap_or_else(|_| Ticket::Failed("flush panicked".into()));
        if let Err(mpsc::SendError((_, unsent))) = to_marker.send((ticket, waiting)) {
            for (reply, _) in unsent {
                reply.send(Err(writer_gone()));
            }
        }
    }
}

/// The second stage: the mark of each flushed batch, then the answers.
fn mark_loop(durability: &Durability, marks: &Receiver<(Ticket, Waiting)>) {
    while let Ok((ticket, waiting)) = marks.recv() {
        answer(durability, ticket, waiting);
    }
}

/// Writes a flushed commit's mark, then answers its writes.
fn answer(durability: &Durability, ticket: Ticket, waiting: Waiting) {
    let writes = waiting.len() as u64;
    let marked = catch_unwind(AssertUnwindSafe(|| durability.finish(ticket, writes)))
        .unwrap_or_else(|_| Err(StoreError::Durability("writing the mark panicked".into())));
    match marked {
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
