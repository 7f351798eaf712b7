//! Property test: random create/update/delete/batch-delete/list sequences
//! against a `BTreeMap` model.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::Backend;
use crate::{ConnectionQuery, ConnectionRecord, Store, StoreError, TenantRecord};

/// `a` and `ab` on purpose: a prefix bug would show as cross-tenant records.
const TENANTS: [&str; 3] = ["a", "ab", "b"];

#[derive(Debug, Clone)]
enum Op {
    Create {
        tenant: usize,
        name: u8,
        value: u8,
    },
    Update {
        tenant: usize,
        pick: usize,
        name: u8,
        value: u8,
        stale: bool,
    },
    Delete {
        tenant: usize,
        pick: usize,
        check: bool,
        stale: bool,
    },
    BatchDelete {
        tenant: usize,
        picks: Vec<usize>,
        missing: bool,
    },
    List {
        tenant: usize,
        page: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let tenant = 0..TENANTS.len();
    // Few names so that collisions (AlreadyExists) are common.
    let name = 0u8..6;
    prop_oneof![
        4 => (tenant.clone(), name.clone(), any::<u8>())
            .prop_map(|(tenant, name, value)| Op::Create { tenant, name, value }),
        3 => (tenant.clone(), any::<usize>(), name, any::<u8>(), any::<bool>())
            .prop_map(|(tenant, pick, name, value, stale)| Op::Update { tenant, pick, name, value, stale }),
        2 => (tenant.clone(), any::<usize>(), any::<bool>(), any::<bool>())
            .prop_map(|(tenant, pick, check, stale)| Op::Delete { tenant, pick, check, stale }),
        1 => (tenant.clone(), prop::collection::vec(any::<usize>(), 0..4), prop::bool::weighted(0.3))
            .prop_map(|(tenant, picks, missing)| Op::BatchDelete { tenant, picks, missing }),
        2 => (tenant, 1usize..5).prop_map(|(tenant, page)| Op::List { tenant, page }),
    ]
}

/// (tenant, id) -> (name key, value, revision)
type Model = BTreeMap<(String, String), (String, Vec<u8>, u64)>;

fn ids_of(model: &Model, tenant: &str) -> Vec<String> {
    model
        .keys()
        .filter(|(t, _)| t == tenant)
        .map(|(_, id)| id.clone())
        .collect()
}

fn name_taken(model: &Model, tenant: &str, name: &str, except: Option<&str>) -> bool {
    model
        .iter()
        .any(|((t, id), (n, _, _))| t == tenant && n == name && Some(id.as_str()) != except)
}

fn pick(model: &Model, tenant: &str, pick: usize) -> String {
    let ids = ids_of(model, tenant);
    if ids.is_empty() {
        "missing".to_owned()
    } else {
        ids[pick % ids.len()].clone()
    }
}

fn same<T: std::fmt::Debug>(
    actual: Result<T, StoreError>,
    expected: Result<(), &str>,
) -> Result<(), TestCaseError> {
    match (&actual, expected) {
        (Ok(_), Ok(())) => Ok(()),
        (Err(e), Err(kind)) if format!("{e:?}").starts_with(kind) => Ok(()),
        _ => Err(TestCaseError::fail(format!(
            "got {actual:?}, expected {expected:?}"
        ))),
    }
}

fn record(tenant: &str, id: &str, name: &str, value: Vec<u8>) -> ConnectionRecord {
    ConnectionRecord {
        tenant_id: tenant.into(),
        id: id.into(),
        display_name_key: name.into(),
        index: Default::default(),
        revision: 0,
        value,
    }
}

fn fail(error: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(error.to_string())
}

async fn page(
    store: &dyn Store,
    tenant: &str,
    after: Option<String>,
    limit: usize,
) -> Result<crate::ConnectionPage, TestCaseError> {
    store
        .list_connections(&ConnectionQuery {
            tenant_id: tenant.into(),
            filter: Default::default(),
            order: Default::default(),
            after,
            limit,
        })
        .await
        .map_err(fail)
}

async fn run(store: &dyn Store, ops: Vec<Op>) -> Result<(), TestCaseError> {
    for t in TENANTS {
        store
            .create_tenant(&TenantRecord {
                tenant_id: t.into(),
                value: vec![],
            })
            .await
            .map_err(fail)?;
    }
    let mut model = Model::new();
    let mut next_id = 0u32;
    for op in ops {
        match op {
            Op::Create {
                tenant,
                name,
                value,
            } => {
                let t = TENANTS[tenant];
                next_id += 1;
                let id = format!("{next_id:08}");
                let name = format!("name-{name}");
                let expected = if name_taken(&model, t, &name, None) {
                    Err("AlreadyExists")
                } else {
                    Ok(())
                };
                if expected.is_ok() {
                    model.insert((t.into(), id.clone()), (name.clone(), vec![value], 1));
                }
                let new = record(t, &id, &name, vec![value]);
                same(store.create_connection(&new, None).await, expected)?;
            }
            Op::Update {
                tenant,
                pick: p,
                name,
                value,
                stale,
            } => {
                let t = TENANTS[tenant];
                let id = pick(&model, t, p);
                let name = format!("name-{name}");
                let current = model.get(&(t.to_owned(), id.clone())).cloned();
                let expected_revision = match (&current, stale) {
                    (Some((_, _, revision)), false) => *revision,
                    (Some((_, _, revision)), true) => revision + 5,
                    (None, _) => 1,
                };
                let expected = match &current {
                    None => Err("NotFound"),
                    Some(_) if stale => Err("Conflict"),
                    Some(_) if name_taken(&model, t, &name, Some(&id)) => Err("AlreadyExists"),
                    Some((_, _, revision)) => {
                        let revision = revision + 1;
                        model.insert(
                            (t.into(), id.clone()),
                            (name.clone(), vec![value], revision),
                        );
                        Ok(())
                    }
                };
                let new = record(t, &id, &name, vec![value]);
                let updated = store.update_connection(&new, expected_revision, None);
                same(updated.await, expected)?;
            }
            Op::Delete {
                tenant,
                pick: p,
                check,
                stale,
            } => {
                let t = TENANTS[tenant];
                let id = pick(&model, t, p);
                let key = (t.to_owned(), id.clone());
                let current = model.get(&key).cloned();
                let expected_revision = match (&current, stale) {
                    (Some((_, _, revision)), false) => *revision,
                    (Some((_, _, revision)), true) => revision + 5,
                    (None, _) => 1,
                };
                let expected = match &current {
                    None => Err("NotFound"),
                    Some(_) if check && stale => Err("Conflict"),
                    Some(_) => {
                        model.remove(&key);
                        Ok(())
                    }
                };
                let deleted =
                    store.delete_connection(t, &id, check.then_some(expected_revision), None);
                same(deleted.await, expected)?;
            }
            Op::BatchDelete {
                tenant,
                picks,
                missing,
            } => {
                let t = TENANTS[tenant];
                let mut ids: Vec<String> = picks.iter().map(|p| pick(&model, t, *p)).collect();
                if missing {
                    ids.push("missing".into());
                }
                let all_exist = ids
                    .iter()
                    .all(|id| model.contains_key(&(t.to_owned(), id.clone())));
                let expected = if all_exist {
                    for id in &ids {
                        model.remove(&(t.to_owned(), id.clone()));
                    }
                    Ok(())
                } else {
                    Err("NotFound")
                };
                same(store.batch_delete(t, &ids).await, expected)?;
            }
            Op::List { tenant, page: size } => {
                let t = TENANTS[tenant];
                let mut cursor: Option<String> = None;
                let mut seen = Vec::new();
                loop {
                    let batch = page(store, t, cursor.take(), size).await?;
                    prop_assert!(batch.records.len() <= size);
                    seen.extend(batch.records);
                    match batch.next {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                let expected: Vec<ConnectionRecord> = model
                    .iter()
                    .filter(|((mt, _), _)| mt == t)
                    .map(|((mt, id), (name, value, revision))| ConnectionRecord {
                        revision: *revision,
                        ..record(mt, id, name, value.clone())
                    })
                    .collect();
                prop_assert_eq!(seen, expected);
            }
        }
    }
    // Final state: records, counters and the name index agree with the model.
    for t in TENANTS {
        let listed = page(store, t, None, 10_000).await?.records;
        let ids: Vec<String> = listed.iter().map(|c| c.id.clone()).collect();
        prop_assert_eq!(&ids, &ids_of(&model, t));
        prop_assert_eq!(
            store.tenant_connection_count(t).await.ok(),
            Some(ids.len() as u64)
        );
        for record in &listed {
            let owner = store
                .find_connection_by_name(t, &record.display_name_key)
                .await
                .ok()
                .flatten();
            prop_assert_eq!(owner.as_deref(), Some(record.id.as_str()));
        }
        for n in 0..6 {
            let name = format!("name-{n}");
            let owner = store.find_connection_by_name(t, &name).await.ok().flatten();
            prop_assert_eq!(owner.is_some(), name_taken(&model, t, &name, None));
        }
    }
    Ok(())
}

/// Runs `cases` random operation sequences, each on a fresh store of
/// `backend`, against a `BTreeMap` model; panics with the shrunk failing
/// sequence. Call it from a plain (not async) test: it drives `runtime`.
pub fn check_against_model(backend: &dyn Backend, runtime: &tokio::runtime::Runtime, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..60), |ops| {
        runtime.block_on(async {
            let fixture = backend.fresh().await;
            run(fixture.store.as_ref(), ops).await
        })
    });
    if let Err(error) = result {
        panic!("the store departs from the model: {error}");
    }
}
