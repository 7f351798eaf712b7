//! Process isolation against real plugins in real runner processes: a C
//! plugin that crashes, hangs, allocates, floods and tries to escape on
//! request (`plugins/fixtures/faulty/plugin.c`), beside the SDK fixture.
//! Each fault costs the call that caused it, never the host or the other
//! plugins, and the runner is back afterwards; each confinement measure is
//! observed from inside the runner.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use connvault_plugin_host::{
    CallError, HostOptions, Isolation, LoadError, Plugin, PluginHost, ProviderClient,
    RunnerOptions, pb, runner,
};
use connvault_testkit::{PluginDir, build_plugins, compile_c_plugin, dylib_name, workspace_root};

const RUNNER: &str = env!("CARGO_BIN_EXE_connvault-plugin-runner");

/// The faulty C plugin, compiled once per test process.
fn faulty_so() -> PathBuf {
    static PATH: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = tempfile::tempdir().unwrap();
        let source = workspace_root().join("plugins/fixtures/faulty/plugin.c");
        let so = compile_c_plugin(&source, out.path(), "faulty", &[]);
        (out, so)
    })
    .1
    .clone()
}

fn fixture_so() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        build_plugins(&["connvault-fixture-testplugin"]).join(dylib_name("cvfixture_test"))
    })
    .clone()
}

fn process_options() -> HostOptions {
    HostOptions {
        isolation: Isolation::Process,
        runner: RunnerOptions {
            command: Some((RUNNER.into(), Vec::new())),
            kill_grace: Duration::from_millis(200),
            ..RunnerOptions::default()
        },
        ..HostOptions::default()
    }
}

/// Loads the faulty plugin and the SDK fixture with `options`.
fn load(options: &HostOptions) -> (PluginDir, Arc<Plugin>, Arc<Plugin>) {
    let dir = PluginDir::new();
    dir.add(&faulty_so(), "faulty");
    dir.add(&fixture_so(), "fixture");
    let host = PluginHost::load_dir(dir.path(), options);
    assert!(host.refused().is_empty(), "{:?}", host.refused());
    let faulty = host.find("faulty").unwrap().0.clone();
    let fixture = host.find("testdb").unwrap().0.clone();
    (dir, faulty, fixture)
}

fn string(value: &str) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::StringValue(value.to_owned())),
    }
}

