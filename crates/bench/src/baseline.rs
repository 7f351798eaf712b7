//! `baseline`: the same load against a bare tonic server answering
//! `connvault.v1` with canned messages of the same size, and against
//! connvault; connvault's figures as ratios of the baseline's, with the goals.

use std::collections::BTreeMap;

use clap::Args;
use serde::Serialize;

use crate::cli::{LoadArgs, ServerArgs, Target, run_load, write_json};
use crate::load::{self, Mix, Report};
use crate::peers::{PeerQuery, PgPeer};
use crate::rounds::{self, Spread, Verdict};
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
    /// Alternating rounds per scenario (baseline, connvault, baseline...),
    /// each of --warmup plus --duration.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Also measure PostgreSQL with `pgbench` in each round of `get` (a
    /// point select by key) and `create` (a durable single-row insert), on a
    /// throwaway durable cluster under --work-dir.
    #[arg(long)]
    pg_peer: bool,
    /// Rows of the peer's table for the point select.
    #[arg(long, default_value_t = 10_000)]
    peer_rows: usize,
}

/// One line of the comparison: a scenario's method over every round.
#[derive(Debug, Serialize)]
struct Comparison {
    scenario: String,
    method: String,
    rounds: usize,
    baseline_rps: Spread,
    connvault_rps: Spread,
    /// connvault / baseline throughput, round by round.
    throughput_ratio: Spread,
    connvault_p99_us: Spread,
    /// connvault / baseline p99, round by round.
    p99_ratio: Spread,
    /// The PostgreSQL peer, when measured.
    peer: Option<PeerComparison>,
    goal: Option<String>,
    verdict: Option<Verdict>,
    /// The throughput ratio's range is over 20 % of its median.
    wide_spread: bool,
}

/// connvault against `pgbench` on the same run.
#[derive(Debug, Serialize)]
struct PeerComparison {
    query: &'static str,
    tps: Spread,
    /// connvault / PostgreSQL throughput, round by round.
    ratio: Spread,
}

