//! List queries: the filter is checked against each entry's index fields
//! (no record is decoded), the id order is a range scan from the cursor,
//! and the other orders sort the tenant's entries in memory (bounded).

use super::{SledStore, layout, scoped_range};
use crate::{
    ConnectionOrder, ConnectionPage, ConnectionQuery, ConnectionRecord, MAX_CURSOR_LEN, Result,
    StoreError,
};

/// Entries examined by one filtered list call before it returns a partial page.
const SCAN_BUDGET: usize = 10_000;
/// The most connections a sorted (non-id) listing will sort in memory.
pub(crate) const SORT_LIMIT: usize = 100_000;

fn legacy_entry() -> StoreError {
    StoreError::Backend(
        "the store holds connections in the legacy layout: upgrade them (SledStore::upgrade_legacy) before filtering or sorting"
            .into(),
    )
}

impl SledStore {
    pub(crate) fn list_connections_now(&self, query: &ConnectionQuery) -> Result<ConnectionPage> {
        if query
            .after
            .as_ref()
            .is_some_and(|after| after.len() > MAX_CURSOR_LEN)
        {
            return Err(StoreError::InvalidArgument("list cursor too long".into()));
        }
        match query.order {
            ConnectionOrder::Id => self.list_by_id(query),
            _ => self.list_sorted(query),
        }
    }

    fn list_by_id(&self, query: &ConnectionQuery) -> Result<ConnectionPage> {
        let prefix = layout::tenant_prefix(&query.tenant_id)?;
        let unfiltered = query.filter.is_empty();
        let mut records: Vec<ConnectionRecord> = Vec::with_capacity(query.limit.min(1024) + 1);
        let mut position: Option<String> = None;
        let range = scoped_range(&prefix, query.after.as_deref().map(str::as_bytes));
        for (scanned, entry) in self.inner.connections.range(range).enumerate() {
            if !unfiltered && scanned >= SCAN_BUDGET {
                // A partial page: the cursor resumes the scan where it stopped.
                return Ok(ConnectionPage {
                    records,
                    next: position,
                });
            }
            let (key, stored) = entry?;
            let id = layout::utf8(&key[prefix.len()..], "connection id")?;
            let entry = layout::decode_connection(&stored)?;
            if !unfiltered {
                let index = entry.index.as_ref().ok_or_else(legacy_entry)?;
                if !query.filter.matches(index) {
                    position = Some(id);
                    continue;
                }
            }
            if records.len() == query.limit {
                let next = records.last().map(|record| record.id.clone());
                return Ok(ConnectionPage { records, next });
            }
            position = Some(id.clone());
            records.push(entry.into_record(&query.tenant_id, id));
        }
        Ok(ConnectionPage {
            records,
            next: None,
        })
    }

    fn list_sorted(&self, query: &ConnectionQuery) -> Result<ConnectionPage> {
        let prefix = layout::tenant_prefix(&query.tenant_id)?;
        let mut keyed: Vec<(String, ConnectionRecord)> = Vec::new();
        for entry in self
            .inner
            .connections
            .range(scoped_range(&prefix, None))
            .take(SORT_LIMIT + 1)
        {
            if keyed.len() >= SORT_LIMIT {
                return Err(StoreError::QueryTooLarge(format!(
                    "the tenant has more than {SORT_LIMIT} connections: list them in the default order"
                )));
            }
            let (key, stored) = entry?;
            let id = layout::utf8(&key[prefix.len()..], "connection id")?;
            let entry = layout::decode_connection(&stored)?;
            if entry.is_legacy() {
                return Err(legacy_entry());
            }
            let record = entry.into_record(&query.tenant_id, id);
            if !query.filter.matches(&record.index) {
                continue;
            }
            let sort_key = match query.order {
                ConnectionOrder::DisplayName => record.display_name_key.clone(),
                _ => {
                    // Newest first: invert the time so the natural order sorts it.
                    let nanos = i128::from(record.index.update_time_nanos);
                    format!("{:040}", i128::MAX / 2 - nanos)
                }
            };
            keyed.push((format!("{sort_key}\u{1f}{}", record.id), record));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let start = match &query.after {
            Some(after) => keyed.partition_point(|(key, _)| key <= after),
            None => 0,
        };
        let mut page: Vec<(String, ConnectionRecord)> = keyed
            .into_iter()
            .skip(start)
            .take(query.limit + 1)
            .collect();
        let next = if page.len() > query.limit {
            page.pop();
            page.last().map(|(key, _)| key.clone())
        } else {
            None
        };
        Ok(ConnectionPage {
            records: page.into_iter().map(|(_, record)| record).collect(),
            next,
        })
    }
}
