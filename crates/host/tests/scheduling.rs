//! The scheduler against the real fixture plugin and real sockets: pure calls
//! never wait behind I/O calls, and the I/O workers are shared fairly among
//! tenants.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use connvault_plugin_host::{CallError, HostOptions, Plugin, PluginHost, ProviderClient, pb};
use connvault_testkit::{PluginDir, build_plugins, dylib_name};

fn fixture_so() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        build_plugins(&["connvault-fixture-testplugin"]).join(dylib_name("cvfixture_test"))
    })
    .clone()
}

fn load_fixture(options: &HostOptions) -> (PluginDir, Arc<Plugin>) {
    let dir = PluginDir::new();
    dir.add(&fixture_so(), "fixture");
    let host = PluginHost::load_dir(dir.path(), options);
    assert!(host.refused().is_empty(), "{:?}", host.refused());
    let plugin = host.plugins()[0].clone();
    (dir, plugin)
}

fn spec(pairs: &[(&str, &str)]) -> pb::ConnectionSpec {
    pb::ConnectionSpec {
        data_source: "testdb".into(),
        config: pairs
            .iter()
            .map(|(key, value)| {
                (
                    (*key).to_owned(),
                    pb::Value {
                        kind: Some(pb::value::Kind::StringValue((*value).to_owned())),
                    },
                )
            })
            .collect(),
        ..Default::default()
    }
}

/// A test that waits for the server at `port` to greet it, for up to a minute.
fn greeting_test(port: u16) -> pb::TestRequest {
    pb::TestRequest {
        connection: Some(spec(&[
            ("host", "127.0.0.1"),
            ("port", &port.to_string()),
            ("mode", "greeting"),
        ])),
        deadline_ms: 60_000,
        egress: None,
    }
}

fn validate_request() -> pb::ValidateRequest {
    pb::ValidateRequest {
        connection: Some(spec(&[("host", "db.example")])),
        ..Default::default()
    }
}

fn render_request(mode: &str) -> pb::RenderRequest {
    pb::RenderRequest {
        connection: Some(spec(&[("host", "h"), ("mode", mode)])),
        include_secrets: false,
    }
}

/// What the test servers accepted, in order, by tag.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<&'static str>>>);

impl Log {
    fn push(&self, tag: &'static str) {
        self.0.lock().unwrap().push(tag);
    }

    fn count(&self, tag: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|t| **t == tag).count()
    }

    fn entries(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }
}

/// A server that accepts and never answers, holding each connection until
/// released (after `close`, it drops new ones at once).
struct Silent {
    port: u16,
    held: Arc<Mutex<Vec<TcpStream>>>,
    closed: Arc<AtomicBool>,
}

impl Silent {
    fn start(log: &Log, tag: &'static str) -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let closed: Arc<AtomicBool> = Arc::default();
        let (log, kept, shut) = (log.clone(), Arc::clone(&held), Arc::clone(&closed));
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                log.push(tag);
                if !shut.load(Ordering::SeqCst) {
                    kept.lock().unwrap().push(stream);
                }
            }
        });
        Silent { port, held, closed }
    }

    /// Closes the oldest held connection: that test ends (no greeting).
    fn release_one(&self) {
        drop(self.held.lock().unwrap().remove(0));
    }

    /// Closes every connection, now and from now on.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.held.lock().unwrap().clear();
    }
}

/// A server that greets every connection with one byte; returns its port.
fn greeter(log: &Log, tag: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = log.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            log.push(tag);
            let _ = stream.write_all(b"!");
        }
    });
    port
}

/// Waits (at most a minute, for a loaded machine) until `done` holds.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts a greeting test of `tenant` against `port` as a task of its own.
fn spawn_test(
    plugin: &Arc<Plugin>,
    tenant: &'static str,
    port: u16,
) -> tokio::task::JoinHandle<Result<pb::TestResponse, CallError>> {
    let plugin = Arc::clone(plugin);
    tokio::spawn(async move {
        plugin
            .test(tenant, &greeting_test(port), Duration::from_secs(61))
            .await
    })
}