fn faulty_request(mode: &str, path: &Path) -> pb::ValidateRequest {
    pb::ValidateRequest {
        connection: Some(pb::ConnectionSpec {
            data_source: "faulty".into(),
            config: [
                ("mode".to_owned(), string(mode)),
                ("path".to_owned(), string(&path.to_string_lossy())),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn faulty(
    plugin: &Arc<Plugin>,
    mode: &str,
    path: &Path,
    deadline: Duration,
) -> Result<pb::ValidateResponse, CallError> {
    plugin.validate(&faulty_request(mode, path), deadline).await
}

/// The message of the report a reporting mode answers with.
async fn report(plugin: &Arc<Plugin>, mode: &str, path: &Path) -> String {
    match faulty(plugin, mode, path, Duration::from_secs(20)).await {
        Err(CallError::Application { error, .. }) => error.message,
        other => panic!("{mode}: expected a report, got {other:?}"),
    }
}

/// The fixture's validate answers.
async fn fixture_answers(fixture: &Arc<Plugin>) {
    let request = pb::ValidateRequest {
        connection: Some(pb::ConnectionSpec {
            data_source: "testdb".into(),
            config: [("host".to_owned(), string("db.example"))]
                .into_iter()
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = fixture
        .validate(&request, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(answer.violations.is_empty(), "{:?}", answer.violations);
}

/// Waits (at most a minute, for a loaded machine) until the faulty plugin
/// answers a normal call again.
async fn back(plugin: &Arc<Plugin>) {
    let started = Instant::now();
    loop {
        match faulty(plugin, "ok", Path::new("/"), Duration::from_secs(20)).await {
            Ok(answer) => {
                assert!(answer.normalized_config.contains_key("mode"));
                return;
            }
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the runner did not come back: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn unavailable_reason(result: Result<pb::ValidateResponse, CallError>) -> String {
    match result {
        Err(CallError::Unavailable { plugin, reason }) => {
            assert_eq!(plugin, "faulty");
            reason
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_costs_one_call_and_the_runner_comes_back() {
    let (_dir, faulty_plugin, fixture) = load(&process_options());
    assert_eq!(faulty_plugin.isolation(), Isolation::Process);
    back(&faulty_plugin).await;
    let restarts = || {
        faulty_plugin
            .stats()
            .runner_restarts
            .load(Ordering::Relaxed)
    };
    let none = Path::new("/nonexistent");

    for (mode, expected) in [
        ("segv", "killed by signal 11 (SIGSEGV)"),
        ("abort", "killed by signal 6 (SIGABRT)"),
        ("exit", "exited with code 3"),
    ] {
        let before = restarts();
        let reason =
            unavailable_reason(faulty(&faulty_plugin, mode, none, Duration::from_secs(20)).await);
        assert!(reason.contains(expected), "{mode}: {reason}");
        assert!(reason.contains("validate"), "{mode}: {reason}");
        fixture_answers(&fixture).await;
        back(&faulty_plugin).await;
        assert!(restarts() > before, "{mode}: the runner was not restarted");
    }

    // An endless loop: the caller gets DEADLINE_EXCEEDED on time, the runner
    // is killed just after, and no worker stays in the call.
    let before = restarts();
    let looped = faulty(&faulty_plugin, "loop", none, Duration::from_millis(300)).await;
    assert!(
        matches!(looped, Err(CallError::DeadlineExceeded { .. })),
        "{looped:?}"
    );
    fixture_answers(&fixture).await;
    let started = Instant::now();
    while restarts() == before {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the looping runner was not killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    back(&faulty_plugin).await;
    assert_eq!(faulty_plugin.stats().hung(), 0);
    assert!(!faulty_plugin.degraded());

    // 4 GiB do not fit under the 1 GiB address-space limit: the plugin
    // sees malloc fail, and the runner lives on.
    let before = restarts();
    assert_eq!(
        report(&faulty_plugin, "alloc", none).await,
        "malloc of 4 GiB failed"
    );
    assert_eq!(restarts(), before);

    // A flood of output: the call fails with the output cap, the host's log
    // gets a bounded part of the 128 MiB printed.
    let flooded = faulty(&faulty_plugin, "flood", none, Duration::from_secs(30)).await;
    assert!(
        matches!(flooded, Err(CallError::OutputTooLarge { .. })),
        "{flooded:?}"
    );
    fixture_answers(&fixture).await;
    back(&faulty_plugin).await;
}

#[tokio::test]
async fn a_runner_cannot_read_the_secrets_fork_a_shell_or_reach_its_parent() {
    let secrets = tempfile::tempdir().unwrap();
    let key = secrets.path().join("master.key");
    std::fs::write(&key, "c2VjcmV0LWtleS1ieXRlcy0wMTIzNDU2Nzg5YWJjZGVm").unwrap();
    let marker = secrets.path().join("pwned");
    let (_dir, plugin, _) = load(&process_options());

    let read = report(&plugin, "read", &key).await;
    if runner::landlock_abi() > 0 {
        assert!(read.contains("Permission denied"), "{read}");
        // What the runner may read, it reads: the rule is not a blanket refusal.
        let hosts = report(&plugin, "read", Path::new("/etc/hosts")).await;
        assert!(hosts.starts_with("read "), "{hosts}");
    } else {
        eprintln!("this kernel has no Landlock: the runner reads files as the host can ({read})");
    }

    let forked = report(&plugin, "fork", &marker).await;
    assert_eq!(
        forked,
        "fork: Operation not permitted; exec: Operation not permitted"
    );
    assert!(!marker.exists(), "a shell ran");

    let escape = report(&plugin, "escape", Path::new("/")).await;
    assert_eq!(
        escape,
        "signal: Operation not permitted; ptrace: Operation not permitted; read memory: Operation not permitted"
    );
    back(&plugin).await;
}

#[tokio::test]
async fn the_same_plugin_in_process_reads_the_key_and_forks_a_shell() {
    // What the runner refuses, the host's own process allows: the measures
    // above are the runner's, not the machine's.
    let secrets = tempfile::tempdir().unwrap();
    let key = secrets.path().join("master.key");
    std::fs::write(&key, "secret").unwrap();
    let marker = secrets.path().join("pwned");
    let (_dir, plugin, _) = load(&HostOptions::default());
    assert_eq!(plugin.isolation(), Isolation::InProcess);
    let read = report(&plugin, "read", &key).await;
    assert_eq!(read, format!("read 6 bytes of {}", key.display()));
    let forked = report(&plugin, "fork", &marker).await;
    assert_eq!(forked, "forked and ran /bin/sh (status 0)");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "pwned\n");
    let probe = report(&plugin, "probe", Path::new("/")).await;
    assert!(probe.contains("CARGO"), "{probe}");
}

#[tokio::test]
async fn the_runner_runs_under_its_limits_with_a_bare_environment() {
    let options = HostOptions {
        runner: RunnerOptions {
            memory_bytes: 900 << 20,
            open_files: 64,
            cpu_secs: 3600,
            ..process_options().runner
        },
        ..process_options()
    };
    let (_dir, plugin, _) = load(&options);
    let probe = report(&plugin, "probe", Path::new("/")).await;
    let (limits, env) = probe.split_once(" env=").unwrap();
    assert_eq!(
        limits,
        format!(
            "no_new_privs=1 seccomp=2 as={} nofile=64 cpu=3600",
            900u64 << 20
        )
    );
    for name in env.split(',').filter(|name| !name.is_empty()) {
        assert!(
            [
                "TZ",
                "LANG",
                "LC_ALL",
                "SSL_CERT_FILE",
                "SSL_CERT_DIR",
                "MALLOC_ARENA_MAX",
                "MIMALLOC_ARENA_RESERVE",
            ]
            .contains(&name),
            "the runner inherited {name}: {env}"
        );
    }
    let files = report(&plugin, "files", Path::new("/")).await;
    let opened: usize = files
        .strip_prefix("opened ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap();
    assert!(opened < 64, "{files}");
    assert!(files.ends_with("Too many open files"), "{files}");
}

#[tokio::test]
async fn a_runner_over_its_cpu_time_is_killed_and_restarted() {
    let options = HostOptions {
        runner: RunnerOptions {
            cpu_secs: 1,
            ..process_options().runner
        },
        ..process_options()
    };
    let (_dir, plugin, fixture) = load(&options);
    // The deadline is far; the CPU limit stops the loop first.
    let reason =
        unavailable_reason(faulty(&plugin, "loop", Path::new("/"), Duration::from_secs(60)).await);
    assert!(
        reason.contains("SIGXCPU") || reason.contains("SIGKILL"),
        "{reason}"
    );
    fixture_answers(&fixture).await;
    back(&plugin).await;
}

#[tokio::test]
async fn a_hung_test_kills_only_the_io_runner() {
    let (_dir, _faulty, fixture) = load(&process_options());
    let hang = pb::TestRequest {
        connection: Some(pb::ConnectionSpec {
            data_source: "testdb".into(),
            config: [
                ("host".to_owned(), string("127.0.0.1")),
                ("port".to_owned(), string("1")),
                ("mode".to_owned(), string("hang")),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        }),
        deadline_ms: 300,
        egress: None,
    };
    let before = fixture.stats().runner_restarts.load(Ordering::Relaxed);
    let hung = fixture
        .test("tenant-a", &hang, Duration::from_millis(300))
        .await;
    assert!(
        matches!(hung, Err(CallError::DeadlineExceeded { .. })),
        "{hung:?}"
    );
    // Validation never noticed: its runner is another process.
    fixture_answers(&fixture).await;
    let started = Instant::now();
    while fixture.stats().runner_restarts.load(Ordering::Relaxed) == before {
        assert!(started.elapsed() < Duration::from_secs(60), "no restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fixture.stats().hung(), 0, "no worker stays in the call");
}

#[test]
fn a_runner_that_could_read_a_protected_path_is_refused() {
    let options = HostOptions {
        runner: RunnerOptions {
            protected_paths: vec!["/usr/share/connvault/master.key".into()],
            ..process_options().runner
        },
        ..process_options()
    };
    let dir = PluginDir::new();
    let file = dir.add(&faulty_so(), "faulty");
    let host = PluginHost::load_dir(dir.path(), &options);
    assert!(host.plugins().is_empty());
    let refusal = &host.refused()[0];
    assert_eq!(refusal.path, file);
    assert!(
        matches!(&refusal.error, LoadError::Runner(reason) if reason.contains("lies under /usr")),
        "{}",
        refusal.error
    );
}

#[test]
fn a_plugin_refused_after_its_runners_started_takes_them_along() {
    // A copy of the runner under a name of this test's own, so its processes
    // are told apart from the other tests' runners.
    let bin = tempfile::tempdir().unwrap();
    let runner = bin.path().join("refused-plugin-runner");
    std::fs::copy(RUNNER, &runner).unwrap();
    let options = HostOptions {
        runner: RunnerOptions {
            command: Some((runner.clone(), Vec::new())),
            ..process_options().runner
        },
        ..process_options()
    };
    let out = tempfile::tempdir().unwrap();
    let source = workspace_root().join("crates/host/tests/fixtures/schema_plugin.c");
    let so = compile_c_plugin(&source, out.path(), "bad_schema", &["EMPTY_ENUM"]);
    let dir = PluginDir::new();
    dir.add(&so, "bad_schema");
    let host = PluginHost::load_dir(dir.path(), &options);
    assert!(
        matches!(&host.refused()[0].error, LoadError::Schema(_)),
        "refused by the schema lint, after describe through its runner: {:?}",
        host.refused()
    );
    let running = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| {
                std::fs::read(entry.path().join("cmdline"))
                    .is_ok_and(|cmdline| cmdline.starts_with(runner.as_os_str().as_encoded_bytes()))
            })
            .count()
    };
    let started = Instant::now();
    while running() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the refused plugin's runners still run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
