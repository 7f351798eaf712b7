//! The keyring's persistence: changes interrupted by a crash, tenant keys
//! kept out of the store.

use connvault_store::MetaStore as _;
use connvault_store::sled::{SledOptions, SledStore};

use super::*;

fn master() -> MasterKey {
    MasterKey::from_bytes([42; 32])
}

fn store(dir: &Path) -> SledStore {
    SledStore::open(
        dir.join("store"),
        SledOptions::default().with_durable(false),
    )
    .unwrap()
}

async fn open(store: &SledStore, dir: &Path) -> Result<(Keyring, KeyringState), KeyError> {
    open_keyring(store, master(), dir, false).await
}

/// A keyring made and persisted, and the same with a second version.
async fn two_versions(store: &SledStore, dir: &Path) -> (Keyring, Keyring) {
    let (first, state) = open(store, dir).await.unwrap();
    assert_eq!(state, KeyringState::Created);
    let mut second = first.clone();
    second.rotate(["acme"]).unwrap();
    (first, second)
}

#[tokio::test]
async fn a_change_the_key_file_has_is_finished_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_, second) = two_versions(&store, dir.path()).await;
    // The crash: pending recorded, key file replaced, the copy not yet.
    let next = key_file_of(&second);
    store
        .put_meta(PENDING_KEY, &encode_store_part(&next))
        .await
        .unwrap();
    keys_file::write(dir.path(), &next).unwrap();
    let (opened, state) = open(&store, dir.path()).await.unwrap();
    assert_eq!(state, KeyringState::Intact);
    assert_eq!(opened.versions(), vec![1, 2]);
    assert!(opened.has_tenant_keys("acme"));
    assert_eq!(store.get_meta(PENDING_KEY).await.unwrap(), None);
    assert_eq!(
        store.get_meta(WRAPPED_KEYS_KEY).await.unwrap(),
        Some(next.wrapped_keys)
    );
}

#[tokio::test]
async fn a_change_that_never_reached_the_key_file_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (first, second) = two_versions(&store, dir.path()).await;
    store
        .put_meta(PENDING_KEY, &encode_store_part(&key_file_of(&second)))
        .await
        .unwrap();
    let (opened, state) = open(&store, dir.path()).await.unwrap();
    assert_eq!(state, KeyringState::Intact);
    assert_eq!(opened.versions(), vec![1]);
    assert_eq!(store.get_meta(PENDING_KEY).await.unwrap(), None);
    assert_eq!(
        store.get_meta(WRAPPED_KEYS_KEY).await.unwrap(),
        Some(key_file_of(&first).wrapped_keys)
    );
}

#[tokio::test]
async fn tenant_keys_live_in_the_key_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (first, _) = open(&store, dir.path()).await.unwrap();
    let old = key_file_of(&first);
    let mut with_tenant = first.clone();
    with_tenant.add_tenant_key("acme").unwrap();
    let persisted = persist_keyring(&store, dir.path(), &old, &with_tenant)
        .await
        .unwrap();
    let tenant_key = with_tenant.tenant_keys()[0].key.ciphertext.clone();
    // The store's copy: marked, and without the tenant's wrapped key.
    let copy = store.get_meta(WRAPPED_KEYS_KEY).await.unwrap().unwrap();
    assert!(WrappedKey::list_is_marked(&copy));
    assert!(!copy.windows(tenant_key.len()).any(|w| w == tenant_key));
    assert_eq!(store.get_meta(PENDING_KEY).await.unwrap(), None);
    let (opened, _) = open(&store, dir.path()).await.unwrap();
    assert!(opened.has_tenant_keys("acme"));

    // Removing the tenant key rewrites the file without it; the copy
    // loses its mark.
    let mut without = with_tenant.clone();
    without.remove_tenant("acme");
    persist_keyring(&store, dir.path(), &persisted, &without)
        .await
        .unwrap();
    let bytes = std::fs::read(keys_file::path(dir.path())).unwrap();
    assert!(!bytes.windows(tenant_key.len()).any(|w| w == tenant_key));
    let copy = store.get_meta(WRAPPED_KEYS_KEY).await.unwrap().unwrap();
    assert!(!WrappedKey::list_is_marked(&copy));

    // With tenant keys, a lost or damaged key file is refused, not rebuilt
    // from the store's copy.
    persist_keyring(&store, dir.path(), &key_file_of(&without), &with_tenant)
        .await
        .unwrap();
    let path = keys_file::path(dir.path());
    let mut damaged = std::fs::read(&path).unwrap();
    damaged[20] ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    assert!(matches!(
        open(&store, dir.path()).await,
        Err(KeyError::TenantKeysLost {
            what: "damaged",
            ..
        })
    ));
    std::fs::remove_file(&path).unwrap();
    let error = open(&store, dir.path()).await.unwrap_err();
    assert!(
        matches!(
            error,
            KeyError::TenantKeysLost {
                what: "missing",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("restore the key file from a backup")
    );
}
