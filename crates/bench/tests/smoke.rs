//! Smoke runs of `connvault-bench` against a spawned debug server, so the
//! load generator, the baseline and the scale run cannot rot. A few seconds each.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use connvault_testkit::{PluginDir, build_plugins, dylib_name};

/// The `connvault` binary and a plugin dir with the fixture plugin.
fn server() -> (PathBuf, PluginDir) {
    let dir = build_plugins(&["connvault", "connvault-fixture-testplugin"]);
    let plugins = PluginDir::new();
    plugins.add(&dir.join(dylib_name("cvfixture_test")), "fixture");
    (dir.join("connvault"), plugins)
}

fn bench(args: &[&str]) -> serde_json::Value {
    bench_with_stdout(args).0
}

/// The JSON report and the printed tables.
fn bench_with_stdout(args: &[&str]) -> (serde_json::Value, String) {
    let (binary, plugins) = server();
    bench_against(&binary, &plugins, args)
}

/// The JSON report and the printed tables of a run against `binary` with `plugins`.
fn bench_against(
    binary: &std::path::Path,
    plugins: &PluginDir,
    args: &[&str],
) -> (serde_json::Value, String) {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_connvault-bench"))
        .args(args)
        .arg("--spawn")
        .arg(binary)
        .arg("--plugin-dir")
        .arg(plugins.path())
        .arg("--work-dir")
        .arg(out.path())
        .arg("--json")
        .arg(&json)
        .env_remove("CONNVAULT_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "connvault-bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let report =
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("bad JSON ({error}):\n{text}"));
    (report, stdout)
}

fn rps(report: &serde_json::Value, method: &str) -> f64 {
    report["methods"][method]["throughput_rps"]
        .as_f64()
        .unwrap_or_else(|| panic!("no {method} in {report}"))
}

#[test]
fn load_generator_reports_every_method() {
    let (report, stdout) = bench_with_stdout(&[
        "run",
        "--mix",
        "get=4,list=2,create=2,delete=2,update=1,test=1",
        "--concurrency",
        "8",
        "--channels",
        "2",
        "--duration",
        "3s",
        "--warmup",
        "300ms",
        "--rss-every",
        "1s",
        "--tenants",
        "2",
        "--per-tenant",
        "60",
    ]);
    for method in ["get", "list", "create", "delete", "update", "test"] {
        assert!(rps(&report, method) > 0.0, "{method}: {report}");
        assert!(
            report["methods"][method]["requests"].as_u64().unwrap() > 0,
            "{method}: {report}"
        );
        // Two concurrent updates of one connection without an etag can still
        // meet ABORTED (the store's compare-and-swap lost the race): that is
        // measured and reported, not a failure of the load generator. A
        // `delete` takes each connection the run created once: no NOT_FOUND.
        let codes = report["methods"][method]["error_codes"]
            .as_object()
            .unwrap();
        assert!(
            codes
                .keys()
                .all(|code| method == "update" && code == "Aborted"),
            "{method}: {report}"
        );
        assert!(report["methods"][method]["p99_us"].as_u64().unwrap() > 0);
    }
    // Every delete removes a connection a create of the run added.
    assert!(
        report["connections_added"].as_i64().unwrap() >= 0,
        "{report}"
    );
    assert!(report["rss_kib_end"].as_u64().unwrap() > 0);
    assert!(report["rss_kib_after_warmup"].as_u64().unwrap() > 0);
    // 3.3 s of load sampled every second: 0, 1, 2, 3 s and the end.
    let samples = report["rss_samples"].as_array().unwrap();
    assert!(samples.len() >= 4, "{report}");
    let times: Vec<f64> = samples.iter().map(|s| s["t_s"].as_f64().unwrap()).collect();
    assert!(times[0] < 0.5, "{times:?}");
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert!(*times.last().unwrap() >= 3.3, "{times:?}");
    assert!(samples.iter().all(|s| s["rss_kib"].as_u64().unwrap() > 0));
    assert!(stdout.contains("server RSS MiB over time: 0s "), "{stdout}");
}

