//! The progress record and the consistency check: a store that recovered to
//! less than it acknowledged is refused (or opened on request, saying what
//! was lost), and `check` finds each kind of broken index.

use std::path::Path;

use super::{PROGRESS_FILE, Recovery, SledOptions, SledStore, Visit, layout};
use crate::{ConnectionIndex, ConnectionRecord, StoreError, TenantRecord};

/// Opens `dir`, waiting out a lock still held just after a store on it was
/// dropped: sled's background I/O threads can keep its file lock for a
/// moment after the last handle goes (seen under load), which a server
/// restart never meets but these reopen-at-once tests do.
fn open(dir: &Path, options: SledOptions) -> crate::Result<SledStore> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match SledStore::open(dir, options.clone()) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn record(i: usize) -> ConnectionRecord {
    ConnectionRecord {
        tenant_id: "acme".into(),
        id: format!("id-{i:04}"),
        display_name_key: format!("name {i}"),
        index: ConnectionIndex::default(),
        revision: 0,
        value: vec![7; 100],
    }
}

fn fill(store: &SledStore, range: std::ops::Range<usize>) {
    if store.get_tenant_now("acme").is_err() {
        store
            .create_tenant_blocking(&TenantRecord {
                tenant_id: "acme".into(),
                value: b"t".to_vec(),
            })
            .unwrap();
    }
    for i in range {
        store.create_connection_blocking(&record(i)).unwrap();
    }
}

/// Copies every file of a store directory (sled's and the progress record).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn a_store_that_lost_acknowledged_writes_is_refused_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (data, backup) = (dir.path().join("data"), dir.path().join("backup"));
    {
        let store = open(&data, SledOptions::default()).unwrap();
        assert!(matches!(store.recovery(), Recovery::Created { .. }));
        fill(&store, 0..5);
    }
    copy_dir(&data, &backup);
    {
        let store = open(&data, SledOptions::default()).unwrap();
        assert!(matches!(store.recovery(), Recovery::Intact { .. }));
        fill(&store, 5..12);
    }
    // sled's files as they were after five creates, the progress record as
    // it is after twelve: what sled's recovery leaves when it cuts its log
    // at a damaged byte.
    std::fs::copy(data.join(PROGRESS_FILE), backup.join(PROGRESS_FILE)).unwrap();
    let error = open(&backup, SledOptions::default()).unwrap_err();
    let StoreError::Lost(lost) = &error else {
        panic!("expected Lost, got {error:?}");
    };
    assert_eq!(lost.lost_change_seqs().map(|n| n > 0), Some(true), "{lost}");
    assert!(
        error.to_string().contains("lost acknowledged writes"),
        "{error}"
    );
    // Refusing changed nothing: the same open refuses again.
    assert!(matches!(
        open(&backup, SledOptions::default()),
        Err(StoreError::Lost(_))
    ));
    let store = open(&backup, SledOptions::default().with_accept_loss(true)).unwrap();
    assert!(matches!(store.recovery(), Recovery::Lost(_)));
    assert_eq!(
        store
            .get_connection_now("acme", "id-0004")
            .unwrap()
            .revision,
        1
    );
    assert!(matches!(
        store.get_connection_now("acme", "id-0005"),
        Err(StoreError::NotFound)
    ));
    fill(&store, 20..22);
    drop(store);
    // The record was reset: the next start is clean.
    let store = open(&backup, SledOptions::default()).unwrap();
    assert!(matches!(store.recovery(), Recovery::Intact { .. }));
}

#[test]
fn a_missing_or_damaged_progress_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fill(&open(&data, SledOptions::default()).unwrap(), 0..3);
    let path = data.join(PROGRESS_FILE);
    let kept = std::fs::read(&path).unwrap();
    std::fs::write(&path, vec![0u8; kept.len()]).unwrap();
    let error = open(&data, SledOptions::default()).unwrap_err();
    assert!(
        matches!(&error, StoreError::Lost(lost) if lost.recorded.is_none()),
        "{error:?}"
    );
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        open(&data, SledOptions::default()),
        Err(StoreError::Lost(_))
    ));
    std::fs::write(&path, &kept).unwrap();
    assert!(open(&data, SledOptions::default()).is_ok());
}

