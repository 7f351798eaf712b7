//! Keys that rotate: per-tenant data keys and crypto-shredding, against the
//! real binary and the real files of its data directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use connvault::pb::v1;
use connvault_crypto::{Aad, Keyring, MasterKey, Sealed};
use connvault_store::sled::{SledOptions, SledStore};
use connvault_store::{ConnectionStore as _, StoreError};

use crate::damage::{KEY, verify};
use crate::support::{Options, Server, connection, create};

/// Opens the stopped server's store (waiting out sled's lock after a drop).
pub fn open_store(data: &Path) -> SledStore {
    let started = Instant::now();
    loop {
        match SledStore::open(
            data.join("store"),
            SledOptions::default().with_durable(false),
        ) {
            Ok(store) => return store,
            Err(StoreError::Locked { .. }) if started.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => panic!("opening the store: {error}"),
        }
    }
}

/// The keyring of a stopped server's data directory, as anyone holding the
/// master key `key` and the directory gets it.
pub async fn offline_keyring(data: &Path, key: &str) -> Keyring {
    let store = open_store(data);
    let master = MasterKey::from_base64(key).unwrap();
    connvault::master_key::open_keyring(&store, master, data, false)
        .await
        .unwrap()
        .0
}

/// Creates tenant `id` in the stopped server's store as an older version
/// did: without a data key of its own (its secrets go under the global key).
pub async fn create_legacy_tenant(data: &Path, id: &str) {
    use connvault_store::TenantStore as _;
    let store = open_store(data);
    let tenant = v1::Tenant {
        display_name: format!("Legacy {id}"),
        ..Default::default()
    };
    let record = connvault_store::TenantRecord {
        tenant_id: id.to_owned(),
        value: connvault::record_format::encode_tenant(&tenant),
    };
    store.create_tenant(&record).await.unwrap();
}

/// The sealed secrets of connection `name`, read from the stopped server's store.
async fn sealed_of(data: &Path, name: &str) -> Vec<u8> {
    let (tenant, id) = split(name);
    let store = open_store(data);
    let record = store.get_connection(tenant, id).await.unwrap();
    connvault::record_format::decode_connection(&record.value)
        .unwrap()
        .sealed_secrets
}

fn split(name: &str) -> (&str, &str) {
    let parts: Vec<&str> = name.split('/').collect();
    (parts[1], parts[3])
}

fn open_password(keyring: &Keyring, name: &str, sealed: &[u8]) -> Option<String> {
    use connvault_crypto::ExposeSecret as _;
    let (tenant, id) = split(name);
    let aad = Aad {
        tenant,
        record_id: id,
        purpose: "connection-secrets",
    };
    let opened = keyring.open(&aad, &Sealed::from_bytes(sealed).ok()?).ok()?;
    opened.get("password").map(|s| s.expose_secret().to_owned())
}

/// Whether `needle` occurs in any file of the store directory, read raw.
fn in_raw_files(dir: &Path, needle: &[u8]) -> bool {
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_deleted_tenant_is_crypto_shredded() {
    let mut server = Server::start_with(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    });
    server.create_tenant("doomed").await;
    server.create_tenant("kept").await;
    let mut client = server.connections().await;
    let doomed = create(&mut client, "doomed", connection("doomed db", "pw-doomed"))
        .await
        .unwrap()
        .name;
    let kept = create(&mut client, "kept", connection("kept db", "pw-kept"))
        .await
        .unwrap()
        .name;
    server.stop();
    let data = server.data_dir();
    let sealed = sealed_of(&data, &doomed).await;
    let kept_sealed = sealed_of(&data, &kept).await;
    assert!(
        in_raw_files(&data.join("store"), &sealed),
        "the ciphertext is in the store's raw files"
    );
    let keyring = offline_keyring(&data, KEY).await;
    assert!(keyring.has_tenant_keys("doomed") && keyring.has_tenant_keys("kept"));
    assert_eq!(
        open_password(&keyring, &doomed, &sealed).as_deref(),
        Some("pw-doomed")
    );
    drop(keyring);

    server.restart();
    server
        .tenants()
        .await
        .delete_tenant(v1::DeleteTenantRequest {
            name: "tenants/doomed".into(),
            force: true,
        })
        .await
        .unwrap();
    assert!(
        server
            .log_text()
            .contains("destroyed the tenant's data key")
    );
    server.stop();

    let still_there = in_raw_files(&data.join("store"), &sealed);
    eprintln!("after the delete, the ciphertext is still in the raw files: {still_there}");
    let keyring = offline_keyring(&data, KEY).await;
    assert!(!keyring.has_tenant_keys("doomed"));
    assert_eq!(
        open_password(&keyring, &doomed, &sealed),
        None,
        "the master key and the data directory no longer open the deleted tenant's secrets"
    );
    assert_eq!(
        open_password(&keyring, &kept, &kept_sealed).as_deref(),
        Some("pw-kept")
    );
    // Nor does any key the key file holds, whatever tenant it claims.
    assert!(
        !std::fs::read(data.join("keys.v1"))
            .unwrap()
            .windows(6)
            .any(|w| w == b"doomed")
    );
    drop(keyring);
    let report = verify(&data, KEY);
    assert!(report.status.success(), "{report:?}");
}

#[tokio::test]
async fn a_key_left_by_an_interrupted_delete_is_destroyed_at_start() {
    let mut server = Server::start_with(Options {
        master_key: Some(KEY.into()),
        ..Options::default()
    });
    server.create_tenant("acme").await;
    server.stop();
    let data = server.data_dir();
    {
        // What a crash between the store's delete and the key's destruction
        // leaves: a key of a tenant the store does not hold.
        let store: std::sync::Arc<dyn connvault_store::Store> =
            std::sync::Arc::new(open_store(&data));
        let master = MasterKey::from_base64(KEY).unwrap();
        let (keyring, _) =
            connvault::master_key::open_keyring(store.as_ref(), master, &data, false)
                .await
                .unwrap();
        let keys = connvault::live_keys::LiveKeys::new(store, keyring, &data);
        keys.change().await.add_tenant_key("ghost").await.unwrap();
        assert!(keys.keyring().has_tenant_keys("ghost"));
    }
    assert!(offline_keyring(&data, KEY).await.has_tenant_keys("ghost"));
    server.restart();
    assert!(
        server.log_text().contains("a tenant that no longer exists"),
        "{}",
        server.log_text()
    );
    server.stop();
    let keyring = offline_keyring(&data, KEY).await;
    assert!(!keyring.has_tenant_keys("ghost"));
    assert!(keyring.has_tenant_keys("acme"));
}
