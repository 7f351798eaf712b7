//! `baseline`: the same load against a bare tonic server answering
//! `connvault.v1` with canned messages of the same size, and against
//! connvault; connvault's figures as ratios of the baseline's, with the goals.

use std::collections::BTreeMap;

use clap::Args;
use serde::Serialize;

use crate::cli::{LoadArgs, ServerArgs, Target, run_load, write_json};
use crate::load::{self, Mix, Report};
use crate::{client, echo, flush};

/// The arguments of `connvault-bench baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
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

pub async fn run(args: BaselineArgs) -> anyhow::Result<()> {
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
