//! Behaviour of [`Store`]: isolation, uniqueness, CAS, transactions,
//! pagination, persistence, locking and group commit.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{ConnectionRecord, Store, StoreError, StoreOptions, TenantRecord};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(
        dir.path().join("data"),
        StoreOptions::default().with_durable(false),
    )
    .unwrap()
}

fn tenant(store: &Store, id: &str) {
    store
        .create_tenant(&TenantRecord {
            tenant_id: id.into(),
            value: format!("tenant {id}").into_bytes(),
        })
        .unwrap();
}

fn conn(tenant: &str, id: &str, name: &str, value: &str) -> ConnectionRecord {
    ConnectionRecord {
        tenant_id: tenant.into(),
        id: id.into(),
        display_name_key: name.into(),
        value: value.as_bytes().to_vec(),
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[test]
fn tenant_prefix_isolation_a_vs_ab() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "a");
    tenant(&store, "ab");
    tenant(&store, "b");
    for i in 0..5 {
        store
            .create_connection(&conn("ab", &format!("id-{i}"), &format!("n{i}"), "ab"))
            .unwrap();
    }
    store
        .create_connection(&conn("a", "id-9", "n9", "a"))
        .unwrap();
    // Tenant "a" sees only its own connection, with or without a cursor.
    let page = store.list_connections("a", None, 100).unwrap();
    assert_eq!(page, vec![conn("a", "id-9", "n9", "a")]);
    assert!(
        store
            .list_connections("a", Some("id-0"), 100)
            .unwrap()
            .len()
            == 1
    );
    assert!(
        store
            .list_connections("a", Some("id-9"), 100)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_connections("ab", None, 100).unwrap().len(), 5);
    assert!(store.list_connections("b", None, 100).unwrap().is_empty());
    assert_eq!(
        store.get_connection("a", "id-0").unwrap_err().to_string(),
        "not found"
    );
    // Cache and names are isolated too.
    store.put_cache("ab", "id-0", "tables", b"x").unwrap();
    assert_eq!(store.clear_cache("a", None).unwrap(), 0);
    assert_eq!(store.find_connection_by_name("a", "n0").unwrap(), None);
    // Force-deleting "a" leaves "ab" intact.
    assert_eq!(store.delete_tenant("a", true).unwrap(), 1);
    assert_eq!(store.list_connections("ab", None, 100).unwrap().len(), 5);
    assert_eq!(
        store.get_cache("ab", "id-0", "tables").unwrap(),
        Some(b"x".to_vec())
    );
    assert_eq!(store.tenant_connection_count("ab").unwrap(), 5);
}

#[test]
fn tenants_crud_and_listing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for id in ["t3", "t1", "t2"] {
        tenant(&store, id);
    }
    assert!(matches!(
        store.create_tenant(&TenantRecord {
            tenant_id: "t1".into(),
            value: vec![]
        }),
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(store.get_tenant("t2").unwrap().value, b"tenant t2");
    assert!(matches!(
        store.get_tenant("nope"),
        Err(StoreError::TenantNotFound)
    ));
    let ids = |v: Vec<TenantRecord>| v.into_iter().map(|t| t.tenant_id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_tenants(None, 2).unwrap()), ["t1", "t2"]);
    assert_eq!(ids(store.list_tenants(Some("t2"), 2).unwrap()), ["t3"]);
    let updated = TenantRecord {
        tenant_id: "t1".into(),
        value: b"v2".to_vec(),
    };
    assert!(matches!(
        store.update_tenant(&updated, b"stale"),
        Err(StoreError::Conflict)
    ));
    store.update_tenant(&updated, b"tenant t1").unwrap();
    assert_eq!(store.get_tenant("t1").unwrap(), updated);
    assert!(matches!(
        store.create_tenant(&TenantRecord {
            tenant_id: String::new(),
            value: vec![]
        }),
        Err(StoreError::InvalidArgument(_))
    ));
}

