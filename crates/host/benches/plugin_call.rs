//! The cost of a plugin `validate` through the ABI against the same work as a
//! direct Rust call: `direct` runs the SDK's schema check in-process; `abi`
//! encodes the request, crosses the C ABI on the calling thread, and decodes
//! the answer; `worker` adds the hop to a plugin worker thread under permits
//! and a deadline, as the server calls it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use connvault_plugin_host::{HostOptions, Method, PluginHost, ProviderClient, pb};
use connvault_testkit::{PluginDir, build_plugins, dylib_name};
use criterion::{Criterion, criterion_group, criterion_main};
use prost::Message;

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

fn bench(c: &mut Criterion) {
    let so = build_plugins(&["connvault-fixture-testplugin"]).join(dylib_name("cvfixture_test"));
    let dir = PluginDir::new();
    dir.add(&so, "fixture");
    let host = PluginHost::load_dir(dir.path(), &HostOptions::default());
    let (plugin, source) = host.find("testdb").expect("fixture loaded");
    let source = source.clone();
    let plugin = plugin.clone();
    let request = request();

    let mut group = c.benchmark_group("validate");
    group.bench_function("direct", |b| {
        b.iter(|| {
            let connection = connvault_plugin_sdk::check(
                &source,
                request.connection.clone().unwrap_or_default(),
                &[],
            );
            std::hint::black_box(connection.is_ok())
        })
    });
    group.bench_function("abi", |b| {
        b.iter(|| {
            let bytes = request.encode_to_vec();
            let answer = plugin
                .call_blocking(Method::Validate, &bytes, 1 << 20)
                .unwrap();
            std::hint::black_box(pb::ValidateResponse::decode(answer.as_slice()).unwrap())
        })
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    group.bench_function("worker", |b| {
        b.to_async(&runtime).iter(|| async {
            std::hint::black_box(
                plugin
                    .validate(&request, Duration::from_secs(1))
                    .await
                    .unwrap(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