#[test]
fn baseline_reports_ratios() {
    let report = bench(&[
        "baseline",
        "--scenarios",
        "get,list,delete",
        "--rounds",
        "2",
        "--concurrency",
        "8",
        "--channels",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--tenants",
        "1",
        "--per-tenant",
        "60",
        "--flush-writes",
        "5",
    ]);
    assert!(report["connection_bytes"].as_u64().unwrap() > 100);
    let comparisons = report["comparisons"].as_array().unwrap();
    // `delete` alone: every call creates (untimed) then deletes; the
    // baseline answers DeleteConnection too.
    assert_eq!(comparisons.len(), 3, "{report}");
    for comparison in comparisons {
        assert_eq!(comparison["rounds"], 2, "{comparison}");
        let ratio = &comparison["throughput_ratio"];
        let (min, median, max) = (
            ratio["min"].as_f64().unwrap(),
            ratio["median"].as_f64().unwrap(),
            ratio["max"].as_f64().unwrap(),
        );
        assert!(0.0 < min && min <= median && median <= max, "{comparison}");
        assert!(comparison["baseline_rps"]["median"].as_f64().unwrap() > 0.0);
        assert!(
            comparison["peer"].is_null(),
            "no peer asked for: {comparison}"
        );
    }
    // Both systems measured in every round, alternately.
    for scenario in ["get", "list", "delete"] {
        let rounds = &report["rounds"][scenario];
        assert_eq!(rounds["baseline"].as_array().unwrap().len(), 2, "{report}");
        assert_eq!(rounds["connvault"].as_array().unwrap().len(), 2, "{report}");
    }
    let deletes = &report["rounds"]["delete"]["connvault"];
    for round in deletes.as_array().unwrap() {
        let delete = &round["methods"]["delete"];
        assert!(delete["requests"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(delete["errors"], 0, "{report}");
    }
    assert!(report["flush"]["sequential_mean_us"].as_f64().unwrap() > 0.0);
}

/// `--pg-peer`: a real durable PostgreSQL measured by the real `pgbench`
/// in each round, beside connvault.
#[test]
fn baseline_measures_postgresql_as_a_peer() {
    let report = bench(&[
        "baseline",
        "--scenarios",
        "get,create",
        "--rounds",
        "2",
        "--pg-peer",
        "--peer-rows",
        "500",
        "--concurrency",
        "4",
        "--channels",
        "1",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--tenants",
        "1",
        "--per-tenant",
        "10",
        "--flush-writes",
        "0",
    ]);
    for scenario in ["get", "create"] {
        let tps = report["rounds"][scenario]["peer_tps"].as_array().unwrap();
        assert_eq!(tps.len(), 2, "{report}");
        assert!(tps.iter().all(|t| t.as_f64().unwrap() > 0.0), "{report}");
    }
    let comparisons = report["comparisons"].as_array().unwrap();
    let get = comparisons
        .iter()
        .find(|c| c["method"] == "get")
        .expect("get compared");
    assert_eq!(get["peer"]["query"], "pg select", "{get}");
    assert!(get["peer"]["ratio"]["median"].as_f64().unwrap() > 0.0);
    let create = comparisons
        .iter()
        .find(|c| c["method"] == "create")
        .expect("create compared");
    assert_eq!(create["peer"]["query"], "pg insert", "{create}");
    assert!(
        create["goal"].as_str().unwrap().contains("pg insert"),
        "{create}"
    );
}

#[test]
fn scale_run_loads_and_measures() {
    let report = bench(&[
        "scale",
        "--count",
        "1000",
        "--tenants",
        "5",
        "--samples",
        "50",
    ]);
    assert_eq!(report["count"], 1000);
    assert_eq!(report["pages_per_tenant"], 4, "{report}");
    assert!(report["startup_ms"].as_f64().unwrap() > 0.0);
    assert!(report["rss_mib_idle"].as_f64().unwrap() > 0.0);
    assert!(report["data_dir_mib"].as_f64().unwrap() > 0.0);
    for figure in ["get", "list_first", "list_middle", "list_last"] {
        assert!(
            report[figure]["p50_us"].as_u64().unwrap() > 0,
            "{figure}: {report}"
        );
    }
}

#[test]
fn discover_reports_cold_and_cached_latency() {
    let dir = build_plugins(&["connvault", "connvault-plugin-postgres"]);
    let plugins = PluginDir::new();
    plugins.add(
        &dir.join(dylib_name("connvault_plugin_postgres")),
        "postgres",
    );
    let (report, stdout) = bench_against(
        &dir.join("connvault"),
        &plugins,
        &["discover", "--samples", "5", "--cold-samples", "2"],
    );
    for (figure, samples) in [("cold", 2), ("cached", 5), ("get", 5)] {
        assert_eq!(report[figure]["samples"], samples, "{figure}: {report}");
        assert!(
            report[figure]["p50_us"].as_u64().unwrap() > 0,
            "{figure}: {report}"
        );
    }
    assert!(stdout.contains("discover cached"), "{stdout}");
}
