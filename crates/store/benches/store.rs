//! Store micro-benchmarks through the storage traits: get, put (durable and
//! not) and a page of 50, on the sled backend.
//!
//! `cargo bench -p connvault-store`. The durable put bench runs one writer, so
//! it measures a full flush + fsync per write; the group-commit test shows
//! how concurrent writers share flushes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use connvault_store::sled::{SledOptions, SledStore};
use connvault_store::{
    ConnectionIndex, ConnectionQuery, ConnectionRecord, ConnectionStore, TenantRecord, TenantStore,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn record(id: String, i: usize) -> ConnectionRecord {
    ConnectionRecord {
        tenant_id: "bench".into(),
        id,
        display_name_key: format!("connection {i}"),
        index: ConnectionIndex {
            data_source: "postgresql".into(),
            ..Default::default()
        },
        revision: 0,
        value: vec![0x5a; 512],
    }
}

fn setup(
    runtime: &tokio::runtime::Runtime,
    durable: bool,
    rows: usize,
) -> (tempfile::TempDir, SledStore, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let options = SledOptions::default().with_durable(durable);
    let store = SledStore::open(dir.path().join("data"), options).unwrap();
    let ids = runtime.block_on(async {
        let tenant = TenantRecord {
            tenant_id: "bench".into(),
            value: vec![],
        };
        store.create_tenant(&tenant).await.unwrap();
        let mut ids = Vec::with_capacity(rows);
        for i in 0..rows {
            let id = uuid::Uuid::now_v7().to_string();
            store
                .create_connection(&record(id.clone(), i), None)
                .await
                .unwrap();
            ids.push(id);
        }
        ids
    });
    (dir, store, ids)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_dir, store, ids) = setup(&runtime, false, 10_000);

    c.bench_function("get", |b| {
        let mut i = 0;
        b.to_async(&runtime).iter(|| {
            i = (i + 7919) % ids.len();
            let (store, id) = (&store, &ids[i]);
            async move { black_box(store.get_connection("bench", id).await.unwrap()) }
        });
    });

    c.bench_function("list_page_50", |b| {
        let mut i = 0;
        b.to_async(&runtime).iter(|| {
            i = (i + 7919) % (ids.len() - 50);
            let query = ConnectionQuery {
                tenant_id: "bench".into(),
                filter: Default::default(),
                order: Default::default(),
                after: Some(ids[i].clone()),
                limit: 50,
            };
            let store = &store;
            async move { black_box(store.list_connections(&query).await.unwrap()) }
        });
    });

    for durable in [false, true] {
        let (_dir, store, _) = setup(&runtime, durable, 0);
        let name = if durable {
            "put_durable"
        } else {
            "put_not_durable"
        };
        let mut i = 0;
        c.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                i += 1;
                let record = record(uuid::Uuid::now_v7().to_string(), i);
                let store = &store;
                async move { store.create_connection(&record, None).await.unwrap() }
            });
        });
        if durable {
            eprintln!(
                "put_durable: {} durable writes in {} flushes",
                store.durable_writes(),
                store.flushes()
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