#[test]
fn names_are_unique_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t1");
    tenant(&store, "t2");
    store
        .create_connection(&conn("t1", "1", "warehouse", "v"))
        .unwrap();
    assert!(matches!(
        store.create_connection(&conn("t1", "2", "warehouse", "v")),
        Err(StoreError::AlreadyExists)
    ));
    // Same id is also refused.
    assert!(matches!(
        store.create_connection(&conn("t1", "1", "other", "v")),
        Err(StoreError::AlreadyExists)
    ));
    // Another tenant may use the name.
    store
        .create_connection(&conn("t2", "2", "warehouse", "v"))
        .unwrap();
    assert!(matches!(
        store.create_connection(&conn("missing", "3", "x", "v")),
        Err(StoreError::TenantNotFound)
    ));
    // Renaming frees the old name and takes the new one.
    store
        .update_connection(&conn("t1", "1", "lake", "v2"), b"v")
        .unwrap();
    assert_eq!(
        store
            .find_connection_by_name("t1", "lake")
            .unwrap()
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        store.find_connection_by_name("t1", "warehouse").unwrap(),
        None
    );
    store
        .create_connection(&conn("t1", "3", "warehouse", "v"))
        .unwrap();
    // Renaming onto a taken name fails and changes nothing.
    assert!(matches!(
        store.update_connection(&conn("t1", "1", "warehouse", "v3"), b"v2"),
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(
        store.get_connection("t1", "1").unwrap(),
        conn("t1", "1", "lake", "v2")
    );
    // Deleting frees the name.
    store.delete_connection("t1", "1", None).unwrap();
    store
        .create_connection(&conn("t1", "4", "lake", "v"))
        .unwrap();
    assert_eq!(store.tenant_connection_count("t1").unwrap(), 2);
}

#[test]
fn compare_and_swap_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t");
    store.create_connection(&conn("t", "1", "n", "v1")).unwrap();
    store
        .update_connection(&conn("t", "1", "n", "v2"), b"v1")
        .unwrap();
    // A writer that read v1 loses.
    assert!(matches!(
        store.update_connection(&conn("t", "1", "n", "v3"), b"v1"),
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.delete_connection("t", "1", Some(b"v1")),
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_connection("t", "1").unwrap().value, b"v2");
    assert!(matches!(
        store.update_connection(&conn("t", "9", "n", "v"), b"v"),
        Err(StoreError::NotFound)
    ));
    store.delete_connection("t", "1", Some(b"v2")).unwrap();
    assert!(matches!(
        store.delete_connection("t", "1", None),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn batch_delete_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t");
    for i in 0..4 {
        store
            .create_connection(&conn("t", &format!("{i}"), &format!("n{i}"), "v"))
            .unwrap();
    }
    store.put_cache("t", "0", "k", b"v").unwrap();
    assert!(matches!(
        store.batch_delete("t", &["0", "1", "missing"]),
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_connections("t", None, 10).unwrap().len(), 4);
    assert_eq!(store.tenant_connection_count("t").unwrap(), 4);
    assert_eq!(
        store.find_connection_by_name("t", "n0").unwrap().as_deref(),
        Some("0")
    );
    assert_eq!(store.batch_delete("t", &["0", "1", "1"]).unwrap(), 2);
    let left: Vec<_> = store
        .list_connections("t", None, 10)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(left, ["2", "3"]);
    assert_eq!(store.tenant_connection_count("t").unwrap(), 2);
    assert_eq!(store.find_connection_by_name("t", "n0").unwrap(), None);
    assert_eq!(store.get_cache("t", "0", "k").unwrap(), None);
    assert_eq!(store.batch_delete::<&str>("t", &[]).unwrap(), 0);
}

#[test]
fn delete_tenant_with_and_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t");
    tenant(&store, "empty");
    for i in 0..3 {
        store
            .create_connection(&conn("t", &format!("{i}"), &format!("n{i}"), "v"))
            .unwrap();
    }
    store.put_cache("t", "1", "k", b"v").unwrap();
    assert!(matches!(
        store.delete_tenant("t", false),
        Err(StoreError::TenantNotEmpty { connections: 3 })
    ));
    assert_eq!(store.list_connections("t", None, 10).unwrap().len(), 3);
    assert_eq!(store.delete_tenant("empty", false).unwrap(), 0);
    assert!(matches!(
        store.delete_tenant("empty", false),
        Err(StoreError::TenantNotFound)
    ));
    assert_eq!(store.delete_tenant("t", true).unwrap(), 3);
    assert!(matches!(
        store.get_tenant("t"),
        Err(StoreError::TenantNotFound)
    ));
    assert!(store.list_connections("t", None, 10).unwrap().is_empty());
    assert_eq!(store.get_cache("t", "1", "k").unwrap(), None);
    // Names are gone: a recreated tenant can reuse them.
    tenant(&store, "t");
    store.create_connection(&conn("t", "9", "n0", "v")).unwrap();
    assert!(matches!(
        store.delete_tenant("nope", true),
        Err(StoreError::TenantNotFound)
    ));
}

#[test]
fn pagination_covers_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t");
    tenant(&store, "t2");
    let mut ids = BTreeSet::new();
    for i in 0..237 {
        let id = new_id();
        store
            .create_connection(&conn("t", &id, &format!("name {i}"), "v"))
            .unwrap();
        store
            .create_connection(&conn("t2", &new_id(), &format!("name {i}"), "v"))
            .unwrap();
        ids.insert(id);
    }
    for page_size in [1, 7, 50, 236, 237, 1000] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list_connections("t", cursor.as_deref(), page_size)
                .unwrap();
            assert!(page.len() <= page_size);
            let Some(last) = page.last() else { break };
            cursor = Some(last.id.clone());
            seen.extend(page.into_iter().map(|c| c.id));
        }
        assert_eq!(
            seen,
            ids.iter().cloned().collect::<Vec<_>>(),
            "page size {page_size}"
        );
    }
    assert!(store.list_connections("t", None, 0).unwrap().is_empty());
}

