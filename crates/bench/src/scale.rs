//! The scale run: bulk-load many connections through the server's own code
//! path (validation by the plugin, sealing, the sled store) with durability
//! off and one flush at the end, then start the real server on that data
//! directory and measure start-up, RSS, disk use, and get and list-page latency.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use connvault::app::{App, Limits};
use connvault::config::Config;
use connvault::pb::v1;
use connvault::{master_key, store_setup};
use connvault_plugin_host::{HostOptions, PluginHost};
use connvault_store::sled::SledOptions;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client::{self, Auth};
use crate::load::Rng;
use crate::spawn::{SpawnOptions, Spawned, disk_usage};

/// Latency of one kind of call, µs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// Calls measured.
    pub samples: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    /// The figures of a histogram of µs.
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            samples: histogram.len(),
            p50_us: histogram.value_at_quantile(0.5),
            p99_us: histogram.value_at_quantile(0.99),
            mean_us: histogram.mean(),
        }
    }
}

/// The scale run's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleReport {
    /// Connections loaded.
    pub count: usize,
    /// Tenants they are spread over.
    pub tenants: usize,
    /// Seconds the bulk load took (including the final flush).
    pub load_s: f64,
    /// Connections loaded per second.
    pub load_rps: f64,
    /// Spawn to "connvault listening on", ms.
    pub startup_ms: f64,
    /// Server RSS right after start, MiB.
    pub rss_mib_idle: f64,
    /// Server RSS after the measurements, MiB.
    pub rss_mib_after: f64,
    /// Data directory, allocated (`du -s`), MiB.
    pub data_dir_mib: f64,
    /// Data directory, apparent size, MiB.
    pub data_dir_apparent_mib: f64,
    /// Pages of 50 in a measured tenant.
    pub pages_per_tenant: usize,
    /// `GetConnection`, one call at a time.
    pub get: Latency,
    /// First page of 50.
    pub list_first: Latency,
    /// Middle page of 50.
    pub list_middle: Latency,
    /// Last page of 50.
    pub list_last: Latency,
}

/// What to load and measure.
#[derive(Debug, Clone)]
pub struct ScaleSpec {
    /// Connections.
    pub count: usize,
    /// Tenants.
    pub tenants: usize,
    /// Concurrent loaders.
    pub loaders: usize,
    /// Calls measured per figure.
    pub samples: usize,
    /// Keep the data here (reused if already loaded with the same count).
    pub data_dir: Option<PathBuf>,
}

/// A histogram of µs, 1 µs to 100 s.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Records `elapsed` in µs, clamped to the histogram's bounds.
pub(crate) fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 100_000_000);
    let _ = histogram.record(micros);
}

const LOADED_KEY: &str = "bench/loaded";

