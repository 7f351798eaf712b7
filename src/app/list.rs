//! Listing a tenant's connections: the filter, order and page go down to
//! the store as one query; this side validates them and wraps the store's
//! cursor in a page token bound to the query.

use connvault_store::{
    ConnectionFilter, ConnectionOrder, ConnectionQuery, ConnectionRecord, StoreError,
};

use super::App;
use super::pagination::{decode_page_token, encode_page_token, page_size};
use crate::error::ServiceError;
use crate::names::{connection_name, parse_tenant};
use crate::pb::v1;
use crate::record_format;

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
                self.plugins()
                    .find(name)
                    .map(|(_, source)| source.id.clone())
                    .unwrap_or_else(|| name.to_ascii_lowercase()),
            ),
        };
        let mut labels: Vec<(String, String)> = request.labels.into_iter().collect();
        labels.sort();
        let filter = ConnectionFilter {
            data_source,
            product: (!request.product.is_empty()).then(|| request.product.to_ascii_lowercase()),
            labels,
        };
        let order = match v1::ConnectionOrder::try_from(request.order_by)
            .map_err(|_| ServiceError::invalid("order_by", "is not a known order"))?
        {
            v1::ConnectionOrder::Unspecified => ConnectionOrder::Id,
            v1::ConnectionOrder::DisplayName => ConnectionOrder::DisplayName,
            v1::ConnectionOrder::UpdateTime => ConnectionOrder::UpdateTimeDesc,
        };
        // The token is bound to the query: a token of another query is refused.
        let fingerprint = format!(
            "{tenant}|{:?}|{:?}|{:?}|{order:?}",
            filter.data_source, filter.product, filter.labels
        );
        let after = decode_page_token(&self.keyring(), &request.page_token, &fingerprint)?;
        // Listing a tenant that does not exist is NOT_FOUND, not an empty page.
        self.require_tenant(&tenant, &request.parent).await?;
        let page = self
            .store
            .list_connections(&ConnectionQuery {
                tenant_id: tenant,
                filter,
                order,
                after,
                limit: size,
            })
            .await
            .map_err(|error| match error {
                StoreError::QueryTooLarge(message) => ServiceError::FailedPrecondition(message),
                StoreError::InvalidArgument(_) => ServiceError::invalid(
                    "page_token",
                    "is not a token from a previous page of this same request",
                ),
                other => other.into(),
            })?;
        Ok(v1::ListConnectionsResponse {
            // A record that cannot be read fails the page with DATA_LOSS
            // naming it: a page that silently left it out would look whole.
            // (`BatchDeleteConnections` can still remove it.)
            connections: page
                .records
                .iter()
                .map(|record| {
                    connection_view(record).map_err(|_| {
                        let name = connection_name(&record.tenant_id, &record.id);
                        tracing::error!(connection = %name, "a listed connection cannot be read back");
                        ServiceError::DataLoss(format!("{name} cannot be read back"))
                    })
                })
                .collect::<Result<_, _>>()?,
            next_page_token: page
                .next
                .map(|position| encode_page_token(&self.keyring(), &fingerprint, &position))
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

/// The API view of a stored connection: named, no secrets, an etag from the
/// stored bytes.
pub fn connection_view(record: &ConnectionRecord) -> Result<v1::Connection, ServiceError> {
    let mut stored = record_format::decode_connection(&record.value)?;
    stored.connection.name = connection_name(&record.tenant_id, &record.id);
    Ok(super::stamped(stored.connection, &record.value))
}