#[test]
fn reopen_reads_back_identical_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let (tenants, connections, audit, meta);
    {
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        tenant(&store, "t1");
        tenant(&store, "t2");
        for i in 0..20 {
            let t = if i % 2 == 0 { "t1" } else { "t2" };
            let value: Vec<u8> = (0..=255u8).cycle().skip(i).take(300 + i).collect();
            let record = ConnectionRecord {
                value,
                ..conn(t, &new_id(), &format!("n{i}"), "")
            };
            store.create_connection(&record).unwrap();
            store
                .append_audit(t, format!("event {i}").as_bytes())
                .unwrap();
        }
        store.put_meta("keyring", b"\x01wrapped").unwrap();
        tenants = store.list_tenants(None, 100).unwrap();
        connections = [
            store.list_connections("t1", None, 100).unwrap(),
            store.list_connections("t2", None, 100).unwrap(),
        ];
        audit = store.list_audit(None, 0, 100).unwrap();
        meta = store.get_meta("keyring").unwrap();
        assert!(store.flushes() > 0);
    }
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.list_tenants(None, 100).unwrap(), tenants);
    assert_eq!(
        store.list_connections("t1", None, 100).unwrap(),
        connections[0]
    );
    assert_eq!(
        store.list_connections("t2", None, 100).unwrap(),
        connections[1]
    );
    assert_eq!(store.list_audit(None, 0, 100).unwrap(), audit);
    assert_eq!(store.get_meta("keyring").unwrap(), meta);
    assert_eq!(store.tenant_connection_count("t1").unwrap(), 10);
    // Sequence numbers keep increasing after a restart.
    let next = store.append_audit("t1", b"after restart").unwrap();
    assert!(next > audit.last().unwrap().seq);
}

#[test]
fn audit_is_ordered_and_filtered_by_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut seqs = Vec::new();
    for i in 0..10 {
        let t = if i % 3 == 0 { "a" } else { "ab" };
        seqs.push((store.append_audit(t, format!("{i}").as_bytes()).unwrap(), t));
    }
    assert!(seqs.windows(2).all(|w| w[0].0 < w[1].0));
    let all = store.list_audit(None, 0, 100).unwrap();
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        seqs.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    let a = store.list_audit(Some("a"), 0, 100).unwrap();
    assert_eq!(a.len(), 4);
    assert!(a.iter().all(|r| r.tenant_id == "a"));
    let after = store.list_audit(Some("ab"), seqs[4].0, 2).unwrap();
    assert_eq!(
        after.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
        [b"5".to_vec(), b"7".to_vec()]
    );
    let page = store.list_audit(None, seqs[8].0, 100).unwrap();
    assert_eq!(page.len(), 1);
}

