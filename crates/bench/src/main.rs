//! `connvault-bench`: connvault's load generator and its same-run baseline.
//!
//! - `run`: load against a running server (`--addr`) or one it starts (`--spawn`),
//!   sampling the server's RSS every `--rss-every` (a memory soak:
//!   `--duration 10m --mix get=60,list=15,create=10,delete=10,update=5`).
//! - `baseline`: the same load against a bare tonic server answering
//!   `connvault.v1` with canned messages of the same size, and against
//!   connvault, printing connvault's figures as ratios of the baseline's.
//! - `scale`: bulk-load N connections, then measure start-up, RSS, disk use,
//!   get and first/middle/last list-page latency.
//! - `flush`: what a durable write costs on this disk, and the group-commit batch.
//! - `discover`: cold and cached `DiscoverMetadata` latency against a
//!   throwaway PostgreSQL, beside `GetConnection`.
//!
//! Every command prints a table; `--json FILE` also writes the figures as JSON.
#![forbid(unsafe_code)]

mod client;
mod discover;
mod echo;
mod flush;
mod load;
mod scale;
mod spawn;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::client::Auth;
use crate::load::{LoadSpec, Mix, Report};
use crate::spawn::{SpawnOptions, Spawned};

/// Load generator, same-run baseline and scale run for connvault.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a method mix against connvault and prints per-method figures
    /// and the server's RSS over time.
    Run(RunArgs),
    /// Runs the same load against a bare tonic baseline and connvault; prints ratios.
    Baseline(BaselineArgs),
    /// Loads N connections, then measures start-up, RSS, disk and latency.
    Scale(ScaleArgs),
    /// Measures the cost of a durable write and the group-commit batch size.
    Flush(FlushArgs),
    /// Measures cold and cached DiscoverMetadata against a throwaway PostgreSQL.
    Discover(discover::DiscoverArgs),
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| Duration::from_secs_f64(n * scale))
        .ok_or_else(|| format!("{text:?} is not a duration like 10s, 500ms or 2m"))
}

#[derive(Debug, Clone, Args)]
struct ServerArgs {
    /// Address of a running server (e.g. http://127.0.0.1:50051).
    #[arg(long, conflicts_with = "spawn")]
    addr: Option<String>,
    /// Start this `connvault` binary in --dev mode on a temp data dir instead.
    #[arg(long)]
    spawn: Option<PathBuf>,
    /// Plugin directory for --spawn; the server loads the files named `libconnvault_plugin_*.so` in it [default: a temp dir holding the fixture plugin found beside the binary, copied under such a name].
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// With --spawn: acknowledge writes before they are durable (`durable = false`).
    #[arg(long)]
    no_durable: bool,
    /// Where --spawn puts its temp dirs [default: the system temp dir]; use the real disk.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Bearer token sent as `authorization: Bearer <token>` [default with --spawn: the one the dev server prints].
    #[arg(long, env = "CONNVAULT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Pid of the --addr server, to report its RSS (start, after warm-up, every --rss-every, end).
    #[arg(long)]
    pid: Option<u32>,
}

impl ServerArgs {
    fn spawn_options(&self) -> anyhow::Result<SpawnOptions> {
        let binary = self
            .spawn
            .clone()
            .context("pass --spawn path/to/connvault")?;
        Ok(SpawnOptions {
            binary,
            plugin_dir: self.plugin_dir.clone(),
            data_dir: None,
            durable: !self.no_durable,
            work_dir: self.work_dir.clone(),
        })
    }
}

