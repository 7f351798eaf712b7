//! List queries: paging, filters and orders.

use std::collections::BTreeMap;

use super::{conn, new_id, tenant};
use crate::{
    ConnectionFilter, ConnectionIndex, ConnectionOrder, ConnectionQuery, ConnectionRecord, Store,
};

/// Every record of a query, page by page; checks each page's size.
async fn all_pages(
    store: &dyn Store,
    tenant: &str,
    filter: &ConnectionFilter,
    order: ConnectionOrder,
    limit: usize,
) -> Vec<ConnectionRecord> {
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..10_000 {
        let page = store
            .list_connections(&ConnectionQuery {
                tenant_id: tenant.into(),
                filter: filter.clone(),
                order,
                after: after.take(),
                limit,
            })
            .await
            .unwrap();
        assert!(page.records.len() <= limit, "page over its limit");
        seen.extend(page.records);
        match page.next {
            Some(next) => after = Some(next),
            None => return seen,
        }
    }
    panic!("paging did not end");
}

pub(crate) async fn pagination_covers_everything_once(store: &dyn Store) {
    tenant(store, "t").await;
    tenant(store, "t2").await;
    let mut ids = Vec::new();
    for i in 0..237 {
        let id = new_id();
        let record = conn("t", &id, &format!("name {i}"), "v");
        store.create_connection(&record, None).await.unwrap();
        let other = conn("t2", &new_id(), &format!("name {i}"), "v");
        store.create_connection(&other, None).await.unwrap();
        ids.push(id);
    }
    ids.sort();
    for page_size in [1, 7, 50, 236, 237, 1000] {
        let seen: Vec<String> = all_pages(
            store,
            "t",
            &Default::default(),
            ConnectionOrder::Id,
            page_size,
        )
        .await
        .into_iter()
        .map(|record| record.id)
        .collect();
        assert_eq!(seen, ids, "page size {page_size}");
    }
}

fn indexed(tenant: &str, i: usize) -> ConnectionRecord {
    let mut labels = BTreeMap::new();
    labels.insert(
        "env".to_owned(),
        if i % 2 == 0 { "prod" } else { "dev" }.to_owned(),
    );
    if i % 3 == 0 {
        labels.insert("team".to_owned(), "core".to_owned());
    }
    ConnectionRecord {
        index: ConnectionIndex {
            data_source: if i % 4 == 0 { "mysql" } else { "postgresql" }.into(),
            product: if i % 5 == 0 { "reporting" } else { "" }.into(),
            labels,
            // Not in creation order, so the time order differs from the id order.
            update_time_nanos: ((i * 7919) % 101) as i64 * 1_000_000_000 - 50_000_000_000,
        },
        ..conn(
            tenant,
            &new_id(),
            &format!("conn {:03}", (i * 37) % 100),
            "v",
        )
    }
}

async fn fill(store: &dyn Store) -> Vec<ConnectionRecord> {
    tenant(store, "t").await;
    tenant(store, "other").await;
    let mut records = Vec::new();
    for i in 0..60 {
        let record = indexed("t", i);
        store.create_connection(&record, None).await.unwrap();
        // The same shapes in another tenant must never show up.
        store
            .create_connection(&indexed("other", i), None)
            .await
            .unwrap();
        records.push(ConnectionRecord {
            revision: 1,
            ..record
        });
    }
    records
}

pub(crate) async fn filters_match_every_part(store: &dyn Store) {
    let records = fill(store).await;
    let filters = [
        ConnectionFilter::default(),
        ConnectionFilter {
            data_source: Some("mysql".into()),
            ..Default::default()
        },
        ConnectionFilter {
            product: Some("reporting".into()),
            ..Default::default()
        },
        ConnectionFilter {
            labels: vec![("env".into(), "prod".into())],
            ..Default::default()
        },
        ConnectionFilter {
            data_source: Some("postgresql".into()),
            product: None,
            labels: vec![("env".into(), "dev".into()), ("team".into(), "core".into())],
        },
        ConnectionFilter {
            data_source: Some("redis".into()),
            ..Default::default()
        },
    ];
    for filter in &filters {
        let mut expected: Vec<ConnectionRecord> = records
            .iter()
            .filter(|record| filter.matches(&record.index))
            .cloned()
            .collect();
        expected.sort_by(|a, b| a.id.cmp(&b.id));
        for limit in [1, 4, 100] {
            let seen = all_pages(store, "t", filter, ConnectionOrder::Id, limit).await;
            assert_eq!(seen, expected, "{filter:?}, pages of {limit}");
        }
    }
}

pub(crate) async fn orders_by_name_and_update_time(store: &dyn Store) {
    let records = fill(store).await;
    let filter = ConnectionFilter {
        labels: vec![("env".into(), "prod".into())],
        ..Default::default()
    };
    let matching: Vec<&ConnectionRecord> = records
        .iter()
        .filter(|record| filter.matches(&record.index))
        .collect();
    let mut by_name = matching.clone();
    by_name.sort_by(|a, b| (&a.display_name_key, &a.id).cmp(&(&b.display_name_key, &b.id)));
    let mut by_time = matching;
    by_time.sort_by(|a, b| {
        b.index
            .update_time_nanos
            .cmp(&a.index.update_time_nanos)
            .then_with(|| a.id.cmp(&b.id))
    });
    for limit in [1, 3, 100] {
        let names = all_pages(store, "t", &filter, ConnectionOrder::DisplayName, limit).await;
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            by_name,
            "by name, pages of {limit}"
        );
        let times = all_pages(store, "t", &filter, ConnectionOrder::UpdateTimeDesc, limit).await;
        assert_eq!(
            times.iter().collect::<Vec<_>>(),
            by_time,
            "by time, pages of {limit}"
        );
    }
}
