//! Listing a tenant's connections: filtered, ordered, a page at a time.

use prost::Message;

use super::App;
use super::pagination::{decode_simple_token, encode_simple_token, page_size};
use crate::error::ServiceError;
use crate::names::parse_tenant;
use crate::pb::storage::StoredConnection;
use crate::pb::v1;

/// Records examined by one filtered list call before it returns a partial page.
const SCAN_BUDGET: usize = 10_000;
/// The most connections a sorted (non-id) listing will sort in memory.
const SORT_LIMIT: usize = 100_000;

/// What a listing keeps: every set condition must hold.
struct Filter {
    data_source: Option<String>,
    product: Option<String>,
    labels: Vec<(String, String)>,
}

impl Filter {
    fn matches(&self, connection: &v1::Connection) -> bool {
        self.data_source
            .as_ref()
            .is_none_or(|id| connection.data_source == *id)
            && self
                .product
                .as_ref()
                .is_none_or(|product| connection.product == *product)
            && self
                .labels
                .iter()
                .all(|(key, value)| connection.labels.get(key) == Some(value))
    }

    fn is_empty(&self) -> bool {
        self.data_source.is_none() && self.product.is_none() && self.labels.is_empty()
    }
}

impl App {
    /// Lists a tenant's connections, filtered and ordered as asked.
    pub async fn list_connections(
        &self,
        request: v1::ListConnectionsRequest,
    ) -> Result<v1::ListConnectionsResponse, ServiceError> {
        let tenant = parse_tenant(&request.parent, "parent")?;
        let size = page_size(request.page_size)?;
        let data_source = match request.data_source.as_str() {
            "" => None,
            name => Some(
                self.plugins
                    .find(name)
                    .map(|(_, source)| source.id.clone())
                    .unwrap_or_else(|| name.to_ascii_lowercase()),
            ),
        };
        let mut labels: Vec<(String, String)> = request.labels.into_iter().collect();
        labels.sort();
        let filter = Filter {
            data_source,
            product: (!request.product.is_empty()).then(|| request.product.to_ascii_lowercase()),
            labels,
        };
        let order = v1::ConnectionOrder::try_from(request.order_by)
            .map_err(|_| ServiceError::invalid("order_by", "is not a known order"))?;
        let query = format!(
            "{tenant}|{:?}|{:?}|{:?}|{order:?}",
            filter.data_source, filter.product, filter.labels
        );
        let cursor = decode_simple_token(&request.page_token, &query)?;
        // Listing a tenant that does not exist is NOT_FOUND, not an empty page.
        self.require_tenant(&tenant, &request.parent)?;
        match order {
            v1::ConnectionOrder::Unspecified => {
                self.list_by_id(tenant, size, cursor, filter, &query).await
            }
            order => {
                self.list_sorted(tenant, size, cursor, filter, order, &query)
                    .await
            }
        }
    }

    async fn list_by_id(
        &self,
        tenant: String,
        size: usize,
        cursor: Option<String>,
        filter: Filter,
        query: &str,
    ) -> Result<v1::ListConnectionsResponse, ServiceError> {
        let unfiltered = filter.is_empty();
        let (page, next) = self
            .blocking(move |store| {
                let mut page = Vec::with_capacity(size + 1);
                let mut position = cursor;
                let mut scanned = 0;
                let batch = if unfiltered {
                    size + 1
                } else {
                    (size * 4).clamp(64, 2048)
                };
                loop {
                    let records = store.list_connections(&tenant, position.as_deref(), batch)?;
                    let exhausted = records.len() < batch;
                    for record in records {
                        scanned += 1;
                        position = Some(record.id.clone());
                        let Ok(connection) = decode_connection(&record.value) else {
                            continue;
                        };
                        if filter.matches(&connection) {
                            page.push((record.id, connection));
                            if page.len() > size {
                                break;
                            }
                        }
                    }
                    if page.len() > size {
                        page.pop();
                        let next = page.last().map(|(id, _)| id.clone());
                        return Ok((page, next));
                    }
                    if exhausted {
                        return Ok((page, None));
                    }
                    if scanned >= SCAN_BUDGET {
                        // A partial page: the token resumes the scan where it stopped.
                        return Ok((page, position));
                    }
                }
            })
            .await?;
        Ok(v1::ListConnectionsResponse {
            connections: page.into_iter().map(|(_, connection)| connection).collect(),
            next_page_token: next
                .map(|position| encode_simple_token(query, &position))
                .unwrap_or_default(),
        })
    }

    async fn list_sorted(
        &self,
        tenant: String,
        size: usize,
        cursor: Option<String>,
        filter: Filter,
        order: v1::ConnectionOrder,
        query: &str,
    ) -> Result<v1::ListConnectionsResponse, ServiceError> {
        let records = self
            .blocking(move |store| store.list_connections(&tenant, None, SORT_LIMIT + 1))
            .await?;
        if records.len() > SORT_LIMIT {
            return Err(ServiceError::FailedPrecondition(format!(
                "the tenant has more than {SORT_LIMIT} connections: list them in the default order"
            )));
        }
        let mut keyed: Vec<(String, v1::Connection)> = records
            .into_iter()
            .filter_map(|record| {
                decode_connection(&record.value)
                    .ok()
                    .map(|c| (record.id, c))
            })
            .filter(|(_, connection)| filter.matches(connection))
            .map(|(id, connection)| {
                let key = match order {
                    v1::ConnectionOrder::DisplayName => connection.display_name.to_lowercase(),
                    _ => {
                        // Newest first: invert the timestamp so the natural order sorts it.
                        let time = connection.update_time.unwrap_or_default();
                        let nanos =
                            i128::from(time.seconds) * 1_000_000_000 + i128::from(time.nanos);
                        format!("{:040}", i128::MAX / 2 - nanos)
                    }
                };
                (format!("{key}\u{1f}{id}"), connection)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let start = match cursor {
            Some(after) => keyed.partition_point(|(key, _)| *key <= after),
            None => 0,
        };
        let mut page: Vec<(String, v1::Connection)> =
            keyed.into_iter().skip(start).take(size + 1).collect();
        let next = if page.len() > size {
            page.pop();
            page.last().map(|(key, _)| encode_simple_token(query, key))
        } else {
            None
        };
        Ok(v1::ListConnectionsResponse {
            connections: page.into_iter().map(|(_, connection)| connection).collect(),
            next_page_token: next.unwrap_or_default(),
        })
    }
}

/// The API view of a stored connection: no secrets, an etag from the stored bytes.
pub fn decode_connection(value: &[u8]) -> Result<v1::Connection, ServiceError> {
    let stored = StoredConnection::decode(value)
        .map_err(|_| ServiceError::DataLoss("the stored connection cannot be read".into()))?;
    Ok(super::stamped(stored.connection, value))
}
