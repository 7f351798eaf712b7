//! The rotation run: bulk-load connections (as `scale` does), reopen the
//! store durable as the server runs it, rotate the data key with the
//! server's own code ([`connvault::live_keys::LiveKeys`], what
//! `KeyService.RotateDataKey` calls) and time the re-sealing of every record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use connvault::live_keys::LiveKeys;
use connvault::{master_key, store_setup};
use connvault_store::sled::SledOptions;
use serde::{Deserialize, Serialize};

use crate::scale::{ScaleSpec, bulk_load};
use crate::spawn::SpawnOptions;

/// The rotation run's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateReport {
    /// Connections loaded.
    pub count: usize,
    /// Tenants they are spread over.
    pub tenants: usize,
    /// Records re-sealed by the rotation.
    pub resealed: u64,
    /// Seconds from RotateDataKey to the old version's destruction.
    pub rotate_s: f64,
    /// Records re-sealed per second.
    pub resealed_per_s: f64,
    /// Records by version before, and after.
    pub before: Vec<(u32, u64)>,
    /// See `before`.
    pub after: Vec<(u32, u64)>,
}

/// Loads `spec.count` connections, rotates, and measures.
pub async fn run(spec: &ScaleSpec, spawn: &SpawnOptions) -> anyhow::Result<RotateReport> {
    let work = match &spawn.work_dir {
        Some(work) => tempfile::tempdir_in(work)?,
        None => tempfile::tempdir()?,
    };
    let data_dir = work.path().join("data");
    let mut fixture = None;
    let plugins = match &spawn.plugin_dir {
        Some(dir) => dir.clone(),
        None => {
            let dir = crate::spawn::fixture_plugin_dir(&spawn.binary, spawn.work_dir.as_deref())?;
            let path = dir.path().to_owned();
            fixture = Some(dir);
            path
        }
    };
    eprintln!(
        "rotate: loading {} connections over {} tenants",
        spec.count, spec.tenants
    );
    bulk_load(&data_dir, &plugins, spec).await?;
    let store_path = data_dir.join("store");
    let durable = spawn.durable;
    // sled lets go of its lock a moment after the loader's store is dropped.
    let started = Instant::now();
    let store = loop {
        match store_setup::open_sled(&store_path, SledOptions::default().with_durable(durable)) {
            Ok(store) => break store,
            Err(_) if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error).context("reopening the store"),
        }
    };
    let store: Arc<dyn connvault_store::Store> = Arc::new(store);
    let (master, _) = master_key::load_master_key(None, None, true, &data_dir)?;
    let (keyring, _) = master_key::open_keyring(store.as_ref(), master, &data_dir, false).await?;
    let keys = Arc::new(LiveKeys::new(store, keyring, &data_dir));
    let before = keys.census().await?;
    eprintln!("rotate: loaded; rotating (durable writes: {durable})");
    let started = Instant::now();
    keys.rotate().await?;
    while keys.rotation().running {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rotate_s = started.elapsed().as_secs_f64();
    let after = keys.census().await?;
    let resealed = keys.rotation().resealed;
    anyhow::ensure!(
        keys.keyring().versions().len() == 1,
        "the rotation did not finish: versions {:?}",
        keys.keyring().versions()
    );
    drop(fixture);
    Ok(RotateReport {
        count: spec.count,
        tenants: spec.tenants,
        resealed,
        rotate_s,
        resealed_per_s: resealed as f64 / rotate_s,
        before: before.by_version.into_iter().collect(),
        after: after.by_version.into_iter().collect(),
    })
}

/// Prints the figures.
pub fn print(report: &RotateReport) {
    println!(
        "rotation of {} connections over {} tenants: {} re-sealed in {:.1} s = {:.0} records/s\n  by version before {:?}, after {:?}",
        report.count,
        report.tenants,
        report.resealed,
        report.rotate_s,
        report.resealed_per_s,
        report.before,
        report.after
    );
}
