//! The audit log and the meta keyspace.

use crate::{Store, StoreError};

pub(crate) async fn audit_is_ordered_and_filtered_by_tenant(store: &dyn Store) {
    let mut seqs = Vec::new();
    for i in 0..10 {
        let t = if i % 3 == 0 { "a" } else { "ab" };
        let seq = store
            .append_audit(t, format!("{i}").as_bytes(), false)
            .await
            .unwrap();
        seqs.push(seq);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let all = store.list_audit(None, 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), seqs);
    let a = store.list_audit(Some("a"), 0, 100).await.unwrap();
    assert_eq!(a.len(), 4);
    assert!(a.iter().all(|r| r.tenant_id == "a"));
    let after = store.list_audit(Some("ab"), seqs[4], 2).await.unwrap();
    assert_eq!(
        after.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
        [b"5".to_vec(), b"7".to_vec()]
    );
    assert_eq!(store.list_audit(None, seqs[8], 100).await.unwrap().len(), 1);
}

pub(crate) async fn deleted_audit_entries_leave_no_index_behind(store: &dyn Store) {
    let mut seqs = Vec::new();
    for i in 0..10 {
        let t = if i % 2 == 0 { "a" } else { "ab" };
        seqs.push(
            store
                .append_audit(t, format!("{i}").as_bytes(), true)
                .await
                .unwrap(),
        );
    }
    let oldest: Vec<u64> = seqs[..4].to_vec();
    // A sequence number that was never used is skipped, not an error.
    let mut doomed = oldest.clone();
    doomed.push(seqs[9] + 1000);
    assert_eq!(store.delete_audit(doomed).await.unwrap(), 4);
    assert_eq!(store.delete_audit(oldest).await.unwrap(), 0, "already gone");
    let all = store.list_audit(None, 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), seqs[4..]);
    // The per-tenant index lost the same entries: no dangling pointer.
    let a = store.list_audit(Some("a"), 0, 100).await.unwrap();
    assert_eq!(
        a.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
        [b"4".to_vec(), b"6".to_vec(), b"8".to_vec()]
    );
    assert_eq!(store.list_audit(Some("ab"), 0, 100).await.unwrap().len(), 3);
}

pub(crate) async fn meta_compare_and_swap(store: &dyn Store) {
    assert_eq!(store.get_meta("kcv").await.unwrap(), None);
    store.cas_meta("kcv", None, Some(b"1")).await.unwrap();
    assert!(matches!(
        store.cas_meta("kcv", None, Some(b"2")).await,
        Err(StoreError::Conflict)
    ));
    store.cas_meta("kcv", Some(b"1"), Some(b"2")).await.unwrap();
    store.put_meta("kcv", b"3").await.unwrap();
    assert_eq!(store.get_meta("kcv").await.unwrap(), Some(b"3".to_vec()));
    store.cas_meta("kcv", Some(b"3"), None).await.unwrap();
    assert_eq!(store.get_meta("kcv").await.unwrap(), None);
}
