//! The load generator: a fixed set of workers, each issuing one request at a
//! time drawn from a weighted method mix, with per-method HDR histograms.
//!
//! `get`, `update`, `test` and `resolve` work on the seeded connections of the
//! [`Workload`]; `create` adds connections and `delete` removes the ones the
//! run's own `create` calls added (see [`Method::Delete`]), so a mix with as
//! much `delete` as `create` keeps the data set's size steady: what a memory
//! soak needs. While a run goes, the server's RSS is sampled (when its pid is
//! known) every [`LoadSpec::rss_every`].

mod mix;
mod report;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use connvault::pb::v1;
use serde::Serialize;

use crate::client::{self, Chan};
use crate::spawn;

pub use mix::{Method, Mix, Rng};
pub use report::{MethodReport, Report, RssSample, print_table};
use report::{Stats, histogram};

/// The tenants and connections a run works on; created before it, deleted after.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Tenant ids.
    pub tenants: Vec<String>,
    /// Connection resource names.
    pub connections: Vec<String>,
    /// The loopback port `test` connects to.
    pub test_port: u16,
    /// A unique tag of this run (in tenant ids and display names).
    pub run_id: String,
}

/// Creates `tenants` tenants with `per_tenant` connections each.
pub async fn prepare(
    channels: &[Chan],
    tenants: usize,
    per_tenant: usize,
    test_port: u16,
    tag: &str,
) -> anyhow::Result<Workload> {
    let run_id = format!(
        "{tag}{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            % 0xff_ffff
    );
    let mut tenant_ids = Vec::new();
    for index in 0..tenants.max(1) {
        let id = format!("bench-{run_id}-{index}");
        client::tenants(&channels[0])
            .create_tenant(v1::CreateTenantRequest {
                tenant_id: id.clone(),
                tenant: Some(v1::Tenant {
                    display_name: format!("connvault-bench {run_id} #{index}"),
                    ..Default::default()
                }),
            })
            .await
            .with_context(|| format!("creating tenant {id}"))?;
        tenant_ids.push(id);
    }
    // Create the connections with a few concurrent writers (group commit helps).
    let mut tasks = tokio::task::JoinSet::new();
    let writers = 16.min(tenants.max(1) * per_tenant).max(1);
    let total = tenants.max(1) * per_tenant;
    for writer in 0..writers {
        let chan = channels[writer % channels.len()].clone();
        let tenant_ids = tenant_ids.clone();
        let run_id = run_id.clone();
        tasks.spawn(async move {
            let mut client = client::connections(&chan);
            let mut names = Vec::new();
            let mut index = writer;
            while index < total {
                let tenant = &tenant_ids[index % tenant_ids.len()];
                let created = client
                    .create_connection(v1::CreateConnectionRequest {
                        parent: format!("tenants/{tenant}"),
                        connection: Some(client::connection(
                            format!("seed {run_id} {index:06}"),
                            test_port,
                        )),
                        validate_only: false,
                    })
                    .await
                    .with_context(|| format!("creating seed connection {index} in {tenant}"))?
                    .into_inner();
                names.push(created.name);
                index += writers;
            }
            anyhow::Ok(names)
        });
    }
    let mut connections = Vec::with_capacity(total);
    while let Some(result) = tasks.join_next().await {
        connections.extend(result.context("seed task")??);
    }
    connections.sort();
    Ok(Workload {
        tenants: tenant_ids,
        connections,
        test_port,
        run_id,
    })
}

/// Deletes the workload's tenants with everything in them.
pub async fn cleanup(chan: &Chan, workload: &Workload) -> anyhow::Result<()> {
    for tenant in &workload.tenants {
        client::tenants(chan)
            .delete_tenant(v1::DeleteTenantRequest {
                name: format!("tenants/{tenant}"),
                force: true,
            })
            .await
            .with_context(|| format!("deleting tenant {tenant}"))?;
    }
    Ok(())
}

/// How long and how hard to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The method mix.
    pub mix: Mix,
    /// Workers, each with one request in flight.
    pub concurrency: usize,
    /// Measured time.
    pub duration: Duration,
    /// Time run first and not measured.
    pub warmup: Duration,
    /// Page size of `list`.
    pub page_size: i32,
    /// How often to sample the server's RSS while the run goes (zero: only at
    /// the start, after the warm-up and at the end).
    pub rss_every: Duration,
}

