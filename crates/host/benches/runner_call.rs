//! The cost of process isolation: a `validate` of the SDK fixture through
//! the scheduler as the server calls it, with the plugin in this process
//! (`in_process`) and in a runner process (`runner`); `runner_blocking`
//! is the bare round trip to the runner on the calling thread. The
//! `concurrent` group keeps 64 calls in flight through one runner, for
//! its throughput (calls per second).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use connvault_plugin_host::{
    HostOptions, Isolation, Method, Plugin, PluginHost, ProviderClient, RunnerOptions, pb,
};
use connvault_testkit::{PluginDir, build_plugins, dylib_name};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

const IN_FLIGHT: usize = 64;

fn request() -> pb::ValidateRequest {
    let value = |text: &str| pb::Value {
        kind: Some(pb::value::Kind::StringValue(text.to_owned())),
    };
    pb::ValidateRequest {
        connection: Some(pb::ConnectionSpec {
            data_source: "testdb".into(),
            config: [
                ("host".to_owned(), value("db.example.com")),
                ("port".to_owned(), value("5432")),
                ("database".to_owned(), value("orders")),
                ("user".to_owned(), value("app")),
            ]
            .into_iter()
            .collect(),
            secrets: [("password".to_owned(), "s3cret-value".to_owned())]
                .into_iter()
                .collect(),
            tls: None,
        }),
        ..Default::default()
    }
}

fn load(dir: &PluginDir, isolation: Isolation) -> Arc<Plugin> {
    let options = HostOptions {
        isolation,
        runner: RunnerOptions {
            command: Some((
                env!("CARGO_BIN_EXE_connvault-plugin-runner").into(),
                Vec::new(),
            )),
            ..RunnerOptions::default()
        },
        ..HostOptions::default()
    };
    let host = PluginHost::load_dir(dir.path(), &options);
    host.find("testdb").expect("fixture loaded").0.clone()
}

fn bench(c: &mut Criterion) {
    let so = build_plugins(&["connvault-fixture-testplugin"]).join(dylib_name("cvfixture_test"));
    let dir = PluginDir::new();
    dir.add(&so, "fixture");
    let in_process = load(&dir, Isolation::InProcess);
    let runner = load(&dir, Isolation::Process);
    let request = request();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("isolation");
    for (name, plugin) in [("in_process", &in_process), ("runner", &runner)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                std::hint::black_box(
                    plugin
                        .validate(&request, Duration::from_secs(5))
                        .await
                        .unwrap(),
                )
            })
        });
    }
    group.bench_function("runner_blocking", |b| {
        b.iter(|| {
            let bytes = request.encode_to_vec();
            let answer = runner
                .call_blocking(Method::Validate, &bytes, 1 << 20)
                .unwrap();
            std::hint::black_box(pb::ValidateResponse::decode(answer.as_slice()).unwrap())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("concurrent");
    group.throughput(Throughput::Elements(IN_FLIGHT as u64));
    for (name, plugin) in [("in_process", &in_process), ("runner", &runner)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let calls =
                    (0..IN_FLIGHT).map(|_| plugin.validate(&request, Duration::from_secs(5)));
                for answer in futures_join_all(calls).await {
                    std::hint::black_box(answer.unwrap());
                }
            })
        });
    }
    group.finish();
}

/// Awaits every future, polling them together.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs = Vec::with_capacity(set.len());
    let mut pending: Vec<Option<std::pin::Pin<Box<F>>>> = set.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => {
                        *result = Some(output);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.extend(results.into_iter().flatten());
    outputs
}

criterion_group!(benches, bench);
criterion_main!(benches);
