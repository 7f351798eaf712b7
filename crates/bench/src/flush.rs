//! The cost of a durable write, measured on the store alone: one writer pays a
//! full flush + fsync per write; concurrent writers share flushes (group commit).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use connvault_store::sled::{SledOptions, SledStore};
use connvault_store::{ConnectionIndex, ConnectionRecord, TenantRecord};
use serde::{Deserialize, Serialize};

/// What a durable write costs on this disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlushReport {
    /// Sequential durable creates measured.
    pub sequential_writes: usize,
    /// Their mean latency (a flush + fsync each), µs.
    pub sequential_mean_us: f64,
    /// Mean latency of the same create with durability off, µs.
    pub non_durable_mean_us: f64,
    /// Concurrent writer threads.
    pub writers: usize,
    /// Durable creates per second with that many writers.
    pub concurrent_rps: f64,
    /// Writes acknowledged per flush with that many writers (group-commit batch).
    pub writes_per_flush: f64,
}

fn record(id: String, name: String) -> ConnectionRecord {
    ConnectionRecord {
        tenant_id: "flush".into(),
        id,
        display_name_key: name,
        index: ConnectionIndex {
            data_source: "postgresql".into(),
            ..ConnectionIndex::default()
        },
        revision: 0,
        value: vec![0x5a; 700],
    }
}

fn open(dir: &Path, durable: bool) -> anyhow::Result<SledStore> {
    let store = SledStore::open(dir, SledOptions::default().with_durable(durable))
        .context("opening a scratch store")?;
    store.create_tenant_blocking(&TenantRecord {
        tenant_id: "flush".into(),
        value: Vec::new(),
    })?;
    Ok(store)
}

/// Measures in a scratch store under `dir` (use the disk the data lives on).
pub fn measure(dir: &Path, writes: usize, writers: usize) -> anyhow::Result<FlushReport> {
    let scratch = tempfile::tempdir_in(dir).context("scratch dir for the flush measurement")?;
    let mut means = [0.0f64; 2];
    for (slot, durable) in [(0, true), (1, false)] {
        let store = open(&scratch.path().join(format!("seq-{durable}")), durable)?;
        let started = Instant::now();
        for i in 0..writes {
            store.create_connection_blocking(&record(format!("{i:012}"), format!("seq {i}")))?;
        }
        means[slot] = started.elapsed().as_secs_f64() * 1e6 / writes.max(1) as f64;
    }
    let store = Arc::new(open(&scratch.path().join("group"), true)?);
    let (flushes, durable_writes) = (store.flushes(), store.durable_writes());
    let started = Instant::now();
    let per_writer = writes.max(1);
    let threads: Vec<_> = (0..writers.max(1))
        .map(|writer| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || -> anyhow::Result<()> {
                for i in 0..per_writer {
                    store.create_connection_blocking(&record(
                        format!("{writer:04}-{i:08}"),
                        format!("group {writer} {i}"),
                    ))?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = (writers.max(1) * per_writer) as f64;
    let flushed = (store.flushes() - flushes).max(1) as f64;
    let acknowledged = (store.durable_writes() - durable_writes) as f64;
    Ok(FlushReport {
        sequential_writes: writes,
        sequential_mean_us: means[0],
        non_durable_mean_us: means[1],
        writers,
        concurrent_rps: total / elapsed.max(1e-9),
        writes_per_flush: acknowledged / flushed,
    })
}

/// Prints the figures.
pub fn print(report: &FlushReport) {
    println!(
        "flush cost: durable create {:.0} µs (one writer: flush + fsync each) vs {:.1} µs not durable; \
         {} writers: {:.0} durable creates/s, {:.1} writes per flush",
        report.sequential_mean_us,
        report.non_durable_mean_us,
        report.writers,
        report.concurrent_rps,
        report.writes_per_flush
    );
}
