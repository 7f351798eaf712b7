//! Request validation: parsing resource names, converting a config Struct,
//! and a whole `CreateConnection` with `validate_only` (name, labels and
//! product rules, the plugin's validate through the ABI on a worker thread,
//! the unique-name lookup) — everything a create does before sealing and
//! writing.
//!
//! `cargo bench -p connvault-bench --bench validation`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use connvault::app::{App, Limits};
use connvault::config::Config;
use connvault::pb::v1;
use connvault_plugin_host::{HostOptions, PluginHost};
use connvault_store::sled::SledOptions;
use connvault_testkit::{PluginDir, build_plugins, dylib_name};
use criterion::{Criterion, criterion_group, criterion_main};

fn connection() -> v1::Connection {
    let value = |text: &str| prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(text.to_owned())),
    };
    v1::Connection {
        display_name: "Orders replica".into(),
        data_source: "TESTDB".into(),
        config: Some(prost_types::Struct {
            fields: [
                ("host", value("db.example.com")),
                ("port", value("5432")),
                ("database", value("orders")),
                ("user", value("app")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        }),
        secrets: [("password".to_owned(), "s3cret-value".to_owned())]
            .into_iter()
            .collect(),
        labels: [("env".to_owned(), "prod".to_owned())]
            .into_iter()
            .collect(),
        product: "Reporting".into(),
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("validation");
    group.bench_function("parse_connection_name", |b| {
        b.iter(|| {
            black_box(
                connvault::names::parse_connection(
                    black_box("tenants/acme-prod/connections/0190c0de-0000-7000-8000-000000000001"),
                    "name",
                )
                .unwrap(),
            )
        })
    });
    let config = connection().config;
    group.bench_function("config_from_struct", |b| {
        b.iter(|| {
            black_box(
                connvault::plugin_messages::config_from_struct(
                    black_box(config.as_ref()),
                    "connection.config",
                )
                .unwrap(),
            )
        })
    });

    let so = build_plugins(&["connvault-fixture-testplugin"]).join(dylib_name("cvfixture_test"));
    let plugins = PluginDir::new();
    plugins.add(&so, "fixture");
    let host = PluginHost::load_dir(
        plugins.path(),
        &HostOptions {
            require_pins: false,
            ..HostOptions::default()
        },
    );
    let data = tempfile::tempdir().unwrap();
    let store: Arc<dyn connvault_store::Store> = Arc::new(
        connvault::store_setup::open_sled(
            &data.path().join("store"),
            SledOptions::default().with_durable(false),
        )
        .unwrap(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let master = connvault_crypto_master();
    let keyring = runtime
        .block_on(connvault::master_key::open_keyring(
            store.as_ref(),
            master,
            data.path(),
            false,
        ))
        .unwrap()
        .0;
    let app = App::new(
        store,
        keyring,
        data.path(),
        Arc::new(host),
        Limits::from_config(&Config::default()),
    );
    runtime
        .block_on(app.create_tenant("acme".into(), None))
        .unwrap();
    group.bench_function("create_validate_only", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                app.create_connection("tenants/acme", Some(connection()), true)
                    .await
                    .unwrap(),
            )
        })
    });
    group.finish();
}

fn connvault_crypto_master() -> connvault_crypto::MasterKey {
    connvault_crypto::MasterKey::generate().unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);
