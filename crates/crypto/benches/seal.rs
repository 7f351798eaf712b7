//! Sealing and opening a secret map of 256 B and 4 KiB with the current data
//! key: AES-256-GCM, a fresh random nonce, the associated data encoding, and
//! the secret map's own encoding — what every create, update and resolve pays.
//!
//! `cargo bench -p connvault-crypto --bench seal`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use connvault_crypto::{Aad, Keyring, MasterKey, Sealed, SecretMap, SecretString};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const AAD: Aad<'static> = Aad {
    tenant: "acme-prod",
    record_id: "0190c0de-0000-7000-8000-000000000001",
    purpose: "connection-secrets",
};

/// A map of about `size` bytes: a password, a token, and padding in a key-sized value.
fn secrets(size: usize) -> SecretMap {
    let mut map = SecretMap::new();
    map.insert(
        "password",
        SecretString::from("correct-horse-battery-staple"),
    );
    map.insert(
        "api_token",
        SecretString::from("tok_0123456789abcdef0123456789abcdef"),
    );
    let used = 28 + 36 + "password".len() + "api_token".len() + "tls.client_key_pem".len();
    map.insert(
        "tls.client_key_pem",
        SecretString::from("k".repeat(size.saturating_sub(used).max(1))),
    );
    map
}

fn bench(c: &mut Criterion) {
    let mut keyring = Keyring::new(MasterKey::generate().unwrap(), Vec::new()).unwrap();
    keyring.add_data_key().unwrap();
    let mut group = c.benchmark_group("seal");
    for (label, size) in [("256B", 256), ("4KiB", 4096)] {
        let map = secrets(size);
        let plain = map.to_bytes().unwrap().len();
        group.throughput(Throughput::Bytes(plain as u64));
        group.bench_function(format!("seal/{label}"), |b| {
            b.iter(|| black_box(keyring.seal(&AAD, black_box(&map)).unwrap().to_bytes()))
        });
        let bytes = keyring.seal(&AAD, &map).unwrap().to_bytes();
        group.bench_function(format!("open/{label}"), |b| {
            b.iter(|| {
                let sealed = Sealed::from_bytes(black_box(&bytes)).unwrap();
                black_box(keyring.open(&AAD, &sealed).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