#[test]
fn deleted_audit_entries_leave_no_index_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let seqs: Vec<(u64, &str)> = (0..10)
        .map(|i| {
            let t = if i % 2 == 0 { "a" } else { "ab" };
            (store.append_audit(t, format!("{i}").as_bytes()).unwrap(), t)
        })
        .collect();
    let oldest: Vec<u64> = seqs[..4].iter().map(|s| s.0).collect();
    // A sequence number that was never used is skipped, not an error.
    let mut doomed = oldest.clone();
    doomed.push(seqs[9].0 + 1000);
    assert_eq!(store.delete_audit(doomed).unwrap(), 4);
    assert_eq!(store.delete_audit(oldest).unwrap(), 0, "already gone");
    let all = store.list_audit(None, 0, 100).unwrap();
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        seqs[4..].iter().map(|s| s.0).collect::<Vec<_>>()
    );
    // The per-tenant index lost the same entries: no dangling pointer.
    let a = store.list_audit(Some("a"), 0, 100).unwrap();
    assert_eq!(
        a.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
        [b"4".to_vec(), b"6".to_vec(), b"8".to_vec()]
    );
    let ab = store.list_audit(Some("ab"), 0, 100).unwrap();
    assert_eq!(ab.len(), 3);
    // What is left survives a restart.
    drop(store);
    let store = open(&dir);
    assert_eq!(store.list_audit(None, 0, 100).unwrap(), all);
}

#[test]
fn meta_cas() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.get_meta("kcv").unwrap(), None);
    store.cas_meta("kcv", None, Some(b"1")).unwrap();
    assert!(matches!(
        store.cas_meta("kcv", None, Some(b"2")),
        Err(StoreError::Conflict)
    ));
    store.cas_meta("kcv", Some(b"1"), Some(b"2")).unwrap();
    store.put_meta("kcv", b"3").unwrap();
    assert_eq!(store.get_meta("kcv").unwrap(), Some(b"3".to_vec()));
    store.cas_meta("kcv", Some(b"3"), None).unwrap();
    assert_eq!(store.get_meta("kcv").unwrap(), None);
}

#[test]
fn cache_needs_the_connection_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t");
    store.create_connection(&conn("t", "1", "a", "v")).unwrap();
    store.create_connection(&conn("t", "12", "b", "v")).unwrap();
    assert!(matches!(
        store.put_cache("t", "2", "k", b"v"),
        Err(StoreError::NotFound)
    ));
    store.put_cache("t", "1", "k1", b"v").unwrap();
    store.put_cache("t", "1", "k2", b"v").unwrap();
    store.put_cache("t", "12", "k1", b"v").unwrap();
    // Connection "1" does not reach connection "12"'s entries.
    assert_eq!(store.clear_cache("t", Some("1")).unwrap(), 2);
    assert_eq!(
        store.get_cache("t", "12", "k1").unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(store.clear_cache("t", None).unwrap(), 1);
}

#[test]
fn oversized_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t");
    let big = ConnectionRecord {
        value: vec![0; crate::MAX_VALUE_LEN + 1],
        ..conn("t", "1", "n", "")
    };
    assert!(matches!(
        store.create_connection(&big),
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.create_connection(&conn("t", "1", "", "v")),
        Err(StoreError::InvalidArgument(_))
    ));
}

/// Env var naming the directory the child process must fail to open.
const LOCK_CHILD_ENV: &str = "CONNVAULT_STORE_TEST_LOCK_CHILD";

/// Runs only as the child of `second_process_gets_locked`: with the variable
/// unset (a normal test run) it does nothing.
#[test]
fn lock_child_helper() {
    let Some(path) = std::env::var_os(LOCK_CHILD_ENV) else {
        return;
    };
    match Store::open(&path, StoreOptions::default()) {
        Err(StoreError::Locked { path: reported }) => {
            assert_eq!(reported, std::path::PathBuf::from(&path));
            println!("CHILD-GOT-LOCKED");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn second_process_gets_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    tenant(&store, "t");
    let started = Instant::now();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store_tests::lock_child_helper",
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
    assert!(started.elapsed() < Duration::from_secs(30));
    // The message names the directory.
    let message = StoreError::Locked { path: path.clone() }.to_string();
    assert!(message.contains(&path.display().to_string()));
    // Our own store still works.
    assert_eq!(store.get_tenant("t").unwrap().tenant_id, "t");
}

#[test]
fn second_open_in_same_process_gets_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let _store = Store::open(&path, StoreOptions::default()).unwrap();
    assert!(matches!(
        Store::open(&path, StoreOptions::default()),
        Err(StoreError::Locked { .. })
    ));
}

#[test]
fn group_commit_shares_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("data"), StoreOptions::default()).unwrap());
    tenant(&store, "t");
    let before = (store.flushes(), store.durable_writes());
    let threads: Vec<_> = (0..16)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..50 {
                    store
                        .create_connection(&conn("t", &new_id(), &format!("{thread}-{i}"), "v"))
                        .unwrap();
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
    assert_eq!(store.tenant_connection_count("t").unwrap(), 800);
    assert!(flushes < writes, "{flushes} flushes for {writes} writes");
    eprintln!("group commit: {writes} durable writes in {flushes} flushes");
}