/// Loads `count` connections into `data_dir` with the server's own code.
/// Returns a sample of connection names.
pub(crate) async fn bulk_load(
    data_dir: &Path,
    plugin_dir: &Path,
    spec: &ScaleSpec,
) -> anyhow::Result<Vec<String>> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)?;
    let store_path = data_dir.join("store");
    let store: Arc<dyn connvault_store::Store> = Arc::new(
        store_setup::open_sled(&store_path, SledOptions::default().with_durable(false))
            .context("opening the store for loading")?,
    );
    let (master, _) = master_key::load_master_key(None, None, true, data_dir)?;
    let (keyring, _) = master_key::open_keyring(store.as_ref(), master, data_dir, false).await?;
    let host_options = HostOptions {
        require_pins: false,
        ..HostOptions::default()
    };
    let plugins = PluginHost::load_dir(plugin_dir, &host_options);
    anyhow::ensure!(
        plugins.find("testdb").is_some(),
        "the plugin directory {} has no plugin serving `testdb`",
        plugin_dir.display()
    );
    let app = Arc::new(App::new(
        Arc::clone(&store),
        keyring,
        data_dir,
        Arc::new(plugins),
        Limits::from_config(&Config::default()),
    ));
    for tenant in 0..spec.tenants {
        app.create_tenant(
            format!("scale-{tenant:05}"),
            Some(v1::Tenant {
                display_name: format!("Scale tenant {tenant}"),
                ..Default::default()
            }),
        )
        .await
        .map_err(|error| anyhow::anyhow!("creating tenant {tenant}: {error}"))?;
    }
    let started = Instant::now();
    let keep_every = (spec.count / 20_000).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let loaders = spec.loaders.max(1);
    let progress = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for loader in 0..loaders {
        let app = Arc::clone(&app);
        let (count, tenants) = (spec.count, spec.tenants.max(1));
        let progress = Arc::clone(&progress);
        tasks.spawn(async move {
            let mut sample = Vec::new();
            let mut index = loader;
            while index < count {
                let tenant = index % tenants;
                let created = app
                    .create_connection(
                        &format!("tenants/scale-{tenant:05}"),
                        Some(client::connection(
                            format!("scale connection {index:08}"),
                            5432,
                        )),
                        false,
                    )
                    .await
                    .map_err(|error| anyhow::anyhow!("creating connection {index}: {error}"))?;
                if index % keep_every == 0 {
                    sample.push(created.name);
                }
                let done = progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if done % (count / 10).max(1) == 0 {
                    eprintln!(
                        "  loaded {done}/{count} ({:.0}/s)",
                        done as f64 / started.elapsed().as_secs_f64()
                    );
                }
                index += loaders;
            }
            anyhow::Ok(sample)
        });
    }
    let mut sample = Vec::new();
    while let Some(result) = tasks.join_next().await {
        sample.extend(result.context("loader task")??);
    }
    drop(app);
    drop(store);
    // The final flush: reopen durable and make one durable write, which
    // flushes and fsyncs everything written before it.
    let store = store_setup::open_sled(&store_path, SledOptions::default().with_durable(true))
        .context("reopening the store for the final flush")?;
    store.put_meta_blocking(LOADED_KEY, spec.count.to_string().as_bytes())?;
    drop(store);
    Ok(sample)
}

