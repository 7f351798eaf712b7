//! The sled backend: the conformance suite, and what only sled has
//! (persistence across a reopen, the directory lock, group commit, write
//! batching, the legacy layout upgrade).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{LegacyConnection, SledOptions, SledStore, layout};
use crate::conformance::{self, Backend, BoxFuture, Fixture};
use crate::{
    AuditStore, ConnectionFilter, ConnectionIndex, ConnectionQuery, ConnectionRecord,
    ConnectionStore, MetaStore, StoreError, TenantRecord, TenantStore,
};

struct Sled {
    durable: bool,
}

impl Backend for Sled {
    fn fresh(&self) -> BoxFuture<'_, Fixture> {
        let durable = self.durable;
        Box::pin(async move {
            let dir = tempfile::tempdir().unwrap();
            let options = SledOptions::default().with_durable(durable);
            let store = SledStore::open(dir.path().join("data"), options).unwrap();
            Fixture::new(Arc::new(store), dir)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms() {
    conformance::run_all(&Sled { durable: false }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_when_durable() {
    conformance::run_all(&Sled { durable: true }).await;
}

#[test]
fn matches_the_btreemap_model() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    conformance::model::check_against_model(&Sled { durable: false }, &runtime, 48);
}

fn open(dir: &tempfile::TempDir) -> SledStore {
    let options = SledOptions::default().with_durable(false);
    SledStore::open(dir.path().join("data"), options).unwrap()
}

async fn tenant(store: &SledStore, id: &str) {
    let record = TenantRecord {
        tenant_id: id.into(),
        value: format!("tenant {id}").into_bytes(),
    };
    store.create_tenant(&record).await.unwrap();
}

fn conn(tenant: &str, id: &str, name: &str) -> ConnectionRecord {
    ConnectionRecord {
        tenant_id: tenant.into(),
        id: id.into(),
        display_name_key: name.into(),
        index: ConnectionIndex::default(),
        revision: 0,
        value: b"v".to_vec(),
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn query(tenant: &str, limit: usize) -> ConnectionQuery {
    ConnectionQuery {
        tenant_id: tenant.into(),
        filter: ConnectionFilter::default(),
        order: Default::default(),
        after: None,
        limit,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_reads_back_identical_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let (tenants, connections, audit, meta, changes);
    {
        let store = SledStore::open(&path, SledOptions::default()).unwrap();
        tenant(&store, "t1").await;
        tenant(&store, "t2").await;
        for i in 0..20 {
            let t = if i % 2 == 0 { "t1" } else { "t2" };
            let value: Vec<u8> = (0..=255u8).cycle().skip(i).take(300 + i).collect();
            let record = ConnectionRecord {
                value,
                index: ConnectionIndex {
                    data_source: format!("ds{i}"),
                    ..Default::default()
                },
                ..conn(t, &new_id(), &format!("n{i}"))
            };
            store.create_connection(&record, None).await.unwrap();
            let event = format!("event {i}");
            store.append_audit(t, event.as_bytes(), true).await.unwrap();
        }
        store.put_meta("keyring", b"\x01wrapped").await.unwrap();
        tenants = store.list_tenants(None, 100).await.unwrap();
        connections = [
            store.list_connections(&query("t1", 100)).await.unwrap(),
            store.list_connections(&query("t2", 100)).await.unwrap(),
        ];
        audit = store.list_audit(None, 0, 100).await.unwrap();
        meta = store.get_meta("keyring").await.unwrap();
        changes = store.last_change_seq_now().unwrap();
        assert!(store.flushes() > 0);
    }
    let store = SledStore::open(&path, SledOptions::default()).unwrap();
    assert_eq!(store.list_tenants(None, 100).await.unwrap(), tenants);
    let t1 = store.list_connections(&query("t1", 100)).await.unwrap();
    assert_eq!(t1, connections[0]);
    let t2 = store.list_connections(&query("t2", 100)).await.unwrap();
    assert_eq!(t2, connections[1]);
    assert_eq!(store.list_audit(None, 0, 100).await.unwrap(), audit);
    assert_eq!(store.get_meta("keyring").await.unwrap(), meta);
    assert_eq!(store.tenant_connection_count("t1").await.unwrap(), 10);
    assert_eq!(store.last_change_seq_now().unwrap(), changes);
    // Sequence numbers keep increasing after a restart.
    let next = store
        .append_audit("t1", b"after restart", true)
        .await
        .unwrap();
    assert!(next > audit.last().unwrap().seq);
    let created = store
        .create_connection(&conn("t1", &new_id(), "later"), None)
        .await
        .unwrap();
    assert!(created.change_seq > changes);
}

/// Env var naming the directory the child process must fail to open.
const LOCK_CHILD_ENV: &str = "CONNVAULT_STORE_TEST_LOCK_CHILD";

/// The child half of `second_process_gets_locked`, which runs it in its own
/// process with `--ignored`; it means nothing in a process of its own.
#[test]
#[ignore = "run as a child process by second_process_gets_locked"]
fn lock_child() {
    let path = std::env::var_os(LOCK_CHILD_ENV).expect("run by second_process_gets_locked");
    match SledStore::open(&path, SledOptions::default()) {
        Err(StoreError::Locked { path: reported }) => {
            assert_eq!(reported, std::path::PathBuf::from(&path));
            println!("CHILD-GOT-LOCKED");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_process_gets_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let store = SledStore::open(&path, SledOptions::default()).unwrap();
    tenant(&store, "t").await;
    let started = Instant::now();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sled::tests::lock_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_CHILD_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("CHILD-GOT-LOCKED"), "{stdout}");
    // A lock is reported at once, not after a wait (a generous bound: the
    // child is a whole test binary starting on a loaded machine).
    assert!(started.elapsed() < Duration::from_secs(60));
    let message = StoreError::Locked { path: path.clone() }.to_string();
    assert!(message.contains(&path.display().to_string()));
    // Our own store still works.
    assert_eq!(store.get_tenant("t").await.unwrap().tenant_id, "t");
}

#[test]
fn second_open_in_same_process_gets_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let _store = SledStore::open(&path, SledOptions::default()).unwrap();
    assert!(matches!(
        SledStore::open(&path, SledOptions::default()),
        Err(StoreError::Locked { .. })
    ));
}

#[test]
fn group_commit_shares_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path().join("data"), SledOptions::default()).unwrap();
    store
        .create_tenant_blocking(&TenantRecord {
            tenant_id: "t".into(),
            value: vec![],
        })
        .unwrap();
    let before = (store.flushes(), store.durable_writes());
    let threads: Vec<_> = (0..16)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let record = conn("t", &new_id(), &format!("{thread}-{i}"));
                    store.create_connection_blocking(&record).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let flushes = store.flushes() - before.0;
    let writes = store.durable_writes() - before.1;
    assert_eq!(writes, 800);
    assert_eq!(store.tenant_connection_count_now("t").unwrap(), 800);
    assert!(flushes < writes, "{flushes} flushes for {writes} writes");
    eprintln!("group commit: {writes} durable writes in {flushes} flushes");
}

#[tokio::test]
async fn non_durable_store_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t").await;
    assert_eq!((store.flushes(), store.durable_writes()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t").await;
    let batches_before = store.write_batches();
    let tasks: Vec<_> = (0..32)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                let own = conn("t", &new_id(), &format!("own-{task}"));
                store.create_connection(&own, None).await.unwrap();
                store.append_audit("t", b"event", false).await.unwrap()
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for task in tasks {
        seqs.insert(task.await.unwrap());
    }
    assert_eq!(seqs.len(), 32, "every audit event has its own sequence");
    assert_eq!(store.tenant_connection_count_now("t").unwrap(), 32);
    let writes = 32 * 2;
    let batches = store.write_batches() - batches_before;
    assert!(
        batches <= writes,
        "{batches} transactions for {writes} writes"
    );
    eprintln!("{writes} writes in {batches} transactions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_entries_are_upgraded_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t").await;
    // Two entries as older versions wrote them (and a counter that knows them).
    for (id, name) in [("1", "alpha"), ("2", "beta")] {
        let key = layout::connection_key("t", id).unwrap();
        let stored = layout::encode_legacy_connection(name, format!("old {name}").as_bytes());
        store.inner.connections.insert(key, stored).unwrap();
        store
            .inner
            .names
            .insert(layout::name_key("t", name).unwrap(), id.as_bytes())
            .unwrap();
    }
    store
        .inner
        .tenants
        .insert("t", layout::encode_tenant(2, b"tenant t"))
        .unwrap();
    // Before the upgrade a point read works; a filtered list refuses.
    assert_eq!(
        store.get_connection("t", "1").await.unwrap().value,
        b"old alpha"
    );
    let filtered = ConnectionQuery {
        filter: ConnectionFilter {
            data_source: Some("ds-alpha".into()),
            ..Default::default()
        },
        ..query("t", 10)
    };
    assert!(store.list_connections(&filtered).await.is_err());
    let mut seen = Vec::new();
    let upgraded = store
        .upgrade_legacy(|legacy: LegacyConnection<'_>| {
            seen.push((legacy.tenant_id.to_owned(), legacy.id.to_owned()));
            let index = ConnectionIndex {
                data_source: format!("ds-{}", legacy.display_name_key),
                ..Default::default()
            };
            Ok((index, [b"new ".as_slice(), legacy.value].concat()))
        })
        .unwrap();
    assert_eq!(upgraded, 2);
    assert_eq!(seen, [("t".into(), "1".into()), ("t".into(), "2".into())]);
    let page = store.list_connections(&filtered).await.unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].value, b"new old alpha");
    assert_eq!(page.records[0].revision, 1);
    // Marked done: a second run scans nothing and converts nothing.
    let again = store
        .upgrade_legacy(|_| panic!("nothing left to convert"))
        .unwrap();
    assert_eq!(again, 0);
    // Upgraded entries take part in compare-and-swap like any other.
    let update = ConnectionRecord {
        value: b"v2".to_vec(),
        ..conn("t", "1", "alpha")
    };
    assert_eq!(
        store
            .update_connection(&update, 1, None)
            .await
            .unwrap()
            .revision,
        2
    );
}
