//! Store micro-benchmarks: get, put (durable and not) and a page of 50.
//!
//! `cargo bench -p connvault-store`. The durable put bench runs one writer, so
//! it measures a full flush + fsync per write; the group-commit test shows
//! how concurrent writers share flushes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use connvault_store::{ConnectionRecord, Store, StoreOptions, TenantRecord};
use criterion::{Criterion, criterion_group, criterion_main};

fn record(id: String, i: usize) -> ConnectionRecord {
    ConnectionRecord {
        tenant_id: "bench".into(),
        id,
        display_name_key: format!("connection {i}"),
        value: vec![0x5a; 512],
    }
}

fn setup(durable: bool, rows: usize) -> (tempfile::TempDir, Store, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path().join("data"),
        StoreOptions::default().with_durable(durable),
    )
    .unwrap();
    store
        .create_tenant(&TenantRecord {
            tenant_id: "bench".into(),
            value: vec![],
        })
        .unwrap();
    let ids: Vec<String> = (0..rows)
        .map(|i| {
            let id = uuid::Uuid::now_v7().to_string();
            store.create_connection(&record(id.clone(), i)).unwrap();
            id
        })
        .collect();
    (dir, store, ids)
}

fn bench(c: &mut Criterion) {
    let (_dir, store, ids) = setup(false, 10_000);

    c.bench_function("get", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % ids.len();
            black_box(store.get_connection("bench", &ids[i]).unwrap());
        });
    });

    c.bench_function("list_page_50", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % (ids.len() - 50);
            black_box(store.list_connections("bench", Some(&ids[i]), 50).unwrap());
        });
    });

    for durable in [false, true] {
        let (_dir, store, _) = setup(durable, 0);
        let name = if durable {
            "put_durable"
        } else {
            "put_not_durable"
        };
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                store
                    .create_connection(&record(uuid::Uuid::now_v7().to_string(), i))
                    .unwrap();
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