/// Every round of one scenario.
#[derive(Debug, Default, Serialize)]
struct ScenarioRounds {
    baseline: Vec<Report>,
    connvault: Vec<Report>,
    peer_tps: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct BaselineReport {
    connection_bytes: usize,
    startup_ms: Option<f64>,
    flush: Option<flush::FlushReport>,
    rounds: BTreeMap<String, ScenarioRounds>,
    comparisons: Vec<Comparison>,
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

    let peer = if args.pg_peer {
        eprintln!("starting a durable throwaway PostgreSQL for pgbench");
        Some(PgPeer::start(
            args.server.work_dir.as_deref(),
            args.peer_rows,
            args.load.concurrency,
        )?)
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
        let mut rounds: BTreeMap<String, ScenarioRounds> = BTreeMap::new();
        for (scenario, mix) in &scenarios {
            let spec = args.load.spec(mix.clone());
            let peer_query = peer.as_ref().and(PeerQuery::for_scenario(scenario));
            let entry = rounds.entry(scenario.clone()).or_default();
            // A, B, (C), A, B, (C)...: each system measured in every stretch of
            // the run, so the machine's drift lands on all of them alike.
            for round in 1..=args.rounds {
                eprintln!(
                    "scenario {scenario}, round {round}/{}: baseline",
                    args.rounds
                );
                let base = run_load(
                    "baseline",
                    &echo_target,
                    &echo_channels,
                    &echo_workload,
                    &spec,
                )
                .await?;
                eprintln!(
                    "scenario {scenario}, round {round}/{}: connvault",
                    args.rounds
                );
                let real = run_load("connvault", &target, &channels, &workload, &spec).await?;
                if let (Some(peer), Some(query)) = (peer.as_ref(), peer_query) {
                    eprintln!(
                        "scenario {scenario}, round {round}/{}: {}",
                        args.rounds,
                        query.label()
                    );
                    let tps = tokio::task::block_in_place(|| {
                        peer.run(query, args.load.concurrency, args.load.duration)
                    })?;
                    entry.peer_tps.push(tps);
                }
                entry.baseline.push(base);
                entry.connvault.push(real);
            }
        }
        drop(echo);
        anyhow::Ok((connection_bytes, rounds))
    }
    .await;
    let cleaned = load::cleanup(&channels[0], &workload).await;
    let (connection_bytes, rounds) = result?;
    cleaned?;

    let comparisons = compare(&rounds);
    print_comparisons(&comparisons, &args);
    if let Some(ms) = startup_ms {
        println!("connvault start-up (empty data dir): {ms:.0} ms");
    }
    write_json(
        args.load.json.as_ref(),
        &BaselineReport {
            connection_bytes,
            startup_ms,
            flush,
            rounds,
            comparisons,
        },
    )?;
    if let Some(spawned) = target.spawned.as_mut() {
        spawned.stop();
    }
    Ok(())
}

/// Summarizes every scenario's rounds, method by method.
fn compare(rounds: &BTreeMap<String, ScenarioRounds>) -> Vec<Comparison> {
    let mut comparisons = Vec::new();
    for (scenario, measured) in rounds {
        let Some(first) = measured.connvault.first() else {
            continue;
        };
        for method in first.methods.keys() {
            let figure = |reports: &[Report], pick: fn(&load::MethodReport) -> f64| -> Vec<f64> {
                reports
                    .iter()
                    .map(|r| r.methods.get(method).map_or(0.0, pick))
                    .collect()
            };
            let base_rps = figure(&measured.baseline, |m| m.throughput_rps);
            let cv_rps = figure(&measured.connvault, |m| m.throughput_rps);
            let base_p99 = figure(&measured.baseline, |m| m.p99_us as f64);
            let cv_p99 = figure(&measured.connvault, |m| m.p99_us as f64);
            let (Some(baseline_rps), Some(connvault_rps), Some(throughput_ratio)) = (
                Spread::of(&base_rps),
                Spread::of(&cv_rps),
                Spread::of(&rounds::ratios(&cv_rps, &base_rps)),
            ) else {
                continue;
            };
            let p99_ratio = Spread::of(&rounds::ratios(&cv_p99, &base_p99)).unwrap_or(Spread {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            });
            let connvault_p99_us = Spread::of(&cv_p99).unwrap_or(p99_ratio);
            let peer = PeerQuery::for_scenario(scenario)
                .zip(Spread::of(&measured.peer_tps))
                .zip(Spread::of(&rounds::ratios(&cv_rps, &measured.peer_tps)))
                .map(|((query, tps), ratio)| PeerComparison {
                    query: query.label(),
                    tps,
                    ratio,
                });
            let (goal, verdict) = match rounds::goal(scenario, method) {
                Some(goal) => {
                    let mut text = format!("≥ {}× echo", goal.min_ratio);
                    let mut verdict = Verdict::at_least(&throughput_ratio, goal.min_ratio);
                    if let Some(max) = goal.max_p99_ratio {
                        text.push_str(&format!(", p99 ≤ {max}×"));
                        verdict = verdict.and(Verdict::at_most(&p99_ratio, max));
                    }
                    if let (Some(min), Some(peer)) = (goal.min_peer_ratio, &peer) {
                        text.push_str(&format!(", ≥ {min}× {}", peer.query));
                        verdict = verdict.and(Verdict::at_least(&peer.ratio, min));
                    }
                    (Some(text), Some(verdict))
                }
                None => (None, None),
            };
            comparisons.push(Comparison {
                scenario: scenario.clone(),
                method: method.clone(),
                rounds: cv_rps.len(),
                baseline_rps,
                connvault_rps,
                wide_spread: throughput_ratio.relative_width() > 0.2,
                throughput_ratio,
                connvault_p99_us,
                p99_ratio,
                peer,
                goal,
                verdict,
            });
        }
    }
    comparisons
}

fn range(spread: &Spread) -> String {
    format!(
        "{:.2}× ({:.2}–{:.2})",
        spread.median, spread.min, spread.max
    )
}

fn print_comparisons(comparisons: &[Comparison], args: &BaselineArgs) {
    println!(
        "connvault vs same-run baseline: {} alternating rounds of {:?} each, concurrency {}, {} channels; medians, (range over rounds)",
        args.rounds, args.load.duration, args.load.concurrency, args.load.channels
    );
    println!(
        "{:<9} {:<7} {:>10} {:>10} {:>20} {:>9} {:>20} {:>10} {:>20}  goal",
        "scenario",
        "method",
        "base req/s",
        "cv req/s",
        "ratio",
        "cv p99",
        "p99 ratio",
        "pg tps",
        "cv / pg"
    );
    for c in comparisons {
        let (pg_tps, pg_ratio) = match &c.peer {
            Some(peer) => (format!("{:.0}", peer.tps.median), range(&peer.ratio)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let verdict = match (&c.goal, c.verdict) {
            (Some(goal), Some(verdict)) => format!("{goal}: {}", verdict.label()),
            _ => String::new(),
        };
        let wide = if c.wide_spread {
            " [spread over 20 %: too wide to steer by]"
        } else {
            ""
        };
        println!(
            "{:<9} {:<7} {:>10.0} {:>10.0} {:>20} {:>7.0}µs {:>20} {:>10} {:>20}  {verdict}{wide}",
            c.scenario,
            c.method,
            c.baseline_rps.median,
            c.connvault_rps.median,
            range(&c.throughput_ratio),
            c.connvault_p99_us.median,
            range(&c.p99_ratio),
            pg_tps,
            pg_ratio,
        );
    }
}
