//! A list query: filter, order and page travel down to the backend, which
//! answers with one page and a cursor for the next.

/// Which connections a list returns; every set part must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFilter {
    /// Only connections of this data source id.
    pub data_source: Option<String>,
    /// Only connections of this (lowercase) product.
    pub product: Option<String>,
    /// Only connections carrying every one of these labels.
    pub labels: Vec<(String, String)>,
}

impl ConnectionFilter {
    /// Whether the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.data_source.is_none() && self.product.is_none() && self.labels.is_empty()
    }

    /// Whether a connection's indexed fields match.
    pub fn matches(&self, index: &crate::ConnectionIndex) -> bool {
        self.data_source
            .as_ref()
            .is_none_or(|id| index.data_source == *id)
            && self
                .product
                .as_ref()
                .is_none_or(|product| index.product == *product)
            && self
                .labels
                .iter()
                .all(|(key, value)| index.labels.get(key) == Some(value))
    }
}

/// The order of a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionOrder {
    /// By id: creation order (ids are UUID v7).
    #[default]
    Id,
    /// By display name key, then id.
    DisplayName,
    /// Most recently updated first, then by id.
    UpdateTimeDesc,
}

/// One page of a tenant's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionQuery {
    /// The tenant.
    pub tenant_id: String,
    /// Which connections.
    pub filter: ConnectionFilter,
    /// In which order.
    pub order: ConnectionOrder,
    /// Where the previous page ended ([`ConnectionPage::next`]); `None` for
    /// the first page. Opaque to callers, meaningful only for the same
    /// tenant, filter and order.
    pub after: Option<String>,
    /// The most records to return.
    pub limit: usize,
}

/// A page of a list, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPage {
    /// The records, in the query's order.
    pub records: Vec<crate::ConnectionRecord>,
    /// The cursor of the next page, `None` at the end. A page may hold fewer
    /// than `limit` records and still have a next page (a backend bounds the
    /// work of one call).
    pub next: Option<String>,
}