#[test]
fn non_durable_store_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t");
    assert_eq!((store.flushes(), store.durable_writes()), (0, 0));
}

#[test]
fn concurrent_writes_share_transactions_and_still_check_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    tenant(&store, "t");
    let batches_before = store.write_batches();
    // 32 threads race to take the same display name, and each also adds a
    // connection under a name of its own and an audit event.
    let threads: Vec<_> = (0..32)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let contested = store.create_connection(&conn("t", &new_id(), "same", "v"));
                store
                    .create_connection(&conn("t", &new_id(), &format!("own-{thread}"), "v"))
                    .unwrap();
                let seq = store.append_audit_buffered("t", b"event").unwrap();
                (contested, seq)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let winners = results.iter().filter(|(r, _)| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one create of the contested name wins");
    assert!(
        results
            .iter()
            .all(|(r, _)| matches!(r, Ok(()) | Err(StoreError::AlreadyExists)))
    );
    assert_eq!(store.tenant_connection_count("t").unwrap(), 33);
    assert_eq!(store.list_connections("t", None, 100).unwrap().len(), 33);
    let seqs: BTreeSet<u64> = results.iter().map(|(_, seq)| *seq).collect();
    assert_eq!(seqs.len(), 32, "every audit event has its own sequence");
    let writes = 32 * 3;
    let batches = store.write_batches() - batches_before;
    assert!(
        batches <= writes,
        "{batches} transactions for {writes} writes"
    );
    eprintln!("{writes} writes in {batches} transactions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writes_commit_their_audit_entry_only_when_they_succeed() {
    use crate::AuditAppend;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    tenant(&store, "t");
    let audit = |value: &'static [u8]| {
        Some(AuditAppend {
            tenant_id: "t",
            value,
        })
    };
    let id = new_id();
    let created = store
        .create_connection_async(&conn("t", &id, "a", "v1"), audit(b"created"))
        .await
        .unwrap();
    assert!(created.is_some());
    assert!(matches!(
        store
            .create_connection_async(&conn("t", &new_id(), "a", "v"), audit(b"duplicate"))
            .await,
        Err(StoreError::AlreadyExists)
    ));
    assert!(matches!(
        store
            .update_connection_async(&conn("t", &id, "b", "v2"), b"stale", audit(b"stale"))
            .await,
        Err(StoreError::Conflict)
    ));
    let updated = store
        .update_connection_async(&conn("t", &id, "b", "v2"), b"v1", audit(b"updated"))
        .await
        .unwrap();
    assert_eq!(store.find_connection_by_name("t", "a").unwrap(), None);
    assert_eq!(
        store.find_connection_by_name("t", "b").unwrap(),
        Some(id.clone())
    );
    store.put_cache("t", &id, "k", b"cached").unwrap();
    let deleted = store
        .delete_connection_async("t", &id, Some(b"v2"), audit(b"deleted"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .delete_connection_async("t", &id, None, audit(b"missing"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_cache("t", &id, "k").unwrap(), None, "cache swept");
    assert_eq!(store.tenant_connection_count("t").unwrap(), 0);
    let plain = store
        .create_connection_async(&conn("t", &new_id(), "c", "v"), None)
        .await;
    assert_eq!(plain.unwrap(), None);
    let first = store.append_audit_async("t", b"one", true).await.unwrap();
    let second = store.append_audit_async("t", b"two", false).await.unwrap();
    assert!(second > first);
    // Exactly the successful writes' entries, in order, with the sequence
    // numbers the writes returned.
    let log: Vec<(u64, Vec<u8>)> = store
        .list_audit(Some("t"), 0, 100)
        .unwrap()
        .into_iter()
        .map(|record| (record.seq, record.value))
        .collect();
    let expected = vec![
        (created.unwrap(), b"created".to_vec()),
        (updated.unwrap(), b"updated".to_vec()),
        (deleted.unwrap(), b"deleted".to_vec()),
        (first, b"one".to_vec()),
        (second, b"two".to_vec()),
    ];
    assert_eq!(log, expected);
}
