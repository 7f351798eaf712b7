//! The conformance suite every store backend runs: the behaviour the server
//! relies on (isolation between tenants, unique names, revisions, atomic
//! batch and cascade deletes, list queries, audit and change logs, meta and
//! cache), and a property test against a `BTreeMap` model.
//!
//! A backend's tests implement [`Backend`] (a fresh, empty store per call)
//! and call [`run_all`] and [`model::check_against_model`]; the sled
//! backend's own tests do exactly that.

mod checks;
mod lists;
mod logs;
pub mod model;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{ConnectionIndex, ConnectionRecord, Store, TenantRecord};

/// A fresh store and whatever keeps it alive (a temporary directory, a
/// throwaway database).
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    _guard: Box<dyn Any + Send>,
}

impl Fixture {
    /// A store and the guard dropped after it.
    pub fn new(store: Arc<dyn Store>, guard: impl Any + Send) -> Self {
        Fixture {
            store,
            _guard: Box::new(guard),
        }
    }
}

/// A future a [`Backend`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Makes fresh, empty stores of one backend.
pub trait Backend: Sync {
    /// A new store with no data in it.
    fn fresh(&self) -> BoxFuture<'_, Fixture>;
}

type Check = for<'a> fn(&'a dyn Store) -> BoxFuture<'a, ()>;

macro_rules! checks {
    ($($module:ident::$name:ident),* $(,)?) => {
        /// Every check, by name.
        const CHECKS: &[(&str, Check)] = &[
            $((stringify!($name), |store| Box::pin($module::$name(store)))),*
        ];
    };
}

checks![
    checks::tenant_prefixes_isolate_tenants,
    checks::tenants_crud_and_listing,
    checks::names_are_unique_per_tenant,
    checks::compare_and_swap_on_revisions,
    checks::batch_delete_is_all_or_nothing,
    checks::delete_tenant_with_and_without_force,
    checks::writes_commit_their_audit_entry_only_when_they_succeed,
    checks::change_log_records_every_write_in_order,
    checks::concurrent_creates_of_one_name_have_one_winner,
    logs::audit_is_ordered_and_filtered_by_tenant,
    logs::deleted_audit_entries_leave_no_index_behind,
    logs::meta_compare_and_swap,
    checks::cache_needs_the_connection_and_clears,
    checks::oversized_values_are_refused,
    lists::pagination_covers_everything_once,
    lists::filters_match_every_part,
    lists::orders_by_name_and_update_time,
];

/// Runs every check, each on a fresh store; panics naming the first that fails.
pub async fn run_all(backend: &dyn Backend) {
    for (name, check) in CHECKS {
        eprintln!("conformance: {name}");
        let fixture = backend.fresh().await;
        check(fixture.store.as_ref()).await;
    }
}

/// The names of the checks [`run_all`] runs.
pub fn check_names() -> impl Iterator<Item = &'static str> {
    CHECKS.iter().map(|(name, _)| *name)
}

pub(crate) async fn tenant(store: &dyn Store, id: &str) {
    store
        .create_tenant(&TenantRecord {
            tenant_id: id.into(),
            value: format!("tenant {id}").into_bytes(),
        })
        .await
        .unwrap();
}

/// A connection record with empty index fields.
pub(crate) fn conn(tenant: &str, id: &str, name: &str, value: &str) -> ConnectionRecord {
    ConnectionRecord {
        tenant_id: tenant.into(),
        id: id.into(),
        display_name_key: name.into(),
        index: ConnectionIndex::default(),
        revision: 0,
        value: value.as_bytes().to_vec(),
    }
}

/// The record as a read returns it: at `revision`.
pub(crate) fn at(record: ConnectionRecord, revision: u64) -> ConnectionRecord {
    ConnectionRecord { revision, ..record }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The ids of one page of a tenant's connections in id order.
pub(crate) async fn ids(store: &dyn Store, tenant: &str, limit: usize) -> Vec<String> {
    store
        .list_connections(&crate::ConnectionQuery {
            tenant_id: tenant.into(),
            filter: Default::default(),
            order: Default::default(),
            after: None,
            limit,
        })
        .await
        .unwrap()
        .records
        .into_iter()
        .map(|record| record.id)
        .collect()
}
