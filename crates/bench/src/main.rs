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

mod baseline;
mod cli;
mod client;
mod discover;
mod echo;
mod flush;
mod load;
mod peers;
mod rounds;
mod scale;
mod spawn;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cli::{LoadArgs, ServerArgs, Target, run_load, write_json};
use crate::load::Mix;

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
    Baseline(baseline::BaselineArgs),
    /// Loads N connections, then measures start-up, RSS, disk and latency.
    Scale(ScaleArgs),
    /// Measures the cost of a durable write and the group-commit batch size.
    Flush(FlushArgs),
    /// Measures cold and cached DiscoverMetadata against a throwaway PostgreSQL.
    Discover(discover::DiscoverArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    load: LoadArgs,
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
        Command::Baseline(args) => baseline::run(args).await,
        Command::Scale(args) => cmd_scale(args).await,
        Command::Flush(args) => tokio::task::spawn_blocking(move || cmd_flush(args)).await?,
        Command::Discover(args) => discover::run(args).await,
    }
}