/// Runs the scale measurement against `binary`.
pub async fn run(
    spec: &ScaleSpec,
    spawn: &SpawnOptions,
    token: Option<&str>,
) -> anyhow::Result<ScaleReport> {
    let mut temp = None;
    let data_dir = match &spec.data_dir {
        Some(dir) => dir.clone(),
        None => {
            let dir = match &spawn.work_dir {
                Some(work) => tempfile::tempdir_in(work)?,
                None => tempfile::tempdir()?,
            };
            let path = dir.path().join("data");
            temp = Some(dir);
            path
        }
    };
    let mut fixture_dir = None;
    let plugin_dir = match &spawn.plugin_dir {
        Some(dir) => dir.clone(),
        None => {
            let dir = crate::spawn::fixture_plugin_dir(&spawn.binary, spawn.work_dir.as_deref())?;
            let path = dir.path().to_owned();
            fixture_dir = Some(dir);
            path
        }
    };
    eprintln!(
        "scale: loading {} connections over {} tenants into {}",
        spec.count,
        spec.tenants,
        data_dir.display()
    );
    let started = Instant::now();
    let sample = bulk_load(&data_dir, &plugin_dir, spec).await?;
    let load_s = started.elapsed().as_secs_f64();
    eprintln!(
        "scale: loaded in {load_s:.1} s ({:.0}/s); starting the server",
        spec.count as f64 / load_s
    );

    // sled releases its directory lock only once its background flusher has
    // finished with a large log, a moment after the loader's store is dropped.
    let options = SpawnOptions {
        plugin_dir: Some(plugin_dir.clone()),
        data_dir: Some(data_dir.clone()),
        ..spawn.clone()
    };
    let mut attempts = 0;
    let mut server = loop {
        match Spawned::start(&options) {
            Ok(server) => break server,
            Err(error) if attempts < 60 && format!("{error:#}").contains("locked") => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    };
    let rss_idle = server.rss_kib().unwrap_or_default();
    let token = token.map(str::to_owned).or_else(|| server.token.clone());
    let auth = Auth::new(token.as_deref())?;
    let channels = client::connect(&server.addr, 1, &auth).await?;
    let mut connections = client::connections(&channels[0]);
    let mut rng = Rng::new(0x5ca1e);

    // Get: one call at a time over a sample spread across the keyspace.
    let mut get = histogram();
    for round in 0..spec.samples + spec.samples / 10 {
        let name = sample[rng.below(sample.len())].clone();
        let begin = Instant::now();
        connections
            .get_connection(v1::GetConnectionRequest { name })
            .await
            .context("GetConnection")?;
        if round >= spec.samples / 10 {
            record(&mut get, begin.elapsed());
        }
    }

    // List: walk a few tenants' pages once to find the tokens of the middle
    // and last pages, then time first, middle and last pages in turn.
    let measured_tenants = spec.tenants.clamp(1, 10);
    let mut targets = Vec::new();
    let mut pages_per_tenant = 0;
    for k in 0..measured_tenants {
        let tenant = k * spec.tenants.max(1) / measured_tenants;
        let parent = format!("tenants/scale-{tenant:05}");
        let mut tokens = vec![String::new()];
        loop {
            let page = connections
                .list_connections(v1::ListConnectionsRequest {
                    parent: parent.clone(),
                    page_size: 50,
                    page_token: tokens.last().cloned().unwrap_or_default(),
                    ..Default::default()
                })
                .await
                .context("ListConnections")?
                .into_inner();
            if page.next_page_token.is_empty() {
                break;
            }
            tokens.push(page.next_page_token);
        }
        pages_per_tenant = pages_per_tenant.max(tokens.len());
        let middle = tokens[tokens.len() / 2].clone();
        let last = tokens[tokens.len() - 1].clone();
        targets.push((parent, [String::new(), middle, last]));
    }
    let mut lists = [histogram(), histogram(), histogram()];
    for round in 0..spec.samples {
        let (parent, tokens) = &targets[round % targets.len()];
        for (which, token) in tokens.iter().enumerate() {
            let begin = Instant::now();
            connections
                .list_connections(v1::ListConnectionsRequest {
                    parent: parent.clone(),
                    page_size: 50,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .context("ListConnections")?;
            record(&mut lists[which], begin.elapsed());
        }
    }
    let rss_after = server.rss_kib().unwrap_or_default();
    let startup = server.startup;
    server.stop();
    let (allocated, apparent) = disk_usage(&data_dir);
    drop(fixture_dir);
    drop(temp);
    const MIB: f64 = 1024.0 * 1024.0;
    Ok(ScaleReport {
        count: spec.count,
        tenants: spec.tenants,
        load_s,
        load_rps: spec.count as f64 / load_s.max(1e-9),
        startup_ms: startup.as_secs_f64() * 1e3,
        rss_mib_idle: rss_idle as f64 / 1024.0,
        rss_mib_after: rss_after as f64 / 1024.0,
        data_dir_mib: allocated as f64 / MIB,
        data_dir_apparent_mib: apparent as f64 / MIB,
        pages_per_tenant,
        get: Latency::of(&get),
        list_first: Latency::of(&lists[0]),
        list_middle: Latency::of(&lists[1]),
        list_last: Latency::of(&lists[2]),
    })
}

/// Prints the figures.
pub fn print(report: &ScaleReport) {
    println!(
        "scale: {} connections over {} tenants ({} pages of 50 per measured tenant)",
        report.count, report.tenants, report.pages_per_tenant
    );
    println!(
        "  bulk load {:.1} s ({:.0}/s); start-up {:.0} ms; RSS {:.1} MiB idle, {:.1} MiB after; data dir {:.1} MiB (apparent {:.1} MiB)",
        report.load_s,
        report.load_rps,
        report.startup_ms,
        report.rss_mib_idle,
        report.rss_mib_after,
        report.data_dir_mib,
        report.data_dir_apparent_mib
    );
    for (name, latency) in [
        ("get", &report.get),
        ("list first page", &report.list_first),
        ("list middle page", &report.list_middle),
        ("list last page", &report.list_last),
    ] {
        println!(
            "  {name:<17} p50 {:>6} µs  p99 {:>6} µs  mean {:>8.1} µs  ({} calls)",
            latency.p50_us, latency.p99_us, latency.mean_us, latency.samples
        );
    }
}
