//! What the commands share: the server and load arguments, the server
//! under measurement, and JSON output.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde::Serialize;

use crate::client::{self, Auth};
use crate::load::{self, LoadSpec, Mix, Report};
use crate::spawn::{SpawnOptions, Spawned};

/// Parses `10s`, `500ms`, `2m` (a bare number is seconds).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
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

/// Which server to measure: one to start, or one running.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// Address of a running server (e.g. http://127.0.0.1:50051).
    #[arg(long, conflicts_with = "spawn")]
    pub(crate) addr: Option<String>,
    /// Start this `connvault` binary in --dev mode on a temp data dir instead.
    #[arg(long)]
    pub(crate) spawn: Option<PathBuf>,
    /// Plugin directory for --spawn; the server loads the files named `libconnvault_plugin_*.so` in it [default: a temp dir holding the fixture plugin found beside the binary, copied under such a name].
    #[arg(long)]
    pub(crate) plugin_dir: Option<PathBuf>,
    /// With --spawn: acknowledge writes before they are durable (`durable = false`).
    #[arg(long)]
    pub(crate) no_durable: bool,
    /// Where --spawn puts its temp dirs [default: the system temp dir]; use the real disk.
    #[arg(long)]
    pub(crate) work_dir: Option<PathBuf>,
    /// Bearer token sent as `authorization: Bearer <token>` [default with --spawn: the one the dev server prints].
    #[arg(long, env = "CONNVAULT_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Pid of the --addr server, to report its RSS (start, after warm-up, every --rss-every, end).
    #[arg(long)]
    pub(crate) pid: Option<u32>,
}

impl ServerArgs {
    /// How to start the `--spawn` server.
    pub(crate) fn spawn_options(&self) -> anyhow::Result<SpawnOptions> {
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

/// The shape of a load run.
#[derive(Debug, Clone, Args)]
pub(crate) struct LoadArgs {
    /// Method mix: name=weight pairs over get, list, create, delete, update, test,
    /// resolve. `delete` removes connections the run's `create` calls added
    /// (oldest first; when there is none, it creates one untimed, then deletes
    /// it); the seeded connections are never deleted.
    #[arg(long, default_value = "get=60,list=20,create=10,update=5,test=5")]
    pub(crate) mix: String,
    /// Requests in flight (one per worker).
    #[arg(long, short = 'c', default_value_t = 64)]
    pub(crate) concurrency: usize,
    /// HTTP/2 connections the workers share.
    #[arg(long, default_value_t = 4)]
    pub(crate) channels: usize,
    /// Measured time (10s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Unmeasured warm-up before it.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// Tenants the run creates (and deletes after).
    #[arg(long, default_value_t = 4)]
    pub(crate) tenants: usize,
    /// Connections created in each tenant before the run.
    #[arg(long, default_value_t = 100)]
    pub(crate) per_tenant: usize,
    /// Page size of `list`.
    #[arg(long, default_value_t = 50)]
    pub(crate) page_size: i32,
    /// Sample the server's RSS this often during a run, warm-up included (when
    /// its pid is known: --spawn or --pid; 0: only at the start, after the
    /// warm-up and at the end).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) rss_every: Duration,
    /// Also write the figures as JSON to this file (`-`: stdout).
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

impl LoadArgs {
    /// The run these arguments describe, with `mix`.
    pub(crate) fn spec(&self, mix: Mix) -> LoadSpec {
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

/// Writes `value` as pretty JSON to `path` (`-`: stdout; none: nowhere).
pub(crate) fn write_json<T: Serialize>(path: Option<&PathBuf>, value: &T) -> anyhow::Result<()> {
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
pub(crate) struct Target {
    pub(crate) spawned: Option<Spawned>,
    pub(crate) addr: String,
    pub(crate) auth: Auth,
    pub(crate) pid: Option<u32>,
}

impl Target {
    /// Starts the `--spawn` server or connects to `--addr`.
    pub(crate) fn open(args: &ServerArgs) -> anyhow::Result<Target> {
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

/// Runs `spec` as `name` against `target`.
pub(crate) async fn run_load(
    name: &str,
    target: &Target,
    channels: &[client::Chan],
    workload: &load::Workload,
    spec: &LoadSpec,
) -> anyhow::Result<Report> {
    load::run(name, channels, workload, spec, target.pid).await
}
