//! What a load run measured: per-method histograms while it goes, the
//! figures it reports, and their table.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::mix::Method;

/// The server's RSS at one moment of a run.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct RssSample {
    /// Seconds since the load started (the warm-up included).
    pub t_s: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// Latencies and errors by method, as a worker gathers them.
#[derive(Default)]
pub(super) struct Stats {
    pub(super) histograms: BTreeMap<Method, Histogram<u64>>,
    pub(super) errors: BTreeMap<Method, BTreeMap<String, u64>>,
}

/// A histogram of µs.
pub(super) fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
    })
}

impl Stats {
    pub(super) fn record(
        &mut self,
        method: Method,
        elapsed: Duration,
        result: Result<(), tonic::Status>,
    ) {
        match result {
            Ok(()) => {
                let micros = u64::try_from(elapsed.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let _ = self
                    .histograms
                    .entry(method)
                    .or_insert_with(histogram)
                    .record(micros.min(100_000_000));
            }
            Err(status) => {
                *self
                    .errors
                    .entry(method)
                    .or_default()
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1;
            }
        }
    }

    pub(super) fn merge(&mut self, other: Stats) {
        for (method, histogram) in other.histograms {
            let _ = self
                .histograms
                .entry(method)
                .or_insert_with(self::histogram)
                .add(&histogram);
        }
        for (method, codes) in other.errors {
            let mine = self.errors.entry(method).or_default();
            for (code, count) in codes {
                *mine.entry(code).or_default() += count;
            }
        }
    }
}

/// One method's figures.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MethodReport {
    /// Successful requests in the measured window.
    pub requests: u64,
    /// Failed requests in the measured window.
    pub errors: u64,
    /// Successful requests per second.
    pub throughput_rps: f64,
    /// Latency percentiles of successful requests, microseconds.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Errors by gRPC code.
    pub error_codes: BTreeMap<String, u64>,
}

/// A run's figures.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    /// What was measured (`connvault`, `baseline`).
    pub target: String,
    /// The mix.
    pub mix: String,
    /// Workers.
    pub concurrency: usize,
    /// HTTP/2 connections.
    pub channels: usize,
    /// Measured seconds.
    pub duration_s: f64,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// By method name.
    pub methods: BTreeMap<String, MethodReport>,
    /// All successful requests per second.
    pub total_rps: f64,
    /// Server RSS before the run, KiB (when the server's pid is known).
    pub rss_kib_start: Option<u64>,
    /// Server RSS at the end of the warm-up, KiB: judge growth from here.
    #[serde(default)]
    pub rss_kib_after_warmup: Option<u64>,
    /// Server RSS after the run, KiB.
    pub rss_kib_end: Option<u64>,
    /// Server RSS every `rss_every` from the start of the load (warm-up
    /// included), and once more at its end; empty when the pid is unknown.
    #[serde(default)]
    pub rss_samples: Vec<RssSample>,
    /// Connections the run's `create` calls added (warm-up included) less
    /// those its `delete` calls removed: how much the data set grew. They go
    /// with the tenants at clean-up.
    #[serde(default)]
    pub connections_added: i64,
}

/// Prints a report as a table.
pub fn print_table(report: &Report) {
    println!(
        "{} | mix {} | concurrency {} | channels {} | {:.1} s measured after {:.1} s warm-up",
        report.target,
        report.mix,
        report.concurrency,
        report.channels,
        report.duration_s,
        report.warmup_s
    );
    println!(
        "{:<8} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
        "method", "requests", "req/s", "p50 µs", "p90 µs", "p99 µs", "p999 µs", "max µs"
    );
    for (name, m) in &report.methods {
        let errors = if m.errors == 0 {
            "0".to_owned()
        } else {
            format!("{} {:?}", m.errors, m.error_codes)
        };
        println!(
            "{name:<8} {:>10} {:>11.1} {:>9} {:>9} {:>9} {:>9} {:>9}  {errors}",
            m.requests, m.throughput_rps, m.p50_us, m.p90_us, m.p99_us, m.p999_us, m.max_us
        );
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut total = format!("total {:.1} req/s", report.total_rps);
    if let (Some(start), Some(end)) = (report.rss_kib_start, report.rss_kib_end) {
        total.push_str(&format!("; server RSS {:.1} MiB", mib(start)));
        if let Some(warm) = report.rss_kib_after_warmup {
            total.push_str(&format!(" -> {:.1} MiB after warm-up", mib(warm)));
        }
        total.push_str(&format!(" -> {:.1} MiB", mib(end)));
    }
    if report.connections_added != 0 {
        total.push_str(&format!(
            "; {:+} connections (created less deleted)",
            report.connections_added
        ));
    }
    println!("{total}");
    if !report.rss_samples.is_empty() {
        let samples: Vec<String> = report
            .rss_samples
            .iter()
            .map(|s| format!("{}s {:.1}", (s.t_s * 10.0).round() / 10.0, mib(s.rss_kib)))
            .collect();
        println!("server RSS MiB over time: {}", samples.join(", "));
    }
}