#[derive(Debug, Clone, Args)]
struct LoadArgs {
    /// Method mix: name=weight pairs over get, list, create, delete, update, test,
    /// resolve. `delete` removes connections the run's `create` calls added
    /// (oldest first; when there is none, it creates one untimed, then deletes
    /// it); the seeded connections are never deleted.
    #[arg(long, default_value = "get=60,list=20,create=10,update=5,test=5")]
    mix: String,
    /// Requests in flight (one per worker).
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the workers share.
    #[arg(long, default_value_t = 4)]
    channels: usize,
    /// Measured time (10s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up before it.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Tenants the run creates (and deletes after).
    #[arg(long, default_value_t = 4)]
    tenants: usize,
    /// Connections created in each tenant before the run.
    #[arg(long, default_value_t = 100)]
    per_tenant: usize,
    /// Page size of `list`.
    #[arg(long, default_value_t = 50)]
    page_size: i32,
    /// Sample the server's RSS this often during a run, warm-up included (when
    /// its pid is known: --spawn or --pid; 0: only at the start, after the
    /// warm-up and at the end).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    rss_every: Duration,
    /// Also write the figures as JSON to this file (`-`: stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

impl LoadArgs {
    fn spec(&self, mix: Mix) -> LoadSpec {
        LoadSpec {
            mix,
            concurrency: self.concurrency,
            duration: self.duration,
            warmup: self.warmup,
            page_size: self.page_size,
            rss_every: self.rss_every,
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Debug, Args)]
struct BaselineArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// Scenarios, each run against both: `get`, `list`, `create`, `delete`,
    /// `update`, `test`, `resolve` (that method alone) or `mixed` (the --mix).
    #[arg(long, default_value = "get,list,create,mixed", value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Leave Nagle's algorithm on in the baseline server (to show what TCP_NODELAY is worth).
    #[arg(long)]
    baseline_nagle: bool,
    /// Durable writes per writer in the flush-cost measurement (0: skip it).
    #[arg(long, default_value_t = 100)]
    flush_writes: usize,
}

#[derive(Debug, Args)]
struct ScaleArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Connections to load.
    #[arg(long, default_value_t = 1_000_000)]
    count: usize,
    /// Tenants they are spread over.
    #[arg(long, default_value_t = 1_000)]
    tenants: usize,
    /// Concurrent loaders.
    #[arg(long, default_value_t = 64)]
    loaders: usize,
    /// Calls timed per figure.
    #[arg(long, default_value_t = 2_000)]
    samples: usize,
    /// Keep the loaded data directory here (default: a temp dir, removed after).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also write the figures as JSON to this file (`-`: stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct FlushArgs {
    /// A directory on the disk to measure [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Durable writes (sequentially, then per writer).
    #[arg(long, default_value_t = 200)]
    writes: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Also write the figures as JSON to this file (`-`: stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

fn write_json<T: Serialize>(path: Option<&PathBuf>, value: &T) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(value)?;
    if path.as_os_str() == "-" {
        println!("{text}");
    } else {
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A server to load: a spawned child or an address.
struct Target {
    spawned: Option<Spawned>,
    addr: String,
    auth: Auth,
    pid: Option<u32>,
}

impl Target {
    fn open(args: &ServerArgs) -> anyhow::Result<Target> {
        if args.spawn.is_some() {
            let spawned = Spawned::start(&args.spawn_options()?)?;
            eprintln!(
                "started {} in {:.0} ms at {}{}",
                spawned_binary(args),
                spawned.startup.as_secs_f64() * 1e3,
                spawned.addr,
                if spawned.token.is_some() {
                    " (using the dev token it printed)"
                } else {
                    ""
                }
            );
            eprintln!(
                "  data dir {}, log {}",
                spawned.data_dir.display(),
                spawned.log.display()
            );
            let token = args.token.clone().or_else(|| spawned.token.clone());
            Ok(Target {
                addr: spawned.addr.clone(),
                auth: Auth::new(token.as_deref())?,
                pid: spawned.pid(),
                spawned: Some(spawned),
            })
        } else if let Some(addr) = &args.addr {
            Ok(Target {
                spawned: None,
                addr: addr.clone(),
                auth: Auth::new(args.token.as_deref())?,
                pid: args.pid,
            })
        } else {
            bail!("pass --addr of a running server or --spawn path/to/connvault")
        }
    }
}

fn spawned_binary(args: &ServerArgs) -> String {
    args.spawn
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

async fn run_load(
    name: &str,
    target: &Target,
    channels: &[client::Chan],
    workload: &load::Workload,
    spec: &LoadSpec,
) -> anyhow::Result<Report> {
    load::run(name, channels, workload, spec, target.pid).await
}

async fn cmd_run(args: RunArgs) -> anyhow::Result<()> {
    let mix = Mix::parse(&args.load.mix)?;
    let mut target = Target::open(&args.server)?;
    let channels = client::connect(&target.addr, args.load.channels, &target.auth).await?;
    let port = load::test_target().await?;
    let workload = load::prepare(
        &channels,
        args.load.tenants,
        args.load.per_tenant,
        port,
        "r",
    )
    .await?;
    let result = run_load(
        "connvault",
        &target,
        &channels,
        &workload,
        &args.load.spec(mix),
    )
    .await;
    let cleaned = load::cleanup(&channels[0], &workload).await;
    let report = result?;
    cleaned?;
    load::print_table(&report);
    write_json(args.load.json.as_ref(), &report)?;
    if let Some(spawned) = target.spawned.as_mut() {
        spawned.stop();
    }
    Ok(())
}

/// One line of the comparison.
#[derive(Debug, Serialize)]
struct Ratio {
    scenario: String,
    method: String,
    baseline_rps: f64,
    connvault_rps: f64,
    throughput_ratio: f64,
    baseline_p99_us: u64,
    connvault_p99_us: u64,
    p99_ratio: f64,
    goal: Option<String>,
    met: Option<bool>,
}

#[derive(Debug, Serialize)]
struct BaselineReport {
    connection_bytes: usize,
    startup_ms: Option<f64>,
    flush: Option<flush::FlushReport>,
    baseline: BTreeMap<String, Report>,
    connvault: BTreeMap<String, Report>,
    ratios: Vec<Ratio>,
}

fn goal(scenario: &str, method: &str) -> Option<(f64, Option<f64>)> {
    match (scenario, method) {
        ("get", "get") => Some((0.7, Some(1.5))),
        ("list", "list") => Some((0.4, None)),
        ("create", "create") => Some((0.25, None)),
        _ => None,
    }
}

async fn cmd_baseline(args: BaselineArgs) -> anyhow::Result<()> {
    let mix = Mix::parse(&args.load.mix)?;
    let mut scenarios = Vec::new();
    for scenario in &args.scenarios {
        let scenario = scenario.trim();
        let mix = if scenario == "mixed" {
            mix.clone()
        } else {
            Mix::parse(scenario)?
        };
        scenarios.push((scenario.to_owned(), mix));
    }
    let flush = if args.flush_writes > 0 {
        let dir = args
            .server
            .work_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let report = tokio::task::spawn_blocking({
            let writes = args.flush_writes;
            move || flush::measure(&dir, writes, 64)
        })
        .await??;
        flush::print(&report);
        Some(report)
    } else {
        None
    };

    let mut target = Target::open(&args.server)?;
    let startup_ms = target
        .spawned
        .as_ref()
        .map(|s| s.startup.as_secs_f64() * 1e3);
    let channels = client::connect(&target.addr, args.load.channels, &target.auth).await?;
    let port = load::test_target().await?;
    let workload = load::prepare(
        &channels,
        args.load.tenants,
        args.load
            .per_tenant
            .max(args.load.page_size.max(1) as usize),
        port,
        "b",
    )
    .await?;
    let result = async {
        // The baseline answers with a connection captured from connvault: same size on the wire.
        let sample = client::connections(&channels[0])
            .get_connection(connvault::pb::v1::GetConnectionRequest {
                name: workload.connections[0].clone(),
            })
            .await?
            .into_inner();
        let connection_bytes = prost::Message::encoded_len(&sample);
        let echo = echo::EchoServer::start(
            echo::Canned::new(sample, usize::try_from(args.load.page_size).unwrap_or(50)),
            !args.baseline_nagle,
        )?;
        let echo_target = Target {
            spawned: None,
            addr: format!("http://{}", echo.addr),
            auth: target.auth.clone(),
            pid: None,
        };
        let echo_channels =
            client::connect(&echo_target.addr, args.load.channels, &echo_target.auth).await?;
        let echo_workload = load::Workload {
            test_port: port,
            ..workload.clone()
        };
        let mut baseline = BTreeMap::new();
        let mut measured = BTreeMap::new();
        for (scenario, mix) in &scenarios {
            let spec = args.load.spec(mix.clone());
            eprintln!("scenario {scenario}: baseline");
            let base = run_load(
                "baseline",
                &echo_target,
                &echo_channels,
                &echo_workload,
                &spec,
            )
            .await?;
            eprintln!("scenario {scenario}: connvault");
            let real = run_load("connvault", &target, &channels, &workload, &spec).await?;
            load::print_table(&base);
            load::print_table(&real);
            println!();
            baseline.insert(scenario.clone(), base);
            measured.insert(scenario.clone(), real);
        }
        drop(echo);
        anyhow::Ok((connection_bytes, baseline, measured))
    }
    .await;
    let cleaned = load::cleanup(&channels[0], &workload).await;
    let (connection_bytes, baseline, measured) = result?;
    cleaned?;

    let mut ratios = Vec::new();
    for (scenario, real) in &measured {
        let Some(base) = baseline.get(scenario) else {
            continue;
        };
        for (method, m) in &real.methods {
            let Some(b) = base.methods.get(method) else {
                continue;
            };
            let throughput_ratio = m.throughput_rps / b.throughput_rps.max(1e-9);
            let p99_ratio = m.p99_us as f64 / (b.p99_us.max(1)) as f64;
            let (goal_text, met) = match goal(scenario, method) {
                Some((min_ratio, max_p99)) => {
                    let mut text = format!("≥ {min_ratio}× throughput");
                    let mut met = throughput_ratio >= min_ratio;
                    if let Some(max) = max_p99 {
                        text.push_str(&format!(", p99 ≤ {max}×"));
                        met &= p99_ratio <= max;
                    }
                    (Some(text), Some(met))
                }
                None => (None, None),
            };
            ratios.push(Ratio {
                scenario: scenario.clone(),
                method: method.clone(),
                baseline_rps: b.throughput_rps,
                connvault_rps: m.throughput_rps,
                throughput_ratio,
                baseline_p99_us: b.p99_us,
                connvault_p99_us: m.p99_us,
                p99_ratio,
                goal: goal_text,
                met,
            });
        }
    }
    println!(
        "connvault vs same-run baseline (Connection = {connection_bytes} bytes, concurrency {}, {} channels)",
        args.load.concurrency, args.load.channels
    );
    println!(
        "{:<9} {:<7} {:>11} {:>11} {:>7} {:>9} {:>9} {:>7}  goal",
        "scenario", "method", "base req/s", "cv req/s", "ratio", "base p99", "cv p99", "ratio"
    );
    for r in &ratios {
        let verdict = match (&r.goal, r.met) {
            (Some(goal), Some(true)) => format!("{goal}: met"),
            (Some(goal), Some(false)) => format!("{goal}: NOT met"),
            _ => String::new(),
        };
        println!(
            "{:<9} {:<7} {:>11.0} {:>11.0} {:>6.2}× {:>7}µs {:>7}µs {:>6.2}×  {verdict}",
            r.scenario,
            r.method,
            r.baseline_rps,
            r.connvault_rps,
            r.throughput_ratio,
            r.baseline_p99_us,
            r.connvault_p99_us,
            r.p99_ratio
        );
    }
    if let Some(ms) = startup_ms {
        println!("connvault start-up (empty data dir): {ms:.0} ms");
    }
    write_json(
        args.load.json.as_ref(),
        &BaselineReport {
            connection_bytes,
            startup_ms,
            flush,
            baseline,
            connvault: measured,
            ratios,
        },
    )?;
    if let Some(spawned) = target.spawned.as_mut() {
        spawned.stop();
    }
    Ok(())
}

async fn cmd_scale(args: ScaleArgs) -> anyhow::Result<()> {
    let spawn = args.server.spawn_options()?;
    let report = scale::run(
        &scale::ScaleSpec {
            count: args.count,
            tenants: args.tenants.max(1),
            loaders: args.loaders,
            samples: args.samples.max(1),
            data_dir: args.data_dir.clone(),
        },
        &spawn,
        args.server.token.as_deref(),
    )
    .await?;
    scale::print(&report);
    write_json(args.json.as_ref(), &report)
}

fn cmd_flush(args: FlushArgs) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let report = flush::measure(&dir, args.writes, args.writers)?;
    flush::print(&report);
    write_json(args.json.as_ref(), &report)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => cmd_run(args).await,
        Command::Baseline(args) => cmd_baseline(args).await,
        Command::Scale(args) => cmd_scale(args).await,
        Command::Flush(args) => tokio::task::spawn_blocking(move || cmd_flush(args)).await?,
        Command::Discover(args) => discover::run(args).await,
    }
}