fn io_queued(plugin: &Plugin) -> usize {
    plugin.stats().io.queued.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_render_are_answered_while_every_io_worker_is_busy() {
    let options = HostOptions {
        workers_per_plugin: 2,
        io_calls_per_tenant: 2,
        ..HostOptions::default()
    };
    let (_dir, plugin) = load_fixture(&options);
    let log = Log::default();
    let silent = Silent::start(&log, "a");
    let tests: Vec<_> = (0..2)
        .map(|_| spawn_test(&plugin, "acme", silent.port))
        .collect();
    wait_until("both I/O workers are in a test", || log.count("a") == 2).await;
    assert_eq!(plugin.stats().io.busy.load(Ordering::Relaxed), 2);

    // Both I/O workers wait for a greeting that does not come for a minute;
    // the pure lane answers meanwhile, well within a deadline a queue behind
    // those tests would have missed.
    let answer = plugin
        .validate(&validate_request(), Duration::from_secs(20))
        .await
        .unwrap();
    assert!(answer.violations.is_empty(), "{:?}", answer.violations);
    let rendered = plugin
        .render(&render_request("normal"), Duration::from_secs(20))
        .await
        .unwrap();
    assert!(rendered.uri.starts_with("testdb://"));
    assert_eq!(log.count("a"), 2, "the tests are still waiting");

    silent.close();
    for test in tests {
        let result = test.await.unwrap().unwrap();
        assert!(!result.success);
        assert_eq!(result.error_category, pb::ErrorCategory::Protocol as i32);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_calls_fill_their_own_lane_and_then_fail_fast() {
    let options = HostOptions {
        workers_per_plugin: 2,
        pure_workers_per_plugin: 2,
        io_calls_per_tenant: 2,
        ..HostOptions::default()
    };
    let deadline = Duration::from_millis(300);
    let patient = Duration::from_secs(60);

    // Tests that never return hold every I/O worker...
    let (_dir, plugin) = load_fixture(&options);
    let hanging = pb::TestRequest {
        connection: Some(spec(&[("host", "127.0.0.1"), ("mode", "hang")])),
        deadline_ms: 100,
        egress: None,
    };
    for _ in 0..2 {
        let started = Instant::now();
        let error = plugin.test("acme", &hanging, deadline).await.unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(error, CallError::DeadlineExceeded { .. }),
            "{error:?}"
        );
        assert_eq!(error.grpc_code(), 4);
        // The plugin never returns: any answer at all proves the caller is
        // not held past its deadline. The bound leaves a loaded two-core CI
        // machine room while staying far from "waited for the plugin".
        assert!(took >= deadline, "answered before the deadline: {took:?}");
        assert!(took < deadline + Duration::from_secs(10), "took {took:?}");
    }
    assert!(plugin.degraded());
    assert_eq!(plugin.stats().io.hung.load(Ordering::Relaxed), 2);
    assert_eq!(plugin.stats().hung(), 2);
    // ...so the next test fails at once, without waiting for a worker...
    let log = Log::default();
    let started = Instant::now();
    let error = plugin
        .test("other", &greeting_test(greeter(&log, "b")), patient)
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Unavailable { .. }), "{error:?}");
    assert_eq!(error.grpc_code(), 14);
    assert!(error.to_string().contains("every I/O worker"), "{error}");
    assert!(started.elapsed() < patient / 4, "{:?}", started.elapsed());
    // ...and validate is served all the same.
    let answer = plugin.validate(&validate_request(), patient).await.unwrap();
    assert!(answer.violations.is_empty());

    // The other way round: renders that never return hold every pure worker;
    // then renders fail fast, and tests still run.
    let (_dir, plugin) = load_fixture(&options);
    for _ in 0..2 {
        let error = plugin
            .render(&render_request("hang"), deadline)
            .await
            .unwrap_err();
        assert!(
            matches!(error, CallError::DeadlineExceeded { .. }),
            "{error:?}"
        );
    }
    assert_eq!(plugin.stats().pure.hung.load(Ordering::Relaxed), 2);
    let error = plugin
        .render(&render_request("normal"), patient)
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Unavailable { .. }), "{error:?}");
    let result = plugin
        .test("acme", &greeting_test(greeter(&log, "b")), patient)
        .await
        .unwrap();
    assert!(result.success, "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_share_leaves_the_other_workers_to_the_rest() {
    let options = HostOptions {
        workers_per_plugin: 4,
        io_queue_per_tenant: 4,
        ..HostOptions::default()
    };
    let (_dir, plugin) = load_fixture(&options);
    assert_eq!(plugin.io_calls_per_tenant(), 2, "half the I/O workers");
    let log = Log::default();
    let silent = Silent::start(&log, "a");

    // a's first two tests hold its share; the next ones wait in its queue.
    let mut flood: Vec<_> = (0..2)
        .map(|_| spawn_test(&plugin, "a", silent.port))
        .collect();
    wait_until("a holds its two workers", || log.count("a") == 2).await;
    for _ in 0..3 {
        flood.push(spawn_test(&plugin, "a", silent.port));
    }
    wait_until("three tests of a wait", || io_queued(&plugin) == 3).await;

    // One more waits until its deadline, and says why.
    let error = plugin
        .test("a", &greeting_test(silent.port), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Queued { .. }), "{error:?}");
    assert_eq!(error.grpc_code(), 4);
    assert!(
        error.to_string().contains("the tenant's own calls"),
        "{error}"
    );

    // A full queue refuses at once.
    flood.push(spawn_test(&plugin, "a", silent.port));
    wait_until("four tests of a wait", || io_queued(&plugin) == 4).await;
    let error = plugin
        .test("a", &greeting_test(silent.port), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CallError::QueueFull { limit: 4, .. }),
        "{error:?}"
    );
    assert_eq!(error.grpc_code(), 8);
    assert_eq!(plugin.stats().io.refused.load(Ordering::Relaxed), 1);

    // b's test gets one of the two workers a may not have, and answers.
    let result = plugin
        .test(
            "b",
            &greeting_test(greeter(&log, "b")),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(result.success, "{result:?}");
    assert_eq!(
        log.count("a"),
        2,
        "a's waiting tests did not take b's workers"
    );

    silent.close();
    for test in flood {
        assert!(!test.await.unwrap().unwrap().success);
    }
    assert_eq!(plugin.stats().io.busy.load(Ordering::Relaxed), 0);
    assert_eq!(io_queued(&plugin), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_worker_goes_to_the_waiting_tenant_that_holds_fewest() {
    // Every worker may go to one tenant: only the order of the queue is tested.
    let options = HostOptions {
        workers_per_plugin: 2,
        io_calls_per_tenant: 2,
        ..HostOptions::default()
    };
    let (_dir, plugin) = load_fixture(&options);
    let log = Log::default();
    let silent = Silent::start(&log, "a");
    let mut flood: Vec<_> = (0..2)
        .map(|_| spawn_test(&plugin, "a", silent.port))
        .collect();
    wait_until("a holds both workers", || log.count("a") == 2).await;
    for _ in 0..3 {
        flood.push(spawn_test(&plugin, "a", silent.port));
    }
    wait_until("three tests of a wait", || io_queued(&plugin) == 3).await;
    let b = spawn_test(&plugin, "b", greeter(&log, "b"));
    wait_until("b waits behind them", || io_queued(&plugin) == 4).await;

    // One of a's tests ends: its worker goes to b, which came last but holds
    // none, and not to a's next test, which came first.
    silent.release_one();
    let result = b.await.unwrap().unwrap();
    assert!(result.success, "{result:?}");
    assert_eq!(log.entries()[..3], ["a", "a", "b"]);

    silent.close();
    for test in flood {
        assert!(!test.await.unwrap().unwrap().success);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_abandons_its_call_until_the_plugin_returns() {
    let (_dir, plugin) = load_fixture(&HostOptions::default());
    let log = Log::default();
    let silent = Silent::start(&log, "a");
    let test = spawn_test(&plugin, "acme", silent.port);
    wait_until("the test is in the plugin", || log.count("a") == 1).await;
    // The request is cancelled: the call is abandoned, its worker still held.
    test.abort();
    assert!(test.await.unwrap_err().is_cancelled());
    assert_eq!(plugin.stats().io.hung.load(Ordering::Relaxed), 1);
    assert_eq!(plugin.stats().abandoned.load(Ordering::Relaxed), 1);
    assert!(plugin.degraded());
    // Once the plugin returns, the worker and the tenant's share are free again.
    silent.close();
    wait_until("the plugin returned and its worker is free", || {
        !plugin.degraded() && plugin.stats().io.busy.load(Ordering::Relaxed) == 0
    })
    .await;
}