#[test]
fn a_store_of_an_older_version_gets_its_record_at_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = open(&data, SledOptions::default()).unwrap();
        fill(&store, 0..3);
        // An older version kept neither the record nor sled's copy of the mark.
        store
            .inner
            .meta
            .remove(super::progress::COMMIT_KEY)
            .unwrap();
        store.inner.db.flush().unwrap();
    }
    std::fs::remove_file(data.join(PROGRESS_FILE)).unwrap();
    let store = open(&data, SledOptions::default()).unwrap();
    let Recovery::Created { recovered } = store.recovery() else {
        panic!("expected Created, got {:?}", store.recovery());
    };
    assert_eq!(
        recovered.last_change_seq,
        store.last_change_seq_now().unwrap()
    );
    assert!(data.join(PROGRESS_FILE).exists());
}

#[test]
fn the_check_finds_each_broken_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        &dir.path().join("data"),
        SledOptions::default().with_durable(false),
    )
    .unwrap();
    fill(&store, 0..4);
    let mut seen = 0;
    let clean = store
        .check(&mut |visit| {
            if let Visit::Connection(_) = visit {
                seen += 1;
            }
        })
        .unwrap();
    assert_eq!(clean.problems, Vec::<String>::new());
    assert_eq!(
        (clean.counts.connections, clean.counts.names, seen),
        (4, 4, 4)
    );
    assert_eq!((clean.counts.tenants, clean.counts.changes), (1, 4));

    let inner = &store.inner;
    // A name index entry gone, a connection gone (its change log entry
    // stays), a counter off by one, an envelope that does not decode.
    inner
        .names
        .remove(layout::name_key("acme", "name 0").unwrap())
        .unwrap();
    inner
        .connections
        .remove(layout::connection_key("acme", "id-0001").unwrap())
        .unwrap();
    inner
        .connections
        .insert(
            layout::connection_key("acme", "id-0002").unwrap(),
            &b"\x09"[..],
        )
        .unwrap();
    let problems = store.check(&mut |_| {}).unwrap().problems;
    let has = |needle: &str| problems.iter().any(|problem| problem.contains(needle));
    assert!(has("id-0000: the name index does not map"), "{problems:#?}");
    assert!(
        has("name 1") && has("which does not exist"),
        "{problems:#?}"
    );
    assert!(
        has("id-0001 is missing: the change log has it"),
        "{problems:#?}"
    );
    assert!(
        has("its counter says 4 connection(s), the store holds 3"),
        "{problems:#?}"
    );
    assert!(has("id-0002: corrupt data"), "{problems:#?}");
}

#[test]
fn every_acknowledged_write_is_covered_by_the_recorded_mark() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = open(&data, SledOptions::default()).unwrap();
    fill(&store, 0..1);
    // Pipelined group commits (the writer's flusher and marker threads) and
    // inline ones (tenant writes block on their own flush), interleaved.
    let writers: Vec<_> = (0..6)
        .map(|writer| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    store
                        .create_connection_blocking(&record(1000 + writer * 100 + i))
                        .unwrap();
                    // What was acknowledged is covered by the file already.
                    let recorded = super::progress::read(store.path())
                        .unwrap()
                        .unwrap()
                        .unwrap();
                    assert!(recorded.last_change_seq >= 1, "{recorded:?}");
                }
            })
        })
        .collect();
    for i in 0..20 {
        store
            .create_tenant_blocking(&TenantRecord {
                tenant_id: format!("t{i}"),
                value: Vec::new(),
            })
            .unwrap();
    }
    for writer in writers {
        writer.join().unwrap();
    }
    let recorded = super::progress::read(&data).unwrap().unwrap().unwrap();
    assert_eq!(
        recorded.commit,
        store.flushes(),
        "the newest flush's mark is on disk"
    );
    assert_eq!(
        recorded.last_change_seq,
        store.last_change_seq_now().unwrap()
    );
    drop(store);
    let store = open(&data, SledOptions::default()).unwrap();
    assert!(matches!(store.recovery(), Recovery::Intact { .. }));
    assert_eq!(
        store.check(&mut |_| {}).unwrap().problems,
        Vec::<String>::new()
    );
}