/// Numbers display names and label values across every run of this process
/// (several scenarios share one workload: names must not repeat).
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Names of connections the run's `create` calls added, oldest first, for
/// `delete` (shared by the run's workers).
#[derive(Default)]
struct Created(Mutex<VecDeque<String>>);

impl Created {
    fn push(&self, name: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(name);
    }

    fn pop(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

/// Creates a load connection in a random tenant of the workload; its name.
async fn create_one(
    client: &mut client::ConnectionsClient,
    workload: &Workload,
    rng: &mut Rng,
) -> Result<String, tonic::Status> {
    let tenant = &workload.tenants[rng.below(workload.tenants.len())];
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    client
        .create_connection(v1::CreateConnectionRequest {
            parent: format!("tenants/{tenant}"),
            connection: Some(client::connection(
                format!("load {} {n:08}", workload.run_id),
                workload.test_port,
            )),
            validate_only: false,
        })
        .await
        .map(|created| created.into_inner().name)
}

/// Seconds since `since`, to the millisecond.
fn seconds_since(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e3).round() / 1e3
}

/// Samples `pid`'s RSS at `started`, then every `every` until `end`.
async fn sample_rss(pid: u32, started: Instant, end: Instant, every: Duration) -> Vec<RssSample> {
    let mut samples = Vec::new();
    if every.is_zero() {
        return samples;
    }
    for tick in 0u32.. {
        let Some(at) = every.checked_mul(tick).and_then(|d| started.checked_add(d)) else {
            break;
        };
        if at >= end {
            break;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        if let Some(rss_kib) = spawn::rss_kib(pid) {
            samples.push(RssSample {
                t_s: seconds_since(started),
                rss_kib,
            });
        }
    }
    samples
}

/// Runs the load on `channels` and reports it; `pid` is the server's, to
/// report its RSS (before, after the warm-up, every `spec.rss_every`, after).
pub async fn run(
    target: &str,
    channels: &[Chan],
    workload: &Workload,
    spec: &LoadSpec,
    pid: Option<u32>,
) -> anyhow::Result<Report> {
    if workload.connections.is_empty()
        && spec.mix.0.iter().any(|(m, _)| m.needs_seeded_connection())
    {
        bail!("the workload has no connections to read");
    }
    let workload = Arc::new(workload.clone());
    let mix = Arc::new(spec.mix.clone());
    // Queue created names only when something will take them off the queue.
    let queue_created = mix.has(Method::Delete);
    let created = Arc::new(Created::default());
    let added = Arc::new(AtomicI64::new(0));
    let rss_kib_start = pid.and_then(spawn::rss_kib);
    let started = Instant::now();
    let measure_from = started + spec.warmup;
    let end = measure_from + spec.duration;
    let sampler = pid.map(|pid| tokio::spawn(sample_rss(pid, started, end, spec.rss_every)));
    let after_warmup = pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(measure_from)).await;
            spawn::rss_kib(pid)
        })
    });
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..spec.concurrency.max(1) {
        let chan = channels[worker % channels.len()].clone();
        let workload = Arc::clone(&workload);
        let mix = Arc::clone(&mix);
        let created = Arc::clone(&created);
        let added = Arc::clone(&added);
        let page_size = spec.page_size;
        tasks.spawn(async move {
            let mut client = client::connections(&chan);
            let mut rng = Rng::new(worker as u64 + 1 + started.elapsed().as_nanos() as u64);
            let mut stats = Stats::default();
            loop {
                let begin = Instant::now();
                if begin >= end {
                    break;
                }
                // When the timed call starts (`delete` may create first).
                let mut timed_from = begin;
                let method = mix.pick(rng.next());
                let pick = |rng: &mut Rng| {
                    workload.connections[rng.below(workload.connections.len())].clone()
                };
                let result = match method {
                    Method::Get => client
                        .get_connection(v1::GetConnectionRequest {
                            name: pick(&mut rng),
                        })
                        .await
                        .map(drop),
                    Method::List => {
                        let tenant = &workload.tenants[rng.below(workload.tenants.len())];
                        client
                            .list_connections(v1::ListConnectionsRequest {
                                parent: format!("tenants/{tenant}"),
                                page_size,
                                ..Default::default()
                            })
                            .await
                            .map(drop)
                    }
                    Method::Create => {
                        create_one(&mut client, &workload, &mut rng)
                            .await
                            .map(|name| {
                                added.fetch_add(1, Ordering::Relaxed);
                                if queue_created {
                                    created.push(name);
                                }
                            })
                    }
                    Method::Delete => {
                        let name = match created.pop() {
                            Some(name) => Ok(name),
                            None => {
                                let made = create_one(&mut client, &workload, &mut rng).await;
                                if made.is_ok() {
                                    added.fetch_add(1, Ordering::Relaxed);
                                }
                                timed_from = Instant::now();
                                made
                            }
                        };
                        match name {
                            Ok(name) => client
                                .delete_connection(v1::DeleteConnectionRequest {
                                    name,
                                    etag: String::new(),
                                })
                                .await
                                .map(|_| {
                                    added.fetch_sub(1, Ordering::Relaxed);
                                }),
                            Err(status) => Err(status),
                        }
                    }
                    Method::Update => {
                        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
                        client
                            .update_connection(v1::UpdateConnectionRequest {
                                connection: Some(v1::Connection {
                                    name: pick(&mut rng),
                                    labels: [
                                        ("env".to_owned(), "bench".to_owned()),
                                        ("seq".to_owned(), n.to_string()),
                                    ]
                                    .into_iter()
                                    .collect(),
                                    ..Default::default()
                                }),
                                update_mask: Some(prost_types::FieldMask {
                                    paths: vec!["labels".into()],
                                }),
                                etag: String::new(),
                            })
                            .await
                            .map(drop)
                    }
                    Method::Test => client
                        .test_connection(v1::TestConnectionRequest {
                            target: Some(v1::test_connection_request::Target::Name(pick(&mut rng))),
                            parent: String::new(),
                            timeout_ms: 5_000,
                        })
                        .await
                        .map(drop),
                    Method::Resolve => client
                        .resolve_connection(v1::ResolveConnectionRequest {
                            name: pick(&mut rng),
                        })
                        .await
                        .map(drop),
                };
                if begin >= measure_from {
                    stats.record(method, timed_from.elapsed(), result);
                }
            }
            stats
        });
    }
    let mut total = Stats::default();
    while let Some(stats) = tasks.join_next().await {
        total.merge(stats.context("load worker")?);
    }
    let rss_kib_after_warmup = match after_warmup {
        Some(task) => task.await.context("RSS after warm-up")?,
        None => None,
    };
    let mut rss_samples = match sampler {
        Some(task) => task.await.context("RSS sampler")?,
        None => Vec::new(),
    };
    let rss_kib_end = pid.and_then(spawn::rss_kib);
    if let (Some(rss_kib), false) = (rss_kib_end, spec.rss_every.is_zero()) {
        rss_samples.push(RssSample {
            t_s: seconds_since(started),
            rss_kib,
        });
    }
    let seconds = spec.duration.as_secs_f64().max(1e-9);
    let mut methods = BTreeMap::new();
    let mut total_rps = 0.0;
    for method in Method::ALL {
        if !mix.has(method) {
            continue;
        }
        let histogram = total.histograms.remove(&method).unwrap_or_else(histogram);
        let codes = total.errors.remove(&method).unwrap_or_default();
        let requests = histogram.len();
        let throughput = requests as f64 / seconds;
        total_rps += throughput;
        methods.insert(
            method.name().to_owned(),
            MethodReport {
                requests,
                errors: codes.values().sum(),
                throughput_rps: throughput,
                p50_us: histogram.value_at_quantile(0.5),
                p90_us: histogram.value_at_quantile(0.9),
                p99_us: histogram.value_at_quantile(0.99),
                p999_us: histogram.value_at_quantile(0.999),
                max_us: histogram.max(),
                mean_us: histogram.mean(),
                error_codes: codes,
            },
        );
    }
    Ok(Report {
        target: target.to_owned(),
        mix: spec.mix.to_string(),
        concurrency: spec.concurrency,
        channels: channels.len(),
        duration_s: spec.duration.as_secs_f64(),
        warmup_s: spec.warmup.as_secs_f64(),
        methods,
        total_rps,
        rss_kib_start,
        rss_kib_after_warmup,
        rss_kib_end,
        rss_samples,
        connections_added: added.load(Ordering::Relaxed),
    })
}

/// A loopback listener that accepts and drops connections: the `test` target.
pub async fn test_target() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    Ok(port)
}
