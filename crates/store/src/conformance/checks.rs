//! The behaviour checks of the conformance suite (lists are in `lists.rs`).

use std::collections::BTreeSet;

use super::{at, conn, ids, new_id, tenant};
use crate::{AuditAppend, ChangeKind, Store, StoreError, TenantRecord};

pub(crate) async fn tenant_prefixes_isolate_tenants(store: &dyn Store) {
    tenant(store, "a").await;
    tenant(store, "ab").await;
    tenant(store, "b").await;
    for i in 0..5 {
        let record = conn("ab", &format!("id-{i}"), &format!("n{i}"), "ab");
        store.create_connection(&record, None).await.unwrap();
    }
    let own = conn("a", "id-9", "n9", "a");
    store.create_connection(&own, None).await.unwrap();
    // Tenant "a" sees only its own connection.
    let page = store
        .list_connections(&crate::ConnectionQuery {
            tenant_id: "a".into(),
            filter: Default::default(),
            order: Default::default(),
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(page.records, vec![at(own, 1)]);
    assert_eq!(ids(store, "ab", 100).await.len(), 5);
    assert!(ids(store, "b", 100).await.is_empty());
    assert!(matches!(
        store.get_connection("a", "id-0").await,
        Err(StoreError::NotFound)
    ));
    // Cache and names are isolated too.
    store.put_cache("ab", "id-0", "tables", b"x").await.unwrap();
    assert_eq!(store.clear_cache("a", None).await.unwrap(), 0);
    assert_eq!(
        store.find_connection_by_name("a", "n0").await.unwrap(),
        None
    );
    // Force-deleting "a" leaves "ab" intact.
    assert_eq!(store.delete_tenant("a", true).await.unwrap(), 1);
    assert_eq!(ids(store, "ab", 100).await.len(), 5);
    assert_eq!(
        store.get_cache("ab", "id-0", "tables").await.unwrap(),
        Some(b"x".to_vec())
    );
    assert_eq!(store.tenant_connection_count("ab").await.unwrap(), 5);
    assert_eq!(store.list_audit(Some("a"), 0, 10).await.unwrap(), vec![]);
}

pub(crate) async fn tenants_crud_and_listing(store: &dyn Store) {
    for id in ["t3", "t1", "t2"] {
        tenant(store, id).await;
    }
    let blank = |id: &str| TenantRecord {
        tenant_id: id.into(),
        value: vec![],
    };
    assert!(matches!(
        store.create_tenant(&blank("t1")).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(store.get_tenant("t2").await.unwrap().value, b"tenant t2");
    assert!(matches!(
        store.get_tenant("nope").await,
        Err(StoreError::TenantNotFound)
    ));
    let ids = |v: Vec<TenantRecord>| v.into_iter().map(|t| t.tenant_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_tenants(None, 2).await.unwrap()),
        ["t1", "t2"]
    );
    assert_eq!(
        ids(store.list_tenants(Some("t2"), 2).await.unwrap()),
        ["t3"]
    );
    let updated = TenantRecord {
        tenant_id: "t1".into(),
        value: b"v2".to_vec(),
    };
    assert!(matches!(
        store.update_tenant(&updated, b"stale").await,
        Err(StoreError::Conflict)
    ));
    store.update_tenant(&updated, b"tenant t1").await.unwrap();
    assert_eq!(store.get_tenant("t1").await.unwrap(), updated);
    assert!(matches!(
        store.create_tenant(&blank("")).await,
        Err(StoreError::InvalidArgument(_))
    ));
}

pub(crate) async fn names_are_unique_per_tenant(store: &dyn Store) {
    tenant(store, "t1").await;
    tenant(store, "t2").await;
    let create = |record| async move { store.create_connection(&record, None).await };
    create(conn("t1", "1", "warehouse", "v")).await.unwrap();
    assert!(matches!(
        create(conn("t1", "2", "warehouse", "v")).await,
        Err(StoreError::AlreadyExists)
    ));
    // The same id is refused too.
    assert!(matches!(
        create(conn("t1", "1", "other", "v")).await,
        Err(StoreError::AlreadyExists)
    ));
    // Another tenant may use the name.
    create(conn("t2", "2", "warehouse", "v")).await.unwrap();
    assert!(matches!(
        create(conn("missing", "3", "x", "v")).await,
        Err(StoreError::TenantNotFound)
    ));
    // Renaming frees the old name and takes the new one.
    let renamed = conn("t1", "1", "lake", "v2");
    store.update_connection(&renamed, 1, None).await.unwrap();
    let owner = store.find_connection_by_name("t1", "lake").await.unwrap();
    assert_eq!(owner.as_deref(), Some("1"));
    let gone = store
        .find_connection_by_name("t1", "warehouse")
        .await
        .unwrap();
    assert_eq!(gone, None);
    create(conn("t1", "3", "warehouse", "v")).await.unwrap();
    // Renaming onto a taken name fails and changes nothing.
    assert!(matches!(
        store
            .update_connection(&conn("t1", "1", "warehouse", "v3"), 2, None)
            .await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(
        store.get_connection("t1", "1").await.unwrap(),
        at(renamed, 2)
    );
    // Deleting frees the name.
    store
        .delete_connection("t1", "1", None, None)
        .await
        .unwrap();
    create(conn("t1", "4", "lake", "v")).await.unwrap();
    assert_eq!(store.tenant_connection_count("t1").await.unwrap(), 2);
}

pub(crate) async fn compare_and_swap_on_revisions(store: &dyn Store) {
    tenant(store, "t").await;
    let created = store
        .create_connection(&conn("t", "1", "n", "v1"), None)
        .await
        .unwrap();
    assert_eq!(created.revision, 1);
    let updated = store
        .update_connection(&conn("t", "1", "n", "v2"), 1, None)
        .await
        .unwrap();
    assert_eq!(updated.revision, 2);
    assert_eq!(store.get_connection("t", "1").await.unwrap().revision, 2);
    // A writer that read revision 1 loses, whatever it writes.
    assert!(matches!(
        store
            .update_connection(&conn("t", "1", "n", "v2"), 1, None)
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.delete_connection("t", "1", Some(1), None).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_connection("t", "1").await.unwrap().value, b"v2");
    assert!(matches!(
        store
            .update_connection(&conn("t", "9", "n", "v"), 1, None)
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .delete_connection("t", "1", Some(2), None)
        .await
        .unwrap();
    assert!(matches!(
        store.delete_connection("t", "1", None, None).await,
        Err(StoreError::NotFound)
    ));
}

pub(crate) async fn batch_delete_is_all_or_nothing(store: &dyn Store) {
    tenant(store, "t").await;
    for i in 0..4 {
        let record = conn("t", &format!("{i}"), &format!("n{i}"), "v");
        store.create_connection(&record, None).await.unwrap();
    }
    store.put_cache("t", "0", "k", b"v").await.unwrap();
    let strings = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>();
    assert!(matches!(
        store
            .batch_delete("t", &strings(&["0", "1", "missing"]))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(ids(store, "t", 10).await.len(), 4);
    assert_eq!(store.tenant_connection_count("t").await.unwrap(), 4);
    let owner = store.find_connection_by_name("t", "n0").await.unwrap();
    assert_eq!(owner.as_deref(), Some("0"));
    let deleted = store
        .batch_delete("t", &strings(&["0", "1", "1"]))
        .await
        .unwrap();
    assert_eq!(deleted.deleted, 2);
    assert_eq!(ids(store, "t", 10).await, ["2", "3"]);
    assert_eq!(store.tenant_connection_count("t").await.unwrap(), 2);
    assert_eq!(
        store.find_connection_by_name("t", "n0").await.unwrap(),
        None
    );
    assert_eq!(store.get_cache("t", "0", "k").await.unwrap(), None);
    assert_eq!(store.batch_delete("t", &[]).await.unwrap().deleted, 0);
}

pub(crate) async fn delete_tenant_with_and_without_force(store: &dyn Store) {
    tenant(store, "t").await;
    tenant(store, "empty").await;
    for i in 0..3 {
        let record = conn("t", &format!("{i}"), &format!("n{i}"), "v");
        store.create_connection(&record, None).await.unwrap();
    }
    store.put_cache("t", "1", "k", b"v").await.unwrap();
    assert!(matches!(
        store.delete_tenant("t", false).await,
        Err(StoreError::TenantNotEmpty { connections: 3 })
    ));
    assert_eq!(ids(store, "t", 10).await.len(), 3);
    assert_eq!(store.delete_tenant("empty", false).await.unwrap(), 0);
    assert!(matches!(
        store.delete_tenant("empty", false).await,
        Err(StoreError::TenantNotFound)
    ));
    let before = store.last_change_seq().await.unwrap();
    assert_eq!(store.delete_tenant("t", true).await.unwrap(), 3);
    assert!(matches!(
        store.get_tenant("t").await,
        Err(StoreError::TenantNotFound)
    ));
    assert!(ids(store, "t", 10).await.is_empty());
    assert_eq!(store.get_cache("t", "1", "k").await.unwrap(), None);
    // The cascade is in the change log: one deletion per connection.
    let changes = store.changes(Some("t"), before, 10).await.unwrap();
    let deleted: BTreeSet<String> = changes
        .iter()
        .filter(|change| change.kind == ChangeKind::Deleted)
        .map(|change| change.id.clone())
        .collect();
    assert_eq!(deleted, ["0", "1", "2"].map(String::from).into());
    // Names are gone: a recreated tenant can reuse them.
    tenant(store, "t").await;
    let reused = conn("t", "9", "n0", "v");
    store.create_connection(&reused, None).await.unwrap();
    assert!(matches!(
        store.delete_tenant("nope", true).await,
        Err(StoreError::TenantNotFound)
    ));
}

pub(crate) async fn writes_commit_their_audit_entry_only_when_they_succeed(store: &dyn Store) {
    tenant(store, "t").await;
    let audit = |value: &'static [u8]| {
        Some(AuditAppend {
            tenant_id: "t",
            value,
        })
    };
    let id = new_id();
    let created = store
        .create_connection(&conn("t", &id, "a", "v1"), audit(b"created"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_connection(&conn("t", &new_id(), "a", "v"), audit(b"duplicate"))
            .await,
        Err(StoreError::AlreadyExists)
    ));
    assert!(matches!(
        store
            .update_connection(&conn("t", &id, "b", "v2"), 7, audit(b"stale"))
            .await,
        Err(StoreError::Conflict)
    ));
    let updated = store
        .update_connection(&conn("t", &id, "b", "v2"), 1, audit(b"updated"))
        .await
        .unwrap();
    assert_eq!(store.find_connection_by_name("t", "a").await.unwrap(), None);
    let owner = store.find_connection_by_name("t", "b").await.unwrap();
    assert_eq!(owner, Some(id.clone()));
    store.put_cache("t", &id, "k", b"cached").await.unwrap();
    let deleted = store
        .delete_connection("t", &id, Some(2), audit(b"deleted"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .delete_connection("t", &id, None, audit(b"missing"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.get_cache("t", &id, "k").await.unwrap(),
        None,
        "cache swept"
    );
    assert_eq!(store.tenant_connection_count("t").await.unwrap(), 0);
    let plain = store
        .create_connection(&conn("t", &new_id(), "c", "v"), None)
        .await
        .unwrap();
    assert_eq!(plain.audit_seq, None);
    let first = store.append_audit("t", b"one", true).await.unwrap();
    let second = store.append_audit("t", b"two", false).await.unwrap();
    assert!(second > first);
    // Exactly the successful writes' entries, in order, with the sequence
    // numbers the writes returned.
    let log: Vec<(u64, Vec<u8>)> = store
        .list_audit(Some("t"), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|record| (record.seq, record.value))
        .collect();
    let expected = vec![
        (created.audit_seq.unwrap(), b"created".to_vec()),
        (updated.audit_seq.unwrap(), b"updated".to_vec()),
        (deleted.audit_seq.unwrap(), b"deleted".to_vec()),
        (first, b"one".to_vec()),
        (second, b"two".to_vec()),
    ];
    assert_eq!(log, expected);
}

pub(crate) async fn change_log_records_every_write_in_order(store: &dyn Store) {
    tenant(store, "t").await;
    tenant(store, "u").await;
    let start = store.last_change_seq().await.unwrap();
    let a = new_id();
    let b = new_id();
    let c1 = store
        .create_connection(&conn("t", &a, "a", "v"), None)
        .await
        .unwrap();
    let c2 = store
        .create_connection(&conn("u", &b, "b", "v"), None)
        .await
        .unwrap();
    // A failed write records nothing.
    assert!(
        store
            .create_connection(&conn("t", &new_id(), "a", "v"), None)
            .await
            .is_err()
    );
    let c3 = store
        .update_connection(&conn("t", &a, "a2", "v"), 1, None)
        .await
        .unwrap();
    let c4 = store
        .delete_connection("t", &a, Some(2), None)
        .await
        .unwrap();
    let seqs = [c1.change_seq, c2.change_seq, c3.change_seq, c4.change_seq];
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(c1.change_seq > start);
    assert_eq!(store.last_change_seq().await.unwrap(), c4.change_seq);
    let all = store.changes(None, start, 100).await.unwrap();
    let summary: Vec<(u64, ChangeKind, &str, u64)> = all
        .iter()
        .map(|c| (c.seq, c.kind, c.id.as_str(), c.revision))
        .collect();
    assert_eq!(
        summary,
        [
            (c1.change_seq, ChangeKind::Created, a.as_str(), 1),
            (c2.change_seq, ChangeKind::Created, b.as_str(), 1),
            (c3.change_seq, ChangeKind::Updated, a.as_str(), 2),
            (c4.change_seq, ChangeKind::Deleted, a.as_str(), 0),
        ]
    );
    let of_t = store.changes(Some("t"), start, 100).await.unwrap();
    assert_eq!(of_t.len(), 3);
    assert!(of_t.iter().all(|change| change.tenant_id == "t"));
    let resumed = store.changes(None, c2.change_seq, 1).await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].seq, c3.change_seq);
}

pub(crate) async fn concurrent_creates_of_one_name_have_one_winner(store: &dyn Store) {
    tenant(store, "t").await;
    let contested = (0..16).map(|_| async {
        store
            .create_connection(&conn("t", &new_id(), "same", "v"), None)
            .await
    });
    let results = futures_join_all(contested).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one create of the contested name wins");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(StoreError::AlreadyExists)))
    );
    assert_eq!(store.tenant_connection_count("t").await.unwrap(), 1);
}

/// Polls every future to completion concurrently (no extra dependency).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

pub(crate) async fn cache_needs_the_connection_and_clears(store: &dyn Store) {
    tenant(store, "t").await;
    store
        .create_connection(&conn("t", "1", "a", "v"), None)
        .await
        .unwrap();
    store
        .create_connection(&conn("t", "12", "b", "v"), None)
        .await
        .unwrap();
    assert!(matches!(
        store.put_cache("t", "2", "k", b"v").await,
        Err(StoreError::NotFound)
    ));
    store.put_cache("t", "1", "k1", b"v").await.unwrap();
    store.put_cache("t", "1", "k2", b"v").await.unwrap();
    store.put_cache("t", "12", "k1", b"v").await.unwrap();
    // Connection "1" does not reach connection "12"'s entries.
    assert_eq!(store.clear_cache("t", Some("1")).await.unwrap(), 2);
    assert_eq!(
        store.get_cache("t", "12", "k1").await.unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(store.clear_cache("t", None).await.unwrap(), 1);
}

pub(crate) async fn oversized_values_are_refused(store: &dyn Store) {
    tenant(store, "t").await;
    let big = crate::ConnectionRecord {
        value: vec![0; crate::MAX_VALUE_LEN + 1],
        ..conn("t", "1", "n", "")
    };
    assert!(matches!(
        store.create_connection(&big, None).await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store
            .create_connection(&conn("t", "1", "", "v"), None)
            .await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert_eq!(store.tenant_connection_count("t").await.unwrap(), 0);
}
